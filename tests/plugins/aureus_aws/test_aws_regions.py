"""Which regions a message may make the stack call, and how a malformed one is refused.

The attack: a message's encrypted data keys name key ARNs, regions included.
Five of them naming made-up regions (``xx-nope-1`` ...) of an allowed account
used to make five ``Decrypt`` calls to endpoints that do not exist; each
connection error counted toward the aws-kms circuit breaker, which opened and
failed every later aws-kms call of the stack, anyone's, for its cool-down.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError

from aureus_aws import AwsKmsOptions, AwsKmsProvider, KmsArn
from aureus_aws.naming import check_ref
from aureus_aws.testing import MotoServer
from aureus_core import KeyStack
from aureus_core.config import StackConfig
from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.errors import ConfigError, DecryptionError, ProviderUnavailable
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.reliability import BreakerState
from aureus_core.testing.forge import unsigned_message

ACCOUNT = "123456789012"  # moto's
HOME = "kms.us-east-1.amazonaws.com"
PAYLOAD = b"legitimate traffic"


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


@pytest.fixture
def internet(moto_server: MotoServer) -> tuple[Any, list[str]]:
    """Sessions (by region) on the real KMS hostnames, and the hosts their clients contact.

    There is no network here, so a ``before-send`` hook plays DNS: us-east-1's
    endpoint is moto, and any other host fails as an unresolvable name does
    (``EndpointConnectionError``).  The provider builds its clients as in production.
    """
    hosts: list[str] = []

    def route(request: Any, **_: Any) -> AWSResponse:
        host = request.url.split("/")[2]
        hosts.append(host)
        if host != HOME:
            raise EndpointConnectionError(endpoint_url=request.url)
        forwarded = urllib.request.Request(  # noqa: S310 - moto on 127.0.0.1
            moto_server.url + "/",
            data=bytes(request.body),
            method="POST",
            headers=dict(request.headers.items()),
        )
        try:
            with urllib.request.urlopen(forwarded) as answer:  # noqa: S310
                return AWSResponse(
                    request.url, answer.status, dict(answer.headers), _Body(answer.read())
                )
        except urllib.error.HTTPError as answer:
            return AWSResponse(request.url, answer.code, dict(answer.headers), _Body(answer.read()))

    def session(region: str | None = "us-east-1") -> boto3.Session:
        made = boto3.Session(region_name=region)
        made.events.register("before-send.kms", route)
        return made

    return session, hosts


def _provider(session: boto3.Session, **options: Any) -> AwsKmsProvider:
    settings = {"retries": {"max_attempts": 1}, **options}
    return AwsKmsProvider(AwsKmsOptions.from_mapping(settings), session=session)


def _edk(region: str, key_id: str | None = None) -> EncryptedDataKey:
    key_id = key_id or str(uuid.uuid4())
    return EncryptedDataKey(
        provider_id="aws-kms",
        provider_info=f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}".encode(),
        ciphertext=b"\x01" * 64,
    )


def _message(edks: list[EncryptedDataKey]) -> bytes:
    return unsigned_message(
        data_key=os.urandom(32), message_id=os.urandom(32), context=b"", edks=edks, plaintext=b"x"
    )


@pytest.mark.parametrize("discovery", [{"accounts": [ACCOUNT]}, True])
def test_made_up_regions_cannot_open_the_circuit_breaker(
    internet: tuple[Any, list[str]], discovery: Any
) -> None:
    session, hosts = internet
    provider = _provider(session(), region="us-east-1", discovery=discovery)
    key = provider.create_key(f"own-{uuid.uuid4().hex[:8]}", KeySpec(key_type=KeyType.AES_256))
    stack = KeyStack(config=StackConfig(wrapping_keys=(key.ref,)), providers={"aws-kms": provider})
    with stack:
        legit = stack.encrypt(PAYLOAD)
        hostile = _message([_edk(f"xx-nope-{i}") for i in range(1, 6)])
        hosts.clear()
        for _ in range(3):  # more than enough to open a breaker counting them (5 failures)
            with pytest.raises(DecryptionError, match="region xx-nope-1 is outside") as raised:
                stack.decrypt(hostile)
        assert hosts == []  # never sent: no client was even asked
        assert 'regions = ["xx-nope-1"]' in str(raised.value)  # what would allow it
        breaker = stack.breaker("aws-kms")
        assert breaker.state is BreakerState.CLOSED
        assert breaker.consecutive_failures == 0
        assert stack.decrypt(legit) == PAYLOAD
        assert stack.encrypt(b"still served")


@pytest.mark.parametrize("allowed_by", ["discovery.regions", "a configured key"])
def test_a_listed_region_is_still_used(internet: tuple[Any, list[str]], allowed_by: str) -> None:
    """Multi-region deployments keep working: a region the configuration names is called."""
    session, hosts = internet
    discovery: dict[str, Any] = {"accounts": [ACCOUNT]}
    configured: tuple[KeyRef, ...] = ()
    if allowed_by == "discovery.regions":
        discovery["regions"] = ["eu-west-1"]
    else:
        configured = (
            KeyRef.parse(f"aws-kms://arn:aws:kms:eu-west-1:{ACCOUNT}:key/{uuid.uuid4()}"),
        )
    provider = _provider(session(), region="us-east-1", discovery=discovery)
    assert "eu-west-1" in provider.discovery_regions(configured)
    stack = KeyStack(config=StackConfig(wrapping_keys=configured), providers={"aws-kms": provider})
    with stack, pytest.raises(ProviderUnavailable, match="could not be reached"):
        stack.decrypt(_message([_edk("eu-west-1")]))
    assert set(hosts) == {"kms.eu-west-1.amazonaws.com"}  # unreachable here, but asked


def test_a_multi_region_key_is_not_moved_to_a_made_up_region(
    internet: tuple[Any, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a provider region an MRK's EDK keeps its region; only configured ones are used."""
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    session, hosts = internet
    mrk = f"mrk-{uuid.uuid4().hex}"
    configured = KeyRef.parse(f"aws-kms://arn:aws:kms:us-east-1:{ACCOUNT}:key/{mrk}")
    provider = _provider(session(None))
    owner = provider.owner_of(_edk("xx-nope-1", mrk))
    assert owner is not None
    assert owner.key_id.split(":")[3] == "xx-nope-1"  # kept: no provider region to move it to
    stack = KeyStack(
        config=StackConfig(wrapping_keys=(configured,)), providers={"aws-kms": provider}
    )
    with stack, pytest.raises(DecryptionError, match="region xx-nope-1 is outside"):
        stack.decrypt(_message([_edk("xx-nope-1", mrk)]))
    assert hosts == []


