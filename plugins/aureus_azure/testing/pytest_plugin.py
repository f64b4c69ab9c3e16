"""pytest fixtures for testing against an emulated Azure Key Vault (entry point ``pytest11``).

- ``azure_key_vault``: a running :class:`~aureus_azure.testing.KeyVaultEmulator`
  for a vault (RSA and EC keys), shared by the session;
- ``azure_managed_hsm``: the same for a Managed HSM (also ``oct-HSM`` keys);
- ``azure_kv_provider``: an ``azure-kv`` provider pointed at ``azure_key_vault``,
  with small retry bounds, closed after the test.

This module is loaded into every pytest run where Aureus is installed, so it
imports the azure packages only inside the fixtures: without the ``azure``
extra, using a fixture skips the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def _emulator(kind: str) -> Iterator[Any]:
    pytest.importorskip(
        "azure.keyvault.keys", reason="needs the azure extra: pip install 'aureus-kms[azure]'"
    )
    from aureus_azure.testing.emulator import KeyVaultEmulator

    with KeyVaultEmulator(kind=kind) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def azure_key_vault() -> Iterator[Any]:
    """An emulated Key Vault on https://127.0.0.1 (see ``.provider_options()``)."""
    yield from _emulator("vault")


@pytest.fixture(scope="session")
def azure_managed_hsm() -> Iterator[Any]:
    """An emulated Managed HSM on https://127.0.0.1."""
    yield from _emulator("managedhsm")


@pytest.fixture
def azure_kv_provider(azure_key_vault: Any) -> Iterator[Any]:
    """An ``azure-kv`` provider for the emulated vault (retries bounded to a few ms)."""
    azure_key_vault.clear_faults()
    provider = azure_key_vault.provider()
    try:
        yield provider
    finally:
        provider.close()
