"""Key material for the key types the local keystore holds.

Every type is stored as 32 secret bytes: the AES-256 key itself, the Ed25519
private seed, or the big-endian ECDSA P-256 private scalar.  This module
generates such material, turns imported keys into it, and loads it back into
``cryptography`` key objects.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from aureus_core.errors import ConfigError, UnsupportedOperation
from aureus_core.interfaces import KeyMaterial
from aureus_core.keys import KeyType

from .naming import SCHEME

SUPPORTED_TYPES: frozenset[KeyType] = frozenset(
    {KeyType.AES_256, KeyType.ED25519, KeyType.ECDSA_P256}
)
MATERIAL_SIZE = 32
"""Bytes of stored material, the same for every supported type."""

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

_SUPPORTED_NAMES = ", ".join(sorted(t.value for t in SUPPORTED_TYPES))


def check_supported(key_type: KeyType | str) -> KeyType:
    """Return ``key_type`` if the local keystore can hold it, else raise."""
    parsed = KeyType.parse(key_type)
    if parsed not in SUPPORTED_TYPES:
        raise UnsupportedOperation(
            SCHEME, f"key type {parsed.value}", f"choose one of: {_SUPPORTED_NAMES}"
        )
    return parsed


def generate(key_type: KeyType) -> bytes:
    """Fresh random material for a new key or key version."""
    if key_type is KeyType.AES_256:
        return secrets.token_bytes(MATERIAL_SIZE)
    if key_type is KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.generate().private_bytes_raw()
    if key_type is KeyType.ECDSA_P256:
        return _p256_scalar(ec.generate_private_key(ec.SECP256R1()))
    check_supported(key_type)
    raise AssertionError(f"no generator for {key_type.value}")  # pragma: no cover


def from_import(key_type: KeyType, material: KeyMaterial) -> bytes:
    """Validate imported material for ``key_type`` and return it in stored form.

    ``raw`` material is accepted for ``aes-256`` (exactly 32 bytes); ``pem``
    (an unencrypted PKCS#8 or traditional private key) for the signing types.
    Error messages never contain the material.
    """
    key_type = check_supported(key_type)
    data = bytes(material.data.reveal())
    if key_type is KeyType.AES_256:
        if material.format != "raw":
            raise ConfigError(
                f"aes-256 keys are imported as raw bytes (format 'raw'), not {material.format!r}"
            )
        if len(data) != MATERIAL_SIZE:
            raise ConfigError(
                f"an aes-256 key needs exactly {MATERIAL_SIZE} bytes of material; "
                f"got {len(data)} bytes"
            )
        return data
    if material.format != "pem":
        raise ConfigError(
            f"{key_type.value} keys are imported as a PEM private key (format 'pem'), "
            f"not {material.format!r}"
        )
    return _stored_form(key_type, _load_pem(data))


def private_key(key_type: KeyType, material: bytes) -> PrivateKey:
    """Load stored material of a signing key type into a private-key object."""
    if key_type is KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.from_private_bytes(material)
    if key_type is KeyType.ECDSA_P256:
        return ec.derive_private_key(int.from_bytes(material, "big"), ec.SECP256R1())
    raise ValueError(f"{key_type.value} is not a signing key type")


def public_key_pem(key: PrivateKey) -> bytes:
    """The SubjectPublicKeyInfo PEM of a private key's public half."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_pem(data: bytes) -> object:
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            "the PEM private key is encrypted: decrypt it first, e.g. "
            "`openssl pkey -in K -out K.plain`, and import K.plain"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            "the material is not a PEM private key that can be read: expected "
            "'-----BEGIN PRIVATE KEY-----' (PKCS#8) or a traditional PEM private key"
        ) from None


def _stored_form(key_type: KeyType, key: object) -> bytes:
    if key_type is KeyType.ED25519 and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.private_bytes_raw()
    if (
        key_type is KeyType.ECDSA_P256
        and isinstance(key, ec.EllipticCurvePrivateKey)
        and isinstance(key.curve, ec.SECP256R1)
    ):
        return _p256_scalar(key)
    raise ConfigError(
        f"the PEM holds {_describe(key)}, but the key type is {key_type.value}: "
        "import it with the matching key type"
    )


def _describe(key: object) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "an ed25519 key"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"an EC key on curve {key.curve.name}"
    name = type(key).__name__.removeprefix("_").replace("PrivateKey", "")
    return f"a key of type {name or 'unknown'}"


def _p256_scalar(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_numbers().private_value.to_bytes(MATERIAL_SIZE, "big")
