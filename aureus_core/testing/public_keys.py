"""Verify a provider's signature with ``cryptography`` alone, from its PEM public key.

This is the independent check of the provider contract: what a relying party
that never heard of Aureus would do with the exported public key.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from ..keys import KeyType
from ..signature import Signature

_CURVES: dict[KeyType, tuple[str, hashes.HashAlgorithm]] = {
    KeyType.ECDSA_P256: ("secp256r1", hashes.SHA256()),
    KeyType.ECDSA_P384: ("secp384r1", hashes.SHA384()),
}
_RSA_SIZES: dict[KeyType, int] = {
    KeyType.RSA_2048: 2048,
    KeyType.RSA_3072: 3072,
    KeyType.RSA_4096: 4096,
}


def _rsa_hash(algorithm: str) -> hashes.HashAlgorithm:
    name = algorithm.lower().replace("-", "").replace("_", "")
    if "sha384" in name:
        return hashes.SHA384()
    if "sha512" in name:
        return hashes.SHA512()
    return hashes.SHA256()


def _rsa_padding(algorithm: str, digest: hashes.HashAlgorithm) -> padding.AsymmetricPadding:
    name = algorithm.lower().replace("-", "").replace("_", "")
    if "pkcs1" in name or "v15" in name:
        return padding.PKCS1v15()
    return padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.AUTO)


def verify_with_public_key(
    pem: bytes, key_type: KeyType, signature: Signature, message: bytes
) -> bool:
    """Whether ``signature`` verifies under the PEM public key of a ``key_type`` key.

    Ed25519 signs the message itself; ECDSA signatures are DER over SHA-256
    (P-256) or SHA-384 (P-384); RSA signatures are PSS with MGF1 unless
    ``signature.algorithm`` names PKCS#1 v1.5, over the SHA-2 digest the
    algorithm names (SHA-256 by default).  Raises :class:`AssertionError` if
    the PEM holds another kind of key than ``key_type``.
    """
    public = serialization.load_pem_public_key(pem)
    try:
        if key_type is KeyType.ED25519:
            if not isinstance(public, ed25519.Ed25519PublicKey):
                raise AssertionError(f"the ed25519 key's PEM holds {_describe(public)}")
            public.verify(signature.value, message)
        elif key_type in _CURVES:
            curve, digest = _CURVES[key_type]
            if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != curve:
                raise AssertionError(f"the {key_type.value} key's PEM holds {_describe(public)}")
            public.verify(signature.value, message, ec.ECDSA(digest))
        elif key_type in _RSA_SIZES:
            size = _RSA_SIZES[key_type]
            if not isinstance(public, rsa.RSAPublicKey) or public.key_size != size:
                raise AssertionError(f"the {key_type.value} key's PEM holds {_describe(public)}")
            digest = _rsa_hash(signature.algorithm)
            public.verify(
                signature.value, message, _rsa_padding(signature.algorithm, digest), digest
            )
        else:
            raise AssertionError(f"{key_type.value} keys do not sign")
    except InvalidSignature:
        return False
    return True


def _describe(public: object) -> str:
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "an Ed25519 key"
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"an EC key on {public.curve.name}"
    if isinstance(public, rsa.RSAPublicKey):
        return f"a {public.key_size}-bit RSA key"
    return f"a {type(public).__name__}"
