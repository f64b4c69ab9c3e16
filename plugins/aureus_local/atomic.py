"""Creating files whose every byte is on disk before anyone can see them under their name."""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
NEW_FILE_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def write_new_file(path: Path, content: bytes) -> None:
    """Create ``path`` (mode 0600 before any byte is written), write, flush and fsync it."""
    fd = os.open(path, NEW_FILE_FLAGS, FILE_MODE)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, FILE_MODE)  # the umask may have narrowed it; never widen past 0600
        file = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        file.write(content)
        file.flush()
        os.fsync(file.fileno())
