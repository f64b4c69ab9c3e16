"""The message writer's and context helpers' contract: what they refuse, with which words.

Errors here reach a developer (a wrong argument, a misused writer), so each test pins the
sentence that tells them what to do, and the results the helpers return.
"""

from __future__ import annotations

import base64
import io
import os

import attrs
import pytest

from aureus_core import ConfigError, DecryptionError
from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.envelope.header import FRAMED_CONTENT, NON_FRAMED_CONTENT, Limits
from aureus_core.envelope.message import (
    EncryptionMaterials,
    MessageReader,
    MessageWriter,
    check_frame_length,
    encrypt_stream,
    merge_supplied,
    new_signing_key,
    signed_context,
    split_required,
)
from aureus_core.envelope.suites import DEFAULT_SUITE, SIGNED_SUITE
from aureus_core.errors import speaking_to_cli


def _writer(content_type: int = FRAMED_CONTENT, frame_length: int = 16) -> MessageWriter:
    materials = EncryptionMaterials(
        suite=DEFAULT_SUITE,
        data_key=os.urandom(32),
        encrypted_data_keys=(
            EncryptedDataKey(provider_id="p", provider_info=b"i", ciphertext=b"c"),
        ),
        context=EncryptionContext({"a": "1"}),
    )
    return MessageWriter(materials, frame_length, content_type=content_type)


def test_a_signing_key_for_an_unsigned_suite_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"^suite 0x0478 is not a signed suite$"):
        new_signing_key(DEFAULT_SUITE)
    _, public = new_signing_key(SIGNED_SUITE)
    point = base64.b64decode(public, validate=True)
    assert len(point) == 49  # a compressed P-384 point
    assert point[0] in (2, 3)


def test_required_context_must_be_a_list_of_keys():
    context = EncryptionContext({"tenant": "t1", "app": "a"})
    with pytest.raises(ConfigError, match=r"takes a list of context keys, e.g. \['tenant'\]$"):
        split_required(context, "tenant")


@pytest.mark.parametrize("key", ["missing", 3])
def test_a_required_key_must_be_in_the_context(key):
    context = EncryptionContext({"tenant": "t1"})
    with pytest.raises(
        ConfigError,
        match=rf"^required context key {key!r} is not in the encryption context: give its value",
    ) as caught:
        split_required(context, [key])
    assert str(caught.value).endswith("give its value in context= as well")
    with speaking_to_cli(), pytest.raises(ConfigError) as caught:
        split_required(context, [key])
    assert str(caught.value).endswith("give its value in --context KEY=VALUE as well")


def test_split_required_stores_the_rest_and_authenticates_the_required_pairs():
    context = EncryptionContext({"tenant": "t1", "app": "a", "zone": "z"})
    stored, required = split_required(context, ["tenant", "zone"])
    assert dict(stored) == {"app": "a"}
    assert dict(required) == {"tenant": "t1", "zone": "z"}
    stored, required = split_required(context, [])
    assert dict(stored) == dict(context)
    assert dict(required) == {}


def test_merge_supplied_refuses_a_pair_that_contradicts_the_header():
    stored = EncryptionContext({"tenant": "t1"})
    with pytest.raises(
        DecryptionError,
        match=r"^the message's encryption context does not match the context you required$",
    ):
        merge_supplied(stored, EncryptionContext({"tenant": "t2"}))


def test_merge_supplied_returns_the_full_context_and_the_required_pairs():
    stored = EncryptionContext({"app": "a"})
    full, required = merge_supplied(stored, EncryptionContext({"app": "a", "tenant": "t1"}))
    assert dict(full) == {"app": "a", "tenant": "t1"}
    assert dict(required) == {"tenant": "t1"}
    full, required = merge_supplied(stored, EncryptionContext({"app": "a"}))
    assert dict(full) == {"app": "a"}
    assert dict(required) == {}


def test_the_frame_length_may_be_exactly_the_limit():
    limits = Limits(max_frame_length=64)
    assert check_frame_length(64, limits) == 64
    assert check_frame_length(1, limits) == 1
    for bad in (0, 65, "64"):
        with pytest.raises(
            ConfigError, match=r"^frame length must be between 1 and 64 bytes, not "
        ):
            check_frame_length(bad, limits)  # type: ignore[arg-type]


