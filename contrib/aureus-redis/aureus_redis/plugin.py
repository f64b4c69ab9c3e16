"""The ``redis`` plugin: registers the ``redis`` data-key cache backend."""

from __future__ import annotations

from aureus_core.hookspecs import hookimpl
from aureus_core.registry import CacheBackendRegistry

from .backend import RedisCache


@hookimpl
def aureus_register_cache_backends(registry: CacheBackendRegistry) -> None:
    """Register the ``redis`` cache backend."""
    registry.register(
        "redis",
        RedisCache.from_options,
        description="shared by every process on one Redis; entries sealed, limits on the server",
    )
