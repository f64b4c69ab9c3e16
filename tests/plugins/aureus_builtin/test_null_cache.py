from __future__ import annotations

import pytest

from aureus_builtin.null_cache import NullCache
from aureus_core.errors import ConfigError
from aureus_core.testing import CacheBackendContract, make_entry


class TestNullCacheContract(CacheBackendContract):
    stores_entries = False

    @pytest.fixture
    def cache_backend(self) -> NullCache:
        return NullCache.from_options({})


def test_put_leaves_the_callers_entry_intact():
    cache = NullCache()
    entry = make_entry()
    material = bytes(entry.material)
    cache.put(b"k", entry)
    cache.evict(b"k")
    cache.clear()
    assert (cache.get(b"k"), len(cache), bytes(entry.material)) == (None, 0, material)


def test_takes_no_options():
    with pytest.raises(ConfigError) as error:
        NullCache.from_options({"capacity": 10})
    assert str(error.value) == (
        "unknown option(s) for the null cache backend: capacity; it accepts no options"
    )
