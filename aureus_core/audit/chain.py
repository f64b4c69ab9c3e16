"""The hash-chained JSON-lines audit log: records, head file, checkpoints, anchor, verification.

A log is one active file (``audit.jsonl``) plus the files it was rotated into
(``audit.jsonl.000001`` ...), a head file (``audit.jsonl.head``) and a lock
file (``.audit.jsonl.lock``); optionally an anchor file elsewhere receives a
copy of every signed record.  Every line is one record, canonical JSON::

    {"seq": 7, "kind": "event", "prev": "<hash of seq 6>", "event": {...}, "hash": "..."}

Each log has a random log ID, fixed when its first record is written.  ``hash``
is SHA-256, or HMAC-SHA-256 under a chain key, over ``aureus-audit-record/2``,
a newline, the log ID, a newline and the canonical JSON of the record without
``hash``; the chain key is the MAC key's provider MAC, under one pinned key
version, of a label that names the log ID.  Each file starts with a ``file``
record declaring the log ID and how the file is chained (``params``); it links
to the last record of the previous file.  ``checkpoint`` records (and file
records) may carry a signature (``sig``) over the log ID and the record
without ``hash`` and ``sig``, which pins everything before them.  Files of
the older format ``aureus-audit-jsonl/1`` (no log ID) can still be read.  See
``docs/audit.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ..errors import AureusError, ConfigError, KeyNotFound, SignatureError
from ..keyref import KeyRef

if TYPE_CHECKING:
    from ..interfaces import KeyProvider

FORMAT = "aureus-audit-jsonl/2"
FORMAT_1 = "aureus-audit-jsonl/1"
"""The older format: no log ID, one chain key per MAC key version for every log."""
HEAD_FORMAT = "aureus-audit-head/2"
HEAD_FORMAT_1 = "aureus-audit-head/1"
ANCHOR_FORMAT = "aureus-audit-anchor/1"
GENESIS = "0" * 64
"""The ``prev`` of the first record of a chain."""
SHA256 = "sha256"
HMAC_SHA256 = "hmac-sha256"
CHAIN_KEY_LABEL = b"aureus-audit-jsonl/chain-key/v1"
"""What the MAC key's provider MACs to give the chain key of a format-1 file."""
CHAIN_KEY_LABEL_2 = b"aureus-audit-jsonl/chain-key/v2\n"
"""Followed by the log ID: the label of a chain key (see :func:`chain_key_label`)."""
RECORD_DOMAIN = b"aureus-audit-record/1\n"
RECORD_DOMAIN_2 = b"aureus-audit-record/2\n"
HEAD_DOMAIN = b"aureus-audit-head/1\n"
SIGNATURE_DOMAIN = b"aureus-audit-checkpoint/1\n"
SIGNATURE_DOMAIN_2 = b"aureus-audit-checkpoint/2\n"
KINDS = ("file", "event", "checkpoint")
LOG_ID_BYTES = 16
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_LOG_ID = re.compile(r"^[0-9a-f]{32}$")
_ROTATED = re.compile(r"^\.(\d{6,})$")

Record = dict[str, Any]
MacSource = Callable[[str, bytes], bytes]
"""The provider MAC of a label under a pinned MAC key URI (``local://audit-mac?version=1``)."""
SignatureCheck = Callable[[Mapping[str, Any], bytes], bool]
"""Whether a record's ``sig`` is a valid signature of the given bytes by a trusted key.

Any ``sig`` that cannot be checked against a trusted key (another key, a version
that does not exist or is not one, a malformed value) is ``False``; raise
(:class:`ChainError`) only when the check itself cannot run, which says nothing
about the log.
"""


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


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(data: bytes | str) -> Record:
    """A JSON object; duplicate keys are refused, so no two readers see different records.

    ``NaN`` and ``Infinity``, which Python's reader accepts but JSON does not, are refused
    too: no record with them was ever written, and none could be hashed.
    """
    value = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def new_log_id() -> str:
    """A fresh random log ID (128 bits, hex)."""
    return secrets.token_hex(LOG_ID_BYTES)


