"""The ``builtin`` plugin: in-process caches, audit sinks and credential sources.

Loaded through the entry point ``builtin = "aureus_builtin.plugin"`` in the
``aureus`` group, like any third-party plugin.  Each factory imports its
class when called: every command loads this plugin, few use a cache or a sink.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aureus_core.hookspecs import hookimpl
from aureus_core.registry import (
    AuditSinkRegistry,
    CacheBackendRegistry,
    CredentialSourceRegistry,
)

if TYPE_CHECKING:
    from .audit_sinks import LoggingAuditSink, MemoryAuditSink
    from .credential_sources import EnvCredentialSource, StaticCredentialSource
    from .jsonl_sink import JsonlAuditSink
    from .memory_cache import MemoryCache
    from .null_cache import NullCache


def _memory_cache(options: Mapping[str, Any]) -> MemoryCache:
    from .memory_cache import MemoryCache

    return MemoryCache.from_options(options)


def _null_cache(options: Mapping[str, Any]) -> NullCache:
    from .null_cache import NullCache

    return NullCache.from_options(options)


def _memory_sink(options: Mapping[str, Any]) -> MemoryAuditSink:
    from .audit_sinks import MemoryAuditSink

    return MemoryAuditSink.from_options(options)


def _logging_sink(options: Mapping[str, Any]) -> LoggingAuditSink:
    from .audit_sinks import LoggingAuditSink

    return LoggingAuditSink.from_options(options)


def _jsonl_sink(options: Mapping[str, Any]) -> JsonlAuditSink:
    from .jsonl_sink import JsonlAuditSink

    return JsonlAuditSink.from_options(options)


def _env_source(options: Mapping[str, Any]) -> EnvCredentialSource:
    from .credential_sources import EnvCredentialSource

    return EnvCredentialSource.from_options(options)


def _static_source(options: Mapping[str, Any]) -> StaticCredentialSource:
    from .credential_sources import StaticCredentialSource

    return StaticCredentialSource.from_options(options)


@hookimpl
def aureus_register_cache_backends(registry: CacheBackendRegistry) -> None:
    """Register the ``memory`` and ``null`` cache backends."""
    registry.register(
        "memory",
        _memory_cache,
        description="in-process LRU of data keys (option: capacity, default 1000)",
    )
    registry.register("null", _null_cache, description="caches nothing")


@hookimpl
def aureus_register_audit_sinks(registry: AuditSinkRegistry) -> None:
    """Register the ``memory``, ``logging`` and ``jsonl`` audit sinks."""
    registry.register("memory", _memory_sink, description="keeps events in a list (tests)")
    registry.register(
        "logging",
        _logging_sink,
        description="one JSON log record per event (options: logger, level)",
    )
    registry.register(
        "jsonl",
        _jsonl_sink,
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
        _env_source,
        description="values from environment variables (option: variables)",
    )
    registry.register(
        "static",
        _static_source,
        description="fixed values from the configuration (option: values)",
    )