def test_a_framed_writer_writes_no_single_block():
    writer = _writer()
    writer.start()
    out = bytearray(1024)
    with pytest.raises(
        ConfigError, match=r"^a single block is the whole body of a non-framed message$"
    ):
        writer.single_block_into(memoryview(b"x"), memoryview(out))


def test_a_non_framed_writer_writes_one_single_block_only():
    writer = _writer(NON_FRAMED_CONTENT, frame_length=0)
    start = writer.start()
    out = bytearray(1024)
    end = writer.single_block_into(memoryview(b"hello"), memoryview(out))
    with pytest.raises(ConfigError, match=r"^a single block is the whole body"):
        writer.single_block_into(memoryview(b"again"), memoryview(out))
    with pytest.raises(ConfigError, match=r"^a non-framed message has no frames$"):
        writer.frame_into(memoryview(b"x"), memoryview(out), final=True)
    before = bytes(out)
    with pytest.raises(ConfigError, match=r"^a non-framed message has no frames$"):
        writer.regular_frames_into(memoryview(bytes(64)), 1, memoryview(out))
    assert bytes(out) == before, "a refused batch wrote a frame"
    data = start + bytes(out[:end]) + writer.finish()
    reader = MessageReader(data)
    assert not reader.header.framed
    with pytest.raises(
        ConfigError, match=r"^a non-framed message cannot be streamed: use encrypt_bytes$"
    ):
        encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), _writer(NON_FRAMED_CONTENT, frame_length=0))


def test_a_regular_frame_must_be_one_frame_length():
    writer = _writer(frame_length=16)
    writer.start()
    with pytest.raises(
        ConfigError, match=r"^a regular frame must be exactly one frame length long$"
    ):
        writer.frame_into(memoryview(b"short"), memoryview(bytearray(1024)), final=False)


