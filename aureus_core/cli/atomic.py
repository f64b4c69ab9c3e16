"""Output files that appear only when complete, and leave nothing behind when killed.

``decrypt -o``, ``rewrap -o``, ``migrate -o`` and ``sign -o`` write through
:func:`atomic_output`.  On Linux the data goes into an *unnamed* file
(``O_TMPFILE``) in the target's directory, linked into place only once the
command has succeeded (``linkat`` with ``AT_EMPTY_PATH``, else through
``/proc/self/fd``): a process killed at any point (even with SIGKILL) leaves
no file with partial plaintext, because none ever had a name.  Where neither
link is permitted, the finished unnamed file is copied into a named one just
before the rename.

Where the platform or file system has no ``O_TMPFILE``, the data goes into a
named hidden file,
``.NAME.<pid>.<random>.aureus-tmp``, renamed into place on success and
removed on any error.  Only SIGKILL (or a power cut) can leave one behind;
the next ``atomic_output`` for the same target removes those whose process
no longer exists.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ..durable import fsync_directory

TEMP_SUFFIX = ".aureus-tmp"
_PROC_FD = Path("/proc/self/fd")
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Write to ``path`` atomically: complete on success, absent on any failure or kill."""
    target = Path(path)
    directory = target.parent
    remove_abandoned(directory, target.name)
    fd = _unnamed(directory)
    named: Path | None = None
    if fd is None:
        fd, named = _named(directory, target.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            if named is None:
                named = _link_into_place(handle.fileno(), target)
        if named is not None:
            os.replace(named, target)
        fsync_directory(directory)
    except BaseException:
        if named is not None:
            named.unlink(missing_ok=True)
        raise


def remove_abandoned(directory: Path, name: str) -> list[Path]:
    """Remove temporary files for ``name`` left by processes that no longer exist."""
    removed: list[Path] = []
    prefix = f".{name}."
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX)):
            continue
        pid_text = entry.name[len(prefix) :].split(".", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _unnamed(directory: Path) -> int | None:
    """An unnamed file in ``directory`` (``O_TMPFILE``), or ``None`` where there is none."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return None
    try:
        return os.open(directory, flag | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return None  # the file system does not support unnamed files
        raise


def _named(directory: Path, name: str) -> tuple[int, Path]:
    """A new hidden file beside the target, named so a later run can tell it is abandoned."""
    while True:
        path = _temporary_name(directory, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        return fd, path


def _link_into_place(fd: int, target: Path) -> Path | None:
    """Give the finished unnamed file ``fd`` the name ``target``.

    Returns ``None`` when ``target`` now names the file, or a named temporary
    file beside it, holding the complete output, for the caller to rename over
    an existing target (``-o IN IN``) or when the file system refuses links.
    """
    try:
        if _link(fd, target):
            return None
    except FileExistsError:
        pass
    temporary = _temporary_name(target.parent, target.name)
    try:
        if _link(fd, temporary):
            return temporary
    except FileExistsError:
        pass
    # No way to name an unnamed file here: copy the finished output instead.
    copy_fd, temporary = _named(target.parent, target.name)
    try:
        with os.fdopen(copy_fd, "wb") as copy, os.fdopen(os.dup(fd), "rb") as source:
            source.seek(0)
            shutil.copyfileobj(source, copy, 1024 * 1024)
            copy.flush()
            os.fsync(copy.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def _link(fd: int, path: Path) -> bool:
    """Link the unnamed file ``fd`` at ``path``; ``False`` if this system will not."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.linkat(fd, b"", _AT_FDCWD, os.fsencode(path), _AT_EMPTY_PATH) == 0:
            return True
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), str(path))
    if _PROC_FD.is_dir():
        try:
            os.link(_PROC_FD / str(fd), path, follow_symlinks=True)
            return True
        except FileExistsError:
            raise
        except OSError:
            return False
    return False


def _temporary_name(directory: Path, name: str) -> Path:
    return directory / f".{name}.{os.getpid()}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
