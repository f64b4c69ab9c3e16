"""The ``jsonl`` audit sink: an append-only, hash-chained JSON-lines log that can be verified.

Each event becomes one line linked to the one before it (see
:mod:`aureus_core.audit.chain` for the format).  Appends from any number
of threads and processes go through one lock file; inside it the writer
re-reads the head file, checks that the log still ends where the head says,
appends, syncs and rewrites the head.  A log that was cut, or a head file that
was edited, stops the sink (and, with auditing required, the stack) instead of
being silently continued; so does a log that ends before what this writer
wrote, or before what its anchor (a file elsewhere that receives every signed
record) says.

Enable it with ``AUREUS_AUDIT_LOG=PATH``, or::

    [[audit.sinks]]
    type = "jsonl"
    path = "audit/audit.jsonl"
    hmac_key = "local://audit-mac"          # aes-256: HMAC chain, unforgeable without it
    checkpoint_key = "local://audit-signer" # ed25519 / ecdsa-p256: signed checkpoints
    checkpoint_every = 1000
    anchor = "/srv/anchor/audit.anchor"     # signed records copied outside the log's directory
    max_bytes = 104857600                   # rotate into audit.jsonl.000001 ...
    sync = "record"                         # or "batch" (fsync every sync_every appends)
"""

from __future__ import annotations

import hmac
import os
import re
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from aureus_core.audit import AuditEvent, derive_key
from aureus_core.audit.chain import (
    GENESIS,
    HEAD_FORMAT,
    HMAC_SHA256,
    SHA256,
    ChainParams,
    FileDecl,
    Record,
    anchor_entry,
    base_uri,
    canonical,
    chain_key_label,
    encode_line,
    head_mac,
    head_path,
    lock_path,
    make_sig,
    new_log_id,
    parse_json,
    read_anchor,
    read_events,
    read_first_line,
    read_head,
    record_at,
    record_hash,
    rotated_files,
    rotated_path,
    signed_bytes,
)
from aureus_core.durable import fsync_directory, write_all
from aureus_core.errors import AuditSinkError, AureusError, ConfigError
from aureus_core.interfaces import Capability, ProviderLookup
from aureus_core.keyref import KeyRef
from aureus_core.locks import FileLock, LockTimeout
from aureus_core.options import Options, positive_int

DEFAULT_CHECKPOINT_EVERY = 1000
DEFAULT_SYNC_EVERY = 100
DEFAULT_LOCK_TIMEOUT = 30.0
DEFAULT_KEY_CHECK_INTERVAL = 60.0
"""Seconds between checks of the MAC key's current version (a rotation starts a new file)."""
SYNC_MODES = ("record", "batch")
FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
RECORD_OVERHEAD = 200
"""Bytes an event record adds around its event (seq, links, hash), for rotation."""
FIRST_APPEND_RECORDS = 3
"""The most records one append writes to a new log: file record, event, checkpoint."""
OPTIONS = (
    "path",
    "hmac_key",
    "checkpoint_key",
    "checkpoint_every",
    "max_bytes",
    "sync",
    "sync_every",
    "lock_timeout",
    "anchor",
    "key_check_interval",
)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@attrs.frozen(kw_only=True)
class _Tail:
    """Where the chain ends: what the head file records."""

    seq: int
    hash: str
    index: int
    """The number of the active file (1 for the first)."""
    size: int
    """The active file's size after the last record."""
    unsigned: int
    """Events since the last signed record."""


@attrs.frozen(kw_only=True)
class _Reached:
    """The last record a sink wrote: its seq, hash and log, and where its line ends."""

    seq: int
    hash: str
    log: str | None
    index: int
    """The number of the file it was written to."""
    end: int
    """The offset just past its newline in that file."""


@attrs.frozen(kw_only=True)
class _FileInfo:
    decl: FileDecl
    first_seq: int


@attrs.frozen(kw_only=True)
class _State:
    tail: _Tail | None
    """``None``: a new log."""
    info: _FileInfo | None
    """The active file's file record (``None``: there is no active file)."""
    log: str | None = None
    """The log ID of the chain's last file (``None``: a new log, or a format-1 file)."""


