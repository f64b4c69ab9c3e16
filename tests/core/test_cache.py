"""The data-key cache: call counts, limits, isolation, expiry on an injected clock."""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest

from aureus_builtin.memory_cache import MemoryCache
from aureus_core import ConfigError, KeyStack
from aureus_core.cache import CachePolicy, DataKeyCache, Fill, SharedCacheBackend
from aureus_core.envelope.message import MessageReader
from aureus_core.interfaces import CacheEntry
from aureus_core.testing import FakeClock
from aureus_core.testing.counting import CountingProvider
from aureus_local import LocalKeyProvider


@pytest.fixture(autouse=True)
def _fresh_split_memo():
    """Empty the cache's URI-split memo around each test, so it sees the parser's answer.

    A URI split by an earlier test (or an earlier run in the same process, as in mutation
    testing) would otherwise be handed back from the memo.
    """
    from aureus_core import cache as module

    module._split.cache_clear()
    yield
    module._split.cache_clear()


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


# -- exact under threads, lifecycle, streams ------------------------------------


@pytest.mark.parametrize("threads", [4, 8])
def test_threads_cost_exactly_ceil_n_over_max_messages(counting, clock, threads):
    """Single flight: N encrypts by any number of threads make ceil(N / max_messages) keys."""
    stack = cached_stack(counting, clock, max_messages=1000)
    per_thread = 10_000 // threads
    messages: list[bytes] = []

    def work(_: int) -> list[bytes]:
        return [stack.encrypt(b"payload", context={"t": "1"}) for _ in range(per_thread)]

    with ThreadPoolExecutor(threads) as pool:
        for batch in pool.map(work, range(threads)):
            messages.extend(batch)
    assert len(messages) == 10_000
    assert counting.wraps == math.ceil(10_000 / 1000)
    uses: dict[bytes, int] = {}
    for message in messages:
        edk = MessageReader(message).header.encrypted_data_keys[0].ciphertext
        uses[edk] = uses.get(edk, 0) + 1
    assert sorted(uses.values()) == [1000] * 10
    assert stack.decrypt(messages[0]) == stack.decrypt(messages[-1]) == b"payload"


def test_threads_exact_under_the_byte_limit(counting, clock):
    stack = cached_stack(counting, clock, max_bytes=100 * 250)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: stack.encrypt(b"x" * 100), range(2000)))
    assert counting.wraps == math.ceil(2000 * 100 / (100 * 250))


def test_threads_decrypt_one_unwrap(counting, clock):
    stack = cached_stack(counting, clock)
    message = stack.encrypt(b"secret")
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: stack.decrypt(message), range(400))) == {b"secret"}
    assert counting.unwraps == 1


def test_disabling_a_version_through_the_stack_drops_its_entries_at_once(counting, clock):
    stack = cached_stack(counting, clock)
    message = stack.encrypt(b"m")
    assert stack.decrypt(message) == b"m"
    stack.encrypt(b"m")
    assert (counting.wraps, counting.unwraps) == (1, 1)
    stack.rotate_key("local://a")  # version 2 is current; now disable version 1
    stack.set_version_state("local://a?version=1", "disabled")
    from aureus_core import DecryptionError

    with pytest.raises(DecryptionError):
        stack.decrypt(message)  # the cached data key of version 1 is not used
    fresh = stack.encrypt(b"m")
    assert counting.wraps == 2
    assert stack.decrypt(fresh) == b"m"
    assert stack.cache is not None
    assert stack.cache.invalidated >= 2


def test_rotation_through_the_stack_moves_new_messages_to_the_new_version(counting, clock):
    stack = cached_stack(counting, clock)
    stack.encrypt(b"m")
    stack.rotate_key("local://a")
    stack.encrypt(b"m")
    assert counting.wraps == 2
    stack.encrypt(b"m")
    assert counting.wraps == 2


def test_a_version_imported_through_the_stack_moves_new_messages_to_it(counting, clock):
    """An import with new_version=True makes a new current version, as a rotation does.

    Before, the cached encrypt entry kept wrapping new messages under version 1 until
    the next recheck (60 s by default), and a shared cache told no other process.
    """
    import os

    stack = cached_stack(counting, clock)
    first = stack.encrypt(b"m")
    assert [r.key for r in stack.inspect(first).recipients] == ["a:1"]
    stack.import_key("a", "aes-256", raw=os.urandom(32), new_version=True)
    second = stack.encrypt(b"m")
    assert [r.key for r in stack.inspect(second).recipients] == ["a:2"]
    assert counting.wraps == 2
    assert stack.decrypt(first) == b"m"
    assert stack.decrypt(second) == b"m"


def test_min_decryption_version_through_the_stack_drops_decrypt_entries(counting, clock):
    from aureus_core import DecryptionError

    stack = cached_stack(counting, clock)
    old = stack.encrypt(b"old")
    assert stack.decrypt(old) == b"old"
    stack.rotate_key("local://a")
    assert stack.decrypt(old) == b"old"  # rotation keeps old versions decrypting
    assert counting.unwraps == 1
    stack.set_min_decryption_version("local://a", "2")
    with pytest.raises(DecryptionError):
        stack.decrypt(old)


def test_changes_made_elsewhere_are_noticed_within_recheck(tmp_path, clock):
    from aureus_core import DecryptionError
    from aureus_core.keyref import KeyRef
    from aureus_core.keys import KeyState

    counting = CountingProvider(LocalKeyProvider(tmp_path / "ks"))
    KeyStack(providers={"local": counting}).create_key("a", "aes-256")
    stack = cached_stack(counting, clock, recheck=30)
    old = stack.encrypt(b"old")
    assert stack.decrypt(old) == b"old"
    # Another process (or a console) rotates the key and disables version 1.
    other = LocalKeyProvider(tmp_path / "ks")
    other.rotate_key(KeyRef.parse("local://a"))
    other.set_version_state(KeyRef.parse("local://a?version=1"), KeyState.DISABLED)
    clock.advance(29)
    stack.encrypt(b"m")
    assert stack.decrypt(old) == b"old"
    assert (counting.wraps, counting.unwraps) == (1, 1)  # not rechecked yet
    clock.advance(1)
    with pytest.raises(DecryptionError):
        stack.decrypt(old)  # the cached version-1 data key is dropped, not used
    fresh = stack.encrypt(b"m")
    assert counting.wraps == 2  # new messages moved to version 2
    assert stack.decrypt(fresh) == b"m"


def test_recheck_is_a_policy_option_with_a_default():
    assert CachePolicy().recheck == 60
    assert CachePolicy.from_options({"recheck": 5}).recheck == 5
    with pytest.raises(ConfigError, match="recheck"):
        CachePolicy.from_options({"recheck": 0})


def test_encrypt_stream_uses_the_cache(counting, clock, tmp_path):
    import io

    stack = cached_stack(counting, clock, max_messages=5)
    outputs = []
    for _ in range(10):
        out = io.BytesIO()
        assert stack.encrypt_stream(io.BytesIO(b"s" * 1000), out) == 1000
        outputs.append(out.getvalue())
    assert counting.wraps == 2
    for blob in outputs:
        plain = io.BytesIO()
        stack.decrypt_stream(io.BytesIO(blob), plain)
        assert plain.getvalue() == b"s" * 1000
    assert counting.unwraps == 2  # two data keys, each unwrapped once


