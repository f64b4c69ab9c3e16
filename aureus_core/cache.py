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
  thread can never zero a key that is in use.

Time comes from an injectable monotonic clock, so tests of expiry never sleep.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from .context import EncryptionContext
from .datakey import EncryptedDataKey
from .errors import ConfigError
from .interfaces import CacheBackend, CacheEntry
from .keyref import KeyRef

MAX_MESSAGES_LIMIT = 2**32
"""The most messages one data key may protect (the AWS Encryption SDK's bound)."""
MAX_BYTES_LIMIT = 2**63 - 1
POLICY_OPTIONS = ("max_age", "max_messages", "max_bytes", "partition")


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

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> CachePolicy:
        """Build from the policy keys of a ``[cache]`` table."""
        values = {name: options[name] for name in POLICY_OPTIONS if name in options}
        if "partition" in values and not isinstance(values["partition"], str):
            raise ConfigError("cache partition must be a string")
        return cls(**values)


def _digest(*parts: bytes) -> bytes:
    hasher = hashlib.sha512()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.digest()


def _edk_bytes(edk: EncryptedDataKey) -> bytes:
    fields = (edk.provider_id.encode(), edk.provider_info, edk.ciphertext)
    return b"".join(len(f).to_bytes(2, "big") + f for f in fields)


@attrs.frozen(kw_only=True)
class CachedKey:
    """A usable copy of a cached data key (never the cache's own buffer)."""

    material: bytearray = attrs.field(repr=False)
    encrypted: tuple[EncryptedDataKey, ...]
    signing_key: Any = attrs.field(default=None, repr=False)


class DataKeyCache:
    """The caching layer between a stack and its cache backend."""

    def __init__(
        self,
        backend: CacheBackend,
        policy: CachePolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.policy = policy or CachePolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

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

    def take(self, key: bytes, *, plaintext_bytes: int) -> CachedKey | None:
        """Use the entry under ``key`` for one more message of ``plaintext_bytes``.

        Returns a copy of the key, or ``None`` (a miss) when there is no entry
        or using it would pass a limit — in which case the entry is evicted.
        """
        with self._lock:
            entry = self.backend.get(key)
            if entry is None:
                self.misses += 1
                return None
            policy = self.policy
            if (
                self._clock() - entry.created_at >= policy.max_age
                or entry.messages + 1 > policy.max_messages
                or entry.bytes + plaintext_bytes > policy.max_bytes
            ):
                self.backend.evict(key)
                self.misses += 1
                return None
            entry.messages += 1
            entry.bytes += plaintext_bytes
            self.hits += 1
            return CachedKey(
                material=bytearray(entry.material),
                encrypted=entry.encrypted,
                signing_key=entry.signing_key,
            )

    def store(
        self,
        key: bytes,
        material: bytes | bytearray,
        *,
        encrypted: tuple[EncryptedDataKey, ...] = (),
        signing_key: Any = None,
        plaintext_bytes: int = 0,
        counts_as_use: bool = True,
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
            created_at=self._clock(),
            messages=messages,
            bytes=used_bytes,
            signing_key=signing_key,
        )
        with self._lock:
            self.backend.put(key, entry)

    def clear(self) -> None:
        """Drop (and wipe) every entry."""
        with self._lock:
            self.backend.clear()

    def __repr__(self) -> str:
        return (
            f"<DataKeyCache {type(self.backend).__name__} entries={len(self.backend)} "
            f"hits={self.hits} misses={self.misses}>"
        )
