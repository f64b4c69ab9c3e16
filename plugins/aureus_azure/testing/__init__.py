"""Test helpers for the azure plugin: a Key Vault / Managed HSM emulator, fake identity endpoints.

The helpers need the ``azure`` extra and are imported on first access, so the
pytest plugin in this package loads without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .emulator import MANAGED_HSM, VAULT, EmulatorCredential, KeyVaultEmulator
    from .identity import FakeEntra, FakeManagedIdentity

_EXPORTS = {
    "MANAGED_HSM": ".emulator",
    "VAULT": ".emulator",
    "EmulatorCredential": ".emulator",
    "KeyVaultEmulator": ".emulator",
    "FakeEntra": ".identity",
    "FakeManagedIdentity": ".identity",
}
__all__ = [
    "MANAGED_HSM",
    "VAULT",
    "EmulatorCredential",
    "FakeEntra",
    "FakeManagedIdentity",
    "KeyVaultEmulator",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
