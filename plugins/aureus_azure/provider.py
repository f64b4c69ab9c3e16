"""The ``azure-kv`` key provider: Azure Key Vault and Managed HSM through ``azure-keyvault-keys``.

Wrapping uses the service's ``wrapKey``/``unwrapKey``: RSA-OAEP-256 for RSA
keys created with ``purpose=wrap``, A256KW for Managed HSM ``oct-HSM`` keys
(Aureus ``aes-256``).  Cryptographic requests go through
``KeyClient.send_request`` on the client's own pipeline (challenge auth,
retries, TLS), never through ``CryptographyClient``, whose symmetric wrap
runs locally with a random key that no other client can unwrap.

Key Vault's wrap takes no additional authenticated data, so the encryption
context is *not* bound into the wrapped key: it is protected by the
authentication of the message header that carries both (see docs/azure.md).

Signing sends the digest to the service (ES256, ES384, PS256, RS256); ECDSA
signatures come back as ``r || s`` and are returned as DER.  Verification is
local, with the public key from the version's JWK, cached for
``public_key_ttl`` seconds.

Native async: ``awrap``, ``aunwrap``, ``asign``, ``averify`` and
``apublic_key`` send the same requests through
``azure.keyvault.keys.aio.KeyClient.send_request`` (azure-core's aiohttp
transport, same retry and timeout options, one client per event loop and
vault); :class:`~aureus_core.aio.AsyncKeyStack` awaits them.  Each
operation is written once, as a generator of requests, driven by either client.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

import attrs
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import AzureError
from azure.core.rest import HttpRequest
from azure.keyvault.keys import KeyClient
from cryptography.hazmat.primitives.asymmetric import ec, rsa

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
    Throttled,
    UnsupportedOperation,
)
from aureus_core.interfaces import Capability, KeyProviderBase
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyMetadata, KeySpec, KeyState, KeyType, KeyVersion
from aureus_core.rotation import RotationPolicy
from aureus_core.signature import Signature
from aureus_core.ttl import TtlCache

from . import rotation_policy, signing
from .naming import PROVIDER_ID, SCHEME, AzureKey, check_host, check_name, parse, parse_kid
from .service_errors import from_exception, from_status

DESCRIPTION_TAG = "aureus-description"
ALGORITHM_TAG = "aureus-signing-algorithm"
PURPOSE_TAG = "aureus-purpose"
KEY_OPTIONS = ("purpose", "algorithm", "hsm")
"""Options a :class:`KeySpec` may give: ``purpose`` (sign|wrap, RSA keys),
``algorithm`` (PS256|RS256, RSA signing keys), ``hsm`` (true: RSA-HSM/EC-HSM in a vault)."""

_RSA_SIZES = {2048: KeyType.RSA_2048, 3072: KeyType.RSA_3072, 4096: KeyType.RSA_4096}
_EC_CURVES = {"P-256": KeyType.ECDSA_P256, "P-384": KeyType.ECDSA_P384}
_CURVE_NAMES = {"secp256r1": KeyType.ECDSA_P256, "secp384r1": KeyType.ECDSA_P384}
_WRAP_OPS = ["wrapKey", "unwrapKey"]
_SIGN_OPS = ["sign", "verify"]
BASE_KEY_TYPES = frozenset({*_RSA_SIZES.values(), *_EC_CURVES.values()})


@attrs.frozen(kw_only=True)
class _KeyInfo:
    """One version of a key, as Key Vault describes it (no private material)."""

    key: AzureKey
    """Pinned to this version."""
    kty: str
    key_ops: frozenset[str]
    enabled: bool
    created_at: datetime
    public: signing.PublicKey | None = attrs.field(repr=False)
    tags: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def key_type(self) -> KeyType:
        if self.kty.startswith("oct"):
            return KeyType.AES_256
        public = self.public
        if isinstance(public, rsa.RSAPublicKey) and public.key_size in _RSA_SIZES:
            return _RSA_SIZES[public.key_size]
        if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name in _CURVE_NAMES:
            return _CURVE_NAMES[public.curve.name]
        raise ConfigError(f"{self.key} is a {self.kty} key of a kind Aureus does not support")

    @property
    def wrap_algorithm(self) -> str | None:
        if "wrapKey" not in self.key_ops and "unwrapKey" not in self.key_ops:
            return None
        if self.kty.startswith("oct"):
            return "A256KW"
        if self.kty.startswith("RSA"):
            return "RSA-OAEP-256"
        return None


R = TypeVar("R")


@attrs.frozen
class _Http:
    """One Key Vault request an operation needs: what ``_request`` takes."""

    key: AzureKey
    method: str
    path: str
    what: str
    body: Any = None


_Steps = Generator[_Http, Any, R]
"""An operation as a generator: it yields the requests it needs and receives their answers."""


class _AsyncCredential:
    """The provider's (blocking) credential, for the async client: tokens fetched in a thread."""

    def __init__(self, credential: TokenCredential) -> None:
        self._credential = credential

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """A token from the wrapped credential (its own cache answers at once)."""
        return await asyncio.to_thread(self._credential.get_token, *scopes, **kwargs)

    async def close(self) -> None:
        """The wrapped credential belongs to the provider; nothing to close here."""

    async def __aenter__(self) -> _AsyncCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


