"""Shared fixtures for the azure plugin tests (the emulators come from aureus_azure.testing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("azure.keyvault.keys")

from aureus_azure import AzureKeyVaultProvider
from aureus_azure.testing import KeyVaultEmulator


@pytest.fixture
def vault_provider(azure_key_vault: KeyVaultEmulator) -> Iterator[AzureKeyVaultProvider]:
    azure_key_vault.clear_faults()
    provider: AzureKeyVaultProvider = azure_key_vault.provider()
    yield provider
    provider.close()


@pytest.fixture
def hsm_provider(azure_managed_hsm: KeyVaultEmulator) -> Iterator[AzureKeyVaultProvider]:
    azure_managed_hsm.clear_faults()
    provider: AzureKeyVaultProvider = azure_managed_hsm.provider()
    yield provider
    provider.close()
