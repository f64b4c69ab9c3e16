"""The on-disk keystore: one authenticated JSON file, written atomically under a lock.

A keystore directory (mode 0700) holds:

- ``keystore.json`` (0600): every key and version, material sealed with
  AES-256-GCM and the whole document authenticated with HMAC-SHA256
  (see :mod:`aureus_local.document` and :mod:`aureus_local.sealing`);
- ``master.key`` (0600): 32 random bytes, unless the keystore was created with
  a passphrase, in which case the master key comes from scrypt instead;
- ``keystore.lock``: serializes writers across processes.

Every write goes to a fresh temporary file in the same directory, is flushed
and fsynced, renamed over ``keystore.json`` and followed by an fsync of the
directory, so a crash at any point leaves the old or the new document, never a
mix.  Readers take no lock: they see one complete file or the other.

Usage counters (messages and bytes per key version) are not written on every
wrap or sign: :meth:`Keystore.record_use` adds to in-memory deltas, which are
merged into the document (added to whatever other processes have flushed)
under the lock at most every ``usage_flush_interval`` seconds or
``usage_flush_operations`` uses, with every other write, and on
:meth:`Keystore.close`.  Counts not yet flushed when a process dies are lost.

AES-GCM wraps use random 96-bit IVs, so each key version may make at most
``max_wraps_per_version`` of them (2**32, NIST SP 800-38D section 8.3).  That
count must survive crashes, so it is not a usage counter: before wrapping, a
process reserves a block of wraps in the document (``wraps_reserved``, written
under the lock like any change) and wraps from that block; a crash loses the
unused rest of the block, which stays counted, so the stored count is never
below the real one.  Blocks start small and double (up to
``WRAP_BLOCK_MAX``); :meth:`Keystore.close` hands the unused rest back.

Every write raises the document's ``generation``.  A keystore refuses to load
a document whose generation is below the highest this instance has seen,
below the configured ``min_generation``, or below what the optional
generation state file (:mod:`aureus_local.generations`) records; it refuses a
document whose ID or fingerprint differs from the configured pins.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import NoReturn, TypeVar, cast

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_core.durable import fsync_directory
from aureus_core.errors import (
    AureusError,
    ConfigError,
    CredentialError,
    KeyDisabled,
    KeyExists,
    KeyNotFound,
    KeystoreCorrupted,
    ProviderUnavailable,
)
from aureus_core.keys import KeyType
from aureus_core.locks import FileLock, LockTimeout
from aureus_core.sensitive import Secret

from .atomic import FILE_MODE, READ_FLAGS, write_new_file
from .document import (
    MAX_COUNT,
    FormatProblem,
    KeyRecord,
    KeystoreDocument,
    NewerFormat,
    VersionRecord,
    load_json,
    parse_document,
    parse_header,
    render,
    to_json,
)
from .generations import GenerationState
from .naming import SCHEME, key_uri
from .rawkeys import RawKeyring
from .sealing import (
    DEFAULT_SCRYPT_LOG_N,
    MASTER_KEY_SIZE,
    SCRYPT_LOG_N_RANGE,
    STRONG_SCRYPT_LOG_N_RANGE,
    ScryptParams,
    Sealer,
)

KEYSTORE_FILE = "keystore.json"
MASTER_KEY_FILE = "master.key"
LOCK_FILE = "keystore.lock"
PASSPHRASE_ENV = "AUREUS_KEYSTORE_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)
DIRECTORY_MODE = 0o700
DEFAULT_LOCK_TIMEOUT = 30.0
DEFAULT_RECHECK_INTERVAL = 0.05
"""Seconds a verified ``keystore.json`` is used before its file is checked for changes again
(changes made through this process are seen at once)."""
USAGE_FLUSH_INTERVAL = 1.0
"""Seconds between flushes of the usage counters (at most; see :meth:`Keystore.record_use`)."""
USAGE_FLUSH_OPERATIONS = 1000
"""Unflushed uses after which the usage counters are flushed regardless of time."""
MAX_WRAPS_PER_VERSION = 2**32
"""AES-GCM wraps one key version may make with random 96-bit IVs (NIST SP 800-38D 8.3)."""
WRAP_BLOCK_MIN = 16
"""The first block of wraps a process reserves for a key version."""
WRAP_BLOCK_MAX = 2**16
"""The largest block of wraps a process reserves at once (each next block doubles)."""

_log = logging.getLogger(__name__)

_SEEN_LOCK = threading.Lock()
_SEEN: dict[str, int] = {}
"""The highest generation of each keystore (by ID) any object of this process has loaded or
written: a keystore opened again in the same process is held to it too."""


def forget_seen_generations() -> None:
    """Forget every generation this process has seen: what a new process starts with.

    For tests that stand in for another process (a restart) within one.
    """
    with _SEEN_LOCK:
        _SEEN.clear()


def _seen_in_process(keystore_id: str, generation: int = 0) -> int:
    """Raise the process's floor for ``keystore_id`` to ``generation``; return the floor."""
    with _SEEN_LOCK:
        floor = max(_SEEN.get(keystore_id, 0), generation)
        _SEEN[keystore_id] = floor
        return floor


T = TypeVar("T")
Usage = dict[tuple[str, int], tuple[int, int]]
"""``(key name, version) -> (messages, bytes)`` not yet in ``keystore.json``."""

_WRITES: dict[str, int] = {}
"""``keystore.json`` path -> writes this process made to it: other keystore objects recheck."""
_WRITES_LOCK = threading.Lock()

_TEMP_PREFIXES = (f".{KEYSTORE_FILE}.", f".{MASTER_KEY_FILE}.")
_TEMP_SUFFIX = ".tmp"

FileSignature = tuple[int, int, int, int, int]
"""``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)``: when it changes, reload."""


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


