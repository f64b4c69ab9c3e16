"""Wrapped import on the token: import jobs, and unwrapping key material with ``C_UnwrapKey``.

An import job is three private token objects labelled ``aureus-import:TOKEN``
(a label no Aureus key can have): an RSA-3072 key pair generated on the token,
whose private half may only unwrap (``CKA_UNWRAP``; sensitive, never
extractable), and a data object (``CKA_APPLICATION`` ``aureus-pkcs11 import
job``) holding the job: key name, key type, whether it adds a version, expiry.
Public objects with such a label are ignored: a session without the PIN can
make them.

The wrapped blob is ``RSA-OAEP(K) || AES-KWP(K, material)``
(:mod:`aureus_core.wrapped_import`).  Tokens with ``CKM_RSA_AES_KEY_WRAP``
could take it in one call; SoftHSM2 2.6.1 and most tokens lack it, so the
provider makes two ``C_UnwrapKey`` calls, both on the token: RSA-OAEP
(``CKM_RSA_PKCS_OAEP``, SHA-1: SoftHSM2 2.6.1 refuses other hashes) into a
session AES key that may only unwrap, then RFC 5649 key wrap with padding
(``CKM_AES_KEY_WRAP_KWP`` where listed, else ``CKM_AES_KEY_WRAP_PAD``, which
SoftHSM2 implements as RFC 5649) into the target key object.  The
intermediate key is destroyed at once; the key material is never in the
host's memory.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import pkcs11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import MGF, Attribute, Mechanism, ObjectClass
from pkcs11 import KeyType as P11KeyType
from pkcs11 import exceptions as p11
from pkcs11.constants import DEFAULT
from pkcs11.mechanisms import GCMParams
from pkcs11.types import EncryptMixin, UnwrapMixin

from aureus_core.errors import ImportRefused
from aureus_core.keys import KeyType
from aureus_core.wrapped_import import (
    RSA_OAEP_SHA1_AES_KWP,
    WRAPPING_KEY_BITS,
    ImportJob,
    refused_material,
    split_wrapped,
)

from . import objects
from .errors import RECONNECTABLE, SCHEME
from .naming import version_to_id

LABEL_PREFIX = "aureus-import:"
JOB_APPLICATION = "aureus-pkcs11 import job"
ALGORITHM = RSA_OAEP_SHA1_AES_KWP
AES_256_WRAPPED_SIZE = 40
"""RFC 5649 output for a 32-byte key: 24 bytes also come out as 32, 25-32 bytes as 40."""

IMPORT_TYPES: dict[KeyType, P11KeyType] = {
    KeyType.AES_256: P11KeyType.AES,
    KeyType.RSA_2048: P11KeyType.RSA,
    KeyType.RSA_3072: P11KeyType.RSA,
    KeyType.RSA_4096: P11KeyType.RSA,
}
"""Key types a wrapped import can create.

