"""Output buffers that become ``bytes`` without a copy.

A message of 16 MiB would otherwise be written into a ``bytearray`` and then
copied into the ``bytes`` the API returns: on a machine whose AES-GCM runs at
several GB/s that copy, and the zero-fill before it, cost as much as the
encryption.  On CPython this module does what a C extension does: allocate an
uninitialised ``bytes`` object with ``PyBytes_FromStringAndSize(NULL, n)`` and
fill it through a writable view before anything else can see it.  The view is
released before the object is returned, so the caller gets an ordinary,
immutable ``bytes``.  Elsewhere (or if the self-check at import fails) it falls
back to a ``bytearray`` and one copy.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

__all__ = ["OutputBuffer"]


def _cpython_allocator() -> Callable[[int], tuple[bytes, memoryview]] | None:
    if sys.implementation.name != "cpython":
        return None
    try:
        new = ctypes.pythonapi.PyBytes_FromStringAndSize
        new.restype = ctypes.py_object
        new.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
    except AttributeError:
        return None
    # ob_sval, the first data byte, is the last byte of the fixed part.
    offset = bytes.__basicsize__ - 1

    def allocate(size: int) -> tuple[bytes, memoryview]:
        obj: bytes = new(None, size)
        if size == 0:
            return obj, memoryview(bytearray())
        array = (ctypes.c_char * size).from_address(id(obj) + offset)
        return obj, memoryview(array).cast("B")

    # Self-check: the view must write exactly the bytes the object reads back.
    probe, view = allocate(8)
    view[:] = b"aureus!!"
    view.release()
    if probe != b"aureus!!" or len(probe) != 8:
        return None
    return allocate


_ALLOCATE = _cpython_allocator()
SMALL = 8 * 1024
"""Below this size a ``bytearray`` and one copy are cheaper than building the view."""


class OutputBuffer:
    """A buffer of a known final size, written through :attr:`view`, then :meth:`finish`-ed."""

    __slots__ = ("_fallback", "_result", "view")

    def __init__(self, size: int) -> None:
        if _ALLOCATE is not None and size >= SMALL:
            self._result, self.view = _ALLOCATE(size)
            self._fallback: bytearray | None = None
        else:
            self._fallback = bytearray(size)
            self._result = b""
            self.view = memoryview(self._fallback)

    def finish(self) -> bytes:
        """Release the view and return the filled buffer as ``bytes``."""
        self.view.release()
        if self._fallback is not None:
            return bytes(self._fallback)
        return self._result
