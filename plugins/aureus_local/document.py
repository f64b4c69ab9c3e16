"""The keystore document: its in-memory model and its JSON form (format version 3).

``keystore.json`` is one JSON object::

    {
      "format": "aureus-local-keystore", "format_version": 3,
      "keystore_id": "<32 hex digits>", "created_at": "<ISO 8601 UTC>",
      "generation": 7,
      "master_key": {"source": "key-file"}
                  | {"source": "passphrase", "kdf": "scrypt",
                     "salt": "<base64>", "log_n": 15, "r": 8, "p": 1},
      "verifier": "<base64 HMAC>",
      "keys": {
        "<name>": {
          "type": "aes-256", "created_at": "...", "description": "", "labels": {},
          "current_version": 2, "min_decryption_version": null,
          "versions": [{"version": 1, "created_at": "...", "origin": "generated",
                        "state": "enabled", "messages": 0, "bytes": 0,
                        "wraps_reserved": 0, "nonce": "<base64>", "ciphertext": "<base64>"}, ...]
        }
      },
      "mac": "<base64 HMAC of the canonical JSON of everything else>"
    }

A raw keyring key (see :mod:`aureus_local.rawkeys`) also has a
``"keyring"`` object: ``{"namespace": "...", "key_name": "...", "padding":
null | "oaep-sha256" ..., "public_only": false}``; its type may then be
``aes-128``, ``aes-192``, ``aes-256`` or ``rsa-2048/3072/4096``, and its
material the AES key or the RSA key in DER.  Only version 3 documents may
hold one (older Aureus releases refuse version 3 as newer, not as damaged).

Version 2 added each version's lifecycle ``state`` (``enabled``, ``disabled``
or ``destroyed``; a destroyed version has ``null`` nonce and ciphertext), its
usage counters ``messages`` and ``bytes``, and each key's
``min_decryption_version``.  Version 3 added the document's ``generation``
(incremented by every write, so that an older copy can be recognised) and each
version's ``wraps_reserved`` (an upper bound on the AES-GCM wraps ever made
with it).  Version 1 and 2 documents are still read, as generation 0 with no
wraps reserved; every write produces version 3.

Parsing is strict (exact field sets, types and ranges) and raises
:class:`FormatProblem`; the keystore turns that into ``KeystoreCorrupted``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from aureus_core.keys import KeyState, KeyType

from .material import MATERIAL_SIZE, SUPPORTED_TYPES
from .naming import is_valid_name
from .rawkeys import RAW_TYPES, Padding, RawKeyring, check_text, sealed_sizes
from .sealing import (
    NONCE_SIZE,
    SALT_SIZE,
    SCRYPT_LOG_N_RANGE,
    SCRYPT_P,
    SCRYPT_R,
    ScryptParams,
)

FORMAT_MARKER = "aureus-local-keystore"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
ORIGINS = ("generated", "imported")
VERSION_STATES = (KeyState.ENABLED, KeyState.DISABLED, KeyState.DESTROYED)
"""The lifecycle states a stored key version can be in."""
MAX_COUNT = 2**63 - 1
"""Usage counters saturate here (they stay JSON integers every reader accepts)."""
VERIFIER_SIZE = 32
MAC_SIZE = 32
SEALED_SIZE = MATERIAL_SIZE + 16
"""Bytes of sealed material: the 32 bytes of material plus the GCM tag."""

# Only the r and p this version writes: the header is read before it can be
# authenticated, so it must not be able to demand unbounded scrypt memory.
_SCRYPT_R_RANGE = range(SCRYPT_R, SCRYPT_R + 1)
_SCRYPT_P_RANGE = range(SCRYPT_P, SCRYPT_P + 1)


class FormatProblem(Exception):
    """The document is not a valid version-1 keystore; the message says what is wrong."""


class NewerFormat(FormatProblem):
    """The document was written by a newer Aureus, in a format this one cannot read."""


@attrs.frozen(kw_only=True)
class VersionRecord:
    """One stored key version: when it was made, where it came from, its sealed material.

    ``nonce`` and ``ciphertext`` are ``None`` once the version is destroyed.
    ``messages`` and ``byte_count`` are its usage counters as last flushed.
    ``wraps_reserved`` is never below the number of wraps ever made with the
    version: processes reserve blocks of wraps here before making them.
    """

    version: int
    created_at: datetime
    origin: str
    nonce: bytes | None = attrs.field(repr=False)
    ciphertext: bytes | None = attrs.field(repr=False)
    state: KeyState = KeyState.ENABLED
    messages: int = 0
    byte_count: int = 0
    wraps_reserved: int = 0

    @property
    def destroyed(self) -> bool:
        """Whether the material is gone."""
        return self.state is KeyState.DESTROYED

    def used(self, messages: int, byte_count: int) -> VersionRecord:
        """A copy with ``messages`` and ``byte_count`` added to the counters (saturating)."""
        return attrs.evolve(
            self,
            messages=min(MAX_COUNT, self.messages + messages),
            byte_count=min(MAX_COUNT, self.byte_count + byte_count),
        )


@attrs.frozen(kw_only=True)
class KeyRecord:
    """One stored key and all its versions (oldest first)."""

    name: str
    key_type: KeyType
    created_at: datetime
    description: str
    labels: tuple[tuple[str, str], ...]
    current_version: int
    versions: tuple[VersionRecord, ...]
    min_decryption_version: int | None = None
    """Versions below this one may not unwrap or verify (``None``: no minimum)."""
    keyring: RawKeyring | None = None
    """For a raw keyring key: its key namespace, key name and pinned padding."""

    def version(self, number: int) -> VersionRecord | None:
        """The record of version ``number``, if it exists."""
        if 1 <= number <= len(self.versions):
            return self.versions[number - 1]
        return None

    @property
    def current(self) -> VersionRecord:
        """The current version's record."""
        return self.versions[self.current_version - 1]

    def with_version(self, record: VersionRecord) -> KeyRecord:
        """A copy of the key with ``record`` appended and made current."""
        return attrs.evolve(self, versions=(*self.versions, record), current_version=record.version)

    def replacing(self, record: VersionRecord) -> KeyRecord:
        """A copy of the key with the existing version ``record.version`` replaced."""
        versions = list(self.versions)
        versions[record.version - 1] = record
        return attrs.evolve(self, versions=tuple(versions))


