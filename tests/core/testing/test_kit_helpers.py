from __future__ import annotations

import base64
import os
import threading

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from aureus_core.keys import KeyType
from aureus_core.signature import Signature
from aureus_core.testing import assert_no_secret, verify_with_public_key
from aureus_core.testing.concurrency import run_in_threads
from aureus_core.testing.leaks import find_secret, secret_forms

SECRET = bytes(range(1, 33))


@pytest.mark.parametrize(
    ("text", "form"),
    [
        (f"key={SECRET.hex()}", "hex"),
        (f"KEY={SECRET.hex().upper()}", "upper-case hex"),
        (f"b64:{base64.b64encode(SECRET).decode()}", "base64"),
        (f"{SECRET!r}", "bytes repr"),
        (f"{bytearray(SECRET)!r}", "bytes repr"),
    ],
)
def test_find_secret_names_the_form(text, form):
    assert find_secret(text, [SECRET]) == form


def test_find_secret_in_text_forms():
    assert find_secret("pass=hunter2-hunter2", ["hunter2-hunter2"]) == "plain text"
    assert find_secret("pass=<secret>", ["hunter2-hunter2"]) is None


def test_short_secrets_are_not_searched():
    assert find_secret("abc", ["abc"]) is None
    assert all(len(form) >= 8 for form in secret_forms(b"\x01\x02\x03").values())


def test_assert_no_secret_never_repeats_the_secret():
    with pytest.raises(AssertionError) as error:
        assert_no_secret(f"x {SECRET.hex()}", [SECRET], "repr(thing)")
    assert str(error.value) == "repr(thing) shows a secret value (as hex)"
    assert_no_secret("nothing here", [SECRET], "repr(thing)")


def _sign(key_type: KeyType, private: PrivateKeyTypes, algorithm: str) -> tuple[bytes, Signature]:
    message = b"message"
    if isinstance(private, ed25519.Ed25519PrivateKey):
        value = private.sign(message)
    elif isinstance(private, ec.EllipticCurvePrivateKey):
        digest = hashes.SHA384() if key_type is KeyType.ECDSA_P384 else hashes.SHA256()
        value = private.sign(message, ec.ECDSA(digest))
    else:
        assert isinstance(private, rsa.RSAPrivateKey)
        rsa_padding: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if "pkcs1" in algorithm
            else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        )
        value = private.sign(message, rsa_padding, hashes.SHA256())
    pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return pem, Signature(value=value, key_uri="x://k", key_version="1", algorithm=algorithm)


@pytest.mark.parametrize(
    ("key_type", "make", "algorithm"),
    [
        (KeyType.ED25519, ed25519.Ed25519PrivateKey.generate, "ed25519"),
        (KeyType.ECDSA_P256, lambda: ec.generate_private_key(ec.SECP256R1()), "ecdsa-sha256"),
        (KeyType.ECDSA_P384, lambda: ec.generate_private_key(ec.SECP384R1()), "ecdsa-sha384"),
        (KeyType.RSA_2048, lambda: rsa.generate_private_key(65537, 2048), "rsa-pss-sha256"),
        (KeyType.RSA_2048, lambda: rsa.generate_private_key(65537, 2048), "rsa-pkcs1-sha256"),
    ],
)
def test_verify_with_public_key(key_type, make, algorithm):
    pem, signature = _sign(key_type, make(), algorithm)
    assert verify_with_public_key(pem, key_type, signature, b"message") is True
    assert verify_with_public_key(pem, key_type, signature, b"massage") is False


def test_verify_with_public_key_checks_the_key_kind():
    pem, signature = _sign(
        KeyType.ECDSA_P256, ec.generate_private_key(ec.SECP256R1()), "ecdsa-sha256"
    )
    with pytest.raises(
        AssertionError, match="the ecdsa-p384 key's PEM holds an EC key on secp256r1"
    ):
        verify_with_public_key(pem, KeyType.ECDSA_P384, signature, b"message")
    with pytest.raises(AssertionError, match="the ed25519 key's PEM holds an EC key on secp256r1"):
        verify_with_public_key(pem, KeyType.ED25519, signature, b"message")


def test_run_in_threads_returns_every_result_in_order():
    names: set[str] = set()

    def task(thread: int, operation: int) -> tuple[int, int]:
        names.add(threading.current_thread().name)
        return thread, operation

    results = run_in_threads(task, threads=4, operations=3)
    assert results == [(t, o) for t in range(4) for o in range(3)]
    assert len(names) == 4


def test_run_in_threads_reraises():
    def task(thread: int, operation: int) -> None:
        if (thread, operation) == (2, 1):
            raise KeyError(os.urandom(1).hex())

    with pytest.raises(KeyError):
        run_in_threads(task, threads=3, operations=2)


def test_run_in_threads_needs_work():
    with pytest.raises(ValueError, match="at least 1"):
        run_in_threads(lambda t, o: None, threads=0, operations=1)
