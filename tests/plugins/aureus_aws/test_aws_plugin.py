"""The aws plugin's hooks, options and key URIs."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.credentials import Credentials as BotoCredentials

from aureus_aws import AwsKmsOptions, AwsKmsProvider, KmsArn, plugin
from aureus_aws.naming import check_ref, region_of
from aureus_aws.testing import TEST_ENVIRONMENT
from aureus_core.datakey import EncryptedDataKey
from aureus_core.errors import ConfigError, CredentialError
from aureus_core.interfaces import Credentials, ProviderSettings
from aureus_core.keyref import KeyRef
from aureus_core.registry import CredentialSourceRegistry, KeyProviderRegistry
from aureus_core.sensitive import Secret

ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_aureus_register_key_providers(moto_server: Any) -> None:
    registry = KeyProviderRegistry()
    plugin.aureus_register_key_providers(registry)
    factory = registry.get("aws-kms").factory
    provider = factory(
        ProviderSettings(options={"region": "us-east-1", "endpoint_url": moto_server.url})
    )
    assert isinstance(provider, AwsKmsProvider)
    assert provider.region == "us-east-1"
    provider.close()


@pytest.mark.skipif(
    importlib.util.find_spec("aureus_aws.credentials") is None,
    reason="aureus_aws.credentials (the AWS credential sources) is not written yet",
)
def test_aureus_register_credential_sources() -> None:
    registry = CredentialSourceRegistry()
    plugin.aureus_register_credential_sources(registry)
    assert len(registry) > 0


@pytest.mark.parametrize(
    ("uri", "region"),
    [
        (f"aws-kms://{ARN}", "eu-west-1"),
        ("aws-kms://alias/payments", "us-east-2"),
        ("aws-kms://alias/payments?region=ap-south-1", "ap-south-1"),
        ("aws-kms://mrk-0123456789abcdef0123456789abcdef", "us-east-2"),
    ],
)
def test_key_uris(uri: str, region: str) -> None:
    ref = check_ref(KeyRef.parse(uri))
    assert region_of(ref, "us-east-2") == region


@pytest.mark.parametrize(
    "uri",
    [
        f"aws-kms://{ARN}?region=us-east-1",  # contradicts the ARN
        "aws-kms://alias/x?colour=blue",
        "aws-kms://alias/x?region=mars",
        "aws-kms://arn:aws:s3:::bucket",
        "local://payments",
    ],
)
def test_bad_key_uris(uri: str) -> None:
    with pytest.raises(ConfigError):
        check_ref(KeyRef.parse(uri))


def test_arn_round_trip() -> None:
    arn = KmsArn.parse(ARN)
    assert arn is not None
    assert (arn.partition, arn.region, arn.account) == ("aws", "eu-west-1", "111122223333")
    assert str(arn) == ARN
    assert KmsArn.parse("alias/x") is None


@pytest.mark.parametrize(
    "options",
    [
        {"colour": "blue"},
        {"region": "nowhere"},
        {"endpoint_url": "ftp://x"},
        {"retries": {"mode": "eager"}},
        {"retries": {"max_attempts": 0}},
        {"verify_with": "trust"},
        {"connect_timeout": 0},
        {"discovery": {"accounts": ["12"]}},
    ],
)
def test_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        AwsKmsOptions.from_mapping(options)


def test_owner_of() -> None:
    provider = AwsKmsProvider(
        AwsKmsOptions.from_mapping(
            {"region": "eu-west-1", "discovery": {"accounts": ["111122223333"]}}
        )
    )
    mine = EncryptedDataKey(provider_id="aws-kms", provider_info=ARN.encode(), ciphertext=b"c")
    assert provider.owner_of(mine) == KeyRef(scheme="aws-kms", key_id=ARN)
    assert provider.discovery_refusal(KeyRef(scheme="aws-kms", key_id=ARN), ()) is None
    other = ARN.replace("1111", "9999")
    theirs = EncryptedDataKey(provider_id="aws-kms", provider_info=other.encode(), ciphertext=b"c")
    # Any key ARN has an owner; the discovery filter decides whether it may be used.
    assert provider.owner_of(theirs) == KeyRef(scheme="aws-kms", key_id=other)
    refusal = provider.discovery_refusal(KeyRef(scheme="aws-kms", key_id=other), ())
    assert refusal is not None
    assert "account 999922223333" in refusal
    for edk in (
        EncryptedDataKey(provider_id="aws-kms", provider_info=b"alias/x", ciphertext=b"c"),
        EncryptedDataKey(provider_id="aws-kms", provider_info=b"\xff", ciphertext=b"c"),
        EncryptedDataKey(provider_id="aureus-local", provider_info=ARN.encode(), ciphertext=b"c"),
    ):
        assert provider.owner_of(edk) is None
    mrk = ARN.replace("eu-west-1", "us-east-1").replace(
        "key/1234abcd-12ab-34cd-56ef-1234567890ab", "key/mrk-0123456789abcdef0123456789abcdef"
    )
    edk = EncryptedDataKey(provider_id="aws-kms", provider_info=mrk.encode(), ciphertext=b"c")
    assert provider.owner_of(edk) == KeyRef(
        scheme="aws-kms", key_id=mrk.replace("us-east-1", "eu-west-1")
    )


class _GenericSource:
    """A credential source with no botocore_credentials(): generic AWS values only."""

    name = "generic"

    def __init__(self, access_key: str) -> None:
        self.access_key = access_key

    def get_credentials(self) -> Credentials:
        return Credentials(
            kind="aws",
            values={
                "access_key_id": Secret(self.access_key),
                "secret_access_key": Secret("generic-secret-not-real"),
            },
            expires_at=datetime.now(timezone.utc) + timedelta(hours=1),
        )


class _BotocoreSource(_GenericSource):
    name = "botocore"

    def botocore_credentials(self) -> BotoCredentials:
        return BotoCredentials(self.access_key, "botocore-secret-not-real")


def _signing_key_id(provider: AwsKmsProvider) -> str:
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(str(request.headers["Authorization"]))

    provider.client().meta.events.register("before-send.kms.*", capture)
    provider.list_aliases()
    return seen[0].split("Credential=", 1)[1].split("/", 1)[0]


@pytest.mark.parametrize("source_type", [_GenericSource, _BotocoreSource])
def test_credential_sources_sign_the_requests(moto_server: Any, source_type: type) -> None:
    source = source_type("AKIAAUREUSSOURCE0001")
    settings = ProviderSettings(
        options={"region": "us-east-1", "endpoint_url": moto_server.url}, credentials=source
    )
    provider = plugin.create_provider(settings)
    assert _signing_key_id(provider) == "AKIAAUREUSSOURCE0001"
    provider.close()


def test_without_a_source_the_default_chain_is_used(moto_server: Any) -> None:
    provider = plugin.create_provider(
        ProviderSettings(options={"region": "us-east-1", "endpoint_url": moto_server.url})
    )
    assert _signing_key_id(provider) == TEST_ENVIRONMENT["AWS_ACCESS_KEY_ID"]
    provider.close()


def test_a_source_of_another_kind_is_a_credential_error(moto_server: Any) -> None:
    class Vault(_GenericSource):
        def get_credentials(self) -> Credentials:
            return Credentials(kind="gcp", values={})

    settings = ProviderSettings(
        options={"region": "us-east-1", "endpoint_url": moto_server.url}, credentials=Vault("x")
    )
    provider = plugin.create_provider(settings)
    with pytest.raises(CredentialError, match="kind 'aws'"):
        provider.list_aliases()
    provider.close()
