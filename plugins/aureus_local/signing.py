"""Signing and verification with local signing keys.

Ed25519 signs the message itself (64-byte signatures); ECDSA P-256 signs its
SHA-256 digest and produces DER, as ``openssl dgst -sha256 -sign`` does, always
in low-S form (``s <= n/2``).  ECDSA signatures are malleable: ``(r, n - s)``
verifies whenever ``(r, s)`` does, so a signature is not a unique token for a
message unless one of the two forms is refused.  Verification refuses the
high-S form by default, and rejects malformed signatures (wrong length,
non-strict DER) with :class:`SignatureError` rather than quietly returning
``False``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
"""The order n of the P-256 group (SEC 2, secp256r1)."""
_P256_HALF_ORDER = P256_ORDER // 2
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
"""The signature algorithm object (stateless: OpenSSL draws each signature's nonce)."""


def sign(key: PrivateKey, message: bytes) -> bytes:
    """Sign ``message``: raw Ed25519, or DER-encoded ECDSA over SHA-256."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return _sign_ed25519(key, message)
    return _sign_ecdsa_p256(key, message)


def _sign_ed25519(key: ed25519.Ed25519PrivateKey, message: bytes) -> bytes:
    return key.sign(message)


def _sign_ecdsa_p256(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    der = key.sign(message, _ECDSA_SHA256)
    r, s = decode_dss_signature(der)
    if s <= _P256_HALF_ORDER:
        return der  # already low-S, and OpenSSL's DER is the strict encoding of (r, s)
    return encode_dss_signature(r, P256_ORDER - s)


SIGNERS: dict[KeyType, Callable[[Any, bytes], bytes]] = {
    KeyType.ED25519: _sign_ed25519,
    KeyType.ECDSA_P256: _sign_ecdsa_p256,
}
""":func:`sign` for a key whose type is known (no type test per signature)."""


def verify(
    key: PublicKey, message: bytes, signature: bytes, *, accept_high_s: bool = False
) -> bool:
    """Check ``signature``; ``False`` if it is well formed but does not match.

    A high-S ECDSA signature raises :class:`SignatureError` unless
    ``accept_high_s`` (for signatures made outside Aureus by signers that do
    not normalize ``s``).
    """
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
            _check_strict_der(signature, accept_high_s=accept_high_s)
            key.verify(signature, message, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True


def _check_strict_der(signature: bytes, *, accept_high_s: bool) -> None:
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
    if s > _P256_HALF_ORDER and not accept_high_s:
        raise SignatureError(
            "non-canonical ECDSA signature: its s is in the upper half of the group order "
            "(high-S), which makes it a malleated copy of another signature; ask the signer "
            "for a low-S signature (Aureus always signs low-S), or, for a signer that cannot, "
            "set accept_high_s = true on the local provider"
        )
