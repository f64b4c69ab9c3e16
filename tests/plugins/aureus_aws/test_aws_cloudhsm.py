"""CloudHSM custom key stores, shape-tested with botocore's Stubber.

moto does not implement custom key stores, so these tests check the exact
requests the helpers send and how they read KMS's real response shapes;
docs/aws.md lists these paths as shape-tested only.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber

from aureus_aws import AwsKmsOptions, AwsKmsProvider
from aureus_aws.cloudhsm import (
    check_key_store,
    connect_key_store,
    create_hsm_key,
    create_key_store,
    require_connected,
)
from aureus_core.errors import ConfigError, KeyNotFound, ProviderUnavailable
from aureus_core.keys import KeySpec, KeyType
from aureus_core.sensitive import Secret

STORE = "cks-1234567890abcdef0"
CLUSTER = "cluster-1a23b4cdefg"
ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _store(state: str, error: str | None = None) -> dict[str, Any]:
    store: dict[str, Any] = {
        "CustomKeyStoreId": STORE,
        "CustomKeyStoreName": "payments-hsm",
        "CloudHsmClusterId": CLUSTER,
        "TrustAnchorCertificate": "-----BEGIN CERTIFICATE-----...",
        "ConnectionState": state,
        "CreationDate": 1700000000,
        "CustomKeyStoreType": "AWS_CLOUDHSM",
    }
    if error:
        store["ConnectionErrorCode"] = error
    return store


def _describe(stub: Stubber, state: str, error: str | None = None) -> None:
    stub.add_response(
        "describe_custom_key_stores",
        {"CustomKeyStores": [_store(state, error)]},
        {"CustomKeyStoreId": STORE},
    )


@pytest.fixture
def provider() -> AwsKmsProvider:
    return AwsKmsProvider(AwsKmsOptions.from_mapping({"region": "us-east-1"}))


def test_create_key_store_sends_the_real_request(provider: AwsKmsProvider) -> None:
    with Stubber(provider.client()) as stub:
        stub.add_response(
            "create_custom_key_store",
            {"CustomKeyStoreId": STORE},
            {
                "CustomKeyStoreName": "payments-hsm",
                "CloudHsmClusterId": CLUSTER,
                "TrustAnchorCertificate": "PEM",
                "KeyStorePassword": "kmsuser-password",
                "CustomKeyStoreType": "AWS_CLOUDHSM",
            },
        )
        made = create_key_store(
            provider.client(), "payments-hsm", CLUSTER, "PEM", Secret("kmsuser-password")
        )
    assert made == STORE


def test_check_and_connect(provider: AwsKmsProvider) -> None:
    client = provider.client()
    with Stubber(client) as stub:
        _describe(stub, "DISCONNECTED")
        stub.add_response("connect_custom_key_store", {}, {"CustomKeyStoreId": STORE})
        _describe(stub, "CONNECTING")
        _describe(stub, "CONNECTED")
        _describe(stub, "CONNECTED")
        ticks = iter([0.0, 1.0, 2.0])
        status = connect_key_store(
            client, STORE, wait=60, poll=1, sleep=lambda _: None, clock=lambda: next(ticks)
        )
        stub.assert_no_pending_responses()
    assert status.connected
    assert status.cluster_id == CLUSTER


@pytest.mark.parametrize(
    ("state", "error", "advice"),
    [
        ("DISCONNECTED", None, "connect_key_store"),
        ("FAILED", "USER_LOGGED_IN", "connection error USER_LOGGED_IN"),
        ("CONNECTING", None, "wait"),
    ],
)
def test_operations_say_when_the_store_is_not_connected(
    provider: AwsKmsProvider, state: str, error: str | None, advice: str
) -> None:
    with Stubber(provider.client()) as stub:
        _describe(stub, state, error)
        with pytest.raises(ProviderUnavailable) as raised:
            create_hsm_key(provider, "hsm-key", STORE)
    message = str(raised.value)
    assert STORE in message
    assert "payments-hsm" in message
    assert state in message
    assert advice in message
    assert raised.value.code == (error or state)


def test_create_hsm_key_in_a_connected_store(provider: AwsKmsProvider) -> None:
    metadata = {
        "KeyId": ARN.rsplit("/", 1)[1],
        "Arn": ARN,
        "CreationDate": 1700000000,
        "KeyState": "Enabled",
        "KeyUsage": "ENCRYPT_DECRYPT",
        "KeySpec": "SYMMETRIC_DEFAULT",
        "Origin": "AWS_CLOUDHSM",
        "KeyManager": "CUSTOMER",
        "CustomKeyStoreId": STORE,
        "CloudHsmClusterId": CLUSTER,
        "MultiRegion": False,
    }
    with Stubber(provider.client()) as stub:
        _describe(stub, "CONNECTED")
        stub.add_client_error("describe_key", "NotFoundException", "alias/hsm-key is not found")
        stub.add_response(
            "create_key",
            {"KeyMetadata": metadata},
            {
                "Description": "in the HSM",
                "KeySpec": "SYMMETRIC_DEFAULT",
                "KeyUsage": "ENCRYPT_DECRYPT",
                "Origin": "AWS_CLOUDHSM",
                "CustomKeyStoreId": STORE,
            },
        )
        stub.add_response(
            "create_alias", {}, {"AliasName": "alias/hsm-key", "TargetKeyId": metadata["KeyId"]}
        )
        created = create_hsm_key(provider, "hsm-key", STORE, "in the HSM")
        stub.assert_no_pending_responses()
    assert created.ref.key_id == ARN
    extra = dict(created.extra)
    assert extra["origin"] == "AWS_CLOUDHSM"
    assert extra["custom_key_store_id"] == STORE
    assert extra["cloudhsm_cluster_id"] == CLUSTER


def test_hsm_keys_are_symmetric_only(provider: AwsKmsProvider) -> None:
    spec = KeySpec(key_type=KeyType.ECDSA_P256, options={"custom_key_store_id": STORE})
    with pytest.raises(ConfigError, match="symmetric"):
        provider.create_key("hsm-sign", spec)


def test_missing_store(provider: AwsKmsProvider) -> None:
    with Stubber(provider.client()) as stub:
        stub.add_client_error(
            "describe_custom_key_stores", "CustomKeyStoreNotFoundException", "no such store"
        )
        with pytest.raises(ConfigError) as raised:
            check_key_store(provider.client(), STORE)
    assert raised.value.code == "CustomKeyStoreNotFoundException"
    with Stubber(provider.client()) as stub:
        stub.add_response("describe_custom_key_stores", {"CustomKeyStores": []})
        with pytest.raises(KeyNotFound):
            require_connected(provider.client(), STORE)


def test_store_state_errors_from_kms(provider: AwsKmsProvider) -> None:
    with Stubber(provider.client()) as stub:
        _describe(stub, "DISCONNECTED")
        stub.add_client_error(
            "connect_custom_key_store", "CloudHsmClusterNotActiveException", "no active HSM"
        )
        with pytest.raises(ProviderUnavailable, match="at least one active HSM") as raised:
            connect_key_store(provider.client(), STORE)
    assert raised.value.code == "CloudHsmClusterNotActiveException"
