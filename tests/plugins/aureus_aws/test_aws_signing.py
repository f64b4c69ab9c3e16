"""Signing with KMS keys: DER signatures openssl verifies, DIGEST mode, the key cache."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from aureus_aws import AwsKmsOptions, AwsKmsProvider
from aureus_aws.signing import RAW_MESSAGE_LIMIT
from aureus_core.errors import ConfigError, SignatureError
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType

SIGNING = [
    (KeyType.ECDSA_P256, "-sha256", []),
    (KeyType.ECDSA_P384, "-sha384", []),
    (
        KeyType.RSA_2048,
        "-sha256",
        ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:auto"],
    ),
]


def _openssl_verifies(
    tmp_path: Path, pem: bytes, message: bytes, signature: bytes, digest: str, opts: list[str]
) -> bool:
    (tmp_path / "pub.pem").write_bytes(pem)
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig.der").write_bytes(signature)
    result = subprocess.run(
        ["openssl", "dgst", digest, "-verify", "pub.pem", *opts, "-signature", "sig.der", "msg"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    return result.returncode == 0 and b"Verified OK" in result.stdout


def _key(provider: AwsKmsProvider, key_type: KeyType) -> KeyRef:
    return provider.create_key(f"sig-{uuid.uuid4().hex[:10]}", KeySpec(key_type=key_type)).ref


@pytest.mark.parametrize(("key_type", "digest", "opts"), SIGNING, ids=lambda v: str(v))
def test_signatures_verify_with_openssl(
    provider: AwsKmsProvider, tmp_path: Path, key_type: KeyType, digest: str, opts: list[str]
) -> None:
    ref = _key(provider, key_type)
    message = b"signed by AWS KMS through Aureus"
    signature = provider.sign(ref, message)
    pem = provider.public_key(ref)
    assert _openssl_verifies(tmp_path, pem, message, signature.value, digest, opts)
    assert not _openssl_verifies(tmp_path, pem, message + b"!", signature.value, digest, opts)
    assert provider.verify(ref, message, signature.value) is True


def test_default_signing_key_is_p256_with_ecdsa_sha256(provider: AwsKmsProvider) -> None:
    ref = _key(provider, KeyType.ECDSA_P256)
    signature = provider.sign(ref, b"m")
    assert signature.algorithm == "ecdsa-p256-sha256"
    assert signature.key_version == "1"
    assert KeyRef.parse(signature.key_uri) == ref


def test_long_messages_are_signed_as_a_sha256_digest(tmp_path: Path) -> None:
    """A message over 4 096 bytes goes to KMS as its digest, and openssl verifies the result.

    moto gap: moto ignores MessageType=DIGEST and hashes the digest again, so its
    signature verifies nowhere but in moto.  This test therefore plays KMS with
    botocore's Stubber: it checks the real request shape (MessageType=DIGEST,
    Message = SHA-256 of the message) and answers as KMS does, signing the digest
    itself with a P-256 key the test holds.
    """
    arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    message = b"x" * (RAW_MESSAGE_LIMIT + 1)
    digest = hashlib.sha256(message).digest()
    provider = AwsKmsProvider(AwsKmsOptions.from_mapping({"region": "us-east-1"}))
    with Stubber(provider.client()) as stub:
        stub.add_response(
            "get_public_key",
            {
                "KeyId": arn,
                "PublicKey": der,
                "KeySpec": "ECC_NIST_P256",
                "KeyUsage": "SIGN_VERIFY",
                "SigningAlgorithms": ["ECDSA_SHA_256"],
            },
            {"KeyId": arn},
        )
        stub.add_response(
            "sign",
            {
                "KeyId": arn,
                "SigningAlgorithm": "ECDSA_SHA_256",
                "Signature": private.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))),
            },
            {
                "KeyId": arn,
                "Message": digest,
                "MessageType": "DIGEST",
                "SigningAlgorithm": "ECDSA_SHA_256",
            },
        )
        ref = KeyRef(scheme="aws-kms", key_id=arn)
        signature = provider.sign(ref, message)
        pem = provider.public_key(ref)  # from the cache: no second GetPublicKey
        stub.assert_no_pending_responses()
    assert _openssl_verifies(tmp_path, pem, message, signature.value, "-sha256", [])
    assert provider.verify(ref, message, signature.value) is True
    assert provider.verify(ref, message + b"y", signature.value) is False


def test_long_messages_with_kms_verify_are_moto_consistent(make_provider: Any) -> None:
    """Sign and KMS Verify a 5 000-byte message in DIGEST mode against moto.

    moto-consistent only: moto signs and verifies DIGEST requests the same wrong
    way, so this shows the requests round-trip, not that the signature is right;
    the Stubber test above checks that.
    """
    provider = make_provider(verify_with="kms")
    ref = _key(provider, KeyType.ECDSA_P256)
    message = b"y" * 5000
    signature = provider.sign(ref, message)
    assert provider.verify(ref, message, signature.value) is True
    assert provider.verify(ref, message + b"!", signature.value) is False


def test_verify_through_kms_rejects_malformed_signatures(make_provider: Any) -> None:
    provider = make_provider(verify_with="kms")
    ref = _key(provider, KeyType.ECDSA_P256)
    signature = provider.sign(ref, b"short")
    assert provider.verify(ref, b"short", signature.value) is True
    assert provider.verify(ref, b"other", signature.value) is False
    with pytest.raises(SignatureError):
        provider.verify(ref, b"short", b"\x00\x01")


def test_public_key_is_cached_for_its_ttl(moto_server: Any) -> None:
    now = [0.0]
    options = AwsKmsOptions.from_mapping(
        {"region": "us-east-1", "endpoint_url": moto_server.url, "public_key_ttl": 60}
    )
    provider = AwsKmsProvider(options, clock=lambda: now[0])
    ref = _key(provider, KeyType.ECDSA_P256)
    fetched: list[str] = []
    provider.client().meta.events.register(
        "before-call.kms.GetPublicKey", lambda **_: fetched.append("get")
    )
    for _ in range(3):
        provider.verify(ref, b"m", provider.sign(ref, b"m").value)
    assert fetched == ["get"]
    now[0] = 59.9
    provider.public_key(ref)
    assert fetched == ["get"]
    now[0] = 60.0
    provider.public_key(ref)
    assert fetched == ["get", "get"]
    provider.close()


def test_signing_with_a_wrapping_key_is_a_config_error(provider: AwsKmsProvider) -> None:
    ref = _key(provider, KeyType.AES_256)
    with pytest.raises(
        ConfigError, match="SYMMETRIC_DEFAULT ENCRYPT_DECRYPT key, not a signing key"
    ):
        provider.sign(ref, b"m")