class Snapshot:
    """One verified version of the keystore document, and the material decrypted from it.

    Immutable apart from its material cache; safe to share between threads.
    """

    __slots__ = ("_cache", "_cache_lock", "_corrupted", "_objects", "_sealer", "document")

    def __init__(
        self,
        document: KeystoreDocument,
        sealer: Sealer,
        corrupted: Callable[[str], KeystoreCorrupted],
        cache: Mapping[tuple[str, int], bytes] | None = None,
    ) -> None:
        self.document = document
        self._sealer = sealer
        self._corrupted = corrupted
        self._cache: dict[tuple[str, int], bytes] = dict(cache or {})
        self._objects: dict[tuple[str, int, str], object] = {}
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Snapshot(keystore_id={self.document.keystore_id!r}, keys={len(self.keys)})"

    @property
    def keys(self) -> Mapping[str, KeyRecord]:
        """Every key, by name."""
        return self.document.keys

    def material(self, key: KeyRecord, version: VersionRecord) -> bytes:
        """The decrypted material of one key version (decrypted once, then cached)."""
        slot = (key.name, version.version)
        if version.nonce is None or version.ciphertext is None:
            raise KeyDisabled(
                f"{key_uri(key.name, version.version)} was destroyed: its material is gone",
                provider=SCHEME,
            )
        with self._cache_lock:
            cached = self._cache.get(slot)
            if cached is not None:
                return cached
            try:
                material = self._sealer.open(
                    version.nonce,
                    version.ciphertext,
                    keystore_id=self.document.keystore_id,
                    name=key.name,
                    version=version.version,
                    key_type=key.key_type.value,
                )
            except InvalidTag:
                raise self._corrupted(
                    f"the material of {key_uri(key.name, version.version)} does not decrypt"
                ) from None
            self._cache[slot] = material
            return material

    def aead(self, key: KeyRecord, version: VersionRecord) -> AESGCM:
        """An AES-GCM cipher on one AES key version's material (built once per snapshot).

        The object holds the key only: every caller passes its own fresh nonce.
        """
        return self.loaded(key, version, "aes-gcm", AESGCM)

    def loaded(
        self, key: KeyRecord, version: VersionRecord, kind: str, load: Callable[[bytes], T]
    ) -> T:
        """``load(material)`` of one key version, built once per snapshot and ``kind``.

        For immutable, thread-safe key objects (an :class:`AESGCM`, a private
        key): building them is what costs, not using them.  A destroyed
        version raises like :meth:`material`.
        """
        slot = (key.name, version.version, kind)
        cached = self._objects.get(slot)
        if cached is not None and version.nonce is not None:
            return cast(T, cached)
        made = load(self.material(key, version))  # raises for a destroyed version
        with self._cache_lock:
            return cast(T, self._objects.setdefault(slot, made))

    @property
    def sealer(self) -> Sealer:
        """The keys this document was verified with (for writing its successor)."""
        return self._sealer

    def decrypted(self) -> dict[tuple[str, int], bytes]:
        """A copy of the material decrypted so far, to carry over to a successor."""
        with self._cache_lock:
            return dict(self._cache)


@attrs.frozen
class _Loaded:
    signature: FileSignature
    content: bytes = attrs.field(repr=False)
    snapshot: Snapshot


@attrs.frozen(kw_only=True)
class KeystoreInfo:
    """What an operator pins: the keystore's ID, fingerprint and generation."""

    directory: Path
    keystore_id: str
    fingerprint: str
    """Changes when the master key does (a new passphrase re-seals under a new one)."""
    generation: int
    unlock: str
    """``key-file`` or ``passphrase``."""
    scrypt_log_n: int | None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "directory": str(self.directory),
            "keystore_id": self.keystore_id,
            "fingerprint": self.fingerprint,
            "generation": self.generation,
            "unlock": self.unlock,
            "scrypt_log_n": self.scrypt_log_n,
        }