An unwrapped RSA private key carries its modulus and exponent, so the
provider can store the public half beside it.  An unwrapped EC private key
has no ``CKA_EC_POINT`` (the token cannot hand out its public key), and
SoftHSM2 2.6.1 fails to unwrap Ed25519 keys (``CKR_FUNCTION_FAILED``), so
those are not offered.
"""


def kwp_mechanism(mechanisms: frozenset[Mechanism]) -> Mechanism | None:
    """The RFC 5649 mechanism of a token, or ``None`` if it cannot do wrapped import."""
    if not {Mechanism.RSA_PKCS_KEY_PAIR_GEN, Mechanism.RSA_PKCS_OAEP} <= mechanisms:
        return None
    for mechanism in (Mechanism.AES_KEY_WRAP_KWP, Mechanism.AES_KEY_WRAP_PAD):
        if mechanism in mechanisms:
            return mechanism
    return None


def _label(token: str) -> str:
    return LABEL_PREFIX + token


def create_job(session: pkcs11.Session, job: ImportJob) -> bytes:
    """Make the job's key pair and data object on the token; return the PEM public key."""
    label = _label(job.token)
    public, _ = session.generate_keypair(
        P11KeyType.RSA,
        WRAPPING_KEY_BITS,
        store=True,
        public_template={
            Attribute.LABEL: label,
            Attribute.PRIVATE: True,
            Attribute.ENCRYPT: False,
            Attribute.VERIFY: False,
            Attribute.WRAP: False,
        },
        private_template={
            Attribute.LABEL: label,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.UNWRAP: True,
            Attribute.DECRYPT: False,
            Attribute.SIGN: False,
            Attribute.DERIVE: False,
        },
    )
    session.create_object(
        {
            Attribute.CLASS: ObjectClass.DATA,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.LABEL: label,
            Attribute.APPLICATION: JOB_APPLICATION,
            Attribute.VALUE: job.to_json(),
        }
    )
    modulus = int.from_bytes(bytes(public[Attribute.MODULUS]), "big")
    exponent = int.from_bytes(bytes(public[Attribute.PUBLIC_EXPONENT]), "big")
    return (
        rsa.RSAPublicNumbers(exponent, modulus)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _job_objects(session: pkcs11.Session, token: str) -> list[pkcs11.Object]:
    return objects.private_objects(session, {Attribute.LABEL: _label(token)})


def find_job(session: pkcs11.Session, token: str) -> tuple[ImportJob, pkcs11.Object] | None:
    """The job of ``token`` and its private key, or ``None`` if the token has none."""
    job: ImportJob | None = None
    private: pkcs11.Object | None = None
    for obj in _job_objects(session, token):
        kind = obj[Attribute.CLASS]
        if kind == ObjectClass.DATA and obj[Attribute.APPLICATION] == JOB_APPLICATION:
            try:
                job = ImportJob.from_json(bytes(obj[Attribute.VALUE]))
            except ValueError:
                return None
        elif kind == ObjectClass.PRIVATE_KEY:
            private = obj
    if job is None or private is None or job.token != token:
        return None
    return job, private


def destroy_job(session: pkcs11.Session, token: str) -> bool:
    """Destroy the job's objects; ``False`` if another session already had (the token was used)."""
    found = _job_objects(session, token)
    if not found:
        return False
    for obj in found:
        try:
            obj.destroy()
        except (p11.ObjectHandleInvalid, p11.NoSuchKey):
            return False
    return True


def sweep(session: pkcs11.Session, now: datetime) -> None:
    """Destroy every job that has expired."""
    template = {Attribute.CLASS: ObjectClass.DATA, Attribute.APPLICATION: JOB_APPLICATION}
    for obj in objects.private_objects(session, template):
        try:
            job = ImportJob.from_json(bytes(obj[Attribute.VALUE]))
        except ValueError:
            continue
        if job.expires_at <= now:
            destroy_job(session, job.token)


def _target_template(name: str, version: int, key_type: KeyType) -> dict[Attribute, Any]:
    common: dict[Attribute, Any] = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.LABEL: name,
        Attribute.ID: version_to_id(version),
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.WRAP: DEFAULT,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
    }
    if key_type is KeyType.AES_256:
        return {
            **common,
            Attribute.ENCRYPT: True,
            Attribute.DECRYPT: True,
            Attribute.WRAP: False,
            Attribute.SIGN: False,
            Attribute.VERIFY: False,
        }
    # A private key has no CKA_ENCRYPT, CKA_VERIFY or CKA_WRAP: leave them out.
    return {
        **common,
        Attribute.SIGN: True,
        Attribute.DECRYPT: False,
        Attribute.ENCRYPT: DEFAULT,
        Attribute.VERIFY: DEFAULT,
    }


