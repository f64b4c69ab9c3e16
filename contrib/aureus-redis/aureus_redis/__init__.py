"""A data-key cache backend on Redis, shared by every process that uses it."""

from .backend import RedisCache
from .seal import Sealer

__all__ = ["RedisCache", "Sealer"]
