"""The message header: parsing with hostile-input limits, serialization, authentication."""

from __future__ import annotations

import codecs
import struct

import attrs

from ..context import EncryptionContext
from ..datakey import EncryptedDataKey
from ..errors import ConfigError, DecryptionError, NotAMessage
from .reader import Reader
from .suites import SUITES, AlgorithmSuite

NON_FRAMED_CONTENT = 0x01
FRAMED_CONTENT = 0x02
CONTENT_TYPE_NAMES = {NON_FRAMED_CONTENT: "non-framed", FRAMED_CONTENT: "framed"}
V1_MESSAGE_TYPE = 0x80
MAX_FRAME_LENGTH_FORMAT = 2**31 - 1
"""The largest frame length the message format allows."""
MAX_NON_FRAMED_FORMAT = 2**36 - 32
"""The largest non-framed body: what one AES-GCM message may encrypt."""
DEFAULT_MAX_NON_FRAMED = 64 * 1024 * 1024


@attrs.frozen(kw_only=True)
class Limits:
    """Bounds applied to every message read (and frame lengths written).

    ``max_encrypted_data_keys`` bounds the provider calls a hostile header can
    cause; ``max_frame_length`` bounds the memory one frame may take;
    ``max_non_framed_bytes`` bounds the plaintext of a non-framed body, which
    is one AES-GCM message and so must be held whole until its tag verifies.
    """

    max_encrypted_data_keys: int = 16
    max_frame_length: int = 16 * 1024 * 1024
    max_non_framed_bytes: int = DEFAULT_MAX_NON_FRAMED

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.max_encrypted_data_keys <= 0xFFFF:
            raise ConfigError("max_encrypted_data_keys must be between 1 and 65535")
        if not 1 <= self.max_frame_length <= MAX_FRAME_LENGTH_FORMAT:
            raise ConfigError(f"max_frame_length must be between 1 and {MAX_FRAME_LENGTH_FORMAT}")
        if not 0 <= self.max_non_framed_bytes <= MAX_NON_FRAMED_FORMAT:
            raise ConfigError(f"max_non_framed_bytes must be between 0 and {MAX_NON_FRAMED_FORMAT}")

    def check_recipients(self, count: int) -> None:
        """Refuse to write a message with more encrypted data keys than a reader accepts.

        Called before any provider is asked to wrap: a message this stack could
        not decrypt is never written.
        """
        if count > self.max_encrypted_data_keys:
            raise ConfigError(
                f"{count} wrapping keys, but messages may carry at most "
                f"{self.max_encrypted_data_keys} encrypted data keys: use fewer keys, or raise "
                "[stack] max_encrypted_data_keys (on every stack that must read the messages)"
            )


_U16 = struct.Struct(">H")
_ID_AND_CONTEXT_LENGTH = struct.Struct(">32sH")
_CONTENT_V2 = struct.Struct(">BI")
_CONTENT_V1 = struct.Struct(">BIBI")
_V2_START = struct.Struct(">BH32sH")
_V1_START = struct.Struct(">BBH16sH")


@attrs.frozen(kw_only=True)
class Header:
    """A parsed (or to-be-written) message header."""

    suite: AlgorithmSuite
    message_id: bytes
    context: EncryptionContext
    """The full stored context, including reserved ``aws-crypto-`` keys."""
    encrypted_data_keys: tuple[EncryptedDataKey, ...]
    frame_length: int
    """The frame length; 0 for non-framed content."""
    suite_data: bytes = b""
    """The commitment value for committing suites."""
    content_type: int = FRAMED_CONTENT
    """:data:`FRAMED_CONTENT` or :data:`NON_FRAMED_CONTENT`."""

    @property
    def framed(self) -> bool:
        """Whether the body is a sequence of frames (else one AES-GCM message)."""
        return self.content_type == FRAMED_CONTENT

    def serialize(self) -> bytes:
        """The header body (everything the header authentication tag covers)."""
        context = self.context.serialize()
        suite = self.suite
        if suite.message_version == 2:
            parts = [_V2_START.pack(2, suite.suite_id, self.message_id, len(context)), context]
        else:
            parts = [
                _V1_START.pack(1, V1_MESSAGE_TYPE, suite.suite_id, self.message_id, len(context)),
                context,
            ]
        parts.append(_U16.pack(len(self.encrypted_data_keys)))
        for edk in self.encrypted_data_keys:
            provider_id = edk.provider_id.encode("utf-8")
            info, ciphertext = edk.provider_info, edk.ciphertext
            if max(len(provider_id), len(info), len(ciphertext)) > 0xFFFF:
                raise ConfigError("an encrypted data key field is longer than 65 535 bytes")
            parts += (
                _U16.pack(len(provider_id)),
                provider_id,
                _U16.pack(len(info)),
                info,
                _U16.pack(len(ciphertext)),
                ciphertext,
            )
        if suite.message_version == 2:
            parts.append(_CONTENT_V2.pack(self.content_type, self.frame_length))
            parts.append(self.suite_data)
        else:
            parts.append(_CONTENT_V1.pack(self.content_type, 0, suite.iv_length, self.frame_length))
        return b"".join(parts)


