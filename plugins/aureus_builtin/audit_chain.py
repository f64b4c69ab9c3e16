"""The hash-chained JSON-lines audit log: record format, head file, checkpoints, verification.

A log is one active file (``audit.jsonl``) plus the files it was rotated into
(``audit.jsonl.000001`` ...), a head file (``audit.jsonl.head``) and a lock
file (``.audit.jsonl.lock``).  Every line is one record, canonical JSON::

    {"seq": 7, "kind": "event", "prev": "<hash of seq 6>", "event": {...}, "hash": "..."}

``hash`` is SHA-256, or HMAC-SHA-256 under a chain key, over
``aureus-audit-record/1`` and a newline + the canonical JSON of the record without
``hash``.  Each file starts with a ``file`` record declaring how it is
chained (``params``); it links to the last record of the previous file.
``checkpoint`` records (and file records) may carry a signature (``sig``)
over the record without ``hash`` and ``sig``, which pins everything before
them.  See ``docs/audit.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from aureus_core.errors import AureusError, ConfigError
from aureus_core.keyref import KeyRef

FORMAT = "aureus-audit-jsonl/1"
HEAD_FORMAT = "aureus-audit-head/1"
GENESIS = "0" * 64
"""The ``prev`` of the first record of a chain."""
SHA256 = "sha256"
HMAC_SHA256 = "hmac-sha256"
CHAIN_KEY_LABEL = b"aureus-audit-jsonl/chain-key/v1"
"""What the MAC key's provider MACs to give the chain key (see ``derive_key``)."""
RECORD_DOMAIN = b"aureus-audit-record/1\n"
HEAD_DOMAIN = b"aureus-audit-head/1\n"
SIGNATURE_DOMAIN = b"aureus-audit-checkpoint/1\n"
KINDS = ("file", "event", "checkpoint")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ROTATED = re.compile(r"^\.(\d{6,})$")

Record = dict[str, Any]
ChainKeySource = Callable[[str], bytes]
"""The chain key for a pinned MAC key URI (``local://audit-mac?version=1``)."""
SignatureCheck = Callable[[Mapping[str, Any], bytes], bool]
"""Whether a record's ``sig`` is a valid signature of the given bytes."""


class ChainError(AureusError):
    """An audit log cannot be checked at all: unreadable, or a key is needed and missing."""


# -- encoding ------------------------------------------------------------------


