"""Data-key caching: reuse a data key across messages within strict limits.

As the AWS Encryption SDK's caching materials manager, and more:

- an entry is reused only for the same partition, the same wrapping keys, the
  same algorithm suite and the same encryption context (encrypt side), or the
  same encrypted data keys, context, suite and key filter (decrypt side);
- ``max_age``, ``max_messages`` and ``max_bytes`` bound each data key; an entry
  that would pass a limit is not used, and is evicted;
- entries live in a :class:`~aureus_core.interfaces.CacheBackend` (a plugin);
  plaintext keys stay in process memory as wipeable ``bytearray`` and every
  hit hands out a copy taken under the cache's lock, so an eviction by another
  thread can never zero a key that is in use;
- a miss is single-flight: threads that miss on one entry wait for one
  provider call, and a backend shared between processes
  (:class:`SharedCacheBackend`) adds a claim so that processes wait too;
- every entry names the wrapping-key versions that made it, and is dropped as
  soon as one of them is no longer usable: at once for changes made through the
  stack (:meth:`DataKeyCache.invalidate`), within ``recheck`` seconds for
  changes made elsewhere.

Time comes from an injectable monotonic clock, so tests of expiry never sleep.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import attrs

from .context import EncryptionContext
from .datakey import EncryptedDataKey
from .errors import ConfigError
from .interfaces import CacheBackend, CacheEntry
from .keyref import KeyRef
from .keys import KeyMetadata, KeyState
from .rotation import usable_versions

if TYPE_CHECKING:
    from .envelope.message import EncryptionMaterials

T = TypeVar("T")
_log = logging.getLogger(__name__)

MAX_MESSAGES_LIMIT = 2**32
"""The most messages one data key may protect (the AWS Encryption SDK's bound)."""
MAX_BYTES_LIMIT = 2**63 - 1
POLICY_OPTIONS = ("max_age", "max_messages", "max_bytes", "partition", "recheck")
DEFAULT_RECHECK = 60.0
"""Seconds between checks of a cached key's state with its provider (``recheck``)."""
CLAIM_LEASE = 10.0
"""Seconds a process's claim to fill a shared entry lasts if it never releases it."""
CLAIM_WAIT = 2.0
"""Seconds a process waits for another one's fill before making its own data key."""
CLAIM_POLL = 0.005
STALE_RECHECK = 1.0
"""Seconds between early rechecks of a key when entries name versions this process
has not seen yet."""
INDEX_LIMIT = 65536
"""Entry keys remembered per wrapping key for :meth:`DataKeyCache.invalidate`; older
ones are still dropped when next used, by the state check."""


def _positive(name: str, limit: float) -> Callable[[object, object, float], None]:
    def check(_: object, __: object, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= limit:
            raise ConfigError(f"cache {name} must be a number above 0 and at most {limit:g}")

    return check


@attrs.frozen(kw_only=True)
class CachePolicy:
    """Limits on each cached data key, and the partition that isolates this stack's entries."""

    max_age: float = attrs.field(default=3600.0, validator=_positive("max_age", 10 * 365 * 86400))
    """Seconds an entry may be used after it was made (default one hour, the seed's TTL)."""
    max_messages: int = attrs.field(
        default=MAX_MESSAGES_LIMIT, validator=_positive("max_messages", MAX_MESSAGES_LIMIT)
    )
    max_bytes: int = attrs.field(
        default=MAX_BYTES_LIMIT, validator=_positive("max_bytes", MAX_BYTES_LIMIT)
    )
    partition: str = "default"
    recheck: float = attrs.field(
        default=DEFAULT_RECHECK, validator=_positive("recheck", 10 * 365 * 86400)
    )
    """Seconds after which a cached entry's wrapping keys are described again, so that
    changes made outside this stack (another process, a console) are noticed."""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> CachePolicy:
        """Build from the policy keys of a ``[cache]`` table."""
        values = {name: options[name] for name in POLICY_OPTIONS if name in options}
        if "partition" in values and not isinstance(values["partition"], str):
            raise ConfigError("cache partition must be a string")
        return cls(**values)


def _digest(*parts: bytes) -> bytes:
    """SHA-512 of each part prefixed with its 8-byte length (one hash call)."""
    return hashlib.sha512(b"".join(len(part).to_bytes(8, "big") + part for part in parts)).digest()


@functools.lru_cache(maxsize=4096)
def _split(versioned: str) -> tuple[str, str | None]:
    ref = KeyRef.parse(versioned)
    return ref.with_version(None).uri, ref.version


def _edk_bytes(edk: EncryptedDataKey) -> bytes:
    fields = (edk.provider_id.encode(), edk.provider_info, edk.ciphertext)
    return b"".join(len(f).to_bytes(2, "big") + f for f in fields)


@attrs.frozen(kw_only=True)
class CachedKey:
    """A usable copy of a cached data key (never the cache's own buffer)."""

    material: bytearray = attrs.field(repr=False)
    encrypted: tuple[EncryptedDataKey, ...]
    signing_key: Any = attrs.field(default=None, repr=False)
    key_versions: tuple[str, ...] = ()


@runtime_checkable
class SharedCacheBackend(Protocol):
    """A cache backend shared between processes, which counts uses on its side.

    The per-process lock of :class:`DataKeyCache` cannot order other
    processes, so such a backend reserves each use atomically and lets one
    process at a time fill a missing entry.
    """

    def reserve(
        self, key: bytes, *, plaintext_bytes: int, max_messages: int, max_bytes: int
    ) -> CacheEntry | None:
        """Count one more message of ``plaintext_bytes`` against the entry and return it.

        Returns ``None`` when there is no entry, and removes the entry when the
        use would pass ``max_messages`` or ``max_bytes``; the check and the
        count are one atomic step.  The returned entry is the caller's to wipe;
        its ``created_at`` is on this process's ``time.monotonic`` clock.
        """
        ...

    def claim(self, key: bytes, seconds: float) -> bool:
        """Take the right to fill ``key`` for ``seconds``; ``False`` if another holds it."""
        ...

    def release(self, key: bytes) -> None:
        """Give a claim back."""
        ...

    def set_max_age(self, seconds: float) -> None:
        """Make entries expire ``seconds`` after they are put."""
        ...


@runtime_checkable
class PublishesKeyChanges(Protocol):
    """A shared backend that tells every process of a key change made in one of them."""

    def key_changed(self, uri: str) -> None:
        """Record that key ``uri`` changed now: entries made with it before are not used."""
        ...


@attrs.frozen(kw_only=True)
class Fill:
    """What a miss made, for the cache to keep: the data key and where it came from."""

    material: bytearray = attrs.field(repr=False)
    encrypted: tuple[EncryptedDataKey, ...] = ()
    signing_key: Any = attrs.field(default=None, repr=False)
    key_versions: tuple[str, ...] = ()
    """URIs with ``?version=`` of the key versions that wrapped or unwrapped it."""


def fill_of(materials: EncryptionMaterials, used: Sequence[KeyRef]) -> Fill:
    """The cache's view of fresh encryption materials wrapped by the key versions ``used``."""
    return Fill(
        material=bytearray(materials.data_key),
        encrypted=tuple(materials.encrypted_data_keys),
        signing_key=materials.signing_key,
        key_versions=tuple(ref.uri for ref in used),
    )


def stream_size(src: IO[bytes]) -> int | None:
    """The bytes left in a seekable stream (its length at this moment), else ``None``."""
    try:
        if not src.seekable():
            return None
        here = src.tell()
        end = src.seek(0, os.SEEK_END)
        src.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return max(0, end - here)


@attrs.frozen
class _KeyCheck:
    checked_at: float
    metadata: KeyMetadata | None


def entry_usable(metadata: KeyMetadata, version: str | None, *, encrypting: bool) -> bool:
    """Whether an entry made with ``version`` of this key may still be used.

    The key must be enabled and the version usable for unwrapping (enabled,
    not below the minimum decryption version); an entry for new messages must
    also still be on the current version, so a rotation moves new messages
    to the new version at once.
    """
    if metadata.state is not KeyState.ENABLED:
        return False
    if version is None or not metadata.versions:
        return not encrypting or version is None or version == metadata.current_version
    if version not in usable_versions(metadata):
        return False
    return not encrypting or version == metadata.current_version


class DataKeyCache:
    """The caching layer between a stack and its cache backend."""

    def __init__(
        self,
        backend: CacheBackend,
        policy: CachePolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        describe: Callable[[str], KeyMetadata | None] | None = None,
    ) -> None:
        self.backend = backend
        self.policy = policy or CachePolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.provider_fills = 0
        self.invalidated = 0
        self.describe = describe
        """Looks up a key's metadata by URI for ``recheck`` (the stack sets it)."""
        self._shared = isinstance(backend, SharedCacheBackend)
        if isinstance(backend, SharedCacheBackend):
            backend.set_max_age(self.policy.max_age)
        self._flights: dict[bytes, list[Any]] = {}
        self._checks: dict[str, _KeyCheck] = {}
        self._by_key: dict[str, dict[bytes, tuple[str | None, bool]]] = {}

    # -- keys --------------------------------------------------------------------

    def encrypt_key(
        self, suite_id: int, keys: Sequence[KeyRef], context: EncryptionContext
    ) -> bytes:
        """The entry key for new messages: partition, suite, wrapping keys, context."""
        return _digest(
            b"encrypt",
            self.policy.partition.encode(),
            suite_id.to_bytes(2, "big"),
            "\n".join(sorted(ref.uri for ref in keys)).encode(),
            context.serialize(),
        )

    def decrypt_key(
        self,
        suite_id: int,
        encrypted: Sequence[EncryptedDataKey],
        context: EncryptionContext,
        key_filter: str,
    ) -> bytes:
        """The entry key for reading: partition, suite, encrypted data keys, context, filter."""
        return _digest(
            b"decrypt",
            self.policy.partition.encode(),
            suite_id.to_bytes(2, "big"),
            b"".join(sorted(_edk_bytes(edk) for edk in encrypted)),
            context.serialize(),
            key_filter.encode(),
        )

    # -- use -----------------------------------------------------------------------

    def take(
        self, key: bytes, *, plaintext_bytes: int, count_miss: bool = True
    ) -> CachedKey | None:
        """Use the entry under ``key`` for one more message of ``plaintext_bytes``.

        Returns a copy of the key, or ``None`` (a miss) when there is no entry
        or using it would pass a limit — in which case the entry is evicted.
        """
        if self._shared:
            return self._take_shared(key, plaintext_bytes, count_miss)
        with self._lock:
            entry = self.backend.get(key)
            if entry is None:
                self.misses += count_miss
                return None
            policy = self.policy
            if (
                self._clock() - entry.created_at >= policy.max_age
                or entry.messages + 1 > policy.max_messages
                or entry.bytes + plaintext_bytes > policy.max_bytes
            ):
                self.backend.evict(key)
                self.misses += count_miss
                return None
            entry.messages += 1
            entry.bytes += plaintext_bytes
            self.hits += 1
            return CachedKey(
                material=bytearray(entry.material),
                encrypted=entry.encrypted,
                signing_key=entry.signing_key,
                key_versions=entry.key_versions,
            )

    def _take_shared(self, key: bytes, plaintext_bytes: int, count_miss: bool) -> CachedKey | None:
        backend = self.backend
        assert isinstance(backend, SharedCacheBackend)
        entry = backend.reserve(
            key,
            plaintext_bytes=plaintext_bytes,
            max_messages=self.policy.max_messages,
            max_bytes=self.policy.max_bytes,
        )
        if entry is not None and time.monotonic() - entry.created_at >= self.policy.max_age:
            # Redis expiry normally removes it first; this catches an old entry put
            # back by someone who can write to the store (the creation time is sealed).
            entry.wipe()
            self.backend.evict(key)
            entry = None
        with self._lock:
            if entry is None:
                self.misses += count_miss
                return None
            self.hits += 1
        try:
            return CachedKey(
                material=bytearray(entry.material),
                encrypted=entry.encrypted,
                signing_key=entry.signing_key,
                key_versions=entry.key_versions,
            )
        finally:
            entry.wipe()

    def lookup(
        self,
        key: bytes,
        *,
        plaintext_bytes: int,
        encrypting: bool,
        make: Callable[[], tuple[T, Fill]],
    ) -> tuple[CachedKey | None, T | None]:
        """A cached data key, or what ``make`` returns after one provider call.

        Returns ``(cached, None)`` on a hit and ``(None, made)`` on a miss.
        Threads that miss on the same entry wait for the first one's ``make``
        and then use its data key (single flight); with a shared backend,
        other processes wait for it too (up to :data:`CLAIM_WAIT` seconds).
        A hit whose wrapping keys are no longer usable is dropped and counts
        as a miss.
        """
        first = self.take(key, plaintext_bytes=plaintext_bytes, count_miss=False)
        cached = self._usable(key, first, encrypting)
        if cached is not None:
            return cached, None
        with self._flight(key):
            cached = self._usable(key, self.take(key, plaintext_bytes=plaintext_bytes), encrypting)
            if cached is not None:
                return cached, None
            claimed = False
            if isinstance(self.backend, SharedCacheBackend):
                claimed, cached = self._claim(self.backend, key, plaintext_bytes, encrypting)
                if cached is not None:
                    return cached, None
            try:
                # Stamped before the provider call: a key change published while it
                # runs makes the entry older than the change, so it is never used.
                started = time.monotonic() if self._shared else self._clock()
                made, fill = make()
                with self._lock:
                    self.provider_fills += 1
                self.store(
                    key,
                    fill.material,
                    encrypted=fill.encrypted,
                    signing_key=fill.signing_key,
                    plaintext_bytes=plaintext_bytes,
                    key_versions=fill.key_versions,
                    encrypting=encrypting,
                    created_at=started,
                )
            finally:
                if claimed:
                    assert isinstance(self.backend, SharedCacheBackend)
                    self.backend.release(key)
            return None, made

    def _claim(
        self, backend: SharedCacheBackend, key: bytes, plaintext_bytes: int, encrypting: bool
    ) -> tuple[bool, CachedKey | None]:
        """Claim the fill of ``key``, or wait for another process's fill to appear."""
        deadline = time.monotonic() + CLAIM_WAIT
        while not backend.claim(key, CLAIM_LEASE):
            time.sleep(CLAIM_POLL)
            polled = self.take(key, plaintext_bytes=plaintext_bytes, count_miss=False)
            cached = self._usable(key, polled, encrypting)
            if cached is not None:
                return False, cached
            if time.monotonic() >= deadline:
                return False, None
        # Another process may have filled the entry and released its claim between
        # this process's miss and its claim: look once more before making a key.
        polled = self.take(key, plaintext_bytes=plaintext_bytes, count_miss=False)
        cached = self._usable(key, polled, encrypting)
        if cached is not None:
            backend.release(key)
            return False, cached
        return True, None

    @contextmanager
    def _flight(self, key: bytes) -> Iterator[None]:
        with self._lock:
            slot = self._flights.setdefault(key, [threading.Lock(), 0])
            slot[1] += 1
        try:
            with slot[0]:
                yield
        finally:
            with self._lock:
                slot[1] -= 1
                if slot[1] == 0:
                    del self._flights[key]

    # -- lifecycle -------------------------------------------------------------------

    def _usable(self, key: bytes, cached: CachedKey | None, encrypting: bool) -> CachedKey | None:
        if cached is None or not cached.key_versions:
            return cached
        for versioned in cached.key_versions:
            base, version = _split(versioned)
            metadata = self._metadata(base)
            if (
                metadata is not None
                and version is not None
                and metadata.versions
                and version not in {v.version for v in metadata.versions}
            ):
                # Made with a version newer than what this process knows (another
                # process rotated first): the knowledge is stale, not the entry.
                metadata = self._metadata(base, within=min(self.policy.recheck, STALE_RECHECK))
            if metadata is not None and not entry_usable(metadata, version, encrypting=encrypting):
                cached.material[:] = bytes(len(cached.material))
                self.evict(key)
                with self._lock:
                    self.hits -= 1
                    self.invalidated += 1
                return None
        return cached

    def _metadata(self, uri: str, within: float | None = None) -> KeyMetadata | None:
        now = self._clock()
        with self._lock:
            check = self._checks.get(uri)
        limit = self.policy.recheck if within is None else within
        if check is not None and now - check.checked_at < limit:
            return check.metadata
        metadata = None
        if self.describe is not None:
            try:
                metadata = self.describe(uri)
            except Exception as error:  # a provider outage must not fail the operation
                _log.warning(
                    "data-key cache: could not recheck %s (%s); using the last known state",
                    uri,
                    type(error).__name__,
                )
                metadata = check.metadata if check is not None else None
        with self._lock:
            self._checks[uri] = _KeyCheck(now, metadata)
        return metadata

    def invalidate(self, uri: str, metadata: KeyMetadata | None = None) -> None:
        """Drop the entries made with key ``uri`` after a lifecycle change to it.

        ``metadata`` (the key's state after the change) is remembered as
        freshly checked, so entries this process has not seen, including
        shared ones other processes made, are judged against it when next used.
        """
        base = _split(uri)[0]
        uris = {base} | ({metadata.uri} if metadata is not None else set())
        now = self._clock()
        keys: list[bytes] = []
        with self._lock:
            for name in uris:
                index = self._by_key.get(name, {})
                for key, (version, encrypting) in list(index.items()):
                    if metadata is None or not entry_usable(
                        metadata, version, encrypting=encrypting
                    ):
                        keys.append(key)
                        del index[key]
                if metadata is not None:
                    self._checks[name] = _KeyCheck(now, metadata)
                else:
                    self._checks.pop(name, None)
        for key in keys:
            self.evict(key)
            with self._lock:
                self.invalidated += 1
        if isinstance(self.backend, PublishesKeyChanges):
            for name in uris:
                self.backend.key_changed(name)

    def evict(self, key: bytes) -> None:
        """Remove (and wipe) the entry under ``key``."""
        if self._shared:
            self.backend.evict(key)
            return
        with self._lock:
            self.backend.evict(key)

    def store(
        self,
        key: bytes,
        material: bytes | bytearray,
        *,
        encrypted: tuple[EncryptedDataKey, ...] = (),
        signing_key: Any = None,
        plaintext_bytes: int = 0,
        counts_as_use: bool = True,
        key_versions: tuple[str, ...] = (),
        encrypting: bool = True,
        created_at: float | None = None,
    ) -> None:
        """Cache a fresh data key; with ``counts_as_use`` its first message is counted.

        A key whose first message already reaches a limit is not stored.
        """
        messages = 1 if counts_as_use else 0
        used_bytes = plaintext_bytes if counts_as_use else 0
        if messages >= self.policy.max_messages or used_bytes >= self.policy.max_bytes:
            return
        entry = CacheEntry(
            material=bytearray(material),
            encrypted=encrypted,
            # A shared backend carries creation times between processes on their
            # monotonic clocks; an in-process one uses this cache's (injectable) clock.
            created_at=(
                created_at
                if created_at is not None
                else time.monotonic()
                if self._shared
                else self._clock()
            ),
            messages=messages,
            bytes=used_bytes,
            signing_key=signing_key,
            key_versions=key_versions,
        )
        with self._lock:
            for versioned in key_versions:
                base, version = _split(versioned)
                index = self._by_key.setdefault(base, {})
                index[key] = (version, encrypting)
                # The provider has just used this version: that is a fresh check, unless
                # what we knew of the key says otherwise (then describe it again).
                check = self._checks.get(base)
                if check is None:
                    self._checks[base] = _KeyCheck(self._clock(), None)
                elif check.metadata is not None and not entry_usable(
                    check.metadata, version, encrypting=encrypting
                ):
                    del self._checks[base]
                while len(index) > INDEX_LIMIT:
                    del index[next(iter(index))]
            if not self._shared:
                self.backend.put(key, entry)
        if self._shared:  # a network call: not under the lock that hits share
            self.backend.put(key, entry)
            entry.wipe()

    def clear(self) -> None:
        """Drop (and wipe) every entry."""
        with self._lock:
            self.backend.clear()
            self._by_key.clear()

    def close(self) -> None:
        """Wipe the data keys this process holds and close the backend if it can be closed.

        A shared backend's entries stay for the other processes (they expire
        there); an in-process backend's are dropped and wiped now, not when the
        garbage collector gets to them.
        """
        with self._lock:
            if not self._shared:
                self.backend.clear()
            self._by_key.clear()
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        return (
            f"<DataKeyCache {type(self.backend).__name__} entries={len(self.backend)} "
            f"hits={self.hits} misses={self.misses}>"
        )