_PEEK = 16


def describe_start(data: bytes) -> str:
    """Say what kind of data a non-message starts with, without repeating its content.

    The input may be a plaintext or a key file given by mistake, and this text
    reaches logs, spans and audit events: it names a kind (and for binary
    data its first byte), never the bytes themselves.
    """
    if not data:
        return "the input is empty"
    head = data[:_PEEK]
    try:
        # A character the 16-byte cut splits is left out; a whole input that ends inside one
        # (shorter than the cut) is not text.
        text = _utf8_decoder().decode(head, final=len(head) < _PEEK)
    except UnicodeDecodeError:
        text = ""
    if text and all(ch.isprintable() or ch in "\t\r\n" for ch in text):
        shown = text.lstrip()
        if shown[:4] in ("AgR4", "AgV4") or shown[:2] == "AY":
            return "it starts like base64 text, perhaps an encoded message (decode it first)"
        if shown.startswith("{"):
            return "it starts like JSON (a seed-system envelope is read by migrate)"
        if shown.startswith("-----BEGIN"):
            return "it starts like PEM text"
        return "it starts with text"
    if head.startswith(b"\x1f\x8b"):
        return "it starts with the gzip signature (1f 8b)"
    return (
        f"it is binary data whose first byte is {head[0]:02x}; an Encryption SDK message "
        "starts with 01 80 or 02 04/02 05"
    )


_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def _not_a_message(reader: Reader, seen: bytes) -> NotAMessage:
    start = seen + reader.read_up_to(max(0, _PEEK - len(seen)))
    return NotAMessage(f"not an encrypted message: {describe_start(start)}")


def parse_header(reader: Reader, limits: Limits) -> tuple[Header, bytes]:
    """Read a header body; return it with its raw bytes.

    Every malformed, unsupported or over-limit input raises
    :class:`DecryptionError`; the limits are checked before anything is
    allocated from a length field.
    """
    start = reader.offset
    data = reader.buffer
    if data is not None and len(data) - start >= 3 and data[start] == 2:
        # A version-2 header in memory with a known suite: straight to the offset parser.
        suite = SUITES.get(_U16.unpack_from(data, start + 1)[0])
        if suite is not None and suite.message_version == 2:
            return _parse_v2_in_memory(reader, data, start, start + 3, suite, limits)
    pieces: list[bytes] = []

    def take(n: int) -> bytes:
        chunk = bytes(reader.read(n))
        pieces.append(chunk)
        return chunk

    def take_int(n: int) -> int:
        return int.from_bytes(take(n), "big")

    first = reader.read_up_to(1)
    if not first:
        raise _not_a_message(reader, b"")
    pieces.append(first)
    version = first[0]
    if version == 2:
        suite_id = take_int(2)
    elif version == 1:
        if take_int(1) != V1_MESSAGE_TYPE:
            raise _not_a_message(reader, b"".join(pieces))
        suite_id = take_int(2)
    else:
        raise _not_a_message(reader, first)
    suite = SUITES.get(suite_id)
    if suite is None or suite.message_version != version:
        raise _not_a_message(reader, b"".join(pieces))
    # (a version-2 header in memory went to the offset parser above)
    if version == 2:  # the fixed-size fields in one read
        message_id, context_length = _ID_AND_CONTEXT_LENGTH.unpack(take(34))
    else:
        message_id = take(16)
        context_length = take_int(2)
    try:
        context = EncryptionContext.deserialize(take(context_length), allow_reserved=True)
    except ConfigError:
        raise DecryptionError() from None
    count = take_int(2)
    _check_count(count, limits)
    edks = []
    for _ in range(count):
        try:
            provider_id = take(take_int(2)).decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptionError() from None
        provider_info = take(take_int(2))
        ciphertext = take(take_int(2))
        edks.append(
            EncryptedDataKey(
                provider_id=provider_id, provider_info=provider_info, ciphertext=ciphertext
            )
        )
    if version == 2:
        content_type, frame_length = _CONTENT_V2.unpack(take(5))
        if content_type not in CONTENT_TYPE_NAMES:
            raise DecryptionError()
    else:
        content_type = take_int(1)
        if content_type not in CONTENT_TYPE_NAMES:
            raise DecryptionError()
        if take_int(4) != 0 or take_int(1) != suite.iv_length:
            raise DecryptionError()
        frame_length = take_int(4)
    _check_frame_length(content_type, frame_length, limits)
    suite_data = take(suite.suite_data_length) if suite.suite_data_length else b""
    raw = b"".join(pieces)
    assert len(raw) == reader.offset - start
    header = Header(
        suite=suite,
        message_id=message_id,
        context=context,
        encrypted_data_keys=tuple(edks),
        frame_length=frame_length,
        suite_data=suite_data,
        content_type=content_type,
    )
    return header, raw


