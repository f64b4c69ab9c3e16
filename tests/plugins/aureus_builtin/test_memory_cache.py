from __future__ import annotations

import pytest

from aureus_builtin.memory_cache import DEFAULT_CAPACITY, MemoryCache
from aureus_core.errors import ConfigError
from aureus_core.testing import CacheBackendContract, make_entry


class TestMemoryCacheContract(CacheBackendContract):
    @pytest.fixture
    def cache_backend(self) -> MemoryCache:
        return MemoryCache.from_options({})


def test_default_capacity():
    assert MemoryCache.from_options({}).capacity == DEFAULT_CAPACITY == 1000


def test_least_recently_used_entry_is_evicted_and_wiped():
    cache = MemoryCache(capacity=3)
    entries = {key: make_entry() for key in (b"a", b"b", b"c", b"d")}
    for key in (b"a", b"b", b"c"):
        cache.put(key, entries[key])
    assert cache.get(b"a") is entries[b"a"]  # "a" is now the most recently used
    cache.put(b"d", entries[b"d"])
    assert len(cache) == 3
    assert cache.get(b"b") is None
    assert not any(entries[b"b"].material)
    assert [cache.get(k) is entries[k] for k in (b"a", b"c", b"d")] == [True, True, True]
    assert all(any(entries[k].material) for k in (b"a", b"c", b"d"))


def test_eviction_order_follows_use():
    cache = MemoryCache(capacity=2)
    first, second, third = make_entry(), make_entry(), make_entry()
    cache.put(b"1", first)
    cache.put(b"2", second)
    cache.put(b"1", first)  # re-putting counts as a use
    cache.put(b"3", third)
    assert cache.get(b"2") is None
    assert cache.get(b"1") is first
    assert cache.get(b"3") is third
    assert any(first.material)


def test_capacity_of_one_keeps_only_the_newest():
    cache = MemoryCache(capacity=1)
    old, new = make_entry(), make_entry()
    cache.put(b"old", old)
    cache.put(b"new", new)
    assert (len(cache), cache.get(b"old"), cache.get(b"new")) == (1, None, new)
    assert not any(old.material)


@pytest.mark.parametrize(
    ("capacity", "message"),
    [
        (0, "option 'capacity' of the memory cache backend must be at least 1, not 0"),
        (-5, "option 'capacity' of the memory cache backend must be at least 1, not -5"),
        ("10", "option 'capacity' of the memory cache backend must be a whole number, not str"),
        (2.5, "option 'capacity' of the memory cache backend must be a whole number, not float"),
        (True, "option 'capacity' of the memory cache backend must be a whole number, not bool"),
    ],
)
def test_capacity_validation(capacity, message):
    with pytest.raises(ConfigError) as error:
        MemoryCache.from_options({"capacity": capacity})
    assert str(error.value) == message


def test_constructor_validates_capacity_too():
    with pytest.raises(ConfigError, match="at least 1"):
        MemoryCache(capacity=0)


def test_unknown_option_is_named():
    with pytest.raises(ConfigError) as error:
        MemoryCache.from_options({"capacity": 5, "ttl": 60})
    assert str(error.value) == (
        "unknown option(s) for the memory cache backend: ttl; it accepts capacity"
    )


def test_repr_shows_size_not_material():
    cache = MemoryCache(capacity=7)
    entry = make_entry()
    cache.put(b"k", entry)
    assert repr(cache) == "MemoryCache(entries=1, capacity=7)"
