"""The cache-backend contract: every test a data-key :class:`CacheBackend` must pass.

Subclass :class:`CacheBackendContract` and override the ``cache_backend``
fixture.
"""

from __future__ import annotations

import os

import pytest

from ..datakey import EncryptedDataKey
from ..interfaces import CacheBackend, CacheEntry
from .concurrency import run_in_threads
from .leaks import assert_no_secret

ARBITRARY_KEYS = (b"", b"\x00", b"a", b"a\x00", b"\xff" * 7, os.urandom(32), b"k" * 4096)
"""Cache keys of awkward lengths and contents, some of them prefixes of others."""


def make_entry(created_at: float = 0.0) -> CacheEntry:
    """A cache entry with fresh random material and one encrypted data key."""
    return CacheEntry(
        material=bytearray(os.urandom(32)),
        encrypted=(
            EncryptedDataKey(
                provider_id="contract", provider_info=b"contract-key", ciphertext=os.urandom(48)
            ),
        ),
        created_at=created_at,
        messages=3,
        bytes=1024,
    )


def is_wiped(entry: CacheEntry) -> bool:
    """Whether the entry's material has been overwritten with zero bytes."""
    return len(entry.material) > 0 and not any(entry.material)


class CacheBackendContract:
    """Conformance tests for a data-key cache backend.

    Override the ``cache_backend`` fixture to return a fresh, empty backend
    that can hold at least ``concurrency_threads * concurrency_operations``
    entries.  Class attributes:

    - ``stores_entries``: ``False`` for a backend that deliberately keeps
      nothing (a null cache); the tests then check that nothing comes back
      and that the caller's entries are left intact;
    - ``wipes_in_place``: ``False`` for a backend that keeps sealed copies
      elsewhere rather than the entries it is given; the tests that check
      those entries are wiped are then skipped.
    """

    stores_entries: bool = True
    wipes_in_place: bool = True
    concurrency_threads: int = 8
    concurrency_operations: int = 40

    @pytest.fixture
    def cache_backend(self) -> CacheBackend:
        """The cache backend under test: override this fixture in your subclass."""
        pytest.fail(
            f"{type(self).__name__} must override the 'cache_backend' fixture to return "
            "a fresh CacheBackend",
            pytrace=False,
        )

    def _require_storage(self) -> None:
        if not self.stores_entries:
            pytest.skip("this backend stores nothing (stores_entries = False)")

    def _require_wiping(self) -> None:
        self._require_storage()
        if not self.wipes_in_place:
            pytest.skip("this backend does not keep the entries it is given (wipes_in_place)")

    @staticmethod
    def _same(got: CacheEntry | None, entry: CacheEntry) -> None:
        assert got is not None
        assert isinstance(got, CacheEntry)
        assert bytes(got.material) == bytes(entry.material)
        assert got.encrypted == entry.encrypted
        assert (got.created_at, got.messages, got.bytes) == (
            entry.created_at,
            entry.messages,
            entry.bytes,
        )

    def test_satisfies_the_protocol(self, cache_backend: CacheBackend) -> None:
        """The backend has the methods of CacheBackend and starts empty."""
        assert isinstance(cache_backend, CacheBackend)
        assert len(cache_backend) == 0

    def test_get_missing_is_none(self, cache_backend: CacheBackend) -> None:
        """A key never stored gives None."""
        assert cache_backend.get(b"never stored") is None

    def test_put_then_get(self, cache_backend: CacheBackend) -> None:
        """An entry put comes back from get (a null backend gives None and leaves it intact)."""
        entry = make_entry()
        material = bytes(entry.material)
        cache_backend.put(b"key", entry)
        if not self.stores_entries:
            assert cache_backend.get(b"key") is None
            assert len(cache_backend) == 0
            assert bytes(entry.material) == material, "a backend that stores nothing wiped it"
            return
        self._same(cache_backend.get(b"key"), entry)
        assert bytes(entry.material) == material
        assert len(cache_backend) == 1

    def test_put_replaces_and_wipes_the_old_entry(self, cache_backend: CacheBackend) -> None:
        """A second put under a key replaces the entry and wipes the one it replaced."""
        self._require_storage()
        old, new = make_entry(1.0), make_entry(2.0)
        cache_backend.put(b"key", old)
        cache_backend.put(b"key", new)
        self._same(cache_backend.get(b"key"), new)
        assert len(cache_backend) == 1
        if self.wipes_in_place:
            assert is_wiped(old), "the replaced entry's material was not wiped"
            assert not is_wiped(new)

    def test_put_same_entry_again_keeps_it(self, cache_backend: CacheBackend) -> None:
        """Putting the entry already stored under a key does not wipe it."""
        self._require_storage()
        entry = make_entry()
        material = bytes(entry.material)
        cache_backend.put(b"key", entry)
        cache_backend.put(b"key", entry)
        got = cache_backend.get(b"key")
        assert got is not None
        assert bytes(got.material) == material
        assert bytes(entry.material) == material

    def test_evict_removes_and_wipes(self, cache_backend: CacheBackend) -> None:
        """Eviction removes the entry and wipes it; evicting a missing key does nothing."""
        entry, other = make_entry(), make_entry()
        cache_backend.put(b"key", entry)
        cache_backend.put(b"other", other)
        cache_backend.evict(b"key")
        cache_backend.evict(b"never stored")
        assert cache_backend.get(b"key") is None
        if self.stores_entries:
            assert len(cache_backend) == 1
            self._same(cache_backend.get(b"other"), other)
            if self.wipes_in_place:
                assert is_wiped(entry), "the evicted entry's material was not wiped"
                assert not is_wiped(other)
        else:
            assert len(cache_backend) == 0

    def test_clear_empties_and_wipes(self, cache_backend: CacheBackend) -> None:
        """Clearing removes and wipes every entry."""
        entries = {f"key-{i}".encode(): make_entry() for i in range(5)}
        for key, entry in entries.items():
            cache_backend.put(key, entry)
        cache_backend.clear()
        assert len(cache_backend) == 0
        assert all(cache_backend.get(key) is None for key in entries)
        if self.stores_entries and self.wipes_in_place:
            assert all(is_wiped(entry) for entry in entries.values())

    def test_len_counts_entries(self, cache_backend: CacheBackend) -> None:
        """The length follows puts, replacements and evictions."""
        self._require_storage()
        counts = []
        for i in range(3):
            cache_backend.put(f"key-{i}".encode(), make_entry())
            counts.append(len(cache_backend))
        cache_backend.put(b"key-0", make_entry())
        counts.append(len(cache_backend))
        cache_backend.evict(b"key-1")
        counts.append(len(cache_backend))
        assert counts == [1, 2, 3, 3, 2]

    def test_keys_are_arbitrary_bytes(self, cache_backend: CacheBackend) -> None:
        """Empty, binary, long and prefix-sharing keys each hold their own entry."""
        self._require_storage()
        entries = {key: make_entry(float(i)) for i, key in enumerate(ARBITRARY_KEYS)}
        for key, entry in entries.items():
            cache_backend.put(key, entry)
        assert len(cache_backend) == len(entries)
        for key, entry in entries.items():
            self._same(cache_backend.get(key), entry)

    def test_concurrent_put_get_evict(self, cache_backend: CacheBackend) -> None:
        """Threads putting, reading and evicting their own keys leave a consistent cache."""
        self._require_storage()

        def task(thread: int, operation: int) -> bool:
            key = f"{thread}/{operation}".encode()
            entry = make_entry(float(operation))
            material = bytes(entry.material)
            cache_backend.put(key, entry)
            got = cache_backend.get(key)
            ok = got is not None and bytes(got.material) == material
            if operation % 2:
                cache_backend.evict(key)
                ok = ok and cache_backend.get(key) is None
            return ok

        results = run_in_threads(
            task, threads=self.concurrency_threads, operations=self.concurrency_operations
        )
        assert results == [True] * len(results)
        kept = (self.concurrency_operations + 1) // 2
        assert len(cache_backend) == self.concurrency_threads * kept

    def test_material_never_in_repr(self, cache_backend: CacheBackend) -> None:
        """Neither an entry nor the backend shows the material in its repr."""
        entry = make_entry()
        cache_backend.put(b"key", entry)
        got = cache_backend.get(b"key")
        shown = {
            "repr(entry)": repr(entry),
            "repr(backend)": repr(cache_backend),
            "str(backend)": str(cache_backend),
            "repr(entry from get)": repr(got),
        }
        for where, text in shown.items():
            assert_no_secret(text, [bytes(entry.material)], where)