def _check_count(count: int, limits: Limits) -> None:
    if count == 0 or count > limits.max_encrypted_data_keys:
        raise DecryptionError(
            "the message could not be decrypted and authenticated"
            + (
                f" (it has {count} encrypted data keys; the limit is "
                f"{limits.max_encrypted_data_keys})"
                if count
                else ""
            )
        )


def _check_frame_length(content_type: int, frame_length: int, limits: Limits) -> None:
    if content_type == NON_FRAMED_CONTENT:
        if frame_length != 0:
            raise DecryptionError()
    elif not 1 <= frame_length <= limits.max_frame_length:
        raise DecryptionError(
            "the message could not be decrypted and authenticated"
            + (
                f" (its frame length is {frame_length} bytes; the limit is "
                f"{limits.max_frame_length}: raise [stack] max_frame_length if you trust it)"
                if frame_length
                else ""
            )
        )


def _parse_v2_in_memory(
    reader: Reader, data: memoryview, start: int, pos: int, suite: AlgorithmSuite, limits: Limits
) -> tuple[Header, bytes]:
    """The rest of a version-2 header held in memory, read by offset (same checks, same order).

    The header starts at ``start`` and its suite ID ends at ``pos``; ``reader``
    is advanced past the header only once the whole header has parsed.
    """
    size = len(data)

    def field(length: int) -> bytes:
        nonlocal pos
        end = pos + length
        if end > size:
            raise DecryptionError()
        value = bytes(data[pos:end])
        pos = end
        return value

    try:
        message_id, context_length = _ID_AND_CONTEXT_LENGTH.unpack_from(data, pos)
        pos += _ID_AND_CONTEXT_LENGTH.size
        try:
            context = EncryptionContext.deserialize(field(context_length), allow_reserved=True)
        except ConfigError:
            raise DecryptionError() from None
        (count,) = _U16.unpack_from(data, pos)
        pos += 2
        _check_count(count, limits)
        edks = []
        for _ in range(count):
            (length,) = _U16.unpack_from(data, pos)
            pos += 2
            try:
                provider_id = field(length).decode("utf-8")
            except UnicodeDecodeError:
                raise DecryptionError() from None
            (length,) = _U16.unpack_from(data, pos)
            pos += 2
            provider_info = field(length)
            (length,) = _U16.unpack_from(data, pos)
            pos += 2
            edks.append(
                EncryptedDataKey(
                    provider_id=provider_id, provider_info=provider_info, ciphertext=field(length)
                )
            )
        content_type, frame_length = _CONTENT_V2.unpack_from(data, pos)
        pos += _CONTENT_V2.size
    except struct.error:  # a fixed-size field runs past the end: truncated
        raise DecryptionError() from None
    if content_type not in CONTENT_TYPE_NAMES:
        raise DecryptionError()
    _check_frame_length(content_type, frame_length, limits)
    suite_data = field(suite.suite_data_length) if suite.suite_data_length else b""
    raw = bytes(data[start:pos])
    reader.read(pos - reader.offset)
    header = Header(
        suite=suite,
        message_id=message_id,
        context=context,
        encrypted_data_keys=tuple(edks),
        frame_length=frame_length,
        suite_data=suite_data,
        content_type=content_type,
    )
    return header, raw
