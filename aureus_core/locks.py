"""An exclusive lock on a file, shared by the threads and processes that write one piece of state.

Plugins that keep state on disk (the local keystore, its generation state
file, the jsonl audit log) take this lock around each read-modify-write.  On
POSIX it is ``flock`` on a lock file that is created once (with the given
mode) and never removed: removing it would let a process that opened the old
file and one that created a new one hold "the" lock at once.  Each holding
thread has its own open file description, so two threads of one process
exclude each other as two processes do, and a thread may take the lock again
while it holds it (a count, released by as many :meth:`FileLock.release`).
On Windows the ``filelock`` package does the same, imported
only there.  Waiting polls, so a lock held by a stuck process ends in
:class:`LockTimeout` after ``timeout`` seconds rather than a hang.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from types import TracebackType
from typing import Any

if sys.platform != "win32":
    import fcntl

POLL_INTERVAL = 0.01
"""Seconds between two attempts to take a lock another holder has."""


class LockTimeout(TimeoutError):
    """The lock stayed held by another thread or process for the whole timeout."""


class FileLock:
    """An exclusive, per-thread re-entrant lock on the file at ``path``.

    ``timeout`` is how long :meth:`acquire` waits, in seconds (0: one attempt);
    ``mode`` the permissions the lock file is created with.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float, mode: int = 0o600) -> None:
        if not timeout >= 0:
            raise ValueError(f"a lock timeout is seconds >= 0, not {timeout!r}")
        self.path = os.fspath(path)
        self.timeout = timeout
        self.mode = mode
        self._held = threading.local()
        self._fallback: Any = None
        if sys.platform == "win32":  # pragma: no cover - not POSIX
            import filelock

            self._fallback = filelock.FileLock(self.path, timeout=timeout, mode=mode)

    def __repr__(self) -> str:
        return f"FileLock({self.path!r})"

    @property
    def is_held(self) -> bool:
        """Whether the calling thread holds the lock."""
        if self._fallback is not None:  # pragma: no cover - not POSIX
            return bool(self._fallback.is_locked)
        return getattr(self._held, "count", 0) > 0

    def acquire(self) -> None:
        """Take the lock, waiting at most ``timeout`` s (else :class:`LockTimeout`)."""
        if self._fallback is not None:  # pragma: no cover - not POSIX
            self._acquire_fallback()
            return
        count = getattr(self._held, "count", 0)
        if count:
            self._held.count = count + 1
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, self.mode)
        try:
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise LockTimeout(
                            f"{self.path} stayed locked for {self.timeout:g} s"
                        ) from None
                    time.sleep(min(POLL_INTERVAL, left))
        except BaseException:
            os.close(fd)
            raise
        self._held.fd = fd
        self._held.count = 1

    def release(self) -> None:
        """Give back one hold of the calling thread; the last one unlocks the file."""
        if self._fallback is not None:  # pragma: no cover - not POSIX
            self._fallback.release()
            return
        count = getattr(self._held, "count", 0)
        if count <= 0:
            raise RuntimeError(f"{self!r} is not held by this thread")
        if count > 1:
            self._held.count = count - 1
            return
        fd = self._held.fd
        self._held.count = 0
        self._held.fd = None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def _acquire_fallback(self) -> None:  # pragma: no cover - not POSIX
        import filelock

        try:
            self._fallback.acquire()
        except filelock.Timeout:
            raise LockTimeout(f"{self.path} stayed locked for {self.timeout:g} s") from None
