"""The PKCS#11 provider passes Aureus's conformance kit, unchanged, against SoftHSM2."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.interfaces import KeyProvider
from aureus_core.keyref import KeyRef
from aureus_core.testing import KeyProviderContract
from aureus_core.testing.clock import FakeClock


class TestPkcs11Provider(KeyProviderContract):
    """The whole provider contract on a SoftHSM2 token."""

    @pytest.fixture
    def provider(self, make_provider: Callable[..., KeyProvider]) -> KeyProvider:
        """A provider on the session's test token; every test uses fresh key names."""
        self.clock = FakeClock()
        return make_provider(clock=self.clock)

    @pytest.fixture
    def reopen_provider(
        self, make_provider: Callable[..., KeyProvider]
    ) -> Callable[[], KeyProvider]:
        """Another provider (its own session pool) on the same token: the IVs are ours."""
        return lambda: make_provider(clock=self.clock)

    def advance_clock(self, provider: KeyProvider, delta: timedelta) -> None:
        self.clock.advance(delta)

    def wrap_with_material(
        self, material: bytes, key: KeyRef, data_key: bytes, context: EncryptionContext
    ) -> EncryptedDataKey:
        # The documented ``aureus-pkcs11`` layout (docs/pkcs11.md), built here by hand.
        info = key.uri.encode()
        aad = b"aureus-pkcs11\x00" + struct.pack(">H", len(info)) + info + context.serialize()
        iv = os.urandom(12)
        sealed = AESGCM(material).encrypt(iv, data_key, aad)
        return EncryptedDataKey(
            provider_id="aureus-pkcs11", provider_info=info, ciphertext=b"\x01" + iv + sealed
        )
