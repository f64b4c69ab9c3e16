"""A process without the PIN, doing what PKCS#11 lets it do to a token's public objects.

The tests run it in a process of its own (a login belongs to the whole process,
so a second session in the test process would be logged in too)::

    python pinless.py MODULE TOKEN secret NAME VERSION HEX       # a public AES key of known value
    python pinless.py MODULE TOKEN key-pair NAME VERSION TYPE    # a public private key + its half
    python pinless.py MODULE TOKEN replace-public-key NAME VERSION TYPE  # destroy, then plant
    python pinless.py MODULE TOKEN shadow-public-key NAME VERSION TYPE   # plant before the genuine
    python pinless.py MODULE TOKEN data LABEL APPLICATION HEX    # destroy the visible, then plant

Commands that make a key print the attacker's private key (PEM) on stdout.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import pkcs11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pkcs11 import Attribute, ObjectClass
from pkcs11 import KeyType as P11KeyType
from pkcs11.util.ec import encode_named_curve_parameters

from aureus_core.keys import KeyType
from aureus_pkcs11.naming import version_to_id
from aureus_pkcs11.objects import CURVE_OIDS, CURVES, ED25519_OID

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _generate(key_type: KeyType) -> PrivateKey:
    if key_type is KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if key_type in CURVES:
        return ec.generate_private_key(CURVES[key_type])
    return rsa.generate_private_key(65537, 2048)


def _octet_string(point: bytes) -> bytes:
    return bytes([0x04, len(point)]) + point


def _public_attributes(key: PrivateKey, key_type: KeyType) -> dict[Attribute, Any]:
    public = key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {
            Attribute.KEY_TYPE: P11KeyType.EC_EDWARDS,
            Attribute.EC_PARAMS: encode_named_curve_parameters(ED25519_OID),
            Attribute.EC_POINT: _octet_string(raw),
        }
    if isinstance(public, ec.EllipticCurvePublicKey):
        point = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            Attribute.KEY_TYPE: P11KeyType.EC,
            Attribute.EC_PARAMS: encode_named_curve_parameters(CURVE_OIDS[key_type]),
            Attribute.EC_POINT: _octet_string(point),
        }
    assert isinstance(public, rsa.RSAPublicKey)
    numbers = public.public_numbers()
    return {
        Attribute.KEY_TYPE: P11KeyType.RSA,
        Attribute.MODULUS: numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"),
        Attribute.PUBLIC_EXPONENT: numbers.e.to_bytes(3, "big"),
    }


def _pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


_KEPT = (
    Attribute.KEY_TYPE,
    Attribute.EC_PARAMS,
    Attribute.EC_POINT,
    Attribute.MODULUS,
    Attribute.PUBLIC_EXPONENT,
)


def _destroy_visible(
    session: pkcs11.Session, template: dict[Attribute, Any]
) -> list[dict[Attribute, Any]]:
    """Destroy the objects a session without the PIN sees; return their key attributes."""
    destroyed = []
    for obj in list(session.get_objects(template)):
        kept: dict[Attribute, Any] = {}
        for attribute in _KEPT:
            with contextlib.suppress(pkcs11.exceptions.AttributeTypeInvalid):
                kept[attribute] = obj[attribute]
        destroyed.append(kept)
        obj.destroy()
    return destroyed


def main(module: str, token: str, command: str, *args: str) -> None:
    """Open a read-write session without logging in and do ``command``."""
    public: dict[Attribute, Any] = {Attribute.TOKEN: True, Attribute.PRIVATE: False}
    with pkcs11.lib(module).get_token(token_label=token).open(rw=True) as session:
        if command == "secret":
            name, version, value = args
            session.create_object(
                {
                    **public,
                    Attribute.CLASS: ObjectClass.SECRET_KEY,
                    Attribute.KEY_TYPE: P11KeyType.AES,
                    Attribute.VALUE: bytes.fromhex(value),
                    Attribute.ENCRYPT: True,
                    Attribute.DECRYPT: True,
                    Attribute.LABEL: name,
                    Attribute.ID: version_to_id(int(version)),
                }
            )
        elif command in ("key-pair", "replace-public-key", "shadow-public-key"):
            name, version, type_name = args
            key_type = KeyType(type_name)
            key = _generate(key_type)
            where = {Attribute.LABEL: name, Attribute.ID: version_to_id(int(version))}
            genuine: list[dict[Attribute, Any]] = []
            if command != "key-pair":
                kind = {**where, Attribute.CLASS: ObjectClass.PUBLIC_KEY}
                genuine = _destroy_visible(session, kind)
            attributes = _public_attributes(key, key_type)
            for planted in [attributes] + (genuine if command == "shadow-public-key" else []):
                session.create_object(  # the attacker's first, so a search finds it first
                    {
                        **public,
                        **where,
                        **planted,
                        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                        Attribute.VERIFY: True,
                    }
                )
            if command == "key-pair":
                assert isinstance(key, ec.EllipticCurvePrivateKey), "key-pair plants ECDSA keys"
                size = (key.curve.key_size + 7) // 8
                session.create_object(
                    {
                        **public,
                        **where,
                        Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                        Attribute.KEY_TYPE: P11KeyType.EC,
                        Attribute.EC_PARAMS: attributes[Attribute.EC_PARAMS],
                        Attribute.VALUE: key.private_numbers().private_value.to_bytes(size, "big"),
                        Attribute.SENSITIVE: False,
                        Attribute.SIGN: True,
                    }
                )
            print(_pem(key))
        elif command == "data":
            label, application, value = args
            _destroy_visible(session, {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: label})
            session.create_object(
                {
                    **public,
                    Attribute.CLASS: ObjectClass.DATA,
                    Attribute.LABEL: label,
                    Attribute.APPLICATION: application,
                    Attribute.VALUE: bytes.fromhex(value),
                }
            )
        else:
            raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(*sys.argv[1:])
