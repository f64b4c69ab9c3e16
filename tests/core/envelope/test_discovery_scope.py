"""How a decrypt composes ``keys=``, ``decrypt_allow``, configured keys and a provider scope.

A provider that implements ``discovery_refusal`` (the cloud providers do) is
asked before any unwrap in discovery mode; the local provider does not, and
keeps decrypting whatever its keystore can open.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from aureus_core import DecryptionError, KeyStack, hookimpl
from aureus_core.config import StackConfig
from aureus_core.datakey import EncryptedDataKey
from aureus_core.envelope.keyring import MAX_NAMED_SKIPS
from aureus_core.errors import ConfigError
from aureus_core.interfaces import (
    Capability,
    KeyProvider,
    KeyProviderBase,
    ProviderSettings,
    ScopesDiscovery,
)
from aureus_core.keyref import KeyRef
from aureus_core.plugins import PluginHost
from aureus_core.testing import forge
from aureus_core.testing.counting import CountingProvider


class ScopedProvider(CountingProvider):
    """The local provider, counting its calls, with a discovery scope of some key names."""

    def __init__(self, inner: KeyProvider, scope: Sequence[str]) -> None:
        super().__init__(inner)
        self.scope = set(scope)
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def discovery_refusal(self, key: KeyRef, named: Sequence[KeyRef]) -> str | None:
        self.asked.append((key.uri, tuple(n.uri for n in named)))
        if key.key_id in self.scope or any(n.key_id == key.key_id for n in named):
            return None
        return f"{key.key_id} is outside the test scope: set [providers.local] scope"


@pytest.fixture
def message(stack: KeyStack) -> bytes:
    return stack.encrypt(b"secret", keys=["local://beta", "local://gamma"])


def _reader(
    stack: KeyStack, scope: Sequence[str], **config: Any
) -> tuple[KeyStack, ScopedProvider]:
    scoped = ScopedProvider(stack.provider("local"), scope)
    assert isinstance(scoped, ScopesDiscovery)
    reader = KeyStack(config=StackConfig(**config), providers={"local": scoped})
    return reader, scoped


def test_a_key_outside_the_scope_is_never_unwrapped(stack: KeyStack, message: bytes) -> None:
    reader, scoped = _reader(stack, scope=[])
    with reader, pytest.raises(DecryptionError) as raised:
        reader.decrypt(message)
    assert scoped.unwraps == 0
    assert str(raised.value).startswith(
        "the message could not be decrypted: none of its 2 encrypted data key(s) could be "
        "unwrapped with a key this stack may use (not used: local://beta?version=1: beta is "
        "outside the test scope: set [providers.local] scope; not used: local://gamma?version=1: "
        "gamma is outside the test scope: set [providers.local] scope)"
    )


def test_scope_configured_keys_strict_keys_and_patterns(stack: KeyStack, message: bytes) -> None:
    reader, scoped = _reader(stack, scope=["gamma"])
    with reader:
        assert reader.decrypt(message) == b"secret"
    assert scoped.unwraps == 1
    assert scoped.asked[0] == ("local://beta?version=1", ())  # beta refused, gamma used

    named = (KeyRef.parse("local://beta"),)
    reader, scoped = _reader(stack, scope=[], wrapping_keys=named)
    with reader:
        assert reader.decrypt(message) == b"secret"  # the configuration names beta
    # Every candidate is vetted before the unwraps start together: gamma is
    # asked about too, and refused, so only beta is unwrapped.
    assert scoped.asked == [
        ("local://beta?version=1", ("local://beta",)),
        ("local://gamma?version=1", ("local://beta",)),
    ]
    assert scoped.unwraps == 1

    reader, scoped = _reader(stack, scope=[])
    with reader:
        assert reader.decrypt(message, keys=["local://gamma"]) == b"secret"  # strict: no scope
    assert scoped.asked == []

    reader, scoped = _reader(stack, scope=["beta", "gamma"], decrypt_allow=("local://alpha",))
    with reader, pytest.raises(DecryptionError, match="decrypt_allow does not match it"):
        reader.decrypt(message)  # the patterns narrow the scope
    assert scoped.unwraps == 0


def test_the_error_names_a_bounded_number_of_keys(stack: KeyStack, tmp_path: Path) -> None:
    names = [f"k{i}" for i in range(MAX_NAMED_SKIPS + 2)]
    for name in names:
        stack.create_key(f"local://{name}", "aes-256")
    message = stack.encrypt(b"secret", keys=[f"local://{n}" for n in names])
    reader, scoped = _reader(stack, scope=[])
    with reader, pytest.raises(DecryptionError) as raised:
        reader.decrypt(message)
    text = str(raised.value)
    assert [n for n in names if f"local://{n}?version=1" in text] == names[:MAX_NAMED_SKIPS]
    assert "and 2 more key(s) not used" in text
    assert scoped.unwraps == 0


def test_the_local_provider_keeps_discovery(stack: KeyStack, message: bytes) -> None:
    assert not hasattr(stack.provider("local"), "discovery_refusal")
    assert stack.decrypt(message) == b"secret"  # beta and gamma are not configured


# -- a provider ID never starts a provider the stack is not configured with --------


def _probe_message() -> bytes:
    """A well-formed message whose one data key names the provider ``probe``."""
    edk = EncryptedDataKey(provider_id="aureus-probe", provider_info=b"probe://k", ciphertext=b"x")
    return forge.unsigned_message(
        data_key=os.urandom(32),
        message_id=os.urandom(32),
        context=forge.serialize_context({}),
        edks=[edk],
        plaintext=b"attacker's choice of provider",
    )


def _probe_host(aureus_host: PluginHost, started: list[dict[str, Any]], fails: bool) -> None:
    class Probe(KeyProviderBase):
        scheme = "probe"
        capabilities = frozenset({Capability.WRAP})

    def factory(settings: ProviderSettings) -> KeyProvider:
        started.append(dict(settings.options))
        if fails:
            raise ConfigError("[providers.probe] endpoint: not a URL")
        return Probe()

    class Plugin:
        @hookimpl
        def aureus_register_key_providers(self, registry: Any) -> None:
            registry.register("probe", factory)

    aureus_host.register(Plugin(), name="probe")


def test_a_message_cannot_make_the_stack_start_a_provider(aureus_host: PluginHost) -> None:
    # A hostile message names a registered provider this stack was never configured
    # with (in real life a cloud client that would look for ambient credentials or
    # query a metadata server): decrypt must not start it.
    started: list[dict[str, Any]] = []
    _probe_host(aureus_host, started, fails=False)
    with KeyStack(host=aureus_host) as stack, pytest.raises(DecryptionError) as raised:
        stack.decrypt(_probe_message())
    assert started == []
    assert "keys of provider 'probe' were not tried: this stack is not configured with it" in str(
        raised.value
    )
    # naming one of its keys, or configuring it, is what starts it
    with KeyStack(host=aureus_host) as stack, pytest.raises(DecryptionError):
        stack.decrypt(_probe_message(), keys=["probe://k"])
    assert started == [{}]
    config = StackConfig(providers={"probe": {"region": "eu"}})
    with KeyStack(host=aureus_host, config=config) as stack, pytest.raises(DecryptionError):
        stack.decrypt_batch([_probe_message()])
    assert started == [{}, {"region": "eu"}]


def test_a_configured_provider_that_cannot_start_says_why(aureus_host: PluginHost) -> None:
    # Before, the start-up error was swallowed and the decrypt failed as if no key fitted.
    started: list[dict[str, Any]] = []
    _probe_host(aureus_host, started, fails=True)
    config = StackConfig(providers={"probe": {"endpoint": "nowhere"}})
    with KeyStack(host=aureus_host, config=config) as stack, pytest.raises(ConfigError) as raised:
        stack.decrypt(_probe_message())
    assert "[providers.probe] endpoint: not a URL" in str(raised.value)


def test_an_empty_keys_list_is_refused_not_read_as_every_key(tmp_path: Path) -> None:
    """An allow-list computed per caller can come out empty; it must not become discovery.

    Before, ``keys=[]`` was read like ``keys=None``: the configured keys and every key the
    providers reach, so tenant A's empty list decrypted tenant B's message.
    """
    import asyncio

    from aureus_core.aio import AsyncKeyStack

    with KeyStack.local(tmp_path / "ks") as stack:
        stack.create_key("tenant-a", "aes-256")
        stack.create_key("tenant-b", "aes-256")
        message = stack.encrypt(b"tenant B data", keys=["local://tenant-b"])
        with pytest.raises(DecryptionError):
            stack.decrypt(message, keys=["local://tenant-a"])
        refusal = (
            r"^keys is empty, so it names no key to decrypt with: name at least one key, "
            r"or leave keys out \(None\) to use the stack's configured keys$"
        )
        empties: tuple[list[str], tuple[str, ...]] = ([], ())
        for empty in empties:
            with pytest.raises(ConfigError, match=refusal):
                stack.decrypt(message, keys=empty)
            with pytest.raises(ConfigError, match=refusal):
                stack.decrypt_batch([message], keys=empty)
            with pytest.raises(ConfigError, match=refusal):
                stack.rewrap(message, to_keys=["local://tenant-a"], keys=empty)
            with pytest.raises(ConfigError, match=refusal):
                stack.decrypt_stream(io.BytesIO(message), io.BytesIO(), keys=empty)
            wrap_refusal = refusal.replace("decrypt with", "wrap the data key with")
            with pytest.raises(ConfigError, match=wrap_refusal):
                stack.encrypt(b"x", keys=empty)
            with pytest.raises(ConfigError, match=wrap_refusal):
                stack.encrypt_batch([b"x"], keys=empty)

        async def asynchronous() -> None:
            astack = AsyncKeyStack(stack)
            with pytest.raises(ConfigError, match=refusal):
                await astack.decrypt(message, keys=[])

        asyncio.run(asynchronous())
        # Leaving keys out still means the configured keys and the local keystore's.
        assert stack.decrypt(message) == b"tenant B data"
