"""Hold decrypted plaintext back until a whole signed message has verified.

A signed message is only authentic once its footer signature checks, at the
very end.  :class:`SealedSpool` keeps what comes before in memory up to a
bound, then in an unnamed temporary file (``O_TMPFILE`` where the platform has
it, so no other process can open it by name) sealed with AES-256-GCM under a
key that exists only in this process and only for this spool.  Nothing leaves
the spool until :meth:`SealedSpool.release`, which checks every record of the
file before it writes the first byte.
"""

from __future__ import annotations

import struct
import tempfile
from typing import IO, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import DecryptionError

__all__ = ["DEFAULT_MEMORY_BOUND", "SealedSpool"]

DEFAULT_MEMORY_BOUND = 16 * 1024 * 1024
"""Plaintext kept in memory before the spool moves to a sealed temporary file."""

_RECORD = 1024 * 1024
_LENGTH = struct.Struct(">I")
_TAG = 16


class SealedSpool:
    """A write-then-release buffer: memory up to ``memory_bound``, then a sealed temporary file."""

    def __init__(
        self, memory_bound: int = DEFAULT_MEMORY_BOUND, directory: str | None = None
    ) -> None:
        self._bound = memory_bound
        self._directory = directory
        self._memory = bytearray()
        self._file: IO[bytes] | None = None
        self._aead: AESGCM | None = None
        self._records = 0
        self._size = 0

    @property
    def spilled(self) -> bool:
        """Whether the spool has moved to its temporary file."""
        return self._file is not None

    def __len__(self) -> int:
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Add ``data`` (copied) to the spool."""
        view = memoryview(data).cast("B")
        if self._file is None and len(self._memory) + len(view) <= self._bound:
            self._memory += view
        else:
            if self._file is None:
                self._spill()
            for start in range(0, len(view), _RECORD):
                self._seal(view[start : start + _RECORD])
        self._size += len(view)
        return len(view)

    def _spill(self) -> None:
        self._file = tempfile.TemporaryFile(dir=self._directory)  # noqa: SIM115
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        pending = memoryview(self._memory)
        for start in range(0, len(pending), _RECORD):
            self._seal(pending[start : start + _RECORD])
        pending.release()
        self._wipe_memory()

    def _nonce(self, index: int) -> bytes:
        return index.to_bytes(12, "big")

    def _seal(self, chunk: memoryview) -> None:
        assert self._file is not None
        assert self._aead is not None
        sealed = self._aead.encrypt(self._nonce(self._records), bytes(chunk), None)
        self._file.write(_LENGTH.pack(len(sealed)) + sealed)
        self._records += 1

    def _opened(self) -> list[int] | None:
        """Walk the file once, checking every record; return the record lengths."""
        assert self._file is not None
        assert self._aead is not None
        self._file.flush()
        self._file.seek(0)
        lengths: list[int] = []
        for index in range(self._records):
            head = self._file.read(_LENGTH.size)
            if len(head) != _LENGTH.size:
                return None
            (length,) = _LENGTH.unpack(head)
            if length > _RECORD + _TAG:
                return None
            sealed = self._file.read(length)
            try:
                self._aead.decrypt(self._nonce(index), sealed, None)
            except InvalidTag:
                return None
            lengths.append(length)
        if self._file.read(1):
            return None
        return lengths

    def release(self, dst: BinaryIO) -> int:
        """Write everything held to ``dst`` and return the byte count.

        If the temporary file was altered, raise :class:`DecryptionError`
        before writing anything; if it is altered after that check, while it is
        written out, raise it at the altered record (what came before it is
        genuine, but incomplete).
        """
        if self._file is None:
            dst.write(self._memory)
            self._wipe_memory()
            return self._size
        assert self._aead is not None
        lengths = self._opened()
        if lengths is None:
            raise DecryptionError(
                "the temporary file holding the verified plaintext was modified while "
                "decrypting; nothing was written"
            )
        self._file.seek(0)
        for index, length in enumerate(lengths):
            self._file.read(_LENGTH.size)
            try:
                chunk = self._aead.decrypt(self._nonce(index), self._file.read(length), None)
            except InvalidTag:
                # Changed between the check and this read: only someone who can write to
                # this process's open file can. What was written is genuine but not all.
                raise DecryptionError(
                    "the temporary file holding the verified plaintext was modified while it "
                    "was being written out; the output is incomplete and must be discarded"
                ) from None
            dst.write(chunk)
        return self._size

    def _wipe_memory(self) -> None:
        self._memory[:] = bytes(len(self._memory))
        self._memory = bytearray()

    def close(self) -> None:
        """Drop the plaintext held in memory and the temporary file (and with it its key)."""
        self._wipe_memory()
        if self._file is not None:
            self._file.close()
            self._file = None
        self._aead = None

    def fileno(self) -> int:
        """The temporary file's descriptor (tests inspect what is on disk)."""
        if self._file is None:
            raise OSError("the spool has not spilled to a file")
        self._file.flush()
        return self._file.fileno()

    def __enter__(self) -> SealedSpool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
