"""Shared fixtures for the gcp plugin tests (the emulator comes from aureus_gcp.testing).

Every test works in its own key ring of the session's emulator, so tests
never see each other's keys; ``gcp_kms`` (the shipped fixture) clears faults
and policies between tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("google.cloud.kms")

from aureus_gcp import GcpKmsProvider
from aureus_gcp.testing import CloudKmsEmulator

PROJECT = "aureus-tests"
LOCATION = "global"


@pytest.fixture
def key_ring() -> str:
    """A key ring ID no other test uses."""
    return f"ring-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def ring_options(key_ring: str) -> dict[str, str]:
    """Provider options naming the test's key ring as the default for short names."""
    return {"project": PROJECT, "location": LOCATION, "key_ring": key_ring}


@pytest.fixture
def make_gcp_provider(
    gcp_kms: CloudKmsEmulator, ring_options: dict[str, str]
) -> Iterator[Callable[..., GcpKmsProvider]]:
    """Build providers on the session emulator, in the test's key ring (closed afterwards)."""
    made: list[GcpKmsProvider] = []

    def make(**overrides: Any) -> GcpKmsProvider:
        provider: GcpKmsProvider = gcp_kms.provider(**{**ring_options, **overrides})
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


@pytest.fixture
def gcp_provider(make_gcp_provider: Callable[..., GcpKmsProvider]) -> GcpKmsProvider:
    """A provider on the session emulator, in the test's own key ring."""
    return make_gcp_provider()


@pytest.fixture
def new_name() -> Callable[[str], str]:
    """Make key IDs no other test uses: ``new_name("prefix")``."""

    def make(prefix: str = "key") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make