def _aiohttp_transport(options: dict[str, Any]) -> Any:
    """azure-core's aiohttp transport with one TLS context for all its connections.

    Given a CA file, azure-core builds a new SSL context for every request, and
    aiohttp then opens a new connection (a TLS handshake) for each; one context
    on the connector lets connections be reused, as the blocking client does.
    Takes the connection options out of ``options``.
    """
    import ssl

    import aiohttp
    from azure.core.pipeline.transport import AioHttpTransport

    verify = options.pop("connection_verify")
    context: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=verify) if isinstance(verify, str) else bool(verify)
    )
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))
    return AioHttpTransport(
        session=session,
        session_owner=True,
        connection_timeout=options.pop("connection_timeout"),
        read_timeout=options.pop("read_timeout"),
    )


@attrs.frozen(kw_only=True)
class VaultDiscovery:
    """Which vaults a decrypt without ``keys=`` may use keys of, besides the configured keys.

    ``vaults`` (``None``: the provider's default vault, if set), or with
    ``any_vault`` every vault a message names.
    """

    vaults: tuple[str, ...] | None = None
    any_vault: bool = False

    @classmethod
    def from_options(cls, value: Any) -> VaultDiscovery:
        """Parse ``discovery = {vaults = [...]}``, ``true`` / ``"*"`` or ``false``."""
        if value is True or value == "*":
            return cls(any_vault=True)
        if value is False:
            return cls(vaults=())
        if not isinstance(value, Mapping) or set(value) != {"vaults"}:
            raise ConfigError(
                f"the {SCHEME} option discovery must be a table {{vaults = [...]}}, "
                'true / "*" for any vault, or false for configured keys only'
            )
        vaults = value["vaults"]
        if not isinstance(vaults, (list, tuple)) or not vaults:
            raise ConfigError(f"{SCHEME} discovery.vaults must be a non-empty list of vault hosts")
        return cls(vaults=tuple(check_host(v) for v in vaults))

    def allows(self, host: str, default_vault: str | None) -> bool:
        """Whether keys in the vault ``host`` are in scope."""
        if self.any_vault:
            return True
        vaults = self.vaults
        if vaults is None:
            vaults = (default_vault,) if default_vault else ()
        return host in vaults