@attrs.frozen(kw_only=True)
class KeystoreDocument:
    """The whole keystore, as authenticated by its MAC."""

    keystore_id: str
    created_at: datetime
    scrypt: ScryptParams | None
    """How the master key comes from a passphrase; ``None`` for a key-file keystore."""
    verifier: bytes
    keys: Mapping[str, KeyRecord] = attrs.field(factory=dict)
    generation: int = 0
    """How many times the document was written (0: never by format version 3)."""

    def with_key(self, record: KeyRecord) -> KeystoreDocument:
        """A copy of the document with ``record`` added or replaced."""
        return attrs.evolve(self, keys={**self.keys, record.name: record})


def to_json(document: KeystoreDocument) -> dict[str, Any]:
    """The JSON object for ``document``, without the ``mac`` field."""
    master: dict[str, Any] = {"source": "key-file"}
    if document.scrypt is not None:
        master = {
            "source": "passphrase",
            "kdf": "scrypt",
            "salt": _b64(document.scrypt.salt),
            "log_n": document.scrypt.log_n,
            "r": document.scrypt.r,
            "p": document.scrypt.p,
        }
    return {
        "format": FORMAT_MARKER,
        "format_version": FORMAT_VERSION,
        "keystore_id": document.keystore_id,
        "created_at": _time(document.created_at),
        "generation": document.generation,
        "master_key": master,
        "verifier": _b64(document.verifier),
        "keys": {name: _key_json(document.keys[name]) for name in sorted(document.keys)},
    }


