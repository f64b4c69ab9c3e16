"""Writing and reading whole messages, one-shot or streamed in constant memory.

This is the hazardous layer: it takes a plaintext data key and produces or
consumes the AWS Encryption SDK message format: every algorithm suite, framed
and non-framed bodies (version-1 suites readable under the commitment policy's
opt-in).  :class:`~aureus_core.stack.KeyStack` is the safe API
on top: it obtains and wraps data keys through the providers.
"""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Collection, Iterator
from typing import BinaryIO

import attrs
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..context import EMPTY_CONTEXT, EncryptionContext
from ..datakey import EncryptedDataKey
from ..errors import ConfigError, DecryptionError, hint
from .buffers import OutputBuffer
from .frames import (
    FINAL_FRAME_MARKER,
    FINAL_FRAME_STRING,
    FRAME_AAD_TAIL,
    FRAME_IV,
    FRAME_STRING,
    MAX_FRAMES,
    SINGLE_BLOCK_SEQUENCE,
    final_frame_size,
    frame_aad,
    frame_iv,
    regular_frame_size,
    single_block_aad,
    single_block_size,
)
from .header import (
    CONTENT_TYPE_NAMES,
    FRAMED_CONTENT,
    NON_FRAMED_CONTENT,
    Header,
    Limits,
    parse_header,
)
from .keys import check_commitment, check_header_auth, derive_keys, header_auth_tag
from .reader import Reader
from .suites import SIGNED_SUITE, AlgorithmSuite, CommitmentPolicy

PUBLIC_KEY_CONTEXT_KEY = "aws-crypto-public-key"
_FINAL_FRAME_HEAD = struct.Struct(">4xI12xI")
"""A final frame's sequence number and content length (after the marker, around the IV)."""
DEFAULT_FRAME_LENGTH = 64 * 1024


def new_signing_key(
    suite: AlgorithmSuite = SIGNED_SUITE,
) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A fresh key pair on ``suite``'s curve for one signed message, with its stored public key."""
    if suite.signature_curve is None:
        raise ConfigError(f"suite 0x{suite.suite_id:04X} is not a signed suite")
    private = ec.generate_private_key(suite.signature_curve())
    return private, public_key_text(private)


def public_key_text(private: ec.EllipticCurvePrivateKey) -> str:
    """The public key as the message stores it: the compressed point, base64."""
    point = private.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    return base64.b64encode(point).decode("ascii")


def signed_context(
    context: EncryptionContext, signing_key: ec.EllipticCurvePrivateKey | None
) -> EncryptionContext:
    """The context to store: the caller's, plus the public key for signed messages."""
    if signing_key is None:
        return context
    return EncryptionContext._unchecked_reserved(
        {**context, PUBLIC_KEY_CONTEXT_KEY: public_key_text(signing_key)}
    )


def split_required(
    context: EncryptionContext, required: Collection[str]
) -> tuple[EncryptionContext, EncryptionContext]:
    """Split a full context into ``(stored, required)`` by the required keys.

    Required pairs (the AWS Encryption SDK's required encryption context) are
    authenticated but not stored: the header leaves them out, its
    authentication tag covers them, and data keys are wrapped with the full
    context.  Every required key must be in ``context``.
    """
    if isinstance(required, str):
        raise ConfigError("required_context takes a list of context keys, e.g. ['tenant']")
    if not required:
        return context, EMPTY_CONTEXT
    wanted = set(required)
    for key in sorted(wanted):
        if not isinstance(key, str) or key not in context:
            raise ConfigError(
                f"required context key {key!r} is not in the encryption context: "
                f"give its value in {hint('context=', '--context KEY=VALUE')} as well"
            )
    stored = {k: v for k, v in context.items() if k not in wanted}
    pairs = {k: v for k, v in context.items() if k in wanted}
    return EncryptionContext._unchecked_reserved(stored), EncryptionContext(pairs)


