"""Signing with Cloud KMS keys: signatures openssl verifies, digests, Ed25519, the key cache."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from google.cloud import kms

from aureus_core import KeyStack
from aureus_core.errors import KeyDisabled, SignatureError
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyState, KeyType
from aureus_gcp import GcpKmsOptions, GcpKmsProvider
from aureus_gcp.signing import ED25519_DATA_LIMIT
from aureus_gcp.testing import CloudKmsEmulator

MESSAGE = b"signed by Google Cloud KMS through Aureus"
PSS = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
SIGNING = [
    (KeyType.ECDSA_P256, {}, "ecdsa-p256-sha256", "-sha256", []),
    (KeyType.ECDSA_P384, {}, "ecdsa-p384-sha384", "-sha384", []),
    (KeyType.RSA_2048, {}, "rsa-pss-sha256", "-sha256", PSS),
    (KeyType.RSA_3072, {"algorithm": "pss"}, "rsa-pss-sha256", "-sha256", PSS),
    (KeyType.RSA_2048, {"algorithm": "pkcs1"}, "rsa-pkcs1v15-sha256", "-sha256", []),
    (KeyType.RSA_3072, {"algorithm": "rsa-pkcs1v15-sha256"}, "rsa-pkcs1v15-sha256", "-sha256", []),
]


def _openssl_verifies(
    tmp_path: Path, pem: bytes, message: bytes, signature: bytes, digest: str, opts: list[str]
) -> bool:
    (tmp_path / "pub.pem").write_bytes(pem)
    (tmp_path / "msg").write_bytes(message)
    (tmp_path / "sig").write_bytes(signature)
    if digest == "ed25519":
        command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin"]
        command += ["-in", "msg", "-sigfile", "sig"]
        expected = b"Signature Verified Successfully"
    else:
        command = ["openssl", "dgst", digest, "-verify", "pub.pem", *opts, "-signature", "sig"]
        command.append("msg")
        expected = b"Verified OK"
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, check=False)
    return result.returncode == 0 and expected in result.stdout


def _key(provider: GcpKmsProvider, name: str, key_type: KeyType, **options: str) -> KeyRef:
    return provider.create_key(name, KeySpec(key_type=key_type, options=options)).ref


@pytest.mark.parametrize(
    ("key_type", "options", "algorithm", "digest", "opts"),
    SIGNING,
    ids=lambda v: v.value if isinstance(v, KeyType) else None,
)
def test_signatures_verify_with_openssl(
    gcp_provider: GcpKmsProvider,
    new_name: Callable[[str], str],
    tmp_path: Path,
    key_type: KeyType,
    options: dict[str, str],
    algorithm: str,
    digest: str,
    opts: list[str],
) -> None:
    ref = _key(gcp_provider, new_name("sig"), key_type, **options)
    signature = gcp_provider.sign(ref, MESSAGE)
    assert signature.algorithm == algorithm
    assert signature.key_version == "1"
    assert signature.key_uri == ref.uri
    pem = gcp_provider.public_key(ref)
    assert _openssl_verifies(tmp_path, pem, MESSAGE, signature.value, digest, opts)
    assert not _openssl_verifies(tmp_path, pem, MESSAGE + b"!", signature.value, digest, opts)
    assert gcp_provider.verify(ref, MESSAGE, signature.value) is True
    assert gcp_provider.verify(ref, MESSAGE + b"!", signature.value) is False
    extra = dict(gcp_provider.describe_key(ref).extra)
    assert extra["algorithm"].startswith(
        ("EC_SIGN", "RSA_SIGN_PSS" if "pss" in algorithm else "RSA_SIGN_PKCS1")
    )


def test_ed25519_signs_the_message_and_openssl_verifies(
    gcp_kms: CloudKmsEmulator,
    gcp_provider: GcpKmsProvider,
    new_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    ref = _key(gcp_provider, new_name("ed"), KeyType.ED25519)
    signature = gcp_provider.sign(ref, MESSAGE)
    assert signature.algorithm == "ed25519"
    assert len(signature.value) == 64
    pem = gcp_provider.public_key(ref)
    assert _openssl_verifies(tmp_path, pem, MESSAGE, signature.value, "ed25519", [])
    assert not _openssl_verifies(tmp_path, pem, MESSAGE + b"!", signature.value, "ed25519", [])
    longest = b"x" * ED25519_DATA_LIMIT
    assert gcp_provider.verify(ref, longest, gcp_provider.sign(ref, longest).value) is True
    with pytest.raises(SignatureError, match="at most 65536 bytes"):
        gcp_provider.sign(ref, longest + b"x")


def test_long_messages_are_signed_as_their_digest(
    gcp_kms: CloudKmsEmulator,
    gcp_provider: GcpKmsProvider,
    new_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    ref = _key(gcp_provider, new_name("long"), KeyType.ECDSA_P384)
    message = b"y" * 200_000  # beyond any request size limit: only the digest travels
    signature = gcp_provider.sign(ref, message)
    pem = gcp_provider.public_key(ref)
    assert _openssl_verifies(tmp_path, pem, message, signature.value, "-sha384", [])


def test_malformed_signatures_are_signature_errors(
    gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    ec_key = _key(gcp_provider, new_name("ec"), KeyType.ECDSA_P256)
    good = gcp_provider.sign(ec_key, MESSAGE).value
    for bad in (b"", b"\x30\x00", good + b"\x00"):
        with pytest.raises(SignatureError):
            gcp_provider.verify(ec_key, MESSAGE, bad)
    ed_key = _key(gcp_provider, new_name("ed"), KeyType.ED25519)
    with pytest.raises(SignatureError, match="64 bytes"):
        gcp_provider.verify(ed_key, MESSAGE, b"\x00" * 63)


def test_rotation_signs_with_the_newest_version_and_old_signatures_verify(
    gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    ref = _key(gcp_provider, new_name("rot"), KeyType.ECDSA_P256)
    old = gcp_provider.sign(ref, MESSAGE)
    rotated = gcp_provider.rotate_key(ref)
    assert rotated.current_version == "2"
    new = gcp_provider.sign(ref, MESSAGE)
    assert (old.key_version, new.key_version) == ("1", "2")
    assert gcp_provider.verify(ref.with_version("1"), MESSAGE, old.value) is True
    assert gcp_provider.verify(ref, MESSAGE, new.value) is True
    assert gcp_provider.public_key(ref.with_version("1")) != gcp_provider.public_key(ref)
    gcp_provider.set_version_state(ref.with_version("1"), KeyState.DISABLED)
    with pytest.raises(KeyDisabled):
        gcp_provider.verify(ref.with_version("1"), MESSAGE, old.value)


def test_a_version_disabled_elsewhere_is_noticed(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    """Another client rotates and disables the cached current version: signing moves on."""
    ref = _key(gcp_provider, new_name("elsewhere"), KeyType.ECDSA_P256)
    assert gcp_provider.sign(ref, MESSAGE).key_version == "1"
    client = gcp_kms.client()
    try:
        created = client.create_crypto_key_version(
            parent=ref.key_id, crypto_key_version=kms.CryptoKeyVersion()
        )
        pending = kms.CryptoKeyVersion.CryptoKeyVersionState.PENDING_GENERATION
        assert created.state == pending  # as the service, the emulator generates asynchronously
        deadline = time.monotonic() + 10
        while client.get_crypto_key_version(name=created.name).state == pending:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        client.update_crypto_key_version(
            crypto_key_version=kms.CryptoKeyVersion(
                name=f"{ref.key_id}/cryptoKeyVersions/1",
                state=kms.CryptoKeyVersion.CryptoKeyVersionState.DISABLED,
            ),
            update_mask={"paths": ["state"]},
        )
    finally:
        client.transport.close()
    assert gcp_provider.sign(ref, MESSAGE).key_version == "2"


def test_public_keys_are_cached_for_their_ttl(
    gcp_kms: CloudKmsEmulator, ring_options: dict[str, str], new_name: Callable[[str], str]
) -> None:
    now = [0.0]
    options = GcpKmsOptions.from_mapping(
        gcp_kms.provider_options(public_key_ttl=60, **ring_options)
    )
    provider = GcpKmsProvider(options, clock=lambda: now[0])
    ref = _key(provider, new_name("ttl"), KeyType.ECDSA_P256)

    def fetched() -> int:
        return sum(
            1 for c in gcp_kms.calls if c.method == "GetPublicKey" and ref.key_id in c.resource
        )

    for _ in range(3):
        assert provider.verify(ref, b"m", provider.sign(ref, b"m").value) is True
    assert fetched() == 1
    now[0] = 59.9
    provider.public_key(ref)
    assert fetched() == 1
    now[0] = 60.0
    provider.public_key(ref)
    assert fetched() == 2
    provider.close()


def test_a_stack_signs_and_verifies(
    gcp_provider: GcpKmsProvider, new_name: Callable[[str], str]
) -> None:
    ref = _key(gcp_provider, new_name("stack"), KeyType.ECDSA_P256)
    with KeyStack(providers={"gcp-kms": gcp_provider}) as stack:
        signature = stack.sign(MESSAGE, key=ref)
        assert stack.verify(MESSAGE, signature, key=ref) is True
        assert stack.verify(MESSAGE + b"!", signature, key=ref) is False
        gcp_provider.rotate_key(ref)
        assert stack.verify(MESSAGE, signature, key=ref) is True  # the version that signed
