"""Which KMS keys a decrypt without ``keys=`` may contact, and how stale a public key may get.

The attack: anyone who can hand the application a message chooses the key ARN
in its encrypted data key.  Wrapped under the attacker's own key (in their
account, with a key policy that lets the victim decrypt), such a message
would be decrypted and accepted as the victim's own.  The victim's stack must
not even send that ``Decrypt``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from aureus_aws import AwsKmsOptions, AwsKmsProvider
from aureus_aws.testing import MotoServer
from aureus_core import KeyStack
from aureus_core.config import StackConfig
from aureus_core.errors import ConfigError, DecryptionError, KeyDisabled
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyState, KeyType
from aureus_core.testing.clock import FakeClock
from aureus_core.testing.counting import CountingProvider

ATTACKER_ACCOUNT = "999999999999"
PAYLOAD = b"pay 100 to account 42"


def _calls(provider: AwsKmsProvider) -> list[tuple[str, str]]:
    """(operation, KeyId) of every KMS request the provider's client sends from now on."""
    seen: list[tuple[str, str]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        seen.append((model.name, str(params.get("KeyId", ""))))

    provider.client().meta.events.register("before-parameter-build.kms.*", record)
    return seen


@pytest.fixture
def attacker_message(moto_server: MotoServer) -> Iterator[tuple[bytes, str]]:
    """A message wrapped, the ordinary way, under a key in another account (the attacker's)."""
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=moto_server.url)
    role = f"arn:aws:iam::{ATTACKER_ACCOUNT}:role/attacker"
    credentials = sts.assume_role(RoleArn=role, RoleSessionName="attacker")["Credentials"]
    session = boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name="us-east-1",
    )
    options = AwsKmsOptions.from_mapping({"region": "us-east-1", "endpoint_url": moto_server.url})
    attacker = AwsKmsProvider(options, session=session)
    key = attacker.create_key(f"evil-{uuid.uuid4().hex[:8]}", KeySpec(key_type=KeyType.AES_256))
    assert key.ref.key_id.split(":")[4] == ATTACKER_ACCOUNT
    with KeyStack(providers={"aws-kms": attacker}) as stack:
        yield stack.encrypt(PAYLOAD, keys=[key.uri]), key.ref.key_id
    attacker.close()


def test_a_key_in_an_unlisted_account_is_never_sent_to_kms(
    make_provider: Any, attacker_message: tuple[bytes, str]
) -> None:
    message, attacker_arn = attacker_message
    victim = make_provider()
    own = victim.create_key(f"own-{uuid.uuid4().hex[:8]}", KeySpec(key_type=KeyType.AES_256))
    counting = CountingProvider(victim)
    calls = _calls(victim)
    config = StackConfig(wrapping_keys=(own.ref,))
    stack = KeyStack(config=config, providers={"aws-kms": counting})
    with stack, pytest.raises(DecryptionError) as raised:
        stack.decrypt(message)
    assert counting.unwraps == 0
    assert calls == []  # not even a DescribeKey: the configured key is named by ARN
    text = str(raised.value)
    assert f"aws-kms://{attacker_arn}" in text
    assert f"account {ATTACKER_ACCOUNT} (partition aws) is outside the aws-kms discovery" in text
    assert f'discovery = {{ partition = "aws", accounts = ["{ATTACKER_ACCOUNT}"] }}' in text


def test_an_explicit_discovery_filter_lets_the_account_through(
    make_provider: Any, attacker_message: tuple[bytes, str]
) -> None:
    message, attacker_arn = attacker_message
    victim = make_provider(discovery={"accounts": [ATTACKER_ACCOUNT]})
    calls = _calls(victim)
    with KeyStack(providers={"aws-kms": victim}) as stack, pytest.raises(DecryptionError):
        stack.decrypt(message)  # moto has no cross-account key policies: KMS refuses
    assert calls == [("Decrypt", attacker_arn)]


