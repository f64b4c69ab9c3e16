"""Registers the ``example`` key provider with Aureus."""

from __future__ import annotations

from aureus_core import KeyProviderRegistry, ProviderSettings, hookimpl

from .provider import MemoryKeyProvider


def _create(settings: ProviderSettings) -> MemoryKeyProvider:
    return MemoryKeyProvider()


@hookimpl
def aureus_register_key_providers(registry: KeyProviderRegistry) -> None:
    """Register the in-memory provider under the ``example`` scheme."""
    registry.register("example", _create, description="in-memory keys (example plugin)")