def test_encrypt_stream_counts_bytes_of_a_file(counting, clock, tmp_path):
    import io

    source = tmp_path / "big.bin"
    source.write_bytes(b"b" * 600)
    stack = cached_stack(counting, clock, max_bytes=1000)
    for _ in range(3):
        with source.open("rb") as src:
            stack.encrypt_stream(src, io.BytesIO())
    assert counting.wraps == 3  # 600 + 600 would pass 1000 bytes


def test_a_file_that_grows_while_it_is_encrypted_cannot_pass_max_bytes(counting, clock, tmp_path):
    """The cache is charged the size a file has when the stream starts; a file appended to
    meanwhile (a log) is refused before a frame of the excess is written, and the unfinished
    message is one no reader accepts. Before, all of it went under the cached data key."""
    import io

    from aureus_core import DecryptionError

    class Growing(io.FileIO):
        """A file another process appends to just after the stream measured it."""

        grow = 10_000

        def readinto(self, buffer: Any) -> int:
            if self.grow:
                with open(self.name, "ab") as writer:
                    writer.write(b"G" * self.grow)
                self.grow = 0
            return super().readinto(buffer)

    stack = cached_stack(counting, clock, max_bytes=1000)
    source = tmp_path / "log.txt"
    source.write_bytes(b"x" * 300)
    out = io.BytesIO()
    with (
        pytest.raises(
            ConfigError,
            match=r"^the input grew while it was encrypted: it had 300 bytes when the data-key "
            r"cache counted it, ",
        ),
        Growing(source) as src,
    ):
        stack.encrypt_stream(src, out, frame_length=64)
    # Header, its 16-byte tag, then whole 64-byte frames (4 + 12 + 64 + 16 bytes each):
    # four of them, 256 bytes of plaintext, and none of the bytes past the 300 charged.
    body = len(out.getvalue()) - len(MessageReader(out.getvalue()).header.serialize()) - 16
    assert body == 4 * (4 + 12 + 64 + 16)
    with pytest.raises(DecryptionError):
        stack.decrypt(out.getvalue())
    # A file that does not grow goes under the cached data key as before.
    source.write_bytes(b"y" * 300)
    with source.open("rb") as src:
        done = io.BytesIO()
        assert stack.encrypt_stream(src, done, frame_length=64) == 300
    assert counting.wraps == 1
    assert stack.decrypt(done.getvalue()) == b"y" * 300
    # A file over max_bytes gets a data key of its own, which nothing else uses: no bound.
    source.write_bytes(b"z" * 2000)
    with Growing(source) as src:
        assert stack.encrypt_stream(src, io.BytesIO(), frame_length=64) == 12_000
    assert counting.wraps == 2


def test_unknown_length_stream_bypasses_a_byte_bounded_cache(counting, clock):
    import io

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = self._data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    bounded = cached_stack(counting, clock, max_bytes=10_000)
    for _ in range(3):
        bounded.encrypt_stream(io.BufferedReader(Pipe(b"p" * 100)), io.BytesIO())
    assert counting.wraps == 3
    unbounded = cached_stack(counting, clock)
    for _ in range(3):
        unbounded.encrypt_stream(io.BufferedReader(Pipe(b"p" * 100)), io.BytesIO())
    assert counting.wraps == 4


def test_an_entry_on_a_version_newer_than_known_triggers_a_recheck_not_a_drop(tmp_path, clock):
    """Another process rotated first and shared an entry on the new version: this process
    describes the key again rather than dropping good entries until its next recheck."""
    from aureus_core.keyref import KeyRef

    counting = CountingProvider(LocalKeyProvider(tmp_path / "ks"))
    KeyStack(providers={"local": counting}).create_key("a", "aes-256")
    backend = MemoryCache(capacity=10)
    ours = KeyStack.from_dict(
        {"stack": {"wrapping_keys": ["local://a"]}},
        providers={"local": counting},
        cache=DataKeyCache(backend, CachePolicy(recheck=600), clock=clock.monotonic),
    )
    ours.encrypt(b"m")
    cache = ours.cache
    assert cache is not None
    cache.invalidate("local://a", counting.describe_key(KeyRef.parse("local://a")))  # knows v1
    # Elsewhere: the key is rotated and a v2 entry lands in the shared backend.
    LocalKeyProvider(tmp_path / "ks").rotate_key(KeyRef.parse("local://a"))
    theirs = KeyStack.from_dict(
        {"stack": {"wrapping_keys": ["local://a"]}},
        providers={"local": counting},
        cache=DataKeyCache(backend, CachePolicy(recheck=600), clock=clock.monotonic),
    )
    theirs.encrypt(b"m")
    wraps = counting.wraps
    clock.advance(1)
    for _ in range(5):
        ours.encrypt(b"m")
    assert counting.wraps == wraps  # the v2 entry is used, not dropped


# -- behaviour pinned by mutation testing (docs/testing.md) ---------------------------


def test_entry_key_fields_are_framed():
    """Bytes moved from one field of an entry key to the next give another key.

    The partition is free text and the context and key names are caller data: without
    each field's length in the digest, ("ab", "c") and ("a", "bc") would share an entry.
    """
    from aureus_core.cache import _digest

    assert _digest(b"ab", b"c") != _digest(b"a", b"bc")
    assert _digest(b"", b"x") != _digest(b"x", b"")
    assert _digest(b"ab", b"c") == _digest(b"ab", b"c")


def test_partitions_that_share_a_prefix_never_share_an_entry(counting, clock):
    cache = DataKeyCache(
        MemoryCache(capacity=10), CachePolicy(partition="a"), clock=clock.monotonic
    )
    other = DataKeyCache(
        MemoryCache(capacity=10), CachePolicy(partition="ab"), clock=clock.monotonic
    )
    from aureus_core.context import EncryptionContext
    from aureus_core.keyref import KeyRef

    keys = [KeyRef.parse("local://a")]
    assert cache.encrypt_key(0x0478, keys, EncryptionContext()) != other.encrypt_key(
        0x0478, keys, EncryptionContext()
    )
    assert cache.encrypt_key(0x0478, keys, EncryptionContext()) != cache.decrypt_key(
        0x0478, (), EncryptionContext(), ""
    )


def test_an_expired_entry_is_wiped_from_the_backend(counting, clock):
    """An entry past its age is not only refused: the backend no longer holds its key."""
    backend = MemoryCache(capacity=10)
    cache = DataKeyCache(backend, CachePolicy(max_age=60), clock=clock.monotonic)
    cache.store(b"k", b"\x01" * 32, plaintext_bytes=1)
    assert len(backend) == 1
    clock.advance(60)
    assert cache.take(b"k", plaintext_bytes=1) is None
    assert len(backend) == 0
    assert (cache.hits, cache.misses) == (0, 1)


