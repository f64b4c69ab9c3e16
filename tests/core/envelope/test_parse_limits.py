"""Checks that refuse a message early, pinned one by one.

Most hostile changes to a message fail later anyway (the header authentication tag, a frame
tag or the signature catches them), so a test that only expects DecryptionError cannot tell
whether the early check exists.  These tests observe what the early check adds: the message
is refused when its header is read, before any key is asked to unwrap, and limits that no
real message reaches are exercised by lowering them.
"""

from __future__ import annotations

import io

import pytest

from aureus_core import ConfigError, DecryptionError
from aureus_core.envelope import message as message_module
from aureus_core.envelope.header import Limits
from aureus_core.envelope.message import EncryptionMaterials, MessageReader, MessageWriter

SUITE_DATA = 32  # the commitment value that ends a committing (format 2) header
FRAME_LENGTH = 16


def _content_type_offset(data: bytes) -> int:
    reader = MessageReader(data)
    header_length = len(reader.header.serialize())
    # ... content type (1 byte), frame length (4 bytes), suite data: the header's last fields.
    offset = header_length - SUITE_DATA - 4 - 1
    assert data[offset] == reader.header.content_type
    return offset


@pytest.mark.parametrize("content_type", [0, 3, 0xFF])
def test_an_unknown_content_type_is_refused_when_the_header_is_read(stack, content_type):
    data = bytearray(stack.encrypt(b"payload", frame_length=FRAME_LENGTH))
    data[_content_type_offset(bytes(data))] = content_type
    # Refused by the parser itself, in memory and from a stream: no reader exists to ask a
    # key for the data key.
    with pytest.raises(DecryptionError):
        MessageReader(bytes(data))
    with pytest.raises(DecryptionError):
        MessageReader(io.BytesIO(bytes(data)))
    with pytest.raises(DecryptionError):
        stack.decrypt(bytes(data))


def test_a_framed_header_with_frame_length_zero_is_refused_when_read(stack):
    data = bytearray(stack.encrypt(b"payload", frame_length=FRAME_LENGTH))
    offset = _content_type_offset(bytes(data)) + 1
    data[offset : offset + 4] = (0).to_bytes(4, "big")
    with pytest.raises(DecryptionError, match=r"could not be decrypted and authenticated$"):
        MessageReader(bytes(data))


def test_a_frame_length_over_the_limit_is_refused_with_the_limit_named(stack):
    data = stack.encrypt(b"payload", frame_length=64)
    with pytest.raises(DecryptionError, match="its frame length is 64 bytes; the limit is 63"):
        MessageReader(data, limits=Limits(max_frame_length=63))
    assert MessageReader(data, limits=Limits(max_frame_length=64)).header.frame_length == 64


def _zero_key_materials() -> EncryptionMaterials:
    """Materials for a writer driven directly: an all-zero data key, one made-up recipient."""
    from aureus_core.context import EncryptionContext
    from aureus_core.datakey import EncryptedDataKey
    from aureus_core.envelope.suites import DEFAULT_SUITE

    return EncryptionMaterials(
        suite=DEFAULT_SUITE,
        data_key=bytes(32),
        encrypted_data_keys=(
            EncryptedDataKey(provider_id="p", provider_info=b"", ciphertext=b"c"),
        ),
        context=EncryptionContext(),
    )


def test_a_message_may_have_the_formats_2_to_the_32_minus_1_frames():
    """The tests below lower the limit to reach it; this is the limit itself.

    The format allows 2**32 - 1 frames, the final one included, as the AWS Encryption SDK
    writes and reads them. The final frame's number follows the marker, so it may be
    0xFFFFFFFF; a regular frame's would read as the marker, which the writer's
    room-for-the-final-frame rule prevents (next test).
    """
    from aureus_core.envelope.frames import FINAL_FRAME_MARKER, MAX_FRAMES

    assert FINAL_FRAME_MARKER == 2**32 - 1
    assert MAX_FRAMES == 2**32 - 1
    assert message_module.MAX_FRAMES == MAX_FRAMES  # type: ignore[attr-defined]