def chain_key_label(log_id: str | None) -> bytes:
    """What the MAC key's provider MACs to give the chain key of one log (``None``: format 1)."""
    if log_id is None:
        return CHAIN_KEY_LABEL
    return CHAIN_KEY_LABEL_2 + log_id.encode("ascii")


def record_hash(record: Mapping[str, Any], chain_key: bytes | None, log_id: str | None) -> str:
    """The hash a record of log ``log_id`` must carry: SHA-256, or HMAC-SHA-256 under ``chain_key``.

    ``log_id`` ``None`` gives the hash of a format-1 record, which names no log.
    """
    content = canonical({k: v for k, v in record.items() if k != "hash"})
    if log_id is None:
        body = RECORD_DOMAIN + content
    else:
        body = RECORD_DOMAIN_2 + log_id.encode("ascii") + b"\n" + content
    if chain_key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.new(chain_key, body, hashlib.sha256).hexdigest()


def head_mac(head: Mapping[str, Any], chain_key: bytes) -> str:
    """The MAC a head file carries in an HMAC-chained log (it covers the head's log ID)."""
    body = HEAD_DOMAIN + canonical({k: v for k, v in head.items() if k != "mac"})
    return hmac.new(chain_key, body, hashlib.sha256).hexdigest()


def signed_bytes(record: Mapping[str, Any], log_id: str | None) -> bytes:
    """What a checkpoint signature signs: the log ID and the record without ``hash`` and ``sig``."""
    content = canonical({k: v for k, v in record.items() if k not in ("hash", "sig")})
    if log_id is None:
        return SIGNATURE_DOMAIN + content
    return SIGNATURE_DOMAIN_2 + log_id.encode("ascii") + b"\n" + content


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


