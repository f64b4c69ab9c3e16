"""The redis cache backend against a real redis-server: contract, sealing, limits, faults."""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from aureus_redis import RedisCache
from aureus_redis.seal import FORMAT, KEY_ID_BYTES, NONCE_BYTES
from aureus_redis.testing import RedisServer

from aureus_core import ConfigError, KeyStack
from aureus_core.cache import CachePolicy, DataKeyCache
from aureus_core.testing import CacheBackendContract
from aureus_core.testing.cache_contract import (
    fresh_fill,
    stack_encrypt_worker,
    uses_per_key,
)


class TestRedisCacheContract(CacheBackendContract):
    wipes_in_place = False  # Redis keeps sealed copies, not the entries it is given
    distinct_keys = 2**13  # two round trips a key; the names are keyed SHA-256 of the whole key

    @pytest.fixture
    def cache_backend(self, redis_options: dict[str, Any]) -> RedisCache:
        return RedisCache.from_options(redis_options)

    @pytest.fixture
    def stored_bytes(self, server: RedisServer) -> Callable[[], bytes]:
        return lambda: dump(server)

    @pytest.fixture
    def backend_factory(self, redis_options: dict[str, Any]) -> Callable[[], RedisCache]:
        return functools.partial(RedisCache.from_options, redis_options)

    @pytest.fixture
    def backend_outage(self, server: RedisServer) -> Callable[[], AbstractContextManager[None]]:
        @contextmanager
        def outage() -> Iterator[None]:
            server.stop()
            try:
                yield
            finally:
                server.restart()

        return outage


# -- a stack on the redis cache ----------------------------------------------------


@pytest.fixture
def keystore(tmp_path: Path) -> Path:
    path = tmp_path / "ks"
    with KeyStack.local(path) as stack:
        stack.create_key("a", "aes-256")
    return path


def stack_config(keystore: Path, options: dict[str, Any], **policy: Any) -> dict[str, Any]:
    return {
        "stack": {"wrapping_keys": ["local://a"]},
        "providers": {"local": {"keystore": str(keystore)}},
        "cache": {"backend": "redis", **options, **policy},
    }


def dump(server: RedisServer) -> bytes:
    """Everything Redis holds: names, fields and values, as one byte string."""
    client = server.client()
    out = b""
    for name in client.scan_iter(count=1000):
        out += bytes(name)
        fields: dict[bytes, bytes] = client.hgetall(name)  # type: ignore[assignment]
        for field, value in fields.items():
            out += field + value
    return out


def test_a_dump_of_redis_holds_no_data_key_context_or_key_id(server, redis_options, keystore):
    config = stack_config(keystore, redis_options, partition="payments-canary")
    with KeyStack.from_dict(config) as stack:
        message = stack.encrypt(b"m", context={"tenant": "acme-canary-tenant"})
        assert stack.decrypt(message) == b"m"
        cache = stack.cache
        assert cache is not None
        signed = stack.encrypt(b"s", context={"tenant": "acme-canary-tenant"}, signed=True)
        assert stack.decrypt(signed) == b"s"
        entry_key = cache.encrypt_key(0x0478, [stack.config.wrapping_keys[0]], _ctx("acme"))
        taken = cache.take(
            cache.encrypt_key(0x0478, [stack.config.wrapping_keys[0]], _ctx("acme-canary-tenant")),
            plaintext_bytes=1,
        )
        assert taken is not None
        data_key = bytes(taken.material)
    blob = dump(server)
    assert blob.count(b"aureus:dk:e:") == 4  # two encrypt entries, two decrypt entries
    for secret in (
        data_key,
        data_key.hex().encode(),
        base64.b64encode(data_key),
        b"acme-canary-tenant",
        b"payments-canary",
        b"local://a",
        entry_key,
        entry_key.hex().encode(),
    ):
        assert secret not in blob


def _ctx(tenant: str) -> Any:
    from aureus_core import EncryptionContext

    return EncryptionContext.coerce({"tenant": tenant})


def sealed_entries(server: RedisServer) -> dict[bytes, bytes]:
    client = server.client()
    return {
        name: bytes(client.hget(name, "s") or b"")  # type: ignore[arg-type]
        for name in client.scan_iter(match="aureus:dk:e:*")
    }


