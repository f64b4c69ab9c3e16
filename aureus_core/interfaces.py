"""The extension-point interfaces: key providers, credential sources, caches, audit sinks.

Plugins implement these protocols (structurally; no base class is required)
and register factories for them through the hooks in :mod:`aureus_core.hookspecs`.
:class:`KeyProviderBase` is an optional base class whose every operation
raises :class:`UnsupportedOperation`, so a provider only writes what it offers.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from .context import EncryptionContext
from .datakey import EncryptedDataKey, WrappedKey
from .errors import UnsupportedOperation
from .keyref import KeyRef
from .keys import KeyMetadata, KeySpec, KeyState, KeyType
from .sensitive import Secret
from .signature import Signature

if TYPE_CHECKING:
    from .audit import AuditEvent
    from .wrapped_import import ImportParameters


class Capability(str, enum.Enum):
    """Operations a key provider may offer."""

    WRAP = "wrap"
    """Wrap and unwrap data keys."""
    GENERATE_DATA_KEY = "generate-data-key"
    """Generate a data key inside the provider and return it with its wrapped form."""
    SIGN = "sign"
    """Sign and verify."""
    PUBLIC_KEY = "public-key"
    """Export the public half of a signing key."""
    CREATE = "create"
    DESCRIBE = "describe"
    LIST = "list"
    ROTATE = "rotate"
    VERSIONS = "versions"
    """Old versions stay usable for unwrap and verify after a rotation."""
    IMPORT = "import"
    REPLICATE = "replicate"
    LIFECYCLE = "lifecycle"
    """Enable and disable versions, set a minimum decryption version, destroy old versions."""
    MAC = "mac"
    """Compute a deterministic MAC (HMAC-SHA-256 or the backend's equivalent) under a key."""
    WRAPPED_IMPORT = "wrapped-import"
    """Hand out import parameters and import key material wrapped for them."""


def _check_import_token(material: KeyMaterial, _: object, token: str | None) -> None:
    if (material.format == "wrapped") != (token is not None):
        raise ValueError("wrapped key material comes with its import token, and only it does")


@attrs.frozen(kw_only=True)
class KeyMaterial:
    """Key material to import: raw symmetric bytes, a PEM private key, or wrapped material.

    ``wrapped`` material is what :func:`aureus_core.wrapped_import.wrap_for_import`
    (or any RSA-OAEP + AES-KWP implementation) made for the import parameters
    named by ``import_token``.
    """

    format: str = attrs.field(validator=attrs.validators.in_(("raw", "pem", "wrapped")))
    data: Secret[bytes]
    import_token: str | None = attrs.field(default=None, validator=_check_import_token)


@attrs.frozen(kw_only=True)
class Credentials:
    """What a credential source hands to a provider; secret values never show in a repr."""

    kind: str
    values: Mapping[str, Secret[str]] = attrs.field(factory=dict)
    expires_at: datetime | None = None
    principal: str | None = None
    """Who these credentials act as, where known (for audit events)."""


@runtime_checkable
class KeyProvider(Protocol):
    """A backend that holds keys: wraps data keys, signs, manages key versions."""

    scheme: str
    """The URI scheme this provider serves (``local``, ``aws-kms`` ...)."""
    capabilities: frozenset[Capability]
    key_types: frozenset[KeyType]
    """Key types :meth:`create_key` accepts."""

    def create_key(self, name: str, spec: KeySpec) -> KeyMetadata:
        """Create a key; raise :class:`~aureus_core.errors.KeyExists` if the name is taken."""
        ...

    def describe_key(self, key: KeyRef) -> KeyMetadata:
        """Return the key's metadata."""
        ...

    def list_keys(self) -> Sequence[KeyMetadata]:
        """Return metadata for every key the provider can see."""
        ...

    def rotate_key(self, key: KeyRef) -> KeyMetadata:
        """Add a new current version; older versions keep unwrapping and verifying."""
        ...

    def import_key(
        self, name: str, spec: KeySpec, material: KeyMaterial, *, new_version: bool = False
    ) -> KeyMetadata:
        """Import key material as a new key, or as a new version of ``name``."""
        ...

    def public_key(self, key: KeyRef) -> bytes:
        """Return the PEM public key of a signing key (current version unless pinned)."""
        ...

    def sign(self, key: KeyRef, message: bytes) -> Signature:
        """Sign ``message`` with the current (or pinned) version."""
        ...

    def verify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """Check a raw signature against the version ``key`` pins.

        Return ``False`` for a well-formed signature that does not match; raise
        :class:`~aureus_core.errors.SignatureError` for a malformed one, and
        :class:`~aureus_core.errors.KeyDisabled` for a version that is disabled,
        destroyed or below the minimum decryption version (see docs/rotation.md).
        """
        ...

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """Encrypt a data key, binding ``context`` into the wrap."""
        ...

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """Decrypt a data key; any failure is a :class:`~aureus_core.errors.DecryptionError`.

        Except (see docs/rotation.md): a version that is disabled, destroyed or below
        the minimum decryption version raises :class:`~aureus_core.errors.KeyDisabled`
        naming the key, the version and the minimum.
        """
        ...

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        """Return the key (pinned to its version) that wrapped ``encrypted``, if it is ours."""
        ...

    def set_version_state(self, key: KeyRef, state: KeyState) -> KeyMetadata:
        """Enable or disable the version ``key`` pins."""
        ...

    def set_min_decryption_version(self, key: KeyRef, version: str) -> KeyMetadata:
        """Refuse unwrap and verify with versions below ``version``."""
        ...

    def destroy_version(self, key: KeyRef, *, confirm: bool = False) -> KeyMetadata:
        """Destroy the material of the version ``key`` pins; needs ``confirm=True``."""
        ...

    def mac(self, key: KeyRef, message: bytes) -> bytes:
        """A deterministic MAC of ``message`` under the current (or pinned) version.

        The same key version and message always give the same bytes; the key
        material never leaves the provider.  Audit chains use it to derive
        their keys.
        """
        ...

    def close(self) -> None:
        """Release connections and caches."""
        ...


class KeyProviderBase:
    """Convenience base: every operation raises :class:`UnsupportedOperation`.

    Subclasses set ``scheme``, ``capabilities`` and ``key_types`` and override
    what they offer.
    """

    scheme: str = "unnamed"
    capabilities: frozenset[Capability] = frozenset()
    key_types: frozenset[KeyType] = frozenset()

    def _unsupported(self, operation: str) -> UnsupportedOperation:
        return UnsupportedOperation(self.scheme, operation)

    def create_key(self, name: str, spec: KeySpec) -> KeyMetadata:
        """Not supported unless overridden."""
        raise self._unsupported("create_key")

    def describe_key(self, key: KeyRef) -> KeyMetadata:
        """Not supported unless overridden."""
        raise self._unsupported("describe_key")

    def list_keys(self) -> Sequence[KeyMetadata]:
        """Not supported unless overridden."""
        raise self._unsupported("list_keys")

    def rotate_key(self, key: KeyRef) -> KeyMetadata:
        """Not supported unless overridden."""
        raise self._unsupported("rotate_key")

    def import_key(
        self, name: str, spec: KeySpec, material: KeyMaterial, *, new_version: bool = False
    ) -> KeyMetadata:
        """Not supported unless overridden."""
        raise self._unsupported("import_key")

    def public_key(self, key: KeyRef) -> bytes:
        """Not supported unless overridden."""
        raise self._unsupported("public_key")

    def sign(self, key: KeyRef, message: bytes) -> Signature:
        """Not supported unless overridden."""
        raise self._unsupported("sign")

    def verify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """Not supported unless overridden."""
        raise self._unsupported("verify")

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """Not supported unless overridden."""
        raise self._unsupported("wrap")

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """Not supported unless overridden."""
        raise self._unsupported("unwrap")

    def generate_data_key(
        self, key: KeyRef, length: int, context: EncryptionContext
    ) -> tuple[bytearray, WrappedKey]:
        """Not supported unless overridden (see :class:`GeneratesDataKeys`)."""
        raise self._unsupported("generate_data_key")

    def replicate_key(self, key: KeyRef, region: str) -> KeyMetadata:
        """Not supported unless overridden (see :class:`ReplicatesKeys`)."""
        raise self._unsupported("replicate_key")

    def import_parameters(
        self, name: str, spec: KeySpec, *, new_version: bool = False
    ) -> ImportParameters:
        """Not supported unless overridden (see :class:`ImportsWrappedKeys`)."""
        raise self._unsupported("import_parameters")

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        """No encrypted data key is ours unless overridden."""
        return None

    def set_version_state(self, key: KeyRef, state: KeyState) -> KeyMetadata:
        """Not supported unless overridden."""
        raise self._unsupported("set_version_state")

    def set_min_decryption_version(self, key: KeyRef, version: str) -> KeyMetadata:
        """Not supported unless overridden."""
        raise self._unsupported("set_min_decryption_version")

    def destroy_version(self, key: KeyRef, *, confirm: bool = False) -> KeyMetadata:
        """Not supported unless overridden."""
        raise self._unsupported("destroy_version")

    def mac(self, key: KeyRef, message: bytes) -> bytes:
        """Not supported unless overridden."""
        raise self._unsupported("mac")

    def close(self) -> None:
        """Nothing to release unless overridden."""


@runtime_checkable
class GeneratesDataKeys(Protocol):
    """A provider that makes data keys itself (``Capability.GENERATE_DATA_KEY``).

    The envelope asks it for the data key of a message whose first wrapping
    key it holds (as the AWS Encryption SDK does with KMS ``GenerateDataKey``),
    then wraps that key for the other recipients.
    """

    def generate_data_key(
        self, key: KeyRef, length: int, context: EncryptionContext
    ) -> tuple[bytearray, WrappedKey]:
        """A fresh ``length``-byte data key and its form wrapped under ``key`` with ``context``."""
        ...


@runtime_checkable
class AsyncKeyProvider(Protocol):
    """A provider that also offers native coroutines for its round trips (optional).

    :class:`~aureus_core.aio.AsyncKeyStack` awaits these on its event loop
    (fan-out and the unwrap race included, with real cancellation) instead of
    running the blocking methods in threads.  Each coroutine means exactly
    what its blocking twin means (same arguments, results and errors); a
    cancelled one must leave nothing behind.  ``agenerate_data_key`` is only
    called when the provider declares ``Capability.GENERATE_DATA_KEY``.
    Providers without these methods keep working through the thread pool.
    """

    async def awrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """:meth:`KeyProvider.wrap`, natively."""
        ...

    async def aunwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """:meth:`KeyProvider.unwrap`, natively."""
        ...

    async def agenerate_data_key(
        self, key: KeyRef, length: int, context: EncryptionContext
    ) -> tuple[bytearray, WrappedKey]:
        """:meth:`GeneratesDataKeys.generate_data_key`, natively."""
        ...

    async def asign(self, key: KeyRef, message: bytes) -> Signature:
        """:meth:`KeyProvider.sign`, natively."""
        ...

    async def averify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """:meth:`KeyProvider.verify`, natively."""
        ...

    async def apublic_key(self, key: KeyRef) -> bytes:
        """:meth:`KeyProvider.public_key`, natively."""
        ...

    async def aclose(self) -> None:
        """Release what the coroutines opened on the running event loop."""
        ...


NATIVE_ASYNC_METHODS = frozenset(
    {"wrap", "unwrap", "generate_data_key", "sign", "verify", "public_key"}
)
"""The provider methods an :class:`AsyncKeyProvider` offers as ``a<name>`` coroutines."""


@runtime_checkable
class ReplicatesKeys(Protocol):
    """A provider that copies a key into another region (``Capability.REPLICATE``)."""

    def replicate_key(self, key: KeyRef, region: str) -> KeyMetadata:
        """Create a replica of ``key`` in ``region``; return the replica's metadata."""
        ...


@runtime_checkable
class ImportsWrappedKeys(Protocol):
    """A provider that imports key material wrapped for it (``Capability.WRAPPED_IMPORT``).

    :meth:`import_parameters` makes an import job inside the provider: an RSA
    key pair whose private half never leaves it, and a single-use token that
    expires.  :meth:`KeyProvider.import_key` then takes ``KeyMaterial(format=
    "wrapped", import_token=...)`` for the same name, key type and
    ``new_version``, unwraps inside the provider and consumes the token;
    anything else raises :class:`~aureus_core.errors.ImportRefused`.
    """

    def import_parameters(
        self, name: str, spec: KeySpec, *, new_version: bool = False
    ) -> ImportParameters:
        """A new import job for ``name`` (a new key, or a new version of it)."""
        ...


@runtime_checkable
class ScopesDiscovery(Protocol):
    """A provider whose keys a decrypt without ``keys=`` may use only within a configured scope.

    Without such a scope a message would choose which of the provider's keys
    (in any account, project or vault the credentials reach) the stack asks to
    unwrap.  The envelope asks :meth:`discovery_refusal` before any unwrap.
    """

    def discovery_refusal(self, key: KeyRef, named: Sequence[KeyRef]) -> str | None:
        """``None`` if a discovery-mode decrypt may ask the service to unwrap with ``key``.

        ``key`` is what :meth:`KeyProvider.owner_of` returned; ``named`` are the
        keys of this scheme the configuration names (wrapping and signing keys),
        which are always allowed.  Otherwise return why not and which option
        would allow it (key IDs, no secrets).  It may contact the service only
        about keys in ``named`` (to resolve an alias, say).
        """
        ...


@runtime_checkable
class CredentialSource(Protocol):
    """Obtains (and refreshes) credentials for a provider."""

    name: str

    def get_credentials(self) -> Credentials:
        """Return current credentials, refreshing them if they are about to expire."""
        ...


@attrs.define(kw_only=True, eq=False)
class CacheEntry:
    """A cached plaintext data key with its usage so far.

    ``material`` is a ``bytearray`` so a backend can wipe it on eviction.
    """

    material: bytearray = attrs.field(repr=False)
    encrypted: tuple[EncryptedDataKey, ...] = ()
    created_at: float
    """Seconds on the cache's clock when the entry was made."""
    messages: int = 0
    bytes: int = 0
    signing_key: Any = attrs.field(default=None, repr=False)
    """For the signed suite: the message signing key shared by the entry's messages."""
    key_versions: tuple[str, ...] = ()
    """URIs (with ``?version=``) of the wrapping-key versions that made the entry."""

    def wipe(self) -> None:
        """Overwrite the material in place."""
        for i in range(len(self.material)):
            self.material[i] = 0


@runtime_checkable
class CacheBackend(Protocol):
    """Stores data-key cache entries under opaque byte keys.

    A backend that keeps entries outside process memory must seal the
    material first; the in-process ones keep it as a wipeable ``bytearray``.
    """

    def get(self, key: bytes) -> CacheEntry | None:
        """Return the entry under ``key`` or ``None``."""
        ...

    def put(self, key: bytes, entry: CacheEntry) -> None:
        """Store ``entry`` under ``key``, replacing (and wiping) any previous one."""
        ...

    def evict(self, key: bytes) -> None:
        """Remove and wipe the entry under ``key``, if any."""
        ...

    def clear(self) -> None:
        """Remove and wipe every entry."""
        ...

    def __len__(self) -> int:
        """The number of entries held."""
        ...


@runtime_checkable
class AuditSink(Protocol):
    """Records audit events.  ``emit`` raises if the event could not be recorded."""

    def emit(self, event: AuditEvent) -> None:
        """Record one event."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...


ProviderLookup = Callable[[str], KeyProvider]
"""The provider that serves a URI scheme (``KeyStack.provider``)."""


@runtime_checkable
class UsesKeyProviders(Protocol):
    """An audit sink that needs keys (a MAC key, a signing key) from its stack's providers.

    The stack calls :meth:`use_key_providers` once, before the sink's first
    event.  The sink must call provider methods directly: a stack operation
    would be audited, and so recurse into the sink.
    """

    def use_key_providers(self, providers: ProviderLookup) -> None:
        """Remember how to reach the provider of a URI scheme."""
        ...


ProviderFactory = Callable[["ProviderSettings"], KeyProvider]
CredentialSourceFactory = Callable[[Mapping[str, Any]], CredentialSource]
CacheBackendFactory = Callable[[Mapping[str, Any]], CacheBackend]
AuditSinkFactory = Callable[[Mapping[str, Any]], AuditSink]


@attrs.frozen(kw_only=True)
class ProviderSettings:
    """What a provider factory receives: its options and, if configured, its credentials."""

    options: Mapping[str, Any] = attrs.field(factory=dict)
    credentials: CredentialSource | None = None

    def option(self, name: str, default: Any = None) -> Any:
        """Return one option."""
        return self.options.get(name, default)