@attrs.frozen(kw_only=True)
class FileDecl:
    """What a file record declares: the log it belongs to, its number and its params."""

    log: str | None
    """The log ID (``None``: a file of the older format 1, which names no log)."""
    index: int
    params: ChainParams

    @property
    def format(self) -> str:
        """``aureus-audit-jsonl/2``, or ``/1`` for a file without a log ID."""
        return FORMAT_1 if self.log is None else FORMAT

    def to_dict(self) -> dict[str, Any]:
        """The ``file`` member of a file record."""
        data: dict[str, Any] = {"format": self.format, "index": self.index}
        if self.log is not None:
            data["log"] = self.log
        data["params"] = self.params.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: object) -> FileDecl:
        """Parse and check a file record's ``file``; ``ValueError`` says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("file is not an object")
        form = data.get("format")
        if form not in (FORMAT, FORMAT_1):
            raise ValueError(f"format {form!r} is neither {FORMAT} nor {FORMAT_1}")
        names = {"format", "index", "params"} | ({"log"} if form == FORMAT else set())
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown members {', '.join(sorted(unknown))}")
        index = data.get("index")
        if isinstance(index, bool) or not isinstance(index, int) or index < 1:
            raise ValueError("index is not a positive whole number")
        log = data.get("log")
        if form == FORMAT and (not isinstance(log, str) or not _LOG_ID.match(log)):
            raise ValueError("log is not a log ID (32 hex digits)")
        return cls(log=log, index=index, params=ChainParams.from_dict(data.get("params")))


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


def record_at(path: Path, seq: int) -> Record | None:
    """The record numbered ``seq`` in the log at ``path`` (unchecked), or ``None``.

    Only the file whose range holds ``seq`` is read, found from the newest file back.
    """
    for file in reversed(chain_files(path)):
        try:
            first = parse_json(read_first_line(file)).get("seq")
        except ValueError:
            return None
        if isinstance(first, int) and first <= seq:
            for _, line, complete in iter_lines(file):
                if complete and line and _seq_of(line) == seq:
                    return parse_json(line)
            return None
    return None


# -- the anchor --------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class AnchorMark:
    """One entry of an anchor file: a signed record of log ``log``, as it was written."""

    log: str
    seq: int
    hash: str
    record: Record
    line: int


def anchor_entry(log_id: str, file_name: str, record: Mapping[str, Any]) -> Record:
    """The anchor line for a signed ``record`` of log ``log_id`` (active file ``file_name``)."""
    return {"format": ANCHOR_FORMAT, "log": log_id, "file": file_name, "record": dict(record)}


def read_anchor(path: Path) -> list[AnchorMark]:
    """The entries of an anchor file, in order; ``ValueError`` names a damaged line.

    A last line without its newline is a torn append that never completed and is
    skipped; the next append removes it.
    """
    marks: list[AnchorMark] = []
    for number, line, complete in iter_lines(path):
        if not complete:
            break
        try:
            entry = parse_json(line)
            if entry.get("format") != ANCHOR_FORMAT:
                raise ValueError(f"format is not {ANCHOR_FORMAT}")
            log, record = entry.get("log"), entry.get("record")
            if not isinstance(log, str) or not _LOG_ID.match(log):
                raise ValueError("log is not a log ID")
            if not isinstance(record, dict):
                raise ValueError("record is not an object")
            seq, digest = record.get("seq"), record.get("hash")
            if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
                raise ValueError("the record's seq is not a whole number")
            if not isinstance(digest, str) or not _HEX64.match(digest):
                raise ValueError("the record's hash is not a hex digest")
            if record.get("kind") not in ("file", "checkpoint") or "sig" not in record:
                raise ValueError("the record is not a signed file or checkpoint record")
        except ValueError as error:
            raise ValueError(f"line {number} is not an anchor entry ({error})") from None
        marks.append(AnchorMark(log=log, seq=seq, hash=digest, record=record, line=number))
    return marks


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


def provider_signature_check(provider: KeyProvider, checkpoint_key: str) -> SignatureCheck:
    """A :data:`SignatureCheck` through a key provider: signatures by ``checkpoint_key`` count.

    With ``?version=N`` only signatures by that version count.  A ``sig`` naming
    another key or version, a version the key does not have or that is not one,
    or a malformed value is ``False``: in a log or an anchor it is a forgery.
    When the provider fails (unreachable, access denied, the key itself missing
    or unusable, a version disabled), :class:`ChainError` says so: that is no
    verdict on the log.
    """
    trusted = KeyRef.parse(checkpoint_key)
    expected = trusted.with_version(None)

    def cannot_check(error: AureusError) -> ChainError:
        return ChainError(
            f"cannot check checkpoint signatures with {expected.uri}: {error} (the key "
            "provider failed: this is no verdict on the log)"
        )

    def has_version(version: str) -> bool:
        try:
            metadata = provider.describe_key(expected)
        except AureusError as error:
            raise cannot_check(error) from None
        return version in {v.version for v in metadata.versions}

    def check(sig: Mapping[str, Any], message: bytes) -> bool:
        key, version = sig.get("key"), sig.get("version")
        if not isinstance(key, str) or not isinstance(version, str):
            return False
        if trusted.version is not None and version != trusted.version:
            return False
        try:
            if base_uri(key) != expected.uri:
                return False
            ref = expected.with_version(version)
            value = sig_value(sig)
        except (ConfigError, ValueError):
            return False
        try:
            return provider.verify(ref, message, value) is True
        except (SignatureError, ValueError):
            return False
        except (KeyNotFound, ConfigError) as error:
            # The version named may not exist, or not be one the provider can parse;
            # or the trusted key itself is missing or unfit, which is the operator's.
            if not has_version(version):
                return False
            raise cannot_check(error) from None
        except AureusError as error:
            raise cannot_check(error) from None

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
    log: str | None = None
    """The log ID the files declare (``None``: none walked, or only format-1 files)."""
    notes: tuple[str, ...] = ()


class _Broken(Exception):
    """The first broken link (internal: becomes a failed :class:`Verdict`)."""


def _check_head(data: Mapping[str, Any]) -> None:
    form = data.get("format")
    if form not in (HEAD_FORMAT, HEAD_FORMAT_1):
        raise ValueError("not an Aureus audit head file")
    for name in ("index", "seq", "size", "unsigned"):
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} is not a whole number")
    if not isinstance(data.get("hash"), str) or not _HEX64.match(data["hash"]):
        raise ValueError("hash is not a SHA-256 hex digest")
    if not isinstance(data.get("file"), str):
        raise ValueError("file is not a name")
    log = data.get("log")
    if form == HEAD_FORMAT and (not isinstance(log, str) or not _LOG_ID.match(log)):
        raise ValueError("log is not a log ID")
    if form == HEAD_FORMAT_1 and "log" in data:
        raise ValueError(f"a {HEAD_FORMAT_1} head names no log")


def read_head(path: Path) -> Record:
    """A head file's content, structurally checked; ``ValueError`` if it is not one."""
    data = parse_json(path.read_bytes())
    _check_head(data)
    return data


