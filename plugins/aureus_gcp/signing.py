"""Cloud KMS key algorithms, digests for AsymmetricSign, and local verification.

Cloud KMS signs a digest for ECDSA and RSA keys (SHA-256, or SHA-384 for
P-384) and the message itself for Ed25519 (``EC_SIGN_ED25519``, at most
64 KiB).  ECDSA signatures come back DER-encoded, as ``openssl dgst -verify``
and the other providers expect.  Verification is local, with the public key
from ``GetPublicKey``, cached for ``public_key_ttl`` seconds.
"""

from __future__ import annotations

import hashlib

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from aureus_core.errors import ConfigError, SignatureError
from aureus_core.keys import KeyType

SYMMETRIC = "GOOGLE_SYMMETRIC_ENCRYPTION"
"""The algorithm of Cloud KMS wrapping keys (``ENCRYPT_DECRYPT`` purpose, AES-256-GCM)."""
ED25519_DATA_LIMIT = 64 * 1024
"""The longest message Cloud KMS signs with an Ed25519 key."""
ED25519_SIGNATURE_SIZE = 64

PublicKeyType = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@attrs.frozen
class Algorithm:
    """One Cloud KMS signing algorithm and the names Aureus gives it."""

    kms_name: str
    """The ``CryptoKeyVersionAlgorithm``, e.g. ``EC_SIGN_P256_SHA256``."""
    key_type: KeyType
    name: str
    """The algorithm in an Aureus :class:`~aureus_core.signature.Signature`."""
    hash_name: str | None
    """``sha256`` / ``sha384``; ``None`` for Ed25519, which signs the message."""
    rsa_padding: str | None = None
    """``pss`` or ``pkcs1`` for RSA keys."""

    @property
    def hash(self) -> hashes.HashAlgorithm:
        """The digest algorithm (SHA-256 unless SHA-384)."""
        return hashes.SHA384() if self.hash_name == "sha384" else hashes.SHA256()

    def digest(self, message: bytes) -> bytes:
        """The digest Cloud KMS signs."""
        if self.hash_name is None:
            raise ConfigError(f"{self.kms_name} signs the message, not a digest")
        return hashlib.new(self.hash_name, message).digest()


_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}


def _algorithms() -> dict[str, Algorithm]:
    found = {
        "EC_SIGN_P256_SHA256": Algorithm(
            "EC_SIGN_P256_SHA256", KeyType.ECDSA_P256, "ecdsa-p256-sha256", "sha256"
        ),
        "EC_SIGN_P384_SHA384": Algorithm(
            "EC_SIGN_P384_SHA384", KeyType.ECDSA_P384, "ecdsa-p384-sha384", "sha384"
        ),
        "EC_SIGN_ED25519": Algorithm("EC_SIGN_ED25519", KeyType.ED25519, "ed25519", None),
    }
    for key_type, bits in _RSA_BITS.items():
        for padding_name, kms, name in (
            ("pss", "PSS", "rsa-pss-sha256"),
            ("pkcs1", "PKCS1", "rsa-pkcs1v15-sha256"),
        ):
            kms_name = f"RSA_SIGN_{kms}_{bits}_SHA256"
            found[kms_name] = Algorithm(kms_name, key_type, name, "sha256", padding_name)
    return found


ALGORITHMS: dict[str, Algorithm] = _algorithms()
"""The signing algorithms Aureus uses, by Cloud KMS name."""
KEY_TYPES: frozenset[KeyType] = frozenset(
    {KeyType.AES_256, *(a.key_type for a in ALGORITHMS.values())}
)
RSA_PADDINGS = {
    "pss": "pss",
    "rsa-pss-sha256": "pss",
    "pkcs1": "pkcs1",
    "rsa-pkcs1v15-sha256": "pkcs1",
}
"""Values of the ``algorithm`` key option for RSA signing keys."""


