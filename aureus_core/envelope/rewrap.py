"""Rewrap: give a message new recipients by re-encrypting it in one streaming pass.

The input is read with every check decrypt makes (header, commitment, each
frame's tag, the signature of a signed suite), and its plaintext flows frame
by frame, in memory only, into a new message with:

* a **fresh data key**, wrapped under the new keys only, and
* a **fresh message ID**, so every derived key, header tag and frame IV is new.

Why not copy the body and change only the header: in format version 2 the
header tag is AES-GCM under the derived key with a fixed all-zero IV.  Two
headers under one (data key, message ID) are two GCM tags under one key and
nonce over different data, from which anyone who sees both copies recovers
the GHASH key and can forge frames.  A rewrap therefore never reuses the
input's data key or message ID; earlier Aureus releases did, and their
rewrapped copies should be re-encrypted (see docs/rotation.md).

The new message keeps the stored encryption context (minus the old signing
key), the required context, the frame length and whether it is signed; a
signed input gets a fresh key pair, and the new final frame and footer are
written only after the old signature has verified.  A format-version-1 input
comes out as the committing suite of the same kind, a non-framed one framed.

:class:`~aureus_core.stack.KeyStack` (``rewrap``, ``rewrap_stream``) is the
API; this module holds the parts it composes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence

import attrs

from ..context import EncryptionContext
from ..errors import ConfigError, hint
from ..keyref import KeyRef
from .header import Limits
from .keyring import ProviderLookup, encryption_materials
from .message import (
    DEFAULT_FRAME_LENGTH,
    MessageReader,
    MessageWriter,
    check_frame_length,
    encrypt_stream,
    split_required,
)

Write = Callable[[bytes | memoryview], object]
"""Where the new message goes: a ``write`` that copies what it is given (it reuses buffers)."""


def parse_recipients(to_keys: Sequence[str | KeyRef], limits: Limits) -> tuple[KeyRef, ...]:
    """The new wrapping keys, checked before any provider is called."""
    if isinstance(to_keys, (str, KeyRef)):
        raise ConfigError("to_keys takes a list of key URIs, e.g. to_keys=['local://name']")
    refs = tuple(KeyRef.parse(key) for key in to_keys)
    if not refs:
        raise ConfigError(
            "rewrap needs at least one new wrapping key: " + hint("to_keys=[URI, ...]", "--to URI")
        )
    if len(set(refs)) != len(refs):
        raise ConfigError("the same new wrapping key is listed twice")
    limits.check_recipients(len(refs))
    return refs


class _Plaintext(io.RawIOBase):
    """The authenticated plaintext of a reader as a readable stream, never on disk."""

    def __init__(self, frames: Iterator[memoryview]) -> None:
        self._frames = frames
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._frames, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class _Sink:
    """``write`` as the ``dst`` that :func:`encrypt_stream` expects."""

    def __init__(self, write: Write) -> None:
        self.write = write


class Rewrap:
    """One rewrap: :meth:`prepare` once the input's header is authenticated, then :meth:`copy`."""

    def __init__(self, lookup: ProviderLookup, to_keys: Sequence[KeyRef], limits: Limits) -> None:
        self._lookup = lookup
        self._to_keys = tuple(to_keys)
        self._limits = limits
        self._writer: MessageWriter | None = None
        self.recipients: tuple[KeyRef, ...] = ()
        """The new wrapping keys, pinned to the versions that wrapped (after :meth:`prepare`)."""

    def prepare(self, reader: MessageReader) -> None:
        """A fresh data key wrapped for the new recipients, and the writer of the new message.

        The stored context is kept, and so is the required context the input
        was unlocked with: its pairs stay authenticated but not stored.
        """
        header = reader.header
        required = reader.required_context
        visible = {k: v for k, v in header.context.items() if not k.startswith("aws-crypto-")}
        full = EncryptionContext({**visible, **required})
        materials, used = encryption_materials(
            self._lookup, self._to_keys, full, signed=header.suite.signed
        )
        stored, required = split_required(materials.context, tuple(required))
        materials = attrs.evolve(materials, context=stored, required_context=required)
        try:
            frame_length = check_frame_length(
                header.frame_length if header.framed else DEFAULT_FRAME_LENGTH, self._limits
            )
            self._writer = MessageWriter(materials, frame_length)
        finally:
            if isinstance(materials.data_key, bytearray):
                materials.data_key[:] = bytes(len(materials.data_key))
        self.recipients = tuple(used)

    def copy(self, reader: MessageReader, write: Write) -> int:
        """Stream the input's plaintext into the new message; return the plaintext size.

        Raises :class:`~aureus_core.errors.DecryptionError` when the input does
        not authenticate; what was written by then must be discarded (it never
        holds the new final frame or footer, which wait for the whole input).
        """
        writer = self._writer
        if writer is None:
            raise RuntimeError("Rewrap.copy() before prepare()")
        return encrypt_stream(_Plaintext(reader.frames()), _Sink(write), writer)  # type: ignore[arg-type]

    def details(self) -> tuple[tuple[str, str], ...]:
        """Audit details: the new recipients (with versions) and whether the result is signed."""
        signed = self._writer is not None and self._writer.header.suite.signed
        return (
            ("recipients", ",".join(ref.uri for ref in self.recipients)),
            ("signed", str(signed).lower()),
        )


def snapshot(message: bytes | bytearray | memoryview) -> bytes | memoryview:
    """An immutable view of a one-shot input."""
    view = memoryview(message)
    return view if isinstance(view.obj, bytes) else bytes(view)