def merge_supplied(
    stored: EncryptionContext, supplied: EncryptionContext
) -> tuple[EncryptionContext, EncryptionContext]:
    """The context to decrypt with: ``(full context, required pairs)``.

    Supplied pairs whose key the header stores must match it; the others are
    taken as the writer's required encryption context (as the SDK's reproduced
    context): they join the context the data key is unwrapped with, and the
    header authentication covers them, so a wrong or extra pair fails to
    authenticate.
    """
    if not supplied:
        return stored, EMPTY_CONTEXT
    if any(key in stored and stored[key] != value for key, value in supplied.items()):
        raise DecryptionError(
            "the message's encryption context does not match the context you required"
        )
    required = {k: v for k, v in supplied.items() if k not in stored}
    if not required:
        return stored, EMPTY_CONTEXT
    full = EncryptionContext._unchecked_reserved({**stored, **required})
    return full, EncryptionContext(required)


@attrs.frozen(kw_only=True)
class EncryptionMaterials:
    """Everything needed to write one message."""

    suite: AlgorithmSuite
    data_key: bytes | bytearray = attrs.field(repr=False)
    encrypted_data_keys: tuple[EncryptedDataKey, ...]
    context: EncryptionContext
    """The full context to store, including ``aws-crypto-public-key`` for signed suites."""
    signing_key: ec.EllipticCurvePrivateKey | None = attrs.field(default=None, repr=False)
    required_context: EncryptionContext = EMPTY_CONTEXT
    """Pairs authenticated but not stored (required encryption context): the header
    authentication tag covers them, and the data key was wrapped with them."""


def check_frame_length(frame_length: int, limits: Limits) -> int:
    """Validate a frame length for writing."""
    if not isinstance(frame_length, int) or not 1 <= frame_length <= limits.max_frame_length:
        raise ConfigError(
            f"frame length must be between 1 and {limits.max_frame_length} bytes, "
            f"not {frame_length!r}"
        )
    return frame_length


