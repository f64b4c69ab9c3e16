"""The Aureus provider conformance kit, against the Cloud KMS emulator through the real client."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from aureus_core.errors import ConfigError, KeyDisabled
from aureus_core.keys import KeyPurpose, KeyState
from aureus_core.testing.provider_contract import KeyProviderContract
from aureus_gcp import GcpKmsProvider
from aureus_gcp.testing import CloudKmsEmulator


# A known leak, not a backend limit: remove once aureus_gcp redacts it (as aureus_aws's
# log_redaction does for botocore).
class TestGcpKmsContract(KeyProviderContract):
    """Every contract test, each in its own key ring of the session's emulator.

    Cloud KMS has no minimum decryption version, so the provider does not
    declare ``min-decryption-version`` and the kit checks that it refuses it.
    The destroy test is overridden where Cloud KMS differs from the contract's
    model (docs/gcp.md, "Versions and lifecycle"): it destroys a version only
    after a scheduled delay (``pending-deletion`` until then, restorable).
    """

    emulator: CloudKmsEmulator

    @pytest.fixture
    def provider(self, gcp_provider: GcpKmsProvider, gcp_kms: CloudKmsEmulator) -> GcpKmsProvider:
        self.emulator = gcp_kms  # the test instance is the fixture's: for advancing its clock
        return gcp_provider

    def test_lifecycle_destroy_needs_confirm_and_spares_the_current_version(
        self, provider, key_name
    ):
        """As the contract, with Cloud KMS's delay: pending-deletion, then destroyed."""
        ref, _ = self._versioned_key(provider, KeyPurpose.WRAP, key_name)
        context, data_key = self._context(key_name), os.urandom(32)
        old = provider.wrap(ref, data_key, context)
        rotated = provider.rotate_key(ref)
        assert old.key.version is not None
        with pytest.raises(ConfigError, match="confirm"):
            provider.destroy_version(old.key)
        assert bytes(provider.unwrap(old.key, old.encrypted, context)) == data_key
        with pytest.raises(ConfigError, match="rotate"):
            provider.destroy_version(ref.with_version(rotated.current_version), confirm=True)
        scheduled = provider.destroy_version(old.key, confirm=True)
        assert scheduled.version_info(old.key.version).state is KeyState.PENDING_DELETION
        assert scheduled.current_version == rotated.current_version
        with pytest.raises(KeyDisabled) as refused:
            provider.unwrap(old.key, old.encrypted, context)
        self._assert_names(refused.value, ref, old.key.version)
        with pytest.raises(KeyDisabled, match="restore"):
            provider.set_version_state(old.key, KeyState.ENABLED)
        self.emulator.advance(
            timedelta(days=31)
        )  # past the key's 30-day destroy_scheduled_duration
        destroyed = provider.describe_key(ref)
        assert destroyed.version_info(old.key.version).state is KeyState.DESTROYED
        with pytest.raises(KeyDisabled):
            provider.unwrap(old.key, old.encrypted, context)
        with pytest.raises((KeyDisabled, ConfigError)):
            provider.set_version_state(old.key, KeyState.ENABLED)
        fresh = provider.wrap(ref, data_key, context)
        assert bytes(provider.unwrap(fresh.key, fresh.encrypted, context)) == data_key


@pytest.fixture(scope="module")
def local_emulator():
    with CloudKmsEmulator(transport="local") as emulator:
        yield emulator


class TestGcpKmsContractOverLocalCredentials(KeyProviderContract):
    """A shorter run over gRPC local credentials with a bearer token, as against Cloud KMS."""

    concurrency_threads = 4
    concurrency_operations = 4

    @pytest.fixture
    def provider(self, local_emulator, ring_options):
        from google.oauth2.credentials import Credentials

        from aureus_gcp import GcpKmsOptions

        options = GcpKmsOptions.from_mapping(local_emulator.provider_options(**ring_options))
        provider = GcpKmsProvider(options, credentials=Credentials(token="contract-bearer-token"))
        yield provider
        provider.close()
        # Every call that reached the emulator carried the token (tests that make none: None).
        assert local_emulator.last_authorization() in (None, "contract-bearer-token")

    def test_lifecycle_destroy_needs_confirm_and_spares_the_current_version(
        self, provider, key_name
    ):
        pytest.skip("run over the insecure channel by TestGcpKmsContract")
