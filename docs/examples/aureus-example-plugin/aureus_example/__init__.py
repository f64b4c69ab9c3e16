"""Example Aureus plugin: an in-memory key provider under the scheme ``example``."""

from .provider import MemoryKeyProvider

__all__ = ["MemoryKeyProvider"]
