"""The cache-backend contract: every test a data-key :class:`CacheBackend` must pass.

Subclass :class:`CacheBackendContract` and override the ``cache_backend``
fixture; a backend shared between processes also overrides
``backend_factory``, and one that can be taken down overrides
``backend_outage``.  A backend that keeps its entries elsewhere
(``wipes_in_place = False``) must override ``stored_bytes``.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timezone

import pytest

from ..cache import CachePolicy, DataKeyCache, Fill
from ..datakey import EncryptedDataKey
from ..interfaces import CacheBackend, CacheEntry
from ..keyref import KeyRef
from ..keys import KeyMetadata, KeyState, KeyType, KeyVersion
from .concurrency import run_in_threads
from .leaks import assert_no_secret, secret_forms

BackendFactory = Callable[[], CacheBackend]
StoredBytes = Callable[[], bytes]
"""Returns everything the backend's store holds (names, fields, values) as one byte string."""
CLOCK_TOLERANCE = 0.01
"""Seconds a backend's creation times may drift by carrying them between clocks."""
FAULT_BOUND = 2.0
"""Seconds one cache operation may take while the backend is down or hung."""

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


def fresh_fill(uri: str = "contract://key?version=1") -> tuple[bytes, Fill]:
    """What a provider call makes on a miss: a new random data key (and its digest)."""
    material = os.urandom(32)
    return hashlib.sha256(material).digest(), Fill(
        material=bytearray(material), key_versions=(uri,)
    )


def uses_per_key(
    cache: DataKeyCache, operations: int, *, plaintext_bytes: int = 0
) -> list[tuple[bytes, bool]]:
    """Encrypt-side lookups under one entry key: (data key digest, whether it was made)."""
    results = []
    for _ in range(operations):
        cached, made = cache.lookup(
            b"contract entry", plaintext_bytes=plaintext_bytes, encrypting=True, make=fresh_fill
        )
        if cached is not None:
            results.append((hashlib.sha256(cached.material).digest(), False))
        else:
            assert made is not None
            results.append((made, True))
    return results


def _process_worker(
    factory: BackendFactory, max_messages: int, operations: int
) -> list[tuple[bytes, bool]]:
    cache = DataKeyCache(factory(), CachePolicy(max_messages=max_messages))
    return uses_per_key(cache, operations)


def key_metadata(state: KeyState = KeyState.ENABLED, current: str = "1") -> KeyMetadata:
    """Metadata of the contract's key ``contract://key`` with versions 1..current."""
    created = datetime(2030, 1, 1, tzinfo=timezone.utc)
    versions = tuple(
        KeyVersion(version=str(n), created_at=created, state=state)
        for n in range(1, int(current) + 1)
    )
    return KeyMetadata(
        ref=KeyRef.parse("contract://key"),
        key_type=KeyType.AES_256,
        state=KeyState.ENABLED,
        created_at=created,
        current_version=current,
        versions=versions,
    )


def is_wiped(entry: CacheEntry) -> bool:
    """Whether the entry's material has been overwritten with zero bytes."""
    return len(entry.material) > 0 and not any(entry.material)


def one_byte_apart(base: bytes) -> list[bytes]:
    """``base`` and, for each byte position, a copy with that byte inverted."""
    return [base] + [base[:i] + bytes([base[i] ^ 0xFF]) + base[i + 1 :] for i in range(len(base))]


def _derived(seed: bytes, label: bytes, number: int) -> bytes:
    return hashlib.sha256(seed + label + number.to_bytes(8, "big")).digest()


