"""Which Cloud KMS keys a decrypt without ``keys=`` may contact, and how stale a public key gets.

The attack: the project, location and key in an ``aureus-gcp-kms`` encrypted
data key are whatever the message's author wrote.  A message wrapped under a
key in the attacker's own project (whose IAM lets the victim decrypt) would
be decrypted and accepted as the victim's own.  The victim's stack must not
even send that ``Decrypt``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from google.cloud import kms

from aureus_core import KeyStack
from aureus_core.config import StackConfig
from aureus_core.errors import ConfigError, DecryptionError, KeyDisabled
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyState, KeyType
from aureus_core.testing.clock import FakeClock
from aureus_core.testing.counting import CountingProvider
from aureus_gcp import GcpKmsOptions, GcpKmsProvider
from aureus_gcp.testing import CloudKmsEmulator

PAYLOAD = b"pay 100 to account 42"
ATTACKER_PROJECT = "attacker-project"


def _decrypts(gcp_kms: CloudKmsEmulator, since: int) -> list[str]:
    return [c.resource for c in gcp_kms.calls[since:] if c.method == "Decrypt"]


@pytest.fixture
def attacker_message(
    make_gcp_provider: Callable[..., GcpKmsProvider], key_ring: str
) -> tuple[bytes, KeyRef]:
    """A message wrapped, the ordinary way, under a key in another project."""
    attacker = make_gcp_provider(project=ATTACKER_PROJECT, location="europe-west1")
    key = attacker.create_key(f"evil-{uuid.uuid4().hex[:8]}", KeySpec(key_type=KeyType.AES_256))
    with KeyStack(providers={"gcp-kms": attacker}) as stack:
        return stack.encrypt(PAYLOAD, keys=[key.uri]), key.ref


def test_a_key_in_another_project_is_never_sent_to_cloud_kms(
    gcp_kms: CloudKmsEmulator,
    gcp_provider: GcpKmsProvider,
    attacker_message: tuple[bytes, KeyRef],
) -> None:
    message, attacker_key = attacker_message
    counting = CountingProvider(gcp_provider)
    since = len(gcp_kms.calls)
    stack = KeyStack(providers={"gcp-kms": counting})
    with stack, pytest.raises(DecryptionError) as raised:
        stack.decrypt(message)
    assert counting.unwraps == 0
    assert gcp_kms.calls[since:] == []
    text = str(raised.value)
    assert f"gcp-kms://{attacker_key.key_id}?version=1" in text
    assert f"project {ATTACKER_PROJECT} is outside the gcp-kms discovery scope" in text
    assert f'discovery = {{ projects = ["{ATTACKER_PROJECT}"] }}' in text


@pytest.mark.parametrize(
    "discovery",
    [
        True,
        "*",
        {"projects": [ATTACKER_PROJECT]},
        {"projects": [ATTACKER_PROJECT], "locations": ["europe-west1"]},
    ],
)
def test_an_explicit_discovery_scope_lets_the_project_through(
    gcp_kms: CloudKmsEmulator,
    make_gcp_provider: Callable[..., GcpKmsProvider],
    attacker_message: tuple[bytes, KeyRef],
    discovery: Any,
) -> None:
    message, attacker_key = attacker_message
    since = len(gcp_kms.calls)
    with KeyStack(providers={"gcp-kms": make_gcp_provider(discovery=discovery)}) as stack:
        assert stack.decrypt(message) == PAYLOAD
    assert _decrypts(gcp_kms, since) == [attacker_key.key_id]


def test_a_location_outside_the_scope_is_refused(
    gcp_kms: CloudKmsEmulator,
    make_gcp_provider: Callable[..., GcpKmsProvider],
    attacker_message: tuple[bytes, KeyRef],
) -> None:
    message, _ = attacker_message
    scope = {"projects": [ATTACKER_PROJECT], "locations": ["us-east1"]}
    since = len(gcp_kms.calls)
    stack = KeyStack(providers={"gcp-kms": make_gcp_provider(discovery=scope)})
    with stack, pytest.raises(DecryptionError, match="location europe-west1 is outside"):
        stack.decrypt(message)
    assert gcp_kms.calls[since:] == []


def test_configured_keys_and_the_project_option(
    gcp_kms: CloudKmsEmulator,
    make_gcp_provider: Callable[..., GcpKmsProvider],
    attacker_message: tuple[bytes, KeyRef],
) -> None:
    message, attacker_key = attacker_message
    reader = make_gcp_provider()  # project aureus-tests: its own keys are in scope
    config = StackConfig(wrapping_keys=(attacker_key,))
    with KeyStack(config=config, providers={"gcp-kms": reader}) as stack:
        assert stack.decrypt(message) == PAYLOAD  # the configuration names this key
    with KeyStack(providers={"gcp-kms": reader}) as stack:
        assert stack.decrypt(message, keys=[attacker_key]) == PAYLOAD  # strict mode
        own = stack.create_key(f"gcp-kms://own-{uuid.uuid4().hex[:8]}", "aes-256")
        assert stack.decrypt(stack.encrypt(PAYLOAD, keys=[own.uri])) == PAYLOAD
    closed = make_gcp_provider(discovery=False)  # configured keys only
    with KeyStack(providers={"gcp-kms": closed}) as stack:
        mine = stack.encrypt(PAYLOAD, keys=[own.uri])
        since = len(gcp_kms.calls)
        with pytest.raises(DecryptionError, match="project aureus-tests is outside"):
            stack.decrypt(mine)
        assert gcp_kms.calls[since:] == []


@pytest.mark.parametrize(
    "value",
    [
        {"projects": []},
        {"projects": ["Bad_Project"]},
        {"locations": ["x"]},
        "yes",
        1,
        {"vaults": []},
    ],
)
def test_bad_discovery_options(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"(discovery|project)"):
        GcpKmsOptions.from_mapping({"discovery": value})


# -- stale public keys -------------------------------------------------------------


def _fetches(gcp_kms: CloudKmsEmulator, since: int) -> int:
    return sum(1 for c in gcp_kms.calls[since:] if c.method == "GetPublicKey")


def _two_versions(provider: GcpKmsProvider, stack: KeyStack) -> tuple[KeyRef, Any]:
    """A signing key whose version 1 signed a message and version 2 is now current."""
    key = provider.create_key(f"sig-{uuid.uuid4().hex[:8]}", KeySpec(key_type=KeyType.ECDSA_P256))
    signature = stack.sign(PAYLOAD, key=key.ref)
    assert signature.key_version == "1"
    stack.rotate_key(key.ref)
    return key.ref, signature


def test_disabling_through_the_stack_drops_the_cached_public_key(
    gcp_kms: CloudKmsEmulator, gcp_provider: GcpKmsProvider
) -> None:
    with KeyStack(providers={"gcp-kms": gcp_provider}) as stack:
        ref, signature = _two_versions(gcp_provider, stack)
        assert stack.verify(PAYLOAD, signature, key=ref) is True
        since = len(gcp_kms.calls)
        stack.set_version_state(ref.with_version("1"), KeyState.DISABLED)
        with pytest.raises(KeyDisabled, match="version 1"):
            stack.verify(PAYLOAD, signature, key=ref)  # no clock movement: the entry was dropped
        assert _fetches(gcp_kms, since) == 1
        stack.set_version_state(ref.with_version("1"), KeyState.ENABLED)
        assert stack.verify(PAYLOAD, signature, key=ref) is True


def test_a_version_disabled_elsewhere_is_noticed_after_the_ttl(
    gcp_kms: CloudKmsEmulator, ring_options: dict[str, str]
) -> None:
    clock = FakeClock()
    options = GcpKmsOptions.from_mapping(gcp_kms.provider_options(**ring_options))
    provider = GcpKmsProvider(options, clock=clock.monotonic)
    with KeyStack(providers={"gcp-kms": provider}) as stack:
        ref, signature = _two_versions(provider, stack)
        assert stack.verify(PAYLOAD, signature, key=ref) is True
        client = gcp_kms.client()
        try:  # another client, not Aureus
            client.update_crypto_key_version(
                crypto_key_version=kms.CryptoKeyVersion(
                    name=f"{ref.key_id}/cryptoKeyVersions/1",
                    state=kms.CryptoKeyVersion.CryptoKeyVersionState.DISABLED,
                ),
                update_mask={"paths": ["state"]},
            )
        finally:
            client.transport.close()
        since = len(gcp_kms.calls)
        clock.advance(299.0)
        assert stack.verify(PAYLOAD, signature, key=ref) is True  # within the 300 s default TTL
        assert _fetches(gcp_kms, since) == 0
        clock.advance(1.0)
        with pytest.raises(KeyDisabled):
            stack.verify(PAYLOAD, signature, key=ref)
        assert _fetches(gcp_kms, since) == 1
