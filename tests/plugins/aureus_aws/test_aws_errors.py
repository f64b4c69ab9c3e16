"""AWS errors map onto the Aureus hierarchy with the AWS code kept; a dead endpoint fails fast."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest
from botocore.stub import Stubber

from aureus_aws import AwsKmsOptions, AwsKmsProvider
from aureus_aws.errors import KmsConfigError, KmsCredentialError
from aureus_aws.testing import MotoServer
from aureus_core import KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.errors import (
    AccessDenied,
    DecryptionError,
    KeyDisabled,
    KeyExists,
    KeyNotFound,
    ProviderError,
    ProviderUnavailable,
    Throttled,
)
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyState, KeyType

ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
REF = KeyRef(scheme="aws-kms", key_id=ARN)
CONTEXT = EncryptionContext({"purpose": "errors"})

ENCRYPT_ERRORS = [
    ("AccessDeniedException", 400, AccessDenied),
    ("NotFoundException", 400, KeyNotFound),
    ("DisabledException", 400, KeyDisabled),
    ("ThrottlingException", 400, Throttled),
    ("LimitExceededException", 400, Throttled),
    ("KMSInternalException", 500, ProviderUnavailable),
    ("DependencyTimeoutException", 503, ProviderUnavailable),
    ("CustomKeyStoreInvalidStateException", 400, ProviderUnavailable),
    ("UnrecognizedClientException", 400, KmsCredentialError),
    ("ValidationException", 400, KmsConfigError),
    ("SomethingNewException", 400, ProviderError),
]


@pytest.fixture
def offline() -> AwsKmsProvider:
    """A provider whose client is stubbed (max_attempts=1 so a 5xx is not retried)."""
    options = AwsKmsOptions.from_mapping({"region": "us-east-1", "retries": {"max_attempts": 1}})
    return AwsKmsProvider(options)


@pytest.mark.parametrize(("code", "status", "expected"), ENCRYPT_ERRORS)
def test_encrypt_errors_are_mapped(
    offline: AwsKmsProvider, code: str, status: int, expected: type[Exception]
) -> None:
    with Stubber(offline.client()) as stub:
        stub.add_client_error("encrypt", code, "what KMS said", http_status_code=status)
        with pytest.raises(expected) as raised:
            offline.wrap(REF, os.urandom(32), CONTEXT)
    assert raised.value.code == code  # type: ignore[attr-defined]
    assert "Encrypt" in str(raised.value)
    assert ARN in str(raised.value)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("arn:... is pending deletion.", KeyDisabled),
        ("arn:... is disabled.", KeyDisabled),
        ("The custom key store is not connected; the key is Unavailable.", ProviderUnavailable),
    ],
)
def test_invalid_state_is_told_apart_by_its_message(
    offline: AwsKmsProvider, message: str, expected: type[Exception]
) -> None:
    with Stubber(offline.client()) as stub:
        stub.add_client_error("encrypt", "KMSInvalidStateException", message)
        with pytest.raises(expected) as raised:
            offline.wrap(REF, os.urandom(32), CONTEXT)
    assert raised.value.code == "KMSInvalidStateException"  # type: ignore[attr-defined]


@pytest.mark.parametrize("code", ["InvalidCiphertextException", "IncorrectKeyException"])
def test_bad_ciphertext_on_unwrap_is_opaque(offline: AwsKmsProvider, code: str) -> None:
    edk = EncryptedDataKey(provider_id="aws-kms", provider_info=ARN.encode(), ciphertext=b"c" * 64)
    with Stubber(offline.client()) as stub:
        stub.add_client_error("decrypt", code, "secret details")
        with pytest.raises(DecryptionError) as raised:
            offline.unwrap(REF, edk, CONTEXT)
    assert "secret details" not in str(raised.value)
    assert raised.value.code == code  # the service's code, as on the other errors


def test_unwrap_refuses_a_reply_from_another_key(offline: AwsKmsProvider) -> None:
    edk = EncryptedDataKey(provider_id="aws-kms", provider_info=ARN.encode(), ciphertext=b"c" * 64)
    other = ARN.replace("1234abcd", "99999999")
    with Stubber(offline.client()) as stub:
        stub.add_response(
            "decrypt",
            {"KeyId": other, "Plaintext": b"k" * 32},
            {"KeyId": ARN, "CiphertextBlob": b"c" * 64, "EncryptionContext": dict(CONTEXT)},
        )
        with pytest.raises(DecryptionError):
            offline.unwrap(REF, edk, CONTEXT)


def test_unwrap_of_an_edk_naming_another_key_never_calls_kms(offline: AwsKmsProvider) -> None:
    other = ARN.replace("1234abcd", "99999999")
    edk = EncryptedDataKey(provider_id="aws-kms", provider_info=other.encode(), ciphertext=b"c")
    with Stubber(offline.client()), pytest.raises(DecryptionError):  # any call fails the stub
        offline.unwrap(REF, edk, CONTEXT)


def test_duplicate_name_is_key_exists_with_code(provider: AwsKmsProvider) -> None:
    name = f"dup-{uuid.uuid4().hex[:8]}"
    provider.create_key(name, KeySpec(key_type=KeyType.AES_256))
    with pytest.raises(KeyExists, match=f"alias/{name}"):
        provider.create_key(name, KeySpec(key_type=KeyType.AES_256))


def test_disabled_key_refuses_wrap(provider: AwsKmsProvider) -> None:
    """Disabling works through KMS; the refusal is supplied by the test.

    moto gap: moto keeps encrypting with a disabled key.  The test asks moto
    to disable the key (DescribeKey then says Disabled) and, for the Encrypt
    that real KMS would refuse, installs a botocore hook that answers as KMS
    does: DisabledException.
    """
    ref = provider.create_key(f"dis-{uuid.uuid4().hex[:8]}", KeySpec(key_type=KeyType.AES_256)).ref
    disabled = provider.set_version_state(ref, KeyState.DISABLED)
    assert disabled.state is KeyState.DISABLED

    def real_kms(**_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        message = f"{ref.key_id} is disabled."
        body = {
            "Error": {"Code": "DisabledException", "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        return AWSResponse("", 400, {}, None), body

    provider.client().meta.events.register("before-call.kms.Encrypt", real_kms)
    with pytest.raises(KeyDisabled, match="enable the key") as raised:
        provider.wrap(ref, os.urandom(32), CONTEXT)
    assert raised.value.code == "DisabledException"
    provider.client().meta.events.unregister("before-call.kms.Encrypt", real_kms)
    enabled = provider.set_version_state(ref, KeyState.ENABLED)
    assert enabled.state is KeyState.ENABLED


def test_killed_server_is_provider_unavailable_quickly() -> None:
    """A KMS endpoint that dies gives ProviderUnavailable after bounded retries, not a hang."""
    with MotoServer() as server:
        options = AwsKmsOptions.from_mapping(
            {
                "region": "us-east-1",
                "endpoint_url": server.url,
                "retries": {"mode": "standard", "max_attempts": 2},
                "connect_timeout": 1,
                "read_timeout": 2,
            }
        )
        provider = AwsKmsProvider(options)
        ref = provider.create_key("alive", KeySpec(key_type=KeyType.AES_256)).ref
        provider.wrap(ref, os.urandom(32), CONTEXT)
        server.kill()
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable) as raised:
            provider.wrap(ref, os.urandom(32), CONTEXT)
        assert time.monotonic() - started < 5
        assert raised.value.code == "EndpointConnectionError"
        with KeyStack(providers={"aws-kms": provider}) as stack, pytest.raises(ProviderUnavailable):
            stack.encrypt(b"data", keys=[ref])
        provider.close()
