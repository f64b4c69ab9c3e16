"""Signing via the emulator: DER ECDSA that openssl verifies, RSA PSS and PKCS#1 v1.5, caching."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from aureus_azure import AzureKeyVaultProvider
from aureus_azure.testing import KeyVaultEmulator
from aureus_core import KeyStack
from aureus_core.errors import ConfigError, KeyDisabled, SignatureError
from aureus_core.keys import KeySpec, KeyState, KeyType
from aureus_core.testing.clock import FakeClock

MESSAGE = b"signed by Azure Key Vault through Aureus"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@pytest.mark.parametrize(
    ("key_type", "digest", "algorithm"),
    [
        (KeyType.ECDSA_P256, "-sha256", "ecdsa-p256-sha256"),
        (KeyType.ECDSA_P384, "-sha384", "ecdsa-p384-sha384"),
    ],
)
def test_ecdsa_signature_is_der_that_openssl_verifies(
    vault_provider: AzureKeyVaultProvider,
    tmp_path: Path,
    key_type: KeyType,
    digest: str,
    algorithm: str,
) -> None:
    ref = vault_provider.create_key(f"ec-{os.urandom(4).hex()}", KeySpec(key_type=key_type)).ref
    with KeyStack(providers={"azure-kv": vault_provider}) as stack:
        signature = stack.sign(MESSAGE, key=ref)
    assert signature.algorithm == algorithm
    assert signature.value[0] == 0x30  # DER SEQUENCE, not Key Vault's raw r || s
    (tmp_path / "pub.pem").write_bytes(vault_provider.public_key(ref))
    (tmp_path / "sig.der").write_bytes(signature.value)
    (tmp_path / "msg").write_bytes(MESSAGE)
    command = ["openssl", "dgst", digest, "-verify", "pub.pem", "-signature", "sig.der", "msg"]
    good = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert good.returncode == 0, good.stderr
    assert "Verified OK" in good.stdout
    (tmp_path / "msg").write_bytes(MESSAGE + b"!")
    bad = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert bad.returncode != 0
    assert "Verified OK" not in bad.stdout


@pytest.mark.parametrize(
    ("option", "algorithm", "pad"),
    [
        (None, "rsa-pss-sha256", padding.PSS(padding.MGF1(hashes.SHA256()), 32)),
        ("PS256", "rsa-pss-sha256", padding.PSS(padding.MGF1(hashes.SHA256()), 32)),
        ("RS256", "rsa-pkcs1v15-sha256", padding.PKCS1v15()),
    ],
)
def test_rsa_signing_algorithm_is_chosen_by_a_key_option(
    vault_provider: AzureKeyVaultProvider,
    option: str | None,
    algorithm: str,
    pad: padding.AsymmetricPadding,
) -> None:
    options = {"algorithm": option} if option else {}
    metadata = vault_provider.create_key(
        f"rsa-{os.urandom(4).hex()}", KeySpec(key_type=KeyType.RSA_2048, options=options)
    )
    assert dict(metadata.extra)["signing-algorithm"] == (option or "PS256")
    signature = vault_provider.sign(metadata.ref, MESSAGE)
    assert signature.algorithm == algorithm
    public = vault_provider.public_key(metadata.ref)
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = load_pem_public_key(public)
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature.value, MESSAGE, pad, hashes.SHA256())  # raises if wrong
    assert vault_provider.verify(metadata.ref, MESSAGE, signature.value) is True
    assert vault_provider.verify(metadata.ref, MESSAGE + b".", signature.value) is False
    with pytest.raises(SignatureError):
        vault_provider.verify(metadata.ref, MESSAGE, signature.value[:-1])


def test_unknown_rsa_algorithm_is_refused(vault_provider: AzureKeyVaultProvider) -> None:
    with pytest.raises(ConfigError, match="PS256 or RS256"):
        vault_provider.create_key(
            "bad-alg", KeySpec(key_type=KeyType.RSA_2048, options={"algorithm": "PS512"})
        )


def test_public_key_is_cached_for_the_ttl(azure_key_vault: KeyVaultEmulator) -> None:
    clock = FakeClock()
    provider = azure_key_vault.provider(public_key_ttl=60.0, clock=clock.monotonic)
    ref = provider.create_key(
        f"cached-{os.urandom(4).hex()}", KeySpec(key_type=KeyType.ECDSA_P256)
    ).ref
    name = ref.key_id.split("/")[-1]

    def gets() -> int:
        return sum(1 for m, p in azure_key_vault.requests if m == "GET" and p == f"/keys/{name}")

    signature = provider.sign(ref, MESSAGE)
    before = gets()
    for _ in range(5):
        assert provider.verify(ref, MESSAGE, signature.value) is True
    assert gets() == before  # served from the cache
    clock.advance(61)
    assert provider.verify(ref, MESSAGE, signature.value) is True
    assert gets() == before + 1  # the TTL passed: fetched again
    provider.close()


def test_disabled_version_refuses_sign_and_verify(vault_provider: AzureKeyVaultProvider) -> None:
    ref = vault_provider.create_key(
        f"disable-{os.urandom(4).hex()}", KeySpec(key_type=KeyType.ECDSA_P256)
    ).ref
    old = vault_provider.sign(ref, MESSAGE)
    vault_provider.rotate_key(ref)
    pinned = ref.with_version(old.key_version)
    with pytest.raises(ConfigError, match="rotate"):
        vault_provider.set_version_state(
            ref.with_version(vault_provider.describe_key(ref).current_version), KeyState.DISABLED
        )
    vault_provider.set_version_state(pinned, KeyState.DISABLED)
    with pytest.raises(KeyDisabled, match=old.key_version):
        vault_provider.verify(pinned, MESSAGE, old.value)
    with pytest.raises(KeyDisabled) as refused:
        vault_provider.sign(pinned, MESSAGE)
    assert refused.value.code == "KeyDisabled"