def test_a_forged_entry_is_dropped_counted_and_never_used(server, redis_options, keystore):
    """An attacker who can write to Redis plants their own data key; it is never used."""
    config = stack_config(keystore, redis_options)
    with KeyStack.from_dict(config) as stack:
        stack.encrypt(b"first", context={"t": "1"})
        cache = stack.cache
        assert cache is not None
        backend = cache.backend
        assert isinstance(backend, RedisCache)
        [(name, sealed)] = sealed_entries(server).items()
        # The attacker's entry, byte by byte: the format byte and the key id copied from
        # the real entry (both public), a nonce, and a "ciphertext" of their choosing.
        forged = bytes([FORMAT]) + sealed[1 : 1 + KEY_ID_BYTES] + b"\x00" * NONCE_BYTES
        forged += b"attacker-chosen-data-key-32-byte" + b"\x00" * 16
        server.client().hset(name, mapping={"s": forged, "m": 0, "b": 0})
        message = stack.encrypt(b"second", context={"t": "1"})
        assert backend.stats["forged"] == 1
        assert stack.decrypt(message) == b"second"
        assert server.client().hget(name, "s") != forged  # replaced by a fresh sealed entry


@pytest.mark.parametrize("field", ["m", "b"])
@pytest.mark.parametrize("value", [-(10**15), -1, 10**15])
def test_a_counter_set_in_redis_never_fails_an_operation(
    server, redis_options, keystore, field, value
):
    """A usage counter is a field anyone who can write to Redis can set (HSET). Before, a
    15-digit one came back from the reservation script as "-1e+15", and int() raised
    ValueError out of encrypt and decrypt; now a counter below what one use gives is
    tampering: the entry is dropped, counted as forged, and the provider is asked."""
    config = stack_config(keystore, redis_options, max_messages=2**32, max_bytes=2**40)
    with KeyStack.from_dict(config) as stack:
        message = stack.encrypt(b"x", context={"t": "1"})
        assert stack.decrypt(message) == b"x"
        cache = stack.cache
        assert cache is not None
        backend = cache.backend
        assert isinstance(backend, RedisCache)
        client = server.client()
        for name in sealed_entries(server):
            client.hset(name, field, value)
        assert stack.encrypt(b"y", context={"t": "1"})
        assert stack.decrypt(message) == b"x"
        # A count rolled below zero is dropped as forged; a large one passes a limit and
        # the entry is dropped as used up. Either way: a miss, never an error.
        if value < 0:
            assert backend.stats["forged"] == 2
        else:
            assert backend.stats["forged"] == 0
        assert backend.stats["faults"] == 0


def test_an_entry_moved_to_another_name_does_not_open(server, redis_options, keystore):
    """The seal binds the entry's name: tenant B's entry copied over tenant A's is refused."""
    config = stack_config(keystore, redis_options)
    with KeyStack.from_dict(config) as stack:
        stack.encrypt(b"a", context={"tenant": "a"})
        before = sealed_entries(server)
        stack.encrypt(b"b", context={"tenant": "b"})
        [name_b] = set(sealed_entries(server)) - set(before)
        [name_a] = before
        client = server.client()
        client.hset(name_a, "s", client.hget(name_b, "s"))
        cache = stack.cache
        assert cache is not None
        backend = cache.backend
        assert isinstance(backend, RedisCache)
        message = stack.encrypt(b"a again", context={"tenant": "a"})
        assert backend.stats["forged"] == 1
        assert stack.decrypt(message) == b"a again"


def test_limits_are_counted_on_the_server_across_clients(server, redis_options):
    """Two clients (as two processes would be) share one entry and one message budget."""
    one = DataKeyCache(RedisCache.from_options(redis_options), CachePolicy(max_messages=10))
    two = DataKeyCache(RedisCache.from_options(redis_options), CachePolicy(max_messages=10))
    results = []
    for index in range(40):
        results += uses_per_key(one if index % 2 else two, 1)
    assert sum(1 for _, fresh in results if fresh) == 4
    assert set(Counter(d for d, _ in results).values()) == {10}


def test_entries_expire_after_max_age(server, redis_options):
    cache = DataKeyCache(RedisCache.from_options(redis_options), CachePolicy(max_age=1))
    uses_per_key(cache, 1)
    [name] = sealed_entries(server)
    assert 0 < server.client().pttl(name) <= 1000
    time.sleep(1.1)
    assert uses_per_key(cache, 1)[0][1] is True


def test_four_processes_share_the_cache(server, redis_options, keystore):
    """4 processes x 2,500 encrypts, max_messages = 1000: at most ceil(N / 1000) + 4 wraps,
    and no data key protects more than 1000 messages."""
    config = stack_config(keystore, redis_options, max_messages=1000)
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(4) as pool:
        results = pool.starmap(stack_encrypt_worker, [(config, 2500, {"t": "fleet"})] * 4)
    wraps = sum(w for w, _ in results)
    uses = Counter(d for _, digests in results for d in digests)
    assert sum(uses.values()) == 10_000
    assert math.ceil(10_000 / 1000) <= wraps <= math.ceil(10_000 / 1000) + 4
    assert max(uses.values()) <= 1000
    assert len(uses) == wraps