NO_HEAD_MESSAGE = (
    "no head file was given: without it, a log cut back to any earlier checkpoint (or, "
    "unsigned, to any record) verifies. Give the log's head file (FILE.head), or declare that "
    "the log has none (--no-head)"
)


class ChainVerifier:
    """Walks the files of one log in order and reports the first broken link.

    ``mac_key``: the log must be HMAC-chained under this key (any version);
    ``mac`` computes its chain keys (the provider MAC of a label under a
    pinned version).  ``check_signature``: verify every signed record and that
    checkpoints are where the log promises; ``checkpoint_key``, if given, is
    the key the log must name for them (with ``?version=N``, only signatures
    by that version count).  ``allow_format_1``: accept files of the older
    format, which carry no log ID (see ``docs/audit.md``).  ``from_seq``: the
    seq the log is kept from; a log that starts later lost its oldest records.
    """

    def __init__(
        self,
        *,
        mac_key: str | None = None,
        mac: MacSource | None = None,
        check_signature: SignatureCheck | None = None,
        checkpoint_key: str | None = None,
        allow_format_1: bool = False,
        from_seq: int = 0,
    ) -> None:
        if isinstance(from_seq, bool) or not isinstance(from_seq, int) or from_seq < 0:
            raise ConfigError(f"from_seq must be a whole number, not {from_seq!r}")
        self._mac_key = base_uri(mac_key) if mac_key else None
        self._mac = mac
        self._check_signature = check_signature
        self._checkpoint_key = base_uri(checkpoint_key) if checkpoint_key else None
        self._checkpoint_version = KeyRef.parse(checkpoint_key).version if checkpoint_key else None
        self._allow_format_1 = allow_format_1
        self._from_seq = from_seq
        self._keys: dict[tuple[str, str | None], bytes] = {}
        self._notes: list[str] = []
        self._records = 0
        self._events = 0
        self._signed = 0
        self._hash_at: dict[int, str] = {}
        self._watch: set[int] = set()
        self._since = 0
        """Events since the last signed record (or file record)."""
        self._last_signed: int | None = None
        self._decl: FileDecl | None = None
        """What the file being (or last) walked declares."""
        self._log: str | None = None
        """The log ID of the format-2 files walked."""
        self._first_seq: int | None = None
        self._checked: list[str] = []

    def chain_key(self, decl: FileDecl) -> bytes | None:
        """The chain key a file calls for (``None`` for SHA-256)."""
        mac_key = decl.params.mac_key
        if mac_key is None:
            return None
        if self._mac is None:
            raise ChainError(
                f"the log is chained with HMAC-SHA-256 under {base_uri(mac_key)}: pass "
                f"--mac-key {base_uri(mac_key)} to verify it"
            )
        if (mac_key, decl.log) not in self._keys:
            self._keys[(mac_key, decl.log)] = self._mac(mac_key, chain_key_label(decl.log))
        return self._keys[(mac_key, decl.log)]

    def verify(
        self,
        files: Sequence[Path],
        head: Path | None = None,
        *,
        no_head: bool = False,
        anchor: Path | None = None,
    ) -> Verdict:
        """Check ``files`` (any order: they are sorted by their first record), ``head``, ``anchor``.

        Without ``head`` the log fails unless ``no_head`` declares that it has none.
        """
        for path in files:
            try:
                path.open("rb").close()
            except OSError as error:
                raise ChainError(f"cannot read {path}: {error.strerror}") from None
        if head is None and not no_head:
            return Verdict(ok=False, message=NO_HEAD_MESSAGE)
        head_data = self._load_head(head) if head is not None else None
        if isinstance(head_data, Verdict):
            return head_data
        marks = self._load_anchor(anchor) if anchor is not None else None
        if isinstance(marks, Verdict):
            return marks
        if head_data is not None:
            self._watch.add(head_data["seq"])
        self._watch.update(mark.seq for mark in marks or ())
        try:
            last = self._walk(self._ordered(files))
            if head is not None and head_data is not None:
                self._compare_head(head, head_data, last)
            if anchor is not None and marks is not None:
                self._compare_anchor(anchor, marks, last)
        except _Broken as broken:
            return self._verdict(False, str(broken))
        return self._verdict(True, self._summary(files, last))

    def _verdict(self, ok: bool, message: str) -> Verdict:
        return Verdict(
            ok=ok,
            message=message,
            records=self._records,
            events=self._events,
            checkpoints=self._signed,
            log=self._log,
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
            self._decl = self._file_decl(where, record)
        elif record["kind"] == "file":
            raise _Broken(
                f"{where}: a file record in the middle of a file: lines from another "
                "log or file were inserted here"
            )
        decl = self._decl
        assert decl is not None
        expected = record_hash(record, self.chain_key(decl), decl.log)
        if not hmac.compare_digest(expected, record["hash"]):
            raise _Broken(
                f"{where}: the record's hash does not match its content "
                f"({decl.params.describe()}{'' if decl.log else ', format 1'}): the record was "
                "edited, or it comes from another log"
            )
        self._link(path, number, record, before)
        self._count(where, record, decl)
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

    def _file_decl(self, where: str, record: Record) -> FileDecl:
        try:
            decl = FileDecl.from_dict(record.get("file"))
        except (ValueError, ConfigError) as error:
            raise _Broken(f"{where}: the file record is not valid ({error})") from None
        if decl.log is None:
            if not self._allow_format_1:
                raise _Broken(
                    f"{where}: the file was written by an older format ({FORMAT_1}), which "
                    "carries no log ID, so files of another log under the same MAC key would "
                    "verify in its place: pass --allow-format-1 to check it with that format's "
                    "rules"
                )
            if self._log is not None:
                raise _Broken(
                    f"{where}: a file of the older format {FORMAT_1} after files of log "
                    f"{self._log}: files were replaced"
                )
        elif self._log is None:
            self._log = decl.log
        elif decl.log != self._log:
            raise _Broken(
                f"{where}: the file belongs to log {decl.log}, but the files before it to log "
                f"{self._log}: files of another log were spliced in"
            )
        params = decl.params
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
        return decl

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
            self._first_seq = seq
            if seq == 0 and record["prev"] != GENESIS:
                raise _Broken(f"{where}: seq 0 does not start a chain (its prev is not zero)")
            if seq > self._from_seq:
                raise _Broken(self._missing_start(where, seq))
            if seq != 0:
                self._notes.append(
                    f"the chain starts at seq {seq} in {path.name}: the log is kept from seq "
                    f"{self._from_seq} (--from-seq), so the records before it and the link to "
                    "them are not checked"
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

    def _missing_start(self, where: str, seq: int) -> str:
        """Why a log whose first record is ``seq`` (past ``from_seq``) fails."""
        if self._from_seq == 0:
            return (
                f"{where}: the log starts at seq {seq}, not at seq 0: its oldest records "
                "(whole files) were deleted, or not given; if files were removed on purpose "
                "(retention), say from which seq the log is kept (--from-seq)"
            )
        kept = self._from_seq
        missing = f"seq {kept}" if seq == kept + 1 else f"seq {kept}-{seq - 1}"
        return (
            f"{where}: the log starts at seq {seq}, but it is kept from seq {kept} "
            f"(--from-seq): {missing} (whole files) were deleted, or not given"
        )

    def _untrusted_version(self, sig: object) -> str | None:
        """Why ``sig`` does not count under a ``checkpoint_key`` pinned to a version, if so."""
        pinned = self._checkpoint_version
        if pinned is None or not isinstance(sig, dict) or sig.get("version") == pinned:
            return None
        return (
            f"its signature names version {sig.get('version')!r} of {self._checkpoint_key}, "
            f"but only version {pinned} is trusted (the checkpoint key was given with "
            f"?version={pinned})"
        )

    def _count(self, where: str, record: Record, decl: FileDecl) -> None:
        self._records += 1
        seq = record["seq"]
        if seq in self._watch:
            self._hash_at[seq] = record["hash"]
        kind = record["kind"]
        if kind == "event":
            self._events += 1
            self._since += 1
            every = decl.params.checkpoint_every
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
            untrusted = self._untrusted_version(sig)
            if untrusted:
                raise _Broken(
                    f"{where}: {untrusted}: it was signed by a version you do not trust, or forged"
                )
            message = signed_bytes(record, decl.log)
            if not isinstance(sig, dict) or not self._check_signature(sig, message):
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
        every = self._decl.params.checkpoint_every if self._decl else None
        if self._check_signature is not None and every and self._since >= every:
            raise _Broken(
                f"the log ends at seq {last[2]['seq']} with {self._since} events after the last "
                f"signed record (seq {self._last_signed}), but a checkpoint is due every "
                f"{every}: records after seq {self._last_signed} were replaced or removed"
            )

    # -- the head file and the anchor ----------------------------------------------

    def _load_head(self, head: Path) -> Record | Verdict:
        try:
            return read_head(head)
        except FileNotFoundError:
            return Verdict(
                ok=False,
                message=f"head file {head} does not exist: it was deleted, perhaps to hide a "
                "cut tail; if the log really has none, declare it (--no-head)",
            )
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
        decl = self._decl
        assert decl is not None
        if head.get("log") != decl.log:
            named = f"log {head['log']}" if "log" in head else f"no log ({HEAD_FORMAT_1})"
            ours = f"log {decl.log}" if decl.log else f"no log ({FORMAT_1})"
            raise _Broken(
                f"head file {path.name} belongs to {named}, but the log's last file to "
                f"{ours}: it is the head of another log"
            )
        key = self.chain_key(decl)
        if key is not None:
            mac = head.get("mac")
            if not isinstance(mac, str) or not hmac.compare_digest(head_mac(head, key), mac):
                raise _Broken(
                    f"head file {path.name}: its MAC does not match ({decl.params.describe()}): "
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
        self._checked.append("head file matches")

    def _load_anchor(self, anchor: Path) -> list[AnchorMark] | Verdict:
        try:
            marks = read_anchor(anchor)
        except OSError as error:
            raise ChainError(f"cannot read anchor {anchor}: {error.strerror}") from None
        except ValueError as error:
            return Verdict(
                ok=False, message=f"anchor {anchor.name} is damaged: {error}: it was edited"
            )
        if not marks:
            return Verdict(
                ok=False,
                message=f"anchor {anchor.name} holds no entries: a writer records the first "
                "one when it creates the log, so it was emptied, or it is not an anchor",
            )
        return marks

    def _compare_anchor(
        self, path: Path, marks: Sequence[AnchorMark], last: tuple[Path, int, Record] | None
    ) -> None:
        if last is None:
            raise _Broken(f"anchor {path.name} names log {marks[0].log}, but no log was given")
        if self._log is None:
            raise _Broken(
                f"the log was written by the older format {FORMAT_1}, which carries no log "
                f"ID: it cannot be checked against anchor {path.name}"
            )
        for mark in marks:
            if mark.log != self._log:
                raise _Broken(
                    f"anchor {path.name} line {mark.line} belongs to log {mark.log}, but this "
                    f"is log {self._log}: the log was replaced by another one, or the anchor "
                    "is not this log's"
                )
        latest = max(marks, key=lambda mark: mark.seq)
        end = last[2]["seq"]
        if latest.seq > end and self._check_signature is not None:
            # Only an entry past the log's end decides the verdict on its own (the others
            # are compared with records whose signatures were checked in the log): make
            # sure it is this log's signed record, not a line added to the anchor.
            sig = latest.record.get("sig")
            untrusted = self._untrusted_version(sig)
            if untrusted:
                raise _Broken(
                    f"anchor {path.name} line {latest.line} records seq {latest.seq}, past the "
                    f"log's end (seq {end}); {untrusted}: the entry was forged, or signed "
                    "by a version you do not trust, so it cannot tell whether the log was "
                    "rolled back"
                )
            message = signed_bytes(latest.record, latest.log)
            if not isinstance(sig, dict) or not self._check_signature(sig, message):
                raise _Broken(
                    f"anchor {path.name} line {latest.line} records seq {latest.seq}, past the "
                    f"log's end (seq {end}), but its signature does not verify: the anchor was "
                    "edited (an entry forged or altered), so it cannot tell whether the log "
                    "was rolled back"
                )
        if latest.seq > end:
            raise _Broken(
                f"the log was rolled back: it ends at seq {end}, but anchor {path.name} line "
                f"{latest.line} records seq {latest.seq}: records after seq {end} were "
                "removed (and the head file replaced by an older one, or deleted)"
            )
        first = self._first_seq if self._first_seq is not None else 0
        skipped = 0
        for mark in marks:
            if mark.seq < first:
                skipped += 1
            elif self._hash_at.get(mark.seq) != mark.hash:
                raise _Broken(
                    f"seq {mark.seq} is not the record anchor {path.name} line {mark.line} "
                    "records: the log was rewritten after it was anchored"
                )
        if skipped:
            self._notes.append(
                f"{skipped} anchor entries before seq {first} were not checked: the log is "
                f"kept from seq {self._from_seq} (--from-seq)"
            )
        self._checked.append(f"anchor matches (seq {latest.seq})")

    def _summary(self, files: Sequence[Path], last: tuple[Path, int, Record] | None) -> str:
        if last is None:
            return "OK: no records"
        count = len(files)
        text = (
            f"OK: {self._records} records (seq {self._first_seq}-{last[2]['seq']}, "
            f"{self._events} events) in {count} file{'s' if count != 1 else ''}"
        )
        if self._log is not None:
            text += f"; log {self._log}"
        if self._decl is not None:
            text += f"; {self._decl.params.describe()}"
        if self._check_signature is not None:
            text += f"; {self._signed} signatures verified"
        elif self._signed:
            text += (
                f"; {self._signed} signed records not checked (pass --checkpoint-key or "
                "--public-key)"
            )
        for checked in self._checked:
            text += f"; {checked}"
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
    no_head: bool = False,
    anchor: Path | None = None,
    mac_key: str | None = None,
    mac: MacSource | None = None,
    check_signature: SignatureCheck | None = None,
    checkpoint_key: str | None = None,
    allow_format_1: bool = False,
    from_seq: int = 0,
) -> Verdict:
    """Check one log's files, its head file and anchor: a :class:`Verdict` naming the first break.

    A log without ``head`` fails unless ``no_head`` says it has none; a log
    that starts after seq ``from_seq`` (0: it must be whole) fails; with
    ``anchor``, a log older than the anchor's latest entry, or whose records
    differ from the anchored ones, fails.
    """
    verifier = ChainVerifier(
        mac_key=mac_key,
        mac=mac,
        check_signature=check_signature,
        checkpoint_key=checkpoint_key,
        allow_format_1=allow_format_1,
        from_seq=from_seq,
    )
    return verifier.verify(files, head, no_head=no_head, anchor=anchor)