def canonical(value: object) -> bytes:
    """The one JSON encoding every hash, MAC and signature is computed over."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def encode_line(record: Mapping[str, Any]) -> bytes:
    """One log line: the record's members in writing order (``seq`` first, ``hash`` last).

    Hashes are computed over :func:`canonical`, so the order on the line is
    only for readers.
    """
    return (
        json.dumps(record, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode(
            "ascii"
        )
        + b"\n"
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def parse_json(data: bytes | str) -> Record:
    """A JSON object; duplicate keys are refused, so no two readers see different records."""
    value = json.loads(data, object_pairs_hook=_no_duplicates)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def record_hash(record: Mapping[str, Any], chain_key: bytes | None) -> str:
    """The hash a record must carry: SHA-256, or HMAC-SHA-256 under ``chain_key``."""
    body = RECORD_DOMAIN + canonical({k: v for k, v in record.items() if k != "hash"})
    if chain_key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.new(chain_key, body, hashlib.sha256).hexdigest()


def head_mac(head: Mapping[str, Any], chain_key: bytes) -> str:
    """The MAC a head file carries in an HMAC-chained log."""
    body = HEAD_DOMAIN + canonical({k: v for k, v in head.items() if k != "mac"})
    return hmac.new(chain_key, body, hashlib.sha256).hexdigest()


def signed_bytes(record: Mapping[str, Any]) -> bytes:
    """What a checkpoint signature signs: the record without ``hash`` and ``sig``."""
    return SIGNATURE_DOMAIN + canonical(
        {k: v for k, v in record.items() if k not in ("hash", "sig")}
    )


def base_uri(uri: str) -> str:
    """A key URI without its version."""
    return KeyRef.parse(uri).with_version(None).uri


# -- parameters ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ChainParams:
    """How one file is chained, as its file record declares."""

    alg: str = SHA256
    mac_key: str | None = None
    """With ``hmac-sha256``: the MAC key, pinned to a version."""
    checkpoint_key: str | None = None
    """The key checkpoints are signed with (no version: it may rotate)."""
    checkpoint_every: int | None = None
    """A checkpoint follows every this many events."""

    def to_dict(self) -> dict[str, Any]:
        """The ``params`` of a file record."""
        data: dict[str, Any] = {"alg": self.alg}
        if self.mac_key is not None:
            data["mac_key"] = self.mac_key
        if self.checkpoint_key is not None:
            data["checkpoint_key"] = self.checkpoint_key
            data["checkpoint_every"] = self.checkpoint_every
        return data

    @classmethod
    def from_dict(cls, data: object) -> ChainParams:
        """Parse and check a file record's ``params``; ``ValueError`` says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("params is not an object")
        unknown = set(data) - {"alg", "mac_key", "checkpoint_key", "checkpoint_every"}
        if unknown:
            raise ValueError(f"unknown params {', '.join(sorted(unknown))}")
        alg = data.get("alg")
        mac_key = data.get("mac_key")
        if alg == SHA256 and mac_key is None:
            pass
        elif alg == HMAC_SHA256 and isinstance(mac_key, str):
            if KeyRef.parse(mac_key).version is None:
                raise ValueError("mac_key names no version")
        else:
            raise ValueError(f"unknown hash algorithm {alg!r} or a mac_key that does not fit it")
        checkpoint_key = data.get("checkpoint_key")
        every = data.get("checkpoint_every")
        if checkpoint_key is not None:
            KeyRef.parse(checkpoint_key)
            if isinstance(every, bool) or not isinstance(every, int) or every < 1:
                raise ValueError("checkpoint_every must be a positive whole number")
        elif every is not None:
            raise ValueError("checkpoint_every without checkpoint_key")
        return cls(alg=alg, mac_key=mac_key, checkpoint_key=checkpoint_key, checkpoint_every=every)

    def settings(self) -> tuple[object, ...]:
        """What must match for a writer to continue this file (the MAC key's version may not)."""
        mac = base_uri(self.mac_key) if self.mac_key else None
        return (self.alg, mac, self.checkpoint_key, self.checkpoint_every)

    def describe(self) -> str:
        """``SHA-256`` or ``HMAC-SHA-256 under URI``."""
        return "SHA-256" if self.alg == SHA256 else f"HMAC-SHA-256 under {self.mac_key}"


# -- files ---------------------------------------------------------------------


def head_path(path: Path) -> Path:
    """The head file of the log whose active file is ``path``."""
    return path.with_name(path.name + ".head")


def lock_path(path: Path) -> Path:
    """The lock file writers of ``path`` share."""
    return path.with_name(f".{path.name}.lock")


def rotated_path(path: Path, index: int) -> Path:
    """Where file number ``index`` of the log goes when it is rotated."""
    return path.with_name(f"{path.name}.{index:06d}")


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of the log at ``path``, oldest first."""
    found: list[tuple[int, Path]] = []
    if path.parent.is_dir():
        for entry in path.parent.iterdir():
            if entry.name.startswith(path.name):
                match = _ROTATED.match(entry.name[len(path.name) :])
                if match:
                    found.append((int(match.group(1)), entry))
    return [p for _, p in sorted(found)]


def chain_files(path: Path) -> list[Path]:
    """Every file of the log at ``path``, oldest first (rotated ones, then the active one)."""
    return [*rotated_files(path), *([path] if path.exists() else [])]


def read_first_line(path: Path, limit: int = 1 << 20) -> bytes:
    """The first line of ``path`` (without its newline)."""
    with path.open("rb") as handle:
        return handle.readline(limit).rstrip(b"\n")


def iter_lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """``(line number, line, complete)``; ``complete`` is false for a last line with no newline."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.endswith(b"\n"):
                yield number, line[:-1], True
            else:
                yield number, line, False