class Keystore:
    """A keystore directory: verified reads (cached) and atomic, locked writes.

    Construction does no I/O; the directory is read on first use and created
    on the first write.  All methods are thread-safe.

    ``keystore_id`` and ``fingerprint`` pin the keystore: a document with
    another ID, or sealed under a master key that gives another fingerprint,
    is refused, and so is creating a new keystore in place of a pinned one.
    ``min_generation`` and the ``state_file`` (see
    :mod:`aureus_local.generations`) refuse older copies of the document.
    ``scrypt_log_n`` below 17 is refused unless ``insecure_kdf_for_tests``:
    cheap scrypt is for test suites only.
    """

    def __init__(
        self,
        directory: Path,
        *,
        passphrase: Secret[str] | None = None,
        passphrase_source: str = PASSPHRASE_ENV,
        scrypt_log_n: int = DEFAULT_SCRYPT_LOG_N,
        insecure_kdf_for_tests: bool = False,
        keystore_id: str | None = None,
        fingerprint: str | None = None,
        min_generation: int = 0,
        state_file: Path | None = None,
        max_wraps_per_version: int = MAX_WRAPS_PER_VERSION,
        clock: Callable[[], datetime] = utc_now,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        usage_flush_interval: float = USAGE_FLUSH_INTERVAL,
        usage_flush_operations: int = USAGE_FLUSH_OPERATIONS,
        monotonic: Callable[[], float] = time.monotonic,
        recheck_interval: float = DEFAULT_RECHECK_INTERVAL,
    ) -> None:
        self._scrypt_log_n = check_scrypt_log_n(scrypt_log_n, insecure=insecure_kdf_for_tests)
        self._keystore_id_pin = _check_hex(keystore_id, "keystore_id", 32)
        self._fingerprint_pin = _check_hex(fingerprint, "keystore_fingerprint", 32)
        if not _is_count(min_generation):
            raise ConfigError(
                f"min_generation must be a whole number (0 or more), not {min_generation!r}"
            )
        if not _is_count(max_wraps_per_version) or not (
            1 <= max_wraps_per_version <= MAX_WRAPS_PER_VERSION
        ):
            raise ConfigError(
                f"max_wraps_per_version must be a whole number from 1 to {MAX_WRAPS_PER_VERSION} "
                f"(the AES-GCM random-IV bound), not {max_wraps_per_version!r}"
            )
        if passphrase is not None and not passphrase.reveal():
            raise CredentialError(
                f"the passphrase for keystore {directory} is empty: set a non-empty "
                f"{PASSPHRASE_ENV}, or none to use a key file"
            )
        self.directory = Path(directory)
        self.path = self.directory / KEYSTORE_FILE
        self._path_text = os.path.abspath(self.path)  # stat()ed on reads: no Path conversion
        if isinstance(recheck_interval, bool) or not (
            isinstance(recheck_interval, (int, float)) and 0 <= recheck_interval <= 60
        ):
            raise ConfigError(
                "recheck_interval must be a number of seconds from 0 to 60, "
                f"not {recheck_interval!r}"
            )
        self._recheck_interval = float(recheck_interval)
        self._fresh_until = 0.0
        self._writes_seen = 0
        self.master_key_path = self.directory / MASTER_KEY_FILE
        self._passphrase = passphrase
        self._passphrase_source = passphrase_source
        """Where the passphrase came from, named in errors (an environment variable, a source)."""
        self._min_generation = min_generation
        self._seen_generation = 0  # the highest generation this instance has loaded or written
        if state_file is not None:
            keystore_dir = self.directory.resolve()
            state_dir = Path(state_file).parent.resolve()
            if state_dir == keystore_dir or keystore_dir in state_dir.parents:
                raise ConfigError(
                    f"the local keystore's state_file {state_file} is inside the keystore "
                    f"directory {keystore_dir}: whoever can roll the keystore back there (or "
                    "restore the directory from a backup) rolls the state file back with it; "
                    "put it outside the keystore directory and out of its backups"
                )
        self._state = (
            None if state_file is None else GenerationState(state_file, lock_timeout=lock_timeout)
        )
        self._max_wraps = max_wraps_per_version
        self._clock = clock
        self._lock_timeout = lock_timeout
        # Writers queue on _write_lock (then on the file lock, across processes);
        # _state_lock only guards the cache, so readers never wait for a writer.
        self._write_lock = threading.RLock()
        self._state_lock = threading.RLock()
        self._file_lock: FileLock | None = None
        self._loaded: _Loaded | None = None
        self._derived: tuple[ScryptParams, Sealer] | None = None
        # Usage counters: deltas not yet written, and those a write is carrying.
        self._usage_lock = threading.Lock()
        self._usage: Usage = {}
        self._usage_in_flight: Usage = {}
        self._usage_uses = 0
        self._usage_flush_interval = usage_flush_interval
        self._usage_flush_operations = usage_flush_operations
        self._monotonic = monotonic
        self._usage_flushed_at = monotonic()
        # Wraps reserved in the document and not yet made, and the next block size.
        # They belong to the process that reserved them: a forked child starts with none.
        self._wrap_lock = threading.Lock()
        self._wraps_left: dict[tuple[str, int], int] = {}
        self._wrap_block: dict[tuple[str, int], int] = {}
        self._wraps_pid = os.getpid()

    def __repr__(self) -> str:
        mode = "passphrase" if self._passphrase is not None else "key file"
        return f"Keystore({str(self.directory)!r}, unlock={mode!r})"

    # -- reading -------------------------------------------------------------

    def snapshot(self) -> Snapshot | None:
        """The current verified document, or ``None`` if the keystore has no file yet.

        Reloads only when ``keystore.json`` has changed on disk.  Whether it
        has is checked (one ``stat``) at most every ``recheck_interval``
        seconds, and at once after any write through any keystore object of
        this process; a write by another process is seen within
        ``recheck_interval``.
        """
        loaded = self._loaded
        if (
            loaded is not None
            and time.monotonic() < self._fresh_until
            and _WRITES.get(self._path_text, 0) == self._writes_seen
        ):
            return loaded.snapshot
        with self._state_lock:
            writes = _WRITES.get(self._path_text, 0)  # before the stat: a later write rechecks
            checked = time.monotonic()
            try:
                signature = _signature(os.stat(self._path_text))
            except FileNotFoundError:
                self._loaded = None
                if self._pinned:
                    raise self._missing_pinned() from None
                return None
            if self._loaded is not None and self._loaded.signature == signature:
                snapshot = self._loaded.snapshot
            else:
                read = self._read_file()
                if read is None:
                    return None
                snapshot = self._adopt(*read)  # raises for a rollback: nothing is marked fresh
            self._writes_seen = writes
            self._fresh_until = checked + self._recheck_interval
            return snapshot

    def sealing(self) -> tuple[str, Sealer]:
        """The keystore ID and sealer, writing a new, empty keystore if there is none yet.

        For data the provider keeps beside the document (import jobs) sealed under
        the same master key and bound to this keystore.
        """
        snapshot = self.snapshot()
        if snapshot is not None:
            return snapshot.document.keystore_id, snapshot.sealer

        def create(
            document: KeystoreDocument, sealer: Sealer
        ) -> tuple[KeystoreDocument, tuple[str, Sealer]]:
            return attrs.evolve(document), (document.keystore_id, sealer)

        return self._write(create)[1]

    def close(self) -> None:
        """Hand back unused wraps, flush the usage counters, then forget keys and caches.

        A write that fails is logged, not raised: closing always completes.
        (Wraps not handed back stay counted as made: safe, only wasteful.)
        """
        self._release_wraps_quietly()
        self._flush_usage_quietly()
        with self._state_lock:
            self._loaded = None
            self._derived = None

    def info(self) -> KeystoreInfo:
        """The keystore's ID, fingerprint and generation, to pin in the configuration."""
        snapshot = self.snapshot()
        if snapshot is None:
            raise KeyNotFound(
                f"keystore {self.directory} has no {KEYSTORE_FILE} yet: it is created with "
                "the first key (`aureus keys create`)",
                provider=SCHEME,
            )
        document = snapshot.document
        return KeystoreInfo(
            directory=self.directory,
            keystore_id=document.keystore_id,
            fingerprint=snapshot.sealer.fingerprint(document.keystore_id),
            generation=document.generation,
            unlock="key-file" if document.scrypt is None else "passphrase",
            scrypt_log_n=None if document.scrypt is None else document.scrypt.log_n,
        )

    def change_passphrase(self, new_passphrase: Secret[str]) -> KeystoreInfo:
        """Re-seal a passphrase keystore under ``new_passphrase`` (fresh salt, current cost).

        The current passphrase must open it.  Every key version's material is
        re-sealed under the new master key and the whole document replaces
        the old one in one atomic rename: a crash at any point leaves the old
        keystore (old passphrase) or the new one (new passphrase).  The same
        passphrase may be given again to move an old keystore to the current
        scrypt cost.  The fingerprint changes with the master key: update a
        pinned ``keystore_fingerprint`` to the one returned.
        """
        if not new_passphrase.reveal():
            raise CredentialError("the new passphrase is empty: choose a non-empty one")
        with self._write_lock:
            if not self.path.exists():
                raise KeyNotFound(
                    f"keystore {self.directory} has no {KEYSTORE_FILE}: there is nothing "
                    "to re-seal",
                    provider=SCHEME,
                )
            with self._locked():
                self._remove_stale_temp_files()
                read = self._read_file()
                if read is None:
                    raise KeyNotFound(
                        f"keystore {self.directory} has no {KEYSTORE_FILE}", provider=SCHEME
                    )
                with self._state_lock:
                    current = self._adopt(*read)
                document = current.document
                if document.scrypt is None:
                    raise ConfigError(
                        f"keystore {self.directory} is unlocked by its key file "
                        f"{MASTER_KEY_FILE}, not a passphrase: there is no passphrase to "
                        "change (converting a key-file keystore is not supported)"
                    )
                params = ScryptParams.fresh(self._scrypt_log_n)
                sealer = Sealer(params.derive(new_passphrase.reveal()))
                taken = self._take_usage()
                written = False
                try:
                    base = _with_usage(document, taken)
                    resealed = attrs.evolve(
                        base,
                        keys={
                            name: _resealed(current, sealer, base.keystore_id, record)
                            for name, record in base.keys.items()
                        },
                        scrypt=params,
                        verifier=sealer.verifier(),
                        generation=document.generation + 1,
                    )
                    self._commit(resealed, sealer, current)
                    written = True
                finally:
                    self._settle_usage(taken, written=written)
                self._passphrase = new_passphrase
                self._derived = (params, sealer)
                if self._fingerprint_pin is not None:
                    self._fingerprint_pin = sealer.fingerprint(document.keystore_id)
        return self.info()

    # -- usage counters --------------------------------------------------------

    def record_use(
        self, name: str, version: int, *, messages: int = 1, byte_count: int = 0
    ) -> None:
        """Count one use of a key version; flush the counters if they are due.

        Due means ``usage_flush_interval`` seconds since the last flush or
        ``usage_flush_operations`` uses not yet flushed.  The flush happens in
        the calling thread unless another thread is writing already; a flush
        that fails is logged and retried when next due, never raised: a
        counter must not break an encryption.
        """
        with self._usage_lock:
            old = self._usage.get((name, version), (0, 0))
            self._usage[(name, version)] = (old[0] + messages, old[1] + byte_count)
            self._usage_uses += 1
            due = (
                self._usage_uses >= self._usage_flush_operations
                or self._monotonic() - self._usage_flushed_at >= self._usage_flush_interval
            )
        if due and self._write_lock.acquire(blocking=False):
            try:
                self._flush_usage_quietly()
            finally:
                self._write_lock.release()

    def unflushed_use(self, name: str, version: int) -> tuple[int, int]:
        """``(messages, bytes)`` of a version counted here but not yet in the snapshot."""
        slot = (name, version)
        with self._usage_lock:
            pending = self._usage.get(slot, (0, 0))
            carried = self._usage_in_flight.get(slot, (0, 0))
        return pending[0] + carried[0], pending[1] + carried[1]

    def flush_usage(self) -> None:
        """Write the unflushed usage counters now (raises if the write fails)."""
        with self._usage_lock:
            if not self._usage:
                self._usage_flushed_at = self._monotonic()
                self._usage_uses = 0
                return
        if not self.path.exists():
            with self._usage_lock:  # nothing to count against: the keystore is gone
                self._usage.clear()
                self._usage_uses = 0
            return

        def gone() -> NoReturn:
            raise ProviderUnavailable(
                f"keystore file {self.path} disappeared before its usage counters were saved",
                provider=SCHEME,
            )

        self._write(lambda document, _sealer: (document, None), missing=gone)

    def _flush_usage_quietly(self) -> None:
        try:
            self.flush_usage()
        except (AureusError, OSError) as error:
            with self._usage_lock:
                self._usage_flushed_at = self._monotonic()  # retry when next due
            _log.warning("usage counters of keystore %s not saved yet: %s", self.directory, error)

    def _take_usage(self) -> Usage:
        """Move the unflushed deltas to the in-flight set, for a write to carry."""
        with self._usage_lock:
            taken, self._usage = self._usage, {}
            for slot, (m, b) in taken.items():
                old = self._usage_in_flight.get(slot, (0, 0))
                self._usage_in_flight[slot] = (old[0] + m, old[1] + b)
            self._usage_uses = 0
            return taken

    def _settle_usage(self, taken: Usage, *, written: bool) -> None:
        """After a write: forget the carried deltas, or put them back if it failed."""
        with self._usage_lock:
            for slot, (m, b) in taken.items():
                old = self._usage_in_flight.pop(slot, (0, 0))
                rest = (old[0] - m, old[1] - b)
                if rest != (0, 0):
                    self._usage_in_flight[slot] = rest
                if not written:
                    pending = self._usage.get(slot, (0, 0))
                    self._usage[slot] = (pending[0] + m, pending[1] + b)
            if written:
                self._usage_flushed_at = self._monotonic()

    # -- the AES-GCM wrap bound --------------------------------------------------

    def reserve_wrap(self, name: str, version: int) -> None:
        """Take one wrap for a key version from this process's block, reserving one if needed.

        Raises :class:`KeyDisabled` once the version has reserved
        ``max_wraps_per_version`` wraps: it must not wrap again, the key must
        be rotated.  Call before each wrap.
        """
        slot = (name, version)
        if self._take_wrap(slot):
            return
        with self._write_lock:
            if self._take_wrap(slot):  # another thread reserved a block meanwhile
                return
            with self._wrap_lock:
                wanted = self._wrap_block.get(slot, WRAP_BLOCK_MIN)

            def reserve(
                document: KeystoreDocument, _sealer: Sealer
            ) -> tuple[KeystoreDocument, int]:
                record = document.keys.get(name)
                stored = None if record is None else record.version(version)
                if record is None or stored is None:
                    raise self.not_found(name, version)
                left = self._max_wraps - stored.wraps_reserved
                if left <= 0:
                    raise KeyDisabled(
                        f"{key_uri(name)} version {version} has made its {self._max_wraps} "
                        "wraps, the most one AES-GCM key may make with random 96-bit IVs "
                        f"(NIST SP 800-38D); rotate the key (`aureus keys rotate "
                        f"{key_uri(name)}`) and wrap with the new version",
                        provider=SCHEME,
                        code="wrap-limit",
                    )
                granted = min(wanted, left)
                reserved = attrs.evolve(stored, wraps_reserved=stored.wraps_reserved + granted)
                return document.with_key(record.replacing(reserved)), granted

            _, granted = self._write(reserve)
            with self._wrap_lock:
                self._own_wraps()
                self._wraps_left[slot] = self._wraps_left.get(slot, 0) + granted - 1
                self._wrap_block[slot] = min(WRAP_BLOCK_MAX, wanted * 2)

    def _own_wraps(self) -> None:
        """Forget blocks a parent process reserved (caller holds ``_wrap_lock``).

        A child made by ``fork`` inherits the parent's unused wraps in memory; used
        there as well, two processes would make them twice, and handed back by both,
        the stored count would fall below the wraps made.  They stay the parent's.
        """
        pid = os.getpid()
        if pid != self._wraps_pid:
            self._wraps_left = {}
            self._wrap_block = {}
            self._wraps_pid = pid

    def _take_wrap(self, slot: tuple[str, int]) -> bool:
        with self._wrap_lock:
            self._own_wraps()
            left = self._wraps_left.get(slot, 0)
            if left <= 0:
                return False
            self._wraps_left[slot] = left - 1
            return True

    def _release_wraps_quietly(self) -> None:
        """Give the unused wraps of this process's blocks back to the document."""
        with self._write_lock:
            with self._wrap_lock:
                self._own_wraps()
                unused = {slot: n for slot, n in self._wraps_left.items() if n > 0}
                self._wraps_left.clear()
                self._wrap_block.clear()
            if not unused or not self.path.exists():
                return

            def release(
                document: KeystoreDocument, _sealer: Sealer
            ) -> tuple[KeystoreDocument, None]:
                for (name, number), count in unused.items():
                    record = document.keys.get(name)
                    stored = None if record is None else record.version(number)
                    if record is not None and stored is not None and stored.wraps_reserved >= count:
                        released = attrs.evolve(
                            stored, wraps_reserved=stored.wraps_reserved - count
                        )
                        document = document.with_key(record.replacing(released))
                return document, None

            try:
                self._write(release, missing=lambda: _nothing_to_release())
            except (AureusError, OSError) as error:
                _log.warning(
                    "unused wraps of keystore %s not handed back (they stay counted): %s",
                    self.directory,
                    error,
                )

    # -- writing -------------------------------------------------------------

    def add_key(
        self,
        name: str,
        key_type: KeyType,
        material: bytes,
        *,
        description: str,
        labels: tuple[tuple[str, str], ...],
        origin: str,
        created_at: datetime,
        keyring: RawKeyring | None = None,
    ) -> KeyRecord:
        """Store a new key with ``material`` as version 1; :class:`KeyExists` if taken.

        A raw keyring key's namespace and key name must be unused as well.
        """

        def change(document: KeystoreDocument, sealer: Sealer) -> KeyRecord:
            if name in document.keys:
                raise KeyExists(
                    f"key {key_uri(name)} already exists in keystore {self.directory}: "
                    "pick another name, or rotate the existing key to get new material",
                    provider=SCHEME,
                )
            if keyring is not None:
                _check_keyring_unused(document, keyring)
            empty = KeyRecord(
                name=name,
                key_type=key_type,
                created_at=created_at,
                description=description,
                labels=labels,
                current_version=0,
                versions=(),
                keyring=keyring,
            )
            return empty.with_version(
                _seal_version(sealer, document, empty, 1, material, origin, created_at)
            )

        return self._update(change)

    def add_version(
        self,
        name: str,
        material: Callable[[KeyRecord], bytes],
        *,
        origin: str,
        created_at: datetime,
    ) -> KeyRecord:
        """Add a new current version to key ``name``; :class:`KeyNotFound` if absent.

        ``material`` is called with the stored key (under the write lock) and
        returns the new version's material; it may raise to refuse.
        """

        def missing() -> NoReturn:
            raise self.not_found(name)

        def change(document: KeystoreDocument, sealer: Sealer) -> KeyRecord:
            record = document.keys.get(name)
            if record is None:
                missing()
            number = len(record.versions) + 1
            sealed = _seal_version(
                sealer, document, record, number, material(record), origin, created_at
            )
            return record.with_version(sealed)

        return self._update(change, missing=missing)

    def update_key(self, name: str, change: Callable[[KeyRecord], KeyRecord | None]) -> KeyRecord:
        """Replace key ``name`` with ``change(stored key)``; :class:`KeyNotFound` if absent.

        ``change`` must be pure: it is called on the loaded snapshot first, so
        that refusals (it raises) and no-ops (it returns ``None``: the stored
        key is returned) take no file lock and write nothing, then again on
        the document read under the lock.
        """

        def missing() -> NoReturn:
            raise self.not_found(name)

        def apply(document: KeystoreDocument, sealer: Sealer) -> KeyRecord:
            record = document.keys.get(name)
            if record is None:
                missing()
            return change(record) or record

        with self._write_lock:
            if not self.path.exists():
                missing()
            # Refusals and no-ops need no file lock and no write; the change is
            # checked again under the lock below.
            snapshot = self.snapshot()
            stored = None if snapshot is None else snapshot.keys.get(name)
            if stored is not None and change(stored) is None:
                return stored
            return self._update(apply, missing=missing)

    def not_found(self, name: str, version: int | None = None) -> KeyNotFound:
        """The error for a key (or key version) that is not in this keystore."""
        if version is None:
            what = f"no key {key_uri(name)} in keystore {self.directory}"
        else:
            what = f"key {key_uri(name)} has no version {version} in keystore {self.directory}"
        return KeyNotFound(f"{what}: `aureus keys list` shows the keys", provider=SCHEME)

    def _update(
        self,
        change: Callable[[KeystoreDocument, Sealer], KeyRecord],
        *,
        missing: Callable[[], NoReturn] | None = None,
    ) -> KeyRecord:
        """Apply ``change`` to one key of the document on disk, under the lock, and write it.

        Returns the key as written (with any usage counters flushed alongside).
        """

        def apply(document: KeystoreDocument, sealer: Sealer) -> tuple[KeystoreDocument, str]:
            record = change(document, sealer)
            return document.with_key(record), record.name

        updated, name = self._write(apply, missing=missing)
        return updated.keys[name]

    def _write(
        self,
        change: Callable[[KeystoreDocument, Sealer], tuple[KeystoreDocument, T]],
        *,
        missing: Callable[[], NoReturn] | None = None,
    ) -> tuple[KeystoreDocument, T]:
        """Apply ``change`` to the document on disk, under the lock, and write the result.

        Unflushed usage counters are first added to the document as read from
        disk, so they are written with any change and merge with what other
        processes flushed.  Nothing is written if neither changed anything.
        """
        with self._write_lock:
            if missing is not None and not self.path.exists():
                missing()  # nothing to change: do not even create the directory
            self._ensure_directory()
            with self._locked():
                self._remove_stale_temp_files()
                read = self._read_file()  # another process may have written since
                with self._state_lock:
                    current = None if read is None else self._adopt(*read)
                    if current is not None:
                        document, sealer = current.document, current.sealer
                        if document.scrypt is None:
                            # Never add keys that a lost or replaced master.key could not open.
                            self._unlock(None, document.verifier)
                    elif missing is not None:
                        missing()
                    else:
                        document, sealer = self._new_document()
                taken = self._take_usage()
                written = False
                try:
                    updated, result = change(_with_usage(document, taken), sealer)
                    if updated is not document:
                        updated = attrs.evolve(updated, generation=document.generation + 1)
                        self._commit(updated, sealer, current)
                    written = True
                    return updated, result
                finally:
                    self._settle_usage(taken, written=written)

    def _commit(self, updated: KeystoreDocument, sealer: Sealer, current: Snapshot | None) -> None:
        """Write ``updated`` over ``keystore.json`` and make it the loaded snapshot."""
        if updated.generation > MAX_COUNT:
            # Every reader refuses a generation past MAX_COUNT: writing it would lock every
            # process out.  Aureus adds 1 a write, so only a hand-made document gets here.
            raise self._corrupted(
                f"it is at generation {MAX_COUNT}, the highest a reader accepts, so it cannot "
                "be written again (Aureus adds 1 a write: this document was made by hand)"
            )
        unsigned = to_json(updated)
        content = render(unsigned, sealer.mac(unsigned))
        self._replace(content)
        carried = None
        if current is not None:  # keep decrypted material, except for destroyed versions
            carried = {
                slot: material
                for slot, material in current.decrypted().items()
                if (key := updated.keys.get(slot[0])) is not None
                and (version := key.version(slot[1])) is not None
                and not version.destroyed
            }
        snapshot = Snapshot(updated, sealer, self._corrupted, carried)
        signature = _signature(os.stat(self.path))
        with self._state_lock:
            self._loaded = _Loaded(signature, content, snapshot)
            self._seen_generation = max(self._seen_generation, updated.generation)
        _seen_in_process(updated.keystore_id, updated.generation)
        self._record_generation(updated.keystore_id, updated.generation, quiet=True)

    # -- files ---------------------------------------------------------------

    def _read_file(self) -> tuple[bytes, FileSignature] | None:
        try:
            fd = os.open(self.path, READ_FLAGS)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as file:
            signature = _signature(os.fstat(file.fileno()))
            return file.read(), signature

    def _adopt(self, content: bytes, signature: FileSignature) -> Snapshot:
        """Verify ``content`` (unless it is what is already loaded) and make it current."""
        if self._loaded is not None and self._loaded.content == content:
            snapshot = self._loaded.snapshot
        else:
            snapshot = self._verify(content)
        self._loaded = _Loaded(signature, content, snapshot)
        return snapshot

    def _verify(self, content: bytes) -> Snapshot:
        try:
            obj, mac = load_json(content)
            _, scrypt, verifier = parse_header(obj)
        except NewerFormat as error:
            raise ProviderUnavailable(
                f"keystore file {self.path} cannot be read: {error}; upgrade aureus-kms",
                provider=SCHEME,
            ) from None
        except FormatProblem as error:
            raise self._corrupted(str(error)) from None
        sealer = self._unlock(scrypt, verifier)
        if not sealer.mac_matches(obj, mac):
            raise self._corrupted(
                "its integrity check (HMAC) failed, so it was changed outside Aureus or damaged"
            )
        try:
            document = parse_document(obj)
        except FormatProblem as error:
            raise self._corrupted(str(error)) from None
        self._check_identity(document, sealer)
        self._check_generation(document)
        if document.scrypt is not None and document.scrypt.log_n < DEFAULT_SCRYPT_LOG_N:
            _log.warning(
                "keystore %s derives its master key with scrypt N=2**%d, below the 2**%d "
                "new keystores use: re-seal it with `aureus keys passphrase`",
                self.directory,
                document.scrypt.log_n,
                DEFAULT_SCRYPT_LOG_N,
            )
        return Snapshot(document, sealer, self._corrupted)

    def _check_identity(self, document: KeystoreDocument, sealer: Sealer) -> None:
        """Refuse a document that is not the keystore the configuration pins."""
        found_id = document.keystore_id
        if self._keystore_id_pin is not None and found_id != self._keystore_id_pin:
            raise self._refused(
                f"its keystore_id is {found_id}, but the configuration pins "
                f"{self._keystore_id_pin}: this is another keystore, or it was replaced",
                "point the keystore option at the pinned keystore, or restore it from a backup",
                code="identity-mismatch",
            )
        found = sealer.fingerprint(found_id)
        if self._fingerprint_pin is not None and found != self._fingerprint_pin:
            raise self._refused(
                f"its fingerprint is {found}, but the configuration pins "
                f"{self._fingerprint_pin}: it is sealed under another master key, so it "
                f"(and its {MASTER_KEY_FILE} or passphrase) was replaced, unless its "
                "passphrase was changed since the pin was taken",
                "restore the pinned keystore from a backup; only if you changed the passphrase "
                "yourself, update keystore_fingerprint (`aureus keys keystore-info`)",
                code="identity-mismatch",
            )

    def _check_generation(self, document: KeystoreDocument) -> None:
        """Refuse a document older than one already seen or than the pinned minimum."""
        found = document.generation
        seen = max(self._seen_generation, _seen_in_process(document.keystore_id))
        floors = [(self._min_generation, "the configuration pins min_generation", "")]
        if self._state is not None:
            floors.append(
                (self._state.seen(document.keystore_id), f"{self._state.path} records", "")
            )
        floors.append(
            (seen, "this process has already seen generation", ", then restart this process")
        )
        for floor, source, restart in floors:
            if found < floor:
                raise self._refused(
                    f"it is at generation {found}, but {source} {floor}: it is an older copy "
                    "(a restored backup, or a rollback that brings back rotated, disabled or "
                    "destroyed key versions)",
                    f"restore the newest {KEYSTORE_FILE}; if you restored this older one on "
                    "purpose, lower min_generation and remove its entry from the state file"
                    + restart,
                    code="rollback",
                )
        self._seen_generation = max(self._seen_generation, found)
        _seen_in_process(document.keystore_id, found)
        self._record_generation(document.keystore_id, found, quiet=False)

    def _record_generation(self, keystore_id: str, generation: int, *, quiet: bool) -> None:
        if self._state is None or generation == 0:
            return
        try:
            self._state.record(keystore_id, generation)
        except (AureusError, OSError) as error:
            if not quiet:
                raise
            _log.warning("keystore state file %s not updated: %s", self._state.path, error)

    @property
    def _pinned(self) -> bool:
        return (
            self._keystore_id_pin is not None
            or self._fingerprint_pin is not None
            or self._min_generation > 0
        )

    def _missing_pinned(self) -> KeystoreCorrupted:
        return KeystoreCorrupted(
            f"keystore {self.directory} has no {KEYSTORE_FILE}, but it existed: the "
            "configuration pins it (keystore_id, keystore_fingerprint or min_generation) or "
            f"this process has read it. Restore {KEYSTORE_FILE} (with its {MASTER_KEY_FILE}, "
            "if any) from a backup; to start a new keystore here, remove the pins",
            provider=SCHEME,
            code="missing",
        )

    def _refused(self, reason: str, remedy: str, *, code: str) -> KeystoreCorrupted:
        return KeystoreCorrupted(
            f"keystore file {self.path} was refused: {reason}. Nothing was changed; {remedy}",
            provider=SCHEME,
            code=code,
        )

    def _unlock(self, scrypt: ScryptParams | None, verifier: bytes) -> Sealer:
        """The sealer for this keystore's master key, checking it is the right one."""
        if scrypt is None:
            if self._passphrase is not None:
                raise CredentialError(
                    f"keystore {self.directory} is unlocked by its key file {MASTER_KEY_FILE}, "
                    f"not by a passphrase: unset {self._passphrase_source} (and drop any "
                    "passphrase credentials from the local provider's configuration)"
                )
            sealer = Sealer(self._read_master_key())
            if not sealer.matches(verifier):
                raise self._corrupted(
                    f"{self.master_key_path} is not the master key this file was made with; "
                    f"restore the matching {MASTER_KEY_FILE}"
                )
            return sealer
        if self._passphrase is None:
            raise CredentialError(
                f"keystore {self.directory} is protected by a passphrase: set {PASSPHRASE_ENV}, "
                "or give the local provider credentials with a 'passphrase' value"
            )
        sealer = self._passphrase_sealer(scrypt)
        if not sealer.matches(verifier):
            raise CredentialError(
                f"wrong passphrase for keystore {self.directory}: check "
                f"{self._passphrase_source}, where it came from"
            )
        return sealer

    def _passphrase_sealer(self, scrypt: ScryptParams) -> Sealer:
        if self._derived is not None and self._derived[0] == scrypt:
            return self._derived[1]
        assert self._passphrase is not None
        sealer = Sealer(scrypt.derive(self._passphrase.reveal()))
        self._derived = (scrypt, sealer)
        return sealer

    def _new_document(self) -> tuple[KeystoreDocument, Sealer]:
        """Start a keystore: a passphrase-derived or a new (or leftover) file master key."""
        if self._pinned or self._seen_generation > 0:
            raise self._missing_pinned()
        scrypt: ScryptParams | None = None
        if self._passphrase is not None:
            if self.master_key_path.exists():
                raise CredentialError(
                    f"keystore {self.directory} has a key file {MASTER_KEY_FILE}, so it is "
                    "unlocked by that file, not a passphrase: unset "
                    f"{self._passphrase_source} (or, "
                    f"if {KEYSTORE_FILE} never existed, delete {MASTER_KEY_FILE})"
                )
            scrypt = ScryptParams.fresh(self._scrypt_log_n)
            sealer = self._passphrase_sealer(scrypt)
        else:
            sealer = Sealer(self._read_or_create_master_key())
        document = KeystoreDocument(
            keystore_id=uuid.uuid4().hex,
            created_at=self._clock(),
            scrypt=scrypt,
            verifier=sealer.verifier(),
        )
        return document, sealer

    def _read_master_key(self, *, adopting: bool = False) -> bytes:
        """The file master key; ``adopting``: for a new keystore, from a file found in place."""
        try:
            fd = os.open(self.master_key_path, READ_FLAGS)
        except FileNotFoundError:
            raise KeystoreCorrupted(
                f"the master key file {self.master_key_path} of keystore {self.directory} "
                f"is missing: restore it from a backup; without it the keys in {KEYSTORE_FILE} "
                "cannot be decrypted",
                provider=SCHEME,
            ) from None
        with os.fdopen(fd, "rb") as file:
            if adopting:
                self._check_adopted_master_key(os.fstat(file.fileno()))
            key = file.read(MASTER_KEY_SIZE + 1)
        if len(key) != MASTER_KEY_SIZE:
            raise KeystoreCorrupted(
                f"the master key file {self.master_key_path} is damaged (it must hold exactly "
                f"{MASTER_KEY_SIZE} bytes): restore it from a backup",
                provider=SCHEME,
            )
        return key

    def _read_or_create_master_key(self) -> bytes:
        """Read ``master.key``, creating it first if absent (caller holds the lock).

        Created complete under a temporary name, then hard-linked into place:
        the final name never refers to a partly written key.
        """
        if self.master_key_path.exists():
            # No keystore.json yet, so nothing vouches for this key: adopt it only if it is
            # what this user's own earlier attempt (a crash before keystore.json) left.
            return self._read_master_key(adopting=True)
        temp = self._temp_path(MASTER_KEY_FILE)
        write_new_file(temp, secrets.token_bytes(MASTER_KEY_SIZE))
        try:
            os.link(temp, self.master_key_path)
        except FileExistsError:
            pass  # another process of this keystore created one first: use it
        finally:
            temp.unlink(missing_ok=True)
        fsync_directory(self.directory)
        return self._read_master_key(adopting=True)

    def _check_adopted_master_key(self, status: os.stat_result) -> None:
        """Refuse a ``master.key`` someone else could have put there for a new keystore.

        Whoever chose the master key can read every key sealed under it, and the
        fingerprint an operator pins would vouch for it.  Aureus creates the file as
        the process's user with mode 0600; a file of another owner, or one the group
        or others may read or write, is not one it made.
        """
        owner = getattr(os, "geteuid", None)
        foreign = owner is not None and status.st_uid != owner()
        if foreign or status.st_mode & 0o077 or not stat.S_ISREG(status.st_mode):
            raise KeystoreCorrupted(
                f"keystore {self.directory} has no {KEYSTORE_FILE} yet, but has a "
                f"{MASTER_KEY_FILE} that this user did not create as Aureus does (owner uid "
                f"{status.st_uid}, mode {stat.S_IMODE(status.st_mode):04o}): whoever placed "
                "it could read every key sealed under it. Delete it if you do not know where "
                f"it came from, and create the keystore again; if it is your own, make it "
                f"yours with mode 0600 (chmod 600 {self.master_key_path})",
                provider=SCHEME,
            )

    def _replace(self, content: bytes) -> None:
        temp = self._temp_path(KEYSTORE_FILE)
        try:
            write_new_file(temp, content)
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        with _WRITES_LOCK:  # every keystore object of this process rechecks on its next read
            _WRITES[self._path_text] = _WRITES.get(self._path_text, 0) + 1
        fsync_directory(self.directory)

    def _temp_path(self, name: str) -> Path:
        return self.directory / f".{name}.{secrets.token_hex(8)}{_TEMP_SUFFIX}"

    def _remove_stale_temp_files(self) -> None:
        """Delete temporary files a crashed writer left (caller holds the lock)."""
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.startswith(_TEMP_PREFIXES) and entry.name.endswith(_TEMP_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)

    def _ensure_directory(self) -> None:
        """Create the directory (mode 0700), or tighten an existing one to 0700."""
        try:
            self.directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ConfigError(
                f"keystore path {self.directory} exists and is not a directory: "
                "point the keystore option or AUREUS_KEYSTORE at a directory"
            ) from None
        if not self.directory.is_dir():
            raise ConfigError(
                f"keystore path {self.directory} is not a directory: "
                "point the keystore option or AUREUS_KEYSTORE at a directory"
            )
        if os.name == "posix" and (self.directory.stat().st_mode & 0o777) != DIRECTORY_MODE:
            os.chmod(self.directory, DIRECTORY_MODE)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._file_lock is None:
            self._file_lock = FileLock(
                self.directory / LOCK_FILE, timeout=self._lock_timeout, mode=FILE_MODE
            )
        try:
            self._file_lock.acquire()
        except LockTimeout:
            raise ProviderUnavailable(
                f"keystore {self.directory} stayed locked by another writer for "
                f"{self._lock_timeout:g} s ({LOCK_FILE}): retry, or look for a stuck process",
                provider=SCHEME,
            ) from None
        try:
            yield
        finally:
            self._file_lock.release()

    def _corrupted(self, reason: str) -> KeystoreCorrupted:
        return KeystoreCorrupted(
            f"keystore file {self.path} is corrupted: {reason}. Nothing was changed; "
            f"restore {KEYSTORE_FILE} (with its {MASTER_KEY_FILE}, if any) from a backup",
            provider=SCHEME,
        )


