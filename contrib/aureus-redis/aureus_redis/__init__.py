"""A data-key cache backend on Redis, shared by every process that uses it."""

from typing import TYPE_CHECKING, Any

from .seal import Sealer

if TYPE_CHECKING:
    from .backend import RedisCache

__all__ = ["RedisCache", "Sealer"]


def __getattr__(name: str) -> Any:
    # The redis client library is imported on first use, not when the plugin loads.
    if name == "RedisCache":
        from .backend import RedisCache

        return RedisCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
