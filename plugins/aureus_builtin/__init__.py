"""Aureus's first-party in-process plugins: caches, audit sinks, credential sources.

Registered by :mod:`aureus_builtin.plugin` under the ``aureus`` entry point
``builtin``: cache backends ``memory`` and ``null``, audit sinks ``memory``
and ``logging``, credential sources ``env`` and ``static``.
"""

from .audit_sinks import LoggingAuditSink, MemoryAuditSink
from .credential_sources import EnvCredentialSource, StaticCredentialSource
from .memory_cache import MemoryCache
from .null_cache import NullCache

__all__ = [
    "EnvCredentialSource",
    "LoggingAuditSink",
    "MemoryAuditSink",
    "MemoryCache",
    "NullCache",
    "StaticCredentialSource",
]
