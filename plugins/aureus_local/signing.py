"""Signing and verification with local signing keys.

Ed25519 signs the message itself (64-byte signatures); ECDSA P-256 signs its
SHA-256 digest and produces DER, as ``openssl dgst -sha256 -sign`` does.
Verification rejects malformed signatures (wrong length, non-strict DER) with
:class:`SignatureError` rather than quietly returning ``False``.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from aureus_core.errors import SignatureError
from aureus_core.keys import KeyType

from .material import PrivateKey, PublicKey

ALGORITHMS: dict[KeyType, str] = {
    KeyType.ED25519: "ed25519",
    KeyType.ECDSA_P256: "ecdsa-p256-sha256",
}
ED25519_SIGNATURE_SIZE = 64


def sign(key: PrivateKey, message: bytes) -> bytes:
    """Sign ``message``: raw Ed25519, or DER-encoded ECDSA over SHA-256."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


def verify(key: PublicKey, message: bytes, signature: bytes) -> bool:
    """Check ``signature``; ``False`` if it is well formed but does not match."""
    signature = bytes(signature)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            if len(signature) != ED25519_SIGNATURE_SIZE:
                raise SignatureError(
                    f"malformed Ed25519 signature: it must be {ED25519_SIGNATURE_SIZE} bytes, "
                    f"not {len(signature)}"
                )
            key.verify(signature, message)
        else:
            _check_strict_der(signature)
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _check_strict_der(signature: bytes) -> None:
    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        raise SignatureError(
            "malformed ECDSA signature: expected a DER-encoded SEQUENCE of two INTEGERs"
        ) from None
    if encode_dss_signature(r, s) != signature:
        raise SignatureError(
            "malformed ECDSA signature: it is not strict DER (non-minimal lengths or "
            "integers, or trailing bytes)"
        )