def unwrap_into(
    session: pkcs11.Session,
    job: ImportJob,
    private: pkcs11.Object,
    wrapped: bytes,
    *,
    version: int,
    kwp: Mechanism,
) -> pkcs11.Object:
    """Unwrap ``wrapped`` into version ``version`` of the job's key, on the token.

    Raises :class:`ImportRefused` (and leaves nothing behind) if the material
    does not open or is not a key of the job's type.
    """
    token = job.token
    modulus = len(bytes(private[Attribute.MODULUS]))
    head, tail = split_wrapped(wrapped, modulus, token)
    if job.key_type is KeyType.AES_256 and len(tail) != AES_256_WRAPPED_SIZE:
        raise refused_material(token)
    unwrapper = objects.capable(private, UnwrapMixin, "unwrap", _label(token))
    try:
        ephemeral = unwrapper.unwrap_key(
            ObjectClass.SECRET_KEY,
            P11KeyType.AES,
            head,
            mechanism=Mechanism.RSA_PKCS_OAEP,
            mechanism_param=(Mechanism.SHA_1, MGF.SHA1, None),  # type: ignore[arg-type]
            store=False,
            template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.UNWRAP: True,
                Attribute.WRAP: False,
                Attribute.ENCRYPT: False,
                Attribute.DECRYPT: False,
                Attribute.SIGN: False,
                Attribute.VERIFY: False,
                Attribute.DERIVE: False,
            },
        )
    except p11.PKCS11Error as error:
        if type(error) in RECONNECTABLE:
            raise
        raise refused_material(token) from None
    try:
        key: pkcs11.Object = objects.capable(ephemeral, UnwrapMixin, "unwrap", token).unwrap_key(
            ObjectClass.SECRET_KEY if job.key_type is KeyType.AES_256 else ObjectClass.PRIVATE_KEY,
            IMPORT_TYPES[job.key_type],
            tail,
            mechanism=kwp,
            store=True,
            template=_target_template(job.name, version, job.key_type),
        )
    except p11.PKCS11Error as error:
        if type(error) in RECONNECTABLE:
            raise
        raise refused_material(token) from None
    finally:
        ephemeral.destroy()
    try:
        _check_imported(session, key, job)
    except BaseException:
        key.destroy()
        raise
    return key


def _check_imported(session: pkcs11.Session, key: pkcs11.Object, job: ImportJob) -> None:
    """The unwrapped object is a usable key of the job's type (else :class:`ImportRefused`)."""
    if job.key_type is KeyType.AES_256:
        # 25 to 32 bytes wrap to 40; the token takes only 16, 24 or 32 as AES keys, so a
        # successful encryption proves 32.  (SoftHSM2 2.6.1 leaves CKA_VALUE_LEN at 0.)
        try:
            objects.capable(key, EncryptMixin, "encrypt", job.name).encrypt(
                bytes(32),
                mechanism=Mechanism.AES_GCM,
                mechanism_param=GCMParams(os.urandom(12), b"", 128),
            )
        except p11.PKCS11Error as error:
            if type(error) in RECONNECTABLE:
                raise
            raise ImportRefused(
                "the unwrapped material is not a 32-byte AES key", provider=SCHEME
            ) from None
        return
    found = objects.key_type_of(key)
    if found is not job.key_type:
        raise ImportRefused(
            f"the unwrapped private key is not an {job.key_type.value} key", provider=SCHEME
        )


def store_public_half(
    session: pkcs11.Session, key: pkcs11.Object, job: ImportJob, version: int
) -> None:
    """Create the (private) public-key object next to an imported RSA private key."""
    session.create_object(
        {
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.KEY_TYPE: P11KeyType.RSA,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.LABEL: job.name,
            Attribute.ID: version_to_id(version),
            Attribute.MODULUS: bytes(key[Attribute.MODULUS]),
            Attribute.PUBLIC_EXPONENT: bytes(key[Attribute.PUBLIC_EXPONENT]),
            Attribute.VERIFY: True,
            Attribute.ENCRYPT: False,
            Attribute.WRAP: False,
        }
    )