@pytest.fixture
def own_message(make_provider: Any) -> tuple[bytes, KeyRef, str]:
    """A message under a key of moto's account that the reading stack does not configure."""
    writer = make_provider()
    name = f"disc-{uuid.uuid4().hex[:8]}"
    key = writer.create_key(name, KeySpec(key_type=KeyType.AES_256))
    with KeyStack(providers={"aws-kms": writer}) as stack:
        return stack.encrypt(PAYLOAD, keys=[key.uri]), key.ref, name


def test_the_default_reaches_only_configured_keys(
    make_provider: Any, own_message: tuple[bytes, KeyRef, str]
) -> None:
    message, ref, alias = own_message
    account = ref.key_id.split(":")[4]
    reader = make_provider()
    calls = _calls(reader)
    with KeyStack(providers={"aws-kms": reader}) as stack:
        with pytest.raises(DecryptionError, match=f"account {account}"):
            stack.decrypt(message)
        assert calls == []
        assert stack.decrypt(message, keys=[ref]) == PAYLOAD  # strict mode names the key
    for named in (ref, KeyRef.parse(f"aws-kms://alias/{alias}")):
        config = StackConfig(wrapping_keys=(named,))
        with KeyStack(config=config, providers={"aws-kms": reader}) as stack:
            assert stack.decrypt(message) == PAYLOAD
    config = StackConfig(signing_key=ref)
    with KeyStack(config=config, providers={"aws-kms": reader}) as stack:
        assert stack.decrypt(message) == PAYLOAD


@pytest.mark.parametrize("discovery", [True, "*", {"accounts": ["123456789012"]}])
def test_opting_in_to_discovery(
    make_provider: Any, own_message: tuple[bytes, KeyRef, str], discovery: Any
) -> None:
    message, ref, _ = own_message
    assert ref.key_id.split(":")[4] == "123456789012"  # moto's default account
    with KeyStack(providers={"aws-kms": make_provider(discovery=discovery)}) as stack:
        assert stack.decrypt(message) == PAYLOAD


def test_decrypt_allow_narrows_but_never_widens(
    make_provider: Any, own_message: tuple[bytes, KeyRef, str]
) -> None:
    message, ref, _ = own_message
    reader = make_provider(discovery=True)
    config = StackConfig(decrypt_allow=("local://*",))
    stack = KeyStack(config=config, providers={"aws-kms": reader})
    with stack, pytest.raises(DecryptionError, match=r"decrypt_allow does not match it"):
        stack.decrypt(message)
    widening = StackConfig(decrypt_allow=(f"aws-kms://{ref.key_id}",))
    stack = KeyStack(config=widening, providers={"aws-kms": make_provider()})
    with stack, pytest.raises(DecryptionError, match="outside the aws-kms discovery scope"):
        stack.decrypt(message)


@pytest.mark.parametrize(
    "value",
    [{"accounts": ["12"]}, {"accounts": []}, {"partition": ""}, "yes", 3, {"vaults": ["x"]}],
)
def test_bad_discovery_options(value: Any) -> None:
    with pytest.raises(ConfigError, match="discovery"):
        AwsKmsOptions.from_mapping({"discovery": value})


@pytest.mark.parametrize("ttl", [-1, 86401, float("nan"), True])
def test_public_key_ttl_is_bounded(ttl: Any) -> None:
    with pytest.raises(ConfigError, match="public_key_ttl"):
        AwsKmsOptions.from_mapping({"public_key_ttl": ttl})


# -- stale public keys -------------------------------------------------------------