class Trickle(io.RawIOBase):
    """A source that hands out at most ``step`` bytes per read, as a pipe or socket may."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(self._step, len(buffer), len(self._data))
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


@pytest.mark.parametrize("size", [0, 5, 16, 17, 100])
def test_encrypt_stream_from_short_reads_counts_and_keeps_every_byte(stack, size):
    plaintext = bytes(range(256))[:size] * 1
    sink = io.BytesIO()
    count = stack.encrypt_stream(Trickle(plaintext, 3), sink, frame_length=16)
    assert count == size
    assert stack.decrypt(sink.getvalue()) == plaintext
    reader = MessageReader(sink.getvalue())
    assert reader.header.frame_length == 16


@pytest.mark.parametrize("frame_length", [4096, 65536])
def test_a_stream_of_several_frames_at_a_common_frame_length_reads_back(stack, frame_length):
    """Regular frames are checked by length, whatever the frame length (not only small ones)."""
    plaintext = os.urandom(3 * frame_length + 5)
    sink = io.BytesIO()
    assert stack.encrypt_stream(io.BytesIO(plaintext), sink, frame_length=frame_length) == len(
        plaintext
    )
    assert stack.decrypt(sink.getvalue()) == plaintext
    data_key = os.urandom(32)
    writer = MessageWriter(_materials(EncryptionContext({"a": "1"}), None, data_key), frame_length)
    data = writer.start()
    for start in range(0, 3 * frame_length, frame_length):
        data += writer.frame(plaintext[start : start + frame_length], final=False)
    data += writer.frame(plaintext[3 * frame_length :], final=True) + writer.finish()
    reader = MessageReader(data)
    reader.unlock(data_key)
    assert b"".join(bytes(chunk) for chunk in reader.frames()) == plaintext


def test_a_final_frame_longer_than_the_frame_length_is_not_written():
    """No reader accepts such a frame, so the writer refuses it rather than write a message
    that can never be read."""
    writer = _writer(frame_length=16)
    writer.start()
    with pytest.raises(ConfigError, match=r"^a final frame must be at most one frame length long$"):
        writer.frame_into(memoryview(b"x" * 17), memoryview(bytearray(1024)), final=True)
    assert len(writer.frame(b"x" * 16, final=True)) > 16


def test_a_stack_refuses_more_recipients_than_a_reader_accepts():
    limits = Limits(max_encrypted_data_keys=2)
    limits.check_recipients(2)
    with pytest.raises(
        ConfigError,
        match=r"^3 wrapping keys, but messages may carry at most 2 encrypted data keys: use fewer "
        r"keys, or raise \[stack\] max_encrypted_data_keys \(on every stack that must read the "
        r"messages\)$",
    ):
        limits.check_recipients(3)


def _materials(context: EncryptionContext, signing_key=None, data_key: bytes | None = None):
    return EncryptionMaterials(
        suite=SIGNED_SUITE if signing_key is not None else DEFAULT_SUITE,
        data_key=data_key or os.urandom(32),
        encrypted_data_keys=(
            EncryptedDataKey(provider_id="p", provider_info=b"i", ciphertext=b"c"),
        ),
        context=context,
        signing_key=signing_key,
    )


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_frame_by_frame_writing_reads_back(signed):
    """MessageWriter.frame: regular frames of exactly one frame length, then a final one."""
    data_key = os.urandom(32)
    signing_key = new_signing_key(SIGNED_SUITE)[0] if signed else None
    context = signed_context(EncryptionContext({"a": "1"}), signing_key)
    writer = MessageWriter(_materials(context, signing_key, data_key), 4)
    data = (
        writer.start()
        + writer.frame(b"abcd", final=False)
        + writer.frame(bytearray(b"efgh"), final=False)
        + writer.frame(memoryview(b"ij"), final=True)
        + writer.finish()
    )
    reader = MessageReader(data)
    reader.unlock(data_key)
    assert [bytes(chunk) for chunk in reader.frames()] == [b"abcd", b"efgh", b"ij"]


def test_a_public_key_that_is_not_strict_base64_is_refused():
    """The stored signature key is read strictly: a character outside base64 fails the message.

    The writer here holds the data key and signs correctly; only the stored key text is
    padded with a character a lenient decoder would skip.
    """
    data_key = os.urandom(32)
    signing_key = new_signing_key(SIGNED_SUITE)[0]
    stored = signed_context(EncryptionContext({"a": "1"}), signing_key)
    text = stored["aws-crypto-public-key"]
    sloppy = EncryptionContext._unchecked_reserved(
        {**stored, "aws-crypto-public-key": text[:10] + "!" + text[10:]}
    )
    for context, reads in ((stored, True), (sloppy, False)):
        writer = MessageWriter(_materials(context, signing_key, data_key), 16)
        data = writer.start() + writer.frame(b"payload", final=True) + writer.finish()
        reader = MessageReader(data)
        reader.unlock(data_key)
        if reads:
            assert reader.read_all() == b"payload"
        else:
            with pytest.raises(DecryptionError):
                reader.read_all()


def test_the_writer_refuses_what_it_cannot_write_with_its_reason():
    from aureus_core.envelope.suites import SUITES

    legacy = EncryptionMaterials(
        suite=SUITES[0x0178],
        data_key=os.urandom(32),
        encrypted_data_keys=(
            EncryptedDataKey(provider_id="p", provider_info=b"", ciphertext=b"c"),
        ),
        context=EncryptionContext(),
    )
    with pytest.raises(
        ConfigError, match=r"^Aureus writes only committing \(format version 2\) suites$"
    ):
        MessageWriter(legacy, 16)
    unsigned_with_key = _materials(EncryptionContext(), None)
    signed_without_key = attrs.evolve(unsigned_with_key, suite=SIGNED_SUITE)
    with pytest.raises(
        ConfigError, match=r"^a signed suite needs a signing key, and only a signed suite$"
    ):
        MessageWriter(signed_without_key, 16)
    with pytest.raises(ConfigError, match=r"^unknown content type 3$"):
        MessageWriter(unsigned_with_key, 16, content_type=3)
    with pytest.raises(ConfigError) as caught:
        MessageWriter(unsigned_with_key, 0)
    assert str(caught.value).endswith(
        "for non-framed content only (content_type=NON_FRAMED_CONTENT)"
    )


def _header_with(**fields):
    from aureus_core.envelope.header import Header, parse_header
    from aureus_core.envelope.reader import Reader

    header = Header(
        suite=DEFAULT_SUITE,
        message_id=os.urandom(32),
        context=fields.get("context", EncryptionContext()),
        encrypted_data_keys=fields.get(
            "edks", (EncryptedDataKey(provider_id="p", provider_info=b"", ciphertext=b"c"),)
        ),
        frame_length=16,
        suite_data=os.urandom(32),
    )
    body = header.serialize()
    return header, parse_header(Reader(body), Limits(max_encrypted_data_keys=65535))[0]


def test_header_length_fields_are_unsigned_up_to_65535():
    """Fields of 32 768 bytes and more (past a signed 16-bit length) round-trip."""
    big = EncryptedDataKey(provider_id="p", provider_info=b"i" * 40_000, ciphertext=b"c" * 65_535)
    _, parsed = _header_with(edks=(big,))
    assert parsed.encrypted_data_keys == (big,)
    context = EncryptionContext({"k": "v" * 40_000})
    _, parsed = _header_with(context=context)
    assert dict(parsed.context) == dict(context)
    for too_long in (
        EncryptedDataKey(provider_id="p" * 65_536, provider_info=b"", ciphertext=b"c"),
        EncryptedDataKey(provider_id="p", provider_info=b"i" * 65_536, ciphertext=b"c"),
        EncryptedDataKey(provider_id="p", provider_info=b"", ciphertext=b"c" * 65_536),
    ):
        with pytest.raises(
            ConfigError, match=r"^an encrypted data key field is longer than 65 535 bytes$"
        ):
            _header_with(edks=(too_long,))


def test_a_header_is_read_from_wherever_its_reader_stands():
    """Bytes before the header in the same buffer are neither part of it nor consumed twice."""
    from aureus_core.envelope.header import parse_header
    from aureus_core.envelope.reader import Reader

    header, _ = _header_with()
    body = header.serialize()
    for source in (b"PREFIX" + body + b"rest", io.BytesIO(b"PREFIX" + body + b"rest")):
        reader = Reader(source)
        reader.read(6)
        parsed, raw = parse_header(reader, Limits())
        assert (parsed, raw, reader.offset) == (header, body, 6 + len(body))


def test_plaintext_given_to_decrypt_is_named_as_not_a_message():
    from aureus_core.errors import NotAMessage

    with pytest.raises(NotAMessage, match=r"^not an encrypted message: it starts with text$"):
        MessageReader(b"hello, this is plaintext")
    with pytest.raises(NotAMessage, match=r"^not an encrypted message: it is binary data whose"):
        MessageReader(b"\x02\x99\x99" + bytes(40))  # format 2, unknown suite


def test_a_header_holds_up_to_65535_encrypted_data_keys():
    """The count is unsigned too: 40 000 data keys (past a signed 16-bit count) round-trip."""
    many = tuple(
        EncryptedDataKey(provider_id="p", provider_info=b"", ciphertext=i.to_bytes(2, "big"))
        for i in range(40_000)
    )
    _, parsed = _header_with(edks=many)
    assert parsed.encrypted_data_keys == many


@pytest.mark.parametrize("size", [0, 15, 16, 17, 48])
def test_a_streamed_source_may_hold_exactly_max_bytes_and_not_one_more(size):
    """``max_bytes`` is the size a data-key cache was charged for the message: a source of
    that size is encrypted whole; one byte more is refused before a frame holding it is
    written, leaving a message without its final frame."""
    data_key = os.urandom(32)
    materials = EncryptionMaterials(
        suite=DEFAULT_SUITE,
        data_key=data_key,
        encrypted_data_keys=(
            EncryptedDataKey(provider_id="p", provider_info=b"i", ciphertext=b"c"),
        ),
        context=EncryptionContext({"a": "1"}),
    )
    plaintext = os.urandom(size)
    out = io.BytesIO()
    written = encrypt_stream(
        io.BytesIO(plaintext), out, MessageWriter(materials, 16), max_bytes=size
    )
    assert written == size
    reader = MessageReader(out.getvalue())
    reader.unlock(data_key)
    assert reader.read_all() == plaintext

    writer = MessageWriter(materials, 16)
    out = io.BytesIO()
    with pytest.raises(ConfigError) as refused:
        encrypt_stream(io.BytesIO(plaintext + b"!"), out, writer, max_bytes=size)
    assert str(refused.value) == (
        f"the input grew while it was encrypted: it had {size} bytes when the data-key cache "
        "counted it, and a cached data key may not encrypt more than it was charged for; the "
        "message was left unfinished (no reader accepts it). Encrypt the input again once it "
        "no longer grows, or a copy of it"
    )
    # The header and its tag, then the whole regular frames within the bytes charged
    # (4 + 12 + 16 + 16 bytes each); no frame with the extra byte, no final frame.
    body = len(out.getvalue()) - len(writer.header.serialize()) - 16
    assert body == (size // 16) * 48
    reader = MessageReader(out.getvalue())
    reader.unlock(data_key)
    with pytest.raises(DecryptionError):
        reader.read_all()
