"""Key objects on a token: finding a key's versions, templates for new ones, public keys.

Every function takes an open :class:`pkcs11.Session` and runs inside
:meth:`SessionPool.run <aureus_pkcs11.session.SessionPool.run>`.

A session without the PIN may create, change and destroy *public* objects
(``CKA_PRIVATE`` false).  So the provider trusts only private objects: it
creates every object private, uses only private secret and private keys, and
reads only private records; a public-key object is trusted once it is private
or has been shown to belong to its version's private key (see
:meth:`Pkcs11KeyProvider.public_key <aureus_pkcs11.provider.Pkcs11KeyProvider.public_key>`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

import attrs
import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pkcs11 import Attribute, ObjectClass
from pkcs11 import KeyType as P11KeyType
from pkcs11 import exceptions as p11
from pkcs11.util.ec import encode_named_curve_parameters

from aureus_core.errors import AccessDenied, ConfigError, KeyNotFound
from aureus_core.keys import KeyPurpose, KeyType

from .errors import SCHEME
from .naming import check_name, id_to_version, version_to_id

M = TypeVar("M")

_log = logging.getLogger(__name__)
_REPORTED: set[tuple[str, bytes, int | None]] = set()
"""Ignored public key objects already logged (label, ``CKA_ID``, handle): once per process."""

ED25519_OID = "1.3.101.112"
CURVE_OIDS: dict[KeyType, str] = {
    KeyType.ECDSA_P256: "1.2.840.10045.3.1.7",
    KeyType.ECDSA_P384: "1.3.132.0.34",
}
CURVES: dict[KeyType, ec.EllipticCurve] = {
    KeyType.ECDSA_P256: ec.SECP256R1(),
    KeyType.ECDSA_P384: ec.SECP384R1(),
}
RSA_BITS: dict[KeyType, int] = {
    KeyType.RSA_2048: 2048,
    KeyType.RSA_3072: 3072,
    KeyType.RSA_4096: 4096,
}
_PARAMS_TO_TYPE: dict[bytes, KeyType] = {
    encode_named_curve_parameters(oid): key_type for key_type, oid in CURVE_OIDS.items()
}
# Ed25519 parameters come as the OID or, from older tools, as the printable name.
_ED25519_PARAMS = frozenset({encode_named_curve_parameters(ED25519_OID), b"\x13\x0cedwards25519"})
UNKNOWN_DATE = datetime(1970, 1, 1, tzinfo=timezone.utc)
"""``created_at`` of a version with no creation record (a key adopted from another tool)."""


@attrs.frozen(kw_only=True)
class KeyVersionObject:
    """One version of a key on the token: its number, type, start date and object."""

    version: int
    key_type: KeyType
    key: pkcs11.Object
    """The secret key (wrapping keys) or the private key (signing keys)."""


def _object_class(purpose: KeyPurpose) -> ObjectClass:
    return ObjectClass.SECRET_KEY if purpose is KeyPurpose.WRAP else ObjectClass.PRIVATE_KEY


def _attribute(obj: pkcs11.Object, attribute: Attribute) -> Any:
    try:
        return obj[attribute]
    except (p11.AttributeTypeInvalid, p11.AttributeSensitive):
        return None  # absent or unreadable


def is_private(obj: pkcs11.Object) -> bool:
    """Whether ``obj`` is private (``CKA_PRIVATE`` true): only a logged-in user can make it."""
    return _attribute(obj, Attribute.PRIVATE) is True


def private_objects(
    session: pkcs11.Session, template: Mapping[Attribute, Any]
) -> list[pkcs11.Object]:
    """The private objects matching ``template``; public ones, which anyone can make, are not."""
    found = session.get_objects({**template, Attribute.PRIVATE: True})
    return [obj for obj in found if is_private(obj)]  # not only the token's word for it


def _report_ignored(obj: pkcs11.Object, name: str, kind: str) -> None:
    ident = bytes(_attribute(obj, Attribute.ID) or b"")
    seen = (name, ident, obj.handle)
    if seen in _REPORTED:
        return
    _REPORTED.add(seen)
    _log.warning(
        "pkcs11: ignored a public (CKA_PRIVATE=false) %s labelled %r with CKA_ID %s: a session "
        "without the PIN can create such objects, so the provider never uses them",
        kind,
        name,
        ident.hex() or "(none)",
    )


def key_type_of(obj: pkcs11.Object) -> KeyType | None:
    """The Aureus key type of a secret or private key object (``None``: not one we use)."""
    kind = _attribute(obj, Attribute.KEY_TYPE)
    if kind == P11KeyType.AES:
        return KeyType.AES_256 if _attribute(obj, Attribute.VALUE_LEN) == 32 else None
    if kind == P11KeyType.EC_EDWARDS:
        params = _attribute(obj, Attribute.EC_PARAMS)
        return KeyType.ED25519 if params in _ED25519_PARAMS else None
    if kind == P11KeyType.EC:
        return _PARAMS_TO_TYPE.get(bytes(_attribute(obj, Attribute.EC_PARAMS) or b""))
    if kind == P11KeyType.RSA:
        modulus = _attribute(obj, Attribute.MODULUS)
        bits = len(modulus) * 8 if isinstance(modulus, (bytes, bytearray)) else None
        return next((t for t, size in RSA_BITS.items() if size == bits), None)
    return None


CREATED_APPLICATION = "aureus-pkcs11 created"
"""``CKA_APPLICATION`` of the data objects that record when a key version was made."""


def _created_application(version: int) -> str:
    return f"{CREATED_APPLICATION} {version}"


def creation_times(session: pkcs11.Session, name: str) -> dict[int, datetime]:
    """When each version of ``name`` was made, from its data objects (see :func:`generate`).

    ``CKA_START_DATE`` would be the natural place, but it holds a date only and
    SoftHSM2 2.6.1 answers ``CKR_GENERAL_ERROR`` when it is read back.  Only
    private records count: a public one could have been written without the PIN
    (a date in 2099 would keep the key from ever looking due for rotation).
    """
    times: dict[int, datetime] = {}
    template = {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: name}
    for obj in private_objects(session, template):
        application = _attribute(obj, Attribute.APPLICATION)
        if not isinstance(application, str) or not application.startswith(CREATED_APPLICATION):
            continue
        number = application[len(CREATED_APPLICATION) :].strip()
        try:
            stamp = datetime.fromisoformat(bytes(_attribute(obj, Attribute.VALUE)).decode())
        except (TypeError, ValueError, UnicodeDecodeError):
            continue
        if number.isdigit() and stamp.tzinfo is not None:
            times[int(number)] = stamp.astimezone(timezone.utc)
    return times


def record_creation(session: pkcs11.Session, name: str, version: int, when: datetime) -> None:
    """Store a private data object saying when ``version`` of ``name`` was made."""
    session.create_object(
        {
            Attribute.CLASS: ObjectClass.DATA,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.LABEL: name,
            Attribute.APPLICATION: _created_application(version),
            Attribute.VALUE: when.astimezone(timezone.utc).isoformat().encode(),
        }
    )


AES_256_RECORD = "aureus-pkcs11 aes-256"
"""``CKA_APPLICATION`` of the data objects that vouch for an unwrapped key's length.

