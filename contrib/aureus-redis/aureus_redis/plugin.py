"""The ``redis`` plugin: registers the ``redis`` data-key cache backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aureus_core.hookspecs import hookimpl
from aureus_core.registry import CacheBackendRegistry

if TYPE_CHECKING:
    from .backend import RedisCache


def create_cache(options: Mapping[str, Any]) -> RedisCache:
    """Build the backend; the redis client library is imported here, on first use only."""
    from .backend import RedisCache

    return RedisCache.from_options(options)


@hookimpl
def aureus_register_cache_backends(registry: CacheBackendRegistry) -> None:
    """Register the ``redis`` cache backend."""
    registry.register(
        "redis",
        create_cache,
        description="shared by every process on one Redis; entries sealed, limits on the server",
    )
