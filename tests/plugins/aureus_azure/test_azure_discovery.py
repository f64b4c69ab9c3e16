"""Which vaults a decrypt without ``keys=`` may contact, and how stale a public key may get.

The attack: the ``kid`` in an ``aureus-azure-kv`` encrypted data key names
any host.  The provider would send that host its bearer token with a key
lookup and an ``unwrapkey`` request; a message wrapped under a key in the
attacker's vault would be decrypted and accepted as the victim's own.  The
victim's stack must not contact the attacker's vault at all.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from aureus_azure import AzureKeyVaultProvider
from aureus_azure.plugin import create_provider
from aureus_azure.provider import VaultDiscovery
from aureus_azure.testing import KeyVaultEmulator
from aureus_core import KeyStack
from aureus_core.config import StackConfig
from aureus_core.errors import ConfigError, DecryptionError, KeyDisabled
from aureus_core.interfaces import ProviderSettings
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyState, KeyType
from aureus_core.testing.clock import FakeClock
from aureus_core.testing.counting import CountingProvider

PAYLOAD = b"pay 100 to account 42"
WRAP = KeySpec(key_type=KeyType.RSA_2048, options={"purpose": "wrap"})


ATTACKER_VAULT = "attacker.vault.azure.net"


class Vaults:
    """The victim's vault and the attacker's, both served by one emulator.

    The emulator answers for whichever host a request was meant for, so the
    attacker's vault is the emulator under another name: its keys are the
    ones named ``evil-…``, and a request for one of them is a request the
    victim sent to the attacker's vault.
    """

    def __init__(self, emulator: KeyVaultEmulator) -> None:
        self.emulator = emulator
        self.victim = emulator.host
        self.attacker = ATTACKER_VAULT
        self.endpoints = {self.victim: emulator.url, self.attacker: emulator.url}

    def provider(self, vault: str | None = None, **options: Any) -> AzureKeyVaultProvider:
        """A provider whose endpoints map keeps both vaults off the network."""
        provider: AzureKeyVaultProvider = self.emulator.provider(
            vault=vault or self.victim, endpoints=self.endpoints, **options
        )
        return provider

    def requests_for(self, key: KeyRef, since: int) -> list[tuple[str, str]]:
        """Requests about ``key`` the emulator received after the first ``since``."""
        name = f"/keys/{key.key_id.split('/')[-1]}"
        return [r for r in self.emulator.requests[since:] if name + "/" in r[1] + "/"]


@pytest.fixture
def vaults(azure_key_vault: KeyVaultEmulator) -> Vaults:
    azure_key_vault.clear_faults()
    return Vaults(azure_key_vault)


@pytest.fixture
def attacker_message(vaults: Vaults) -> tuple[bytes, KeyRef]:
    """A message wrapped, the ordinary way, under a key in the attacker's vault."""
    attacker = vaults.provider(vault=vaults.attacker)
    key = attacker.create_key(f"evil-{os.urandom(4).hex()}", WRAP)
    with KeyStack(providers={"azure-kv": attacker}) as stack:
        return stack.encrypt(PAYLOAD, keys=[key.uri]), key.ref


def test_a_key_in_another_vault_is_never_contacted(
    vaults: Vaults, attacker_message: tuple[bytes, KeyRef]
) -> None:
    message, attacker_key = attacker_message
    counting = CountingProvider(vaults.provider())
    seen = len(vaults.emulator.requests)
    stack = KeyStack(providers={"azure-kv": counting})
    with stack, pytest.raises(DecryptionError) as raised:
        stack.decrypt(message)
    assert counting.unwraps == 0
    assert vaults.emulator.requests[seen:] == []  # no token, no request left the stack
    text = str(raised.value)
    assert f"azure-kv://{attacker_key.key_id}?version=" in text
    assert f"vault {ATTACKER_VAULT} is outside the azure-kv discovery scope" in text
    assert f'discovery = {{ vaults = ["{ATTACKER_VAULT}"] }}' in text


@pytest.mark.parametrize("discovery", [True, "*", "listed"])
def test_an_explicit_discovery_scope_lets_the_vault_through(
    vaults: Vaults, attacker_message: tuple[bytes, KeyRef], discovery: Any
) -> None:
    message, attacker_key = attacker_message
    value = {"vaults": [ATTACKER_VAULT]} if discovery == "listed" else discovery
    config = vaults.emulator.stack_config(endpoints=vaults.endpoints, discovery=value)
    seen = len(vaults.emulator.requests)
    with KeyStack.from_dict(config) as stack:  # the option as a configuration file gives it
        assert stack.decrypt(message) == PAYLOAD
    sent = vaults.requests_for(attacker_key, seen)
    assert any(path.endswith("/unwrapkey") for _, path in sent)