def _check_keyring_unused(document: KeystoreDocument, keyring: RawKeyring) -> None:
    """Refuse a second raw key under the same key namespace and key name."""
    for record in document.keys.values():
        other = record.keyring
        if other is not None and (other.namespace, other.key_name) == (
            keyring.namespace,
            keyring.key_name,
        ):
            raise KeyExists(
                f"key {key_uri(record.name)} already has key namespace {keyring.namespace!r} "
                f"and key name {keyring.key_name!r}: a message names its wrapping key by these "
                "two alone, so they must be unique in the keystore",
                provider=SCHEME,
            )


def _with_usage(document: KeystoreDocument, usage: Usage) -> KeystoreDocument:
    """``document`` with the usage deltas added to its counters (unknown versions dropped)."""
    if not usage:
        return document
    keys = dict(document.keys)
    for (name, number), (messages, byte_count) in usage.items():
        record = keys.get(name)
        version = None if record is None else record.version(number)
        if record is not None and version is not None:
            keys[name] = record.replacing(version.used(messages, byte_count))
    return attrs.evolve(document, keys=keys)


def _resealed(current: Snapshot, sealer: Sealer, keystore_id: str, key: KeyRecord) -> KeyRecord:
    """``key`` with the material of every version not destroyed re-sealed by ``sealer``."""
    versions = []
    for version in key.versions:
        if not version.destroyed:
            nonce, ciphertext = sealer.seal(
                current.material(key, version),
                keystore_id=keystore_id,
                name=key.name,
                version=version.version,
                key_type=key.key_type.value,
            )
            version = attrs.evolve(version, nonce=nonce, ciphertext=ciphertext)
        versions.append(version)
    return attrs.evolve(key, versions=tuple(versions))


