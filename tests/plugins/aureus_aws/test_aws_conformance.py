"""The Aureus provider conformance kit, run against the AWS KMS provider on moto."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest

from aureus_aws import AwsKmsOptions, AwsKmsProvider
from aureus_aws.testing import MotoServer
from aureus_core.context import EncryptionContext
from aureus_core.errors import DecryptionError, UnsupportedOperation
from aureus_core.interfaces import KeyProvider
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyPurpose, KeyType
from aureus_core.testing.provider_contract import KeyProviderContract, _type_id


class TestAwsKmsProviderContract(KeyProviderContract):
    """Every contract test, on a moto server reset for each test.

    Three tests are overridden because KMS differs from the contract's model
    in ways the provider cannot hide (docs/aws.md, "Versions"):
    KMS rotates only symmetric keys, and a KMS ciphertext does not say which
    key material wrapped it, so wrapped keys name the key unpinned.
    """

    @pytest.fixture
    def provider(
        self, private_moto: MotoServer, real_errors_session: boto3.Session
    ) -> Iterator[AwsKmsProvider]:
        private_moto.reset()
        options = AwsKmsOptions.from_mapping(
            {"region": "eu-west-1", "endpoint_url": private_moto.url}
        )
        provider = AwsKmsProvider(options, session=real_errors_session)
        yield provider
        provider.close()

    def missing_key_ref(self, provider: KeyProvider, name: str) -> KeyRef:
        return KeyRef(scheme=provider.scheme, key_id=f"alias/{name}")

    @pytest.mark.parametrize("key_type", list(KeyType), ids=_type_id)
    def test_rotate_adds_a_current_version(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """Symmetric keys rotate as the contract says; KMS refuses asymmetric ones."""
        if key_type.purpose is KeyPurpose.WRAP:
            super().test_rotate_adds_a_current_version(provider, key_type, key_name)
            return
        created = self.create_test_key(provider, key_type, key_name)
        with pytest.raises(UnsupportedOperation, match="rotate_key"):
            provider.rotate_key(self.ref_of(created))

    @pytest.mark.parametrize("key_type", [KeyType.AES_256], ids=_type_id)
    def test_wrap_unwrap_round_trip(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """As the contract, but the wrapped key names the key ARN unpinned."""
        metadata = self._wrapping_key(provider, key_type, key_name)
        ref, context, data_key = self.ref_of(metadata), self._context(key_name), os.urandom(32)
        wrapped = provider.wrap(ref, data_key, context)
        assert wrapped.key == ref
        assert wrapped.key.version is None
        edk = wrapped.encrypted
        assert edk.provider_id == "aws-kms"
        assert edk.provider_info == ref.key_id.encode()
        assert data_key not in edk.ciphertext
        unwrapped = provider.unwrap(ref, edk, context)
        assert isinstance(unwrapped, bytearray)
        assert bytes(unwrapped) == data_key

    @pytest.mark.parametrize("key_type", [KeyType.AES_256], ids=_type_id)
    def test_owner_of_names_the_pinned_wrapping_key(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """owner_of names the wrapping key's ARN, unpinned (KMS ciphertexts name no version)."""
        metadata = self._wrapping_key(provider, key_type, key_name)
        wrapped = provider.wrap(self.ref_of(metadata), os.urandom(32), self._context(key_name))
        owner = provider.owner_of(wrapped.encrypted)
        assert owner == wrapped.key == self.ref_of(metadata)

    @pytest.mark.parametrize("key_type", [KeyType.AES_256], ids=_type_id)
    def test_generate_data_key_round_trip(
        self, provider: KeyProvider, key_type: KeyType, key_name: str
    ) -> None:
        """As the contract, but the wrapped key names the key ARN unpinned."""
        assert isinstance(provider, AwsKmsProvider)
        ref = self.ref_of(self._wrapping_key(provider, key_type, key_name))
        context = self._context(key_name)
        first, wrapped = provider.generate_data_key(ref, 32, context)
        second, _ = provider.generate_data_key(ref, 32, context)
        assert isinstance(first, bytearray)
        assert len(first) == 32
        assert first != second
        assert wrapped.key == ref
        assert bytes(first) not in wrapped.encrypted.ciphertext
        assert bytes(provider.unwrap(ref, wrapped.encrypted, context)) == bytes(first)
        with pytest.raises(DecryptionError):
            provider.unwrap(ref, wrapped.encrypted, EncryptionContext(other="context"))
