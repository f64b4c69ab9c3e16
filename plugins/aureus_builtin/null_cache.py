"""The ``null`` cache backend: stores nothing, so every data key is fresh."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aureus_core.interfaces import CacheEntry
from aureus_core.options import Options


class NullCache:
    """A cache that never holds an entry: ``get`` is always ``None``.

    ``put`` leaves the caller's entry alone: the caller still owns it and
    may be about to use its material.
    """

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> NullCache:
        """Build from ``[cache]`` options (it takes none)."""
        Options("the null cache backend", options, ())
        return cls()

    def get(self, key: bytes) -> CacheEntry | None:
        """Always ``None``."""
        return None

    def put(self, key: bytes, entry: CacheEntry) -> None:
        """Store nothing."""

    def evict(self, key: bytes) -> None:
        """Nothing to evict."""

    def clear(self) -> None:
        """Nothing to clear."""

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "NullCache()"