# -- faults -------------------------------------------------------------------------


def test_redis_down_never_fails_encrypt_or_decrypt(server, redis_options, keystore, caplog):
    config = stack_config(keystore, redis_options)
    with KeyStack.from_dict(config) as stack:
        message = stack.encrypt(b"before", context={"t": "1"})
        server.stop()
        caplog.set_level(logging.WARNING, logger="aureus_redis")
        for index in range(5):
            started = time.monotonic()
            out = stack.encrypt(b"during %d" % index, context={"t": "1"})
            assert stack.decrypt(out) == b"during %d" % index
            assert stack.decrypt(message) == b"before"
            assert time.monotonic() - started < 2.0
        failures = [r for r in caplog.records if "failed" in r.getMessage()]
        assert len(failures) == 1, "one warning per outage"
        cache = stack.cache
        assert cache is not None
        backend = cache.backend
        assert isinstance(backend, RedisCache)
        assert backend.stats["outages"] == 1
        assert backend.stats["faults"] >= 1
        server.restart()
        time.sleep(0.3)  # the pause after a fault
        stack.encrypt(b"after", context={"t": "1"})
        assert backend.available
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        assert len(sealed_entries(server)) >= 1


def test_a_hung_redis_cannot_hang_the_application(server, redis_options, keystore):
    config = stack_config(keystore, redis_options)
    with KeyStack.from_dict(config) as stack:
        stack.encrypt(b"warm", context={"t": "1"})
        admin = server.client()
        admin.execute_command("CLIENT", "PAUSE", "3000", "ALL")  # every other client hangs
        try:
            started = time.monotonic()
            message = stack.encrypt(b"while hung", context={"t": "1"})
            assert time.monotonic() - started < 1.5
            assert stack.decrypt(message) == b"while hung"
            assert time.monotonic() - started < 1.5
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
        cache = stack.cache
        assert cache is not None
        assert isinstance(cache.backend, RedisCache)
        assert cache.backend.stats["faults"] >= 1


def test_a_flushed_redis_means_misses_not_failures(server, redis_options, keystore):
    config = stack_config(keystore, redis_options, max_messages=100)
    with KeyStack.from_dict(config) as stack:
        messages = [stack.encrypt(b"m", context={"t": "1"}) for _ in range(10)]
        server.client().flushall()
        messages += [stack.encrypt(b"m", context={"t": "1"}) for _ in range(10)]
        assert all(stack.decrypt(m) == b"m" for m in messages)


# -- configuration --------------------------------------------------------------------


def test_password_and_sealing_key_from_a_credential_source(tmp_path, keystore, monkeypatch):
    with RedisServer.start(tmp_path) as server:
        server.client().config_set("requirepass", "s3cret-redis-pw")
        monkeypatch.setenv("TEST_REDIS_PASSWORD", "s3cret-redis-pw")
        monkeypatch.setenv("TEST_REDIS_SEAL", os.urandom(32).hex())
        options = {
            "url": server.url,
            "credentials": {
                "source": "env",
                "variables": {"password": "TEST_REDIS_PASSWORD", "sealing_key": "TEST_REDIS_SEAL"},
            },
        }
        with KeyStack.from_dict(stack_config(keystore, options)) as stack:
            for _ in range(3):
                stack.encrypt(b"m")
            cache = stack.cache
            assert cache is not None
            assert cache.provider_fills == 1
            assert "s3cret" not in repr(cache.backend)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs a sealing key"),
        ({"sealing_key_file": "/nonexistent/key"}, "cannot read"),
        ({"timeout": 0}, "timeout"),
        ({"colour": "red"}, "no option"),
        ({"tls_ca_file": "/x", "url": "redis://h"}, "rediss://"),
        ({"url": "ftp://user:hunter2-pw@h"}, "invalid redis cache url"),
    ],
)
def test_bad_options_say_what_to_do(options, message, sealing_key_file):
    if message not in ("needs a sealing key", "cannot read"):
        options = {"sealing_key_file": str(sealing_key_file), **options}
    with pytest.raises(ConfigError, match=message) as raised:
        RedisCache.from_options(options)
    assert "hunter2" not in str(raised.value)


def test_a_short_sealing_key_is_refused(tmp_path):
    key = tmp_path / "key"
    key.write_text(base64.b64encode(os.urandom(16)).decode())
    with pytest.raises(ConfigError, match="32 random bytes"):
        RedisCache.from_options({"sealing_key_file": str(key)})


