"""A base for key-provider proxies: every provider call goes through one method.

:class:`ProviderProxy` implements the whole :class:`~aureus_core.interfaces.KeyProvider`
protocol (and the optional ``generate_data_key`` / ``replicate_key``) by
handing each call to :meth:`ProviderProxy._call`.  The telemetry proxy and the
circuit breaker subclass it and override only that method.  ``scheme``,
``capabilities`` and ``key_types`` read through to the wrapped provider, and
any other attribute is forwarded, so capability checks and provider-specific
helpers still work through a proxy.

The native coroutines of an :class:`~aureus_core.interfaces.AsyncKeyProvider`
(``awrap``, ``aunwrap`` ...) go through :meth:`ProviderProxy._acall` the same
way; :func:`native_async` says whether a provider, through any proxies, has them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from .context import EncryptionContext
from .datakey import EncryptedDataKey, WrappedKey
from .errors import UnsupportedOperation
from .interfaces import AsyncKeyProvider, Capability, KeyMaterial, KeyProvider
from .keyref import KeyRef
from .keys import KeyMetadata, KeySpec, KeyState, KeyType
from .signature import Signature
from .wrapped_import import ImportParameters

T = TypeVar("T")


_NATIVE_BY_TYPE: dict[type, bool] = {}


def native_async(provider: object) -> bool:
    """Whether ``provider`` (through any proxies) offers native coroutines."""
    if isinstance(provider, ProviderProxy):
        return provider.native_async
    kind = type(provider)
    known = _NATIVE_BY_TYPE.get(kind)
    if known is None:
        known = isinstance(provider, AsyncKeyProvider)
        if not hasattr(kind, "__getattr__"):  # a forwarding wrapper answers per instance
            _NATIVE_BY_TYPE[kind] = known
    return known


class ProviderProxy:
    """Forwards every provider call through :meth:`_call`; subclasses add behaviour there."""

    __slots__ = ("_provider",)

    def __init__(self, provider: KeyProvider) -> None:
        self._provider = provider

    @property
    def wrapped(self) -> KeyProvider:
        """The provider behind the proxy."""
        return self._provider

    def _call(
        self, method: str, key: KeyRef | None, function: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        """Run one provider call; the base class just calls it."""
        return function(*args, **kwargs)

    async def _acall(
        self,
        method: str,
        key: KeyRef | None,
        function: Callable[..., Awaitable[T]],
        *args: Any,
        **kwargs: Any,
    ) -> T:
        """Await one native provider call; the base class just awaits it."""
        return await function(*args, **kwargs)

    @property
    def native_async(self) -> bool:
        """Whether the provider behind the proxy offers native coroutines."""
        return native_async(self._provider)

    async def _aforward(self, method: str, key: KeyRef | None, *args: Any, **kwargs: Any) -> Any:
        function = getattr(self._provider, f"a{method}", None) if self.native_async else None
        if function is None:
            raise UnsupportedOperation(self._provider.scheme, f"a{method} (native async)")
        return await self._acall(method, key, function, *args, **kwargs)

    def _forward(self, method: str, key: KeyRef | None, *args: Any, **kwargs: Any) -> Any:
        function = getattr(self._provider, method, None)
        if function is None:
            raise UnsupportedOperation(self._provider.scheme, method)
        return self._call(method, key, function, *args, **kwargs)

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
        if name.startswith("__") or name == "_provider":
            raise AttributeError(name)
        return getattr(self._provider, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._provider!r})"

    # -- the KeyProvider protocol ----------------------------------------------

    def create_key(self, name: str, spec: KeySpec) -> KeyMetadata:
        """Proxied :meth:`KeyProvider.create_key`."""
        return self._forward("create_key", None, name, spec)  # type: ignore[no-any-return]

    def describe_key(self, key: KeyRef) -> KeyMetadata:
        """Proxied :meth:`KeyProvider.describe_key`."""
        return self._forward("describe_key", key, key)  # type: ignore[no-any-return]

    def list_keys(self) -> Sequence[KeyMetadata]:
        """Proxied :meth:`KeyProvider.list_keys`."""
        return self._forward("list_keys", None)  # type: ignore[no-any-return]

    def rotate_key(self, key: KeyRef) -> KeyMetadata:
        """Proxied :meth:`KeyProvider.rotate_key`."""
        return self._forward("rotate_key", key, key)  # type: ignore[no-any-return]

    def import_key(
        self, name: str, spec: KeySpec, material: KeyMaterial, *, new_version: bool = False
    ) -> KeyMetadata:
        """Proxied :meth:`KeyProvider.import_key`."""
        return self._forward(  # type: ignore[no-any-return]
            "import_key", None, name, spec, material, new_version=new_version
        )

    def import_parameters(
        self, name: str, spec: KeySpec, *, new_version: bool = False
    ) -> ImportParameters:
        """Proxied :meth:`ImportsWrappedKeys.import_parameters`."""
        return self._forward(  # type: ignore[no-any-return]
            "import_parameters", None, name, spec, new_version=new_version
        )

    def public_key(self, key: KeyRef) -> bytes:
        """Proxied :meth:`KeyProvider.public_key`."""
        return self._forward("public_key", key, key)  # type: ignore[no-any-return]

    def sign(self, key: KeyRef, message: bytes) -> Signature:
        """Proxied :meth:`KeyProvider.sign`."""
        return self._forward("sign", key, key, message)  # type: ignore[no-any-return]

    def verify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """Proxied :meth:`KeyProvider.verify`."""
        return self._forward("verify", key, key, message, signature)  # type: ignore[no-any-return]

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """Proxied :meth:`KeyProvider.wrap`."""
        return self._forward("wrap", key, key, data_key, context)  # type: ignore[no-any-return]

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """Proxied :meth:`KeyProvider.unwrap`."""
        return self._forward("unwrap", key, key, encrypted, context)  # type: ignore[no-any-return]

    def generate_data_key(
        self, key: KeyRef, length: int, context: EncryptionContext
    ) -> tuple[bytearray, WrappedKey]:
        """Proxied :meth:`GeneratesDataKeys.generate_data_key`."""
        return self._forward(  # type: ignore[no-any-return]
            "generate_data_key", key, key, length, context
        )

    def replicate_key(self, key: KeyRef, region: str) -> KeyMetadata:
        """Proxied :meth:`ReplicatesKeys.replicate_key`."""
        return self._forward("replicate_key", key, key, region)  # type: ignore[no-any-return]

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        """Proxied :meth:`KeyProvider.owner_of`."""
        return self._forward("owner_of", None, encrypted)  # type: ignore[no-any-return]

    def set_version_state(self, key: KeyRef, state: KeyState) -> KeyMetadata:
        """Proxied :meth:`KeyProvider.set_version_state`."""
        return self._forward("set_version_state", key, key, state)  # type: ignore[no-any-return]

    def set_min_decryption_version(self, key: KeyRef, version: str) -> KeyMetadata:
        """Proxied :meth:`KeyProvider.set_min_decryption_version`."""
        return self._forward(  # type: ignore[no-any-return]
            "set_min_decryption_version", key, key, version
        )

    def destroy_version(self, key: KeyRef, *, confirm: bool = False) -> KeyMetadata:
        """Proxied :meth:`KeyProvider.destroy_version`."""
        return self._forward(  # type: ignore[no-any-return]
            "destroy_version", key, key, confirm=confirm
        )

    def mac(self, key: KeyRef, message: bytes) -> bytes:
        """Proxied :meth:`KeyProvider.mac`."""
        return self._forward("mac", key, key, message)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the wrapped provider (not proxied through :meth:`_call`)."""
        self._provider.close()

    # -- the AsyncKeyProvider protocol (only usable when ``native_async``) -------------

    async def awrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """Proxied :meth:`AsyncKeyProvider.awrap`."""
        return await self._aforward("wrap", key, key, data_key, context)  # type: ignore[no-any-return]

    async def aunwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """Proxied :meth:`AsyncKeyProvider.aunwrap`."""
        return await self._aforward("unwrap", key, key, encrypted, context)  # type: ignore[no-any-return]

    async def agenerate_data_key(
        self, key: KeyRef, length: int, context: EncryptionContext
    ) -> tuple[bytearray, WrappedKey]:
        """Proxied :meth:`AsyncKeyProvider.agenerate_data_key`."""
        return await self._aforward(  # type: ignore[no-any-return]
            "generate_data_key", key, key, length, context
        )

    async def asign(self, key: KeyRef, message: bytes) -> Signature:
        """Proxied :meth:`AsyncKeyProvider.asign`."""
        return await self._aforward("sign", key, key, message)  # type: ignore[no-any-return]

    async def averify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """Proxied :meth:`AsyncKeyProvider.averify`."""
        return await self._aforward("verify", key, key, message, signature)  # type: ignore[no-any-return]

    async def apublic_key(self, key: KeyRef) -> bytes:
        """Proxied :meth:`AsyncKeyProvider.apublic_key`."""
        return await self._aforward("public_key", key, key)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Close what the wrapped provider's coroutines opened, if it has any."""
        if native_async(self._provider):
            await self._provider.aclose()  # type: ignore[attr-defined]


__all__ = ["ProviderProxy", "native_async"]
