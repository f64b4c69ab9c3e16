"""The example provider proves itself with Aureus's conformance kit."""

from __future__ import annotations

import pytest
from aureus_example import MemoryKeyProvider

from aureus_core.testing import KeyProviderContract


class TestMemoryKeyProvider(KeyProviderContract):
    """The whole provider contract, run against the example provider."""

    @pytest.fixture
    def provider(self) -> MemoryKeyProvider:
        """A fresh, empty provider for each test."""
        return MemoryKeyProvider()
