"""The ``jsonl`` audit sink: an append-only, hash-chained JSON-lines log that can be verified.

Each event becomes one line linked to the one before it (see
:mod:`aureus_builtin.audit_chain` for the format).  Appends from any number
of threads and processes go through one lock file; inside it the writer
re-reads the head file, checks that the log still ends where the head says,
appends, syncs and rewrites the head.  A log that was cut, or a head file that
was edited, stops the sink (and, with auditing required, the stack) instead of
being silently continued.

Enable it with ``AUREUS_AUDIT_LOG=PATH``, or::

    [[audit.sinks]]
    type = "jsonl"
    path = "audit/audit.jsonl"
    hmac_key = "local://audit-mac"          # aes-256: HMAC chain, unforgeable without it
    checkpoint_key = "local://audit-signer" # ed25519 / ecdsa-p256: signed checkpoints
    checkpoint_every = 1000
    max_bytes = 104857600                   # rotate into audit.jsonl.000001 ...
    sync = "record"                         # or "batch" (fsync every sync_every appends)
"""

from __future__ import annotations

import hmac
import os
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import filelock

from aureus_core.audit import AuditEvent, derive_key
from aureus_core.durable import fsync_directory, write_all
from aureus_core.errors import AuditSinkError, AureusError, ConfigError
from aureus_core.interfaces import Capability, ProviderLookup
from aureus_core.keyref import KeyRef

from .audit_chain import (
    CHAIN_KEY_LABEL,
    FORMAT,
    GENESIS,
    HEAD_FORMAT,
    HMAC_SHA256,
    SHA256,
    ChainParams,
    Record,
    canonical,
    encode_line,
    head_mac,
    head_path,
    lock_path,
    make_sig,
    parse_json,
    read_events,
    read_first_line,
    read_head,
    record_hash,
    rotated_files,
    rotated_path,
    signed_bytes,
)
from .options import Options, positive_int

DEFAULT_CHECKPOINT_EVERY = 1000
DEFAULT_SYNC_EVERY = 100
DEFAULT_LOCK_TIMEOUT = 30.0
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
class _FileInfo:
    index: int
    params: ChainParams
    first_seq: int


@attrs.frozen(kw_only=True)
class _State:
    tail: _Tail | None
    """``None``: a new log."""
    info: _FileInfo | None
    """The active file's file record (``None``: there is no active file)."""


