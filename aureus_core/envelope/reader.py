"""Exact-length reads from bytes or a binary stream; a short read is a DecryptionError."""

from __future__ import annotations

from typing import BinaryIO

from ..errors import DecryptionError


class Reader:
    """Reads exactly ``n`` bytes at a time and counts what it consumed.

    Over ``bytes`` it hands out zero-copy memoryview slices; over a stream it
    fills a fresh buffer with ``readinto``.  Every ``n`` a caller passes must
    already be bounded by a checked limit.
    """

    __slots__ = ("_data", "_offset", "_stream")

    def __init__(self, source: bytes | bytearray | memoryview | BinaryIO) -> None:
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._data: memoryview | None = memoryview(source).cast("B")
            self._stream: BinaryIO | None = None
        else:
            self._data = None
            self._stream = source
        self._offset = 0

    @property
    def buffer(self) -> memoryview | None:
        """The whole input when it is in memory (``None`` for a stream)."""
        return self._data

    @property
    def offset(self) -> int:
        """Bytes consumed so far."""
        return self._offset

    def read(self, n: int, into: bytearray | None = None) -> memoryview:
        """Return exactly ``n`` bytes or raise :class:`DecryptionError` (truncated input).

        From a stream, the bytes are read into ``into`` when it is large
        enough (the view returned is then valid until ``into`` is reused).
        """
        if self._data is not None:
            end = self._offset + n
            if end > len(self._data):
                raise DecryptionError()
            chunk = self._data[self._offset : end]
            self._offset = end
            return chunk
        assert self._stream is not None
        if into is not None and len(into) >= n:
            view = memoryview(into)[:n]
        else:
            view = memoryview(bytearray(n))
        filled = 0
        while filled < n:
            got = self._stream.readinto(view[filled:])  # type: ignore[attr-defined]
            if not got:
                raise DecryptionError()
            filled += got
        self._offset += n
        return view

    def read_up_to(self, n: int) -> bytes:
        """Up to ``n`` more bytes, fewer at the end of the input (for error messages)."""
        if self._data is not None:
            chunk = bytes(self._data[self._offset : self._offset + n])
        else:
            assert self._stream is not None
            chunk = self._stream.read(n) or b""
        self._offset += len(chunk)
        return chunk

    def read_int(self, size: int) -> int:
        """Read a big-endian unsigned integer of ``size`` bytes."""
        return int.from_bytes(self.read(size), "big")

    def at_end(self) -> bool:
        """Whether the input is exhausted (reads one byte ahead on streams)."""
        if self._data is not None:
            return self._offset >= len(self._data)
        assert self._stream is not None
        peek = self._stream.read(1)
        return not peek
