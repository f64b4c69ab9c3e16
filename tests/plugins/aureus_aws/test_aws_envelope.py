"""Envelope messages through AWS KMS on moto, and interop with the official AWS Encryption SDK."""

from __future__ import annotations

import uuid
from typing import Any

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk import CommitmentPolicy, StrictAwsKmsMasterKeyProvider

from aureus_aws import AwsKmsProvider
from aureus_aws.testing import MotoServer
from aureus_core import KeyStack
from aureus_core.config import StackConfig
from aureus_core.errors import DecryptionError
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType

CONTEXT = {"tenant": "acme", "purpose": "interop"}
PAYLOAD = b"the quick brown fox jumps over the lazy dog " * 50


def _key(provider: AwsKmsProvider, **options: str) -> str:
    spec = KeySpec(key_type=KeyType.AES_256, options=options)
    return provider.create_key(f"env-{uuid.uuid4().hex[:10]}", spec).uri


@pytest.fixture
def esdk_session(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A botocore session whose clients (created by the SDK) reach moto instead of AWS.

    The SDK builds its own KMS clients and takes no endpoint; botocore's
    service-specific endpoint variable points them at moto.
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto_server.url)
    session = botocore.session.Session()
    session.set_config_variable("region", "us-east-1")
    return session


@pytest.fixture
def esdk() -> Any:
    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )


def _arn(uri: str) -> str:
    return uri.removeprefix("aws-kms://")


def _calls(provider: AwsKmsProvider) -> list[str]:
    seen: list[str] = []
    provider.client().meta.events.register(
        "before-call.kms.*", lambda model, **_: seen.append(model.name)
    )
    return seen


@pytest.mark.parametrize("signed", [False, True], ids=["0x0478", "0x0578"])
def test_round_trip_through_a_key_stack(provider: AwsKmsProvider, signed: bool) -> None:
    keys = [_key(provider), _key(provider)]
    calls = _calls(provider)
    with KeyStack(providers={"aws-kms": provider}) as stack:
        message = stack.encrypt(PAYLOAD, context=CONTEXT, keys=keys, signed=signed)
        assert calls == ["GenerateDataKey", "Encrypt"]  # first key generates, the second wraps
        for strict in (keys[:1], keys[1:]):
            assert stack.decrypt(message, context=CONTEXT, keys=strict) == PAYLOAD
    config = StackConfig(wrapping_keys=(KeyRef.parse(keys[1]),))
    with KeyStack(config=config, providers={"aws-kms": provider}) as stack:
        assert stack.decrypt(message) == PAYLOAD  # discovery mode: a configured key
        with pytest.raises(DecryptionError):
            stack.decrypt(message, context={"tenant": "other"})
        with pytest.raises(DecryptionError):
            stack.decrypt(message, keys=[_key(provider)])


@pytest.mark.parametrize("signed", [False, True], ids=["0x0478", "0x0578"])
@pytest.mark.parametrize("count", [1, 3])
def test_aureus_message_decrypts_with_the_aws_encryption_sdk(
    provider: AwsKmsProvider, esdk: Any, esdk_session: Any, count: int, signed: bool
) -> None:
    keys = [_key(provider) for _ in range(count)]
    with KeyStack(providers={"aws-kms": provider}) as stack:
        message = stack.encrypt(PAYLOAD, context=CONTEXT, keys=keys, signed=signed)
    for key in keys:  # any one recipient suffices
        master = StrictAwsKmsMasterKeyProvider(key_ids=[_arn(key)], botocore_session=esdk_session)
        plaintext, header = esdk.decrypt(source=message, key_provider=master)
        assert plaintext == PAYLOAD
        assert {k: header.encryption_context[k] for k in CONTEXT} == CONTEXT
        assert len(header.encrypted_data_keys) == count


@pytest.mark.parametrize("count", [1, 3])
def test_sdk_message_decrypts_with_aureus(
    provider: AwsKmsProvider, esdk: Any, esdk_session: Any, count: int
) -> None:
    keys = [_key(provider) for _ in range(count)]
    master = StrictAwsKmsMasterKeyProvider(
        key_ids=[_arn(k) for k in keys], botocore_session=esdk_session
    )
    message, _ = esdk.encrypt(source=PAYLOAD, encryption_context=CONTEXT, key_provider=master)
    with KeyStack(providers={"aws-kms": provider}) as stack:
        for key in keys:
            assert stack.decrypt(message, context=CONTEXT, keys=[key]) == PAYLOAD
        with pytest.raises(DecryptionError):
            stack.decrypt(message, keys=[_key(provider)])


def test_discovery_filter_rejects_other_accounts(make_provider: Any) -> None:
    writer = make_provider()
    key = _key(writer)
    with KeyStack(providers={"aws-kms": writer}) as stack:
        message = stack.encrypt(PAYLOAD, keys=[key])
    moto_account = _arn(key).split(":")[4]
    for accounts, readable in (([moto_account], True), (["111122223333"], False)):
        reader = make_provider(discovery={"accounts": accounts})
        with KeyStack(providers={"aws-kms": reader}) as stack:
            if readable:
                assert stack.decrypt(message) == PAYLOAD
            else:
                with pytest.raises(DecryptionError):
                    stack.decrypt(message)


def test_stack_from_config_loads_the_plugin(moto_server: MotoServer) -> None:
    """The aws plugin comes in through its entry point, with options from the config."""
    setup = KeyStack.from_dict(
        {
            "providers": {
                "aws-kms": {
                    "region": "us-east-1",
                    "endpoint_url": moto_server.url,
                    "retries": {"max_attempts": 2},
                }
            }
        }
    )
    with setup:
        key = setup.create_key(f"aws-kms://alias/cfg-{uuid.uuid4().hex[:8]}", key_type="aes-256")
    config = {
        "stack": {"wrapping_keys": [key.uri]},
        "providers": {"aws-kms": {"region": "us-east-1", "endpoint_url": moto_server.url}},
    }
    with KeyStack.from_dict(config) as stack:
        message = stack.encrypt(PAYLOAD, context=CONTEXT)
        assert stack.decrypt(message, context=CONTEXT, keys=[key.uri]) == PAYLOAD