def test_an_entry_over_its_message_limit_is_wiped_from_the_backend(clock):
    backend = MemoryCache(capacity=10)
    cache = DataKeyCache(backend, CachePolicy(max_messages=2), clock=clock.monotonic)
    cache.store(b"k", b"\x01" * 32, plaintext_bytes=1)
    hit = cache.take(b"k", plaintext_bytes=1)
    assert hit is not None
    assert bytes(hit.material) == b"\x01" * 32
    assert cache.take(b"k", plaintext_bytes=1) is None
    assert len(backend) == 0
    assert (cache.hits, cache.misses) == (1, 1)


def test_a_take_without_counting_a_miss(clock):
    cache = DataKeyCache(MemoryCache(capacity=10), CachePolicy(), clock=clock.monotonic)
    assert cache.take(b"absent", plaintext_bytes=1, count_miss=False) is None
    assert cache.misses == 0
    assert cache.take(b"absent", plaintext_bytes=1) is None
    assert cache.misses == 1


def test_a_key_whose_first_message_reaches_a_limit_is_not_kept(counting, clock):
    """max_messages=1 caches nothing; a first message of exactly max_bytes is not kept."""
    stack = cached_stack(counting, clock, max_messages=1)
    stack.encrypt(b"m")
    assert stack.cache is not None
    assert len(stack.cache.backend) == 0
    before = counting.wraps
    stack = cached_stack(counting, clock, max_bytes=100)
    stack.encrypt(b"x" * 100)
    stack.encrypt(b"")
    assert counting.wraps == before + 2
    stack.encrypt(b"x" * 99, context={"t": "2"})
    stack.encrypt(b"x", context={"t": "2"})  # 99 + 1 reaches the limit exactly: still one key
    assert counting.wraps == before + 3


def test_a_message_counts_its_bytes_only_when_it_uses_the_entry(clock):
    cache = DataKeyCache(MemoryCache(capacity=10), CachePolicy(max_bytes=10), clock=clock.monotonic)
    cache.store(b"k", b"\x01" * 32, plaintext_bytes=10, counts_as_use=False)
    assert (
        cache.take(b"k", plaintext_bytes=10) is not None
    )  # the stored key's bytes were not counted
    assert cache.take(b"k", plaintext_bytes=1) is None


@pytest.mark.parametrize(
    ("state", "version", "encrypting", "usable"),
    [
        ("enabled", None, True, True),  # an entry that names no version
        ("enabled", None, False, True),
        ("disabled", None, False, False),  # a disabled key is never used
        ("enabled", "2", True, True),  # the current version
        ("enabled", "1", True, False),  # new messages move to the current version at once
        ("enabled", "1", False, True),  # old versions still unwrap
        ("enabled", "0", False, False),  # below the minimum decryption version
        ("enabled", "9", False, False),  # a version the key does not have
    ],
)
def test_entry_usable(state, version, encrypting, usable):
    """Which cached entries the key's current metadata still allows."""
    from datetime import datetime, timezone

    from aureus_core.cache import entry_usable
    from aureus_core.keyref import KeyRef
    from aureus_core.keys import KeyMetadata, KeyState, KeyType, KeyVersion

    now = datetime.now(timezone.utc)
    metadata = KeyMetadata(
        ref=KeyRef.parse("local://a"),
        key_type=KeyType.AES_256,
        state=KeyState(state),
        created_at=now,
        current_version="2",
        versions=tuple(KeyVersion(version=v, created_at=now) for v in ("0", "1", "2")),
        min_decryption_version="1",
    )
    assert entry_usable(metadata, version, encrypting=encrypting) is usable


@pytest.mark.parametrize(("encrypting", "usable"), [(True, False), (False, True)])
def test_entry_usable_without_version_list(encrypting, usable):
    """A provider that lists no versions: only the current version makes new messages."""
    from datetime import datetime, timezone

    from aureus_core.cache import entry_usable
    from aureus_core.keyref import KeyRef
    from aureus_core.keys import KeyMetadata, KeyState, KeyType

    metadata = KeyMetadata(
        ref=KeyRef.parse("local://a"),
        key_type=KeyType.AES_256,
        state=KeyState.ENABLED,
        created_at=datetime.now(timezone.utc),
        current_version="2",
    )
    assert entry_usable(metadata, "1", encrypting=encrypting) is usable
    assert entry_usable(metadata, "2", encrypting=True) is True


@pytest.mark.parametrize(
    "options",
    [
        {"max_age": True},  # a bool is not a number of seconds
        {"max_age": "60"},
        {"max_age": -1},
        {"max_age": 10 * 365 * 86400 + 1},
        {"max_messages": 0},
        {"max_messages": 2**32 + 1},
        {"recheck": 0},
        {"recheck": 10 * 365 * 86400 + 1},
        {"max_bytes": 2**63},
    ],
)
def test_policy_numbers_out_of_range(options):
    name = next(iter(options))
    with pytest.raises(ConfigError, match=f"cache {name} must be a number above 0 and at most"):
        CachePolicy.from_options(options)


def test_policy_numbers_at_their_bounds():
    policy = CachePolicy.from_options(
        {"max_age": 10 * 365 * 86400, "max_messages": 1, "recheck": 0.5}
    )
    assert (policy.max_age, policy.max_messages, policy.recheck) == (10 * 365 * 86400, 1, 0.5)
    top = CachePolicy.from_options(
        {"recheck": 10 * 365 * 86400, "max_messages": 2**32, "max_bytes": 2**63 - 1}
    )
    assert (top.recheck, top.max_messages, top.max_bytes) == (10 * 365 * 86400, 2**32, 2**63 - 1)


def test_an_entry_stored_without_counting_a_use_serves_exactly_max_messages(clock):
    cache = DataKeyCache(
        MemoryCache(capacity=10), CachePolicy(max_messages=3), clock=clock.monotonic
    )
    cache.store(b"k", b"\x01" * 32, counts_as_use=False, plaintext_bytes=100)
    assert [cache.take(b"k", plaintext_bytes=1) is not None for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]


def test_a_non_string_partition_is_refused_with_its_reason():
    with pytest.raises(ConfigError, match=r"^cache partition must be a string$"):
        CachePolicy.from_options({"partition": 3})


@pytest.mark.parametrize(("data", "size"), [(b"", 0), (b"abcdef", 6)])
def test_stream_size_is_what_is_left_to_read(data, size):
    import io

    from aureus_core.cache import stream_size

    stream = io.BytesIO(data)
    assert stream_size(stream) == size
    if data:
        stream.read(2)
        assert stream_size(stream) == size - 2
        assert stream.tell() == 2  # the position is kept


def test_stream_size_of_a_pipe_is_unknown():
    from aureus_core.cache import stream_size

    read, write = os.pipe()
    try:
        with os.fdopen(read, "rb", buffering=0) as pipe:
            assert stream_size(pipe) is None
    finally:
        os.close(write)


