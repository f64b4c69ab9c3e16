"""Aureus plugin for Azure Key Vault and Managed HSM (scheme ``azure-kv``).

Install with ``pip install 'aureus-kms[azure]'``.  See docs/azure.md.

The provider is imported on first access, so importing this package (which
pytest does for :mod:`aureus_azure.testing.pytest_plugin`) needs no azure SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .naming import PROVIDER_ID, SCHEME

if TYPE_CHECKING:
    from .provider import AzureKeyVaultProvider

__all__ = ["PROVIDER_ID", "SCHEME", "AzureKeyVaultProvider"]


def __getattr__(name: str) -> Any:
    if name == "AzureKeyVaultProvider":
        from .provider import AzureKeyVaultProvider

        return AzureKeyVaultProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