A token may leave ``CKA_VALUE_LEN`` of an unwrapped AES key unset (SoftHSM2
2.6.1 reads 0); the wrapped import proves the length and records it here.
"""


def record_aes_256(session: pkcs11.Session, name: str, version: int) -> None:
    """Record (privately) that ``version`` of ``name`` is a 32-byte AES key."""
    session.create_object(
        {
            Attribute.CLASS: ObjectClass.DATA,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.LABEL: name,
            Attribute.APPLICATION: f"{AES_256_RECORD} {version}",
            Attribute.VALUE: b"32",
        }
    )


def _recorded_aes_256(session: pkcs11.Session, name: str) -> set[int]:
    found: set[int] = set()
    template = {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: name}
    for obj in private_objects(session, template):
        application = _attribute(obj, Attribute.APPLICATION)
        if isinstance(application, str) and application.startswith(AES_256_RECORD + " "):
            number = application[len(AES_256_RECORD) + 1 :]
            if number.isdigit():
                found.add(int(number))
    return found


def find_versions(session: pkcs11.Session, name: str) -> dict[int, KeyVersionObject]:
    """Every usable version of ``name``: private secret keys, else private keys, by ``CKA_ID``.

    Public key objects (``CKA_PRIVATE`` false) are ignored and logged once: a
    session without the PIN can plant them.  Raises :class:`ConfigError` when
    the label holds both kinds, two objects share a version, or versions
    disagree on the key type.
    """
    found: dict[int, KeyVersionObject] = {}
    purposes: set[KeyPurpose] = set()
    recorded: set[int] | None = None
    for purpose in (KeyPurpose.WRAP, KeyPurpose.SIGN):
        template = {Attribute.LABEL: name, Attribute.CLASS: _object_class(purpose)}
        for obj in list(session.get_objects(template)):  # the search ends before another
            if not is_private(obj):
                _report_ignored(
                    obj, name, "secret key" if purpose is KeyPurpose.WRAP else "private key"
                )
                continue
            key_type = key_type_of(obj)
            version = id_to_version(bytes(_attribute(obj, Attribute.ID) or b""))
            if (
                key_type is None
                and version is not None
                and _attribute(obj, Attribute.KEY_TYPE) == P11KeyType.AES
                and not _attribute(obj, Attribute.VALUE_LEN)
            ):
                if recorded is None:
                    recorded = _recorded_aes_256(session, name)
                key_type = KeyType.AES_256 if version in recorded else None
            if key_type is None or version is None:
                continue
            purposes.add(purpose)
            if version in found:
                raise ConfigError(
                    f"token holds two key objects labelled {name!r} with version {version} "
                    "(CKA_ID): give each version its own CKA_ID"
                )
            found[version] = KeyVersionObject(version=version, key_type=key_type, key=obj)
    if len(purposes) > 1:
        raise ConfigError(
            f"label {name!r} names both a secret key and a private key on the token: "
            "relabel one of them"
        )
    if len({v.key_type for v in found.values()}) > 1:
        types = ", ".join(sorted({v.key_type.value for v in found.values()}))
        raise ConfigError(f"the versions of {name!r} on the token have different types ({types})")
    return found


def key_names(session: pkcs11.Session) -> list[str]:
    """The labels of every private secret and private key object that can name an Aureus key."""
    names: set[str] = set()
    for object_class in (ObjectClass.SECRET_KEY, ObjectClass.PRIVATE_KEY):
        for obj in private_objects(session, {Attribute.CLASS: object_class}):
            label = _attribute(obj, Attribute.LABEL)
            try:
                names.add(check_name(label))
            except ConfigError:
                continue  # not addressable by a pkcs11:// URI; left alone
    return sorted(names)


def select(
    versions: Mapping[int, KeyVersionObject], name: str, uri: str, version: int | None
) -> KeyVersionObject:
    """The pinned version, or the current (highest) one; :class:`KeyNotFound` if absent."""
    if not versions:
        raise KeyNotFound(f"no key {uri} on the token", provider=SCHEME)
    if version is None:
        return versions[max(versions)]
    if version not in versions:
        raise KeyNotFound(f"key {uri} has no version {version}", provider=SCHEME)
    return versions[version]


def public_key_objects(session: pkcs11.Session, name: str, version: int) -> list[pkcs11.Object]:
    """The public-key objects of a signing key's version (same label and ``CKA_ID``), private first.

    Raises :class:`KeyNotFound` if there is none.  Only the private ones are
    trustworthy as they stand; a public one may have been planted without the PIN.
    """
    template = {
        Attribute.LABEL: name,
        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
        Attribute.ID: version_to_id(version),
    }
    found = sorted(session.get_objects(template), key=lambda obj: not is_private(obj))
    if found:
        return found
    raise KeyNotFound(
        f"the token has no public key labelled {name!r} with version {version}: store the "
        "public key next to the private key (same CKA_LABEL and CKA_ID)",
        provider=SCHEME,
    )


def capable(obj: pkcs11.Object, mixin: type[M], what: str, name: str) -> M:
    """``obj`` as a key that may ``what`` (``CKA_SIGN``, ``CKA_ENCRYPT`` ...), else AccessDenied."""
    if not isinstance(obj, mixin):
        raise AccessDenied(
            f"the token's key object {name!r} may not {what}: set that attribute to true "
            "when creating it",
            provider=SCHEME,
            code="CKR_KEY_FUNCTION_NOT_PERMITTED",
        )
    return obj


def _unwrap_octet_string(point: bytes) -> bytes:
    """``CKA_EC_POINT`` is a DER OCTET STRING; a few tokens return the raw point."""
    if len(point) >= 2 and point[0] == 0x04:
        length = point[1]
        if length < 0x80 and length == len(point) - 2:
            return point[2:]
        if length == 0x81 and len(point) >= 3 and point[2] == len(point) - 3:
            return point[3:]
    return point


PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def load_public_key(obj: pkcs11.Object, key_type: KeyType) -> PublicKey:
    """The ``cryptography`` public key of a public-key object.

    Raises :class:`ValueError` if the object is no public key of ``key_type``.
    """
    try:
        if key_type is KeyType.ED25519:
            raw = _unwrap_octet_string(bytes(obj[Attribute.EC_POINT]))
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        if key_type in CURVES:
            point = _unwrap_octet_string(bytes(obj[Attribute.EC_POINT]))
            return ec.EllipticCurvePublicKey.from_encoded_point(CURVES[key_type], point)
        modulus = int.from_bytes(bytes(obj[Attribute.MODULUS]), "big")
        exponent = int.from_bytes(bytes(obj[Attribute.PUBLIC_EXPONENT]), "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except (p11.AttributeTypeInvalid, p11.AttributeSensitive, TypeError) as error:
        raise ValueError(f"not a {key_type.value} public-key object") from error


def generate(
    session: pkcs11.Session,
    name: str,
    version: int,
    key_type: KeyType,
    *,
    now: datetime,
) -> None:
    """Generate one version of a key on the token: sensitive and never extractable."""
    record_creation(session, name, version, now)
    common: dict[Attribute, Any] = {
        Attribute.TOKEN: True,
        Attribute.LABEL: name,
        Attribute.ID: version_to_id(version),
    }
    private: dict[Attribute, Any] = {
        **common,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
    }
    if key_type is KeyType.AES_256:
        template = {
            **private,
            Attribute.ENCRYPT: True,
            Attribute.DECRYPT: True,
            Attribute.WRAP: False,
            Attribute.UNWRAP: False,
            Attribute.SIGN: False,
            Attribute.VERIFY: False,
            Attribute.DERIVE: False,
        }
        session.generate_key(P11KeyType.AES, 256, store=True, template=template)
        return
    public_template = {**common, Attribute.VERIFY: True, Attribute.PRIVATE: True}
    private_template = {
        **private,
        Attribute.SIGN: True,
        Attribute.DECRYPT: False,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
    }
    if key_type in RSA_BITS:
        session.generate_keypair(
            P11KeyType.RSA,
            RSA_BITS[key_type],
            store=True,
            public_template={**public_template, Attribute.ENCRYPT: False},
            private_template=private_template,
        )
        return
    kind, oid = (
        (P11KeyType.EC_EDWARDS, ED25519_OID)
        if key_type is KeyType.ED25519
        else (P11KeyType.EC, CURVE_OIDS[key_type])
    )
    parameters = session.create_domain_parameters(
        kind, {Attribute.EC_PARAMS: encode_named_curve_parameters(oid)}, local=True
    )
    parameters.generate_keypair(
        store=True, public_template=public_template, private_template=private_template
    )


def import_secret(
    session: pkcs11.Session, name: str, version: int, value: bytes, *, now: datetime
) -> None:
    """Create an AES-256 key object from raw bytes: sensitive, never extractable."""
    record_creation(session, name, version, now)
    session.create_object(
        {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: P11KeyType.AES,
            Attribute.VALUE: value,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.ENCRYPT: True,
            Attribute.DECRYPT: True,
            Attribute.LABEL: name,
            Attribute.ID: version_to_id(version),
        }
    )