def test_configured_keys_and_the_default_vault(
    vaults: Vaults, attacker_message: tuple[bytes, KeyRef]
) -> None:
    message, attacker_key = attacker_message
    reader = vaults.provider()
    config = StackConfig(wrapping_keys=(attacker_key,))
    with KeyStack(config=config, providers={"azure-kv": reader}) as stack:
        assert stack.decrypt(message) == PAYLOAD  # the configuration names this key
    with KeyStack(providers={"azure-kv": reader}) as stack:
        assert stack.decrypt(message, keys=[attacker_key]) == PAYLOAD  # strict mode
        own = reader.create_key(f"own-{os.urandom(4).hex()}", WRAP)
        mine = stack.encrypt(PAYLOAD, keys=[own.uri])
        assert stack.decrypt(mine) == PAYLOAD  # the default vault is in scope
    closed = vaults.provider(discovery=VaultDiscovery.from_options(False))
    with KeyStack(providers={"azure-kv": closed}) as stack:
        seen = len(vaults.emulator.requests)
        with pytest.raises(DecryptionError, match=f"vault {vaults.victim} is outside"):
            stack.decrypt(mine)
        assert vaults.emulator.requests[seen:] == []


@pytest.mark.parametrize(
    "value", [{"vaults": []}, {"vaults": ["not a host"]}, {"accounts": ["1"]}, "yes", 1]
)
def test_bad_discovery_options(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"(discovery|vault host)"):
        create_provider(ProviderSettings(options={"discovery": value}))


@pytest.mark.parametrize("ttl", [-1, 86401, float("nan"), True])
def test_public_key_ttl_is_bounded(ttl: Any) -> None:
    with pytest.raises(ConfigError, match="public_key_ttl"):
        create_provider(ProviderSettings(options={"public_key_ttl": ttl}))


# -- stale public keys -------------------------------------------------------------


def _two_versions(provider: AzureKeyVaultProvider, stack: KeyStack) -> tuple[KeyRef, Any]:
    """A signing key whose first version signed a message and whose second is now current."""
    key = provider.create_key(f"sig-{os.urandom(4).hex()}", KeySpec(key_type=KeyType.ECDSA_P256))
    signature = stack.sign(PAYLOAD, key=key.ref)
    stack.rotate_key(key.ref)
    return key.ref, signature


def _lookups(vaults: Vaults, since: int, version: str) -> int:
    return sum(
        1
        for method, path in vaults.emulator.requests[since:]
        if method == "GET" and path.split("?")[0].endswith(version)
    )


def test_disabling_through_the_stack_drops_the_cached_public_key(vaults: Vaults) -> None:
    provider = vaults.provider()
    with KeyStack(providers={"azure-kv": provider}) as stack:
        ref, signature = _two_versions(provider, stack)
        assert stack.verify(PAYLOAD, signature, key=ref) is True
        old = ref.with_version(signature.key_version)
        stack.set_version_state(old, KeyState.DISABLED)
        with pytest.raises(KeyDisabled, match="is disabled"):
            stack.verify(PAYLOAD, signature, key=ref)  # no clock movement: the entry was dropped
        stack.set_version_state(old, KeyState.ENABLED)
        assert stack.verify(PAYLOAD, signature, key=ref) is True


def test_a_version_disabled_elsewhere_is_noticed_after_the_ttl(vaults: Vaults) -> None:
    clock = FakeClock()
    provider = vaults.provider(clock=clock.monotonic)
    with KeyStack(providers={"azure-kv": provider}) as stack:
        ref, signature = _two_versions(provider, stack)
        assert stack.verify(PAYLOAD, signature, key=ref) is True
        name = ref.key_id.split("/")[-1]
        client = vaults.emulator.key_client()  # another client, not Aureus
        client.update_key_properties(name, signature.key_version, enabled=False)
        client.close()
        since = len(vaults.emulator.requests)
        clock.advance(299.0)
        assert stack.verify(PAYLOAD, signature, key=ref) is True  # within the 300 s default TTL
        assert _lookups(vaults, since, signature.key_version) == 0
        clock.advance(1.0)
        with pytest.raises(KeyDisabled):
            stack.verify(PAYLOAD, signature, key=ref)
        assert _lookups(vaults, since, signature.key_version) == 1
