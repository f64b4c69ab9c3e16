"""The key stack: providers, credentials, cache and audit sinks composed into one API.

Build one from a TOML file (:meth:`KeyStack.from_config`), a dict
(:meth:`KeyStack.from_dict`) or code (:meth:`KeyStack.local`, or the
constructor).  Providers are created lazily, on first use of their scheme, from
the factories plugins register.
"""

from __future__ import annotations

import io
import os
import threading
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeGuard

import attrs

from .audit import AuditTrail, Processor
from .cache import (
    MAX_BYTES_LIMIT,
    POLICY_OPTIONS,
    CachePolicy,
    DataKeyCache,
    Fill,
    fill_of,
    stream_size,
)
from .config import CONFIG_ENV, NamedOptions, StackConfig
from .context import EncryptionContext
from .envelope.header import Limits
from .envelope.inspect import MessageInfo, inspect_message
from .envelope.keyring import (
    Fanout,
    KeyFilter,
    NotStarted,
    ProviderLookup,
    active_fanout,
    encryption_materials,
    unwrap_data_key_by,
)
from .envelope.message import (
    DEFAULT_FRAME_LENGTH,
    EncryptionMaterials,
    MessageReader,
    MessageWriter,
    check_frame_length,
    encrypt_bytes,
    merge_supplied,
    signed_context,
    split_required,
)
from .envelope.message import encrypt_stream as _encrypt_stream
from .envelope.quorum import Quorum, QuorumNotReached
from .envelope.rewrap import Rewrap, Write, parse_recipients, snapshot
from .envelope.spool import DEFAULT_MEMORY_BOUND, SealedSpool
from .envelope.suites import DEFAULT_SUITE, SIGNED_SUITE, CommitmentPolicy
from .errors import (
    AureusError,
    ConfigError,
    DecryptionError,
    KeyExists,
    PluginError,
    UnsupportedOperation,
    hint,
)
from .instrumented import InstrumentedProvider
from .interfaces import (
    AuditSink,
    Capability,
    CredentialSource,
    ImportsWrappedKeys,
    KeyMaterial,
    KeyProvider,
    ProviderSettings,
    ReplicatesKeys,
)
from .keyref import KeyRef
from .keys import KeyMetadata, KeySpec, KeyState, KeyType
from .plugins import PluginHost, get_host
from .registry import call_factory
from .reliability import BREAKER_OPTION, BreakerPolicy, CircuitBreaker, GuardedProvider
from .rotation import (
    EnforcementAction,
    RotationPolicy,
    RotationStatus,
    enforce,
    summarize,
    usable_versions,
)
from .rotation import key_status as rotation_status
from .sensitive import Secret
from .signature import Signature
from .telemetry import Telemetry, current_ids
from .wrapped_import import ImportParameters, check_import_token

if TYPE_CHECKING:
    from .aio import AsyncKeyStack


def _required_hint(message: str, required: EncryptionContext) -> str:
    """A decrypt failure's message, with what the supplied context meant for it."""
    if required:
        names = ", ".join(repr(k) for k in required)
        return (
            f"{message}; the context keys {names} you supplied are not stored in the "
            "message, so they were checked as its required encryption context (pairs "
            "authenticated but not stored): they must be exactly the pairs it was "
            "encrypted with as required context"
        )
    return (
        f"{message}; if it was encrypted with required encryption context (pairs "
        "authenticated but not stored), supply those pairs in "
        + hint("context=", "--context KEY=VALUE")
    )


class _DroppedRecord(dict[str, Any]):
    """The record of an operation nobody traces or audits: what is written to it is dropped.

    One shared instance; hot paths compare with it (``op is _DROPPED``) to skip
    building fields no one will read.
    """

    __slots__ = ()

    def update(self, *_args: Any, **_fields: Any) -> None:
        """Drop the fields."""

    def __setitem__(self, _key: str, _value: Any) -> None:
        """Drop the field."""


_DROPPED = _DroppedRecord()


class _Unobserved:
    """The context of an operation nobody traces or audits: a record that is dropped."""

    __slots__ = ()

    def __enter__(self) -> dict[str, Any]:
        return _DROPPED

    def __exit__(self, *exc_info: object) -> None:
        return None


def _trace_ids(op: dict[str, Any]) -> None:
    op["trace_id"], op["span_id"] = current_ids()


def _hinted(error: DecryptionError, required: EncryptionContext) -> DecryptionError:
    """``error`` with :func:`_required_hint`'s message, keeping a quorum failure's type."""
    message = _required_hint(str(error), required)
    if isinstance(error, QuorumNotReached):
        return QuorumNotReached(message, reached=error.reached, missing=error.missing)
    return DecryptionError(message, code=error.code)


def _names_keys(keys: Sequence[str | KeyRef] | None, use: str) -> TypeGuard[Sequence[str | KeyRef]]:
    """Whether an operation's ``keys`` argument names keys (``None``: the configured ones).

    An empty list is refused: it names no key, and reading it as "the configured
    keys" would turn a caller's allow-list that came out empty into every key.
    """
    if keys is None:
        return False
    if not keys:
        raise ConfigError(
            f"keys is empty, so it names no key to {use}: name at least one key, or leave "
            "keys out (None) to use the stack's configured keys"
        )
    return True


