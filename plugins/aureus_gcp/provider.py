"""The ``gcp-kms`` key provider: Google Cloud KMS through the official ``google-cloud-kms`` client.

Wrapping is Cloud KMS ``Encrypt``/``Decrypt`` with the message's serialized
encryption context as additional authenticated data.  Encrypted data keys
carry the provider ID ``aureus-gcp-kms`` and, as provider info, the full
``cryptoKeyVersions`` name ``Encrypt`` reported, so a message names the
version that wrapped it and rotation leaves old messages decryptable.

Every request and answer is checked end to end with CRC32C, as Google
documents it: the request carries ``*_crc32c`` fields, and the answer's
``verified_*`` flags, checksums and resource name are checked here (the
client library does neither).  A mismatch raises :class:`ResponseCorrupted`
and nothing from that answer is used.

Versions: Aureus version ``"N"`` is ``cryptoKeyVersions/N``.  A wrapping
key's current version is its primary; a signing key (which Cloud KMS gives
no primary) uses its newest enabled version.

Native async: ``awrap``, ``aunwrap``, ``asign``, ``averify`` and
``apublic_key`` make the same requests and the same checks through the
official ``KeyManagementServiceAsyncClient`` (grpc.aio), one channel per
event loop; :class:`~aureus_core.aio.AsyncKeyStack` awaits them.  Each
operation is written once, as a generator of RPCs, and driven either by the
blocking client or by the async one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Generator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import attrs
import google.auth
import google.auth.credentials
import google_crc32c
import grpc
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import AsyncRetry, Retry
from google.auth.transport.grpc import AuthMetadataPlugin
from google.cloud import kms
from google.cloud.kms_v1.services.key_management_service.transports import (
    KeyManagementServiceGrpcAsyncIOTransport,
    KeyManagementServiceGrpcTransport,
)

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey, WrappedKey
from aureus_core.errors import (
    AccessDenied,
    AureusError,
    ConfigError,
    CredentialError,
    DecryptionError,
    KeyDisabled,
    KeyExists,
    KeyNotFound,
    ProviderUnavailable,
    SignatureError,
    Throttled,
    UnsupportedOperation,
)
from aureus_core.interfaces import Capability, KeyProviderBase
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyMetadata, KeyPurpose, KeySpec, KeyState, KeyType, KeyVersion
from aureus_core.rotation import DEFAULT_MAX_AGE, RotationPolicy
from aureus_core.signature import Signature
from aureus_core.ttl import TtlCache

from . import log_redaction, signing
from .credentials import CLOUD_PLATFORM, GoogleCredentials, OneShotRequest, refresh
from .errors import PLUGIN_METADATA_FAILURE, GcpConfigError, corrupted, kms_errors
from .naming import (
    PROVIDER_ID,
    SCHEME,
    GcpKey,
    KeyRingName,
    parse,
    parse_resource,
    parse_ring,
)
from .options import PROTECTION_LEVELS, GcpKmsOptions

KEY_OPTIONS = ("protection_level", "algorithm", "rotation_period_days")
"""Options a :class:`KeySpec` may give: ``protection_level`` (SOFTWARE|HSM),
``algorithm`` (RSA signing keys: pss|pkcs1), ``rotation_period_days`` (wrapping keys)."""
RESERVED_LABEL_PREFIX = "aureus-"
CREATE_LABEL = "aureus-create-request"
"""A label on each created key: tells our own key from another's after a retried create."""
MIN_ROTATION_PERIOD = timedelta(days=1)
"""Cloud KMS rotates at most daily."""
GENERATION_WAIT = 60.0
"""Seconds create_key and rotate_key wait for an asymmetric version to be generated."""
_CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
_RETRYABLE = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.DeadlineExceeded,
    api_exceptions.TooManyRequests,
)
_LABEL_KEY = "abcdefghijklmnopqrstuvwxyz"
_LABEL_CHARS = frozenset(_LABEL_KEY + "0123456789_-")

_STATES = {
    "ENABLED": KeyState.ENABLED,
    "DISABLED": KeyState.DISABLED,
    "DESTROYED": KeyState.DESTROYED,
    "DESTROY_SCHEDULED": KeyState.PENDING_DELETION,
    "PENDING_EXTERNAL_DESTRUCTION": KeyState.PENDING_DELETION,
    "PENDING_IMPORT": KeyState.PENDING_IMPORT,
}
_USAGE = {
    kms.CryptoKey.CryptoKeyPurpose.ENCRYPT_DECRYPT: KeyPurpose.WRAP,
    kms.CryptoKey.CryptoKeyPurpose.ASYMMETRIC_SIGN: KeyPurpose.SIGN,
}
"""What a key is for, from Cloud KMS's own purpose (not the key type)."""
_Version = kms.CryptoKeyVersion
R = TypeVar("R")
RetryT = TypeVar("RetryT", Retry, AsyncRetry)
_VersionState = kms.CryptoKeyVersion.CryptoKeyVersionState


def crc32c(data: bytes) -> int:
    """The CRC32C (Castagnoli) checksum Cloud KMS uses."""
    return int(google_crc32c.value(data))


def retryable(error: BaseException) -> bool:
    """Whether a failed call may be tried again: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED.

    A failed token refresh also surfaces as UNAVAILABLE ("Getting metadata
    from plugin failed"); that is a credential problem and is not retried.
    """
    if not isinstance(error, _RETRYABLE):
        return False
    return PLUGIN_METADATA_FAILURE not in str(error).lower()


def _version_id(version: _Version) -> str:
    return str(version.name).rsplit("/", 1)[-1]


def _version_number(version: _Version) -> int:
    try:
        return int(_version_id(version))
    except ValueError:
        return 0


def _state_name(version: _Version) -> str:
    return str(_VersionState(version.state).name)


def _utc(value: Any) -> datetime:
    """A plain aware ``datetime`` from a protobuf timestamp (proto-plus gives a subclass)."""
    if not isinstance(value, datetime):
        return datetime.fromtimestamp(0, timezone.utc)
    aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(aware.timestamp(), timezone.utc)


