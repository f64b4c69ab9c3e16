"""A small time-to-live cache for values fetched from a provider (public keys, versions)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TtlCache(Generic[T]):
    """Values by name, each kept for ``ttl`` seconds of ``clock``; thread-safe."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> T | None:
        """The value under ``name`` if it is younger than the TTL."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is None:
                return None
            if self._clock() - entry[0] >= self._ttl:
                del self._entries[name]
                return None
            return entry[1]

    def put(self, name: str, value: T) -> None:
        """Remember ``value`` under ``name`` from now (nothing with a TTL of 0)."""
        if self._ttl <= 0:
            return
        with self._lock:
            self._entries[name] = (self._clock(), value)

    def forget(self, resource: str) -> None:
        """Drop the entry of ``resource`` and of every resource below it (``resource/…``)."""
        with self._lock:
            for name in [n for n in self._entries if n == resource or n.startswith(resource + "/")]:
                del self._entries[name]

    def discard(self, predicate: Callable[[str, T], bool]) -> None:
        """Drop every entry whose name and value satisfy ``predicate``."""
        with self._lock:
            for name in [n for n, (_, v) in self._entries.items() if predicate(n, v)]:
                del self._entries[name]

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()


__all__ = ["TtlCache"]
