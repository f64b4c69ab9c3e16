"""The gcp plugin's hooks, provider construction and credential adaptation."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from aureus_core.datakey import EncryptedDataKey
from aureus_core.errors import CredentialError
from aureus_core.interfaces import Credentials, ProviderSettings
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.plugins import PluginHost
from aureus_core.registry import CredentialSourceRegistry, KeyProviderRegistry
from aureus_core.sensitive import Secret
from aureus_gcp import PROVIDER_ID, GcpKmsProvider, plugin
from aureus_gcp.credentials import SourceCredentials
from aureus_gcp.testing import CloudKmsEmulator

AES = KeySpec(key_type=KeyType.AES_256)
VERSION = "projects/p-1/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/4"


def test_aureus_register_key_providers(gcp_kms: CloudKmsEmulator) -> None:
    registry = KeyProviderRegistry()
    plugin.aureus_register_key_providers(registry)
    provider = registry.get("gcp-kms").factory(ProviderSettings(options=gcp_kms.provider_options()))
    assert isinstance(provider, GcpKmsProvider)
    assert provider.options.endpoint == gcp_kms.endpoint
    provider.close()


def test_aureus_register_credential_sources() -> None:
    registry = CredentialSourceRegistry()
    plugin.aureus_register_credential_sources(registry)
    for name in ("gcp-adc", "gcp-service-account", "gcp-workload-identity"):
        assert registry.get(name).description


def test_the_entry_point_loads_the_plugin() -> None:
    host = PluginHost()
    assert "gcp-kms" in host.key_providers
    assert "gcp-workload-identity" in host.credential_sources


class _TokenSource:
    """A credential source of no gcp-* kind: a bearer token in its values."""

    name = "static-token"

    def __init__(self, values: dict[str, Secret[str]]) -> None:
        self.values = values
        self.calls = 0

    def get_credentials(self) -> Credentials:
        self.calls += 1
        return Credentials(
            kind="bearer",
            values=self.values,
            expires_at=datetime.now(timezone.utc) + timedelta(hours=1),
        )


@pytest.fixture(scope="module")
def local_kms():
    with CloudKmsEmulator(transport="local") as emulator:
        yield emulator


@pytest.mark.parametrize("value_name", ["access_token", "token"])
def test_a_generic_source_with_a_token_value_works(
    local_kms: CloudKmsEmulator, ring_options: dict[str, str], value_name: str
) -> None:
    token = "generic-bearer-" + os.urandom(8).hex()
    source = _TokenSource({value_name: Secret(token)})
    provider = plugin.create_provider(
        ProviderSettings(options=local_kms.provider_options(**ring_options), credentials=source)
    )
    provider.create_key(f"generic-{os.urandom(3).hex()}", AES)
    provider.list_keys()
    assert local_kms.last_authorization() == token
    assert source.calls == 1  # refreshed once, then reused until it is due
    provider.close()


def test_a_source_without_a_token_is_a_credential_error(
    local_kms: CloudKmsEmulator, ring_options: dict[str, str]
) -> None:
    source = _TokenSource({"password": Secret("not-a-token-value")})
    provider = plugin.create_provider(
        ProviderSettings(options=local_kms.provider_options(**ring_options), credentials=source)
    )
    with pytest.raises(CredentialError, match="access_token"):
        provider.describe_key(KeyRef.parse("gcp-kms://anything"))
    assert repr(SourceCredentials(source)) == "SourceCredentials(source='static-token')"
    provider.close()


def test_application_default_credentials_are_looked_up_on_the_first_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Configuring a provider needs no network and no credentials; the first call does."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    provider = plugin.create_provider(
        ProviderSettings(options={"project": "p-1", "location": "global", "key_ring": "r"})
    )
    assert provider.options.channel == "tls"
    with pytest.raises(CredentialError) as raised:
        provider.describe_key(KeyRef.parse("gcp-kms://k"))
    assert raised.value.code == "DefaultCredentialsError"
    provider.close()


def test_close_twice_and_reconnect(gcp_provider: GcpKmsProvider) -> None:
    ref = gcp_provider.create_key(f"closing-{os.urandom(3).hex()}", AES).ref
    gcp_provider.close()
    gcp_provider.close()
    assert gcp_provider.describe_key(ref).uri == ref.uri  # a new channel
    assert "key_ring=" in repr(gcp_provider)


def test_owner_of() -> None:
    provider = GcpKmsProvider()
    mine = EncryptedDataKey(
        provider_id=PROVIDER_ID, provider_info=VERSION.encode(), ciphertext=b"c"
    )
    owner = provider.owner_of(mine)
    assert owner == KeyRef(scheme="gcp-kms", key_id=VERSION.rsplit("/", 2)[0], version="4")
    for edk in (
        EncryptedDataKey(provider_id="aws-kms", provider_info=VERSION.encode(), ciphertext=b"c"),
        EncryptedDataKey(
            provider_id=PROVIDER_ID,
            provider_info=VERSION.rsplit("/", 2)[0].encode(),
            ciphertext=b"c",
        ),
        EncryptedDataKey(provider_id=PROVIDER_ID, provider_info=b"\xff\xfe", ciphertext=b"c"),
        EncryptedDataKey(provider_id=PROVIDER_ID, provider_info=b"k", ciphertext=b"c"),
    ):
        assert provider.owner_of(edk) is None
    provider.close()  # never connected: nothing to close