@functools.lru_cache(maxsize=64)
def _method_name(operation: str) -> str:
    """The client method of an RPC: ``AsymmetricSign`` -> ``asymmetric_sign``."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


class _Attempts:
    """The per-attempt timeout decorator the client applies inside its retry; counts attempts."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.count = [0]

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def attempt(*args: Any, **kwargs: Any) -> Any:
            self.count[0] += 1
            kwargs["timeout"] = self.timeout
            return func(*args, **kwargs)

        return attempt


@attrs.frozen
class _Rpc:
    """One Cloud KMS call an operation needs: what :meth:`GcpKmsProvider._call` takes."""

    operation: str
    subject: str
    request: Any
    options: dict[str, Any] = attrs.field(factory=dict)


_Steps = Generator[_Rpc, Any, R]
"""An operation as a generator: it yields the RPCs it needs and receives their answers."""


class KmsConnection:
    """The gRPC channel and the official client, made on first use; thread-safe.

    ``tls`` attaches the google-auth credentials (given, else Application
    Default Credentials) to a TLS channel; ``local`` to gRPC local
    credentials (a server on this machine); ``insecure`` sends none.  The
    client ignores credentials when given a transport, so the channel carries them.
    """

    def __init__(self, options: GcpKmsOptions, credentials: GoogleCredentials | None) -> None:
        self._options = options
        self._credentials = credentials
        self._client: kms.KeyManagementServiceClient | None = None
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, kms.KeyManagementServiceAsyncClient
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()

    def _google_credentials(self) -> GoogleCredentials:
        if self._credentials is None:
            credentials, _ = google.auth.default(
                scopes=[CLOUD_PLATFORM],
                quota_project_id=self._options.quota_project,
                request=OneShotRequest(),
            )
            self._credentials = credentials
        credentials = self._credentials
        quota = self._options.quota_project
        if (
            quota
            and isinstance(credentials, google.auth.credentials.CredentialsWithQuotaProject)
            and credentials.quota_project_id != quota
        ):
            credentials = credentials.with_quota_project(quota)  # type: ignore[no-untyped-call]
            self._credentials = credentials
        return credentials

    def _channel_credentials(self) -> grpc.ChannelCredentials:
        plugin = AuthMetadataPlugin(  # type: ignore[no-untyped-call]
            self._google_credentials(), OneShotRequest()
        )
        call_credentials = grpc.metadata_call_credentials(plugin)
        if self._options.channel == "local":
            base = grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP)
        else:
            base = grpc.ssl_channel_credentials()
        return grpc.composite_channel_credentials(base, call_credentials)

    def _channel(self) -> grpc.Channel:
        options = self._options
        if options.channel == "insecure":
            return grpc.insecure_channel(options.endpoint, options=_CHANNEL_OPTIONS)
        return grpc.secure_channel(
            options.endpoint, self._channel_credentials(), options=_CHANNEL_OPTIONS
        )

    def _async_channel(self) -> grpc.aio.Channel:
        options = self._options
        if options.channel == "insecure":
            return grpc.aio.insecure_channel(options.endpoint, options=_CHANNEL_OPTIONS)
        return grpc.aio.secure_channel(
            options.endpoint, self._channel_credentials(), options=_CHANNEL_OPTIONS
        )

    def async_client(self) -> kms.KeyManagementServiceAsyncClient:
        """The async client of the running event loop (grpc.aio channels belong to one loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            client = self._async_clients.get(loop)
            if client is None:
                transport = KeyManagementServiceGrpcAsyncIOTransport(channel=self._async_channel())
                client = kms.KeyManagementServiceAsyncClient(transport=transport)
                self._async_clients[loop] = client
            return client

    async def aauthorize(self) -> None:
        """:meth:`authorize` without blocking the loop (a refresh runs in a thread)."""
        if self._options.channel == "insecure" or self._credentials is None:
            return
        if not self._credentials.valid:
            await asyncio.to_thread(self.authorize)

    async def aclose(self) -> None:
        """Close the running loop's async channel; a later call opens a new one."""
        with self._lock:
            client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.transport.close()  # type: ignore[no-untyped-call]

    def client(self) -> kms.KeyManagementServiceClient:
        """The client (built, and Application Default Credentials found, on first use)."""
        with self._lock:
            if self._client is None:
                transport = KeyManagementServiceGrpcTransport(channel=self._channel())
                self._client = kms.KeyManagementServiceClient(transport=transport)
            return self._client

    def authorize(self) -> None:
        """Refresh the access token here, before a call, so a failure is a CredentialError."""
        if self._options.channel == "insecure" or self._credentials is None:
            return
        with self._refresh_lock:
            if not self._credentials.valid:
                refresh(self._credentials, "the gcp-kms provider")

    def close(self) -> None:
        """Close the channel; a later call opens a new one."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.transport.close()  # type: ignore[no-untyped-call]


class GcpKmsProvider(KeyProviderBase):
    """Keys in Google Cloud KMS, through one gRPC channel.  Thread-safe."""

    scheme = SCHEME
    capabilities = frozenset(
        {
            Capability.WRAP,
            Capability.SIGN,
            Capability.PUBLIC_KEY,
            Capability.CREATE,
            Capability.DESCRIBE,
            Capability.LIST,
            Capability.ROTATE,
            Capability.VERSIONS,
            Capability.LIFECYCLE,
            Capability.DESTROY_VERSION,
        }
    )
    key_types = signing.KEY_TYPES

    def __init__(
        self,
        options: GcpKmsOptions | None = None,
        *,
        credentials: GoogleCredentials | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Configure; nothing is contacted until the first call.

        ``credentials``: google-auth credentials (default: Application Default
        Credentials, looked up on the first call); ``clock``: seconds for the
        public-key cache (default ``time.monotonic``).
        """
        clock = clock or time.monotonic
        self.options = options or GcpKmsOptions()
        log_redaction.install()  # the client logs data keys in its DEBUG payloads
        self._connection = KmsConnection(self.options, credentials)
        self._retry = self._make_retry(Retry)
        self._async_retry = self._make_retry(AsyncRetry)
        self._public_keys: TtlCache[signing.PublicKey] = TtlCache(
            self.options.public_key_ttl, clock
        )
        self._signing_versions: TtlCache[str] = TtlCache(self.options.public_key_ttl, clock)
        self._rings: set[str] = set()
        self._rings_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"GcpKmsProvider(endpoint={self.options.endpoint!r}, "
            f"channel={self.options.channel!r}, key_ring={self._default_ring_path()!r})"
        )

    def _default_ring_path(self) -> str | None:
        ring = self.options.default_ring
        return ring.path if ring else None

    def client(self) -> kms.KeyManagementServiceClient:
        """The official client the provider uses (over its own channel)."""
        with kms_errors("connect", self.options.endpoint):
            return self._connection.client()

    # -- plumbing ------------------------------------------------------------------

    def _parse(self, key: KeyRef | str) -> GcpKey:
        return parse(key, self.options.default_ring)

    def _make_retry(self, kind: type[RetryT]) -> RetryT | None:
        """The configured retry policy, for the blocking (``Retry``) or async client."""
        if self.options.retry_deadline <= 0:
            return None
        return kind(
            predicate=retryable,
            initial=self.options.retry_initial,
            maximum=self.options.retry_maximum,
            multiplier=2.0,
            timeout=self.options.retry_deadline,
        )

    async def _acall(
        self,
        operation: str,
        subject: str,
        request: Any,
        *,
        retry: bool = True,
        unwrap: bool = False,
        state_refusal: bool = False,
        pages: bool = False,
    ) -> Any:
        """:meth:`_call` through the async client: same retries, timeouts and error mapping."""
        attempts = _Attempts(self.options.timeout)
        with kms_errors(
            operation,
            subject,
            unwrap=unwrap,
            attempts=attempts.count,
            state_refusal=state_refusal,
        ):
            client = self._connection.async_client()
            await self._connection.aauthorize()
            method = getattr(client, _method_name(operation))
            result = await method(
                request=request, retry=self._async_retry if retry else None, timeout=attempts
            )
            return [item async for item in result] if pages else result

    def _drive(self, steps: _Steps[R]) -> R:
        """Run an operation's RPCs one by one with the blocking client."""
        answer: Any = None
        failure: Exception | None = None
        while True:
            try:
                rpc = steps.throw(failure) if failure is not None else steps.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            answer, failure = None, None
            try:
                answer = self._call(rpc.operation, rpc.subject, rpc.request, **rpc.options)
            except Exception as error:  # handed to the operation, which maps or re-raises it
                failure = error

    async def _adrive(self, steps: _Steps[R]) -> R:
        """Run an operation's RPCs one by one with the async client (cancellable)."""
        answer: Any = None
        failure: Exception | None = None
        while True:
            try:
                rpc = steps.throw(failure) if failure is not None else steps.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            answer, failure = None, None
            try:
                answer = await self._acall(rpc.operation, rpc.subject, rpc.request, **rpc.options)
            except Exception as error:
                failure = error
            except BaseException:
                steps.close()
                raise

    def _call(
        self,
        operation: str,
        subject: str,
        request: Any,
        *,
        retry: bool = True,
        unwrap: bool = False,
        state_refusal: bool = False,
        attempts: _Attempts | None = None,
        pages: bool = False,
    ) -> Any:
        """Call the client method of ``operation`` (``Encrypt`` → ``encrypt``) with bounded retries.

        ``retry=False`` for calls that are not idempotent.  ``pages``
        consumes a list call's pager (later pages inside the same error
        mapping).  ``attempts`` receives the attempt count.
        """
        attempts = attempts or _Attempts(self.options.timeout)
        with kms_errors(
            operation,
            subject,
            unwrap=unwrap,
            attempts=attempts.count,
            state_refusal=state_refusal,
        ):
            client = self._connection.client()
            self._connection.authorize()
            method = getattr(client, _method_name(operation))
            result = method(request=request, retry=self._retry if retry else None, timeout=attempts)
            return list(result) if pages else result

    def _forget(self, key: GcpKey) -> None:
        self._public_keys.forget(key.path)
        self._signing_versions.forget(key.path)

    def _versions(self, key: GcpKey) -> list[_Version]:
        """Every version of ``key``, oldest first."""
        return self._drive(self._versions_steps(key))

    def _versions_steps(self, key: GcpKey) -> _Steps[list[_Version]]:
        found = yield _Rpc(
            "ListCryptoKeyVersions",
            key.uri,
            kms.ListCryptoKeyVersionsRequest(parent=key.path, page_size=1000),
            {"pages": True},
        )
        return sorted(found, key=_version_number)

    def _crypto_key(self, key: GcpKey) -> kms.CryptoKey:
        found: kms.CryptoKey = self._call(
            "GetCryptoKey", key.uri, kms.GetCryptoKeyRequest(name=key.path)
        )
        return found

    # -- key rings -----------------------------------------------------------------

    def _ensure_key_ring(self, ring: KeyRingName) -> None:
        """Create ``ring`` unless it is known to exist."""
        with self._rings_lock:
            if ring.path in self._rings:
                return
        try:
            self._call("GetKeyRing", ring.path, kms.GetKeyRingRequest(name=ring.path))
        except KeyNotFound:
            with contextlib.suppress(KeyExists):  # made meanwhile by another caller
                self._create_key_ring(ring)
        except AccessDenied:
            pass  # may create keys without reading rings: let CreateCryptoKey decide
        with self._rings_lock:
            self._rings.add(ring.path)

    def _create_key_ring(self, ring: KeyRingName) -> kms.KeyRing:
        attempts = _Attempts(self.options.timeout)
        request = kms.CreateKeyRingRequest(
            parent=ring.location_path, key_ring_id=ring.key_ring, key_ring=kms.KeyRing()
        )
        found: kms.KeyRing
        try:
            found = self._call("CreateKeyRing", ring.path, request, attempts=attempts)
        except KeyExists:
            if attempts.count[0] <= 1:
                raise
            # An earlier attempt made it (its answer was lost); a new ring holds nothing yet.
            found = self._call("GetKeyRing", ring.path, kms.GetKeyRingRequest(name=ring.path))
        return found

    def create_key_ring(self, ring: str | None = None) -> str:
        """Create a key ring (``projects/P/locations/L/keyRings/R``; default: the provider's).

        Returns its name; an existing ring is :class:`KeyExists`.  Key rings
        cannot be deleted in Cloud KMS.
        """
        target = parse_ring(ring) if ring else self.options.default_ring
        if target is None:
            raise ConfigError(
                "name the key ring (projects/P/locations/L/keyRings/R) or set the gcp-kms "
                "options project, location and key_ring"
            )
        created = self._create_key_ring(target)
        with self._rings_lock:
            self._rings.add(target.path)
        return str(created.name)

    def list_key_rings(self) -> list[str]:
        """The key rings in the provider's project and location."""
        parent = self._location_path("list key rings")
        rings = self._call(
            "ListKeyRings",
            parent,
            kms.ListKeyRingsRequest(parent=parent, page_size=1000),
            pages=True,
        )
        return sorted(str(r.name) for r in rings)

    def _location_path(self, what: str) -> str:
        if not (self.options.project and self.options.location):
            raise ConfigError(
                f"the gcp-kms provider needs its options project and location to {what}"
            )
        return f"projects/{self.options.project}/locations/{self.options.location}"

    # -- key management --------------------------------------------------------------

    def _new_key(self, name: str) -> GcpKey:
        key = self._parse(KeyRef(scheme=SCHEME, key_id=name))
        if key.version is not None:
            raise ConfigError(f"{name}: a new key takes no version")
        return key

    @staticmethod
    def _labels(spec: KeySpec) -> dict[str, str]:
        labels = dict(spec.labels)
        for name, value in labels.items():
            if (
                not name
                or len(name) > 63
                or name[0] not in _LABEL_KEY
                or not set(name) <= _LABEL_CHARS
                or len(value) > 63
                or not set(value) <= _LABEL_CHARS
            ):
                raise ConfigError(
                    f"invalid Cloud KMS label {name!r}: keys start with a lower-case letter, and "
                    "keys and values use up to 63 lower-case letters, digits, '_' and '-'"
                )
            if name.startswith(RESERVED_LABEL_PREFIX):
                raise ConfigError(f"labels beginning {RESERVED_LABEL_PREFIX!r} are Aureus's own")
        return labels

    def create_key(self, name: str, spec: KeySpec) -> KeyMetadata:
        """Create a key (and its key ring, if missing); an existing name is :class:`KeyExists`.

        ``name`` is a key ID in the default key ring or a full
        ``projects/…/cryptoKeys/K`` name.  Key options: ``protection_level``
        (``SOFTWARE``/``HSM``; default the provider option), ``algorithm``
        (RSA signing: ``pss`` default, or ``pkcs1``), ``rotation_period_days``
        (wrapping keys: automatic rotation).  Labels become Cloud KMS labels;
        Cloud KMS keys have no description, so ``spec.description`` is not kept.
        """
        key = self._new_key(name)
        key_type = spec.key_type
        if key_type not in self.key_types:
            raise UnsupportedOperation(
                SCHEME,
                f"create_key for {key_type.value} keys",
                f"choose one of {', '.join(sorted(t.value for t in self.key_types))}",
            )
        options = dict(spec.options)
        unknown = sorted(set(options) - set(KEY_OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown key option(s) for {SCHEME}: {', '.join(unknown)}; "
                f"it accepts {', '.join(KEY_OPTIONS)}"
            )
        protection = options.get("protection_level", self.options.protection_level).upper()
        if protection not in PROTECTION_LEVELS:
            raise ConfigError(
                f"the key option protection_level must be one of {', '.join(PROTECTION_LEVELS)}"
            )
        algorithm = signing.kms_algorithm(key_type, options.get("algorithm"))
        labels = self._labels(spec)
        nonce = uuid.uuid4().hex
        labels[CREATE_LABEL] = nonce
        symmetric = key_type is KeyType.AES_256
        crypto_key = kms.CryptoKey(
            purpose=kms.CryptoKey.CryptoKeyPurpose.ENCRYPT_DECRYPT
            if symmetric
            else kms.CryptoKey.CryptoKeyPurpose.ASYMMETRIC_SIGN,
            version_template=kms.CryptoKeyVersionTemplate(
                algorithm=getattr(_Version.CryptoKeyVersionAlgorithm, algorithm),
                protection_level=getattr(kms.ProtectionLevel, protection),
            ),
            labels=labels,
        )
        period = options.get("rotation_period_days")
        if period is not None:
            if not symmetric:
                raise ConfigError("Cloud KMS rotates only wrapping (aes-256) keys automatically")
            interval = _days(period, "rotation_period_days")
            crypto_key.rotation_period = interval
            crypto_key.next_rotation_time = datetime.now(timezone.utc) + interval
        self._ensure_key_ring(key.ring)
        attempts = _Attempts(self.options.timeout)
        request = kms.CreateCryptoKeyRequest(
            parent=key.ring.path, crypto_key_id=key.name, crypto_key=crypto_key
        )
        try:
            self._call("CreateCryptoKey", key.uri, request, attempts=attempts)
        except KeyExists:
            # A retry after a lost answer finds the key its first attempt made: ours if it
            # carries this request's label.
            if attempts.count[0] <= 1 or self._crypto_key(key).labels.get(CREATE_LABEL) != nonce:
                raise KeyExists(
                    f"Cloud KMS key {key.uri} already exists (keys cannot be deleted in Cloud "
                    "KMS): choose another name",
                    provider=SCHEME,
                    code="ALREADY_EXISTS",
                ) from None
        if not symmetric:
            self._await_generation(key.pinned("1"))
        return self.describe_key(key.ref)

    def _await_generation(self, version: GcpKey) -> None:
        """Wait until an asymmetric version has left PENDING_GENERATION (bounded)."""
        deadline = time.monotonic() + GENERATION_WAIT
        pause = self.options.retry_initial
        while True:
            found = self._call(
                "GetCryptoKeyVersion",
                str(version),
                kms.GetCryptoKeyVersionRequest(name=version.version_path),
            )
            if _state_name(found) != "PENDING_GENERATION" or time.monotonic() > deadline:
                return
            time.sleep(pause)
            pause = min(pause * 2, self.options.retry_maximum)

    def describe_key(self, key: KeyRef) -> KeyMetadata:
        """The key's metadata: versions (oldest first), their states, the current version."""
        target = self._parse(key)
        crypto_key = self._crypto_key(target)
        versions = self._versions(target)
        if target.version is not None and target.version not in map(_version_id, versions):
            raise KeyNotFound(
                f"Cloud KMS key {target.uri} has no version {target.version}",
                provider=SCHEME,
                code="NOT_FOUND",
            )
        return self._metadata(crypto_key, versions)

    @staticmethod
    def _current(crypto_key: kms.CryptoKey, versions: Sequence[_Version]) -> _Version | None:
        """The primary of a wrapping key; the newest enabled version of a signing key."""
        primary = str(crypto_key.primary.name) if crypto_key.primary else ""
        if primary:
            for version in versions:
                if version.name == primary:
                    return version
        enabled = [v for v in versions if _state_name(v) == "ENABLED"]
        if enabled:
            return enabled[-1]
        return versions[-1] if versions else None

    def _metadata(self, crypto_key: kms.CryptoKey, versions: Sequence[_Version]) -> KeyMetadata:
        key = parse_resource(str(crypto_key.name))
        template = crypto_key.version_template
        algorithm = _Version.CryptoKeyVersionAlgorithm(template.algorithm).name if template else ""
        if not algorithm and versions:
            algorithm = _Version.CryptoKeyVersionAlgorithm(versions[-1].algorithm).name
        key_type = signing.key_type_of(str(algorithm))
        if key is None or key_type is None:
            raise UnsupportedOperation(
                SCHEME,
                f"keys of algorithm {algorithm}",
                "Aureus uses GOOGLE_SYMMETRIC_ENCRYPTION wrapping keys and EC/RSA/Ed25519 "
                "signing keys",
            )
        listed = tuple(
            KeyVersion(
                version=_version_id(v),
                created_at=_utc(v.create_time),
                state=_STATES.get(_state_name(v), KeyState.UNAVAILABLE),
            )
            for v in versions
        )
        current = self._current(crypto_key, versions)
        extra = {
            "purpose": kms.CryptoKey.CryptoKeyPurpose(crypto_key.purpose).name,
            "algorithm": str(algorithm),
            "key_ring": key.ring.path,
        }
        if template:
            extra["protection_level"] = kms.ProtectionLevel(template.protection_level).name
        period = crypto_key.rotation_period
        if period:
            extra["rotation_period_seconds"] = str(int(period.total_seconds()))
        if crypto_key.next_rotation_time:
            extra["next_rotation_time"] = _utc(crypto_key.next_rotation_time).isoformat()
        if current is not None:
            extra["current_version_state"] = _state_name(current)
        labels = {
            k: v for k, v in crypto_key.labels.items() if not k.startswith(RESERVED_LABEL_PREFIX)
        }
        return KeyMetadata(
            ref=key.ref,
            key_type=key_type,
            state=_STATES.get(_state_name(current), KeyState.UNAVAILABLE)
            if current is not None
            else KeyState.UNAVAILABLE,
            created_at=_utc(crypto_key.create_time),
            current_version=_version_id(current) if current is not None else "",
            versions=listed,
            labels=labels,
            extra=extra,
            usage=_USAGE.get(crypto_key.purpose),
        )

    def list_keys(self) -> Sequence[KeyMetadata]:
        """Keys of a kind Aureus uses: in the default key ring, else in every ring there is."""
        ring = self.options.default_ring
        rings = [ring.path] if ring else self.list_key_rings()
        found: list[KeyMetadata] = []
        for path in rings:
            keys = self._call(
                "ListCryptoKeys",
                path,
                kms.ListCryptoKeysRequest(parent=path, page_size=1000),
                pages=True,
            )
            for crypto_key in keys:
                key = parse_resource(str(crypto_key.name))
                if key is None:
                    continue
                try:
                    found.append(self._metadata(crypto_key, self._versions(key)))
                except (UnsupportedOperation, KeyNotFound):
                    continue
        return found

    def rotate_key(self, key: KeyRef) -> KeyMetadata:
        """Add a version and make it current (the primary of a wrapping key).

        ``CreateCryptoKeyVersion`` is not retried (a retry could add two
        versions); old versions keep unwrapping and verifying.
        """
        target = self._parse(key).pinned(None)
        crypto_key = self._crypto_key(target)
        symmetric = crypto_key.purpose == kms.CryptoKey.CryptoKeyPurpose.ENCRYPT_DECRYPT
        created = self._call(
            "CreateCryptoKeyVersion",
            target.uri,
            kms.CreateCryptoKeyVersionRequest(parent=target.path, crypto_key_version=_Version()),
            retry=False,
        )
        version = target.pinned(_version_id(created))
        self._forget(target)
        if symmetric:
            self._call(
                "UpdateCryptoKeyPrimaryVersion",
                str(version),
                kms.UpdateCryptoKeyPrimaryVersionRequest(
                    name=target.path, crypto_key_version_id=version.version
                ),
            )
        else:
            self._await_generation(version)
        return self.describe_key(target.ref)

    def set_rotation_policy(
        self, key: KeyRef, policy: RotationPolicy | None, *, now: datetime | None = None
    ) -> RotationPolicy | None:
        """Make Cloud KMS rotate a wrapping key every ``policy.interval`` (``None``: stop).

        ``next_rotation_time`` is when the current version reaches the
        interval (its creation plus the interval), or a minute from ``now``
        if that has passed.  ``max_age`` and usage limits have no Cloud KMS
        counterpart (``aureus rotate`` enforces them).  Returns the policy read back.
        """
        target = self._parse(key).pinned(None)
        metadata = self.describe_key(target.ref)
        if metadata.key_type is not KeyType.AES_256:
            raise UnsupportedOperation(
                SCHEME,
                "set_rotation_policy for signing keys",
                "Cloud KMS rotates only symmetric keys automatically; rotate signing keys with "
                "rotate_key",
            )
        crypto_key = kms.CryptoKey(name=target.path)
        if policy is not None:
            if policy.interval < MIN_ROTATION_PERIOD:
                raise ConfigError(
                    "Cloud KMS rotates at most once a day: use an interval of 1 day or more"
                )
            moment = now or datetime.now(timezone.utc)
            due = metadata.current.created_at + policy.interval
            crypto_key.rotation_period = policy.interval
            crypto_key.next_rotation_time = max(due, moment + timedelta(minutes=1))
        request = kms.UpdateCryptoKeyRequest(
            crypto_key=crypto_key,
            update_mask={"paths": ["rotation_period", "next_rotation_time"]},
        )
        self._call("UpdateCryptoKey", target.uri, request)
        return self.get_rotation_policy(target.ref)

    def get_rotation_policy(self, key: KeyRef) -> RotationPolicy | None:
        """The key's automatic rotation as an Aureus policy (``None``: it does not rotate)."""
        crypto_key = self._crypto_key(self._parse(key).pinned(None))
        period = crypto_key.rotation_period
        if not period:
            return None
        return RotationPolicy(interval=period, max_age=max(DEFAULT_MAX_AGE, period))

    # -- lifecycle -------------------------------------------------------------------

    def _pinned_version(self, key: KeyRef, what: str) -> tuple[GcpKey, KeyMetadata]:
        target = self._parse(key)
        if target.version is None:
            raise ConfigError(
                f"name the version to {what}: {target.uri}?version=V "
                "(`aureus keys describe` lists the versions)"
            )
        metadata = self.describe_key(target.ref)  # KeyNotFound for an unknown version
        return target, metadata

    def set_version_state(self, key: KeyRef, state: KeyState) -> KeyMetadata:
        """Enable or disable the version ``key`` pins; the current version stays enabled."""
        wanted = KeyState(state)
        if wanted not in (KeyState.ENABLED, KeyState.DISABLED):
            raise ConfigError(
                f"a key version can be set to enabled or disabled, not {wanted.value}; "
                "use destroy_version(confirm=True) to destroy one"
            )
        target, metadata = self._pinned_version(key, "enable or disable")
        assert target.version is not None
        if wanted is KeyState.DISABLED and target.version == metadata.current_version:
            raise ConfigError(
                f"{target} is the current version of {target.uri} and cannot be disabled: "
                f"rotate first (`aureus keys rotate {target.uri}`), then disable this version"
            )
        now = metadata.version_info(target.version).state
        if now in (KeyState.PENDING_DELETION, KeyState.DESTROYED):
            raise KeyDisabled(
                f"{target.path} version {target.version} is {now.value}: "
                + (
                    "restore it first with restore_version"
                    if now is KeyState.PENDING_DELETION
                    else "its material is gone for good"
                ),
                provider=SCHEME,
                code=_state_code(now),
            )
        request = kms.UpdateCryptoKeyVersionRequest(
            crypto_key_version=_Version(
                name=target.version_path,
                state=_VersionState.ENABLED
                if wanted is KeyState.ENABLED
                else _VersionState.DISABLED,
            ),
            update_mask={"paths": ["state"]},
        )
        self._call("UpdateCryptoKeyVersion", str(target), request)
        self._forget(target)
        return self.describe_key(target.pinned(None).ref)

    def set_min_decryption_version(self, key: KeyRef, version: str) -> KeyMetadata:
        """Not offered by Cloud KMS: disable the old versions instead."""
        raise UnsupportedOperation(
            SCHEME,
            "set_min_decryption_version",
            "Cloud KMS has no minimum decryption version; disable old versions with "
            "set_version_state (Cloud KMS then refuses them)",
        )

    def destroy_version(self, key: KeyRef, *, confirm: bool = False) -> KeyMetadata:
        """Schedule the destruction of the version ``key`` pins; needs ``confirm=True``.

        Cloud KMS destroys it after the key's ``destroy_scheduled_duration``
        (30 days by default); until then it is ``pending-deletion`` and
        :meth:`restore_version` brings it back, disabled.  Data keys it
        wrapped cannot be unwrapped meanwhile.  The current version is refused.
        """
        if not confirm:
            raise ConfigError(
                f"destroying {key} makes everything it wrapped undecryptable once Cloud KMS "
                "carries it out: pass confirm=True"
            )
        target, metadata = self._pinned_version(key, "destroy")
        if target.version == metadata.current_version:
            raise ConfigError(
                f"{target} is the current version of {target.uri}: rotate first, then destroy it"
            )
        self._call(
            "DestroyCryptoKeyVersion",
            str(target),
            kms.DestroyCryptoKeyVersionRequest(name=target.version_path),
            retry=False,
        )
        self._forget(target)
        return self.describe_key(target.pinned(None).ref)

    def restore_version(self, key: KeyRef) -> KeyMetadata:
        """Cancel a scheduled destruction; the version comes back disabled."""
        target, _ = self._pinned_version(key, "restore")
        self._call(
            "RestoreCryptoKeyVersion",
            str(target),
            kms.RestoreCryptoKeyVersionRequest(name=target.version_path),
        )
        self._forget(target)
        return self.describe_key(target.pinned(None).ref)

    # -- wrapping --------------------------------------------------------------------

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """Cloud KMS ``Encrypt`` of ``data_key``, ``context`` as additional authenticated data."""
        return self._drive(self._wrap_steps(key, data_key, context))

    async def awrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """:meth:`wrap` through the async client."""
        return await self._adrive(self._wrap_steps(key, data_key, context))

    def _wrap_steps(
        self, key: KeyRef, data_key: bytes, context: EncryptionContext
    ) -> _Steps[WrappedKey]:
        target = self._parse(key)
        plaintext, aad = bytes(data_key), context.serialize()
        request = kms.EncryptRequest(
            name=target.resource,
            plaintext=plaintext,
            plaintext_crc32c=crc32c(plaintext),
        )
        if aad:
            request.additional_authenticated_data = aad
            request.additional_authenticated_data_crc32c = crc32c(aad)
        subject = str(target)
        response = yield _Rpc("Encrypt", subject, request, {"state_refusal": True})
        wrapped_by = parse_resource(str(response.name))
        if not response.verified_plaintext_crc32c or (
            aad and not response.verified_additional_authenticated_data_crc32c
        ):
            raise corrupted("Encrypt", subject, "Cloud KMS did not verify the request checksums")
        if (
            wrapped_by is None
            or wrapped_by.version is None
            or wrapped_by.pinned(None) != target.pinned(None)
            or target.version not in (None, wrapped_by.version)
        ):
            raise corrupted("Encrypt", subject, "the answer names another key version")
        ciphertext = bytes(response.ciphertext)
        if response.ciphertext_crc32c != crc32c(ciphertext):
            raise corrupted("Encrypt", subject, "the ciphertext does not match its checksum")
        encrypted = EncryptedDataKey(
            provider_id=PROVIDER_ID,
            provider_info=wrapped_by.version_path.encode("ascii"),
            ciphertext=ciphertext,
        )
        return WrappedKey(key=wrapped_by.ref, encrypted=encrypted)

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """Cloud KMS ``Decrypt``; any failure is :class:`DecryptionError`.

        Except what is not the message's fault: credentials, an unreachable,
        throttling or corrupting service, access denied, and a disabled or
        destroyed version (:class:`KeyDisabled`, naming the key and version).
        """
        return self._drive(self._unwrap_steps(key, encrypted, context))

    async def aunwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """:meth:`unwrap` through the async client."""
        return await self._adrive(self._unwrap_steps(key, encrypted, context))

    def _unwrap_steps(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> _Steps[bytearray]:
        try:
            target = self._parse(key)
            owner = self._owner(encrypted)
            if (
                owner is None
                or owner.pinned(None) != target.pinned(None)
                or target.version not in (None, owner.version)
            ):
                raise DecryptionError()
            aad = context.serialize()
            request = kms.DecryptRequest(
                name=owner.path,
                ciphertext=encrypted.ciphertext,
                ciphertext_crc32c=crc32c(encrypted.ciphertext),
            )
            if aad:
                request.additional_authenticated_data = aad
                request.additional_authenticated_data_crc32c = crc32c(aad)
            subject = f"{owner.path} version {owner.version}"
            response = yield _Rpc(
                "Decrypt", subject, request, {"unwrap": True, "state_refusal": True}
            )
            answer: bytes = response.plaintext  # checked before any copy is handed out
            if response.plaintext_crc32c != crc32c(answer):
                raise corrupted("Decrypt", subject, "the plaintext does not match its checksum")
            return bytearray(answer)
        except (CredentialError, ProviderUnavailable, Throttled, AccessDenied, KeyDisabled):
            raise
        except DecryptionError as error:  # keeps the service's code
            raise DecryptionError(code=error.code) from None
        except AureusError:
            raise DecryptionError() from None

    @staticmethod
    def _owner(encrypted: EncryptedDataKey) -> GcpKey | None:
        if encrypted.provider_id != PROVIDER_ID:
            return None
        try:
            owner = parse_resource(encrypted.provider_info.decode("ascii"))
        except UnicodeDecodeError:
            return None
        return owner if owner is not None and owner.version is not None else None

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        """The version-pinned key an ``aureus-gcp-kms`` encrypted data key names."""
        owner = self._owner(encrypted)
        return owner.ref if owner is not None else None

    def discovery_refusal(self, key: KeyRef, named: Sequence[KeyRef]) -> str | None:
        """Whether a decrypt without ``keys=`` may send ``Decrypt`` for ``key``.

        Allowed: a configured key (any version), or a key in the ``discovery``
        option's projects and locations (by default the ``project`` option's).
        """
        target = self._parse(key)
        for configured in named:
            with contextlib.suppress(ConfigError):
                if self._parse(configured).path == target.path:
                    return None
        ring = target.ring
        return self.options.discovery.refusal(ring.project, ring.location, self.options.project)

    # -- signing ---------------------------------------------------------------------

    def _signing_version(self, key: GcpKey) -> _Steps[str]:
        """The newest enabled version of a signing key (cached for ``public_key_ttl``)."""
        cached = self._signing_versions.get(key.path)
        if cached is not None:
            return cached
        versions = yield from self._versions_steps(key)
        if not versions:
            raise KeyNotFound(f"Cloud KMS key {key.uri} has no versions", provider=SCHEME)
        algorithm = _Version.CryptoKeyVersionAlgorithm(versions[-1].algorithm).name
        if str(algorithm) not in signing.ALGORITHMS:
            raise GcpConfigError(
                f"{key.uri} is a {algorithm} key, not a signing key: gcp-kms signs with "
                "EC P-256/P-384, RSA and Ed25519 keys"
            )
        enabled = [v for v in versions if _state_name(v) == "ENABLED"]
        if not enabled:
            raise KeyDisabled(
                f"{key.uri} has no enabled version to sign with; enable or add one",
                provider=SCHEME,
                code="FAILED_PRECONDITION",
            )
        version = _version_id(enabled[-1])
        self._signing_versions.put(key.path, version)
        return version

    def _public(self, key: GcpKey) -> _Steps[signing.PublicKey]:
        """The public key of the pinned (else current) version, checked and cached."""
        if key.version is None:
            key = key.pinned((yield from self._signing_version(key)))
        cached = self._public_keys.get(key.version_path)
        if cached is not None:
            return cached
        subject = f"{key.path} version {key.version}"
        try:
            response = yield _Rpc(
                "GetPublicKey",
                subject,
                kms.GetPublicKeyRequest(name=key.version_path),
                {"state_refusal": True},
            )
        except GcpConfigError as error:
            raise GcpConfigError(f"{key.uri} is not a signing key ({error})") from None
        pem = str(response.pem).encode("ascii")
        if response.name != key.version_path:
            raise corrupted("GetPublicKey", subject, "the answer names another key version")
        if response.pem_crc32c != crc32c(pem):
            raise corrupted("GetPublicKey", subject, "the public key does not match its checksum")
        name = str(_Version.CryptoKeyVersionAlgorithm(response.algorithm).name)
        algorithm = signing.ALGORITHMS.get(name)
        if algorithm is None:
            raise SignatureError(
                f"{key.uri} is a {name} key, not a signing key Aureus uses: gcp-kms signs with "
                "EC P-256/P-384, RSA and Ed25519 keys"
            )
        public = signing.PublicKey.from_pem(key.version_path, algorithm, pem)
        self._public_keys.put(key.version_path, public)
        return public

    def public_key(self, key: KeyRef) -> bytes:
        """The SubjectPublicKeyInfo PEM of the current (or pinned) version (``GetPublicKey``)."""
        return self._drive(self._public(self._parse(key))).pem

    async def apublic_key(self, key: KeyRef) -> bytes:
        """:meth:`public_key` through the async client."""
        return (await self._adrive(self._public(self._parse(key)))).pem

    def sign(self, key: KeyRef, message: bytes) -> Signature:
        """``AsymmetricSign``: of the digest (ECDSA, RSA), of the message itself (Ed25519)."""
        return self._drive(self._sign_steps(key, message))

    async def asign(self, key: KeyRef, message: bytes) -> Signature:
        """:meth:`sign` through the async client."""
        return await self._adrive(self._sign_steps(key, message))

    def _sign_steps(self, key: KeyRef, message: bytes) -> _Steps[Signature]:
        target = self._parse(key)
        cached = target.version is None and self._signing_versions.get(target.path) is not None
        try:
            return (yield from self._sign(target, bytes(message)))
        except (KeyDisabled, KeyNotFound):
            if not cached:
                raise
            self._forget(target)  # the cached current version went away: look again
            return (yield from self._sign(target, bytes(message)))

    def _sign(self, target: GcpKey, message: bytes) -> _Steps[Signature]:
        public = yield from self._public(target)
        version = target.pinned(public.version_name.rsplit("/", 1)[-1])
        algorithm = public.algorithm
        request = kms.AsymmetricSignRequest(name=version.version_path)
        if algorithm.hash_name is None:
            if len(message) > signing.ED25519_DATA_LIMIT:
                raise SignatureError(
                    f"Cloud KMS signs at most {signing.ED25519_DATA_LIMIT} bytes with Ed25519 "
                    f"keys; this message has {len(message)}"
                )
            request.data = message
            request.data_crc32c = crc32c(message)
        else:
            digest = algorithm.digest(message)
            request.digest = kms.Digest(**{algorithm.hash_name: digest})
            request.digest_crc32c = crc32c(digest)
        subject = f"{version.path} version {version.version}"
        response = yield _Rpc("AsymmetricSign", subject, request, {"state_refusal": True})
        verified = (
            response.verified_data_crc32c
            if algorithm.hash_name is None
            else response.verified_digest_crc32c
        )
        if not verified:
            raise corrupted(
                "AsymmetricSign", subject, "Cloud KMS did not verify the request checksum"
            )
        if response.name != version.version_path:
            raise corrupted("AsymmetricSign", subject, "the answer names another key version")
        value = bytes(response.signature)
        if response.signature_crc32c != crc32c(value):
            raise corrupted("AsymmetricSign", subject, "the signature does not match its checksum")
        return Signature(
            value=value,
            key_uri=version.uri,
            key_version=str(version.version),
            algorithm=algorithm.name,
        )

    def verify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """Check a signature locally with the pinned (else current) version's public key."""
        public = self._drive(self._public(self._parse(key)))
        return signing.verify_locally(public, bytes(message), bytes(signature))

    async def averify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """:meth:`verify`, the public key fetched (when not cached) through the async client."""
        public = await self._adrive(self._public(self._parse(key)))
        return signing.verify_locally(public, bytes(message), bytes(signature))

    async def agenerate_data_key(
        self, key: KeyRef, length: int, context: EncryptionContext
    ) -> tuple[bytearray, WrappedKey]:
        """Not offered: Cloud KMS has no GenerateDataKey (the stack never calls this)."""
        raise UnsupportedOperation(SCHEME, "generate_data_key")

    def close(self) -> None:
        """Close the channel and forget cached public keys; later calls reconnect."""
        self._connection.close()
        self._public_keys.clear()
        self._signing_versions.clear()

    async def aclose(self) -> None:
        """Close the running event loop's async channel; later calls reconnect."""
        await self._connection.aclose()


def _days(value: str, name: str) -> timedelta:
    try:
        days = float(value)
    except ValueError:
        raise ConfigError(f"the key option {name} must be a number of days") from None
    if not days >= 1 or days > 36500:
        raise ConfigError(f"the key option {name} must be from 1 to 36500 days")
    return timedelta(days=days)


def _state_code(state: KeyState) -> str:
    return "DESTROY_SCHEDULED" if state is KeyState.PENDING_DELETION else "DESTROYED"