def test_a_regular_frame_is_refused_when_no_room_is_left_for_the_final_frame(monkeypatch):
    """At the real limit this refuses a regular frame numbered 0xFFFFFFFF: it would read as
    the final-frame marker. The final frame itself may take the last number."""
    monkeypatch.setattr(message_module, "MAX_FRAMES", 3)
    materials = _zero_key_materials()
    writer = MessageWriter(materials, FRAME_LENGTH)
    header = writer.start()
    chunk = b"x" * FRAME_LENGTH
    body = writer.frame(chunk, final=False) + writer.frame(chunk, final=False)
    with pytest.raises(
        ConfigError, match=r"^message too large for its frame length: use a larger frame length$"
    ):
        writer.frame(chunk, final=False)
    # The refusal took no number: the final frame is the third, the last one allowed.
    final = writer.frame(chunk, final=True)
    assert final[:8] == b"\xff\xff\xff\xff\x00\x00\x00\x03"
    with pytest.raises(ConfigError, match=r"^message too large for its frame length"):
        writer.frame(b"", final=True)
    message = header + body + final + writer.finish()
    reader = MessageReader(message)
    reader.unlock(materials.data_key)
    assert reader.read_all() == chunk * 3


def test_a_message_over_the_frame_count_limit_is_not_written(stack, monkeypatch):
    """A message may have at most MAX_FRAMES frames; the limit is lowered to reach it."""
    monkeypatch.setattr(message_module, "MAX_FRAMES", 3)
    # Three frames (the last one final) fit; a fourth passes the limit.
    stack.encrypt(b"x" * (3 * FRAME_LENGTH), frame_length=FRAME_LENGTH)
    with pytest.raises(
        ConfigError, match=r"^message too large for its frame length: use a larger frame length$"
    ):
        stack.encrypt(b"x" * (3 * FRAME_LENGTH + 1), frame_length=FRAME_LENGTH)
    with pytest.raises(
        ConfigError, match=r"^message too large for its frame length: use a larger frame length$"
    ):
        stack.encrypt_stream(
            io.BytesIO(b"x" * (3 * FRAME_LENGTH + 1)), io.BytesIO(), frame_length=FRAME_LENGTH
        )


def test_a_batch_of_regular_frames_over_the_frame_count_limit_is_not_written(monkeypatch):
    """The batch writer checks the limit for the whole batch before it encrypts any frame."""
    monkeypatch.setattr(message_module, "MAX_FRAMES", 3)
    materials = _zero_key_materials()
    data = memoryview(b"x" * (5 * FRAME_LENGTH))
    out = memoryview(bytearray(5 * (16 + FRAME_LENGTH + 16)))
    writer = MessageWriter(materials, FRAME_LENGTH)
    writer.start()
    with pytest.raises(
        ConfigError, match=r"^message too large for its frame length: use a larger frame length$"
    ):
        writer.regular_frames_into(data, 5, out)
    assert bytes(out) == bytes(len(out)), "frames were written before the refusal"
    # Three regular frames would leave no number for the final frame; two do.
    with pytest.raises(ConfigError, match=r"^message too large for its frame length"):
        writer.regular_frames_into(data, 3, out)
    assert bytes(out) == bytes(len(out)), "frames were written before the refusal"
    assert writer.regular_frames_into(data, 2, out) == 2 * (16 + FRAME_LENGTH + 16)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_a_message_over_the_frame_count_limit_is_not_read(stack, monkeypatch, signed):
    at_limit = stack.encrypt(b"x" * (3 * FRAME_LENGTH), frame_length=FRAME_LENGTH, signed=signed)
    over = stack.encrypt(b"x" * (3 * FRAME_LENGTH + 1), frame_length=FRAME_LENGTH, signed=signed)
    monkeypatch.setattr(message_module, "MAX_FRAMES", 3)
    assert stack.decrypt(at_limit) == b"x" * (3 * FRAME_LENGTH)
    out = io.BytesIO()
    stack.decrypt_stream(io.BytesIO(at_limit), out)
    assert out.getvalue() == b"x" * (3 * FRAME_LENGTH)
    with pytest.raises(DecryptionError):
        stack.decrypt(over)
    out = io.BytesIO()
    with pytest.raises(DecryptionError):
        stack.decrypt_stream(io.BytesIO(over), out)
    # At most the frames within the limit, each authenticated, were released; never the fourth.
    assert len(out.getvalue()) <= 3 * FRAME_LENGTH


