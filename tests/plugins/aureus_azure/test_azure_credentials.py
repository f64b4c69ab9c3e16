"""The azure credential sources, offline: fake Entra token and managed-identity endpoints."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aureus_azure.credentials import (
    AzureCredentialSource,
    client_secret_source,
    default_source,
    managed_identity_source,
    workload_identity_source,
)
from aureus_azure.plugin import create_provider
from aureus_azure.testing import FakeEntra, FakeManagedIdentity, KeyVaultEmulator
from aureus_azure.testing.emulator import TENANT
from aureus_core import KeyStack
from aureus_core.errors import ConfigError, CredentialError
from aureus_core.interfaces import ProviderSettings
from aureus_core.keys import KeySpec, KeyType
from aureus_core.testing.credential_contract import CredentialSourceContract

CLIENT_SECRET = "client-secret-that-must-not-leak"
OTHER_SOURCES = [
    "workload-identity",
    "managed-identity",
    "shared-token-cache",
    "cli",
    "developer-cli",
    "powershell",
    "visual-studio-code",
    "interactive-browser",
]


@pytest.fixture
def entra() -> Iterator[FakeEntra]:
    with FakeEntra() as fake:
        yield fake


def _entra_options(entra: FakeEntra) -> dict[str, object]:
    return {
        "authority": entra.authority,
        "connection_verify": entra.ca_file,
        "disable_instance_discovery": True,
    }


class TestClientSecretSource(CredentialSourceContract):
    @pytest.fixture
    def credential_source(self, entra: FakeEntra, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setenv("AUREUS_TEST_AZURE_SECRET", CLIENT_SECRET)
        return client_secret_source(
            {
                "tenant_id": "tenant-one",
                "client_id": "client-one",
                "client_secret_env": "AUREUS_TEST_AZURE_SECRET",
                **_entra_options(entra),
            }
        )

    @pytest.fixture
    def held_secrets(self) -> list[str]:
        return [CLIENT_SECRET]

    def test_the_secret_goes_to_the_token_endpoint(self, credential_source, entra) -> None:
        credentials = credential_source.get_credentials()
        assert credentials.kind == "azure"
        assert credentials.principal == "client-one"
        assert credentials.values["token"].reveal() == entra.issued[-1]
        assert credentials.expires_at is not None
        request = entra.token_requests[-1]
        assert request["client_id"] == "client-one"
        assert request["client_secret"] == CLIENT_SECRET
        assert request["scope"] == "https://vault.azure.net/.default"
        assert CLIENT_SECRET not in repr(credential_source)


class TestWorkloadIdentitySource(CredentialSourceContract):
    @pytest.fixture
    def token_file(self, tmp_path: Path) -> Path:
        path = tmp_path / "azure-identity-token"
        path.write_text("projected-service-account-token-1\n")
        return path

    @pytest.fixture
    def credential_source(
        self, entra: FakeEntra, token_file: Path, monkeypatch: pytest.MonkeyPatch
    ):
        monkeypatch.setenv("AZURE_TENANT_ID", "tenant-two")
        monkeypatch.setenv("AZURE_CLIENT_ID", "client-two")
        monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
        return workload_identity_source(_entra_options(entra))

    @pytest.fixture
    def held_secrets(self, token_file: Path) -> list[str]:
        return [token_file.read_text().strip()]  # the federated token it presents

    def test_the_token_file_is_re_read(self, credential_source, entra, token_file) -> None:
        entra.expires_in = 0  # every token is already due, so each call asks again
        credential_source.get_credentials()
        token_file.write_text("projected-service-account-token-2\n")
        credential_source.get_credentials()
        assertions = [r.get("client_assertion") for r in entra.token_requests]
        assert assertions[-2:] == [
            "projected-service-account-token-1",
            "projected-service-account-token-2",
        ]
        request = entra.token_requests[-1]
        assert request["client_id"] == "client-two"
        assert request["client_assertion_type"].endswith("jwt-bearer")

    def test_a_missing_token_file_is_a_credential_error(
        self, credential_source, token_file
    ) -> None:
        token_file.unlink()
        with pytest.raises(CredentialError, match="token file"):
            credential_source.get_credentials()

    def test_a_token_file_grown_past_64_kib_is_not_read_whole(
        self, credential_source, token_file
    ) -> None:
        """Whoever can write the token file cannot make each refresh read without bound."""
        token_file.write_bytes(b"x" * (64 * 1024 + 1))
        with pytest.raises(CredentialError) as refused:
            credential_source.get_credentials()
        assert f"its token file {token_file} is larger than 65536 bytes" in str(refused.value)
        token_file.write_bytes(b"\xff\xfe not text")
        with pytest.raises(CredentialError, match="is not text, so it is not a token"):
            credential_source.get_credentials()

    def test_missing_settings_are_config_errors(self, monkeypatch) -> None:
        monkeypatch.setenv("AZURE_TENANT_ID", "tenant-two")
        monkeypatch.delenv("AZURE_CLIENT_ID", raising=False)
        with pytest.raises(ConfigError, match="client_id"):
            workload_identity_source({})


class TestManagedIdentitySource(CredentialSourceContract):
    @pytest.fixture
    def identity(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeManagedIdentity]:
        with FakeManagedIdentity() as fake:
            for name, value in fake.environment().items():
                monkeypatch.setenv(name, value)
            yield fake

    @pytest.fixture
    def credential_source(self, identity: FakeManagedIdentity):
        return managed_identity_source({"client_id": "user-assigned-client"})

    @pytest.fixture
    def held_secrets(self, identity: FakeManagedIdentity) -> list[str]:
        return [identity.header]  # IDENTITY_HEADER, which the endpoint requires

    def test_the_client_id_is_sent(self, credential_source, identity) -> None:
        credentials = credential_source.get_credentials()
        assert credentials.principal == "user-assigned-client"
        assert identity.requests[-1]["client_id"] == "user-assigned-client"
        assert identity.requests[-1]["resource"] == "https://vault.azure.net"

    def test_a_client_id_is_required(self) -> None:
        with pytest.raises(ConfigError, match="client_id"):
            managed_identity_source({})


class TestDefaultSource(CredentialSourceContract):
    @pytest.fixture
    def credential_source(self, entra: FakeEntra, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.setenv("AZURE_TENANT_ID", "tenant-three")
        monkeypatch.setenv("AZURE_CLIENT_ID", "client-three")
        monkeypatch.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
        monkeypatch.setenv("AZURE_AUTHORITY_HOST", entra.authority)
        return default_source(
            {
                "exclude": OTHER_SOURCES,
                "connection_verify": entra.ca_file,
                "disable_instance_discovery": True,
            }
        )

    @pytest.fixture
    def held_secrets(self) -> list[str]:
        return [CLIENT_SECRET]  # AZURE_CLIENT_SECRET

    def test_the_environment_credential_is_used(self, credential_source, entra) -> None:
        credential_source.get_credentials()
        assert entra.token_requests[-1]["client_id"] == "client-three"

    def test_unknown_excludes_are_refused(self) -> None:
        with pytest.raises(ConfigError, match="exclude"):
            default_source({"exclude": ["everything"]})


def test_failures_are_credential_errors_without_the_secret(
    entra: FakeEntra, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUREUS_TEST_AZURE_SECRET", raising=False)
    source = client_secret_source(
        {
            "tenant_id": "t",
            "client_id": "c",
            "client_secret_env": "AUREUS_TEST_AZURE_SECRET",
            **_entra_options(entra),
        }
    )
    with pytest.raises(CredentialError, match="AUREUS_TEST_AZURE_SECRET"):
        source.get_credentials()
    with pytest.raises(ConfigError, match="unknown option"):
        client_secret_source({"tenant_id": "t", "client_id": "c", "client_secret": CLIENT_SECRET})


def test_a_stack_uses_a_named_credential_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """``credentials = "<name>"`` hands the source's TokenCredential to the provider."""
    token = "token-issued-by-fake-entra-" + os.urandom(6).hex()
    with FakeEntra(token=token) as fake, KeyVaultEmulator(token=token) as vault:
        monkeypatch.setenv("AUREUS_TEST_AZURE_SECRET", CLIENT_SECRET)
        config = {
            "providers": {
                "azure-kv": {
                    "credentials": "kv-principal",
                    "retry_total": 0,
                    **vault.provider_options(),
                }
            },
            "credentials": {
                "kv-principal": {
                    "source": "azure-client-secret",
                    "tenant_id": TENANT,  # the tenant the vault's challenge names
                    "client_id": "client-four",
                    "client_secret_env": "AUREUS_TEST_AZURE_SECRET",
                    **_entra_options(fake),
                }
            },
        }
        with KeyStack.from_dict(config) as stack:
            provider = stack.provider("azure-kv")
            created = provider.create_key("from-config", KeySpec(key_type=KeyType.ECDSA_P256))
            signature = stack.sign(b"configured", key=created.ref)
            assert stack.verify(b"configured", signature, key=created.ref) is True
        assert fake.token_requests[-1]["client_id"] == "client-four"


def test_a_generic_source_with_a_token_value_works(azure_key_vault: KeyVaultEmulator) -> None:
    class TokenSource:
        name = "static-token"

        def get_credentials(self):
            token = azure_key_vault.credential().get_token("x")
            from datetime import datetime, timezone

            from aureus_core.interfaces import Credentials
            from aureus_core.sensitive import Secret

            return Credentials(
                kind="bearer",
                values={"token": Secret(token.token)},
                expires_at=datetime.fromtimestamp(token.expires_on, timezone.utc),
            )

    provider = create_provider(
        ProviderSettings(options=azure_key_vault.provider_options(), credentials=TokenSource())
    )
    created = provider.create_key(
        f"generic-{os.urandom(3).hex()}", KeySpec(key_type=KeyType.ECDSA_P256)
    )
    assert provider.describe_key(created.ref).uri == created.uri
    provider.close()


def test_source_reprs_name_no_secret() -> None:
    source = AzureCredentialSource("azure-test", lambda: None, principal="p")  # type: ignore[arg-type,return-value]
    assert repr(source) == "AzureCredentialSource(name='azure-test', principal='p')"
