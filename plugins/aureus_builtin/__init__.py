"""Aureus's first-party in-process plugins: caches, audit sinks, credential sources.

Registered by :mod:`aureus_builtin.plugin` under the ``aureus`` entry point
``builtin``: cache backends ``memory`` and ``null``, audit sinks ``memory``,
``logging`` and ``jsonl``, credential sources ``env`` and ``static``.
The ``otel`` audit sink is a plugin of its own (entry point ``otel``), so a
missing OpenTelemetry SDK only makes it unavailable.

The classes are imported on first access, so loading the plugin (which every
``aureus`` command does) costs no more than its registrations.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .audit_sinks import LoggingAuditSink, MemoryAuditSink
    from .credential_sources import EnvCredentialSource, StaticCredentialSource
    from .jsonl_sink import JsonlAuditSink
    from .memory_cache import MemoryCache
    from .null_cache import NullCache

_MODULES = {
    "EnvCredentialSource": "credential_sources",
    "JsonlAuditSink": "jsonl_sink",
    "LoggingAuditSink": "audit_sinks",
    "MemoryAuditSink": "audit_sinks",
    "MemoryCache": "memory_cache",
    "NullCache": "null_cache",
    "StaticCredentialSource": "credential_sources",
}

__all__ = [
    "EnvCredentialSource",
    "JsonlAuditSink",
    "LoggingAuditSink",
    "MemoryAuditSink",
    "MemoryCache",
    "NullCache",
    "StaticCredentialSource",
]


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