class MessageWriter:
    """Produces one message piece by piece: header, frames (or the single block), footer.

    Only committing suites are written unless ``allow_non_committing`` is set:
    that switch exists for interoperability tests of the reading side, and the
    stack never sets it.  ``content_type`` :data:`NON_FRAMED_CONTENT` writes one
    single-block body (``frame_length`` must then be 0) with
    :func:`encrypt_bytes` only.
    """

    def __init__(
        self,
        materials: EncryptionMaterials,
        frame_length: int,
        *,
        content_type: int = FRAMED_CONTENT,
        allow_non_committing: bool = False,
    ) -> None:
        suite = materials.suite
        if not suite.committing and not allow_non_committing:
            raise ConfigError("Aureus writes only committing (format version 2) suites")
        if suite.signed != (materials.signing_key is not None):
            raise ConfigError("a signed suite needs a signing key, and only a signed suite")
        if content_type not in CONTENT_TYPE_NAMES:
            raise ConfigError(f"unknown content type {content_type!r}")
        if (content_type == NON_FRAMED_CONTENT) != (frame_length == 0):
            raise ConfigError(
                "a framed message needs a frame length of 1 or more; frame length 0 is "
                "for non-framed content only (content_type=NON_FRAMED_CONTENT)"
            )
        self._suite = suite
        self._frame_length = frame_length
        # Always fresh: a second header or body under one (data key, message ID)
        # would reuse the derived key with the header's fixed IV and the frame IVs.
        self._message_id = os.urandom(32 if suite.message_version == 2 else 16)
        encryption_key, commitment = derive_keys(suite, materials.data_key, self._message_id)
        self._aead = AESGCM(encryption_key)
        self._signing_key = materials.signing_key
        self._hash = hashes.Hash(suite.signature_hash()) if suite.signature_hash else None
        self._required_context = materials.required_context
        self.header = Header(
            suite=suite,
            message_id=self._message_id,
            context=materials.context,
            encrypted_data_keys=materials.encrypted_data_keys,
            frame_length=frame_length,
            suite_data=commitment,
            content_type=content_type,
        )
        self._sequence = 0

    def _signed(self, data: bytes | bytearray | memoryview) -> None:
        if self._hash is not None:
            self._hash.update(data)

    def start(self) -> bytes:
        """The serialized header and its authentication (the IV of zeros too, in version 1).

        The tag also covers the required context, which is not stored.
        """
        body = self.header.serialize()
        aad = body + self._required_context.serialize()
        iv = bytes(self._suite.iv_length) if self._suite.message_version == 1 else b""
        out = body + iv + header_auth_tag(self._aead, self._suite, aad)
        self._signed(out)
        return out

    def single_block_into(self, plaintext: memoryview, out: memoryview) -> int:
        """Encrypt a whole non-framed body into ``out``; return the bytes written."""
        if self.header.framed or self._sequence:
            raise ConfigError("a single block is the whole body of a non-framed message")
        self._sequence = SINGLE_BLOCK_SEQUENCE
        length = len(plaintext)
        iv = frame_iv(SINGLE_BLOCK_SEQUENCE)
        prefix = iv + length.to_bytes(8, "big")
        end = len(prefix) + length + self._suite.tag_length
        out[: len(prefix)] = prefix
        aad = single_block_aad(self._message_id, length)
        self._aead.encrypt_into(iv, plaintext, aad, out[len(prefix) : end])
        self._signed(out[:end])
        return end

    def _next_sequence(self, *, final: bool) -> int:
        sequence = self._sequence + 1
        # A regular frame is always followed by the final one: it needs room for it.
        if sequence > (MAX_FRAMES if final else MAX_FRAMES - 1):
            raise ConfigError("message too large for its frame length: use a larger frame length")
        self._sequence = sequence
        return sequence

    def frame_into(self, plaintext: memoryview, out: memoryview, *, final: bool) -> int:
        """Encrypt one frame into ``out``; return the bytes written."""
        if not self.header.framed:
            raise ConfigError("a non-framed message has no frames")
        length = len(plaintext)
        if not final and length != self._frame_length:
            raise ConfigError("a regular frame must be exactly one frame length long")
        if final and length > self._frame_length:
            # No reader accepts it: refuse here rather than write a message none can read.
            raise ConfigError("a final frame must be at most one frame length long")
        sequence = self._next_sequence(final=final)
        iv = frame_iv(sequence)
        aad = frame_aad(self._message_id, sequence, length, final=final)
        if final:
            prefix = (
                FINAL_FRAME_MARKER.to_bytes(4, "big")
                + sequence.to_bytes(4, "big")
                + iv
                + length.to_bytes(4, "big")
            )
        else:
            prefix = sequence.to_bytes(4, "big") + iv
        end = len(prefix) + length + self._suite.tag_length
        out[: len(prefix)] = prefix
        self._aead.encrypt_into(iv, plaintext, aad, out[len(prefix) : end])
        self._signed(out[:end])
        return end

    def regular_frames_into(self, data: memoryview, count: int, out: memoryview) -> int:
        """Encrypt the first ``count`` regular frames of ``data`` into ``out``; return its length.

        The same frames as ``count`` calls of :meth:`frame_into`, in one loop.
        """
        if not self.header.framed:
            raise ConfigError("a non-framed message has no frames")
        # The final frame still follows the batch, so it must fit too.
        if self._sequence + count >= MAX_FRAMES:
            raise ConfigError("message too large for its frame length: use a larger frame length")
        length = self._frame_length
        encrypt_into = self._aead.encrypt_into
        signed = self._signed if self._hash is not None else None
        aad_head = self._message_id + FRAME_STRING
        pack_iv, pack_tail = FRAME_IV.pack, FRAME_AAD_TAIL.pack
        tag = self._suite.tag_length
        position = 0
        sequence = self._sequence
        for index in range(count):
            sequence += 1
            iv = pack_iv(sequence)
            start = position
            out[position : position + 4] = sequence.to_bytes(4, "big")
            out[position + 4 : position + 16] = iv
            position += 16
            end = position + length + tag
            encrypt_into(
                iv,
                data[index * length : (index + 1) * length],
                aad_head + pack_tail(sequence, length),
                out[position:end],
            )
            position = end
            if signed is not None:
                signed(out[start:end])
        self._sequence = sequence
        return position

    def frame(self, plaintext: bytes | bytearray | memoryview, *, final: bool) -> bytes:
        """Encrypt one frame and return its bytes."""
        view = memoryview(plaintext).cast("B")
        size = final_frame_size(len(view)) if final else regular_frame_size(len(view))
        out = bytearray(size)
        written = self.frame_into(view, memoryview(out), final=final)
        assert written == size
        return bytes(out)

    def finish(self) -> bytes:
        """The footer: the signature for signed suites, nothing otherwise."""
        if self._hash is None or self._signing_key is None:
            return b""
        digest = self._hash.finalize()
        assert self._suite.signature_hash is not None
        signature = self._signing_key.sign(
            digest, ec.ECDSA(Prehashed(self._suite.signature_hash()))
        )
        return len(signature).to_bytes(2, "big") + signature


