"""A key provider proxy that traces and times every call (see :mod:`aureus_core.telemetry`).

:meth:`KeyStack.provider <aureus_core.stack.KeyStack.provider>` hands out
providers wrapped in :class:`InstrumentedProvider` when OpenTelemetry is
installed.  Each call runs in a child span ``aureus.provider.<method>`` and
its duration goes to the ``aureus.provider.duration`` histogram.  ``scheme``,
``capabilities`` and ``key_types`` read through to the wrapped provider, so
capability checks see what it declares; other attributes are forwarded too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .context import EncryptionContext
from .datakey import EncryptedDataKey, WrappedKey
from .interfaces import Capability, KeyMaterial, KeyProvider
from .keyref import KeyRef
from .keys import KeyMetadata, KeySpec, KeyState, KeyType
from .signature import Signature

if TYPE_CHECKING:
    from .telemetry import Telemetry


class InstrumentedProvider:
    """``provider`` with each call in an ``aureus.provider.<method>`` span of ``telemetry``.

    Arguments and results pass through untouched and are never recorded:
    spans get the provider's scheme, the method, the outcome and the key URI.
    """

    __slots__ = ("_provider", "_telemetry")

    def __init__(self, provider: KeyProvider, telemetry: Telemetry) -> None:
        self._provider = provider
        self._telemetry = telemetry

    @property
    def wrapped(self) -> KeyProvider:
        """The provider behind the proxy."""
        return self._provider

    @property
    def telemetry(self) -> Telemetry:
        """Where the spans and measurements go."""
        return self._telemetry

    @property
    def scheme(self) -> str:
        """The wrapped provider's scheme."""
        return self._provider.scheme

    @scheme.setter
    def scheme(self, value: str) -> None:
        self._provider.scheme = value

    @property
    def capabilities(self) -> frozenset[Capability]:
        """The wrapped provider's capabilities."""
        return self._provider.capabilities

    @capabilities.setter
    def capabilities(self, value: frozenset[Capability]) -> None:
        self._provider.capabilities = value

    @property
    def key_types(self) -> frozenset[KeyType]:
        """The key types the wrapped provider creates."""
        return self._provider.key_types

    @key_types.setter
    def key_types(self, value: frozenset[KeyType]) -> None:
        self._provider.key_types = value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in InstrumentedProvider.__slots__:
            raise AttributeError(name)
        return getattr(self._provider, name)

    def __repr__(self) -> str:
        return f"InstrumentedProvider({self._provider!r})"

    # -- the KeyProvider protocol ----------------------------------------------

    def create_key(self, name: str, spec: KeySpec) -> KeyMetadata:
        """Traced :meth:`KeyProvider.create_key`."""
        p = self._provider
        return self._telemetry.provider_call(p.scheme, "create_key", None, p.create_key, name, spec)

    def describe_key(self, key: KeyRef) -> KeyMetadata:
        """Traced :meth:`KeyProvider.describe_key`."""
        p = self._provider
        return self._telemetry.provider_call(p.scheme, "describe_key", key, p.describe_key, key)

    def list_keys(self) -> Sequence[KeyMetadata]:
        """Traced :meth:`KeyProvider.list_keys`."""
        p = self._provider
        return self._telemetry.provider_call(p.scheme, "list_keys", None, p.list_keys)

    def rotate_key(self, key: KeyRef) -> KeyMetadata:
        """Traced :meth:`KeyProvider.rotate_key`."""
        p = self._provider
        return self._telemetry.provider_call(p.scheme, "rotate_key", key, p.rotate_key, key)

    def import_key(
        self, name: str, spec: KeySpec, material: KeyMaterial, *, new_version: bool = False
    ) -> KeyMetadata:
        """Traced :meth:`KeyProvider.import_key`."""
        p = self._provider
        return self._telemetry.provider_call(
            p.scheme,
            "import_key",
            None,
            p.import_key,
            name,
            spec,
            material,
            new_version=new_version,
        )

    def public_key(self, key: KeyRef) -> bytes:
        """Traced :meth:`KeyProvider.public_key`."""
        p = self._provider
        return self._telemetry.provider_call(p.scheme, "public_key", key, p.public_key, key)

    def sign(self, key: KeyRef, message: bytes) -> Signature:
        """Traced :meth:`KeyProvider.sign`."""
        p = self._provider
        return self._telemetry.provider_call(p.scheme, "sign", key, p.sign, key, message)

    def verify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """Traced :meth:`KeyProvider.verify`."""
        p = self._provider
        return self._telemetry.provider_call(
            p.scheme, "verify", key, p.verify, key, message, signature
        )

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """Traced :meth:`KeyProvider.wrap`."""
        p = self._provider
        return self._telemetry.provider_call(p.scheme, "wrap", key, p.wrap, key, data_key, context)

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """Traced :meth:`KeyProvider.unwrap`."""
        p = self._provider
        return self._telemetry.provider_call(
            p.scheme, "unwrap", key, p.unwrap, key, encrypted, context
        )

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        """Traced :meth:`KeyProvider.owner_of`."""
        p = self._provider
        return self._telemetry.provider_call(p.scheme, "owner_of", None, p.owner_of, encrypted)

    def set_version_state(self, key: KeyRef, state: KeyState) -> KeyMetadata:
        """Traced :meth:`KeyProvider.set_version_state`."""
        p = self._provider
        return self._telemetry.provider_call(
            p.scheme, "set_version_state", key, p.set_version_state, key, state
        )

    def set_min_decryption_version(self, key: KeyRef, version: str) -> KeyMetadata:
        """Traced :meth:`KeyProvider.set_min_decryption_version`."""
        p = self._provider
        return self._telemetry.provider_call(
            p.scheme, "set_min_decryption_version", key, p.set_min_decryption_version, key, version
        )

    def destroy_version(self, key: KeyRef, *, confirm: bool = False) -> KeyMetadata:
        """Traced :meth:`KeyProvider.destroy_version`."""
        p = self._provider
        return self._telemetry.provider_call(
            p.scheme, "destroy_version", key, p.destroy_version, key, confirm=confirm
        )

    def mac(self, key: KeyRef, message: bytes) -> bytes:
        """Traced :meth:`KeyProvider.mac`."""
        p = self._provider
        return self._telemetry.provider_call(p.scheme, "mac", key, p.mac, key, message)

    def close(self) -> None:
        """Close the wrapped provider (not traced)."""
        self._provider.close()


__all__ = ["InstrumentedProvider"]
