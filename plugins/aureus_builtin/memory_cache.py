"""The ``memory`` cache backend: a thread-safe LRU of data-key entries in process memory."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from aureus_core.interfaces import CacheEntry
from aureus_core.options import Options, positive_int

DEFAULT_CAPACITY = 1000
_WHAT = "the memory cache backend"


class MemoryCache:
    """Holds up to ``capacity`` entries; the least recently used one is evicted first.

    Every entry that leaves the cache (evicted, replaced, cleared) has its
    material wiped.  A ``get`` counts as a use.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = positive_int(_WHAT, "capacity", capacity)
        self._entries: OrderedDict[bytes, CacheEntry] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> MemoryCache:
        """Build from ``[cache]`` options: ``capacity`` (default 1000)."""
        reader = Options(_WHAT, options, ("capacity",))
        return cls(capacity=reader.positive_int("capacity", DEFAULT_CAPACITY))

    @property
    def capacity(self) -> int:
        """The most entries held at once."""
        return self._capacity

    def get(self, key: bytes) -> CacheEntry | None:
        """The entry under ``key`` (now the most recently used), or ``None``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: bytes, entry: CacheEntry) -> None:
        """Store ``entry``; wipe the entry it replaces and any evicted for room."""
        with self._lock:
            old = self._entries.pop(key, None)
            self._entries[key] = entry
            evicted = []
            while len(self._entries) > self._capacity:
                evicted.append(self._entries.popitem(last=False)[1])
        if old is not None and old is not entry:
            old.wipe()
        for gone in evicted:
            gone.wipe()

    def evict(self, key: bytes) -> None:
        """Remove and wipe the entry under ``key``, if any."""
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is not None:
            entry.wipe()

    def clear(self) -> None:
        """Remove and wipe every entry."""
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            entry.wipe()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"MemoryCache(entries={len(self)}, capacity={self._capacity})"
