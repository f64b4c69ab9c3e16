"""Key Vault signing algorithms, and local verification with ``cryptography``.

Key Vault signs a digest and returns ECDSA signatures in JWS form (raw
``r || s``); Aureus hands out DER, as ``openssl dgst -verify`` and the other
providers expect, and converts back for nothing: verification is local, with
the public key from the key's JWK.
"""

from __future__ import annotations

import base64

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from aureus_core.errors import ConfigError, SignatureError

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_CURVES: dict[str, tuple[ec.EllipticCurve, int, str]] = {
    "P-256": (ec.SECP256R1(), 32, "ES256"),
    "P-384": (ec.SECP384R1(), 48, "ES384"),
}


@attrs.frozen
class Algorithm:
    """A Key Vault signing algorithm and the name Aureus gives it."""

    jws: str
    """Key Vault's name: ``ES256``, ``ES384``, ``PS256``, ``RS256``."""
    aureus: str
    """The name in :class:`~aureus_core.signature.Signature` (``ecdsa-p256-sha256`` ...)."""

    @property
    def hash(self) -> hashes.HashAlgorithm:
        """The digest algorithm."""
        return hashes.SHA384() if self.jws.endswith("384") else hashes.SHA256()

    def digest(self, message: bytes) -> bytes:
        """The digest Key Vault signs."""
        hasher = hashes.Hash(self.hash)
        hasher.update(message)
        return hasher.finalize()


ALGORITHMS = {
    "ES256": Algorithm("ES256", "ecdsa-p256-sha256"),
    "ES384": Algorithm("ES384", "ecdsa-p384-sha384"),
    "PS256": Algorithm("PS256", "rsa-pss-sha256"),
    "RS256": Algorithm("RS256", "rsa-pkcs1v15-sha256"),
}
RSA_ALGORITHMS = ("PS256", "RS256")
DEFAULT_RSA_ALGORITHM = "PS256"


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url, as in JWKs and Key Vault answers."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    """Encode as unpadded base64url."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def public_key_from_jwk(jwk: dict[str, object]) -> PublicKey | None:
    """The public key of an RSA or EC JWK (``None`` for a symmetric key)."""
    kty = str(jwk.get("kty", ""))
    if kty.startswith("RSA"):
        n = int.from_bytes(b64url_decode(str(jwk["n"])), "big")
        e = int.from_bytes(b64url_decode(str(jwk["e"])), "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    if kty.startswith("EC"):
        curve = _CURVES.get(str(jwk.get("crv")))
        if curve is None:
            return None
        x = int.from_bytes(b64url_decode(str(jwk["x"])), "big")
        y = int.from_bytes(b64url_decode(str(jwk["y"])), "big")
        return ec.EllipticCurvePublicNumbers(x, y, curve[0]).public_key()
    return None


def algorithm_for(public: PublicKey, rsa_algorithm: str | None) -> Algorithm:
    """The algorithm a key signs with: its curve's ES*, else PS256 or the one chosen."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        for curve, _, name in _CURVES.values():
            if curve.name == public.curve.name:
                return ALGORITHMS[name]
        raise ConfigError(f"curve {public.curve.name} is not supported for signing")
    chosen = rsa_algorithm or DEFAULT_RSA_ALGORITHM
    if chosen not in RSA_ALGORITHMS:
        raise ConfigError(
            f"RSA signing algorithm {chosen!r} is not supported; "
            f"choose {' or '.join(RSA_ALGORITHMS)}"
        )
    return ALGORITHMS[chosen]


def to_der(raw: bytes) -> bytes:
    """Convert a JWS ECDSA signature (``r || s``) to DER."""
    if not raw or len(raw) % 2:
        raise SignatureError("Key Vault returned a malformed ECDSA signature")
    half = len(raw) // 2
    return encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )


def verify(public: PublicKey, algorithm: Algorithm, message: bytes, signature: bytes) -> bool:
    """Check ``signature``; ``False`` if well formed but wrong, SignatureError if malformed."""
    signature = bytes(signature)
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            try:
                r, s = decode_dss_signature(signature)
            except ValueError:
                raise SignatureError(
                    "malformed ECDSA signature: expected DER (SEQUENCE of r and s)"
                ) from None
            if encode_dss_signature(r, s) != signature:
                raise SignatureError("malformed ECDSA signature: not strict DER")
            public.verify(signature, message, ec.ECDSA(algorithm.hash))
        else:
            size = (public.key_size + 7) // 8
            if len(signature) != size:
                raise SignatureError(
                    f"malformed RSA signature: expected {size} bytes, got {len(signature)}"
                )
            pad: padding.AsymmetricPadding
            if algorithm.jws.startswith("RS"):
                pad = padding.PKCS1v15()
            else:
                pad = padding.PSS(mgf=padding.MGF1(algorithm.hash), salt_length=padding.PSS.AUTO)
            public.verify(signature, message, pad, algorithm.hash)
    except InvalidSignature:
        return False
    return True
