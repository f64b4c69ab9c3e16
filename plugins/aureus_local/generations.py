"""The generation state file: the highest keystore generation a machine has seen.

A keystore document counts its writes (its *generation*).  Restoring an older
``keystore.json`` brings back a lower generation; a process that remembers the
highest generation it has seen can refuse it.  This file is that memory across
processes and restarts, kept outside the keystore directory so that whoever
can only replace the keystore's files cannot also reset it::

    {"format": "aureus-local-keystore-state", "format_version": 1,
     "keystores": {"<keystore ID>": {"generation": 12}}}

One file may serve many keystores (keyed by ID).  It is rewritten atomically
(temporary file, fsync, rename, directory fsync) under its own lock file, and
only ever raised: two processes recording at once keep the higher value.

Limits: it holds no secret and no MAC, so anyone who can write it can lower
it; it detects a rollback only if it is not rolled back with the keystore
(keep it out of the keystore's backups, or on storage the keystore's writers
cannot reach).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from aureus_core.durable import fsync_directory
from aureus_core.errors import ConfigError, KeystoreCorrupted, ProviderUnavailable
from aureus_core.locks import FileLock, LockTimeout

from .atomic import FILE_MODE, READ_FLAGS, write_new_file
from .naming import SCHEME

STATE_FORMAT = "aureus-local-keystore-state"
STATE_FORMAT_VERSION = 1
_MAX_GENERATION = 2**63 - 1


class GenerationState:
    """The generation state file at ``path`` (created on first record)."""

    def __init__(self, path: Path, *, lock_timeout: float) -> None:
        self.path = Path(path)
        self._lock = FileLock(
            self.path.with_name(self.path.name + ".lock"),
            timeout=lock_timeout,
            mode=FILE_MODE,
        )
        self._lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"GenerationState({str(self.path)!r})"

    def seen(self, keystore_id: str) -> int:
        """The highest generation recorded for ``keystore_id`` (0 if none)."""
        return self._read().get(keystore_id, 0)

    def record(self, keystore_id: str, generation: int) -> int:
        """Raise the recorded generation of ``keystore_id`` to ``generation``; return the result.

        Never lowers it: the value returned may be higher than ``generation``
        if another process recorded a higher one.
        """
        # The lock file sits beside the state file: make its directory first, private,
        # rather than letting the lock make it with the umask's mode.
        self._ensure_directory()
        try:
            self._lock.acquire()
        except LockTimeout:
            raise ProviderUnavailable(
                f"the keystore state file {self.path} stayed locked for {self._lock_timeout:g} s "
                f"({self.path.name}.lock): retry, or look for a stuck process",
                provider=SCHEME,
            ) from None
        try:
            self._remove_stale_temp_files()
            entries = self._read()
            current = entries.get(keystore_id, 0)
            if current >= generation:
                return current
            entries[keystore_id] = generation
            self._write(entries)
            return generation
        finally:
            self._lock.release()

    def _remove_stale_temp_files(self) -> None:
        """Delete temporary files a crashed writer left (caller holds the lock)."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)

    def _read(self) -> dict[str, int]:
        try:
            fd = os.open(self.path, READ_FLAGS)
        except FileNotFoundError:
            return {}
        except NotADirectoryError:
            raise self._not_a_directory() from None
        with os.fdopen(fd, "rb") as file:
            data = file.read()
        try:
            obj = json.loads(data.decode("utf-8"))
            if (
                not isinstance(obj, dict)
                or obj.get("format") != STATE_FORMAT
                or type(obj.get("format_version")) is not int  # not true, not 1.0
                or obj["format_version"] != STATE_FORMAT_VERSION
                or not isinstance(obj.get("keystores"), dict)
            ):
                raise ValueError("not a keystore state file")
            entries: dict[str, int] = {}
            for keystore_id, entry in obj["keystores"].items():
                generation = entry.get("generation") if isinstance(entry, dict) else None
                if (
                    not isinstance(generation, int)
                    or isinstance(generation, bool)
                    or not 0 <= generation <= _MAX_GENERATION
                ):
                    raise ValueError(f"bad generation for {keystore_id!r}")
                entries[keystore_id] = generation
        except (UnicodeDecodeError, ValueError) as error:
            raise KeystoreCorrupted(
                f"the keystore state file {self.path} is damaged ({str(error)[:100]}): it only "
                "records the highest keystore generation seen, so delete it, or restore it, "
                "knowing that until it records a generation again, an older keystore.json "
                "would not be detected",
                provider=SCHEME,
            ) from None
        return entries

    def _ensure_directory(self) -> None:
        """Create the state file's directory (mode 0700) before the lock file's would be."""
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise self._not_a_directory() from None

    def _not_a_directory(self) -> ConfigError:
        return ConfigError(
            f"the keystore state file {self.path} cannot be read or created: "
            f"{self.path.parent} is not a directory; point the local provider's state_file "
            "option elsewhere"
        )

    def _write(self, entries: dict[str, int]) -> None:
        directory = self.path.parent
        content = {
            "format": STATE_FORMAT,
            "format_version": STATE_FORMAT_VERSION,
            "keystores": {k: {"generation": entries[k]} for k in sorted(entries)},
        }
        temp = directory / f".{self.path.name}.{secrets.token_hex(8)}.tmp"
        try:
            write_new_file(temp, (json.dumps(content, indent=2) + "\n").encode())
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_directory(directory)