class JsonlAuditSink:
    """Appends every event to a hash-chained JSON-lines log at ``path``.

    ``hmac_key`` (an aes-256 key URI) makes the chain an HMAC chain under a
    key derived from it through its provider's ``mac``; ``checkpoint_key`` (a
    signing key URI) signs a checkpoint every ``checkpoint_every`` events and
    each file's first record.  ``max_bytes`` rotates the active file into
    ``PATH.000001`` ... ; the chain continues across files.  ``sync`` is
    ``record`` (fsync each append) or ``batch`` (every ``sync_every``).
    Keys are reached through ``providers``, which a :class:`KeyStack` hands
    over (:meth:`use_key_providers`).
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
        providers: ProviderLookup | None = None,
    ) -> None:
        if sync not in SYNC_MODES:
            raise ConfigError(f"sync must be 'record' or 'batch', not {sync!r}")
        self.path = Path(path).expanduser().absolute()
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
        self._file_lock = filelock.FileLock(
            str(lock_path(self.path)), timeout=lock_timeout, mode=FILE_MODE, thread_local=False
        )
        self._lock_timeout = lock_timeout
        self._keys: dict[str, bytes] = {}
        self._files: dict[tuple[int, int], _FileInfo] = {}
        self._unsynced = 0
        self._closed = False

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
                except filelock.Timeout:
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
        state = self._state()
        tail, info = state.tail, state.info
        records: list[Record] = []
        new_file = info is None or info.params.settings() != self._settings()
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
            params = self._new_params()
            key = self._chain_key(params)
            records.append(self._file_record(seq, prev, index, params, key))
            seq, prev, unsigned = seq + 1, records[-1]["hash"], 0
        else:
            assert info is not None
            assert tail is not None
            params, index = info.params, tail.index
            key = self._chain_key(params)
        event_record: Record = {"seq": seq, "kind": "event", "prev": prev, "event": event}
        event_record["hash"] = record_hash(event_record, key)
        records.append(event_record)
        unsigned += 1
        if params.checkpoint_key is not None and unsigned >= (params.checkpoint_every or 1):
            records.append(self._signed_record(seq + 1, event_record["hash"], params, key))
            unsigned = 0
        data = b"".join(encode_line(record) for record in records)
        sync = self.sync == "record" or self._unsynced + 1 >= self.sync_every
        if new_file:
            size = self._start_file(data, rotate=info is not None, tail=tail)
        else:
            size = self._write(data, sync=sync)
        last = records[-1]
        self._write_head(
            _Tail(seq=last["seq"], hash=last["hash"], index=index, size=size, unsigned=unsigned),
            key,
            sync=sync,
        )
        self._unsynced = 0 if sync else self._unsynced + 1

    def _settings(self) -> tuple[object, ...]:
        mac = self.hmac_key.with_version(None).uri if self.hmac_key else None
        checkpoint = self.checkpoint_key.uri if self.checkpoint_key else None
        every = self.checkpoint_every if self.checkpoint_key else None
        return (HMAC_SHA256 if mac else SHA256, mac, checkpoint, every)

    def _new_params(self) -> ChainParams:
        mac_key = None
        if self.hmac_key is not None:
            key, pinned = derive_key(self._lookup(), self.hmac_key, CHAIN_KEY_LABEL)
            mac_key = pinned.uri
            self._keys[mac_key] = key
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

    def _chain_key(self, params: ChainParams) -> bytes | None:
        if params.mac_key is None:
            return None
        if params.mac_key not in self._keys:
            ref = KeyRef.parse(params.mac_key)
            self._keys[params.mac_key] = derive_key(self._lookup(), ref, CHAIN_KEY_LABEL)[0]
        return self._keys[params.mac_key]

    def _file_record(
        self, seq: int, prev: str, index: int, params: ChainParams, key: bytes | None
    ) -> Record:
        record: Record = {
            "seq": seq,
            "kind": "file",
            "prev": prev,
            "time": _utc_now().isoformat(),
            "file": {"format": FORMAT, "index": index, "params": params.to_dict()},
        }
        if params.checkpoint_key is not None:
            self._sign(record, params.checkpoint_key)
        record["hash"] = record_hash(record, key)
        return record

    def _signed_record(self, seq: int, prev: str, params: ChainParams, key: bytes | None) -> Record:
        record: Record = {
            "seq": seq,
            "kind": "checkpoint",
            "prev": prev,
            "time": _utc_now().isoformat(),
        }
        assert params.checkpoint_key is not None
        self._sign(record, params.checkpoint_key)
        record["hash"] = record_hash(record, key)
        return record

    def _sign(self, record: Record, key_uri: str) -> None:
        ref = KeyRef.parse(key_uri)
        provider = self._lookup()(ref.scheme)
        if Capability.SIGN not in provider.capabilities:
            raise ConfigError(
                f"checkpoint_key {key_uri}: provider {ref.scheme!r} cannot sign; use a signing "
                "key such as a local ed25519 key"
            )
        signature = provider.sign(ref, signed_bytes(record))
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

    def _write_head(self, tail: _Tail, key: bytes | None, *, sync: bool) -> None:
        head: Record = {
            "format": HEAD_FORMAT,
            "file": self.path.name,
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
        info = self._file_info(self.path, stat)
        key = self._chain_key(info.params)
        if head is None:
            records, size = self._scan(0, None, info.first_seq, key)
            if info.index != 1 or info.first_seq != 0 or len(records) > FIRST_APPEND_RECORDS:
                raise self._refuse(
                    f"the head file {self.head_path.name} is missing but the log holds "
                    f"{len(records)} records: it was deleted, perhaps to hide a cut tail"
                )
            return _State(tail=self._tail_of(records, info.index, size, 0), info=info)
        self._check_head_mac(head, key)
        if head["index"] == info.index:
            if stat.st_size == head["size"]:
                return _State(tail=_tail_from_head(head), info=info)
            if stat.st_size < head["size"]:
                raise self._refuse(
                    f"the log is shorter than its head file says ({stat.st_size} < "
                    f"{head['size']} bytes, head at seq {head['seq']}): it was cut"
                )
            records, size = self._scan(head["size"], head["hash"], head["seq"] + 1, key)
            tail = self._tail_of(records, info.index, size, head["unsigned"])
            return _State(tail=tail or _tail_from_head(head), info=info)
        if head["index"] + 1 == info.index:  # a writer stopped between a rotation and its head
            records, size = self._scan(0, head["hash"], head["seq"] + 1, key)
            tail = self._tail_of(records, info.index, size, 0)
            return _State(tail=tail, info=info)
        raise self._refuse(
            f"the head file names file {head['index']} but the active log is file {info.index}"
        )

    def _after_rotation_crash(self, head: Record) -> _State:
        rotated = rotated_path(self.path, head["index"])
        if rotated.exists() and rotated.stat().st_size == head["size"]:
            info = self._file_info(rotated, rotated.stat())
            self._check_head_mac(head, self._chain_key(info.params))
            return _State(tail=_tail_from_head(head), info=None)
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

    def _check_head_mac(self, head: Record, key: bytes | None) -> None:
        if key is None:
            return
        mac = head.get("mac")
        if not isinstance(mac, str) or not hmac.compare_digest(mac, head_mac(head, key)):
            raise self._refuse(f"the MAC of its head file {self.head_path.name} does not match")

    def _file_info(self, path: Path, stat: os.stat_result) -> _FileInfo:
        cache_key = (stat.st_dev, stat.st_ino)
        info = self._files.get(cache_key)
        if info is None:
            try:
                first = parse_json(read_first_line(path))
                described = first["file"]
                if described["format"] != FORMAT:
                    raise ValueError(f"format {described['format']!r}")
                info = _FileInfo(
                    index=int(described["index"]),
                    params=ChainParams.from_dict(described["params"]),
                    first_seq=int(first["seq"]),
                )
            except (ValueError, KeyError, TypeError) as error:
                raise self._refuse(
                    f"{path.name} does not start with a valid file record ({error})"
                ) from None
            self._files[cache_key] = info
        return info

    def _scan(
        self, offset: int, prev: str | None, seq: int, key: bytes | None
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
                    and record.get("hash") == record_hash(record, key)
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

    def _refuse(self, problem: str) -> AuditSinkError:
        return AuditSinkError(
            f"audit log {self.path} cannot be continued: {problem}. Run `aureus audit verify "
            f"{self.path}`, keep the files for investigation, and move the log and its head "
            "file aside to start a new chain"
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


def _tail_from_head(head: Mapping[str, Any]) -> _Tail:
    return _Tail(
        seq=head["seq"],
        hash=head["hash"],
        index=head["index"],
        size=head["size"],
        unsigned=head["unsigned"],
    )