def _metadata(state: str = "enabled", current: str = "1", versions: tuple[str, ...] = ("1",)):
    from datetime import datetime, timezone

    from aureus_core.keyref import KeyRef
    from aureus_core.keys import KeyMetadata, KeyState, KeyType, KeyVersion

    now = datetime.now(timezone.utc)
    return KeyMetadata(
        ref=KeyRef.parse("local://a"),
        key_type=KeyType.AES_256,
        state=KeyState(state),
        created_at=now,
        current_version=current,
        versions=tuple(KeyVersion(version=v, created_at=now) for v in versions),
    )


def _fill(version: str = "1"):
    from aureus_core.cache import Fill

    return Fill(material=bytearray(b"\x07" * 32), key_versions=(f"local://a?version={version}",))


def test_lookup_counts_one_provider_fill_per_miss_and_none_per_hit(clock):
    cache = DataKeyCache(MemoryCache(capacity=10), CachePolicy(), clock=clock.monotonic)
    made = []

    def make():
        made.append(1)
        return "made", _fill()

    assert cache.lookup(b"k", plaintext_bytes=1, encrypting=True, make=make) == (None, "made")
    cached, fresh = cache.lookup(b"k", plaintext_bytes=1, encrypting=True, make=make)
    assert fresh is None
    assert cached is not None
    assert bytes(cached.material) == b"\x07" * 32
    assert (cache.provider_fills, cache.hits, cache.misses, cache.invalidated) == (1, 1, 1, 0)
    assert len(made) == 1


def test_a_hit_on_a_disabled_key_is_dropped_and_counted_as_a_miss(clock):
    """The entry is wiped from the backend and counts as invalidated, never as a hit."""
    states = {"now": _metadata()}
    backend = MemoryCache(capacity=10)
    cache = DataKeyCache(
        backend,
        CachePolicy(recheck=10),
        clock=clock.monotonic,
        describe=lambda uri: states["now"] if uri == "local://a" else None,
    )
    cache.lookup(b"k", plaintext_bytes=1, encrypting=False, make=lambda: ("made", _fill()))
    states["now"] = _metadata(state="disabled")
    clock.advance(10)
    cached, made = cache.lookup(
        b"k", plaintext_bytes=1, encrypting=False, make=lambda: ("again", _fill())
    )
    assert (cached, made) == (None, "again")
    assert cache.invalidated == 1
    assert cache.hits == 0
    assert cache.provider_fills == 2


def test_recheck_describes_a_key_once_per_interval(clock):
    calls = []

    def describe(uri):
        calls.append(uri)
        return _metadata()

    cache = DataKeyCache(
        MemoryCache(capacity=10), CachePolicy(recheck=30), clock=clock.monotonic, describe=describe
    )
    cache.lookup(b"k", plaintext_bytes=1, encrypting=True, make=lambda: ("made", _fill()))
    for _ in range(3):
        clock.advance(10)
        cache.lookup(b"k", plaintext_bytes=1, encrypting=True, make=lambda: ("x", _fill()))
    # Filled at 0 (a fresh check), used at 10, 20 (within 30 s), described again at 30.
    assert calls == ["local://a"]
    assert cache.hits == 3


def test_a_failed_recheck_keeps_the_last_known_state_and_says_so(clock, caplog):
    """A provider outage at recheck time neither fails the operation nor forgets a disable."""
    states = {"now": _metadata(state="disabled")}

    def describe(uri):
        if states["now"] is None:
            raise TimeoutError("provider down")
        return states["now"]

    cache = DataKeyCache(
        MemoryCache(capacity=10), CachePolicy(recheck=5), clock=clock.monotonic, describe=describe
    )
    for key in (b"k1", b"k2"):
        cache.store(key, b"\x01" * 32, key_versions=("local://a?version=1",), encrypting=False)
    clock.advance(5)
    other = ("fresh", _fill_of_b())
    assert cache.lookup(b"k1", plaintext_bytes=1, encrypting=False, make=lambda: other) == (
        None,
        "fresh",
    )  # described: disabled
    clock.advance(5)
    states["now"] = None  # the provider is unreachable at the next recheck
    with caplog.at_level("WARNING"):
        cached, made = cache.lookup(b"k2", plaintext_bytes=1, encrypting=False, make=lambda: other)
    assert (cached, made) == (None, "fresh")  # still disabled as far as we know
    assert "could not recheck local://a (TimeoutError); using the last known state" in caplog.text


def _fill_of_b():
    from aureus_core.cache import Fill

    return Fill(material=bytearray(b"\x08" * 32), key_versions=("local://b?version=1",))


def test_invalidate_drops_only_entries_the_new_state_forbids(clock):
    backend = MemoryCache(capacity=10)
    cache = DataKeyCache(backend, CachePolicy(), clock=clock.monotonic)
    cache.store(b"enc-1", b"\x01" * 32, key_versions=("local://a?version=1",), encrypting=True)
    cache.store(b"dec-1", b"\x02" * 32, key_versions=("local://a?version=1",), encrypting=False)
    cache.store(b"other", b"\x03" * 32, key_versions=("local://b?version=1",), encrypting=True)
    # Rotated: version 2 is current.  New messages move on; version 1 still unwraps.
    cache.invalidate("local://a?version=2", _metadata(current="2", versions=("1", "2")))
    assert cache.invalidated == 1
    assert backend.get(b"enc-1") is None
    assert backend.get(b"dec-1") is not None
    assert backend.get(b"other") is not None
    # Without the new state every entry of the key goes.
    cache.invalidate("local://a")
    assert cache.invalidated == 2
    assert backend.get(b"dec-1") is None
    assert backend.get(b"other") is not None


def test_an_entry_made_before_a_known_disable_is_judged_at_once(clock):
    """A store after invalidate(metadata) is checked against that state, not trusted as fresh."""
    describe_calls = []

    def describe(uri):
        describe_calls.append(uri)
        return _metadata(state="disabled")

    cache = DataKeyCache(
        MemoryCache(capacity=10), CachePolicy(recheck=600), clock=clock.monotonic, describe=describe
    )
    cache.invalidate("local://a", _metadata(state="disabled"))
    cache.store(b"k", b"\x01" * 32, key_versions=("local://a?version=1",), encrypting=True)
    cached, made = cache.lookup(
        b"k", plaintext_bytes=1, encrypting=True, make=lambda: ("fresh", _fill())
    )
    assert (cached, made) == (None, "fresh")
    assert describe_calls == ["local://a"]


def test_store_keeps_the_creation_time_it_is_given(clock):
    """A fill is stamped when its provider call started, so it ages from then."""
    cache = DataKeyCache(MemoryCache(capacity=10), CachePolicy(max_age=60), clock=clock.monotonic)
    started = clock.monotonic()
    clock.advance(50)
    cache.store(b"k", b"\x01" * 32, created_at=started)
    clock.advance(10)
    assert cache.take(b"k", plaintext_bytes=1) is None


def test_repr_names_the_backend_and_counters(clock):
    cache = DataKeyCache(MemoryCache(capacity=10), CachePolicy(), clock=clock.monotonic)
    assert repr(cache) == "<DataKeyCache MemoryCache entries=0 hits=0 misses=0>"


