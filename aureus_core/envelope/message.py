"""Writing and reading whole messages, one-shot or streamed in constant memory.

This is the hazardous layer: it takes a plaintext data key and produces or
consumes the AWS Encryption SDK message format (version 2, framed; version 1
readable on opt-in).  :class:`~aureus_core.stack.KeyStack` is the safe API
on top: it obtains and wraps data keys through the providers.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import BinaryIO

import attrs
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..context import EncryptionContext
from ..datakey import EncryptedDataKey
from ..errors import ConfigError, DecryptionError
from .buffers import OutputBuffer
from .frames import (
    FINAL_FRAME_MARKER,
    MAX_FRAMES,
    final_frame_size,
    frame_aad,
    frame_iv,
    regular_frame_size,
)
from .header import Header, Limits, parse_header
from .keys import check_commitment, check_header_auth, derive_keys, header_auth_tag
from .reader import Reader
from .suites import AlgorithmSuite, CommitmentPolicy

PUBLIC_KEY_CONTEXT_KEY = "aws-crypto-public-key"
DEFAULT_FRAME_LENGTH = 64 * 1024


def new_signing_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A fresh P-384 key pair for one signed message, with its public key as stored."""
    private = ec.generate_private_key(ec.SECP384R1())
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


@attrs.frozen(kw_only=True)
class EncryptionMaterials:
    """Everything needed to write one message."""

    suite: AlgorithmSuite
    data_key: bytes | bytearray = attrs.field(repr=False)
    encrypted_data_keys: tuple[EncryptedDataKey, ...]
    context: EncryptionContext
    """The full context to store, including ``aws-crypto-public-key`` for signed suites."""
    signing_key: ec.EllipticCurvePrivateKey | None = attrs.field(default=None, repr=False)


def check_frame_length(frame_length: int, limits: Limits) -> int:
    """Validate a frame length for writing."""
    if not isinstance(frame_length, int) or not 1 <= frame_length <= limits.max_frame_length:
        raise ConfigError(
            f"frame length must be between 1 and {limits.max_frame_length} bytes, "
            f"not {frame_length!r}"
        )
    return frame_length