class JsonlAuditSink:
    """Appends every event to a hash-chained JSON-lines log at ``path``.

    ``hmac_key`` (an aes-256 key URI) makes the chain an HMAC chain under a
    key derived from it through its provider's ``mac``; ``checkpoint_key`` (a
    signing key URI) signs a checkpoint every ``checkpoint_every`` events and
    each file's first record.  ``max_bytes`` rotates the active file into
    ``PATH.000001`` ... ; the chain continues across files.  ``sync`` is
    ``record`` (fsync each append) or ``batch`` (every ``sync_every``).
    ``anchor`` (needs ``checkpoint_key``) is a file outside the log's
    directory that receives a copy of every signed record; the sink checks the
    log against it when it opens.  The MAC key's current version is looked up
    every ``key_check_interval`` seconds; after a rotation the next append
    starts a new file under the new version.  Keys are reached through
    ``providers``, which a :class:`KeyStack` hands over
    (:meth:`use_key_providers`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        hmac_key: str | KeyRef | None = None,
        checkpoint_key: str | KeyRef | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        max_bytes: int | None = None,
        sync: str = "record",
        sync_every: int = DEFAULT_SYNC_EVERY,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        anchor: str | os.PathLike[str] | None = None,
        key_check_interval: float = DEFAULT_KEY_CHECK_INTERVAL,
        providers: ProviderLookup | None = None,
    ) -> None:
        if sync not in SYNC_MODES:
            raise ConfigError(f"sync must be 'record' or 'batch', not {sync!r}")
        if key_check_interval < 0:
            raise ConfigError("key_check_interval of the jsonl audit sink must be seconds >= 0")
        self.path = Path(path).expanduser().absolute()
        self.anchor = Path(anchor).expanduser().absolute() if anchor is not None else None
        if self.anchor is not None:
            if checkpoint_key is None:
                raise ConfigError(
                    "the jsonl audit sink's anchor receives its signed checkpoints: set "
                    "checkpoint_key too (an ed25519 or ecdsa-p256 signing key)"
                )
            log_dir = self.path.parent.resolve()
            anchor_dir = self.anchor.parent.resolve()
            if anchor_dir == log_dir or log_dir in anchor_dir.parents:
                raise ConfigError(
                    f"the jsonl audit sink's anchor {self.anchor} is inside the log's directory "
                    f"{log_dir}: whoever can roll the log back there can roll the anchor back "
                    "too; put it on another file system, share or append-only store"
                )
        self.key_check_interval = float(key_check_interval)
        self.hmac_key = KeyRef.parse(hmac_key) if hmac_key is not None else None
        self.checkpoint_key = KeyRef.parse(checkpoint_key) if checkpoint_key is not None else None
        self.checkpoint_every = positive_int(
            "the jsonl audit sink", "checkpoint_every", checkpoint_every
        )
        self.max_bytes = (
            positive_int("the jsonl audit sink", "max_bytes", max_bytes)
            if max_bytes is not None
            else None
        )
        self.sync = sync
        self.sync_every = positive_int("the jsonl audit sink", "sync_every", sync_every)
        self._providers = providers
        self._lock = threading.Lock()
        self._file_lock = FileLock(lock_path(self.path), timeout=lock_timeout, mode=FILE_MODE)
        self._lock_timeout = lock_timeout
        self._keys: dict[tuple[str, str | None], bytes] = {}
        self._files: dict[bytes, _FileInfo] = {}
        """File records parsed so far, by their line (a file rewritten in place is re-read)."""
        self._unsynced = 0
        self._closed = False
        self._opened = False
        self._reached: _Reached | None = None
        """The last record this sink wrote: where it ends, its seq, hash and log ID."""
        self._mac_current: str | None = None
        self._mac_checked = 0.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> JsonlAuditSink:
        """Build from ``[[audit.sinks]]`` options (``path`` is required)."""
        reader = Options("the jsonl audit sink", options, OPTIONS)
        if "path" not in options:
            raise ConfigError(
                'the jsonl audit sink needs path = "<log file>" (or set AUREUS_AUDIT_LOG)'
            )
        keys: dict[str, str | None] = {}
        for name in ("hmac_key", "checkpoint_key"):
            keys[name] = reader.string(name, "") if name in options else None
        max_bytes = reader.raw("max_bytes", None)
        timeout = reader.raw("lock_timeout", DEFAULT_LOCK_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError("option 'lock_timeout' of the jsonl audit sink must be seconds > 0")
        interval = reader.raw("key_check_interval", DEFAULT_KEY_CHECK_INTERVAL)
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval < 0:
            raise ConfigError(
                "option 'key_check_interval' of the jsonl audit sink must be seconds >= 0"
            )
        return cls(
            reader.string("path", ""),
            hmac_key=keys["hmac_key"],
            checkpoint_key=keys["checkpoint_key"],
            checkpoint_every=reader.positive_int("checkpoint_every", DEFAULT_CHECKPOINT_EVERY),
            max_bytes=positive_int("the jsonl audit sink", "max_bytes", max_bytes)
            if max_bytes is not None
            else None,
            sync=reader.string("sync", "record"),
            sync_every=reader.positive_int("sync_every", DEFAULT_SYNC_EVERY),
            lock_timeout=float(timeout),
            anchor=_absolute_anchor(reader.string("anchor", "")) if "anchor" in options else None,
            key_check_interval=float(interval),
        )

    def use_key_providers(self, providers: ProviderLookup) -> None:
        """Reach the MAC and checkpoint keys through ``providers`` (unless given already)."""
        if self._providers is None:
            self._providers = providers

    @property
    def head_path(self) -> Path:
        """The head file beside the log."""
        return head_path(self.path)

    def read_events(self) -> list[dict[str, Any]]:
        """Every recorded event, oldest first, across rotated files (not verified)."""
        return read_events(self.path)

    # -- appending ---------------------------------------------------------------

    def emit(self, event: AuditEvent) -> None:
        """Append ``event``; raise :class:`AuditSinkError` if it could not be recorded."""
        if not isinstance(event, AuditEvent):
            raise TypeError(f"an audit sink records AuditEvent objects, not {type(event).__name__}")
        with self._lock:
            if self._closed:
                raise AuditSinkError(f"the jsonl audit sink for {self.path} is closed")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
                try:
                    self._file_lock.acquire()
                except LockTimeout:
                    raise AuditSinkError(
                        f"audit log {self.path} stayed locked by another writer for "
                        f"{self._lock_timeout:g} s ({lock_path(self.path).name}): retry, or "
                        "look for a stuck process"
                    ) from None
                try:
                    self._append(event.to_dict())
                finally:
                    self._file_lock.release()
            except AuditSinkError:
                raise
            except AureusError as error:
                raise AuditSinkError(f"audit log {self.path}: {error}") from error
            except OSError as error:
                where = f" ({error.filename})" if error.filename else ""
                raise AuditSinkError(
                    f"cannot append to audit log {self.path}: {error.strerror or error}{where}; "
                    "check that its directory exists and this process may write there"
                ) from error

    def _append(self, event: dict[str, Any]) -> None:
        if not self._opened:
            self._remove_abandoned_temp_files()
        state = self._state()
        if not self._opened:
            self._check_anchor(state)
            self._opened = True
        self._check_not_rolled_back(state)
        tail, info = state.tail, state.info
        mac_key = self._current_mac_key(info)
        records: list[Record] = []
        new_file = (
            info is None
            or info.decl.log is None  # a format-1 file: continue the chain in the new format
            or info.decl.params.settings() != self._settings()
            or info.decl.params.mac_key != mac_key  # the MAC key was rotated
        )
        if (
            not new_file
            and self.max_bytes is not None
            and tail is not None
            and info is not None
            and tail.seq > info.first_seq
            and tail.size + len(canonical(event)) + RECORD_OVERHEAD > self.max_bytes
        ):
            new_file = True
        seq, prev = (tail.seq + 1, tail.hash) if tail is not None else (0, GENESIS)
        index = tail.index + 1 if tail is not None else 1
        unsigned = tail.unsigned if tail is not None else 0
        if new_file:
            decl = FileDecl(
                log=state.log or new_log_id(), index=index, params=self._new_params(mac_key)
            )
            key = self._chain_key(decl)
            records.append(self._file_record(seq, prev, decl, key))
            seq, prev, unsigned = seq + 1, records[-1]["hash"], 0
        else:
            assert info is not None
            assert tail is not None
            decl = info.decl
            key = self._chain_key(decl)
            every = decl.params.checkpoint_every
            if decl.params.checkpoint_key is not None and every and unsigned >= every:
                # A crash tore the checkpoint off the append that made it due: sign it
                # now, before the event, or the verifier would count one event too many.
                records.append(self._signed_record(seq, prev, decl, key))
                seq, prev, unsigned = seq + 1, records[-1]["hash"], 0
        event_record: Record = {"seq": seq, "kind": "event", "prev": prev, "event": event}
        event_record["hash"] = record_hash(event_record, key, decl.log)
        records.append(event_record)
        unsigned += 1
        params = decl.params
        if params.checkpoint_key is not None and unsigned >= (params.checkpoint_every or 1):
            records.append(self._signed_record(seq + 1, event_record["hash"], decl, key))
            unsigned = 0
        data = b"".join(encode_line(record) for record in records)
        anchored = self.anchor is not None and any("sig" in record for record in records)
        sync = self.sync == "record" or anchored or self._unsynced + 1 >= self.sync_every
        if new_file:
            if info is not None:
                self._remove_abandoned_temp_files()
            size = self._start_file(data, rotate=info is not None, tail=tail)
        else:
            size = self._write(data, sync=sync)
        if anchored:
            self._write_anchor(records, decl)
        last = records[-1]
        self._write_head(
            _Tail(
                seq=last["seq"], hash=last["hash"], index=decl.index, size=size, unsigned=unsigned
            ),
            decl,
            key,
            sync=sync,
        )
        self._reached = _Reached(
            seq=last["seq"], hash=last["hash"], log=decl.log, index=decl.index, end=size
        )
        self._unsynced = 0 if sync else self._unsynced + 1

    def _settings(self) -> tuple[object, ...]:
        mac = self.hmac_key.with_version(None).uri if self.hmac_key else None
        checkpoint = self.checkpoint_key.uri if self.checkpoint_key else None
        every = self.checkpoint_every if self.checkpoint_key else None
        return (HMAC_SHA256 if mac else SHA256, mac, checkpoint, every)

    def _current_mac_key(self, info: _FileInfo | None) -> str | None:
        """The MAC key pinned to its current version (rechecked every ``key_check_interval``).

        It is rechecked at once when the active file names another version of
        the same key: another writer may have seen a rotation first.
        """
        if self.hmac_key is None:
            return None
        if self.hmac_key.version is not None:
            return self.hmac_key.uri
        now = time.monotonic()
        in_file = info.decl.params.mac_key if info is not None else None
        if (
            self._mac_current is None
            or now - self._mac_checked >= self.key_check_interval
            or (
                in_file is not None
                and in_file != self._mac_current
                and base_uri(in_file) == self.hmac_key.uri
            )
        ):
            provider = self._lookup()(self.hmac_key.scheme)
            pinned = self.hmac_key
            if Capability.DESCRIBE in provider.capabilities:
                pinned = pinned.with_version(provider.describe_key(pinned).current_version)
            self._mac_current, self._mac_checked = pinned.uri, now
        return self._mac_current

    def _new_params(self, mac_key: str | None) -> ChainParams:
        return ChainParams(
            alg=HMAC_SHA256 if mac_key else SHA256,
            mac_key=mac_key,
            checkpoint_key=self.checkpoint_key.uri if self.checkpoint_key else None,
            checkpoint_every=self.checkpoint_every if self.checkpoint_key else None,
        )

    def _lookup(self) -> ProviderLookup:
        if self._providers is None:
            raise ConfigError(
                "the jsonl audit sink needs key providers for hmac_key and checkpoint_key: "
                "build it through a KeyStack, or pass providers="
            )
        return self._providers

    def _chain_key(self, decl: FileDecl) -> bytes | None:
        """The chain key of one log under one MAC key version, derived once per sink."""
        mac_key = decl.params.mac_key
        if mac_key is None:
            return None
        if (mac_key, decl.log) not in self._keys:
            ref = KeyRef.parse(mac_key)
            label = chain_key_label(decl.log)
            self._keys[(mac_key, decl.log)] = derive_key(self._lookup(), ref, label)[0]
        return self._keys[(mac_key, decl.log)]

    def _file_record(self, seq: int, prev: str, decl: FileDecl, key: bytes | None) -> Record:
        record: Record = {
            "seq": seq,
            "kind": "file",
            "prev": prev,
            "time": _utc_now().isoformat(),
            "file": decl.to_dict(),
        }
        if decl.params.checkpoint_key is not None:
            self._sign(record, decl.params.checkpoint_key, decl.log)
        record["hash"] = record_hash(record, key, decl.log)
        return record

    def _signed_record(self, seq: int, prev: str, decl: FileDecl, key: bytes | None) -> Record:
        record: Record = {
            "seq": seq,
            "kind": "checkpoint",
            "prev": prev,
            "time": _utc_now().isoformat(),
        }
        assert decl.params.checkpoint_key is not None
        self._sign(record, decl.params.checkpoint_key, decl.log)
        record["hash"] = record_hash(record, key, decl.log)
        return record

    def _sign(self, record: Record, key_uri: str, log: str | None) -> None:
        ref = KeyRef.parse(key_uri)
        provider = self._lookup()(ref.scheme)
        if Capability.SIGN not in provider.capabilities:
            raise ConfigError(
                f"checkpoint_key {key_uri}: provider {ref.scheme!r} cannot sign; use a signing "
                "key such as a local ed25519 key"
            )
        signature = provider.sign(ref, signed_bytes(record, log))
        record["sig"] = make_sig(
            signature.key_uri, signature.key_version, signature.algorithm, signature.value
        )

    # -- files -------------------------------------------------------------------

    def _open_flags(self) -> int:
        return os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)

    def _write(self, data: bytes, *, sync: bool) -> int:
        fd = os.open(self.path, self._open_flags())
        try:
            write_all(fd, data)
            if sync:
                os.fsync(fd)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def _start_file(self, data: bytes, *, rotate: bool, tail: _Tail | None) -> int:
        if rotate:
            assert tail is not None
            target = rotated_path(self.path, tail.index)
            if target.exists():
                raise AuditSinkError(
                    f"cannot rotate audit log {self.path}: {target.name} exists already; "
                    "move it aside after running `aureus audit verify`"
                )
            os.rename(self.path, target)
            fsync_directory(self.path.parent)
        fd = os.open(self.path, self._open_flags() | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            write_all(fd, data)
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        fsync_directory(self.path.parent)
        return size

    def _write_head(self, tail: _Tail, decl: FileDecl, key: bytes | None, *, sync: bool) -> None:
        head: Record = {
            "format": HEAD_FORMAT,
            "file": self.path.name,
            "log": decl.log,
            "index": tail.index,
            "seq": tail.seq,
            "hash": tail.hash,
            "size": tail.size,
            "unsigned": tail.unsigned,
        }
        if key is not None:
            head["mac"] = head_mac(head, key)
        target = self.head_path
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            write_all(fd, canonical(head) + b"\n")
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
        if sync:
            fsync_directory(target.parent)

    def _remove_abandoned_temp_files(self) -> None:
        """Delete head temp files that writers killed mid-update left behind.

        A writer only has a temp file while it holds the lock file, as this
        writer does now, so any that exists belongs to a writer that died.
        """
        pattern = re.compile(rf"^\.{re.escape(self.head_path.name)}\.\d+\.tmp$")
        for entry in self.path.parent.iterdir():
            if pattern.match(entry.name):
                entry.unlink(missing_ok=True)

    def _write_anchor(self, records: list[Record], decl: FileDecl) -> None:
        """Append the signed ``records`` to the anchor file in one write, and fsync it."""
        assert self.anchor is not None
        assert decl.log is not None
        data = b"".join(
            encode_line(anchor_entry(decl.log, self.path.name, record))
            for record in records
            if "sig" in record
        )
        created = not self.anchor.exists()
        if created:
            self.anchor.parent.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.anchor, flags, FILE_MODE)
        try:
            size = os.fstat(fd).st_size
            if size:
                os.lseek(fd, size - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":  # an append torn by a crash: drop the fragment
                    os.lseek(fd, 0, os.SEEK_SET)
                    content = os.read(fd, size)
                    os.ftruncate(fd, content.rfind(b"\n") + 1)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_directory(self.anchor.parent)

    # -- finding the end of the chain ----------------------------------------------

    def _state(self) -> _State:
        head = self._read_head()
        try:
            stat: os.stat_result | None = os.stat(self.path)
        except FileNotFoundError:
            stat = None
        if stat is not None and stat.st_size == 0:  # a writer stopped right after creating it
            self.path.unlink()
            stat = None
        if head is None and stat is None:
            if rotated_files(self.path):
                raise self._refuse(
                    "rotated files exist but the active log and its head file are missing: "
                    "they were deleted"
                )
            return _State(tail=None, info=None)
        if stat is None:
            assert head is not None
            return self._after_rotation_crash(head)
        info = self._file_info(self.path)
        decl = info.decl
        key = self._chain_key(decl)
        if head is None:
            records, size = self._scan(0, None, info.first_seq, decl, key)
            if decl.index != 1 or info.first_seq != 0 or len(records) > FIRST_APPEND_RECORDS:
                raise self._refuse(
                    f"the head file {self.head_path.name} is missing but the log holds "
                    f"{len(records)} records: it was deleted, perhaps to hide a cut tail"
                )
            tail = self._tail_of(records, decl.index, size, 0)
            return _State(tail=tail, info=info, log=decl.log)
        if head["index"] == decl.index:
            self._check_head(head, decl, key)
            if stat.st_size == head["size"]:
                return _State(tail=_tail_from_head(head), info=info, log=decl.log)
            if stat.st_size < head["size"]:
                raise self._refuse(
                    f"the log is shorter than its head file says ({stat.st_size} < "
                    f"{head['size']} bytes, head at seq {head['seq']}): it was cut"
                )
            records, size = self._scan(head["size"], head["hash"], head["seq"] + 1, decl, key)
            tail = self._tail_of(records, decl.index, size, head["unsigned"])
            return _State(tail=tail or _tail_from_head(head), info=info, log=decl.log)
        if head["index"] + 1 == decl.index:  # a writer stopped between a rotation and its head
            previous = self._rotated_info(head)
            self._check_head(head, previous.decl, self._chain_key(previous.decl))
            records, size = self._scan(0, head["hash"], head["seq"] + 1, decl, key)
            tail = self._tail_of(records, decl.index, size, 0)
            return _State(tail=tail, info=info, log=decl.log)
        raise self._refuse(
            f"the head file names file {head['index']} but the active log is file {decl.index}"
        )

    def _rotated_info(self, head: Record) -> _FileInfo:
        rotated = rotated_path(self.path, head["index"])
        try:
            return self._file_info(rotated)
        except FileNotFoundError:
            raise self._refuse(
                f"its head file names file {head['index']}, but {rotated.name} is missing: it "
                "was deleted or moved; restore it"
            ) from None

    def _after_rotation_crash(self, head: Record) -> _State:
        rotated = rotated_path(self.path, head["index"])
        if rotated.exists() and rotated.stat().st_size == head["size"]:
            info = self._file_info(rotated)
            self._check_head(head, info.decl, self._chain_key(info.decl))
            return _State(tail=_tail_from_head(head), info=None, log=info.decl.log)
        raise self._refuse(
            f"the log is missing but its head file says it reached seq {head['seq']}: it was "
            "deleted or moved; restore it"
        )

    def _read_head(self) -> Record | None:
        try:
            return read_head(self.head_path)
        except FileNotFoundError:
            return None
        except ValueError as error:
            raise self._refuse(f"its head file is damaged ({error})") from None

    def _check_head(self, head: Record, decl: FileDecl, key: bytes | None) -> None:
        """The head must belong to the file it names: same log ID, and (HMAC) a matching MAC."""
        if head.get("log") != decl.log:
            raise self._refuse(
                f"its head file {self.head_path.name} belongs to another log "
                f"({head.get('log') or 'format 1'}) than file {decl.index} "
                f"({decl.log or 'format 1'})"
            )
        if key is None:
            return
        mac = head.get("mac")
        if not isinstance(mac, str) or not hmac.compare_digest(mac, head_mac(head, key)):
            raise self._refuse(f"the MAC of its head file {self.head_path.name} does not match")

    def _file_info(self, path: Path) -> _FileInfo:
        line = read_first_line(path)
        info = self._files.get(line)
        if info is None:
            try:
                first = parse_json(line)
                if first.get("kind") != "file":
                    raise ValueError("the first record is not a file record")
                seq = first.get("seq")
                if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
                    raise ValueError("bad seq")
                info = _FileInfo(decl=FileDecl.from_dict(first.get("file")), first_seq=seq)
            except (ValueError, ConfigError) as error:
                raise self._refuse(
                    f"{path.name} does not start with a valid file record ({error})"
                ) from None
            self._files[line] = info
        return info

    def _scan(
        self, offset: int, prev: str | None, seq: int, decl: FileDecl, key: bytes | None
    ) -> tuple[list[Record], int]:
        """Check the records from ``offset`` on, cutting off a torn last line; return them, size."""
        with self.path.open("rb+") as handle:
            handle.seek(offset)
            data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]
            if len(complete) != len(data):  # a writer died mid-line: drop the fragment
                handle.truncate(offset + len(complete))
                os.fsync(handle.fileno())
        records: list[Record] = []
        for number, line in enumerate(complete.splitlines(), 1):
            try:
                record = parse_json(line)
                good = (
                    record.get("seq") == seq
                    and (prev is None or record.get("prev") == prev)
                    and record.get("hash") == record_hash(record, key, decl.log)
                )
            except ValueError:
                good = False
            if not good:
                raise self._refuse(
                    f"record {number} after byte {offset} (expected seq {seq}) does not continue "
                    "the chain: the log was altered"
                )
            records.append(record)
            prev, seq = record["hash"], seq + 1
        return records, offset + len(complete)

    def _tail_of(self, records: list[Record], index: int, size: int, unsigned: int) -> _Tail | None:
        if not records:
            return None
        for record in records:
            unsigned = unsigned + 1 if record.get("kind") == "event" else 0
        last = records[-1]
        return _Tail(seq=last["seq"], hash=last["hash"], index=index, size=size, unsigned=unsigned)

    # -- rollback ----------------------------------------------------------------

    def _check_not_rolled_back(self, state: _State) -> None:
        """The log must still hold the last record this sink wrote, in the same log."""
        reached = self._reached
        if reached is None:
            return
        seq, tail = reached.seq, state.tail
        end = f"ends at seq {tail.seq}" if tail is not None else "is gone"
        if tail is None or tail.seq < seq or (tail.seq == seq and tail.hash != reached.hash):
            raise self._refuse(
                f"this writer appended up to seq {seq}, but the log now {end}: it was rolled "
                "back (cut, and given an older head file) or replaced. If it was moved aside on "
                "purpose, restart the process to start a new log"
            )
        if state.log != reached.log:
            raise self._refuse(
                f"this writer appended to log {reached.log}, but the files now belong to log "
                f"{state.log}: the log was replaced by another one"
            )
        active = state.info.decl.index if state.info is not None else None
        if tail.seq > seq and not self._still_holds(reached, active):
            raise self._refuse(
                f"this writer appended seq {seq}, but the log (now at seq {tail.seq}) holds "
                "another record there: it was rolled back (cut, and given an older head file) "
                "and appended to since, or rewritten"
            )

    def _still_holds(self, reached: _Reached, active: int | None) -> bool:
        """Whether the line ending where this sink's last record ended is still that record.

        Other writers appended since, so the tail says nothing about it: read that one
        line back from its end, in the active file (number ``active``; ``None`` if a
        rotation left none yet) or the file it was rotated into.
        """
        path = self.path if reached.index == active else rotated_path(self.path, reached.index)
        try:
            with path.open("rb") as handle:
                if os.fstat(handle.fileno()).st_size < reached.end:
                    return False
                window = 4096
                while True:
                    start = max(0, reached.end - window)
                    handle.seek(start)
                    data = handle.read(reached.end - start)
                    cut = data.rfind(b"\n", 0, len(data) - 1)
                    if cut >= 0 or start == 0:
                        break
                    window *= 2
        except FileNotFoundError:
            return False
        if not data.endswith(b"\n"):
            return False
        try:
            record = parse_json(data[cut + 1 :])
        except ValueError:
            return False
        return record.get("seq") == reached.seq and record.get("hash") == reached.hash

    def _check_anchor(self, state: _State) -> None:
        """On opening: the log must reach the latest record the anchor holds, and contain it."""
        if self.anchor is None:
            return
        try:
            marks = read_anchor(self.anchor)
        except FileNotFoundError:
            return
        except ValueError as error:
            raise self._refuse(f"its anchor {self.anchor} is damaged ({error})") from None
        if not marks:
            return
        latest = max(marks, key=lambda mark: mark.seq)
        tail = state.tail
        if tail is None:
            raise self._refuse(
                f"there is no log, but its anchor {self.anchor} says log {latest.log} reached "
                f"seq {latest.seq}: the log was deleted. Restore it; to start a new log on "
                "purpose, move the anchor aside too"
            )
        if latest.log != state.log:
            raise self._refuse(
                f"its anchor {self.anchor} belongs to log {latest.log}, but the files belong to "
                f"{f'log {state.log}' if state.log else 'no log (format 1)'}: the log was "
                "replaced by another one, or the anchor option names another log's anchor"
            )
        if tail.seq < latest.seq:
            raise self._refuse(
                f"it ends at seq {tail.seq}, but its anchor {self.anchor} says it reached seq "
                f"{latest.seq}: it was rolled back (cut, and given an older head file)"
            )
        record = record_at(self.path, latest.seq)
        if record is None or record.get("hash") != latest.hash:
            raise self._refuse(
                f"seq {latest.seq} is not the record its anchor {self.anchor} holds: the log "
                "was rewritten after that record was anchored"
            )

    def _refuse(self, problem: str) -> AuditSinkError:
        anchor = ", its head file and its anchor" if self.anchor else " and its head file"
        return AuditSinkError(
            f"audit log {self.path} cannot be continued: {problem}. Run `aureus audit verify "
            f"{self.path}`, keep the files for investigation, and move the log{anchor} aside "
            "to start a new chain"
        )

    # -- lifetime ----------------------------------------------------------------

    def close(self) -> None:
        """Flush what batch mode has not synced yet; later events are refused."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._unsynced:
                for path in (self.path, self.head_path):
                    try:
                        fd = os.open(path, os.O_RDONLY)
                    except FileNotFoundError:
                        continue
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                self._unsynced = 0

    def __repr__(self) -> str:
        mode = f"hmac under {self.hmac_key.uri}" if self.hmac_key else "sha256"
        return f"JsonlAuditSink(path={str(self.path)!r}, {mode})"


def _absolute_anchor(value: str) -> Path:
    anchor = Path(value).expanduser()
    if not anchor.is_absolute():
        raise ConfigError(
            f"option 'anchor' of the jsonl audit sink must be an absolute path, not {value!r}: "
            "the anchor lives outside the log's directory, on another file system or share"
        )
    return anchor


def _tail_from_head(head: Mapping[str, Any]) -> _Tail:
    return _Tail(
        seq=head["seq"],
        hash=head["hash"],
        index=head["index"],
        size=head["size"],
        unsigned=head["unsigned"],
    )