@pytest.mark.parametrize("size", [0, 1, FRAME_LENGTH - 1, FRAME_LENGTH, 2 * FRAME_LENGTH])
def test_the_final_frame_may_be_empty_or_exactly_one_frame_length(stack, size):
    data = stack.encrypt(b"y" * size, frame_length=FRAME_LENGTH)
    assert stack.decrypt(data) == b"y" * size
    out = io.BytesIO()
    stack.decrypt_stream(io.BytesIO(data), out)
    assert out.getvalue() == b"y" * size


def _non_framed(plaintext: bytes) -> tuple[bytes, bytearray, int, MessageWriter, bytes]:
    """A non-framed message: (header and tag, body buffer, body end, writer, data key)."""
    import os

    from aureus_core.context import EncryptionContext
    from aureus_core.datakey import EncryptedDataKey
    from aureus_core.envelope.header import NON_FRAMED_CONTENT
    from aureus_core.envelope.message import EncryptionMaterials
    from aureus_core.envelope.suites import DEFAULT_SUITE

    data_key = os.urandom(32)
    materials = EncryptionMaterials(
        suite=DEFAULT_SUITE,
        data_key=data_key,
        encrypted_data_keys=(
            EncryptedDataKey(provider_id="p", provider_info=b"", ciphertext=b"c"),
        ),
        context=EncryptionContext(),
    )
    writer = MessageWriter(materials, 0, content_type=NON_FRAMED_CONTENT)
    body = bytearray(1024)
    end = writer.single_block_into(memoryview(plaintext), memoryview(body))
    return writer.start(), body, end, writer, data_key


def test_a_non_framed_body_over_the_limit_is_refused_before_it_is_held():
    start, body, end, writer, data_key = _non_framed(b"z" * 100)
    data = start + bytes(body[:end]) + writer.finish()
    reader = MessageReader(data, limits=Limits(max_non_framed_bytes=100))
    reader.unlock(data_key)
    assert reader.read_all() == b"z" * 100
    strict = MessageReader(data, limits=Limits(max_non_framed_bytes=99))
    strict.unlock(data_key)
    with pytest.raises(
        DecryptionError,
        match=r"^the message has a non-framed body of 100 bytes, over the limit of 99 that may be "
        r"held in memory until it authenticates; raise \[stack\] max_non_framed_bytes if you "
        r"trust the sender$",
    ):
        strict.read_all()


def test_the_default_non_framed_limit_is_64_mib():
    """Without a [stack] setting, a non-framed body of up to 64 MiB may be held in memory."""
    start, body, end, writer, data_key = _non_framed(b"z" * 100)
    # The body is IV (12 bytes), content length (8 bytes), ciphertext and tag.
    assert int.from_bytes(body[12:20], "big") == 100

    def read_with_length(length: int) -> str:
        body[12:20] = length.to_bytes(8, "big")
        reader = MessageReader(start + bytes(body[:end]) + writer.finish())
        reader.unlock(data_key)
        with pytest.raises(DecryptionError) as caught:
            reader.read_all()
        return str(caught.value)

    assert read_with_length(64 * 2**20 + 1).startswith(
        "the message has a non-framed body of 67108865 bytes, over the limit of 67108864 "
    )
    assert "over the limit" not in read_with_length(64 * 2**20)  # too short, not too long


def test_a_non_message_is_described_by_its_first_16_bytes():
    from aureus_core.envelope.header import describe_start

    assert describe_start(b"a" * 16 + b"\x00") == "it starts with text"
    assert describe_start(b"a" * 15 + b"\x00").startswith("it is binary data")
    # A two-byte character split by the 16-byte cut is still text; an input that ends
    # inside one is not.
    accented = ("a" + "\u00e9" * 10).encode()
    assert describe_start(accented) == "it starts with text"
    assert describe_start(accented[:16]) == "it starts with text"
    assert describe_start(accented[:14]).startswith("it is binary data whose first byte is 61")