def kms_algorithm(key_type: KeyType, rsa_padding: str | None = None) -> str:
    """The Cloud KMS algorithm of a new key of ``key_type`` (RSA: PSS unless ``pkcs1``)."""
    if rsa_padding is not None and key_type not in _RSA_BITS:
        raise ConfigError("the key option algorithm applies only to RSA signing keys")
    if key_type is KeyType.AES_256:
        return SYMMETRIC
    wanted = RSA_PADDINGS.get((rsa_padding or "pss").lower())
    if wanted is None:
        raise ConfigError(
            f"unknown RSA signing algorithm {rsa_padding!r}; choose pss (rsa-pss-sha256) or "
            "pkcs1 (rsa-pkcs1v15-sha256)"
        )
    for algorithm in ALGORITHMS.values():
        if algorithm.key_type is key_type and algorithm.rsa_padding in (None, wanted):
            return algorithm.kms_name
    raise ConfigError(f"Cloud KMS has no algorithm for {key_type.value} keys")


def key_type_of(kms_name: str) -> KeyType | None:
    """The Aureus key type of a Cloud KMS algorithm (``None``: one Aureus does not use)."""
    if kms_name == SYMMETRIC:
        return KeyType.AES_256
    algorithm = ALGORITHMS.get(kms_name)
    return algorithm.key_type if algorithm else None


@attrs.frozen
class PublicKey:
    """A version's public key, as ``GetPublicKey`` returned it (checksum verified)."""

    version_name: str
    algorithm: Algorithm
    pem: bytes
    key: PublicKeyType = attrs.field(repr=False)

    @classmethod
    def from_pem(cls, version_name: str, algorithm: Algorithm, pem: bytes) -> PublicKey:
        """Load the PEM and check it holds the kind of key ``algorithm`` says."""
        try:
            loaded = serialization.load_pem_public_key(pem)
        except ValueError:
            raise SignatureError(
                f"Cloud KMS returned an unreadable public key for {version_name}"
            ) from None
        expected = algorithm.key_type
        fits = (
            (expected is KeyType.ED25519 and isinstance(loaded, ed25519.Ed25519PublicKey))
            or (
                isinstance(loaded, ec.EllipticCurvePublicKey)
                and (expected, loaded.curve.name)
                in ((KeyType.ECDSA_P256, "secp256r1"), (KeyType.ECDSA_P384, "secp384r1"))
            )
            or (isinstance(loaded, rsa.RSAPublicKey) and _RSA_BITS.get(expected) == loaded.key_size)
        )
        if not fits:
            raise SignatureError(
                f"Cloud KMS returned a public key for {version_name} that does not match its "
                f"algorithm {algorithm.kms_name}"
            )
        assert isinstance(
            loaded, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)
        )
        canonical = loaded.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(version_name=version_name, algorithm=algorithm, pem=canonical, key=loaded)


def check_format(public: PublicKey, signature: bytes) -> None:
    """Raise :class:`SignatureError` if ``signature`` cannot be one of this key's signatures."""
    key = public.key
    if isinstance(key, ed25519.Ed25519PublicKey):
        if len(signature) != ED25519_SIGNATURE_SIZE:
            raise SignatureError(
                f"malformed Ed25519 signature: it must be {ED25519_SIGNATURE_SIZE} bytes, "
                f"not {len(signature)}"
            )
    elif isinstance(key, rsa.RSAPublicKey):
        size = (key.key_size + 7) // 8
        if len(signature) != size:
            raise SignatureError(
                f"malformed RSA signature: expected {size} bytes, got {len(signature)}"
            )
    else:
        try:
            r, s = decode_dss_signature(signature)
        except ValueError:
            raise SignatureError(
                "malformed ECDSA signature: expected DER (SEQUENCE of r and s)"
            ) from None
        if encode_dss_signature(r, s) != signature:
            raise SignatureError("malformed ECDSA signature: not strict DER")


def verify_locally(public: PublicKey, message: bytes, signature: bytes) -> bool:
    """Check a signature with the public key alone.

    ``False`` for a well-formed signature that does not match; RSA-PSS
    accepts any salt length, as ``openssl dgst -verify`` does (Cloud KMS
    uses the digest length).
    """
    signature = bytes(signature)
    check_format(public, signature)
    algorithm, key = public.algorithm, public.key
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, rsa.RSAPublicKey):
            pad: padding.AsymmetricPadding
            if algorithm.rsa_padding == "pkcs1":
                pad = padding.PKCS1v15()
            else:
                pad = padding.PSS(mgf=padding.MGF1(algorithm.hash), salt_length=padding.PSS.AUTO)
            key.verify(signature, message, pad, algorithm.hash)
        else:
            key.verify(signature, message, ec.ECDSA(algorithm.hash))
    except InvalidSignature:
        return False
    return True