def test_decrypt_entries_are_kept_apart_by_partition_suite_context_and_filter(clock):
    """A cached data key is reused only to read a message with the same header facts.

    The encrypted data keys alone are not enough: a header whose context was swapped must
    unwrap again (the wrap is bound to the context), not be handed the cached key.
    """
    from aureus_core.context import EncryptionContext
    from aureus_core.datakey import EncryptedDataKey

    def cache(partition: str = "p") -> DataKeyCache:
        return DataKeyCache(
            MemoryCache(capacity=10), CachePolicy(partition=partition), clock=clock.monotonic
        )

    edks = (EncryptedDataKey(provider_id="local", provider_info=b"a", ciphertext=b"c"),)
    context = EncryptionContext({"tenant": "one"})
    base = cache().decrypt_key(0x0478, edks, context, "filter")
    assert cache().decrypt_key(0x0478, edks, context, "filter") == base
    variants = [
        cache("q").decrypt_key(0x0478, edks, context, "filter"),
        cache().decrypt_key(0x0578, edks, context, "filter"),
        cache().decrypt_key(0x0478, edks, EncryptionContext({"tenant": "two"}), "filter"),
        cache().decrypt_key(0x0478, edks, context, "other filter"),
        cache().decrypt_key(0x0478, edks * 2, context, "filter"),
        cache().encrypt_key(0x0478, [], context),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


class _SharedDict:
    """An in-memory :class:`SharedCacheBackend`: atomic reserve, one claim at a time."""

    def __init__(self) -> None:
        self.entries: dict[bytes, CacheEntry] = {}
        self.claims: set[bytes] = set()
        self.before_claim: list[Any] = []
        # Run at the n-th call of claim (1-based): another process acting while this one waits.
        self.at_claim: dict[int, Any] = {}
        self.claim_calls = 0

    def get(self, key: bytes) -> CacheEntry | None:
        return self.entries.get(key)

    def put(self, key: bytes, entry: CacheEntry) -> None:
        self.entries[key] = attrs.evolve(entry, material=bytearray(entry.material))

    def evict(self, key: bytes) -> None:
        self.entries.pop(key, None)

    def clear(self) -> None:
        self.entries.clear()

    def __len__(self) -> int:
        return len(self.entries)

    def reserve(
        self, key: bytes, *, plaintext_bytes: int, max_messages: int, max_bytes: int
    ) -> CacheEntry | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry.messages + 1 > max_messages or entry.bytes + plaintext_bytes > max_bytes:
            del self.entries[key]
            return None
        entry.messages += 1
        entry.bytes += plaintext_bytes
        return attrs.evolve(entry, material=bytearray(entry.material))

    def claim(self, key: bytes, seconds: float) -> bool:
        self.claim_calls += 1
        if self.claim_calls in self.at_claim:
            self.at_claim.pop(self.claim_calls)()
        while self.before_claim:
            self.before_claim.pop()()
        if key in self.claims:
            return False
        self.claims.add(key)
        return True

    def release(self, key: bytes) -> None:
        self.claims.discard(key)

    def set_max_age(self, seconds: float) -> None:
        pass


def test_a_fill_by_another_process_just_before_the_claim_is_used():
    """A process that misses, then wins the claim after another process filled and
    released, uses that fill rather than making a second data key (the race behind
    extra keys in the four-process Redis test)."""
    shared = _SharedDict()
    assert isinstance(shared, SharedCacheBackend)
    here = DataKeyCache(shared, CachePolicy(max_messages=10))
    elsewhere = DataKeyCache(shared, CachePolicy(max_messages=10))
    made: list[bytes] = []

    def make() -> tuple[bytes, Fill]:
        material = os.urandom(32)
        made.append(material)
        return material, Fill(material=bytearray(material))

    # The other process fills the entry (and releases its claim) in the window
    # between this process's miss and its own claim.
    shared.before_claim.append(
        lambda: elsewhere.lookup(b"entry", plaintext_bytes=0, encrypting=True, make=make)
    )
    cached, fresh = here.lookup(b"entry", plaintext_bytes=0, encrypting=True, make=make)
    assert fresh is None, "a second data key was made"
    assert cached is not None
    assert len(made) == 1
    assert bytes(cached.material) == made[0]
    assert not shared.claims, "the claim won after the fill was not given back"
    assert shared.entries[b"entry"].messages == 2


def _describing(current: str = "1", versions: tuple[str, ...] = ("1",), state: str = "enabled"):
    """A describe callback that knows key local://a only, and the calls made to it."""
    calls: list[str] = []

    def describe(uri: str):
        calls.append(uri)
        return (
            _metadata(state=state, current=current, versions=versions)
            if uri == "local://a"
            else None
        )

    return describe, calls


def test_a_shared_hit_is_counted_and_hands_out_the_whole_entry():
    """Each hit on a shared backend counts, and carries the signing key made with the entry."""
    shared = _SharedDict()
    cache = DataKeyCache(shared, CachePolicy(max_messages=10))
    signing_key = object()
    cache.store(b"k", b"\x05" * 32, signing_key=signing_key, key_versions=("local://a?version=1",))
    first = cache.take(b"k", plaintext_bytes=1)
    second = cache.take(b"k", plaintext_bytes=1)
    assert first is not None
    assert second is not None
    assert bytes(second.material) == b"\x05" * 32
    assert second.signing_key is signing_key
    assert second.key_versions == ("local://a?version=1",)
    assert cache.take(b"missing", plaintext_bytes=1) is None
    assert cache.take(b"missing", plaintext_bytes=1, count_miss=False) is None
    assert (cache.hits, cache.misses) == (2, 1)
    assert shared.entries[b"k"].messages == 3
    cache.evict(b"k")
    assert b"k" not in shared.entries


def test_a_shared_entry_exactly_max_age_old_is_refused_and_removed(monkeypatch):
    """The creation time is sealed with the entry: an old entry put back in the shared store is
    refused from the moment it is ``max_age`` old, and removed from the store."""
    from types import SimpleNamespace

    from aureus_core import cache as module

    now = [1000.0]
    monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    shared = _SharedDict()
    cache = DataKeyCache(shared, CachePolicy(max_age=60))
    cache.store(b"k", b"\x05" * 32)
    assert shared.entries[b"k"].created_at == 1000.0
    now[0] = 1059.5
    assert cache.take(b"k", plaintext_bytes=1) is not None
    now[0] = 1060.0
    assert cache.take(b"k", plaintext_bytes=1) is None
    assert b"k" not in shared.entries
    assert (cache.hits, cache.misses) == (1, 1)


def test_a_miss_on_a_shared_backend_counts_one_miss_and_one_fill():
    shared = _SharedDict()
    cache = DataKeyCache(shared, CachePolicy(max_messages=10))
    cached, made = cache.lookup(
        b"entry", plaintext_bytes=1, encrypting=True, make=lambda: ("made", _fill())
    )
    assert (cached, made) == (None, "made")
    assert (cache.hits, cache.misses, cache.provider_fills) == (0, 1, 1)
    assert not shared.claims, "the claim was not given back after the fill"


@pytest.fixture
def short_claim_wait(monkeypatch):
    """Wait 0.2 s (not 2 s) for another process's fill, polling every millisecond."""
    from aureus_core import cache as module

    monkeypatch.setattr(module, "CLAIM_WAIT", 0.2)
    monkeypatch.setattr(module, "CLAIM_POLL", 0.001)


def test_a_fill_that_appears_while_waiting_on_another_claim_is_used(short_claim_wait):
    """Another process holds the claim and puts its entry while this one polls: the entry is
    used, no second data key is made, and the other process's claim is left alone."""
    shared = _SharedDict()
    shared.claims.add(b"entry")  # another process is making the data key
    here = DataKeyCache(shared, CachePolicy(max_messages=10))
    elsewhere = DataKeyCache(shared, CachePolicy(max_messages=10))
    shared.at_claim[3] = lambda: elsewhere.store(
        b"entry", b"\x05" * 32, key_versions=("local://a?version=1",)
    )
    cached, made = here.lookup(
        b"entry", plaintext_bytes=1, encrypting=True, make=lambda: ("made", _fill())
    )
    assert made is None, "a second data key was made"
    assert cached is not None
    assert bytes(cached.material) == b"\x05" * 32
    assert shared.claims == {b"entry"}
    assert shared.entries[b"entry"].messages == 2
    assert (here.hits, here.misses, here.provider_fills) == (1, 1, 0)


def test_an_unusable_fill_seen_while_waiting_is_removed_and_the_wait_ends_in_a_fill_here(
    short_claim_wait,
):
    """What another process puts while this one waits is judged like any hit: made on a
    version that is no longer current, it is not used for new messages and is removed.
    When the wait runs out this process makes its own key without taking the claim, so it
    never gives back a claim that another process holds."""
    shared = _SharedDict()
    shared.claims.add(b"entry")
    describe, _ = _describing(current="2", versions=("1", "2"))
    here = DataKeyCache(shared, CachePolicy(max_messages=10), describe=describe)
    elsewhere = DataKeyCache(shared, CachePolicy(max_messages=10))
    shared.at_claim[2] = lambda: elsewhere.store(
        b"entry", b"\x05" * 32, key_versions=("local://a?version=1",)
    )
    seen_at_fill: list[bool] = []

    def make():
        seen_at_fill.append(b"entry" in shared.entries)
        return "made", _fill("2")

    cached, made = here.lookup(b"entry", plaintext_bytes=1, encrypting=True, make=make)
    assert (cached, made) == (None, "made")
    assert seen_at_fill == [False], "the stale entry was left in the shared store"
    assert here.invalidated == 1
    assert shared.claims == {b"entry"}, "another process's claim was given back"
    assert shared.entries[b"entry"].key_versions == ("local://a?version=2",)


def test_a_fill_just_before_the_claim_is_judged_like_any_hit():
    """An entry another process put between this one's miss and its claim, made on a version
    no longer current, is not used for new messages: it is removed and a key is made here."""
    shared = _SharedDict()
    describe, _ = _describing(current="2", versions=("1", "2"))
    here = DataKeyCache(shared, CachePolicy(max_messages=10), describe=describe)
    elsewhere = DataKeyCache(shared, CachePolicy(max_messages=10))
    shared.before_claim.append(
        lambda: elsewhere.store(b"entry", b"\x05" * 32, key_versions=("local://a?version=1",))
    )
    seen_at_fill: list[bool] = []

    def make():
        seen_at_fill.append(b"entry" in shared.entries)
        return "made", _fill("2")

    cached, made = here.lookup(b"entry", plaintext_bytes=1, encrypting=True, make=make)
    assert (cached, made) == (None, "made")
    assert seen_at_fill == [False], "the stale entry was left in the shared store"
    assert (here.invalidated, here.misses) == (1, 1)
    assert not shared.claims


def test_an_entry_of_another_process_is_used_when_its_key_cannot_be_described_yet(caplog):
    """With no earlier knowledge of the key, a failed describe is no reason to fail the
    operation: the entry another process made is used, and the failure is logged."""
    shared = _SharedDict()
    elsewhere = DataKeyCache(shared, CachePolicy(max_messages=10))
    elsewhere.store(b"entry", b"\x05" * 32, key_versions=("local://a?version=1",))

    def describe(uri: str):
        raise TimeoutError("provider down")

    here = DataKeyCache(shared, CachePolicy(max_messages=10), describe=describe)
    with caplog.at_level("WARNING", logger="aureus_core.cache"):
        cached, made = here.lookup(
            b"entry", plaintext_bytes=1, encrypting=True, make=lambda: ("made", _fill())
        )
    assert made is None
    assert cached is not None
    assert bytes(cached.material) == b"\x05" * 32
    assert [r.getMessage() for r in caplog.records] == [
        "data-key cache: could not recheck local://a (TimeoutError); using the last known state"
    ]


def test_invalidate_through_another_name_drops_the_entries_of_the_key_it_names(clock):
    """A change made through an alias (or any other name of the key) reaches the entries
    indexed under the key's own URI, which the state after the change names."""
    backend = MemoryCache(capacity=10)
    cache = DataKeyCache(backend, CachePolicy(), clock=clock.monotonic)
    cache.store(b"k", b"\x01" * 32, key_versions=("local://a?version=1",), encrypting=False)
    cache.invalidate("local://alias-of-a", _metadata(state="disabled"))
    assert backend.get(b"k") is None
    assert cache.invalidated == 1


def test_invalidate_without_a_state_makes_the_next_use_describe_the_key(clock):
    """Dropping a key's entries also forgets what was known of it, so an entry this process
    did not make (another process's, in a shared store) is judged on a fresh describe."""
    shared = _SharedDict()
    describe, calls = _describing()
    here = DataKeyCache(
        shared, CachePolicy(max_messages=10, recheck=600), clock=clock.monotonic, describe=describe
    )
    here.store(b"mine", b"\x01" * 32, key_versions=("local://a?version=1",))
    assert here.take(b"mine", plaintext_bytes=1) is not None
    here.invalidate("local://a")
    here.invalidate("local://never-used")  # nothing known of it: nothing to forget
    assert b"mine" not in shared.entries
    elsewhere = DataKeyCache(shared, CachePolicy(max_messages=10))
    elsewhere.store(b"theirs", b"\x02" * 32, key_versions=("local://a?version=1",))
    cached, made = here.lookup(
        b"theirs", plaintext_bytes=1, encrypting=True, make=lambda: ("made", _fill())
    )
    assert made is None
    assert cached is not None
    assert calls == ["local://a"]


def test_a_rotation_noticed_at_recheck_moves_new_messages_off_the_old_version(clock):
    """An entry for new messages made on version 1 is not used once a recheck says version 2
    is current (rotated elsewhere), though version 1 still unwraps."""
    describe, _ = _describing(current="2", versions=("1", "2"))
    cache = DataKeyCache(
        MemoryCache(capacity=10), CachePolicy(recheck=30), clock=clock.monotonic, describe=describe
    )
    cache.store(b"k", b"\x01" * 32, key_versions=("local://a?version=1",), encrypting=True)
    clock.advance(30)
    cached, made = cache.lookup(
        b"k", plaintext_bytes=1, encrypting=True, make=lambda: ("fresh", _fill("2"))
    )
    assert (cached, made) == (None, "fresh")
    assert cache.invalidated == 1


def test_misses_on_different_entries_do_not_wait_for_each_other(clock):
    """Single flight is per entry: a slow provider call for one entry does not hold up the
    fill of another."""
    import threading

    cache = DataKeyCache(MemoryCache(capacity=10), CachePolicy(), clock=clock.monotonic)
    inside = threading.Event()
    other_filled = threading.Event()
    waited: list[bool] = []

    def slow_make():
        inside.set()
        waited.append(other_filled.wait(timeout=5))
        return "slow", _fill()

    def quick_make():
        other_filled.set()
        return "quick", _fill()

    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(cache.lookup, b"one", plaintext_bytes=1, encrypting=True, make=slow_make)
        assert inside.wait(timeout=5)
        quick = cache.lookup(b"two", plaintext_bytes=1, encrypting=True, make=quick_make)
        assert slow.result(timeout=10) == (None, "slow")
    assert quick == (None, "quick")
    assert waited == [True], "the fill of one entry waited for another entry's provider call"


class _ArrivesLate(MemoryCache):
    """A backend whose first look misses: the entry arrives between the lock-free look and the
    look under the entry's flight lock (another thread's fill, in real use)."""

    def __init__(self) -> None:
        super().__init__(capacity=10)
        self.looks = 0

    def get(self, key: bytes) -> CacheEntry | None:
        self.looks += 1
        return None if self.looks == 1 else super().get(key)


def test_an_unusable_entry_found_under_the_flight_lock_is_removed_even_if_the_fill_fails(clock):
    backend = _ArrivesLate()
    describe, _ = _describing(state="disabled")
    cache = DataKeyCache(
        backend, CachePolicy(recheck=600), clock=clock.monotonic, describe=describe
    )
    cache.invalidate("local://a", _metadata(state="disabled"))  # known: the key is disabled
    backend.put(
        b"k",
        CacheEntry(
            material=bytearray(b"\x01" * 32),
            encrypted=(),
            created_at=clock.monotonic(),
            key_versions=("local://a?version=1",),
        ),
    )

    def failing_make():
        raise TimeoutError("provider down")

    with pytest.raises(TimeoutError):
        cache.lookup(b"k", plaintext_bytes=1, encrypting=True, make=failing_make)
    assert backend.looks == 2
    assert backend.get(b"k") is None, "the unusable entry stayed in the backend"
    assert cache.invalidated == 1


def test_an_entry_found_under_the_flight_lock_is_judged_for_new_messages_too(clock):
    """An entry on a version that is no longer current, arriving while this thread waits for
    the entry's flight lock, is not used for a new message."""
    backend = _ArrivesLate()
    describe, _ = _describing(current="2", versions=("1", "2"))
    cache = DataKeyCache(
        backend, CachePolicy(recheck=600), clock=clock.monotonic, describe=describe
    )
    cache.invalidate("local://a", _metadata(current="2", versions=("1", "2")))
    backend.put(
        b"k",
        CacheEntry(
            material=bytearray(b"\x01" * 32),
            encrypted=(),
            created_at=clock.monotonic(),
            key_versions=("local://a?version=1",),
        ),
    )
    cached, made = cache.lookup(
        b"k", plaintext_bytes=1, encrypting=True, make=lambda: ("fresh", _fill("2"))
    )
    assert (cached, made) == (None, "fresh")
    assert backend.looks == 2


def test_a_fill_ages_from_when_its_provider_call_started(clock):
    """A provider call that takes 50 s leaves an entry 50 s old: with max_age 60 it serves
    messages for 10 s more, not 60."""
    cache = DataKeyCache(MemoryCache(capacity=10), CachePolicy(max_age=60), clock=clock.monotonic)

    def slow_make():
        clock.advance(50)
        return "made", _fill()

    assert cache.lookup(b"k", plaintext_bytes=1, encrypting=True, make=slow_make) == (None, "made")
    clock.advance(9)
    assert cache.take(b"k", plaintext_bytes=1) is not None
    clock.advance(1)
    assert cache.take(b"k", plaintext_bytes=1) is None


def test_an_entry_on_a_version_newer_than_known_is_judged_on_the_fresh_description(clock):
    """The early recheck an unknown version triggers decides: version 3, made elsewhere and
    disabled since, is dropped although what this process knew said nothing against it."""
    calls: list[str] = []

    def describe(uri: str):
        calls.append(uri)
        return _metadata(state="disabled", current="3", versions=("1", "2", "3"))

    backend = MemoryCache(capacity=10)
    cache = DataKeyCache(
        backend, CachePolicy(recheck=600), clock=clock.monotonic, describe=describe
    )
    cache.invalidate("local://a", _metadata(current="2", versions=("1", "2")))  # knows v1, v2
    # Another process (a cache over the same backend) stores an entry on version 3.
    theirs = DataKeyCache(backend, CachePolicy(recheck=600), clock=clock.monotonic)
    theirs.store(b"k", b"\x01" * 32, key_versions=("local://a?version=3",), encrypting=True)
    clock.advance(1)  # past STALE_RECHECK, well within recheck
    cached, made = cache.lookup(
        b"k", plaintext_bytes=1, encrypting=True, make=lambda: ("fresh", _fill("3"))
    )
    assert (cached, made) == (None, "fresh")
    assert calls == ["local://a"]


def test_each_entry_dropped_at_use_is_counted(clock):
    describe, _ = _describing(state="disabled")
    cache = DataKeyCache(
        MemoryCache(capacity=10), CachePolicy(recheck=5), clock=clock.monotonic, describe=describe
    )
    for key in (b"k1", b"k2"):
        cache.store(key, b"\x01" * 32, key_versions=("local://a?version=1",), encrypting=False)
    clock.advance(5)
    for key in (b"k1", b"k2"):
        assert cache.lookup(
            key, plaintext_bytes=1, encrypting=False, make=lambda: ("fresh", _fill_of_b())
        ) == (None, "fresh")
    assert cache.invalidated == 2


def test_entries_made_by_lookup_for_new_messages_leave_at_a_rotation(clock):
    """lookup records which side an entry serves: a rotation drops the new-message entries and
    keeps the ones that read old messages."""
    backend = MemoryCache(capacity=10)
    cache = DataKeyCache(backend, CachePolicy(), clock=clock.monotonic)
    cache.lookup(b"enc", plaintext_bytes=1, encrypting=True, make=lambda: ("made", _fill()))
    cache.lookup(b"dec", plaintext_bytes=1, encrypting=False, make=lambda: ("made", _fill()))
    cache.invalidate("local://a", _metadata(current="2", versions=("1", "2")))
    assert backend.get(b"enc") is None
    assert backend.get(b"dec") is not None


def test_store_defaults_to_a_new_message_entry_that_counts_no_bytes(clock):
    """Without arguments, store keeps an entry for new messages whose first use counts one
    message and no bytes."""
    backend = MemoryCache(capacity=10)
    cache = DataKeyCache(backend, CachePolicy(max_bytes=10), clock=clock.monotonic)
    cache.store(b"k", b"\x01" * 32, key_versions=("local://a?version=1",))
    entry = backend.get(b"k")
    assert entry is not None
    assert (entry.messages, entry.bytes) == (1, 0)
    assert cache.take(b"k", plaintext_bytes=10) is not None  # 0 + 10 bytes: within the limit
    cache.invalidate("local://a", _metadata(current="2", versions=("1", "2")))
    assert backend.get(b"k") is None  # a rotation moves new messages off version 1


def test_a_first_message_over_max_bytes_is_not_kept(clock):
    """A first message larger than max_bytes (not only equal to it) leaves no entry."""
    backend = MemoryCache(capacity=10)
    cache = DataKeyCache(backend, CachePolicy(max_bytes=300), clock=clock.monotonic)
    cache.store(b"over", b"\x01" * 32, plaintext_bytes=1000)
    cache.store(b"at", b"\x01" * 32, plaintext_bytes=300)
    cache.store(b"under", b"\x01" * 32, plaintext_bytes=299)
    assert [backend.get(k) is not None for k in (b"over", b"at", b"under")] == [False, False, True]


def test_stream_size_of_a_closed_stream_is_unknown():
    import io

    from aureus_core.cache import stream_size

    stream = io.BytesIO(b"abc")
    stream.close()
    assert stream_size(stream) is None


def test_each_wrapping_key_indexes_at_most_index_limit_entries(clock, monkeypatch):
    """invalidate reaches the newest INDEX_LIMIT entries of a key; older ones stay in the
    backend until their next use, where the state check drops them."""
    from aureus_core import cache as module

    monkeypatch.setattr(module, "INDEX_LIMIT", 3)
    backend = MemoryCache(capacity=10)
    cache = DataKeyCache(backend, CachePolicy(), clock=clock.monotonic)
    keys = [b"k%d" % n for n in range(5)]
    for key in keys:
        cache.store(key, b"\x01" * 32, key_versions=("local://a?version=1",))
    cache.invalidate("local://a")
    assert [backend.get(key) is not None for key in keys] == [True, True, False, False, False]
    assert cache.invalidated == 3


@pytest.mark.parametrize("encrypting", [False, True])
def test_a_store_that_contradicts_what_is_known_makes_the_next_use_describe_again(
    clock, encrypting
):
    """The provider has just used version 1 although what this process knew said version 1
    could not serve this side (absent; or not current, for new messages): that knowledge is
    stale, so the next use describes the key instead of dropping the fresh entry."""
    known = (
        _metadata(current="2", versions=("1", "2"))
        if encrypting
        else _metadata(current="2", versions=("2",))
    )
    describe, calls = _describing(current="1", versions=("1", "2"))
    cache = DataKeyCache(
        MemoryCache(capacity=10), CachePolicy(recheck=600), clock=clock.monotonic, describe=describe
    )
    cache.invalidate("local://a", known)
    cache.store(b"k", b"\x01" * 32, key_versions=("local://a?version=1",), encrypting=encrypting)
    cached, made = cache.lookup(
        b"k", plaintext_bytes=1, encrypting=encrypting, make=lambda: ("fresh", _fill())
    )
    assert made is None
    assert cached is not None
    assert calls == ["local://a"]


def test_no_flight_slot_outlives_the_lookups_that_used_it(clock):
    """The per-entry locks of single flight are dropped once no thread holds them, so a cache
    does not grow with the number of different entries it ever missed."""
    cache = DataKeyCache(MemoryCache(capacity=2), CachePolicy(), clock=clock.monotonic)
    for n in range(5):
        cache.lookup(b"k%d" % n, plaintext_bytes=1, encrypting=True, make=lambda: ("m", _fill()))
        cache.lookup(b"k%d" % n, plaintext_bytes=1, encrypting=True, make=lambda: ("m", _fill()))
    assert cache._flights == {}


def test_an_entry_long_past_max_age_is_not_used(clock):
    """Not only at max_age exactly: an entry first asked for well after it expired is a miss."""
    backend = MemoryCache(capacity=10)
    cache = DataKeyCache(backend, CachePolicy(max_age=60), clock=clock.monotonic)
    cache.store(b"k", b"\x01" * 32)
    clock.advance(3600)
    assert cache.take(b"k", plaintext_bytes=1) is None
    assert backend.get(b"k") is None


def test_a_cache_the_stack_built_is_wiped_when_the_stack_closes(tmp_path):
    """A cache built from ``[cache]`` belongs to the stack: closing the stack wipes its data
    keys there and then. Before, they stayed in memory until the garbage collector came."""
    config = {
        "stack": {"wrapping_keys": ["local://a"]},
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
        "cache": {"backend": "memory"},
    }
    stack = KeyStack.from_dict(config)
    stack.create_key("a", "aes-256")
    stack.encrypt(b"m")
    cache = stack.cache
    assert cache is not None
    held = [entry.material for entry in cache.backend._entries.values()]  # type: ignore[attr-defined]
    assert len(held) == 1
    assert any(held[0])
    stack.close()
    assert len(cache.backend) == 0
    assert held[0] == bytearray(len(held[0]))  # wiped, not only dropped


def test_a_cache_handed_to_the_stack_stays_its_owners(counting, clock):
    """A cache passed in may serve other stacks: closing one stack leaves it as it was."""
    cache = DataKeyCache(MemoryCache(), CachePolicy(), clock=clock.monotonic)
    stack = KeyStack.from_dict(
        {"stack": {"wrapping_keys": ["local://a"]}}, providers={"local": counting}, cache=cache
    )
    message = stack.encrypt(b"m")
    stack.close()
    assert len(cache.backend) == 1
    other = KeyStack.from_dict(
        {"stack": {"wrapping_keys": ["local://a"]}}, providers={"local": counting}, cache=cache
    )
    other.encrypt(b"m")
    assert counting.wraps == 1  # the entry the first stack made is still used
    assert other.decrypt(message) == b"m"


def test_closing_a_shared_cache_closes_its_backend_and_leaves_the_other_processes_entries(clock):
    """Entries in a shared backend serve other processes too: close releases the connection
    and does not delete them (they expire there)."""

    class Closable(_SharedDict):
        closed = 0

        def clear(self) -> None:
            raise AssertionError("closing one process's cache must not clear a shared backend")

        def close(self) -> None:
            self.closed += 1

    backend = Closable()
    cache = DataKeyCache(backend, CachePolicy(), clock=clock.monotonic)
    cache.store(b"k" * 32, b"d" * 32, key_versions=("local://a?version=1",))
    cache.close()
    assert backend.closed == 1
    assert len(backend.entries) == 1
