"""Aureus's first-party in-process plugins: caches, audit sinks, credential sources.

Registered by :mod:`aureus_builtin.plugin` under the ``aureus`` entry point
``builtin``: cache backends ``memory`` and ``null``, audit sinks ``memory``,
``logging`` and ``jsonl``, credential sources ``env`` and ``static``.
The ``otel`` audit sink is a plugin of its own (entry point ``otel``), so a
missing OpenTelemetry SDK only makes it unavailable.
"""

from .audit_sinks import LoggingAuditSink, MemoryAuditSink
from .credential_sources import EnvCredentialSource, StaticCredentialSource
from .jsonl_sink import JsonlAuditSink
from .memory_cache import MemoryCache
from .null_cache import NullCache

__all__ = [
    "EnvCredentialSource",
    "JsonlAuditSink",
    "LoggingAuditSink",
    "MemoryAuditSink",
    "MemoryCache",
    "NullCache",
    "StaticCredentialSource",
]
