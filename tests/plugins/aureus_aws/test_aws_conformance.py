"""The Aureus provider conformance kit, run against the AWS KMS provider on moto."""

from __future__ import annotations

import os
from collections.abc import Iterator

import boto3
import pytest

from aureus_aws import AwsKmsOptions, AwsKmsProvider
from aureus_aws.testing import MotoServer
from aureus_core.interfaces import KeyProvider
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyType
from aureus_core.testing.provider_contract import KeyProviderContract


class TestAwsKmsProviderContract(KeyProviderContract):
    """Every contract test, on a moto server reset for each test.

    KMS differs from the contract's model in two ways the provider cannot hide
    (docs/aws.md, "Versions"), stated with the kit's knobs: it rotates only
    symmetric keys, and a KMS ciphertext does not say which key material
    wrapped it, so wrapped keys name the key unpinned.
    """

    wrapped_keys_name_a_version = False
    signing_keys_rotate = False

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

    def test_wrapped_key_has_the_sdk_keyring_layout(self, provider: KeyProvider, key_name: str):
        """Provider ID aws-kms and the key ARN as provider info, as the official SDK writes."""
        metadata = self._wrapping_key(provider, KeyType.AES_256, key_name)
        ref = self.ref_of(metadata)
        wrapped = provider.wrap(ref, os.urandom(32), self._context(key_name))
        assert wrapped.encrypted.provider_id == "aws-kms"
        assert wrapped.encrypted.provider_info == ref.key_id.encode()