class KeyStack:
    """One entry point for key management, signing and (later) envelope encryption.

    ``wrapping_keys`` are the keys new data keys are wrapped under;
    ``signing_key`` is what :meth:`sign` uses when no key is given.
    """

    def __init__(
        self,
        *,
        config: StackConfig | None = None,
        providers: Mapping[str, KeyProvider] | None = None,
        audit_sinks: Sequence[AuditSink] = (),
        cache: DataKeyCache | None = None,
        host: PluginHost | None = None,
        telemetry: Telemetry | None = None,
        audit_processors: Sequence[Processor] = (),
        breaker_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or StackConfig()
        self._host = host
        self._lock = threading.RLock()
        self._providers: dict[str, KeyProvider] = dict(providers or {})
        self._credentials: dict[str, CredentialSource] = {}
        self._owned: set[str] = set()  # schemes whose providers this stack created and must close
        self._audit = AuditTrail(
            audit_sinks,
            build_sinks=self._build_sinks,
            required=self.config.audit_required,
            processors=audit_processors,
            processor_specs=[(p.name, p.options) for p in self.config.audit_processors],
            providers=self.provider,
            hash_key=self.config.audit_hash_key,
            context_hashes=self.config.audit_context_hashes,
            principal=self._principal,
        )
        self._telemetry = telemetry if telemetry is not None else Telemetry()
        self._cache = cache
        if cache is not None and cache.describe is None:
            cache.describe = self._describe_for_cache
        self._cache_built = cache is not None
        self._owns_cache = False
        self._closed = False
        self._guards: dict[str, GuardedProvider] = {}
        self._breaker_clock = breaker_clock
        self._pool: ThreadPoolExecutor | None = None
        self._limits: tuple[StackConfig, Limits] | None = None
        self._default_filter: tuple[StackConfig, KeyFilter, str] | None = None

    # -- construction --------------------------------------------------------

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> KeyStack:
        """Build from a TOML file: ``path``, else ``$AUREUS_CONFIG``, else the local default."""
        if path is None:
            env = os.environ.get(CONFIG_ENV)
            if not env:
                return cls(**kwargs)
            path = env
        return cls(config=StackConfig.from_file(path), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **kwargs: Any) -> KeyStack:
        """Build from a mapping with the TOML file's structure."""
        return cls(config=StackConfig.from_dict(data), **kwargs)

    @classmethod
    def local(
        cls,
        keystore: str | os.PathLike[str] | None = None,
        *,
        passphrase: str | None = None,
        wrapping_keys: Sequence[str] = (),
        signing_key: str | None = None,
        **kwargs: Any,
    ) -> KeyStack:
        """A stack on the local keystore (default directory unless ``keystore`` is given)."""
        provider: dict[str, Any] = {}
        data: dict[str, Any] = {
            "stack": {"wrapping_keys": list(wrapping_keys)},
            "providers": {"local": provider},
        }
        if signing_key is not None:
            data["stack"]["signing_key"] = signing_key
        if keystore is not None:
            provider["keystore"] = str(Path(keystore).expanduser())
        if passphrase is not None:
            provider["credentials"] = "local-passphrase"
            data["credentials"] = {
                "local-passphrase": {"source": "static", "values": {"passphrase": passphrase}}
            }
        return cls.from_dict(data, **kwargs)

    @property
    def host(self) -> PluginHost:
        """The plugin host this stack draws factories from."""
        return self._host or get_host()

    # -- providers -----------------------------------------------------------

    def provider(self, scheme: str) -> KeyProvider:
        """Return (creating on first use) the provider for ``scheme``.

        The provider comes behind the scheme's circuit breaker (see
        :mod:`aureus_core.reliability`) and, with OpenTelemetry, a tracing proxy.
        """
        guarded = self._guards.get(scheme)
        if (  # the common case, without the lock: the same provider as last time
            guarded is not None
            and not self._closed
            and self._providers.get(scheme) is guarded.wrapped
        ):
            provided = self._telemetry.instrument(guarded)
        else:
            with self._lock:
                if self._closed:
                    raise AureusError("this KeyStack is closed; create a new one")
                existing = self._providers.get(scheme)
                if existing is None:
                    existing = self._create_provider(scheme)
                provided = self._telemetry.instrument(self._guard(scheme, existing))
        fanout = active_fanout()
        return provided if fanout is None else fanout.route(provided)

    def _create_provider(self, scheme: str) -> KeyProvider:
        try:
            registration = self.host.key_providers.get(scheme)
        except PluginError as error:
            if scheme in self.config.providers:
                raise PluginError(f"{self.config.source}: [providers.{scheme}]: {error}") from None
            raise
        options = dict(self.config.providers.get(scheme, {}))
        options.pop(BREAKER_OPTION, None)
        credential_name = options.pop("credentials", None)
        credentials = self._credential(credential_name) if credential_name else None
        settings = ProviderSettings(options=options, credentials=credentials)
        try:
            created = registration.factory(settings)
        except AureusError:
            raise
        except Exception as error:
            raise ConfigError(
                f"provider {scheme!r} (plugin {registration.plugin!r}) failed to start: "
                f"{type(error).__name__}: {error}"
            ) from error
        self._providers[scheme] = created
        self._owned.add(scheme)
        return created

    def _guard(self, scheme: str, provider: KeyProvider) -> KeyProvider:
        """``provider`` behind this stack's breaker for ``scheme`` (once, however it came in)."""
        inner = provider.wrapped if isinstance(provider, InstrumentedProvider) else provider
        if isinstance(inner, GuardedProvider):
            return provider
        guarded = self._guards.get(scheme)
        if guarded is None or guarded.wrapped is not inner:
            options = self.config.providers.get(scheme, {}).get(BREAKER_OPTION, {})
            try:
                policy = BreakerPolicy.from_options(options)
            except ConfigError as error:
                raise ConfigError(f"[providers.{scheme}] {error}") from None
            guarded = self._guards[scheme] = GuardedProvider(
                inner, CircuitBreaker(scheme, policy, clock=self._breaker_clock)
            )
        return guarded

    def _unwrap_lookup(self, allowed: KeyFilter) -> ProviderLookup:
        """:meth:`provider`, for the schemes a decrypt may start because a message names them.

        A message's provider ID alone never starts a provider the stack is not
        configured with (a cloud client that would reach for ambient
        credentials or a metadata server on a stranger's say-so): only running
        or configured providers, the default one, and the schemes of keys the
        decrypt or the configuration names.
        """

        def lookup(scheme: str) -> KeyProvider:
            if scheme in self._providers:  # running already (the usual case): no lock needed
                return self.provider(scheme)
            named = {key.scheme for key in (*allowed.keys, *allowed.named)}
            with self._lock:
                known = (
                    scheme in self._providers
                    or scheme in self.config.providers
                    or scheme == self.config.default_provider
                    or scheme in named
                )
            if not known and scheme in self.host.key_providers:
                raise NotStarted(
                    f"keys of provider {scheme!r} were not tried: this stack is not configured "
                    f"with it; name the key in {hint('keys=', '--key')} or configure "
                    f"[providers.{scheme}]"
                )
            return self.provider(scheme)

        return lookup

    def _own_providers(self) -> list[KeyProvider]:
        """The providers this stack is configured with or has loaded (for decrypt to ask).

        A provider that cannot start is left out: decryption only asks.
        """
        with self._lock:
            schemes = sorted(
                {self.config.default_provider, *self.config.providers, *self._providers}
            )
        found: list[KeyProvider] = []
        for scheme in schemes:
            try:
                found.append(self.provider(scheme))
            except AureusError:
                continue
        return found

    def breaker(self, scheme: str) -> CircuitBreaker:
        """The circuit breaker in front of the provider for ``scheme``."""
        self.provider(scheme)
        return self._guards[scheme].breaker

    def _credential(self, name: str, referrers: tuple[str, ...] = ()) -> CredentialSource:
        if name in referrers:
            loop = " -> ".join(f"[credentials.{n}]" for n in (*referrers, name))
            raise ConfigError(
                f"{self.config.source}: credentials refer to each other in a loop: {loop}; "
                "one of them must obtain credentials itself"
            )
        source = self._credentials.get(name)
        if source is None:
            spec: NamedOptions | None = self.config.credentials.get(name)
            if spec is None:
                raise ConfigError(f"no credentials named {name!r} are configured")
            registration = self.host.credential_sources.get(spec.name)

            def configured(other: str) -> CredentialSource:
                return self._credential(other, (*referrers, name))

            source = call_factory(
                registration.factory, spec.options, name=name, credentials=configured
            )
            self._credentials[name] = source
        return source

    @property
    def pool(self) -> ThreadPoolExecutor:
        """The bounded pool (``[stack] concurrency`` threads) that fans provider calls out."""
        pool = self._pool
        if pool is not None and not self._closed:  # built already: no lock needed
            return pool
        with self._lock:
            if self._closed:
                raise AureusError("this KeyStack is closed; create a new one")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.config.concurrency, thread_name_prefix="aureus-fanout"
                )
            return self._pool

    @property
    def unwrap_fanout(self) -> ThreadPoolExecutor | Fanout | None:
        """What runs a decrypt's unwraps: :attr:`fanout`, or nothing with ``concurrency = 1``.

        One at a time, a decrypt stops at the first data key that comes back, asking
        no other candidate (fewer service calls, fewer audit entries at the service).
        """
        active = active_fanout()
        if active is not None:
            return active
        return None if self.config.concurrency == 1 else self.pool

    @property
    def fanout(self) -> ThreadPoolExecutor | Fanout:
        """What runs an operation's concurrent provider calls.

        :attr:`pool`, or the event loop of the :class:`~aureus_core.aio.AsyncKeyStack`
        running the operation.
        """
        active = active_fanout()
        return active if active is not None else self.pool

    def _provider_for(self, ref: KeyRef, capability: Capability, operation: str) -> KeyProvider:
        provider = self.provider(ref.scheme)
        if capability not in provider.capabilities:
            raise UnsupportedOperation(ref.scheme, operation)
        return provider

    def _ref(self, key: str | KeyRef) -> KeyRef:
        """A key URI, or a bare name (``payments``, ``payments?version=2``) of the default provider.

        Every method that takes an existing key resolves names this way, as
        :meth:`create_key` does for a new one.
        """
        if isinstance(key, str) and key and "://" not in key:
            return KeyRef.parse(f"{self.config.default_provider}://{key}")
        return KeyRef.parse(key)

    def _split_name(self, name: str | KeyRef, provider: str | None) -> tuple[str, str]:
        if isinstance(name, KeyRef):
            if name.version is not None:
                raise ConfigError(f"{name.uri}: a new key cannot name a version")
            return name.scheme, name.key_id
        if "://" in name:
            ref = KeyRef.parse(name)
            if provider is not None and provider != ref.scheme:
                raise ConfigError(f"{name} names provider {ref.scheme!r}, not {provider!r}")
            if ref.version is not None:
                raise ConfigError(f"{name}: a new key cannot name a version")
            return ref.scheme, ref.key_id
        return provider or self.config.default_provider, name

    # -- audit and telemetry ---------------------------------------------------

    def _build_sinks(self) -> list[AuditSink]:
        return [
            self.host.audit_sinks.get(spec.name).factory(spec.options)
            for spec in self.config.audit_sink_specs()
        ]

    def _principal(self, scheme: str) -> str | None:
        """Who the credentials of ``scheme``'s provider act as, if they are in use and say."""
        name = self.config.providers.get(scheme, {}).get("credentials")
        source = self._credentials.get(name) if isinstance(name, str) else None
        return source.get_credentials().principal if source is not None else None

    @property
    def audit(self) -> AuditTrail:
        """The audit trail: sinks, and whether auditing is required."""
        return self._audit

    @property
    def audit_required(self) -> bool:
        """Whether an operation fails when no sink can record its event."""
        return self._audit.required

    def add_audit_sink(self, sink: AuditSink) -> None:
        """Send this stack's audit events to ``sink`` as well."""
        self._audit.add(sink)

    def _operation(
        self, operation: str, ref: KeyRef | None = None
    ) -> AbstractContextManager[dict[str, Any]]:
        """Trace and audit one operation; yields its record (``op``), which may grow inside."""
        if self._telemetry.quiet() and self._audit.idle():
            return _Unobserved()  # no span, and no event anyone would receive
        return self._observed(operation, ref)

    @contextmanager
    def _observed(self, operation: str, ref: KeyRef | None) -> Iterator[dict[str, Any]]:
        op: dict[str, Any] = {}
        if ref is not None:
            op.update(
                provider=ref.scheme, key_uri=ref.with_version(None).uri, key_version=ref.version
            )
        with (
            self._telemetry.operation(operation, op),
            self._audit.operation(operation, op, _trace_ids),  # request first unless read-only
        ):
            yield op

    # -- key management ------------------------------------------------------

    def create_key(
        self,
        name: str | KeyRef,
        key_type: str | KeyType | KeySpec = KeyType.AES_256,
        *,
        description: str = "",
        labels: Mapping[str, str] | None = None,
        provider: str | None = None,
        if_not_exists: bool = False,
    ) -> KeyMetadata:
        """Create a key; ``name`` is a bare name (default provider) or ``scheme://name``.

        With ``if_not_exists``, a key of that name and type that already
        exists is returned instead of raising :class:`~aureus_core.errors.KeyExists` (one of
        another type is still a :class:`~aureus_core.errors.ConfigError`), so setup code can run
        more than once.
        """
        scheme, key_name = self._split_name(name, provider)
        spec = (
            key_type
            if isinstance(key_type, KeySpec)
            else KeySpec(key_type=key_type, description=description, labels=labels or {})
        )
        if if_not_exists:
            try:
                return self.create_key(KeyRef(scheme=scheme, key_id=key_name), spec)
            except KeyExists:
                existing = self.describe_key(KeyRef(scheme=scheme, key_id=key_name))
                if existing.key_type is not spec.key_type:
                    raise ConfigError(
                        f"{existing.uri} exists with type {existing.key_type.value}, "
                        f"not {spec.key_type.value}"
                    ) from None
                return existing
        with self._operation("create", KeyRef(scheme=scheme, key_id=key_name)) as op:
            target = self._provider_for(
                KeyRef(scheme=scheme, key_id=key_name), Capability.CREATE, "create_key"
            )
            if spec.key_type not in target.key_types:
                supported = ", ".join(sorted(t.value for t in target.key_types)) or "none"
                raise UnsupportedOperation(
                    scheme, f"key type {spec.key_type.value}", f"it supports: {supported}"
                )
            metadata = target.create_key(key_name, spec)
            op.update(key_uri=metadata.uri, key_version=metadata.current_version)
            return metadata

    def describe_key(self, key: str | KeyRef) -> KeyMetadata:
        """Return a key's metadata."""
        ref = self._ref(key)
        with self._operation("describe", ref):
            return self._provider_for(ref, Capability.DESCRIBE, "describe_key").describe_key(ref)

    def list_keys(self, provider: str | None = None) -> list[KeyMetadata]:
        """List keys of one provider, or of the default and every configured provider."""
        schemes = (
            [provider]
            if provider
            else sorted({self.config.default_provider, *self.config.providers})
        )
        found: list[KeyMetadata] = []
        with self._operation("list") as op:
            for scheme in schemes:
                target = self.provider(scheme)
                if Capability.LIST not in target.capabilities:
                    if provider:
                        raise UnsupportedOperation(scheme, "list_keys")
                    continue
                found.extend(target.list_keys())
            op.update(details=(("count", str(len(found))),))
        return found

    def rotate_key(self, key: str | KeyRef) -> KeyMetadata:
        """Add a new current version; old versions keep decrypting and verifying."""
        ref = self._ref(key)
        if ref.version is not None:
            raise ConfigError(f"{ref.uri}: rotate a key, not a version (drop ?version=)")
        with self._operation("rotate", ref) as op:
            metadata = self._provider_for(ref, Capability.ROTATE, "rotate_key").rotate_key(ref)
            op.update(key_version=metadata.current_version)
            return self._changed(ref, metadata)

    def change_keystore_passphrase(
        self, new_passphrase: Secret[str], *, provider: str = "local"
    ) -> Any:
        """Re-seal ``provider``'s keystore under a new passphrase; returns its new pin info.

        Only a provider that keeps a passphrase keystore (``local``) offers it.
        Audited as ``keystore_passphrase`` with the new fingerprint and
        generation, never a passphrase: the fingerprint changes, so whoever
        pins it must update ``keystore_fingerprint``.
        """
        with self._operation("keystore_passphrase") as op:
            op.update(provider=provider)
            change = getattr(self.provider(provider), "change_passphrase", None)
            if not callable(change):
                raise UnsupportedOperation(
                    provider, "changing the passphrase", "only the local provider keeps a keystore"
                )
            info = change(new_passphrase)
            op.update(
                details=(("fingerprint", info.fingerprint), ("generation", str(info.generation)))
            )
            return info

    def replicate_key(self, key: str | KeyRef, region: str) -> KeyMetadata:
        """Copy a multi-region key into ``region``; returns the replica's metadata."""
        ref = self._ref(key)
        if not isinstance(region, str) or not region.strip():
            raise ConfigError("replicate_key needs the target region, e.g. 'us-west-2'")
        with self._operation("replicate", ref) as op:
            provider = self._provider_for(ref, Capability.REPLICATE, "replicate_key")
            if not isinstance(provider, ReplicatesKeys):
                raise UnsupportedOperation(ref.scheme, "replicate_key")
            metadata = provider.replicate_key(ref, region)
            op.update(details=(("region", region), ("replica", metadata.uri)))
            return metadata

    def import_key(
        self,
        name: str | KeyRef,
        key_type: str | KeyType,
        *,
        raw: bytes | None = None,
        pem: bytes | None = None,
        new_version: bool = False,
        description: str = "",
        provider: str | None = None,
        namespace: str | None = None,
        key_name: str | None = None,
        padding: str | None = None,
        wrapped: bytes | None = None,
        import_token: str | None = None,
    ) -> KeyMetadata:
        """Import raw symmetric material, a PEM key, or wrapped material (exactly one).

        ``namespace`` and ``key_name`` (with ``padding`` for RSA: ``pkcs1``,
        ``oaep-sha1``, ``oaep-sha256``, ``oaep-sha384`` or ``oaep-sha512``)
        import a raw keyring key: messages name it by that key namespace and
        key name, as the AWS Encryption SDK's raw AES and raw RSA keyrings do.
        An RSA public key alone (``pem=``) makes a key that wraps only.

        ``wrapped`` is material wrapped for the :meth:`import_parameters` whose
        ``import_token`` is given; the provider unwraps it inside itself.
        """
        given = [value for value in (raw, pem, wrapped) if value is not None]
        if len(given) != 1:
            raise ConfigError(
                "import_key needs exactly one of raw= (AES key bytes), pem= or wrapped="
            )
        if (wrapped is None) != (import_token is None):
            raise ConfigError(
                "wrapped= material needs the import_token= it was wrapped for, and only it "
                "takes one"
            )
        if wrapped is not None:
            check_import_token(import_token)
        scheme, local_name = self._split_name(name, provider)
        options = {
            option: value
            for option, value in (
                ("namespace", namespace),
                ("key_name", key_name),
                ("padding", padding),
            )
            if value is not None
        }
        spec = KeySpec(key_type=key_type, description=description, options=options)
        material = KeyMaterial(
            format="raw" if raw is not None else "pem" if pem is not None else "wrapped",
            data=Secret(bytes(given[0])),
            import_token=import_token,
        )
        ref = KeyRef(scheme=scheme, key_id=local_name)
        with self._operation("import", ref) as op:
            if wrapped is not None:
                target = self._provider_for(ref, Capability.WRAPPED_IMPORT, "wrapped import")
                op.update(details=(("import_token", str(import_token)),))
            else:
                target = self._provider_for(ref, Capability.IMPORT, "import_key")
            metadata = target.import_key(local_name, spec, material, new_version=new_version)
            op.update(key_uri=metadata.uri, key_version=metadata.current_version)
            # A new current version, like a rotation: cached encrypt entries must not keep
            # wrapping with the old one (and a shared cache tells the other processes).
            return self._changed(ref, metadata)

    def import_parameters(
        self,
        name: str | KeyRef,
        key_type: str | KeyType,
        *,
        new_version: bool = False,
        provider: str | None = None,
    ) -> ImportParameters:
        """Start a wrapped import of ``name``: the target's wrapping key, token and expiry.

        Wrap the key material for them with
        :func:`~aureus_core.wrapped_import.wrap_for_import` (on another machine,
        after checking the fingerprint out of band), then pass it to
        :meth:`import_key` as ``wrapped=`` with ``import_token=``.
        """
        scheme, local_name = self._split_name(name, provider)
        spec = KeySpec(key_type=key_type)
        ref = KeyRef(scheme=scheme, key_id=local_name)
        with self._operation("import_params", ref) as op:
            target = self._provider_for(ref, Capability.WRAPPED_IMPORT, "wrapped import")
            if not isinstance(target, ImportsWrappedKeys):
                raise UnsupportedOperation(ref.scheme, "wrapped import")
            parameters = target.import_parameters(local_name, spec, new_version=new_version)
            op.update(
                key_uri=parameters.key_uri,
                details=(
                    ("import_token", parameters.import_token),
                    ("fingerprint", parameters.fingerprint),
                    ("expires_at", parameters.expires_at.isoformat()),
                ),
            )
            return parameters

    def public_key(self, key: str | KeyRef) -> bytes:
        """The PEM public key of a signing key (current version unless the URI pins one)."""
        ref = self._ref(key)
        with self._operation("public_key", ref):
            return self._provider_for(ref, Capability.PUBLIC_KEY, "public_key").public_key(ref)

    # -- signing -------------------------------------------------------------

    def _signing_ref(self, key: str | KeyRef | None) -> KeyRef:
        if key is not None:
            return self._ref(key)
        if self.config.signing_key is None:
            raise ConfigError(
                "no signing key given: pass key=URI or set [stack] signing_key in the config"
            )
        return self.config.signing_key

    def sign(self, message: bytes, *, key: str | KeyRef | None = None) -> Signature:
        """Sign ``message`` with ``key`` (default: the configured signing key)."""
        ref = self._signing_ref(key)
        with self._operation("sign", ref) as op:
            op.update(byte_count=len(message))
            signature = self._provider_for(ref, Capability.SIGN, "sign").sign(ref, message)
            op.update(key_version=signature.key_version)
            return signature

    def verification_keys(
        self, key: str | KeyRef | Sequence[str | KeyRef] | None = None
    ) -> tuple[KeyRef, ...]:
        """The trust anchors a verify uses: ``key``, else ``[stack] verify_keys``, else signing_key.

        Raises :class:`~aureus_core.errors.ConfigError` when there is none: the
        key a signature record names is never trusted on its own.
        """
        if key is not None:
            given = [key] if isinstance(key, (str, KeyRef)) else list(key)
            anchors = tuple(self._ref(k) for k in given)
        elif self.config.verify_keys:
            anchors = self.config.verify_keys
        elif self.config.signing_key is not None:
            anchors = (self.config.signing_key,)
        else:
            anchors = ()
        if not anchors:
            raise ConfigError(
                "no trusted key to verify against: pass "
                + hint("key=URI", "--key URI")
                + ", or set "
                "[stack] verify_keys or signing_key in the config; the key a signature "
                "record names is never trusted on its own"
            )
        return anchors

    def trusted_ref(self, signature: Signature, anchors: Sequence[KeyRef]) -> KeyRef | None:
        """The version of a trust anchor that ``signature`` claims, or ``None`` if it names none.

        The record's key must be one of ``anchors`` (compared without version);
        its version must match the anchor's when the anchor pins one.
        """
        claimed = KeyRef.parse(signature.key_uri).with_version(None)
        for anchor in anchors:
            if anchor.with_version(None) != claimed:
                continue
            if anchor.version is not None and anchor.version != signature.key_version:
                continue
            return anchor.with_version(signature.key_version)
        return None

    def verify(
        self,
        message: bytes,
        signature: Signature | bytes,
        *,
        key: str | KeyRef | Sequence[str | KeyRef] | None = None,
    ) -> bool:
        """Check a signature against a trusted key.

        The trusted keys (anchors) are ``key`` (one URI or several), else
        ``[stack] verify_keys``, else ``[stack] signing_key``; with none,
        :class:`~aureus_core.errors.ConfigError`.  A :class:`Signature`
        record's key and version only select a version of an anchor: a record
        naming any other key is not valid, whatever its bytes.  Raw bytes are
        checked against each anchor's pinned version or, with no version, its
        current version and then older enabled ones, newest first.  Returns
        ``False`` for a signature that does not match; raises
        :class:`~aureus_core.errors.SignatureError` for a malformed one.
        """
        anchors = self.verification_keys(key)
        # (anchor, the versions to try; None: the anchor's pinned or usable versions)
        attempts: list[tuple[KeyRef, list[KeyRef] | None]]
        if isinstance(signature, Signature):
            claimed = self.trusted_ref(signature, anchors)
            raw = signature.value
            attempts = [(claimed, [claimed])] if claimed is not None else []
            audit_ref = claimed or anchors[0]
        else:
            raw = bytes(signature)
            attempts = [(anchor, None) for anchor in anchors]
            audit_ref = anchors[0]
        with self._operation("verify", audit_ref) as op:
            op.update(byte_count=len(message))
            if not attempts:
                op.update(details=(("valid", "false"), ("reason", "untrusted key")))
                return False
            for anchor, pinned in attempts:
                target = self._provider_for(anchor, Capability.SIGN, "verify")
                candidates = pinned or (
                    [anchor]
                    if anchor.version is not None
                    else self._verify_candidates(target, anchor)
                )
                for candidate in candidates:
                    if target.verify(candidate, message, raw):
                        op.update(
                            provider=candidate.scheme,
                            key_uri=candidate.with_version(None).uri,
                            key_version=candidate.version,
                            details=(("valid", "true"),),
                        )
                        return True
            op.update(details=(("valid", "false"),))
            return False

    def _verify_candidates(self, target: KeyProvider, ref: KeyRef) -> list[KeyRef]:
        if Capability.DESCRIBE not in target.capabilities:
            return [ref]
        metadata = target.describe_key(ref)
        # Disabled, destroyed and below-minimum versions are never tried (docs/rotation.md).
        usable = usable_versions(metadata)
        first = [metadata.current_version] if metadata.current_version in usable else []
        others = [v for v in usable if v != metadata.current_version]
        return [ref.with_version(v) for v in [*first, *others]]

    # -- data-key cache ------------------------------------------------------

    @property
    def cache(self) -> DataKeyCache | None:
        """The data-key cache (built from ``[cache]`` on first use), or ``None``."""
        if not self._cache_built:
            with self._lock:
                if not self._cache_built:
                    spec = self.config.cache
                    if spec is not None:
                        backend_options = {
                            k: v for k, v in spec.options.items() if k not in POLICY_OPTIONS
                        }
                        backend = self.host.cache_backends.get(spec.name).factory(backend_options)
                        self._cache = DataKeyCache(backend, CachePolicy.from_options(spec.options))
                        self._owns_cache = True
                    if self._cache is not None and self._cache.describe is None:
                        self._cache.describe = self._describe_for_cache
                    self._cache_built = True
        return self._cache

    def _describe_for_cache(self, uri: str) -> KeyMetadata | None:
        """A cached key's current state for the cache's ``recheck``; ``None`` if unknown."""
        ref = KeyRef.parse(uri)
        target = self.provider(ref.scheme)
        return target.describe_key(ref) if Capability.DESCRIBE in target.capabilities else None

    def _changed(self, ref: KeyRef, metadata: KeyMetadata) -> KeyMetadata:
        """Drop the cached data keys a lifecycle change to ``ref`` affects."""
        try:
            cache = self.cache  # built if configured: a shared cache tells the other processes
        except AureusError:
            # The change is made; a cache that cannot be built fails the next operation
            # that uses it, with its own error, rather than this one.
            return metadata
        if cache is not None:
            cache.invalidate(ref.uri, metadata)
        return metadata

    # -- envelope encryption -------------------------------------------------

    @property
    def limits(self) -> Limits:
        """Bounds applied to messages read and written."""
        config = self.config
        made = self._limits
        if made is None or made[0] is not config:  # built once per configuration
            made = self._limits = (
                config,
                Limits(
                    max_encrypted_data_keys=config.max_encrypted_data_keys,
                    max_frame_length=config.max_frame_length,
                    max_non_framed_bytes=config.max_non_framed_bytes,
                ),
            )
        return made[1]

    def _writer(
        self,
        context: Mapping[str, str] | None,
        keys: Sequence[str | KeyRef] | Quorum | None,
        signed: bool,
        frame_length: int | None,
        op: dict[str, Any],
        plaintext_bytes: int | None = None,
        required_context: Collection[str] = (),
    ) -> MessageWriter:
        """Materials for one message; ``plaintext_bytes`` (when known) lets it use the cache."""
        groups: Quorum | None = None
        if isinstance(keys, Quorum):
            groups, refs = keys, list(keys.keys)
        elif _names_keys(keys, "wrap the data key with"):
            refs = [self._ref(k) for k in keys]
        else:
            groups = self.config.key_groups
            refs = list(groups.keys if groups is not None else self.config.wrapping_keys)
        limits = self.limits
        limits.check_recipients(len(refs))
        encryption_context = EncryptionContext.coerce(context)
        split_required(encryption_context, required_context)  # refuse a bad list early
        if frame_length is None:
            frame_length = self.config.frame_length or DEFAULT_FRAME_LENGTH
        length = check_frame_length(frame_length, limits)
        observed = op is not _DROPPED
        if refs and observed:
            op.update(provider=refs[0].scheme, key_uri=refs[0].with_version(None).uri)
        if not self._audit.idle():
            op.update(self._audit.context_fields(encryption_context))
        # Key-group messages bypass the cache: each gets its own split.
        cache = self.cache if plaintext_bytes is not None and groups is None else None
        suite = SIGNED_SUITE if signed else DEFAULT_SUITE

        def make() -> tuple[tuple[EncryptionMaterials, list[KeyRef]], Fill]:
            made = encryption_materials(
                self.provider, groups or refs, encryption_context, signed=signed, pool=self.fanout
            )
            return made, fill_of(made[0], made[1])

        cached, made = None, None
        if cache is not None:
            cached, made = cache.lookup(
                cache.encrypt_key(suite.suite_id, refs, encryption_context),
                plaintext_bytes=plaintext_bytes or 0,
                encrypting=True,
                make=make,
            )
        if cached is not None:
            materials = EncryptionMaterials(
                suite=suite,
                data_key=cached.material,
                encrypted_data_keys=cached.encrypted,
                context=signed_context(encryption_context, cached.signing_key),
                signing_key=cached.signing_key,
            )
            recipients = refs
        else:
            materials, used = (
                made
                if made is not None
                else encryption_materials(
                    self.provider,
                    groups or refs,
                    encryption_context,
                    signed=signed,
                    pool=self.fanout,
                )
            )
            recipients = used
            if observed:
                op.update(key_version=used[0].version)
        try:
            # Required pairs leave the stored context (the data key was wrapped
            # with all of it) and are covered by the header authentication tag.
            if required_context:
                stored, required = split_required(materials.context, required_context)
                materials = attrs.evolve(materials, context=stored, required_context=required)
            writer = MessageWriter(materials, length)
        finally:
            if isinstance(materials.data_key, bytearray):
                materials.data_key[:] = bytes(len(materials.data_key))
        if not observed:
            return writer
        details = [
            ("recipients", ",".join(r.uri for r in recipients)),
            ("signed", str(signed).lower()),
        ]
        if groups is not None:
            details.append(("key_groups", f"{groups.threshold} of {len(groups.groups)}"))
        if cache is not None:
            details.append(("cache", "hit" if cached is not None else "miss"))
        op.update(details=tuple(details))
        return writer

    def encrypt(
        self,
        data: bytes | bytearray | memoryview,
        *,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | Quorum | None = None,
        signed: bool = False,
        frame_length: int | None = None,
        required_context: Collection[str] = (),
    ) -> bytes:
        """Encrypt ``data`` under a fresh data key wrapped by every key in ``keys``.

        ``keys`` defaults to ``[stack] wrapping_keys`` (or ``[stack]
        key_groups``); any one of them can decrypt.  A
        :class:`~aureus_core.envelope.quorum.Quorum` instead splits the data
        key so that only keys of ``threshold`` of its groups together can.
        ``context`` is bound to the message as authenticated data.
        ``required_context`` lists keys of ``context`` whose pairs are
        authenticated but not stored in the message: whoever decrypts must
        supply them in ``context``.  ``signed=True`` adds an ECDSA P-384
        signature (suite 0x0578).
        """
        with self._operation("encrypt") as op:
            size = memoryview(data).nbytes
            writer = self._writer(
                context,
                keys,
                signed,
                frame_length,
                op,
                plaintext_bytes=size,
                required_context=required_context,
            )
            op.update(byte_count=size)
            return encrypt_bytes(data, writer)

    def encrypt_stream(
        self,
        src: BinaryIO,
        dst: BinaryIO,
        *,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | Quorum | None = None,
        signed: bool = False,
        frame_length: int | None = None,
        required_context: Collection[str] = (),
    ) -> int:
        """Encrypt ``src`` into ``dst`` one frame at a time; return the plaintext byte count.

        The arguments are :meth:`encrypt`'s.
        """
        with self._operation("encrypt") as op:
            size = stream_size(src)
            if size is None and self.cache is not None:
                # Unknown length: usable with the cache only when bytes are unbounded.
                size = 0 if self.cache.policy.max_bytes == MAX_BYTES_LIMIT else None
            writer = self._writer(
                context,
                keys,
                signed,
                frame_length,
                op,
                plaintext_bytes=size,
                required_context=required_context,
            )
            # A cached data key was charged ``size`` bytes: a source that grows while it
            # is read must not put more than that under it.
            bounded = (
                size is not None
                and self.cache is not None
                and self.cache.policy.max_bytes < MAX_BYTES_LIMIT
                and size <= self.cache.policy.max_bytes
            )
            count = _encrypt_stream(src, dst, writer, max_bytes=size if bounded else None)
            op.update(byte_count=count)
            return count

    def _reader(
        self,
        source: bytes | bytearray | memoryview | BinaryIO,
        context: Mapping[str, str] | None,
        keys: Sequence[str | KeyRef] | None,
        op: dict[str, Any],
    ) -> MessageReader:
        reader = MessageReader(
            source,
            limits=self.limits,
            policy=CommitmentPolicy.parse(self.config.commitment_policy),
        )
        stored = reader.stored_context
        if not self._audit.idle():
            op.update(
                self._audit.context_fields(
                    {k: v for k, v in stored.items() if not k.startswith("aws-crypto-")}
                )
            )
        # Supplied pairs the header does not store are the writer's required
        # context: unwrap with them, and the header tag must cover them.
        full, required = merge_supplied(stored, EncryptionContext.coerce(context))
        allowed, allowed_text = self._key_filter(keys)
        header = reader.header
        cache = self.cache

        def unwrapped() -> tuple[bytearray, tuple[KeyRef, ...]]:
            try:
                return unwrap_data_key_by(
                    self._unwrap_lookup(allowed),
                    header.encrypted_data_keys,
                    full,
                    allowed,
                    self._own_providers,
                    self.unwrap_fanout,
                )
            except DecryptionError as error:
                raise _hinted(error, required) from None

        def unwrap() -> tuple[tuple[bytearray, KeyRef], Fill]:
            key, every = unwrapped()
            # Every key version that took part (each share's, for a key-group message):
            # the entry is dropped when any of them stops being usable.
            return (key, every[0]), Fill(material=key, key_versions=tuple(r.uri for r in every))

        cached, made = None, None
        if cache is not None:
            cached, made = cache.lookup(
                cache.decrypt_key(
                    header.suite.suite_id, header.encrypted_data_keys, full, allowed_text
                ),
                plaintext_bytes=0,
                encrypting=False,
                make=unwrap,
            )
        if cached is not None:
            data_key = cached.material
            op.update(details=(("cache", "hit"),))
        else:
            if made is not None:
                data_key, used = made
            else:
                data_key, every = unwrapped()
                used = every[0]
            if op is not _DROPPED:
                op.update(
                    provider=used.scheme,
                    key_uri=used.with_version(None).uri,
                    key_version=used.version,
                )
            if cache is not None:
                op.update(details=(("cache", "miss"),))
        try:
            try:
                reader.unlock(data_key, required)
            except DecryptionError as error:
                raise DecryptionError(_required_hint(str(error), required)) from None
        finally:
            data_key[:] = bytes(len(data_key))
        return reader

    def _key_filter(self, keys: Sequence[str | KeyRef] | None) -> tuple[KeyFilter, str]:
        """Which keys a decrypt may use, and its repr (part of a cache entry's key).

        The filter without ``keys`` is built once per configuration.
        """
        config = self.config
        if _names_keys(keys, "decrypt with"):
            made = KeyFilter(
                keys=tuple(self._ref(k) for k in keys),
                patterns=config.decrypt_allow,
                named=config.named_keys,
            )
            return made, repr(made)
        default = self._default_filter
        if default is None or default[0] is not config:
            made = KeyFilter(patterns=config.decrypt_allow, named=config.named_keys)
            default = self._default_filter = (config, made, repr(made))
        return default[1], default[2]

    def decrypt(
        self,
        message: bytes | bytearray | memoryview,
        *,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
    ) -> bytes:
        """Decrypt and authenticate a whole message; nothing is returned unless all of it checks.

        ``keys`` restricts the wrapping keys that may be used (strict mode);
        without it a key must match ``[stack] decrypt_allow`` and, for
        providers that scope discovery (the cloud ones), be configured or in
        the provider's ``discovery`` scope.  Every pair in ``context`` that
        the message stores must match; the others are taken as its required
        encryption context (authenticated but not stored) and must be exactly
        the pairs it was encrypted with.
        Any failure raises :class:`~aureus_core.errors.DecryptionError`.
        """
        with self._operation("decrypt") as op:
            plaintext = self._reader(message, context, keys, op).read_all()
            op.update(byte_count=len(plaintext))
            return plaintext

    def decrypt_stream(
        self,
        src: BinaryIO,
        dst: BinaryIO,
        *,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
        hold_signed: bool = False,
        memory_bound: int = DEFAULT_MEMORY_BOUND,
    ) -> int:
        """Decrypt ``src`` into ``dst`` frame by frame; return the plaintext byte count.

        Each frame is written only after it authenticates (for signed messages
        the last frame waits for the signature).  If this raises, what was
        written to ``dst`` is incomplete and must be discarded; the CLI writes
        to a temporary file and renames it only on success.

        With ``hold_signed``, nothing of a signed message reaches ``dst``
        until its signature has verified: the plaintext waits in memory up to
        ``memory_bound`` bytes, then in an unnamed temporary file sealed under
        a one-time key (:class:`~aureus_core.envelope.spool.SealedSpool`).
        Use it when ``dst`` cannot be discarded (a pipe).
        """
        with self._operation("decrypt") as op:
            count = 0
            reader = self._reader(src, context, keys, op)
            if hold_signed and reader.header.suite.signed:
                with SealedSpool(memory_bound) as spool:
                    for chunk in reader.frames():
                        spool.write(chunk)
                    count = spool.release(dst)
            else:
                for chunk in reader.frames(reuse=True):  # written before the next is read
                    dst.write(chunk)
                    count += len(chunk)
            op.update(byte_count=count)
            return count

    def encrypt_batch(
        self,
        values: Sequence[bytes | bytearray | memoryview],
        *,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
        signed: bool = False,
    ) -> list[bytes]:
        """Encrypt many small values (fields, columns) under one context; one message each.

        One data key for the batch, wrapped once for every key in ``keys``;
        one audit event (``encrypt_batch``) for all of it; results in order.
        See :mod:`aureus_core.batch`.
        """
        from .batch import encrypt_batch

        return encrypt_batch(self, values, context=context, keys=keys, signed=signed)

    def decrypt_batch(
        self,
        messages: Sequence[bytes | bytearray | memoryview],
        *,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
    ) -> list[bytes]:
        """Decrypt many messages with :meth:`decrypt`'s checks; each data key unwrapped once.

        Nothing is returned unless every message authenticates; the error
        names the failing message's position.  One audit event (``decrypt_batch``).
        """
        from .batch import decrypt_batch

        return decrypt_batch(self, messages, context=context, keys=keys)

    # -- rewrap --------------------------------------------------------------------
    # Logic in aureus_core/envelope/rewrap.py; these methods only compose it.

    def rewrap(
        self,
        message: bytes | bytearray | memoryview,
        *,
        to_keys: Sequence[str | KeyRef] | Quorum,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
        verify_body: bool = True,
    ) -> bytes:
        """Re-key a message for ``to_keys``; return the new message.

        The input is decrypted with decrypt's checks (``context``, ``keys``,
        ``[stack] decrypt_allow``, limits, commitment policy, every frame's tag,
        the signature) and re-encrypted in the same pass under a fresh data key
        wrapped for ``to_keys`` (a list, or a
        :class:`~aureus_core.envelope.quorum.Quorum`: a fresh split) and a
        fresh message ID; the plaintext stays in memory, one frame at a time.
        The stored context, frame length and signing are kept.  Any failure to read the input raises
        :class:`~aureus_core.errors.DecryptionError`.

        ``verify_body`` is kept for compatibility: the body is always
        authenticated now, and ``False`` only warns.
        """
        out = io.BytesIO()
        self._rewrap(snapshot(message), out.write, to_keys, context, keys, verify_body)
        return out.getvalue()

    def rewrap_stream(
        self,
        src: BinaryIO,
        dst: BinaryIO,
        *,
        to_keys: Sequence[str | KeyRef] | Quorum,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
        verify_body: bool = True,
    ) -> int:
        """:meth:`rewrap` from ``src`` to ``dst`` in constant memory; return the plaintext size.

        Frames are written as they are re-encrypted.  If this raises, discard
        what was written (it never holds the new final frame or footer); the
        CLI writes to a temporary file and renames it only on success.
        """
        return self._rewrap(src, dst.write, to_keys, context, keys, verify_body)

    def _rewrap(
        self,
        source: bytes | memoryview | BinaryIO,
        write: Write,
        to_keys: Sequence[str | KeyRef] | Quorum,
        context: Mapping[str, str] | None,
        keys: Sequence[str | KeyRef] | None,
        verify_body: bool,
    ) -> int:
        if not verify_body:
            warnings.warn(
                "verify_body=False has no effect: rewrap re-encrypts the body, so every frame "
                "is authenticated",
                DeprecationWarning,
                stacklevel=3,
            )
        with self._operation("rewrap") as op:
            named = (
                to_keys
                if isinstance(to_keys, (str, KeyRef, Quorum))
                else [self._ref(k) for k in to_keys]
            )
            rewrap = Rewrap(self.provider, parse_recipients(named, self.limits), self.limits)
            reader = self._reader(source, context, keys, op)
            rewrap.prepare(reader)
            op.update(details=(*op.get("details", ()), *rewrap.details()))
            count = rewrap.copy(reader, write)
            op.update(byte_count=count)
            return count

    # -- end rewrap ----------------------------------------------------------------

    def inspect(self, message: bytes | bytearray | memoryview | BinaryIO) -> MessageInfo:
        """Describe a message from its header, without any key."""
        return inspect_message(message, self.limits)

    # -- rotation and key-version lifecycle ------------------------------------------
    # Logic in aureus_core/rotation.py and the providers; these methods only compose it.

    @property
    def rotation_policy(self) -> RotationPolicy:
        """The default rotation policy: ``[rotation]`` of the config, else 90 / 365 days."""
        return self.config.rotation

    def key_status(
        self, policy: RotationPolicy | None = None, now: datetime | None = None
    ) -> list[tuple[KeyMetadata, RotationStatus]]:
        """Every key this stack can see, by URI, with its status under ``policy`` at ``now``.

        ``policy`` defaults to :attr:`rotation_policy`, ``now`` to the current time.
        """
        with self._operation("key_status") as op:
            statuses = rotation_status(
                self, policy if policy is not None else self.rotation_policy, now
            )
            due = sum(1 for _, status in statuses if status.should_rotate)
            op.update(details=(("count", str(len(statuses))), ("due", str(due))))
            return statuses

    def enforce_rotation(
        self,
        policy: RotationPolicy | None = None,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> list[EnforcementAction]:
        """Rotate every key that is due (and retire old versions if the policy says so).

        Returns one action per change made, skipped or failed; with
        ``dry_run=True`` the same actions are reported and nothing changes.
        Each rotation and minimum-version change is audited on its own.
        """
        with self._operation("enforce_rotation") as op:
            actions = enforce(self, policy, dry_run=dry_run, now=now)
            details = [("dry_run", str(dry_run).lower())]
            details += [(kind, str(n)) for kind, n in sorted(summarize(actions).items())]
            op.update(details=tuple(details))
            return actions

    def set_version_state(self, key: str | KeyRef, state: KeyState | str) -> KeyMetadata:
        """Enable or disable the version ``key`` pins (``URI?version=N``)."""
        ref = self._ref(key)
        try:
            wanted = KeyState(state)
        except ValueError:
            raise ConfigError(f"unknown key state {state!r}; use enabled or disabled") from None
        with self._operation("set_version_state", ref) as op:
            op.update(details=(("state", wanted.value),))
            target = self._provider_for(ref, Capability.LIFECYCLE, "set_version_state")
            return self._changed(ref, target.set_version_state(ref, wanted))

    def set_min_decryption_version(self, key: str | KeyRef, version: str) -> KeyMetadata:
        """Refuse unwrap and verify with versions of ``key`` older than ``version``."""
        ref = self._ref(key)
        with self._operation("set_min_decryption_version", ref) as op:
            op.update(details=(("min_decryption_version", str(version)),))
            target = self._provider_for(
                ref, Capability.MIN_DECRYPTION_VERSION, "set_min_decryption_version"
            )
            return self._changed(ref, target.set_min_decryption_version(ref, str(version)))

    def destroy_version(self, key: str | KeyRef, *, confirm: bool = False) -> KeyMetadata:
        """Destroy the material of the version ``key`` pins, for good; needs ``confirm=True``."""
        ref = self._ref(key)
        with self._operation("destroy_version", ref) as op:
            op.update(details=(("confirm", str(confirm).lower()),))
            target = self._provider_for(ref, Capability.DESTROY_VERSION, "destroy_version")
            return self._changed(ref, target.destroy_version(ref, confirm=confirm))

    # -- end rotation and lifecycle ----------------------------------------------------

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Close the providers, sinks and data-key cache this stack created."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
            for scheme in self._owned:
                self._providers[scheme].close()
            if self._owns_cache and self._cache is not None:
                self._cache.close()  # built from [cache] here: its data keys go with the stack
            self._audit.close()

    def aio(self, *, workers: int | None = None) -> AsyncKeyStack:
        """An :class:`~aureus_core.aio.AsyncKeyStack` sharing this stack (still yours to close)."""
        from .aio import DEFAULT_WORKERS, AsyncKeyStack

        return AsyncKeyStack(self, workers=workers or DEFAULT_WORKERS)

    def __enter__(self) -> KeyStack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        schemes = ", ".join(sorted(self._providers)) or "none yet"
        return f"<KeyStack source={self.config.source!r} providers=[{schemes}]>"

    # -- the seed system's JSON envelope; logic in envelope/seed.py --

    def decrypt_seed(self, data: bytes, *, context: Mapping[str, str] | None = None) -> bytes:
        """Decrypt a seed JSON envelope (data key under AWS KMS, passed ``context``).

        The envelope's key must be allowed as in :meth:`decrypt` without
        ``keys``.  A malformed envelope is a :class:`ConfigError`; any
        decryption failure a :class:`DecryptionError`.
        """
        from .envelope.seed import SeedEnvelope, decrypt_seed_envelope

        with self._operation("decrypt_seed") as op:
            envelope = SeedEnvelope.parse(data)
            ref = envelope.key
            op.update(provider=ref.scheme, key_uri=ref.uri)
            op.update(self._audit.context_fields(EncryptionContext.coerce(context)))
            allowed = KeyFilter(patterns=self.config.decrypt_allow, named=self.config.named_keys)
            plaintext = decrypt_seed_envelope(self.provider, envelope, context, allowed=allowed)
            try:
                op.update(byte_count=len(plaintext))
                return bytes(plaintext)
            finally:
                plaintext[:] = bytes(len(plaintext))

    def migrate_seed(
        self,
        data: bytes,
        *,
        context: Mapping[str, str] | None = None,
        keys: Sequence[str | KeyRef] | None = None,
        signed: bool = False,
    ) -> bytes:
        """Re-encrypt a seed JSON envelope as a current message, ``context`` bound to it.

        ``keys`` defaults to ``[stack] wrapping_keys``; both steps are audited
        (``decrypt_seed``, then ``encrypt``).
        """
        plaintext = self.decrypt_seed(data, context=context)
        return self.encrypt(plaintext, context=context, keys=keys, signed=signed)


__all__ = ["KeyStack"]
