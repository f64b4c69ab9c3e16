"""The Aureus provider conformance kit, run against the AWS KMS provider on moto."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

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
        describe = real_errors_session.client(
            "kms", region_name="eu-west-1", endpoint_url=private_moto.url
        ).describe_key

        def real_key_usage_error(params: dict[str, Any], **_: Any) -> Any:
            # moto gap: moto encrypts with a SIGN_VERIFY key; real KMS answers
            # InvalidKeyUsageException, which this test-only hook supplies.
            key_id = json.loads(params["body"])["KeyId"]
            usage = describe(KeyId=key_id)["KeyMetadata"]["KeyUsage"]
            if usage == "ENCRYPT_DECRYPT":
                return None
            error = {"Code": "InvalidKeyUsageException", "Message": f"{usage} key"}
            return AWSResponse(private_moto.url, 400, {}, None), {
                "Error": error,
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }

        for operation in ("Encrypt", "GenerateDataKey"):
            real_errors_session.events.register(
                f"before-call.kms.{operation}", real_key_usage_error
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