def iter_records(paths: Sequence[Path]) -> Iterator[Record]:
    """The records of ``paths`` in order, unchecked (for reading, not for trusting)."""
    for path in paths:
        for _, line, complete in iter_lines(path):
            if complete and line:
                yield parse_json(line)


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of every file of the log at ``path``, oldest first, unchecked."""
    return [r["event"] for r in iter_records(chain_files(path)) if r.get("kind") == "event"]


# -- signatures ------------------------------------------------------------------


def make_sig(key_uri: str, version: str, algorithm: str, value: bytes) -> dict[str, str]:
    """The ``sig`` member of a signed record."""
    return {
        "key": key_uri,
        "version": version,
        "algorithm": algorithm,
        "value": base64.b64encode(value).decode("ascii"),
    }


def sig_value(sig: Mapping[str, Any]) -> bytes:
    """The raw signature of a ``sig`` member; ``ValueError`` if malformed."""
    value = sig.get("value")
    if not isinstance(value, str):
        raise ValueError("sig has no value")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("sig value is not base64") from None


def public_key_check(pems: Sequence[bytes]) -> SignatureCheck:
    """A :data:`SignatureCheck` with PEM public keys alone (Ed25519, ECDSA P-256/SHA-256)."""
    keys = []
    for pem in pems:
        try:
            key = serialization.load_pem_public_key(pem)
        except ValueError:
            raise ConfigError("a --public-key file is not a PEM public key") from None
        if not isinstance(key, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
            raise ConfigError("checkpoint public keys must be Ed25519 or ECDSA keys")
        keys.append(key)

    def check(sig: Mapping[str, Any], message: bytes) -> bool:
        try:
            value = sig_value(sig)
        except ValueError:
            return False
        for key in keys:
            try:
                if isinstance(key, ed25519.Ed25519PublicKey):
                    key.verify(value, message)
                else:
                    key.verify(value, message, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                continue
            return True
        return False

    return check


# -- verification ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Verdict:
    """What :func:`verify_chain` found: ``ok``, a one-line ``message`` and details."""

    ok: bool
    message: str
    records: int = 0
    events: int = 0
    checkpoints: int = 0
    notes: tuple[str, ...] = ()


class _Broken(Exception):
    """The first broken link (internal: becomes a failed :class:`Verdict`)."""


def _check_head(data: Mapping[str, Any]) -> None:
    if data.get("format") != HEAD_FORMAT:
        raise ValueError("not an Aureus audit head file")
    for name in ("index", "seq", "size", "unsigned"):
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} is not a whole number")
    if not isinstance(data.get("hash"), str) or not _HEX64.match(data["hash"]):
        raise ValueError("hash is not a SHA-256 hex digest")
    if not isinstance(data.get("file"), str):
        raise ValueError("file is not a name")


def read_head(path: Path) -> Record:
    """A head file's content, structurally checked; ``ValueError`` if it is not one."""
    data = parse_json(path.read_bytes())
    _check_head(data)
    return data