@pytest.mark.parametrize(
    ("start", "said"),
    [
        (b"", "the input is empty"),
        (
            b"AgR4abcdefgh",
            "it starts like base64 text, perhaps an encoded message (decode it first)",
        ),
        (b"  AgV4abcdefgh", "it starts like base64 text, perhaps an encoded message"),
        (b"AYAAabcd", "it starts like base64 text, perhaps an encoded message"),
        (
            b'\n{"encrypted": "x"}',
            "it starts like JSON (a seed-system envelope is read by migrate)",
        ),
        (b"-----BEGIN PRIVATE KEY-----", "it starts like PEM text"),
        (b"hello\tworld\r\nsecret words", "it starts with text"),
        (b"Agr4 lower case", "it starts with text"),
        (b"\x1f\x8b\x08\x00rest", "it starts with the gzip signature (1f 8b)"),
        (b"\x07hello", "it is binary data whose first byte is 07"),
        (b"caf\xc3", "it is binary data whose first byte is 63"),  # cut UTF-8: not text
        (b"\xff\xfe", "it is binary data whose first byte is ff"),
    ],
)
def test_a_non_message_is_described_by_kind_never_by_content(start, said):
    from aureus_core.envelope.header import describe_start

    text = describe_start(start)
    assert text.startswith(said)
    for word in (b"secret", b"world", b"hello", b"PRIVATE"):
        if word in start:
            assert word.decode() not in text


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"max_encrypted_data_keys": 0}, "max_encrypted_data_keys must be between 1 and 65535"),
        ({"max_encrypted_data_keys": 65536}, "max_encrypted_data_keys must be between 1 and 65535"),
        ({"max_frame_length": 0}, "max_frame_length must be between 1 and 2147483647"),
        ({"max_frame_length": 2**31}, "max_frame_length must be between 1 and 2147483647"),
        ({"max_non_framed_bytes": -1}, "max_non_framed_bytes must be between 0 and 68719476704"),
        ({"max_non_framed_bytes": 2**36 - 31}, "max_non_framed_bytes must be between 0 and"),
    ],
)
def test_limits_outside_what_the_format_can_hold_are_refused(fields, said):
    with pytest.raises(ConfigError, match=f"^{said}"):
        Limits(**fields)


def test_limits_at_the_edges_of_the_format_are_accepted():
    low = Limits(max_encrypted_data_keys=1, max_frame_length=1, max_non_framed_bytes=0)
    high = Limits(
        max_encrypted_data_keys=65535, max_frame_length=2**31 - 1, max_non_framed_bytes=2**36 - 32
    )
    assert (low.max_encrypted_data_keys, high.max_encrypted_data_keys) == (1, 65535)
    assert (low.max_frame_length, high.max_frame_length) == (1, 2**31 - 1)
    assert (low.max_non_framed_bytes, high.max_non_framed_bytes) == (0, 2**36 - 32)


def _hand_written(suite_id: int, context: dict[str, str] | None = None, signed: bool = False):
    import os

    from aureus_core.context import EncryptionContext
    from aureus_core.datakey import EncryptedDataKey
    from aureus_core.envelope.message import EncryptionMaterials, MessageWriter
    from aureus_core.envelope.suites import SUITES

    data_key = os.urandom(32)
    materials = EncryptionMaterials(
        suite=SUITES[suite_id],
        data_key=data_key,
        encrypted_data_keys=(
            EncryptedDataKey(provider_id="p", provider_info=b"", ciphertext=b"c"),
        ),
        context=EncryptionContext._unchecked_reserved(context or {}),
    )
    writer = MessageWriter(materials, 16, allow_non_committing=True)
    return writer.start() + writer.frame(b"legacy", final=True) + writer.finish(), data_key


def test_a_non_committing_message_is_refused_by_the_default_policy_with_the_way_out():
    from aureus_core.envelope.suites import CommitmentPolicy

    data, data_key = _hand_written(0x0178)
    with pytest.raises(
        DecryptionError,
        match=r"^the message uses a non-committing algorithm suite, which the commitment policy "
        r"refuses; opt in with commitment_policy='require-encrypt-allow-decrypt' only for "
        r"messages written by older SDKs$",
    ):
        MessageReader(data)
    reader = MessageReader(data, policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT)
    assert reader.header.suite_data == b""  # no commitment is stored or checked
    reader.unlock(data_key)
    assert reader.read_all() == b"legacy"