# -- malformed regions ---------------------------------------------------------------


@pytest.mark.parametrize(
    "region", ["bad.region", "us-east-1\n", "US-EAST-1", "us_east_1", "", "x-1", "us-east-1/x"]
)
def test_an_arn_with_a_malformed_region_is_not_a_kms_arn(region: str) -> None:
    text = f"arn:aws:kms:{region}:{ACCOUNT}:key/{uuid.uuid4()}"
    assert KmsArn.parse(text) is None
    with pytest.raises(ConfigError):  # as a key reference (KeyRef itself refuses some)
        check_ref(KeyRef(scheme="aws-kms", key_id=text))


@pytest.mark.parametrize("region", ["us-east-1", "us-gov-west-1", "cn-north-1", "eusc-de-east-1"])
def test_real_region_names_parse(region: str) -> None:
    arn = KmsArn.parse(f"arn:aws:kms:{region}:{ACCOUNT}:key/{uuid.uuid4()}")
    assert arn is not None
    assert arn.region == region


def test_a_key_reference_with_a_malformed_region_says_what_is_wrong() -> None:
    ref = KeyRef(scheme="aws-kms", key_id=f"arn:aws:kms:bad.region:{ACCOUNT}:key/k")
    with pytest.raises(
        ConfigError, match=r"names region 'bad\.region', which is not an AWS region"
    ):
        check_ref(ref)


def test_a_malformed_region_in_an_edk_is_skipped_and_the_next_edk_decrypts(
    make_provider: Any,
) -> None:
    """botocore's InvalidRegionError used to escape decrypt before the good EDK was tried."""
    provider = make_provider(discovery={"accounts": [ACCOUNT]})
    key = provider.create_key(f"own-{uuid.uuid4().hex[:8]}", KeySpec(key_type=KeyType.AES_256))
    data_key, real = provider.generate_data_key(key.ref, 32, EncryptionContext())
    poison = _edk("bad.region")
    message = unsigned_message(
        data_key=bytes(data_key),
        message_id=os.urandom(32),
        context=b"",
        edks=[poison, real.encrypted],
        plaintext=PAYLOAD,
    )
    assert provider.owner_of(poison) is None
    with pytest.raises(DecryptionError):
        provider.unwrap(key.ref, poison, EncryptionContext())
    with KeyStack(providers={"aws-kms": provider}) as stack:
        assert stack.decrypt(message) == PAYLOAD


# -- the option ---------------------------------------------------------------------


def test_discovery_regions_option() -> None:
    options = AwsKmsOptions.from_mapping(
        {"discovery": {"accounts": "*", "partition": "aws", "regions": ["eu-west-1"]}}
    )
    assert options.discovery.any_account
    assert options.discovery.regions == ("eu-west-1",)
    assert options.discovery.allows("aws", "444455556666")
    assert not options.discovery.allows("aws-cn", "444455556666")  # "*" keeps its partition
    assert AwsKmsOptions.from_mapping({"discovery": True}).discovery.allows("aws-cn", ACCOUNT)


@pytest.mark.parametrize(
    "value",
    [
        {"accounts": [ACCOUNT], "regions": ["bad.region"]},
        {"accounts": [ACCOUNT], "regions": "eu-west-1"},
        {"accounts": "any"},
    ],
)
def test_bad_discovery_regions(value: Any) -> None:
    with pytest.raises(ConfigError, match="discovery"):
        AwsKmsOptions.from_mapping({"discovery": value})