class AzureKeyVaultProvider(KeyProviderBase):
    """Keys in Azure Key Vault vaults and Managed HSMs.

    ``vault`` is the default vault host (``NAME.vault.azure.net`` or
    ``NAME.managedhsm.azure.net``): new keys are created there, and bare key
    names refer to it.  ``endpoints`` maps vault hosts onto other base URLs
    (the test emulator's ``https://127.0.0.1:PORT``).  ``retry_total``,
    ``retry_backoff_factor``, ``retry_backoff_max``, ``connection_timeout`` and
    ``read_timeout`` bound azure-core's retries; when they are spent the
    operation raises :class:`ProviderUnavailable` (or :class:`Throttled`).
    ``discovery`` limits the vaults a decrypt without ``keys=`` contacts
    (default: ``vault``).  ``managed_hsm`` says whether ``vault`` is a Managed
    HSM when its host name cannot tell (an emulator at ``127.0.0.1:PORT``).
    """

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
        }
    )

    def __init__(
        self,
        *,
        credential: TokenCredential | None = None,
        vault: str | None = None,
        endpoints: Mapping[str, str] | None = None,
        connection_verify: str | bool = True,
        verify_challenge_resource: bool = True,
        retry_total: int = 3,
        retry_backoff_factor: float = 0.5,
        retry_backoff_max: float = 8.0,
        connection_timeout: float = 10.0,
        read_timeout: float = 30.0,
        public_key_ttl: float = 300.0,
        discovery: VaultDiscovery | None = None,
        managed_hsm: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._credential = credential
        self._vault = check_host(vault) if vault else None
        self._endpoints = {
            check_host(host): url.rstrip("/") for host, url in (endpoints or {}).items()
        }
        self._client_options: dict[str, Any] = {
            "connection_verify": connection_verify,
            "verify_challenge_resource": verify_challenge_resource,
            "retry_total": retry_total,
            "retry_backoff_factor": retry_backoff_factor,
            "retry_backoff_max": retry_backoff_max,
            "connection_timeout": connection_timeout,
            "read_timeout": read_timeout,
        }
        self._discovery = discovery or VaultDiscovery()
        self._lock = threading.Lock()
        self._clients: dict[str, KeyClient] = {}
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, Any]
        ] = weakref.WeakKeyDictionary()
        self._cache: TtlCache[_KeyInfo] = TtlCache(public_key_ttl, clock)
        if managed_hsm is None:
            managed_hsm = self._vault is not None and ".managedhsm." in self._vault
        self._managed_hsm = managed_hsm
        self.key_types: frozenset[KeyType] = BASE_KEY_TYPES | (
            {KeyType.AES_256} if managed_hsm else set()
        )

    def __repr__(self) -> str:
        return f"AzureKeyVaultProvider(vault={self._vault!r})"

    @property
    def vault(self) -> str | None:
        """The default vault host."""
        return self._vault

    # -- plumbing ----------------------------------------------------------------

    def _parse(self, key: KeyRef | str) -> AzureKey:
        return parse(key, self._vault)

    def _client(self, host: str) -> KeyClient:
        with self._lock:
            client = self._clients.get(host)
            if client is None:
                url = self._endpoints.get(host, f"https://{host}")
                client = KeyClient(url, self._credential_for_use(), **self._client_options)
                self._clients[host] = client
            return client

    def _credential_for_use(self) -> TokenCredential:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        return self._credential

    def _async_client(self, host: str) -> Any:
        """The running event loop's ``aio.KeyClient`` for ``host`` (sessions belong to a loop)."""
        from azure.keyvault.keys.aio import KeyClient as AsyncKeyClient

        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._async_clients.setdefault(loop, {})
            client = clients.get(host)
            if client is None:
                credential = self._credential_for_use()
                url = self._endpoints.get(host, f"https://{host}")
                options = dict(self._client_options)
                transport = _aiohttp_transport(options)
                client = AsyncKeyClient(
                    url, _AsyncCredential(credential), transport=transport, **options
                )
                clients[host] = client
            return client

    async def _arequest(
        self, key: AzureKey, method: str, path: str, what: str, body: Any = None
    ) -> dict[str, Any]:
        """:meth:`_request` through the async client: same retries, timeouts and errors."""
        client = self._async_client(key.host)
        request = HttpRequest(method, path, json=body)
        try:
            response = await client.send_request(request)
        except AzureError as error:
            raise from_exception(error, what) from None
        if response.status_code != 200:
            raise from_status(response.status_code, response, what)
        result: dict[str, Any] = response.json()
        return result

    def _drive(self, steps: _Steps[R]) -> R:
        """Run an operation's requests one by one with the blocking client."""
        answer: Any = None
        failure: Exception | None = None
        while True:
            try:
                http = steps.throw(failure) if failure is not None else steps.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            answer, failure = None, None
            try:
                answer = self._request(http.key, http.method, http.path, http.what, http.body)
            except Exception as error:  # handed to the operation, which maps or re-raises it
                failure = error

    async def _adrive(self, steps: _Steps[R]) -> R:
        """Run an operation's requests one by one with the async client (cancellable)."""
        answer: Any = None
        failure: Exception | None = None
        while True:
            try:
                http = steps.throw(failure) if failure is not None else steps.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            answer, failure = None, None
            try:
                answer = await self._arequest(
                    http.key, http.method, http.path, http.what, http.body
                )
            except Exception as error:
                failure = error
            except BaseException:
                steps.close()
                raise

    def _call(self, what: str, operation: Callable[[], Any]) -> Any:
        try:
            return operation()
        except AzureError as error:
            raise from_exception(error, what) from None

    def _request(
        self, key: AzureKey, method: str, path: str, what: str, body: Any = None
    ) -> dict[str, Any]:
        client = self._client(key.host)
        request = HttpRequest(method, path, json=body)
        response = self._call(what, lambda: client.send_request(request))
        if response.status_code != 200:
            raise from_status(response.status_code, response, what)
        result: dict[str, Any] = response.json()
        return result

    @staticmethod
    def _path(key: AzureKey, operation: str | None = None) -> str:
        path = f"/keys/{key.name}"
        if key.version:
            path += f"/{key.version}"
        return f"{path}/{operation}" if operation else path

    @staticmethod
    def _cache_name(key: AzureKey) -> str:
        # The unpinned entry (the current version) sits under the key's own name.
        return f"{key.host}/keys/{key.name}/{key.version or ''}"

    def _info(self, key: AzureKey) -> _KeyInfo:
        """The version ``key`` pins (else the current one), cached for ``public_key_ttl``."""
        return self._drive(self._info_steps(key))

    def _info_steps(self, key: AzureKey) -> _Steps[_KeyInfo]:
        cached = self._cache.get(self._cache_name(key))
        if cached is not None:
            return cached
        return (yield from self._fresh_info_steps(key))

    @staticmethod
    def _info_from_bundle(key: AzureKey, bundle: Mapping[str, Any]) -> _KeyInfo:
        jwk = dict(bundle.get("key") or {})
        named = parse_kid(str(jwk.get("kid", "")))
        version = named.version if named else key.version
        attributes = bundle.get("attributes") or {}
        return _KeyInfo(
            key=key.pinned(version),
            kty=str(jwk.get("kty", "")),
            key_ops=frozenset(str(op) for op in jwk.get("key_ops") or ()),
            enabled=bool(attributes.get("enabled", True)),
            created_at=datetime.fromtimestamp(int(attributes.get("created") or 0), timezone.utc),
            public=signing.public_key_from_jwk(jwk),
            tags=dict(bundle.get("tags") or {}),
        )

    def _forget(self, key: AzureKey) -> None:
        """Drop the cached versions (public keys, enabled states) of ``key``."""
        self._cache.forget(f"{key.host}/keys/{key.name}")

    @staticmethod
    def _version_of(answer: Mapping[str, Any], key: AzureKey) -> str:
        named = parse_kid(str(answer.get("kid", "")))
        version = named.version if named else key.version
        if not version:
            raise ProviderUnavailable(
                f"Key Vault answered for {key} without naming the key version", provider=SCHEME
            )
        return version

    @staticmethod
    def _disabled(info: _KeyInfo) -> KeyDisabled:
        pinned = info.key.ref.uri
        return KeyDisabled(
            f"{info.key.uri} version {info.key.version} is disabled; enable it with "
            f"`aureus keys enable '{pinned}'` if it is still needed",
            provider=SCHEME,
            code="KeyDisabled",
        )

    # -- key management ----------------------------------------------------------

    def _new_key(self, name: str) -> AzureKey:
        if "/" in name:
            key = self._parse(KeyRef(scheme=SCHEME, key_id=name))
            if key.version:
                raise ConfigError(f"{name}: a new key takes no version")
            return key
        if self._vault is None:
            raise ConfigError(
                "the azure-kv provider has no default vault to create keys in: set its "
                "'vault' option, or give the key as VAULT.vault.azure.net/keys/NAME"
            )
        return AzureKey(host=self._vault, name=check_name(name))

    def create_key(self, name: str, spec: KeySpec) -> KeyMetadata:
        """Create a key: RSA (sign, or wrap with ``purpose=wrap``), EC P-256/P-384, or oct-HSM.

        Key Vault would add a version to an existing key of the same name;
        Aureus refuses instead, with :class:`KeyExists`.
        """
        key = self._new_key(name)
        key_type = spec.key_type
        options = dict(spec.options)
        unknown = sorted(set(options) - set(KEY_OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown key option(s) for {SCHEME}: {', '.join(unknown)}; "
                f"it accepts {', '.join(KEY_OPTIONS)}"
            )
        in_hsm = key.managed_hsm or (self._managed_hsm and key.host == self._vault)
        if key_type is KeyType.AES_256 and not in_hsm:
            raise UnsupportedOperation(
                SCHEME,
                "create_key for aes-256 keys in a vault",
                "aes-256 (oct-HSM) keys exist only in a Managed HSM "
                "(NAME.managedhsm.azure.net); in a vault, wrap with an RSA key created with "
                "the option purpose=wrap",
            )
        if key_type not in BASE_KEY_TYPES | {KeyType.AES_256}:
            raise UnsupportedOperation(
                SCHEME,
                f"create_key for {key_type.value} keys",
                "use rsa-2048/3072/4096 or ecdsa-p256/p384 (or aes-256 in a Managed HSM)",
            )
        purpose = options.get("purpose", key_type.purpose.value)
        if (
            purpose not in ("sign", "wrap")
            or (purpose == "wrap" and key_type in _EC_CURVES.values())
            or (purpose == "sign" and key_type is KeyType.AES_256)
        ):
            raise ConfigError(
                f"purpose={purpose!r} does not fit a {key_type.value} key: RSA keys may sign or "
                "wrap, EC keys only sign, aes-256 keys only wrap"
            )
        hsm = in_hsm or str(options.get("hsm", "false")).lower() in ("true", "1", "yes")
        tags = dict(spec.labels)
        tags[PURPOSE_TAG] = purpose
        if spec.description:
            tags[DESCRIPTION_TAG] = spec.description[:256]
        operations = _WRAP_OPS if purpose == "wrap" else _SIGN_OPS
        if key_type in _RSA_SIZES.values() and purpose == "sign":
            algorithm = options.get("algorithm", signing.DEFAULT_RSA_ALGORITHM)
            if algorithm not in signing.RSA_ALGORITHMS:
                raise ConfigError(
                    f"algorithm={algorithm!r} is not supported; choose "
                    f"{' or '.join(signing.RSA_ALGORITHMS)}"
                )
            tags[ALGORITHM_TAG] = algorithm
        elif "algorithm" in options:
            raise ConfigError("the algorithm option applies only to RSA signing keys")
        if self._exists(key):
            raise KeyExists(f"key {key.uri} already exists", provider=SCHEME, code="KeyExists")
        client = self._client(key.host)
        what = f"create {key}"
        if key_type is KeyType.AES_256:
            self._call(
                what,
                lambda: client.create_oct_key(
                    key.name,
                    size=256,
                    hardware_protected=True,
                    key_operations=operations,
                    tags=tags,
                ),
            )
        elif key_type in _EC_CURVES.values():
            curve = next(c for c, t in _EC_CURVES.items() if t is key_type)
            self._call(
                what,
                lambda: client.create_ec_key(
                    key.name,
                    curve=curve,
                    hardware_protected=hsm,
                    key_operations=operations,
                    tags=tags,
                ),
            )
        else:
            size = next(s for s, t in _RSA_SIZES.items() if t is key_type)
            self._call(
                what,
                lambda: client.create_rsa_key(
                    key.name,
                    size=size,
                    hardware_protected=hsm,
                    key_operations=operations,
                    tags=tags,
                ),
            )
        return self.describe_key(key.ref)

    def _exists(self, key: AzureKey) -> bool:
        self._forget(key)
        try:
            self._info(key)
        except KeyNotFound:
            return False
        return True

    def describe_key(self, key: KeyRef) -> KeyMetadata:
        """The key's metadata: versions (oldest first), their states, the current version."""
        target = self._parse(key)
        if target.version:
            self._info(target)  # a pinned version must exist
        current = self._fresh_info(target.pinned(None))
        client = self._client(target.host)
        listed = self._call(
            f"list the versions of {target.uri}",
            lambda: list(client.list_properties_of_key_versions(target.name)),
        )
        versions = [
            KeyVersion(
                version=str(p.version),
                created_at=p.created_on or current.created_at,
                state=KeyState.ENABLED if p.enabled else KeyState.DISABLED,
            )
            for p in listed
        ]
        versions.sort(key=lambda v: v.created_at)
        assert current.key.version is not None
        if current.key.version not in [v.version for v in versions]:
            versions.append(
                KeyVersion(
                    version=current.key.version,
                    created_at=current.created_at,
                    state=KeyState.ENABLED if current.enabled else KeyState.DISABLED,
                )
            )
        return self._metadata(current, versions)

    def _metadata(self, current: _KeyInfo, versions: Sequence[KeyVersion]) -> KeyMetadata:
        tags = dict(current.tags)
        description = tags.pop(DESCRIPTION_TAG, "")
        purpose = tags.pop(PURPOSE_TAG, None) or ("wrap" if current.wrap_algorithm else "sign")
        extra = {"kty": current.kty, "vault": current.key.host, "purpose": purpose}
        algorithm = tags.pop(ALGORITHM_TAG, None)
        if current.public is not None and "sign" in current.key_ops:
            extra["signing-algorithm"] = signing.algorithm_for(current.public, algorithm).jws
        assert current.key.version is not None
        return KeyMetadata(
            ref=current.key.pinned(None).ref,
            key_type=current.key_type,
            state=KeyState.ENABLED if current.enabled else KeyState.DISABLED,
            created_at=min((v.created_at for v in versions), default=current.created_at),
            current_version=current.key.version,
            versions=tuple(versions),
            description=description,
            labels={k: v for k, v in tags.items() if not k.startswith("aureus-")},
            extra=extra,
        )

    def _fresh_info(self, key: AzureKey) -> _KeyInfo:
        return self._drive(self._fresh_info_steps(key))

    def _fresh_info_steps(self, key: AzureKey) -> _Steps[_KeyInfo]:
        bundle = yield _Http(key, "GET", self._path(key), f"describe {key}")
        info = self._info_from_bundle(key, bundle)
        self._cache.put(self._cache_name(key), info)
        return info

    def list_keys(self) -> Sequence[KeyMetadata]:
        """Every key in the default vault, by name."""
        if self._vault is None:
            raise ConfigError("the azure-kv provider needs its 'vault' option to list keys")
        host = self._vault
        client = self._client(host)
        names = self._call(
            f"list the keys of {host}",
            lambda: sorted(str(p.name) for p in client.list_properties_of_keys()),
        )
        listed = []
        for name in names:
            try:
                listed.append(self.describe_key(AzureKey(host=host, name=name).ref))
            except KeyNotFound:
                continue  # deleted meanwhile
        return listed

    def rotate_key(self, key: KeyRef) -> KeyMetadata:
        """Add a new current version (Key Vault ``rotate``); old versions keep working."""
        target = self._parse(key).pinned(None)
        client = self._client(target.host)
        self._call(f"rotate {target}", lambda: client.rotate_key(target.name))
        self._forget(target)
        return self.describe_key(target.ref)

    def set_rotation_policy(self, key: KeyRef, policy: RotationPolicy) -> RotationPolicy | None:
        """Make Key Vault rotate ``key`` on ``policy.interval`` and expire versions at ``max_age``.

        Returns the policy Key Vault stored, read back.  Key Vault requires
        an interval of at least 7 days and an expiry of at least 28 days.
        """
        target = self._parse(key).pinned(None)
        client = self._client(target.host)
        stored = self._call(
            f"set the rotation policy of {target}",
            lambda: client.update_key_rotation_policy(
                target.name, rotation_policy.to_key_vault(policy)
            ),
        )
        return rotation_policy.from_key_vault(stored)

    def get_rotation_policy(self, key: KeyRef) -> RotationPolicy | None:
        """The key's Key Vault rotation policy as an Aureus policy (``None``: no auto-rotation)."""
        target = self._parse(key).pinned(None)
        client = self._client(target.host)
        stored = self._call(
            f"read the rotation policy of {target}",
            lambda: client.get_key_rotation_policy(target.name),
        )
        return rotation_policy.from_key_vault(stored)

    def delete_key(self, key: KeyRef, *, confirm: bool = False) -> None:
        """Delete the key and every version; needs ``confirm=True``.

        With soft-delete (the default in Azure) the key can be recovered until
        it is purged; its name stays taken until then.
        """
        target = self._parse(key).pinned(None)
        if not confirm:
            raise ConfigError(
                f"not deleting {target.uri} without confirmation: every version goes, and "
                "nothing it wrapped can be unwrapped once it is purged; pass confirm=True"
            )
        client = self._client(target.host)
        self._call(f"delete {target}", lambda: client.begin_delete_key(target.name))
        self._forget(target)

    # -- lifecycle -------------------------------------------------------------

    def set_version_state(self, key: KeyRef, state: KeyState) -> KeyMetadata:
        """Enable or disable the version ``key`` pins; the current version stays enabled."""
        target = self._parse(key)
        if target.version is None:
            raise ConfigError(
                f"name the version to enable or disable: {target.uri}?version=V "
                "(`aureus keys describe` lists the versions)"
            )
        wanted = KeyState(state)
        if wanted not in (KeyState.ENABLED, KeyState.DISABLED):
            raise ConfigError(
                f"a key version can be set to enabled or disabled, not {wanted.value}"
            )
        self._info(target)
        current = self._fresh_info(target.pinned(None))
        if wanted is KeyState.DISABLED and current.key.version == target.version:
            raise ConfigError(
                f"{target} is the current version of {target.uri} and cannot be disabled: "
                f"rotate first (`aureus keys rotate {target.uri}`), then disable this version"
            )
        client = self._client(target.host)
        self._call(
            f"{'enable' if wanted is KeyState.ENABLED else 'disable'} {target}",
            lambda: client.update_key_properties(
                target.name, target.version, enabled=wanted is KeyState.ENABLED
            ),
        )
        self._forget(target)
        return self.describe_key(target.pinned(None).ref)

    def set_min_decryption_version(self, key: KeyRef, version: str) -> KeyMetadata:
        """Not offered by Key Vault: disable the old versions instead."""
        raise UnsupportedOperation(
            SCHEME,
            "set_min_decryption_version",
            "Key Vault has no minimum version; disable old versions with set_version_state",
        )

    def destroy_version(self, key: KeyRef, *, confirm: bool = False) -> KeyMetadata:
        """Not offered by Key Vault: a version cannot be destroyed alone."""
        raise UnsupportedOperation(
            SCHEME,
            "destroy_version",
            "Key Vault deletes whole keys only (delete_key with confirm=True); "
            "disable the version instead",
        )

    # -- signing -----------------------------------------------------------------

    def _signing_info(self, key: KeyRef, refusal: str) -> _Steps[_KeyInfo]:
        info = yield from self._info_steps(self._parse(key))
        if info.public is None or not info.key_ops & {"sign", "verify"}:
            raise ConfigError(
                f"{info.key.uri} is not a signing key ({info.kty}, operations "
                f"{', '.join(sorted(info.key_ops)) or 'none'}); {refusal}"
            )
        return info

    def public_key(self, key: KeyRef) -> bytes:
        """The SubjectPublicKeyInfo PEM of the current (or pinned) version."""
        return self._drive(self._public_key_steps(key))

    async def apublic_key(self, key: KeyRef) -> bytes:
        """:meth:`public_key` through the async client."""
        return await self._adrive(self._public_key_steps(key))

    def _public_key_steps(self, key: KeyRef) -> _Steps[bytes]:
        from cryptography.hazmat.primitives import serialization

        info = yield from self._signing_info(key, "it has no public key")
        assert info.public is not None
        return info.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, key: KeyRef, message: bytes) -> Signature:
        """Sign with the current (or pinned) version: the service signs the digest."""
        return self._drive(self._sign_steps(key, message))

    async def asign(self, key: KeyRef, message: bytes) -> Signature:
        """:meth:`sign` through the async client."""
        return await self._adrive(self._sign_steps(key, message))

    def _sign_steps(self, key: KeyRef, message: bytes) -> _Steps[Signature]:
        target = self._parse(key)
        info = yield from self._signing_info(key, "it cannot sign")
        assert info.public is not None
        if not info.enabled:
            raise self._disabled(info)
        algorithm = signing.algorithm_for(info.public, info.tags.get(ALGORITHM_TAG))
        digest = algorithm.digest(bytes(message))
        answer = yield _Http(
            target,
            "POST",
            self._path(target, "sign"),
            f"sign with {target}",
            {"alg": algorithm.jws, "value": signing.b64url_encode(digest)},
        )
        raw = signing.b64url_decode(str(answer["value"]))
        value = signing.to_der(raw) if algorithm.jws.startswith("ES") else raw
        return Signature(
            value=value,
            key_uri=target.uri,
            key_version=self._version_of(answer, target),
            algorithm=algorithm.aureus,
        )

    def verify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """Check a signature locally against the pinned (else current) version's public key."""
        return self._drive(self._verify_steps(key, message, signature))

    async def averify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """:meth:`verify`, the key fetched (when not cached) through the async client."""
        return await self._adrive(self._verify_steps(key, message, signature))

    def _verify_steps(self, key: KeyRef, message: bytes, signature: bytes) -> _Steps[bool]:
        info = yield from self._signing_info(key, "it cannot verify signatures")
        assert info.public is not None
        if not info.enabled:
            raise self._disabled(info)
        algorithm = signing.algorithm_for(info.public, info.tags.get(ALGORITHM_TAG))
        return signing.verify(info.public, algorithm, bytes(message), bytes(signature))

    # -- wrapping ----------------------------------------------------------------

    def _wrap_algorithm(self, info: _KeyInfo) -> str:
        algorithm = info.wrap_algorithm
        if algorithm is None:
            raise ConfigError(
                f"{info.key.uri} cannot wrap data keys ({info.kty}, operations "
                f"{', '.join(sorted(info.key_ops)) or 'none'}): use an aes-256 key in a Managed "
                "HSM, or an RSA key created with the option purpose=wrap"
            )
        return algorithm

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """Wrap a data key with the service's ``wrapKey`` (RSA-OAEP-256 or A256KW).

        ``context`` is not sent: Key Vault's wrap has no additional data.  The
        envelope binds it through the message header's authentication.
        """
        return self._drive(self._wrap_steps(key, data_key))

    async def awrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """:meth:`wrap` through the async client."""
        return await self._adrive(self._wrap_steps(key, data_key))

    def _wrap_steps(self, key: KeyRef, data_key: bytes) -> _Steps[WrappedKey]:
        target = self._parse(key)
        info = yield from self._info_steps(target)
        algorithm = self._wrap_algorithm(info)
        if not info.enabled:
            raise self._disabled(info)
        answer = yield _Http(
            target,
            "POST",
            self._path(target, "wrapkey"),
            f"wrap with {target}",
            {"alg": algorithm, "value": signing.b64url_encode(bytes(data_key))},
        )
        wrapped_by = target.pinned(self._version_of(answer, target))
        encrypted = EncryptedDataKey(
            provider_id=PROVIDER_ID,
            provider_info=wrapped_by.kid.encode(),
            ciphertext=signing.b64url_decode(str(answer["value"])),
        )
        return WrappedKey(key=wrapped_by.ref, encrypted=encrypted)

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """Unwrap with the version that wrapped; any failure is :class:`DecryptionError`.

        Except what is not the message's fault: credentials, an unreachable
        or throttling service, access denied, and a disabled version
        (:class:`KeyDisabled`, naming the key and the version).
        """
        return self._drive(self._unwrap_steps(key, encrypted))

    async def aunwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """:meth:`unwrap` through the async client."""
        return await self._adrive(self._unwrap_steps(key, encrypted))

    def _unwrap_steps(self, key: KeyRef, encrypted: EncryptedDataKey) -> _Steps[bytearray]:
        try:
            target = self._parse(key)
            owner = self._owner(encrypted)
            if (
                owner is None
                or (owner.host, owner.name) != (target.host, target.name)
                or target.version not in (None, owner.version)
            ):
                raise DecryptionError()
            info = yield from self._info_steps(owner)
            algorithm = self._wrap_algorithm(info)
            if not info.enabled:
                raise self._disabled(info)
            answer = yield _Http(
                owner,
                "POST",
                self._path(owner, "unwrapkey"),
                f"unwrap with {owner}",
                {"alg": algorithm, "value": signing.b64url_encode(encrypted.ciphertext)},
            )
            return bytearray(signing.b64url_decode(str(answer["value"])))
        except (CredentialError, ProviderUnavailable, Throttled, AccessDenied, KeyDisabled):
            raise
        except (AureusError, KeyError, ValueError):
            raise DecryptionError() from None

    @staticmethod
    def _owner(encrypted: EncryptedDataKey) -> AzureKey | None:
        if encrypted.provider_id != PROVIDER_ID:
            return None
        try:
            owner = parse_kid(encrypted.provider_info.decode("ascii"))
        except UnicodeDecodeError:
            return None
        return owner if owner is not None and owner.version else None

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        """The version-pinned key whose ``kid`` ``encrypted`` carries, if it is ours."""
        owner = self._owner(encrypted)
        return owner.ref if owner is not None else None

    def discovery_refusal(self, key: KeyRef, named: Sequence[KeyRef]) -> str | None:
        """Whether a decrypt without ``keys=`` may contact ``key``'s vault to unwrap.

        Allowed: a configured key (any version), or a key in a vault of the
        ``discovery`` option (by default the ``vault`` option's).
        """
        target = self._parse(key)
        for configured in named:
            with contextlib.suppress(ConfigError):
                if self._parse(configured).pinned(None) == target.pinned(None):
                    return None
        if self._discovery.allows(target.host, self._vault):
            return None
        return (
            f"vault {target.host} is outside the {SCHEME} discovery scope: name the key in "
            f"[stack] wrapping_keys or keys=, or add the vault to [providers.{SCHEME}] "
            f'discovery = {{ vaults = ["{target.host}"] }}'
        )

    async def agenerate_data_key(
        self, key: KeyRef, length: int, context: EncryptionContext
    ) -> tuple[bytearray, WrappedKey]:
        """Not offered: Key Vault has no data-key generation (the stack never calls this)."""
        raise UnsupportedOperation(SCHEME, "generate_data_key")

    async def aclose(self) -> None:
        """Close the running event loop's async clients; later calls open new ones."""
        with self._lock:
            clients = self._async_clients.pop(asyncio.get_running_loop(), {})
        for client in clients.values():
            await client.close()

    def close(self) -> None:
        """Close the HTTP clients; later operations open new ones."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        self._cache.clear()
        for client in clients:
            client.close()