class MessageWriter:
    """Produces one message piece by piece: header, frames, footer."""

    def __init__(self, materials: EncryptionMaterials, frame_length: int) -> None:
        suite = materials.suite
        if suite.message_version != 2:
            raise ConfigError("Aureus writes only committing (format version 2) suites")
        if suite.signed != (materials.signing_key is not None):
            raise ConfigError("a signed suite needs a signing key, and only a signed suite")
        self._suite = suite
        self._frame_length = frame_length
        # Always fresh: a second header or body under one (data key, message ID)
        # would reuse the derived key with the header's fixed IV and the frame IVs.
        self._message_id = os.urandom(32)
        encryption_key, commitment = derive_keys(suite, materials.data_key, self._message_id)
        self._aead = AESGCM(encryption_key)
        self._signing_key = materials.signing_key
        self._hash = hashes.Hash(suite.signature_hash()) if suite.signature_hash else None
        self.header = Header(
            suite=suite,
            message_id=self._message_id,
            context=materials.context,
            encrypted_data_keys=materials.encrypted_data_keys,
            frame_length=frame_length,
            suite_data=commitment,
        )
        self._sequence = 0

    def _signed(self, data: bytes | bytearray | memoryview) -> None:
        if self._hash is not None:
            self._hash.update(data)

    def start(self) -> bytes:
        """The serialized header and its authentication tag."""
        body = self.header.serialize()
        out = body + header_auth_tag(self._aead, self._suite, body)
        self._signed(out)
        return out

    def _next_sequence(self) -> int:
        self._sequence += 1
        if self._sequence > MAX_FRAMES:
            raise ConfigError("message too large for its frame length: use a larger frame length")
        return self._sequence

    def frame_into(self, plaintext: memoryview, out: memoryview, *, final: bool) -> int:
        """Encrypt one frame into ``out``; return the bytes written."""
        sequence = self._next_sequence()
        length = len(plaintext)
        if not final and length != self._frame_length:
            raise ConfigError("a regular frame must be exactly one frame length long")
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
    regular = max(0, (len(data) - 1) // frame_length)
    last = len(data) - regular * frame_length
    body = regular * regular_frame_size(frame_length) + final_frame_size(last)
    signed = writer.header.suite.signed
    # The signature's DER length is only known at the end: signed messages take
    # a scratch buffer and one copy (the signature dominates their cost anyway).
    scratch = bytearray(len(head) + body) if signed else None
    out = None if scratch is not None else OutputBuffer(len(head) + body)
    view = memoryview(scratch) if scratch is not None else out.view  # type: ignore[union-attr]
    view[: len(head)] = head
    position = len(head)
    for index in range(regular):
        chunk = data[index * frame_length : (index + 1) * frame_length]
        position += writer.frame_into(chunk, view[position:], final=False)
    position += writer.frame_into(data[regular * frame_length :], view[position:], final=True)
    if out is not None:
        return out.finish()
    view.release()
    assert scratch is not None
    return bytes(scratch) + writer.finish()


def encrypt_stream(src: BinaryIO, dst: BinaryIO, writer: MessageWriter) -> int:
    """Write a whole message, reading ``src`` one frame at a time; return plaintext bytes."""
    frame_length = writer.header.frame_length
    dst.write(writer.start())
    buffers = [bytearray(frame_length), bytearray(frame_length)]
    out = bytearray(final_frame_size(frame_length))
    current = _fill(src, buffers[0])
    total = current
    while True:
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

    def unlock(self, data_key: bytes | bytearray) -> None:
        """Check the commitment and header authentication with the data key."""
        suite = self.header.suite
        encryption_key, commitment = derive_keys(suite, data_key, self.header.message_id)
        if suite.committing:
            check_commitment(commitment, self.header.suite_data)
        aead = AESGCM(encryption_key)
        check_header_auth(aead, self._auth_iv, self._auth_tag, self._raw_header)
        self._aead = aead

    def _signed(self, data: bytes | bytearray | memoryview) -> None:
        if self._hash is not None:
            self._hash.update(data)

    def _read_frame(self, sequence: int) -> tuple[memoryview, memoryview, bool]:
        """Return ``(iv, ciphertext-with-tag, final)`` for the next frame, checking its place."""
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
        sealed = reader.read(length + self.header.suite.tag_length)
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
            try:
                point = base64.b64decode(key, validate=True)
                public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), point)
                public.verify(
                    signature, self._hash.finalize(), ec.ECDSA(Prehashed(suite.signature_hash()))
                )
            except (InvalidSignature, ValueError):
                raise DecryptionError() from None
        if not self._reader.at_end():
            raise DecryptionError()

    def frames(self) -> Iterator[memoryview]:
        """Yield authenticated plaintext, frame by frame.

        With a signed suite the final frame is held back until the footer's
        signature verifies.  Consume the iterator to the end: only then is the
        whole message authenticated.
        """
        if self._aead is None:
            raise DecryptionError()
        sequence = 0
        while True:
            sequence += 1
            if sequence > MAX_FRAMES:
                raise DecryptionError()
            iv, sealed, final = self._read_frame(sequence)
            plaintext = self._open(iv, sealed, sequence, final)
            if final:
                self._finish()
                yield plaintext
                return
            yield plaintext

    def read_all(self) -> bytes:
        """Decrypt the rest of an in-memory message into one buffer."""
        if self._aead is None:
            raise DecryptionError()
        size = self._plaintext_size()
        out = OutputBuffer(size) if size is not None else None
        scratch = bytearray(self._remaining_upper_bound()) if out is None else None
        view = out.view if out is not None else memoryview(scratch)  # type: ignore[arg-type]
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
        if out is not None:
            if position != size:
                raise DecryptionError()
            return out.finish()
        view.release()
        assert scratch is not None
        del scratch[position:]
        return bytes(scratch)

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
