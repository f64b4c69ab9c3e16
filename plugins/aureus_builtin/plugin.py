"""The ``builtin`` plugin: in-process caches, audit sinks and credential sources.

Loaded through the entry point ``builtin = "aureus_builtin.plugin"`` in the
``aureus`` group, like any third-party plugin.
"""

from __future__ import annotations

from aureus_core.hookspecs import hookimpl
from aureus_core.registry import (
    AuditSinkRegistry,
    CacheBackendRegistry,
    CredentialSourceRegistry,
)

from .audit_sinks import LoggingAuditSink, MemoryAuditSink
from .credential_sources import EnvCredentialSource, StaticCredentialSource
from .jsonl_sink import JsonlAuditSink
from .memory_cache import MemoryCache
from .null_cache import NullCache


@hookimpl
def aureus_register_cache_backends(registry: CacheBackendRegistry) -> None:
    """Register the ``memory`` and ``null`` cache backends."""
    registry.register(
        "memory",
        MemoryCache.from_options,
        description="in-process LRU of data keys (option: capacity, default 1000)",
    )
    registry.register("null", NullCache.from_options, description="caches nothing")


@hookimpl
def aureus_register_audit_sinks(registry: AuditSinkRegistry) -> None:
    """Register the ``memory``, ``logging`` and ``jsonl`` audit sinks."""
    registry.register(
        "memory", MemoryAuditSink.from_options, description="keeps events in a list (tests)"
    )
    registry.register(
        "logging",
        LoggingAuditSink.from_options,
        description="one JSON log record per event (options: logger, level)",
    )
    registry.register(
        "jsonl",
        JsonlAuditSink.from_options,
        description=(
            "hash-chained JSON-lines log, checked by `aureus audit verify` (options: path, "
            "hmac_key, checkpoint_key, checkpoint_every, max_bytes, sync, sync_every)"
        ),
    )


@hookimpl
def aureus_register_credential_sources(registry: CredentialSourceRegistry) -> None:
    """Register the ``env`` and ``static`` credential sources."""
    registry.register(
        "env",
        EnvCredentialSource.from_options,
        description="values from environment variables (option: variables)",
    )
    registry.register(
        "static",
        StaticCredentialSource.from_options,
        description="fixed values from the configuration (option: values)",
    )
