"""Aureus: pluggable key management and envelope encryption.

The public API: :class:`KeyStack` and the value types, errors and plugin
interfaces.  Plugins import :data:`hookimpl` from here.  :class:`AsyncKeyStack`
is imported on first access: it brings in ``asyncio``, which a program (or a
command-line start) that never uses it should not pay for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .audit import AuditEvent
from .context import EncryptionContext
from .datakey import DataKey, EncryptedDataKey, WrappedKey
from .errors import (
    AccessDenied,
    AuditFailure,
    AuditSinkError,
    AureusError,
    ConfigError,
    CredentialError,
    DecryptionError,
    DuplicateRegistration,
    ImportRefused,
    KeyDisabled,
    KeyExists,
    KeyNotFound,
    KeystoreCorrupted,
    NotAMessage,
    PluginError,
    ProviderError,
    ProviderUnavailable,
    SignatureError,
    Throttled,
    UnsupportedOperation,
)
from .hookspecs import hookimpl, hookspec
from .interfaces import (
    AuditSink,
    CacheBackend,
    CacheEntry,
    Capability,
    Credentials,
    CredentialSource,
    ImportsWrappedKeys,
    KeyMaterial,
    KeyProvider,
    KeyProviderBase,
    ProviderSettings,
)
from .keyref import KeyRef
from .keys import KeyMetadata, KeyPurpose, KeySpec, KeyState, KeyType, KeyVersion
from .registry import (
    AuditSinkRegistry,
    CacheBackendRegistry,
    CredentialSourceRegistry,
    KeyProviderRegistry,
)
from .sensitive import Secret
from .signature import Signature
from .stack import KeyStack
from .wrapped_import import ImportParameters, wrap_for_import

if TYPE_CHECKING:
    from .aio import AsyncKeyStack

__all__ = [
    "AccessDenied",
    "AsyncKeyStack",
    "AuditEvent",
    "AuditFailure",
    "AuditSink",
    "AuditSinkError",
    "AuditSinkRegistry",
    "AureusError",
    "CacheBackend",
    "CacheBackendRegistry",
    "CacheEntry",
    "Capability",
    "ConfigError",
    "CredentialError",
    "CredentialSource",
    "CredentialSourceRegistry",
    "Credentials",
    "DataKey",
    "DecryptionError",
    "DuplicateRegistration",
    "EncryptedDataKey",
    "EncryptionContext",
    "ImportParameters",
    "ImportRefused",
    "ImportsWrappedKeys",
    "KeyDisabled",
    "KeyExists",
    "KeyMaterial",
    "KeyMetadata",
    "KeyNotFound",
    "KeyProvider",
    "KeyProviderBase",
    "KeyProviderRegistry",
    "KeyPurpose",
    "KeyRef",
    "KeySpec",
    "KeyStack",
    "KeyState",
    "KeyType",
    "KeyVersion",
    "KeystoreCorrupted",
    "NotAMessage",
    "PluginError",
    "ProviderError",
    "ProviderSettings",
    "ProviderUnavailable",
    "Secret",
    "Signature",
    "SignatureError",
    "Throttled",
    "UnsupportedOperation",
    "WrappedKey",
    "hookimpl",
    "hookspec",
    "wrap_for_import",
]


def __getattr__(name: str) -> Any:
    if name == "AsyncKeyStack":
        from .aio import AsyncKeyStack

        globals()["AsyncKeyStack"] = AsyncKeyStack
        return AsyncKeyStack
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