class ChainVerifier:
    """Walks the files of one log in order and reports the first broken link.

    ``mac_key``: the log must be HMAC-chained under this key (any version);
    ``chain_key`` derives chain keys for it.  ``check_signature``: verify
    every signed record and that checkpoints are where the log promises;
    ``checkpoint_key``, if given, is the key the log must name for them.
    """

    def __init__(
        self,
        *,
        mac_key: str | None = None,
        chain_key: ChainKeySource | None = None,
        check_signature: SignatureCheck | None = None,
        checkpoint_key: str | None = None,
    ) -> None:
        self._mac_key = base_uri(mac_key) if mac_key else None
        self._chain_key_source = chain_key
        self._check_signature = check_signature
        self._checkpoint_key = base_uri(checkpoint_key) if checkpoint_key else None
        self._keys: dict[str, bytes] = {}
        self._notes: list[str] = []
        self._records = 0
        self._events = 0
        self._signed = 0
        self._hash_at: dict[int, str] = {}
        self._watch: int | None = None
        self._since = 0
        """Events since the last signed record (or file record)."""
        self._last_signed: int | None = None
        self._params: ChainParams | None = None
        """The params of the file being (or last) walked."""
        self._head_checked = False

    def chain_key(self, params: ChainParams) -> bytes | None:
        """The chain key a file's params call for (``None`` for SHA-256)."""
        if params.mac_key is None:
            return None
        if self._chain_key_source is None:
            raise ChainError(
                f"the log is chained with HMAC-SHA-256 under {base_uri(params.mac_key)}: pass "
                f"--mac-key {base_uri(params.mac_key)} to verify it"
            )
        if params.mac_key not in self._keys:
            self._keys[params.mac_key] = self._chain_key_source(params.mac_key)
        return self._keys[params.mac_key]

    def verify(self, files: Sequence[Path], head: Path | None = None) -> Verdict:
        """Check ``files`` (any order: they are sorted by their first record) and ``head``."""
        head_data = self._load_head(head) if head is not None else None
        if isinstance(head_data, Verdict):
            return head_data
        if head_data is not None:
            self._watch = head_data["seq"]
        try:
            last = self._walk(self._ordered(files))
            if head is not None and head_data is not None:
                self._compare_head(head, head_data, last)
        except _Broken as broken:
            return Verdict(
                ok=False,
                message=str(broken),
                records=self._records,
                events=self._events,
                checkpoints=self._signed,
                notes=tuple(self._notes),
            )
        return Verdict(
            ok=True,
            message=self._summary(files, last),
            records=self._records,
            events=self._events,
            checkpoints=self._signed,
            notes=tuple(self._notes),
        )

    # -- walking -----------------------------------------------------------------

    def _ordered(self, files: Sequence[Path]) -> list[Path]:
        def first_seq(path: Path) -> int:
            try:
                seq = parse_json(read_first_line(path)).get("seq")
            except (OSError, ValueError):
                return -1
            return seq if isinstance(seq, int) and not isinstance(seq, bool) else -1

        return sorted(files, key=first_seq)

    def _walk(self, files: Sequence[Path]) -> tuple[Path, int, Record] | None:
        last: tuple[Path, int, Record] | None = None
        for path in files:
            last = self._walk_file(path, last) or last
        if last is not None:
            self._check_trailing(last)
        return last

    def _walk_file(
        self, path: Path, before: tuple[Path, int, Record] | None
    ) -> tuple[Path, int, Record] | None:
        current = before
        try:
            for number, line, complete in iter_lines(path):
                current = self._check_line(path, number, line, complete, current)
        except OSError as error:
            raise ChainError(f"cannot read {path}: {error.strerror}") from None
        if current is before:
            raise _Broken(f"{path.name} is empty: it is not an audit log, or it was truncated")
        return current

    def _check_line(
        self,
        path: Path,
        number: int,
        line: bytes,
        complete: bool,
        before: tuple[Path, int, Record] | None,
    ) -> tuple[Path, int, Record]:
        where = f"{path.name} line {number}"
        if not complete:
            raise _Broken(
                f"{where}: the last line is incomplete: a writer stopped in the middle of "
                "an append (the next append repairs it), or the file was cut mid-record"
            )
        record = self._parse(where, line)
        where = f"{where} (seq {record['seq']})"
        if number == 1:
            if record["kind"] != "file":
                raise _Broken(
                    f"{where}: the file does not start with a file record: lines were "
                    "removed from its start, or it is not an Aureus audit log"
                )
            self._params = self._file_params(where, record)
        elif record["kind"] == "file":
            raise _Broken(
                f"{where}: a file record in the middle of a file: lines from another "
                "log or file were inserted here"
            )
        params = self._params
        assert params is not None
        if not hmac.compare_digest(record_hash(record, self.chain_key(params)), record["hash"]):
            raise _Broken(
                f"{where}: the record's hash does not match its content "
                f"({params.describe()}): the record was edited"
            )
        self._link(path, number, record, before)
        self._count(where, record, params)
        return (path, number, record)

    def _parse(self, where: str, line: bytes) -> Record:
        try:
            record = parse_json(line)
        except ValueError as error:
            raise _Broken(
                f"{where}: not a valid audit record ({error}): the line was edited or inserted"
            ) from None
        seq = record.get("seq")
        problems = []
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            problems.append("seq")
        if record.get("kind") not in KINDS:
            problems.append("kind")
        for name in ("prev", "hash"):
            if not isinstance(record.get(name), str) or not _HEX64.match(record[name]):
                problems.append(name)
        if record.get("kind") == "event" and not isinstance(record.get("event"), dict):
            problems.append("event")
        if problems:
            raise _Broken(
                f"{where}: not a valid audit record (bad {', '.join(problems)}): the line was "
                "edited or inserted"
            )
        return record

    def _file_params(self, where: str, record: Record) -> ChainParams:
        info = record.get("file")
        if not isinstance(info, dict) or info.get("format") != FORMAT:
            raise _Broken(f"{where}: the file record is not of format {FORMAT}")
        try:
            params = ChainParams.from_dict(info.get("params"))
        except (ValueError, ConfigError) as error:
            raise _Broken(f"{where}: the file record's params are invalid ({error})") from None
        if self._mac_key is not None:
            if params.mac_key is None:
                raise _Broken(
                    f"{where}: the file is chained with plain SHA-256, but HMAC under "
                    f"{self._mac_key} was required: the log was downgraded and rewritten, or "
                    "it is not the log you expect"
                )
            if base_uri(params.mac_key) != self._mac_key:
                raise _Broken(
                    f"{where}: the file is chained under {params.mac_key}, not "
                    f"{self._mac_key}: it is not the log you expect"
                )
        if self._check_signature is not None:
            if params.checkpoint_key is None:
                raise _Broken(
                    f"{where}: the file declares no checkpoint key, but signed checkpoints "
                    "were required: checkpoints were stripped and the log rewritten, or it is "
                    "not the log you expect"
                )
            if self._checkpoint_key and base_uri(params.checkpoint_key) != self._checkpoint_key:
                raise _Broken(
                    f"{where}: checkpoints are signed by {params.checkpoint_key}, not "
                    f"{self._checkpoint_key}"
                )
        return params

    def _link(
        self,
        path: Path,
        number: int,
        record: Record,
        before: tuple[Path, int, Record] | None,
    ) -> None:
        seq = record["seq"]
        where = f"{path.name} line {number} (seq {seq})"
        if before is None:
            if seq == 0 and record["prev"] != GENESIS:
                raise _Broken(f"{where}: seq 0 does not start a chain (its prev is not zero)")
            if seq != 0:
                self._notes.append(
                    f"the chain starts at seq {seq} in {path.name}: the files before it were "
                    "not given, so the link to them is not checked"
                )
            return
        before_path, _, previous = before
        expected = previous["seq"] + 1
        boundary = before_path != path
        if seq > expected:
            if boundary:
                raise _Broken(
                    f"{path.name} starts at seq {seq}, but {before_path.name} ends at seq "
                    f"{expected - 1}: records (or a whole file) between them are missing"
                )
            later = next(
                (n for n, line, _ in iter_lines(path) if n > number and _seq_of(line) == expected),
                None,
            )
            if later is not None:
                raise _Broken(
                    f"{where}: out of order: seq {expected} comes after it, at line {later}: "
                    "records were reordered"
                )
            missing = f"seq {expected}" if seq == expected + 1 else f"seq {expected}-{seq - 1}"
            raise _Broken(f"{where}: {missing} missing before it: records were deleted")
        if seq < expected:
            if boundary:
                raise _Broken(
                    f"{path.name} starts at seq {seq}, but {before_path.name} already reached "
                    f"seq {expected - 1}: the files overlap or come from different logs"
                )
            raise _Broken(
                f"{where}: seq {seq} again after seq {expected - 1}: a record was inserted, "
                "duplicated or moved here"
            )
        if record["prev"] != previous["hash"]:
            if boundary:
                raise _Broken(
                    f"{where}: {path.name} does not continue {before_path.name} (its first "
                    f"record does not link to seq {seq - 1}): the files come from different "
                    "logs, or the file boundary was broken"
                )
            raise _Broken(
                f"{where}: does not link to seq {seq - 1} before it: a record was inserted "
                "or replaced here, or the chain was rewritten from here"
            )

    def _count(self, where: str, record: Record, params: ChainParams) -> None:
        self._records += 1
        seq = record["seq"]
        if self._watch is not None and seq == self._watch:
            self._hash_at[seq] = record["hash"]
        kind = record["kind"]
        if kind == "event":
            self._events += 1
            self._since += 1
            every = params.checkpoint_every
            if self._check_signature is not None and every and self._since > every:
                raise _Broken(
                    f"{where}: {self._since} events since the last signed record, but the log "
                    f"promises a checkpoint every {every}: checkpoint records were removed"
                )
            return
        signed = "sig" in record
        if kind == "checkpoint" and not signed:
            raise _Broken(f"{where}: a checkpoint record without a signature")
        if signed and self._check_signature is not None:
            sig = record["sig"]
            if not isinstance(sig, dict) or not self._check_signature(sig, signed_bytes(record)):
                raise _Broken(
                    f"{where}: the signature does not verify: the records before it were "
                    "altered, or the record was forged"
                )
        elif kind == "file" and self._check_signature is not None:
            raise _Broken(f"{where}: the file record is not signed, but its params name a key")
        if signed:
            self._signed += 1
        self._since = 0
        self._last_signed = seq

    def _check_trailing(self, last: tuple[Path, int, Record]) -> None:
        every = self._params.checkpoint_every if self._params else None
        if self._check_signature is not None and every and self._since >= every:
            raise _Broken(
                f"the log ends at seq {last[2]['seq']} with {self._since} events after the last "
                f"signed record (seq {self._last_signed}), but a checkpoint is due every "
                f"{every}: records after seq {self._last_signed} were replaced or removed"
            )

    # -- the head file -----------------------------------------------------------

    def _load_head(self, head: Path) -> Record | Verdict:
        try:
            return read_head(head)
        except FileNotFoundError:
            return Verdict(ok=False, message=f"head file {head} does not exist")
        except OSError as error:
            raise ChainError(f"cannot read {head}: {error.strerror}") from None
        except ValueError as error:
            return Verdict(
                ok=False, message=f"head file {head.name} is not valid ({error}): it was edited"
            )

    def _compare_head(
        self, path: Path, head: Record, last: tuple[Path, int, Record] | None
    ) -> None:
        if last is None:
            raise _Broken(f"head file {path.name} names seq {head['seq']}, but no log was given")
        last_path, last_line, last_record = last
        params = self._params
        assert params is not None
        key = self.chain_key(params)
        if key is not None:
            mac = head.get("mac")
            if not isinstance(mac, str) or not hmac.compare_digest(head_mac(head, key), mac):
                raise _Broken(
                    f"head file {path.name}: its MAC does not match ({params.describe()}): "
                    "it was edited or replaced"
                )
        seq, end = head["seq"], last_record["seq"]
        if seq > end:
            raise _Broken(
                f"the log was cut: head file {path.name} records seq {seq}, but the log ends "
                f"at seq {end} ({last_path.name} line {last_line}): the records after seq "
                f"{end} were removed"
            )
        if self._hash_at.get(seq) != head["hash"]:
            raise _Broken(
                f"head file {path.name} records another hash for seq {seq} than the log has: "
                f"the log was rewritten up to seq {seq}, or the head is from another log"
            )
        if seq < end:
            self._notes.append(
                f"the head file is {end - seq} record(s) behind the log: a writer stopped "
                "between an append and its head update; the next append brings it up to date"
            )
        self._head_checked = True

    def _summary(self, files: Sequence[Path], last: tuple[Path, int, Record] | None) -> str:
        if last is None:
            return "OK: no records"
        first = parse_json(read_first_line(self._ordered(files)[0]))
        count = len(files)
        text = (
            f"OK: {self._records} records (seq {first['seq']}-{last[2]['seq']}, "
            f"{self._events} events) in {count} file{'s' if count != 1 else ''}"
        )
        if self._params is not None:
            text += f"; {self._params.describe()}"
        if self._check_signature is not None:
            text += f"; {self._signed} signatures verified"
        elif self._signed:
            text += (
                f"; {self._signed} signed records not checked (pass --checkpoint-key or "
                "--public-key)"
            )
        if self._head_checked:
            text += "; head file matches"
        return text


def _seq_of(line: bytes) -> int | None:
    try:
        seq = parse_json(line).get("seq")
    except ValueError:
        return None
    return seq if isinstance(seq, int) else None


def verify_chain(
    files: Sequence[Path],
    *,
    head: Path | None = None,
    mac_key: str | None = None,
    chain_key: ChainKeySource | None = None,
    check_signature: SignatureCheck | None = None,
    checkpoint_key: str | None = None,
) -> Verdict:
    """Check one log's files (and its head file): a :class:`Verdict` naming the first break."""
    verifier = ChainVerifier(
        mac_key=mac_key,
        chain_key=chain_key,
        check_signature=check_signature,
        checkpoint_key=checkpoint_key,
    )
    return verifier.verify(files, head)
