"""Fresh key material of each key type, for import tests, and the public key that goes with it."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ..interfaces import KeyMaterial
from ..keys import KeyType
from ..sensitive import Secret

_AES_SIZES = {KeyType.AES_128: 16, KeyType.AES_192: 24, KeyType.AES_256: 32}
_CURVES: dict[KeyType, ec.EllipticCurve] = {
    KeyType.ECDSA_P256: ec.SECP256R1(),
    KeyType.ECDSA_P384: ec.SECP384R1(),
}
_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}


def fresh_material(key_type: KeyType) -> KeyMaterial:
    """New random material: raw bytes for AES types, an unencrypted PKCS#8 PEM otherwise."""
    if key_type in _AES_SIZES:
        return KeyMaterial(format="raw", data=Secret(os.urandom(_AES_SIZES[key_type])))
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if key_type is KeyType.ED25519:
        private = ed25519.Ed25519PrivateKey.generate()
    elif key_type in _CURVES:
        private = ec.generate_private_key(_CURVES[key_type])
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return KeyMaterial(format="pem", data=Secret(pem))


def original_public_key(key_type: KeyType, material: KeyMaterial) -> bytes:
    """The SubjectPublicKeyInfo PEM of PEM private-key material."""
    if material.format != "pem":
        raise ValueError(f"{key_type.value} material has no public key")
    private = serialization.load_pem_private_key(material.data.reveal(), password=None)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