def render(unsigned: Mapping[str, Any], mac: bytes) -> bytes:
    """The file content: ``unsigned`` plus its MAC, as indented JSON."""
    return (json.dumps({**unsigned, "mac": _b64(mac)}, indent=2, sort_keys=True) + "\n").encode()


def load_json(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Parse file content into ``(document without mac, mac)``, checking only the JSON."""
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_float=_no_float,
            parse_constant=_no_float,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise FormatProblem(f"it is not valid JSON ({_reason(error)})") from None
    obj = _object(value, "the document")
    mac = _bytes(obj.pop("mac", None), "mac", MAC_SIZE)
    if obj.get("format") != FORMAT_MARKER:
        raise FormatProblem(f"it is not an Aureus local keystore (no format {FORMAT_MARKER!r})")
    version = obj.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise NewerFormat(
            f"it has format version {version}; this Aureus reads versions "
            f"{' and '.join(str(v) for v in READABLE_VERSIONS)}"
        )
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise FormatProblem(f"unknown format_version {version!r}")
    return obj, mac


def parse_header(obj: Mapping[str, Any]) -> tuple[str, ScryptParams | None, bytes]:
    """The keystore ID, master-key parameters and verifier: what unlocking needs."""
    keystore_id = obj.get("keystore_id")
    if not isinstance(keystore_id, str) or not _is_hex_id(keystore_id):
        raise FormatProblem("keystore_id is missing or malformed")
    master = _object(obj.get("master_key"), "master_key")
    source = master.get("source")
    scrypt: ScryptParams | None = None
    if source == "key-file":
        _fields(master, {"source"}, "master_key")
    elif source == "passphrase":
        _fields(master, {"source", "kdf", "salt", "log_n", "r", "p"}, "master_key")
        if master["kdf"] != "scrypt":
            raise FormatProblem(f"unknown master key KDF {master['kdf']!r}")
        scrypt = ScryptParams(
            salt=_bytes(master["salt"], "master_key.salt", SALT_SIZE),
            log_n=_int(master["log_n"], "master_key.log_n", SCRYPT_LOG_N_RANGE),
            r=_int(master["r"], "master_key.r", _SCRYPT_R_RANGE),
            p=_int(master["p"], "master_key.p", _SCRYPT_P_RANGE),
        )
    else:
        raise FormatProblem(f"unknown master key source {source!r}")
    return keystore_id, scrypt, _bytes(obj.get("verifier"), "verifier", VERIFIER_SIZE)


def parse_document(obj: Mapping[str, Any]) -> KeystoreDocument:
    """The full document model (call after the MAC has been checked)."""
    layout = obj["format_version"]
    fields = {"format", "format_version", "keystore_id", "created_at", "master_key", "verifier"}
    _fields(obj, {*fields, "keys", *(["generation"] if layout >= 3 else [])}, "the document")
    keystore_id, scrypt, verifier = parse_header(obj)
    generation = 0
    if layout >= 3:
        generation = _int(obj["generation"], "generation", range(1, MAX_COUNT + 1))
    keys = {
        name: _parse_key(name, record, layout)
        for name, record in _object(obj["keys"], "keys").items()
    }
    return KeystoreDocument(
        keystore_id=keystore_id,
        created_at=_parse_time(obj["created_at"], "created_at"),
        scrypt=scrypt,
        verifier=verifier,
        keys=keys,
        generation=generation,
    )


def _key_json(record: KeyRecord) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if record.keyring is not None:
        keyring = record.keyring
        extra["keyring"] = {
            "namespace": keyring.namespace,
            "key_name": keyring.key_name,
            "padding": None if keyring.padding is None else keyring.padding.value,
            "public_only": keyring.public_only,
        }
    return {
        **extra,
        "type": record.key_type.value,
        "created_at": _time(record.created_at),
        "description": record.description,
        "labels": dict(record.labels),
        "current_version": record.current_version,
        "min_decryption_version": record.min_decryption_version,
        "versions": [
            {
                "version": v.version,
                "created_at": _time(v.created_at),
                "origin": v.origin,
                "state": v.state.value,
                "messages": v.messages,
                "bytes": v.byte_count,
                "wraps_reserved": v.wraps_reserved,
                "nonce": None if v.nonce is None else _b64(v.nonce),
                "ciphertext": None if v.ciphertext is None else _b64(v.ciphertext),
            }
            for v in record.versions
        ],
    }


_KEY_FIELDS_V1 = {"type", "created_at", "description", "labels", "current_version", "versions"}
_VERSION_FIELDS_V1 = {"version", "created_at", "origin", "nonce", "ciphertext"}


def _parse_key(name: str, value: object, layout: int) -> KeyRecord:
    where = f"key {name!r}"
    if not is_valid_name(name):
        raise FormatProblem(f"{where} has an invalid name")
    obj = _object(value, where)
    expected = _KEY_FIELDS_V1 if layout == 1 else {*_KEY_FIELDS_V1, "min_decryption_version"}
    if layout >= 3 and "keyring" in obj:
        expected = {*expected, "keyring"}
    _fields(obj, expected, where)
    try:
        key_type = KeyType(obj["type"])
    except ValueError:
        key_type = None
    keyring = _parse_keyring(where, obj["keyring"], key_type) if "keyring" in obj else None
    if key_type not in (RAW_TYPES if keyring is not None else SUPPORTED_TYPES):
        raise FormatProblem(f"{where} has an unsupported type {obj['type']!r}")
    assert key_type is not None
    versions = obj["versions"]
    if not isinstance(versions, list) or not versions:
        raise FormatProblem(f"{where} has no versions")
    sizes = sealed_sizes(key_type) if keyring is not None else range(SEALED_SIZE, SEALED_SIZE + 1)
    records = tuple(
        _parse_version(where, i, v, layout, sizes) for i, v in enumerate(versions, start=1)
    )
    if keyring is not None and len(records) != 1:
        raise FormatProblem(f"{where} is a raw keyring key with more than one version")
    labels = _object(obj["labels"], f"{where} labels")
    if not all(isinstance(v, str) for v in labels.values()):
        raise FormatProblem(f"{where} has a label that is not a string")
    description = obj["description"]
    if not isinstance(description, str):
        raise FormatProblem(f"{where} has a description that is not a string")
    current = _int(obj["current_version"], f"{where} current_version", range(1, len(records) + 1))
    if records[current - 1].state is not KeyState.ENABLED:
        raise FormatProblem(f"{where} has a current version that is not enabled")
    minimum = obj.get("min_decryption_version")
    if minimum is not None:
        minimum = _int(minimum, f"{where} min_decryption_version", range(1, current + 1))
    return KeyRecord(
        name=name,
        key_type=key_type,
        created_at=_parse_time(obj["created_at"], f"{where} created_at"),
        description=description,
        labels=tuple(sorted(labels.items())),
        current_version=current,
        versions=records,
        min_decryption_version=minimum,
        keyring=keyring,
    )


def _parse_keyring(where: str, value: object, key_type: KeyType | None) -> RawKeyring:
    obj = _object(value, f"{where} keyring")
    _fields(obj, {"namespace", "key_name", "padding", "public_only"}, f"{where} keyring")
    try:
        namespace = check_text(obj["namespace"], "key namespace")
        key_name = check_text(obj["key_name"], "key name")
        padding = None if obj["padding"] is None else Padding.parse(obj["padding"])
    except Exception:  # ConfigError or a wrong JSON type: either way the file is wrong
        raise FormatProblem(f"{where} has a malformed keyring") from None
    public_only = obj["public_only"]
    rsa = key_type is not None and key_type.value.startswith("rsa-")
    if not isinstance(public_only, bool) or (padding is None) == rsa or (public_only and not rsa):
        raise FormatProblem(f"{where} has a keyring that does not fit its type")
    return RawKeyring(
        namespace=namespace, key_name=key_name, padding=padding, public_only=public_only
    )


def _parse_version(
    where: str, expected: int, value: object, layout: int, sizes: range
) -> VersionRecord:
    where = f"{where} version {expected}"
    obj = _object(value, where)
    if layout == 1:
        _fields(obj, _VERSION_FIELDS_V1, where)
    elif layout == 2:
        _fields(obj, {*_VERSION_FIELDS_V1, "state", "messages", "bytes"}, where)
    else:
        _fields(obj, {*_VERSION_FIELDS_V1, "state", "messages", "bytes", "wraps_reserved"}, where)
    if obj["version"] != expected or isinstance(obj["version"], bool):
        raise FormatProblem(f"{where} is out of sequence")
    if obj["origin"] not in ORIGINS:
        raise FormatProblem(f"{where} has an unknown origin")
    state = KeyState.ENABLED
    if layout != 1:
        states = {s.value: s for s in VERSION_STATES}
        if obj["state"] not in states:
            raise FormatProblem(f"{where} has an unknown state")
        state = states[obj["state"]]
    counters = range(0, MAX_COUNT + 1)
    messages = 0 if layout == 1 else _int(obj["messages"], f"{where} messages", counters)
    byte_count = 0 if layout == 1 else _int(obj["bytes"], f"{where} bytes", counters)
    reserved = 0
    if layout >= 3:
        reserved = _int(obj["wraps_reserved"], f"{where} wraps_reserved", counters)
    nonce: bytes | None = None
    ciphertext: bytes | None = None
    if state is KeyState.DESTROYED:
        if obj["nonce"] is not None or obj["ciphertext"] is not None:
            raise FormatProblem(f"{where} is destroyed but still holds material")
    else:
        nonce = _bytes(obj["nonce"], f"{where} nonce", NONCE_SIZE)
        ciphertext = _bytes(obj["ciphertext"], f"{where} ciphertext", sizes)
    return VersionRecord(
        version=expected,
        created_at=_parse_time(obj["created_at"], f"{where} created_at"),
        origin=obj["origin"],
        nonce=nonce,
        ciphertext=ciphertext,
        state=state,
        messages=messages,
        byte_count=byte_count,
        wraps_reserved=reserved,
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate field {name!r}")
        result[name] = value
    return result


def _no_float(text: str) -> Any:
    raise ValueError(f"unexpected number {text[:20]!r}")


def _reason(error: BaseException) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    if isinstance(error, UnicodeDecodeError):
        return "it is not UTF-8"
    return str(error)[:100]


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatProblem(f"{where} is not a JSON object")
    return value


def _fields(obj: Mapping[str, Any], expected: set[str], where: str) -> None:
    if set(obj) != expected:
        missing = sorted(expected - set(obj))
        extra = sorted(set(obj) - expected)
        raise FormatProblem(f"{where} has missing fields {missing} or unknown fields {extra}")


def _int(value: object, where: str, allowed: range) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value not in allowed:
        raise FormatProblem(f"{where} is not a whole number in the allowed range")
    return value


def _bytes(value: object, where: str, size: int | range) -> bytes:
    if not isinstance(value, str):
        raise FormatProblem(f"{where} is missing or not a base64 string")
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise FormatProblem(f"{where} is not valid base64") from None
    if len(data) not in (size if isinstance(size, range) else (size,)):
        raise FormatProblem(f"{where} has the wrong length")
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _time(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat()


def _parse_time(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise FormatProblem(f"{where} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise FormatProblem(f"{where} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise FormatProblem(f"{where} has no time zone")
    return parsed.astimezone(timezone.utc)


def _is_hex_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)