def _seal_version(
    sealer: Sealer,
    document: KeystoreDocument,
    key: KeyRecord,
    number: int,
    material: bytes,
    origin: str,
    created_at: datetime,
) -> VersionRecord:
    nonce, ciphertext = sealer.seal(
        material,
        keystore_id=document.keystore_id,
        name=key.name,
        version=number,
        key_type=key.key_type.value,
    )
    return VersionRecord(
        version=number,
        created_at=created_at.astimezone(timezone.utc),
        origin=origin,
        nonce=nonce,
        ciphertext=ciphertext,
    )


def _signature(stat: os.stat_result) -> FileSignature:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def check_scrypt_log_n(value: object, *, insecure: bool = False) -> int:
    """``value`` if it is a scrypt cost exponent new keystores may use, else :class:`ConfigError`.

    17 to 20; from 10 only with ``insecure`` (``insecure_kdf_for_tests``).
    """
    allowed = SCRYPT_LOG_N_RANGE if insecure else STRONG_SCRYPT_LOG_N_RANGE
    if not _is_count(value) or value not in allowed:
        hint = "" if insecure else " (lower values are for test suites: insecure_kdf_for_tests)"
        raise ConfigError(
            f"scrypt_log_n must be a whole number from {allowed.start} to {allowed.stop - 1}"
            f"{hint}, not {value!r}"
        )
    assert isinstance(value, int)
    return value


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_hex(value: str | None, option: str, size: int) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or len(value) != size
        or any(c not in "0123456789abcdef" for c in value)
    ):
        raise ConfigError(
            f"the local provider's {option} must be {size} lowercase hex digits as "
            f"`aureus keys keystore-info` prints it, not {value!r}"
        )
    return value


def _nothing_to_release() -> NoReturn:
    raise ProviderUnavailable(
        "the keystore file disappeared before unused wraps were handed back", provider=SCHEME
    )
