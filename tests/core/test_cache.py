"""The data-key cache: call counts, limits, isolation, expiry on an injected clock."""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from aureus_builtin.memory_cache import MemoryCache
from aureus_core import ConfigError, KeyStack
from aureus_core.cache import CachePolicy, DataKeyCache
from aureus_core.testing import FakeClock
from aureus_core.testing.counting import CountingProvider
from aureus_local import LocalKeyProvider


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def counting(tmp_path: Path) -> CountingProvider:
    provider = LocalKeyProvider(tmp_path / "ks")
    counting = CountingProvider(provider)
    stack = KeyStack(providers={"local": counting})
    stack.create_key("a", "aes-256")
    stack.create_key("b", "aes-256")
    return counting


def cached_stack(counting: CountingProvider, clock: FakeClock, **policy: Any) -> KeyStack:
    cache = DataKeyCache(MemoryCache(capacity=500), CachePolicy(**policy), clock=clock.monotonic)
    return KeyStack.from_dict(
        {"stack": {"wrapping_keys": ["local://a"]}},
        providers={"local": counting},
        cache=cache,
    )


@pytest.mark.parametrize("max_messages", [1, 7, 100])
def test_exactly_ceil_messages_over_limit_wraps(counting, clock, max_messages):
    stack = cached_stack(counting, clock, max_messages=max_messages)
    messages = [stack.encrypt(b"x" * 100, context={"t": "1"}) for _ in range(1000)]
    assert counting.wraps == math.ceil(1000 / max_messages)
    assert stack.decrypt(messages[-1]) == b"x" * 100


def test_each_context_gets_its_own_data_key(counting, clock):
    stack = cached_stack(counting, clock)
    for index in range(1000):
        stack.encrypt(b"payload", context={"tenant": str(index % 100)})
    assert counting.wraps == 100


def test_isolation_by_keys_suite_and_partition(counting, clock):
    stack = cached_stack(counting, clock)
    stack.encrypt(b"m", keys=["local://a"])
    stack.encrypt(b"m", keys=["local://a"])
    assert counting.wraps == 1
    stack.encrypt(b"m", keys=["local://a", "local://b"])
    assert counting.wraps == 3  # a new entry: two wraps
    stack.encrypt(b"m", keys=["local://b", "local://a"])
    assert counting.wraps == 3  # the same set of keys, another order
    stack.encrypt(b"m", keys=["local://a"], signed=True)
    assert counting.wraps == 4
    other = cached_stack(counting, clock, partition="other")
    other.encrypt(b"m", keys=["local://a"])
    assert counting.wraps == 5


def test_expiry_uses_the_injected_clock(counting, clock):
    stack = cached_stack(counting, clock, max_age=60)
    stack.encrypt(b"m")
    clock.advance(59)
    stack.encrypt(b"m")
    assert counting.wraps == 1
    clock.advance(1)
    stack.encrypt(b"m")
    assert counting.wraps == 2


def test_byte_limit(counting, clock):
    stack = cached_stack(counting, clock, max_bytes=250)
    for _ in range(5):
        stack.encrypt(b"x" * 100)
    # 100 + 100 fit one key; the third message would pass 250 bytes.
    assert counting.wraps == 3


def test_signed_messages_share_a_signing_key_and_decrypt(counting, clock):
    stack = cached_stack(counting, clock)
    one = stack.encrypt(b"first", signed=True)
    two = stack.encrypt(b"second", signed=True)
    assert counting.wraps == 1
    assert stack.decrypt(one) == b"first"
    assert stack.decrypt(two) == b"second"
    assert stack.inspect(one).signed


def test_decrypt_cache_skips_the_provider(counting, clock):
    stack = cached_stack(counting, clock)
    message = stack.encrypt(b"secret", context={"k": "v"})
    for _ in range(10):
        assert stack.decrypt(message) == b"secret"
    assert counting.unwraps == 1
    # A different key filter is a different entry: strict mode is never bypassed.
    assert stack.decrypt(message, keys=["local://a"]) == b"secret"
    assert counting.unwraps == 2
    clock.advance(3600)
    stack.decrypt(message)
    assert counting.unwraps == 3


def test_tampered_message_still_fails_with_a_cached_key(counting, clock):
    from aureus_core import DecryptionError

    stack = cached_stack(counting, clock)
    message = bytearray(stack.encrypt(b"secret"))
    stack.decrypt(bytes(message))
    message[-5] ^= 1
    with pytest.raises(DecryptionError):
        stack.decrypt(bytes(message))


def test_cached_keys_survive_concurrent_eviction(counting, clock):
    """Entries are copied under the lock: eviction elsewhere never zeroes a key in use."""
    cache = DataKeyCache(
        MemoryCache(capacity=2), CachePolicy(max_messages=3), clock=clock.monotonic
    )
    stack = KeyStack.from_dict(
        {"stack": {"wrapping_keys": ["local://a"]}}, providers={"local": counting}, cache=cache
    )

    def work(index: int) -> None:
        context = {"c": str(index % 5)}
        payload = os.urandom(64)
        assert stack.decrypt(stack.encrypt(payload, context=context)) == payload

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(400)))


def test_configured_from_the_cache_table(tmp_path):
    config = {
        "stack": {"wrapping_keys": ["local://k"]},
        "providers": {"local": {"keystore": str(tmp_path)}},
        "cache": {"backend": "memory", "capacity": 10, "max_messages": 5, "max_age": 30},
    }
    with KeyStack.from_dict(config) as stack:
        stack.create_key("k", "aes-256")
        cache = stack.cache
        assert cache is not None
        assert cache.policy == CachePolicy(max_messages=5, max_age=30)
        for _ in range(6):
            stack.encrypt(b"m")
        assert (cache.hits, cache.misses) == (4, 2)


@pytest.mark.parametrize(
    "options", [{"max_age": 0}, {"max_messages": -1}, {"max_bytes": "x"}, {"partition": 3}]
)
def test_invalid_policy(options):
    with pytest.raises(ConfigError, match="cache"):
        CachePolicy.from_options(options)


def test_no_cache_means_one_wrap_per_message(counting):
    stack = KeyStack.from_dict(
        {"stack": {"wrapping_keys": ["local://a"]}}, providers={"local": counting}
    )
    assert stack.cache is None
    for _ in range(20):
        stack.encrypt(b"m")
    assert counting.wraps == 20


def test_repr_shows_no_material(counting, clock):
    stack = cached_stack(counting, clock)
    stack.encrypt(b"m")
    cache = stack.cache
    assert cache is not None
    key = cache.encrypt_key(0x0478, [stack.config.wrapping_keys[0]], stack_context())
    taken = cache.take(key, plaintext_bytes=0)
    assert taken is not None
    text = repr(cache) + repr(cache.backend) + repr(taken)
    assert "entries=1" in text
    assert taken.material.hex() not in text
    assert bytes(taken.material) != bytes(32)


def stack_context():
    from aureus_core import EncryptionContext

    return EncryptionContext()
