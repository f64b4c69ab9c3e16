"""Registration through the entry point, provider options, and the lazy pytest plugin."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aureus_azure import AzureKeyVaultProvider
from aureus_azure.plugin import create_provider
from aureus_core.errors import ConfigError
from aureus_core.interfaces import ProviderSettings
from aureus_core.keys import KeyType
from aureus_core.plugins import PluginHost


def test_the_entry_point_registers_the_scheme_and_sources() -> None:
    host = PluginHost()
    assert "azure-kv" in host.key_providers
    for name in (
        "azure-default",
        "azure-workload-identity",
        "azure-client-secret",
        "azure-managed-identity",
    ):
        assert name in host.credential_sources


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        create_provider(ProviderSettings(options={"vault_url": "x"}))
    with pytest.raises(ConfigError, match="retry_total"):
        create_provider(ProviderSettings(options={"retry_total": -1}))
    with pytest.raises(ConfigError, match="endpoints"):
        create_provider(ProviderSettings(options={"endpoints": ["x"]}))


def test_key_types_follow_the_default_vault() -> None:
    vault = create_provider(ProviderSettings(options={"vault": "a.vault.azure.net"}))
    hsm = create_provider(ProviderSettings(options={"vault": "https://b.managedhsm.azure.net/"}))
    assert isinstance(vault, AzureKeyVaultProvider)
    assert KeyType.AES_256 not in vault.key_types
    assert KeyType.AES_256 in hsm.key_types
    assert hsm.vault == "b.managedhsm.azure.net"
    assert KeyType.ED25519 not in hsm.key_types


def test_the_pytest_plugin_imports_no_azure_package() -> None:
    code = (
        "import sys, aureus_azure.testing.pytest_plugin\n"
        "loaded = [m for m in sys.modules if m == 'azure' or m.startswith('azure.')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
