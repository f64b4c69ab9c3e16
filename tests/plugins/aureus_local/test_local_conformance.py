"""The Aureus provider conformance kit, run against the local provider."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.interfaces import KeyProvider
from aureus_core.keyref import KeyRef
from aureus_core.testing.clock import FakeClock
from aureus_core.testing.provider_contract import KeyProviderContract
from aureus_local import LocalKeyProvider


class TestLocalProviderContract(KeyProviderContract):
    """Every contract test, on a fresh key-file keystore."""

    @pytest.fixture
    def provider(self, tmp_path: Path) -> LocalKeyProvider:
        self.clock = FakeClock()
        return LocalKeyProvider(tmp_path / "keystore", clock=self.clock)

    @pytest.fixture
    def reopen_provider(self, tmp_path: Path) -> Callable[[], KeyProvider]:
        return lambda: LocalKeyProvider(tmp_path / "keystore", clock=self.clock)

    def advance_clock(self, provider: KeyProvider, delta: timedelta) -> None:
        self.clock.advance(delta)

    def wrap_with_material(
        self, material: bytes, key: KeyRef, data_key: bytes, context: EncryptionContext
    ) -> EncryptedDataKey:
        # The documented layout (AWS Encryption SDK raw AES keyring), built here by hand.
        iv = os.urandom(12)
        info = f"{key.key_id}:{key.version}".encode() + struct.pack(">II", 128, 12) + iv
        sealed = AESGCM(material).encrypt(iv, data_key, context.serialize())
        return EncryptedDataKey(provider_id="aureus-local", provider_info=info, ciphertext=sealed)
