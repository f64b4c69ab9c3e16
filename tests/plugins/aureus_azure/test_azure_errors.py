"""Error mapping, bounded retries, key management details and URI parsing."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import pytest

from aureus_azure import AzureKeyVaultProvider
from aureus_azure.naming import AzureKey, parse, parse_kid
from aureus_azure.rotation_policy import iso_duration, parse_duration
from aureus_azure.testing import EmulatorCredential, KeyVaultEmulator
from aureus_core.context import EncryptionContext
from aureus_core.errors import (
    ConfigError,
    CredentialError,
    KeyExists,
    KeyNotFound,
    ProviderUnavailable,
    Throttled,
    UnsupportedOperation,
)
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.rotation import RotationPolicy


def _ec_key(provider: AzureKeyVaultProvider) -> KeyRef:
    return provider.create_key(
        f"err-{os.urandom(4).hex()}", KeySpec(key_type=KeyType.ECDSA_P256)
    ).ref


def test_503_is_provider_unavailable_after_bounded_retries(
    azure_key_vault: KeyVaultEmulator,
) -> None:
    provider = azure_key_vault.provider(retry_total=2)
    ref = _ec_key(provider)
    before = len(azure_key_vault.requests)
    azure_key_vault.inject_fault(503)
    started = time.monotonic()
    try:
        with pytest.raises(ProviderUnavailable, match="503") as failure:
            provider.rotate_key(ref)
    finally:
        azure_key_vault.clear_faults()
    assert time.monotonic() - started < 2.0
    assert failure.value.code == "ServiceUnavailable"
    assert failure.value.provider == "azure-kv"
    assert len(azure_key_vault.requests) - before == 3  # the first try and two retries
    provider.close()


def test_a_transient_503_is_retried_away(azure_key_vault: KeyVaultEmulator) -> None:
    provider = azure_key_vault.provider(retry_total=2)
    ref = _ec_key(provider)
    azure_key_vault.inject_fault(503, count=2)
    assert provider.rotate_key(ref).current_version
    provider.close()


def test_429_is_throttled(azure_key_vault: KeyVaultEmulator) -> None:
    provider = azure_key_vault.provider(retry_total=0)
    ref = _ec_key(provider)
    azure_key_vault.inject_fault(429)
    try:
        with pytest.raises(Throttled) as failure:
            provider.describe_key(ref)
    finally:
        azure_key_vault.clear_faults()
    assert failure.value.code == "Throttled"


def test_unreachable_vault_is_provider_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = AzureKeyVaultProvider(
        credential=EmulatorCredential("unused-token-value"),
        vault="nowhere.vault.azure.net",
        endpoints={"nowhere.vault.azure.net": f"https://127.0.0.1:{port}"},
        retry_total=1,
        retry_backoff_factor=0.01,
        connection_timeout=1,
    )
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        provider.describe_key(KeyRef.parse("azure-kv://some-key"))
    assert time.monotonic() - started < 3.0


def test_a_refused_token_is_a_credential_error(azure_key_vault: KeyVaultEmulator) -> None:
    provider = azure_key_vault.provider(credential=EmulatorCredential("a-wrong-token-value"))
    with pytest.raises(CredentialError, match="401"):
        provider.describe_key(KeyRef.parse("azure-kv://whatever"))


def test_missing_key_is_key_not_found_with_the_service_code(
    vault_provider: AzureKeyVaultProvider,
) -> None:
    with pytest.raises(KeyNotFound) as failure:
        vault_provider.describe_key(KeyRef.parse("azure-kv://no-such-key"))
    assert failure.value.code == "KeyNotFound"
    assert "no-such-key" in str(failure.value)


def test_create_refuses_an_existing_name_and_aes_in_a_vault(
    vault_provider: AzureKeyVaultProvider,
) -> None:
    ref = _ec_key(vault_provider)
    name = ref.key_id.split("/")[-1]
    with pytest.raises(KeyExists):
        vault_provider.create_key(name, KeySpec(key_type=KeyType.ECDSA_P256))
    assert len(vault_provider.describe_key(ref).versions) == 1  # no version was added
    with pytest.raises(UnsupportedOperation, match="Managed HSM"):
        vault_provider.create_key("aes-key", KeySpec(key_type=KeyType.AES_256))
    with pytest.raises(ConfigError, match="purpose"):
        vault_provider.create_key(
            "ec-wrap", KeySpec(key_type=KeyType.ECDSA_P256, options={"purpose": "wrap"})
        )
    with pytest.raises(ConfigError, match="unknown key option"):
        vault_provider.create_key("opt", KeySpec(key_type=KeyType.ECDSA_P256, options={"x": "1"}))


def test_metadata_keeps_description_and_labels(hsm_provider: AzureKeyVaultProvider) -> None:
    metadata = hsm_provider.create_key(
        f"labelled-{os.urandom(4).hex()}",
        KeySpec(key_type=KeyType.AES_256, description="payments", labels={"team": "core"}),
    )
    assert metadata.description == "payments"
    assert dict(metadata.labels) == {"team": "core"}
    assert dict(metadata.extra)["kty"] == "oct-HSM"
    assert metadata.key_type is KeyType.AES_256


def test_delete_needs_confirmation(vault_provider: AzureKeyVaultProvider) -> None:
    ref = _ec_key(vault_provider)
    with pytest.raises(ConfigError, match="confirm"):
        vault_provider.delete_key(ref)
    assert vault_provider.describe_key(ref).uri == ref.uri
    vault_provider.delete_key(ref, confirm=True)
    with pytest.raises(KeyNotFound):
        vault_provider.describe_key(ref)


def test_rotation_policy_maps_onto_key_vault(vault_provider: AzureKeyVaultProvider) -> None:
    ref = _ec_key(vault_provider)
    assert vault_provider.get_rotation_policy(ref) is None  # the default only notifies
    policy = RotationPolicy(interval=timedelta(days=30), max_age=timedelta(days=180))
    stored = vault_provider.set_rotation_policy(ref, policy)
    assert stored == policy
    assert vault_provider.get_rotation_policy(ref) == policy


def test_iso_durations() -> None:
    assert iso_duration(timedelta(days=90)) == "P90D"
    assert iso_duration(timedelta(hours=36)) == "PT129600S"
    assert parse_duration("P1Y2M3DT4H5M6S") == timedelta(
        days=365 + 60 + 3, hours=4, minutes=5, seconds=6
    )
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration("P")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("azure-kv://v1.vault.azure.net/keys/k1", AzureKey(host="v1.vault.azure.net", name="k1")),
        (
            "azure-kv://v1.vault.azure.net/keys/k1/abc123",
            AzureKey(host="v1.vault.azure.net", name="k1", version="abc123"),
        ),
        (
            "azure-kv://h.managedhsm.azure.net/keys/k1?version=abc",
            AzureKey(host="h.managedhsm.azure.net", name="k1", version="abc"),
        ),
        ("azure-kv://k1", AzureKey(host="default.vault.azure.net", name="k1")),
    ],
)
def test_key_uris_parse(uri: str, expected: AzureKey) -> None:
    key = parse(uri, "default.vault.azure.net")
    assert key == expected
    assert parse(key.ref, None) == key
    assert key.ref.version == expected.version
    assert key.managed_hsm is (".managedhsm." in expected.host)


@pytest.mark.parametrize(
    "uri",
    [
        "azure-kv://v1.vault.azure.net/secrets/k1",
        "azure-kv://v1.vault.azure.net/keys/k_1",
        "azure-kv://v1.vault.azure.net/keys/k1/v1?version=v2",
        "gcp-kms://v1.vault.azure.net/keys/k1",
    ],
)
def test_bad_key_uris_are_config_errors(uri: str) -> None:
    with pytest.raises(ConfigError):
        parse(uri, "default.vault.azure.net")


def test_bare_names_need_a_default_vault() -> None:
    with pytest.raises(ConfigError, match="vault"):
        parse("azure-kv://k1", None)


def test_kid_round_trip() -> None:
    key = AzureKey(host="v1.vault.azure.net", name="k1", version="0a1b")
    assert key.kid == "https://v1.vault.azure.net/keys/k1/0a1b"
    assert parse_kid(key.kid) == key
    assert parse_kid("http://v1.vault.azure.net/keys/k1/0a1b") is None
    assert parse_kid("https://v1.vault.azure.net/secrets/k1") is None


def test_wrap_on_a_missing_version_is_key_not_found(vault_provider: AzureKeyVaultProvider) -> None:
    ref = vault_provider.create_key(
        f"wrapper-{os.urandom(4).hex()}",
        KeySpec(key_type=KeyType.RSA_2048, options={"purpose": "wrap"}),
    ).ref
    with pytest.raises(KeyNotFound):
        vault_provider.wrap(ref.with_version("ffff"), os.urandom(32), EncryptionContext())


def test_a_stack_raises_provider_unavailable_on_503(
    azure_key_vault: KeyVaultEmulator, azure_kv_provider: AzureKeyVaultProvider
) -> None:
    """Through KeyStack (and its circuit breaker) with the shipped pytest fixtures."""
    from aureus_core import KeyStack

    ref = azure_kv_provider.create_key(
        f"stack-503-{os.urandom(4).hex()}",
        KeySpec(key_type=KeyType.RSA_2048, options={"purpose": "wrap"}),
    ).ref
    with KeyStack(providers={"azure-kv": azure_kv_provider}) as stack:
        message = stack.encrypt(b"payload", keys=[ref])
        azure_key_vault.inject_fault(503)
        started = time.monotonic()
        try:
            with pytest.raises(ProviderUnavailable):
                stack.encrypt(b"payload", keys=[ref])
        finally:
            azure_key_vault.clear_faults()
        assert time.monotonic() - started < 2.0
        assert stack.decrypt(message) == b"payload"