def find_material(dump: bytes, materials: list[bytes]) -> str | None:
    """The form in which one of ``materials`` appears in ``dump`` (raw, hex, base64), or None."""
    text = dump.decode("latin-1")
    for material in materials:
        if material.decode("latin-1") in text:
            return "raw bytes"
        for name, form in secret_forms(material).items():
            if form in text:
                return name
    return None


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
      those entries are wiped are then skipped, and the backend must
      override ``stored_bytes`` instead, so the contract can check that no
      data key is in its store;
    - ``distinct_keys``: how many random 32-byte keys the key-space test
      stores (2**18); a remote store may shrink it to keep the test quick,
      at the cost of its power to find a 32-bit index.

    Optional fixtures: ``backend_factory`` (a picklable callable that
    connects a new backend object to the same store, for the tests with
    several processes), ``backend_outage`` (a callable returning a context
    manager during which the store does not answer) and
    ``overflow_entries`` (how many entries overfill the backend; 5,000).
    """

    stores_entries: bool = True
    wipes_in_place: bool = True
    concurrency_threads: int = 8
    concurrency_operations: int = 40
    processes: int = 4
    distinct_keys: int = 2**18

    @pytest.fixture
    def cache_backend(self) -> CacheBackend:
        """The cache backend under test: override this fixture in your subclass."""
        pytest.fail(
            f"{type(self).__name__} must override the 'cache_backend' fixture to return "
            "a fresh CacheBackend",
            pytrace=False,
        )

    @pytest.fixture
    def backend_factory(self) -> BackendFactory | None:
        """Override for a shared backend: builds another client of the same store."""
        return None

    @pytest.fixture
    def backend_outage(self) -> Callable[[], AbstractContextManager[None]] | None:
        """Override for a backend that can fail: a context manager that takes it down."""
        return None

    @pytest.fixture
    def stored_bytes(self) -> StoredBytes | None:
        """Required with ``wipes_in_place = False``: a dump of everything the store holds."""
        return None

    @pytest.fixture
    def overflow_entries(self) -> int:
        """More entries than the backend holds (override with its capacity plus some)."""
        return 5000

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
        assert (got.messages, got.bytes) == (entry.messages, entry.bytes)
        # A shared backend carries the creation time across processes' clocks.
        assert got.created_at == pytest.approx(entry.created_at, abs=CLOCK_TOLERANCE)

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

    def test_keys_one_byte_apart_hold_their_own_entries(self, cache_backend: CacheBackend) -> None:
        """A 32-byte key and its 32 copies with one byte inverted are 33 distinct entries.

        A backend that indexes by part of the key (its first or last bytes)
        would hand one key's data key to another: another partition's.
        """
        self._require_storage()
        keys = one_byte_apart(os.urandom(32))
        entries = {key: make_entry(float(i)) for i, key in enumerate(keys)}
        for key, entry in entries.items():
            cache_backend.put(key, entry)
        for position, (key, entry) in enumerate(entries.items()):
            which = f"the key with byte {position - 1} inverted" if position else "the base key"
            got = cache_backend.get(key)
            assert got is not None, f"the entry of {which} is gone"
            assert bytes(got.material) == bytes(entry.material), (
                f"get returned another key's entry for {which}: compare keys whole"
            )
            self._same(got, entry)
        assert len(cache_backend) == len(keys)

    def test_random_keys_never_get_another_keys_entry(self, cache_backend: CacheBackend) -> None:
        """Of ``distinct_keys`` random 32-byte keys, each gets its own entry or none.

        2**18 keys make a collision of any 32-bit index of the key (a CRC, a
        short hash) all but certain (about 8 expected pairs).  A bounded
        backend may have dropped entries: a miss passes, another key's entry
        does not.
        """
        self._require_storage()
        seed = os.urandom(16)
        encrypted = make_entry().encrypted
        for number in range(self.distinct_keys):
            material = _derived(seed, b"material", number)
            entry = CacheEntry(material=bytearray(material), encrypted=encrypted, created_at=0.0)
            cache_backend.put(_derived(seed, b"key", number), entry)
        found = 0
        for number in range(self.distinct_keys):
            got = cache_backend.get(_derived(seed, b"key", number))
            if got is None:
                continue
            found += 1
            assert bytes(got.material) == _derived(seed, b"material", number), (
                f"get of random key #{number} returned another key's entry: "
                "the backend must index entries by the whole key"
            )
        assert found, "none of the entries put could be read back"

    def test_entries_dropped_for_room_are_wiped(
        self, cache_backend: CacheBackend, overflow_entries: int
    ) -> None:
        """Put more entries than the backend holds: every one it dropped has been wiped.

        The others come back intact.  A bounded backend makes room by
        evicting, and an eviction wipes, whatever caused it.
        """
        self._require_wiping()
        entries = [(b"overflow-%d" % i, make_entry(float(i))) for i in range(overflow_entries)]
        for key, entry in entries:
            cache_backend.put(key, entry)
        dropped = 0
        for key, entry in entries:
            got = cache_backend.get(key)
            if got is None:
                dropped += 1
                assert is_wiped(entry), (
                    f"entry {key.decode()} was dropped to make room without being wiped"
                )
            else:
                self._same(got, entry)
                assert not is_wiped(entry)
        assert len(cache_backend) == overflow_entries - dropped

    def test_store_holds_no_data_key(
        self, cache_backend: CacheBackend, stored_bytes: StoredBytes | None
    ) -> None:
        """A backend that keeps entries elsewhere keeps no data key there, in any form.

        Nor does it keep the entry objects it is given (those it would have
        to wipe): it hands back its own.  Checked for live, replaced, evicted
        and cleared entries, raw, hex or base64.
        """
        self._require_storage()
        if self.wipes_in_place:
            pytest.skip("the backend keeps and wipes the entries it is given (wipes_in_place)")
        if stored_bytes is None:
            pytest.fail(
                f"{type(self).__name__} sets wipes_in_place = False, so nothing checks that its "
                "store is free of data keys: override the stored_bytes fixture to return a "
                "function that dumps everything the store holds, as bytes",
                pytrace=False,
            )
        entries = {f"stored-{i}".encode(): make_entry(float(i)) for i in range(6)}
        materials = [bytes(entry.material) for entry in entries.values()]
        for key, entry in entries.items():
            cache_backend.put(key, entry)
        replacement = make_entry(9.0)
        materials.append(bytes(replacement.material))
        cache_backend.put(b"stored-0", replacement)
        cache_backend.evict(b"stored-1")
        for key, entry in list(entries.items())[2:]:
            got = cache_backend.get(key)
            self._same(got, entry)
            assert got is not entry, (
                "get returned the very entry object it was given: a backend that keeps "
                "the caller's entries must wipe them (wipes_in_place = True)"
            )
        live = stored_bytes()
        assert live, "stored_bytes returned nothing while the backend holds five entries"
        form = find_material(live, materials)
        assert form is None, f"the store holds a data key (as {form}): seal entries before storing"
        cache_backend.clear()
        form = find_material(stored_bytes(), materials)
        assert form is None, f"after clear() the store holds a data key (as {form})"

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

    # -- the cache built on the backend: exact under concurrency, lifecycle, faults --

    @pytest.mark.parametrize("threads", [4, 8])
    def test_single_flight_under_threads(self, cache_backend: CacheBackend, threads: int) -> None:
        """N lookups by any number of threads make exactly ceil(N / max_messages) data keys."""
        self._require_storage()
        cache = DataKeyCache(cache_backend, CachePolicy(max_messages=50))
        operations = 1000 // threads
        results = run_in_threads(
            lambda _t, _o: uses_per_key(cache, 1)[0], threads=threads, operations=operations
        )
        made = sum(1 for _, fresh in results if fresh)
        assert made == math.ceil(len(results) / 50)
        uses = Counter(digest for digest, _ in results)
        assert max(uses.values()) <= 50, "a data key protected more than max_messages messages"
        assert sum(uses.values()) == len(results)

    def test_single_flight_under_the_byte_limit(self, cache_backend: CacheBackend) -> None:
        """With only max_bytes limiting, threads make ceil(total bytes / max_bytes) keys."""
        self._require_storage()
        cache = DataKeyCache(cache_backend, CachePolicy(max_bytes=100 * 40))

        def one(_t: int, _o: int) -> tuple[bytes, bool]:
            return uses_per_key(cache, 1, plaintext_bytes=100)[0]

        results = run_in_threads(one, threads=8, operations=50)
        assert sum(1 for _, fresh in results if fresh) == math.ceil(len(results) * 100 / 4000)
        assert max(Counter(d for d, _ in results).values()) <= 40

    def test_processes_share_one_data_key_per_window(
        self, cache_backend: CacheBackend, backend_factory: BackendFactory | None
    ) -> None:
        """Processes sharing the store make at most ceil(N / max_messages) + processes keys.

        And no key is ever used for more than max_messages messages.
        """
        self._require_storage()
        if backend_factory is None:
            pytest.skip("not shared between processes (no backend_factory fixture)")
        operations, limit = 500, 100
        spawn = multiprocessing.get_context("spawn")
        with spawn.Pool(self.processes) as pool:
            batches = pool.starmap(
                _process_worker, [(backend_factory, limit, operations)] * self.processes
            )
        results = [item for batch in batches for item in batch]
        made = sum(1 for _, fresh in results if fresh)
        total = operations * self.processes
        assert math.ceil(total / limit) <= made <= math.ceil(total / limit) + self.processes
        uses = Counter(digest for digest, _ in results)
        assert max(uses.values()) <= limit, "a data key protected more than max_messages messages"

    def test_lifecycle_change_through_the_stack_drops_entries(
        self, cache_backend: CacheBackend
    ) -> None:
        """invalidate() with the key's new state drops its entries before their next use."""
        self._require_storage()
        cache = DataKeyCache(cache_backend, CachePolicy())
        first = uses_per_key(cache, 2)
        assert [fresh for _, fresh in first] == [True, False]
        cache.invalidate("contract://key", key_metadata(current="2"))  # rotated
        after = uses_per_key(cache, 1)
        assert after[0][1], "an entry on the rotated-away version was used"
        assert after[0][0] != first[0][0]

    def test_lifecycle_change_elsewhere_noticed_within_recheck(
        self, cache_backend: CacheBackend
    ) -> None:
        """A key disabled elsewhere stops serving cached entries once ``recheck`` passes."""
        self._require_storage()
        now = [0.0]
        state = [key_metadata()]
        cache = DataKeyCache(
            cache_backend,
            CachePolicy(recheck=10),
            clock=lambda: now[0],
            describe=lambda uri: state[0],
        )
        uses_per_key(cache, 1)
        state[0] = key_metadata(KeyState.DISABLED)
        now[0] = 9.0
        assert uses_per_key(cache, 1)[0][1] is False  # not rechecked yet
        now[0] = 10.0
        assert uses_per_key(cache, 1)[0][1] is True  # dropped, a new key made

    def test_outage_falls_back_to_the_provider(
        self,
        cache_backend: CacheBackend,
        backend_outage: Callable[[], AbstractContextManager[None]] | None,
    ) -> None:
        """While the store is down every lookup answers quickly with a fresh key.

        Afterwards the cache works again.
        """
        self._require_storage()
        if backend_outage is None:
            pytest.skip("cannot be taken down (no backend_outage fixture)")
        cache = DataKeyCache(cache_backend, CachePolicy())
        uses_per_key(cache, 2)
        with backend_outage():
            for _ in range(5):
                started = time.monotonic()
                result = uses_per_key(cache, 1)[0]
                assert time.monotonic() - started < FAULT_BOUND
                assert result[1], "a lookup during an outage did not make a fresh key"
        deadline = time.monotonic() + 10
        recovered: list[bool] = []
        while time.monotonic() < deadline:
            recovered = [fresh for _, fresh in uses_per_key(cache, 2)]
            if recovered == [True, False]:
                break
            time.sleep(0.1)
        assert recovered[-1] is False, "the cache never recovered after the outage"


def stack_encrypt_worker(
    config: dict[str, object], messages: int, context: dict[str, str]
) -> tuple[int, list[bytes]]:
    """Encrypt ``messages`` small messages with a stack built from ``config`` in this process.

    For tests and benchmarks of caches shared between processes: returns the
    provider's wrap calls and, per message, a digest of its first encrypted
    data key (one per data key, so equal digests mean a shared data key).
    """
    from ..envelope.message import MessageReader
    from ..stack import KeyStack
    from .counting import CountingProvider

    setup = KeyStack.from_dict(config)
    counting = CountingProvider(setup.provider("local"))
    stack = KeyStack.from_dict(config, providers={"local": counting})
    try:
        digests = []
        for _ in range(messages):
            message = stack.encrypt(b"shared cache", context=context)
            edk = MessageReader(message).header.encrypted_data_keys[0]
            digests.append(hashlib.sha256(edk.ciphertext).digest())
        return counting.wraps, digests
    finally:
        stack.close()
        setup.close()
