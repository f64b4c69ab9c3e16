"""The Aureus provider conformance kit, run against the local provider."""

from __future__ import annotations

from pathlib import Path

import pytest

from aureus_core.testing.provider_contract import KeyProviderContract
from aureus_local import LocalKeyProvider


class TestLocalProviderContract(KeyProviderContract):
    """Every contract test, on a fresh key-file keystore."""

    @pytest.fixture
    def provider(self, tmp_path: Path) -> LocalKeyProvider:
        return LocalKeyProvider(tmp_path / "keystore")