@pytest.fixture
def refusing_kms(kms_client: Any) -> Any:
    """Install, on a provider, KMS's key-state rule for ``GetPublicKey`` (a moto gap).

    moto hands out the public key of a disabled key; KMS answers
    ``DisabledException``.  The hook asks moto for the key's real state
    (set by ``DisableKey``) and answers as KMS does when it is disabled.
    """

    def install(provider: AwsKmsProvider) -> list[str]:
        fetched: list[str] = []

        def get_public_key(params: dict[str, Any], **_: Any) -> Any:
            from botocore.awsrequest import AWSResponse

            key_id = json.loads(params["body"])["KeyId"]
            fetched.append(key_id)
            state = kms_client.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]
            if state == "Enabled":
                return None
            body = {
                "Error": {"Code": "DisabledException", "Message": f"{key_id} is disabled."},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            return AWSResponse("", 400, {}, None), body

        provider.client().meta.events.register("before-call.kms.GetPublicKey", get_public_key)
        return fetched

    return install


@pytest.fixture
def signer(moto_server: MotoServer) -> Iterator[tuple[AwsKmsProvider, FakeClock]]:
    clock = FakeClock()
    options = AwsKmsOptions.from_mapping({"region": "us-east-1", "endpoint_url": moto_server.url})
    provider = AwsKmsProvider(options, clock=clock.monotonic)
    yield provider, clock
    provider.close()


def test_disabling_through_the_stack_drops_the_cached_public_key(
    signer: tuple[AwsKmsProvider, FakeClock], refusing_kms: Any
) -> None:
    provider, _ = signer
    fetched = refusing_kms(provider)
    key = provider.create_key(f"sig-{uuid.uuid4().hex[:8]}", KeySpec(key_type=KeyType.ECDSA_P256))
    with KeyStack(providers={"aws-kms": provider}) as stack:
        signature = stack.sign(PAYLOAD, key=key.ref)
        assert signature.key_version == "1"  # the signature pins the key's only version
        assert stack.verify(PAYLOAD, signature) is True
        assert len(fetched) == 1
        stack.provider("aws-kms").set_version_state(key.ref, KeyState.DISABLED)
        with pytest.raises(KeyDisabled, match="enable the key") as raised:
            stack.verify(PAYLOAD, signature)  # no clock movement: the entry was dropped
        assert raised.value.code == "DisabledException"
        assert len(fetched) == 2
        stack.provider("aws-kms").set_version_state(key.ref, KeyState.ENABLED)
        assert stack.verify(PAYLOAD, signature) is True


def test_a_key_disabled_elsewhere_is_noticed_after_the_ttl(
    signer: tuple[AwsKmsProvider, FakeClock], refusing_kms: Any, kms_client: Any
) -> None:
    provider, clock = signer
    fetched = refusing_kms(provider)
    key = provider.create_key(f"sig-{uuid.uuid4().hex[:8]}", KeySpec(key_type=KeyType.ECDSA_P256))
    signature = provider.sign(key.ref, PAYLOAD)
    pinned = key.ref.with_version("1")
    assert provider.verify(pinned, PAYLOAD, signature.value) is True
    kms_client.disable_key(KeyId=key.ref.key_id.rsplit("/", 1)[-1])  # not through Aureus
    clock.advance(299.0)
    assert provider.verify(pinned, PAYLOAD, signature.value) is True  # within the TTL
    assert len(fetched) == 1
    clock.advance(1.0)  # the default public_key_ttl, 300 s, has passed
    with pytest.raises(KeyDisabled):
        provider.verify(pinned, PAYLOAD, signature.value)
    assert len(fetched) == 2


def test_a_key_name_no_uri_can_hold_is_a_decryption_error(make_provider: Any) -> None:
    """The message's bytes name a "key ARN" with a space: not a key, and not a crash either."""
    from aureus_core.context import EncryptionContext
    from aureus_core.datakey import EncryptedDataKey
    from aureus_core.envelope.message import EncryptionMaterials, MessageWriter, encrypt_bytes
    from aureus_core.envelope.suites import DEFAULT_SUITE

    edk = EncryptedDataKey(
        provider_id="aws-kms",
        provider_info=b"arn:aws:kms:us-east-1:123456789012:key/not a key",
        ciphertext=bytes(64),
    )
    materials = EncryptionMaterials(
        suite=DEFAULT_SUITE,
        data_key=bytes(range(32)),
        encrypted_data_keys=(edk,),
        context=EncryptionContext({}),
    )
    message = encrypt_bytes(PAYLOAD, MessageWriter(materials, 4096))
    reader = make_provider(discovery=True)
    calls = _calls(reader)
    stack = KeyStack(providers={"aws-kms": reader})
    with stack, pytest.raises(DecryptionError, match="none of its 1 encrypted data key"):
        stack.decrypt(message)
    assert calls == []