def encrypt_bytes(plaintext: bytes | bytearray | memoryview, writer: MessageWriter) -> bytes:
    """Write a whole message for an in-memory plaintext, frames encrypted in place."""
    data = memoryview(plaintext).cast("B")
    frame_length = writer.header.frame_length
    head = writer.start()
    if writer.header.framed:
        regular = max(0, (len(data) - 1) // frame_length)
        last = len(data) - regular * frame_length
        body = regular * regular_frame_size(frame_length) + final_frame_size(last)
    else:
        regular = 0
        body = single_block_size(len(data))
    signed = writer.header.suite.signed
    # The signature's DER length is only known at the end: signed messages take
    # a scratch buffer and one copy (the signature dominates their cost anyway).
    scratch = bytearray(len(head) + body) if signed else None
    out = None if scratch is not None else OutputBuffer(len(head) + body)
    view = memoryview(scratch) if scratch is not None else out.view  # type: ignore[union-attr]
    view[: len(head)] = head
    position = len(head)
    if not writer.header.framed:
        position += writer.single_block_into(data, view[position:])
    if regular:
        position += writer.regular_frames_into(data, regular, view[position:])
    if writer.header.framed:
        position += writer.frame_into(data[regular * frame_length :], view[position:], final=True)
    if out is not None:
        return out.finish()
    view.release()
    assert scratch is not None
    return bytes(scratch) + writer.finish()


def encrypt_stream(
    src: BinaryIO, dst: BinaryIO, writer: MessageWriter, *, max_bytes: int | None = None
) -> int:
    """Write a whole message, reading ``src`` one frame at a time; return plaintext bytes.

    With ``max_bytes`` (the size a data-key cache was charged for this message), a
    source that turns out longer is refused before any frame holding the excess is
    written, and the message is left without its final frame, which no reader accepts.
    """
    if not writer.header.framed:
        raise ConfigError("a non-framed message cannot be streamed: use encrypt_bytes")
    frame_length = writer.header.frame_length
    dst.write(writer.start())
    buffers = [bytearray(frame_length), bytearray(frame_length)]
    out = bytearray(final_frame_size(frame_length))
    current = _fill(src, buffers[0])
    total = current
    while True:
        if max_bytes is not None and total > max_bytes:
            raise ConfigError(
                f"the input grew while it was encrypted: it had {max_bytes} bytes when the "
                "data-key cache counted it, and a cached data key may not encrypt more than "
                "it was charged for; the message was left unfinished (no reader accepts it). "
                "Encrypt the input again once it no longer grows, or a copy of it"
            )
        following = _fill(src, buffers[1]) if current == frame_length else 0
        final = following == 0
        written = writer.frame_into(memoryview(buffers[0])[:current], memoryview(out), final=final)
        dst.write(memoryview(out)[:written])
        if final:
            break
        buffers.reverse()
        current = following
        total += current
    dst.write(writer.finish())
    return total


def _fill(src: BinaryIO, buffer: bytearray) -> int:
    view = memoryview(buffer)
    filled = 0
    while filled < len(buffer):
        got = src.readinto(view[filled:])  # type: ignore[attr-defined]
        if not got:
            break
        filled += got
    return filled


class MessageReader:
    """Reads one message: header first, then (given the data key) the frames."""

    def __init__(
        self,
        source: bytes | bytearray | memoryview | BinaryIO,
        *,
        limits: Limits | None = None,
        policy: CommitmentPolicy = CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
    ) -> None:
        self._reader = Reader(source)
        self._limits = limits or Limits()
        self._policy = policy
        self.header, self._raw_header = parse_header(self._reader, self._limits)
        if not policy.allows_decrypt(self.header.suite):
            raise DecryptionError(
                "the message uses a non-committing algorithm suite, which the commitment "
                "policy refuses; opt in with commitment_policy='require-encrypt-allow-decrypt' "
                "only for messages written by older SDKs"
            )
        suite = self.header.suite
        # The suite alone says whether a footer signature is due.  A signed suite
        # without its public key, or an unsigned one carrying a public key (a
        # co-recipient stripping the signature from a signed message and writing
        # new content under the same data key), is refused before any key is used.
        if suite.signed != (PUBLIC_KEY_CONTEXT_KEY in self.header.context):
            raise DecryptionError(
                "the message could not be decrypted and authenticated (its algorithm suite "
                "and the signature key in its header disagree)"
            )
        iv_length = suite.iv_length if suite.message_version == 1 else 0
        self._auth_iv = bytes(self._reader.read(iv_length)) if iv_length else bytes(suite.iv_length)
        self._auth_tag = bytes(self._reader.read(suite.tag_length))
        self._aead: AESGCM | None = None
        self.required_context = EMPTY_CONTEXT
        """The pairs not stored in the header that authenticated it (after :meth:`unlock`)."""
        self._hash = hashes.Hash(suite.signature_hash()) if suite.signature_hash else None
        if self._hash is not None:
            self._hash.update(self._raw_header)
            if suite.message_version == 1:
                self._hash.update(self._auth_iv)
            self._hash.update(self._auth_tag)

    @property
    def stored_context(self) -> EncryptionContext:
        """The context stored in the header, including reserved keys."""
        return self.header.context

    def unlock(
        self, data_key: bytes | bytearray, required_context: EncryptionContext | None = None
    ) -> None:
        """Check the commitment and header authentication with the data key.

        ``required_context`` holds the pairs the caller supplies that the
        header does not store: the writer's required encryption context, which
        the header authentication tag covers after the header body.
        """
        suite = self.header.suite
        encryption_key, commitment = derive_keys(suite, data_key, self.header.message_id)
        if suite.committing:
            check_commitment(commitment, self.header.suite_data)
        aead = AESGCM(encryption_key)
        extra = required_context.serialize() if required_context else b""
        check_header_auth(aead, self._auth_iv, self._auth_tag, self._raw_header + extra)
        self._aead = aead
        self.required_context = required_context or EMPTY_CONTEXT

    def _read_single_block(self) -> tuple[memoryview, memoryview]:
        """Return ``(iv, ciphertext-with-tag)`` of a non-framed body, its length bounded first."""
        reader = self._reader
        suite = self.header.suite
        iv = reader.read(suite.iv_length)
        self._signed(iv)
        raw = reader.read(8)
        self._signed(raw)
        length = int.from_bytes(raw, "big")
        if length > self._limits.max_non_framed_bytes:
            raise DecryptionError(
                f"the message has a non-framed body of {length} bytes, over the limit of "
                f"{self._limits.max_non_framed_bytes} that may be held in memory until it "
                "authenticates; raise [stack] max_non_framed_bytes if you trust the sender"
            )
        sealed = reader.read(length + suite.tag_length)
        self._signed(sealed)
        return iv, sealed

    def _open_single_block(
        self, iv: memoryview, sealed: memoryview, out: memoryview | None = None
    ) -> memoryview:
        assert self._aead is not None
        length = len(sealed) - self.header.suite.tag_length
        aad = single_block_aad(self.header.message_id, length)
        try:
            if out is not None:
                self._aead.decrypt_into(iv, sealed, aad, out[:length])
                return out[:length]
            return memoryview(self._aead.decrypt(iv, sealed, aad))
        except InvalidTag:
            raise DecryptionError() from None

    def _signed(self, data: bytes | bytearray | memoryview) -> None:
        if self._hash is not None:
            self._hash.update(data)

    def _read_frame(
        self, sequence: int, into: bytearray | None = None
    ) -> tuple[memoryview, memoryview, bool]:
        """Return ``(iv, ciphertext-with-tag, final)`` for the next frame, checking its place.

        From a stream, the ciphertext is read into ``into`` when given.
        """
        reader = self._reader
        head = reader.read(4)
        self._signed(head)
        number = int.from_bytes(head, "big")
        final = number == FINAL_FRAME_MARKER
        if final:
            raw = reader.read(4)
            self._signed(raw)
            number = int.from_bytes(raw, "big")
        if number != sequence:
            raise DecryptionError()
        iv = reader.read(self.header.suite.iv_length)
        self._signed(iv)
        if final:
            raw = reader.read(4)
            self._signed(raw)
            length = int.from_bytes(raw, "big")
            if length > self.header.frame_length:
                raise DecryptionError()
        else:
            length = self.header.frame_length
        sealed = reader.read(length + self.header.suite.tag_length, into)
        self._signed(sealed)
        return iv, sealed, final

    def _open(
        self,
        iv: memoryview,
        sealed: memoryview,
        sequence: int,
        final: bool,
        out: memoryview | None = None,
    ) -> memoryview:
        assert self._aead is not None
        length = len(sealed) - self.header.suite.tag_length
        aad = frame_aad(self.header.message_id, sequence, length, final=final)
        try:
            if out is not None:
                if len(out) < length:
                    raise DecryptionError()
                self._aead.decrypt_into(iv, sealed, aad, out[:length])
                return out[:length]
            return memoryview(self._aead.decrypt(iv, sealed, aad))
        except InvalidTag:
            raise DecryptionError() from None

    def _finish(self) -> None:
        if self._hash is not None:
            length = self._reader.read_int(2)
            signature = bytes(self._reader.read(length))
            key = self.header.context.get(PUBLIC_KEY_CONTEXT_KEY)
            if key is None:
                raise DecryptionError()
            suite = self.header.suite
            assert suite.signature_hash is not None
            assert suite.signature_curve is not None
            try:
                point = base64.b64decode(key, validate=True)
                public = ec.EllipticCurvePublicKey.from_encoded_point(
                    suite.signature_curve(), point
                )
                public.verify(
                    signature, self._hash.finalize(), ec.ECDSA(Prehashed(suite.signature_hash()))
                )
            except (InvalidSignature, ValueError):
                raise DecryptionError() from None
        if not self._reader.at_end():
            raise DecryptionError()

    def frames(self, *, reuse: bool = False) -> Iterator[memoryview]:
        """Yield authenticated plaintext, frame by frame.

        With a signed suite the final frame is held back until the footer's
        signature verifies.  Consume the iterator to the end: only then is the
        whole message authenticated.  With ``reuse``, every frame is read and
        decrypted into the same two buffers: each chunk is valid only until
        the next is requested (as with a file's ``write``, use it, don't keep it).
        """
        if self._aead is None:
            raise DecryptionError()
        if not self.header.framed:
            # One AES-GCM message: nothing is released before its tag (and the
            # signature) verify, so the whole body is held, within the limit.
            block = self._open_single_block(*self._read_single_block())
            self._finish()
            yield block
            return
        sequence = 0
        sealed_buffer = plain_view = None
        if reuse:
            length = self.header.frame_length
            sealed_buffer = bytearray(length + self.header.suite.tag_length)
            plain_view = memoryview(bytearray(length))
        while True:
            sequence += 1
            if sequence > MAX_FRAMES:
                raise DecryptionError()
            iv, sealed, final = self._read_frame(sequence, sealed_buffer)
            plaintext = self._open(iv, sealed, sequence, final, plain_view)
            if final:
                self._finish()
                yield plaintext
                return
            yield plaintext

    def read_all(self) -> bytes:
        """Decrypt the rest of an in-memory message into one buffer."""
        if self._aead is None:
            raise DecryptionError()
        if not self.header.framed:
            iv, sealed = self._read_single_block()
            block = OutputBuffer(len(sealed) - self.header.suite.tag_length)
            self._open_single_block(iv, sealed, block.view)
            self._finish()
            return block.finish()
        size = self._plaintext_size()
        if size is not None:  # unsigned, in memory: every frame in one loop
            out = OutputBuffer(size)
            position = self._open_frames_in_memory(out.view)
            self._finish()
            if position != size:
                raise DecryptionError()
            return out.finish()
        scratch = bytearray(self._remaining_upper_bound())
        view = memoryview(scratch)
        position = 0
        sequence = 0
        while True:
            sequence += 1
            if sequence > MAX_FRAMES:
                raise DecryptionError()
            iv, sealed, final = self._read_frame(sequence)
            position += len(self._open(iv, sealed, sequence, final, view[position:]))
            if final:
                break
        self._finish()
        view.release()
        del scratch[position:]
        return bytes(scratch)

    def _open_frames_in_memory(self, out: memoryview) -> int:
        """Decrypt every frame of an unsigned in-memory message into ``out``; return its size.

        The checks of :meth:`_read_frame` and :meth:`_open`, frame by frame, in
        one loop over the buffer, the final frame included; leaves the reader
        after the final frame.  Only for messages without a signature.
        """
        assert self._aead is not None
        assert self._hash is None
        assert self.header.suite.iv_length == 12  # every suite's; the offsets below rely on it
        data = self._reader.buffer
        assert data is not None
        size, capacity = len(data), len(out)
        length = self.header.frame_length
        tag = self.header.suite.tag_length
        step = 16 + length + tag  # number, IV, content, tag
        decrypt_into = self._aead.decrypt_into
        message_id = self.header.message_id
        aad_head = message_id + FRAME_STRING
        pack_tail = FRAME_AAD_TAIL.pack
        start = pos = self._reader.offset
        position = sequence = 0
        while True:
            if pos + 4 > size:
                raise DecryptionError()
            number = int.from_bytes(data[pos : pos + 4], "big")
            sequence += 1
            if sequence > MAX_FRAMES:
                raise DecryptionError()
            if number == FINAL_FRAME_MARKER:
                break
            end = pos + step
            if number != sequence or end > size or position + length > capacity:
                raise DecryptionError()
            try:
                decrypt_into(
                    data[pos + 4 : pos + 16],
                    data[pos + 16 : end],
                    aad_head + pack_tail(sequence, length),
                    out[position : position + length],
                )
            except InvalidTag:
                raise DecryptionError() from None
            position += length
            pos = end
        # The final frame: marker, sequence number, IV, content length, content, tag.
        body = pos + 24
        if body > size:
            raise DecryptionError()
        final: tuple[int, int] = _FINAL_FRAME_HEAD.unpack_from(data, pos)
        number, content = final
        end = body + content + tag
        if number != sequence or content > length or end > size or position + content > capacity:
            raise DecryptionError()
        try:
            decrypt_into(
                data[pos + 8 : pos + 20],
                data[body:end],
                message_id + FINAL_FRAME_STRING + pack_tail(sequence, content),
                out[position : position + content],
            )
        except InvalidTag:
            raise DecryptionError() from None
        self._reader.read(end - start)
        return position + content

    def _plaintext_size(self) -> int | None:
        """The exact plaintext size of an unsigned in-memory message, from its layout.

        Frames are fixed-size except the last, so the remaining length fixes
        the frame count; a message that does not fit the layout is rejected
        (and is re-checked frame by frame as it decrypts).
        """
        if self._hash is not None:
            return None
        remaining = self._remaining_upper_bound()
        suite = self.header.suite
        regular = regular_frame_size(self.header.frame_length, suite.iv_length, suite.tag_length)
        final_overhead = final_frame_size(0, suite.iv_length, suite.tag_length)
        if remaining < final_overhead:
            raise DecryptionError()
        count, last = divmod(remaining - final_overhead, regular)
        if last > self.header.frame_length:
            raise DecryptionError()
        return count * self.header.frame_length + last

    def _remaining_upper_bound(self) -> int:
        data = self._reader._data
        if data is None:
            raise DecryptionError()
        return len(data) - self._reader.offset
