"""The Aureus provider conformance kit, run against the emulator through the real SDK clients."""

from __future__ import annotations

import os

import pytest

from aureus_azure import AzureKeyVaultProvider
from aureus_core.context import EncryptionContext
from aureus_core.errors import UnsupportedOperation
from aureus_core.keys import KeyPurpose
from aureus_core.testing.provider_contract import WRAPPING_TYPES, KeyProviderContract, OptOut


class _AzureContract(KeyProviderContract):
    missing_version = "0123456789abcdef0123456789abcdef"

    # test_azure_envelope.py checks that a changed context fails in the message header.
    wrap_binds_context = OptOut(
        "Key Vault's wrap (RSA-OAEP, AES-KW) takes no additional data: the context is "
        "protected by the message header's authentication, not by the wrap"
    )

    @pytest.mark.parametrize("key_type", WRAPPING_TYPES, ids=lambda t: t.value)
    def test_unwrap_ignores_the_context(self, provider, key_type, key_name):
        """What the kit skips here, stated positively: another context still unwraps."""
        ref = self.ref_of(self._wrapping_key(provider, key_type, key_name))
        data_key = os.urandom(32)
        wrapped = provider.wrap(ref, data_key, self._context(key_name))
        other = EncryptionContext({"purpose": "other"})
        assert bytes(provider.unwrap(ref, wrapped.encrypted, other)) == data_key

    def test_min_decryption_version_is_refused_with_a_hint(self, provider, key_name):
        """Key Vault has no minimum decryption version: UnsupportedOperation with a hint."""
        ref, _ = self._versioned_key(provider, KeyPurpose.WRAP, key_name)
        with pytest.raises(UnsupportedOperation, match="disable old versions"):
            provider.set_min_decryption_version(ref, "1")

    def test_destroy_version_is_refused_with_a_hint(self, provider, key_name):
        """Key Vault cannot destroy one version: UnsupportedOperation with a hint."""
        ref, metadata = self._versioned_key(provider, KeyPurpose.WRAP, key_name)
        with pytest.raises(UnsupportedOperation, match="delete_key"):
            provider.destroy_version(ref.with_version(metadata.current_version), confirm=True)


class TestAzureVaultContract(_AzureContract):
    """A plain vault: RSA and EC keys; no aes-256, so no wrapping tests run here."""

    @pytest.fixture
    def provider(self, vault_provider: AzureKeyVaultProvider) -> AzureKeyVaultProvider:
        return vault_provider


class TestAzureManagedHsmContract(_AzureContract):
    """A Managed HSM: also aes-256 (oct-HSM) keys, so every wrapping test runs."""

    wrap_is_randomized = OptOut(
        "Managed HSM wraps with an aes-256 key by AES-KW (RFC 3394), a deterministic key "
        "wrap with no IV: one data key under one key version always wraps to the same bytes"
    )

    @pytest.fixture
    def provider(self, hsm_provider: AzureKeyVaultProvider) -> AzureKeyVaultProvider:
        return hsm_provider