def test_names_are_keyed_hashes(redis_options):
    cache = RedisCache.from_options(redis_options)
    _, fill = fresh_fill()
    name = cache._name(b"entry")
    assert name.startswith("aureus:dk:e:")
    assert name != "aureus:dk:e:" + hashlib.sha256(b"entry").hexdigest()
    assert fill.key_versions


def test_an_expired_entry_put_back_is_not_used(server, redis_options):
    """Someone who can write to Redis restores an entry after max_age: its sealed creation
    time gives it away, and it is dropped rather than used."""
    cache = DataKeyCache(RedisCache.from_options(redis_options), CachePolicy(max_age=1))
    uses_per_key(cache, 1)
    client = server.client()
    [name] = sealed_entries(server)
    saved = client.hgetall(name)
    time.sleep(1.1)
    assert client.exists(name) == 0  # Redis expiry removed it
    client.hset(name, mapping={"s": saved[b"s"], "m": 0, "b": 0})  # the replay, no expiry
    assert uses_per_key(cache, 1)[0][1] is True  # a fresh key, not the replayed one


def test_a_key_change_through_one_stack_reaches_every_process_at_once(
    server, redis_options, keystore
):
    """Stack A disables a version; stack B (another process, recheck ten minutes away)
    stops using its shared entries of that version on its very next call."""
    from aureus_core import DecryptionError

    config = stack_config(keystore, redis_options, recheck=600)
    with KeyStack.from_dict(config) as a, KeyStack.from_dict(config) as b:
        a.rotate_key("local://a")  # version 2 current; version 1 can then be disabled
        b_cache = b.cache
        assert b_cache is not None
        old = b.encrypt(b"old")  # B makes the encrypt entry (A never saw it)
        assert b.decrypt(old) == b"old"  # ... and the decrypt entry of version 2
        with KeyStack.local(keystore) as console:  # a change made outside any cache
            console.rotate_key("local://a")  # version 3
        fills = b_cache.provider_fills
        b.encrypt(b"again")
        assert b_cache.provider_fills == fills  # B has not looked: its recheck is far away
        a.set_version_state("local://a?version=2", "disabled")
        with pytest.raises(DecryptionError):
            b.decrypt(old)  # B's cached version-2 data key is not used
        fresh = b.encrypt(b"new")
        assert b_cache.provider_fills == fills + 1
        assert b.decrypt(fresh) == b"new"


def _shared_fill():
    from aureus_core.cache import Fill

    return Fill(material=bytearray(b"\x05" * 32), key_versions=())


def test_a_process_waiting_for_another_ones_fill_uses_it(server, redis_options):
    """While one process holds the fill of an entry, another waits and then uses that data key."""
    import threading

    filler = DataKeyCache(RedisCache.from_options(redis_options), CachePolicy())
    waiter = DataKeyCache(RedisCache.from_options(redis_options), CachePolicy())
    key = b"entry"
    assert filler.backend.claim(key, 5.0)  # type: ignore[attr-defined]

    def fill_then_release() -> None:
        time.sleep(0.2)
        filler.store(key, b"\x05" * 32, plaintext_bytes=1)
        filler.backend.release(key)  # type: ignore[attr-defined]

    thread = threading.Thread(target=fill_then_release)
    thread.start()
    made: list[int] = []

    def make():
        made.append(1)
        return "own", _shared_fill()

    cached, own = waiter.lookup(key, plaintext_bytes=1, encrypting=True, make=make)
    thread.join()
    assert own is None
    assert made == []
    assert cached is not None
    assert bytes(cached.material) == b"\x05" * 32
    assert (waiter.hits, waiter.misses, waiter.provider_fills) == (1, 1, 0)


def test_a_fill_never_finished_elsewhere_is_made_here_after_the_wait(
    server, redis_options, monkeypatch
):
    """A claim whose holder died: the waiter makes its own data key after CLAIM_WAIT."""
    import aureus_core.cache as cache_module

    monkeypatch.setattr(cache_module, "CLAIM_WAIT", 0.3)
    holder = RedisCache.from_options(redis_options)
    waiter = DataKeyCache(RedisCache.from_options(redis_options), CachePolicy())
    assert holder.claim(b"entry", 30.0)
    started = time.monotonic()
    cached, own = waiter.lookup(
        b"entry", plaintext_bytes=1, encrypting=True, make=lambda: ("own", _shared_fill())
    )
    waited = time.monotonic() - started
    assert (cached, own) == (None, "own")
    assert 0.3 <= waited < 5
    assert waiter.provider_fills == 1