def test_an_unsigned_suite_with_a_signature_key_in_its_header_is_refused_before_any_unwrap():
    """A co-recipient who strips the signature leaves the public key behind: refused at once."""
    data, _ = _hand_written(0x0478, {"aws-crypto-public-key": "AkJUgD50dFww"})
    with pytest.raises(
        DecryptionError,
        match=r"^the message could not be decrypted and authenticated \(its algorithm suite and "
        r"the signature key in its header disagree\)$",
    ):
        MessageReader(data)


def test_nothing_is_read_before_the_data_key_unlocks_the_header(stack):
    data = stack.encrypt(b"payload", frame_length=FRAME_LENGTH)
    reader = MessageReader(data)
    assert dict(reader.required_context) == {}
    with pytest.raises(DecryptionError):
        reader.read_all()
    with pytest.raises(DecryptionError):
        next(iter(reader.frames()))


def test_a_header_without_encrypted_data_keys_says_only_that_it_fails():
    from aureus_core.envelope.header import parse_header
    from aureus_core.envelope.reader import Reader

    # No context, 0 keys, and then a well-formed rest: framed, 4 096-byte frames, commitment.
    rest = b"\x02" + (4096).to_bytes(4, "big") + bytes(SUITE_DATA)
    data = b"\x02\x04\x78" + bytes(32) + b"\x00\x00" + b"\x00\x00" + rest
    with pytest.raises(
        DecryptionError, match=r"^the message could not be decrypted and authenticated$"
    ):
        parse_header(Reader(data + bytes(64)), Limits())
    # The same header with one key parses: only the count was wrong.
    one_key = b"\x00\x01" + b"\x00\x01p" + b"\x00\x00" + b"\x00\x01c"
    header, _ = parse_header(
        Reader(b"\x02\x04\x78" + bytes(32) + b"\x00\x00" + one_key + rest), Limits()
    )
    assert len(header.encrypted_data_keys) == 1


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"", "not an encrypted message: the input is empty"),
        (
            b"\x01\x81\x00\x78" + bytes(20),  # format 1 with a message type that is not 0x80
            "not an encrypted message: it is binary data whose first byte is 01; an Encryption "
            "SDK message starts with 01 80 or 02 04/02 05",
        ),
    ],
)
def test_what_is_not_a_message_is_named_as_such(data, said):
    from aureus_core.errors import NotAMessage

    with pytest.raises(NotAMessage) as caught:
        MessageReader(data)
    assert str(caught.value) == said


def test_a_message_whose_commitment_names_another_data_key_opens_under_neither():
    """Key commitment: the header stores data key K1's commitment, but its authentication tag
    and frames are made under K2 (a hostile writer holding both).  The commitment check is
    what refuses K2; without it the message would open under K2 while committing to K1."""
    import os

    import attrs
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from aureus_core.context import EncryptionContext
    from aureus_core.datakey import EncryptedDataKey
    from aureus_core.envelope.keys import derive_keys, header_auth_tag
    from aureus_core.envelope.message import EncryptionMaterials, MessageWriter
    from aureus_core.envelope.suites import DEFAULT_SUITE

    k1, k2 = os.urandom(32), os.urandom(32)
    materials = EncryptionMaterials(
        suite=DEFAULT_SUITE,
        data_key=k2,
        encrypted_data_keys=(
            EncryptedDataKey(provider_id="p", provider_info=b"", ciphertext=b"c"),
        ),
        context=EncryptionContext({"a": "1"}),
    )
    writer = MessageWriter(materials, 16)
    honest = writer.start()
    frame = writer.frame(b"two faces", final=True)
    message_id = writer.header.message_id
    encryption_key, _ = derive_keys(DEFAULT_SUITE, k2, message_id)
    _, commitment_k1 = derive_keys(DEFAULT_SUITE, k1, message_id)
    forged = attrs.evolve(writer.header, suite_data=commitment_k1).serialize()
    data = forged + header_auth_tag(AESGCM(encryption_key), DEFAULT_SUITE, forged) + frame
    # Control: the same construction with K2's own commitment is a valid message.
    reader = MessageReader(honest + frame)
    reader.unlock(k2)
    assert reader.read_all() == b"two faces"
    for key in (k1, k2):
        reader = MessageReader(data)
        with pytest.raises(DecryptionError):
            reader.unlock(key)


