"""KMS signing algorithms, DIGEST handling, and local verification with cached public keys.

KMS signs at most 4 096 bytes as a raw message; a longer message is hashed
here and sent with ``MessageType=DIGEST``.  Both give the same signature:
ECDSA and RSA-PSS sign the message's digest either way.
"""

from __future__ import annotations

import hashlib

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from aureus_core.errors import SignatureError
from aureus_core.keys import KeyType

RAW_MESSAGE_LIMIT = 4096
"""The longest message KMS ``Sign`` accepts with ``MessageType=RAW``."""


@attrs.frozen
class Algorithm:
    """How one key type signs in KMS."""

    key_spec: str
    kms_name: str
    """The KMS ``SigningAlgorithm``."""
    name: str
    """The algorithm name recorded in an Aureus :class:`Signature`."""
    hash_name: str


KEY_SPECS: dict[KeyType, str] = {
    KeyType.AES_256: "SYMMETRIC_DEFAULT",
    KeyType.ECDSA_P256: "ECC_NIST_P256",
    KeyType.ECDSA_P384: "ECC_NIST_P384",
    KeyType.RSA_2048: "RSA_2048",
    KeyType.RSA_3072: "RSA_3072",
    KeyType.RSA_4096: "RSA_4096",
}
KEY_TYPES: dict[str, KeyType] = {spec: key_type for key_type, spec in KEY_SPECS.items()}

ALGORITHMS: dict[str, Algorithm] = {
    "ECC_NIST_P256": Algorithm("ECC_NIST_P256", "ECDSA_SHA_256", "ecdsa-p256-sha256", "sha256"),
    "ECC_NIST_P384": Algorithm("ECC_NIST_P384", "ECDSA_SHA_384", "ecdsa-p384-sha384", "sha384"),
    **{
        spec: Algorithm(spec, "RSASSA_PSS_SHA_256", "rsa-pss-sha256", "sha256")
        for spec in ("RSA_2048", "RSA_3072", "RSA_4096")
    },
}


def message_and_type(message: bytes, algorithm: Algorithm) -> tuple[bytes, str]:
    """What to send to KMS ``Sign``/``Verify``: the message, or its digest past 4 096 bytes."""
    if len(message) <= RAW_MESSAGE_LIMIT:
        return message, "RAW"
    return hashlib.new(algorithm.hash_name, message).digest(), "DIGEST"


def _hash(algorithm: Algorithm) -> hashes.HashAlgorithm:
    return hashes.SHA384() if algorithm.hash_name == "sha384" else hashes.SHA256()


@attrs.frozen
class PublicKey:
    """A key's public half as ``GetPublicKey`` returned it."""

    arn: str
    key_spec: str
    pem: bytes
    key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey = attrs.field(repr=False)

    @classmethod
    def from_der(cls, arn: str, key_spec: str, der: bytes) -> PublicKey:
        """Load the DER SubjectPublicKeyInfo KMS returns."""
        loaded = serialization.load_der_public_key(der)
        if not isinstance(loaded, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
            raise SignatureError(f"KMS returned an unexpected public key type for {arn}")
        pem = loaded.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(arn=arn, key_spec=key_spec, pem=pem, key=loaded)

    @property
    def algorithm(self) -> Algorithm:
        """The signing algorithm of the key's spec."""
        return ALGORITHMS[self.key_spec]


def check_format(public: PublicKey, signature: bytes) -> None:
    """Raise :class:`SignatureError` if ``signature`` cannot be one of this key's signatures."""
    if isinstance(public.key, rsa.RSAPublicKey):
        if len(signature) != (public.key.key_size + 7) // 8:
            raise SignatureError(
                f"an RSA-PSS signature of {public.arn} is {(public.key.key_size + 7) // 8} "
                f"bytes long, not {len(signature)}"
            )
        return
    try:
        decode_dss_signature(signature)
    except ValueError:
        raise SignatureError(f"not a DER-encoded ECDSA signature for {public.arn}") from None


def verify_locally(public: PublicKey, message: bytes, signature: bytes) -> bool:
    """Verify a KMS signature with the public key alone.

    RSA-PSS accepts any salt length, as ``openssl dgst -verify`` does; KMS uses
    the digest length.
    """
    check_format(public, signature)
    digest = _hash(public.algorithm)
    try:
        if isinstance(public.key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO)
            public.key.verify(signature, message, pss, digest)
        else:
            public.key.verify(signature, message, ec.ECDSA(digest))
    except InvalidSignature:
        return False
    return True