def test_a_format_1_header_with_a_nonzero_reserved_field_or_another_iv_length_is_refused():
    """Format 1 headers carry four reserved zero bytes and the IV length; anything else is
    refused when the header is read, before any key is asked to unwrap."""
    from aureus_core.envelope.suites import CommitmentPolicy

    data, _ = _hand_written(0x0178)
    allow = CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT
    reader = MessageReader(data, policy=allow)
    body = len(reader.header.serialize())
    # ... content type (1), reserved (4), IV length (1), frame length (4): the body's end.
    reserved = body - 4 - 1 - 4
    assert data[reserved : reserved + 5] == b"\x00\x00\x00\x00\x0c"
    for offset, value in ((reserved, 1), (reserved + 3, 0x80), (reserved + 4, 16)):
        changed = bytearray(data)
        changed[offset] = value
        with pytest.raises(DecryptionError):
            MessageReader(bytes(changed), policy=allow)


def test_a_final_frame_longer_than_the_frame_length_is_refused():
    """A hostile writer holding the data key seals a 20-byte final frame in a message of
    16-byte frames: its tag is valid, and the frame is still refused, streaming or not."""
    import os

    from aureus_core.context import EncryptionContext
    from aureus_core.datakey import EncryptedDataKey
    from aureus_core.envelope.message import EncryptionMaterials
    from aureus_core.envelope.suites import DEFAULT_SUITE

    data_key = os.urandom(32)
    materials = EncryptionMaterials(
        suite=DEFAULT_SUITE,
        data_key=data_key,
        encrypted_data_keys=(
            EncryptedDataKey(provider_id="p", provider_info=b"", ciphertext=b"c"),
        ),
        context=EncryptionContext(),
    )

    def final_frame(writer: MessageWriter, plaintext: bytes) -> bytes:
        # Sealed by hand: Aureus's writer refuses a final frame over the frame length.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        from aureus_core.envelope.frames import FINAL_FRAME_MARKER, frame_aad, frame_iv
        from aureus_core.envelope.keys import derive_keys

        message_id = writer.header.message_id
        key, _ = derive_keys(DEFAULT_SUITE, data_key, message_id)
        iv = frame_iv(1)
        sealed = AESGCM(key).encrypt(
            iv, plaintext, frame_aad(message_id, 1, len(plaintext), final=True)
        )
        return (
            FINAL_FRAME_MARKER.to_bytes(4, "big")
            + (1).to_bytes(4, "big")
            + iv
            + len(plaintext).to_bytes(4, "big")
            + sealed
        )

    for size, reads in ((16, True), (20, False)):
        writer = MessageWriter(materials, 16)
        start = writer.start()
        body = final_frame(writer, b"q" * size)
        if size == 16:
            assert body == writer.frame(b"q" * size, final=True)  # the same bytes as Aureus's
        data = start + body + writer.finish()
        for stream in (False, True):
            reader = MessageReader(io.BytesIO(data) if stream else data)
            reader.unlock(data_key)
            if reads:
                assert b"".join(reader.frames()) == b"q" * size
            else:
                with pytest.raises(DecryptionError):
                    b"".join(reader.frames()) if stream else reader.read_all()
                if not stream:
                    again = MessageReader(data)
                    again.unlock(data_key)
                    with pytest.raises(DecryptionError):
                        list(again.frames())


def test_read_all_is_for_in_memory_messages_only():
    """A reader over a stream yields frames; asked for everything at once, it refuses."""
    data, data_key = _hand_written(0x0478)
    reader = MessageReader(io.BytesIO(data))
    reader.unlock(data_key)
    with pytest.raises(DecryptionError):
        reader.read_all()
    streamed = MessageReader(io.BytesIO(data))
    streamed.unlock(data_key)
    assert b"".join(streamed.frames()) == b"legacy"
