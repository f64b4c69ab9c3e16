"""An in-process Azure Key Vault / Managed HSM emulator for tests, over HTTPS on 127.0.0.1.

It speaks the keys REST API that :class:`~aureus_azure.AzureKeyVaultProvider`
and ``azure-keyvault-keys`` use (create, get, list, versions, update, rotate,
rotation policy, delete, wrap/unwrap, sign/verify), with real cryptography,
Key Vault's error bodies (``{"error": {"code": ..., "message": ...}}``) and
status codes, and the bearer-token challenge (a first 401 carrying
``WWW-Authenticate: Bearer authorization=..., resource=...``).

Its identifiers are the URL it serves: a key's ``kid`` is
``https://127.0.0.1:PORT/keys/NAME/VERSION`` and the vault host Aureus names
is ``127.0.0.1:PORT``, so an ID that Aureus reports can be handed to the
official ``CryptographyClient`` unchanged.  Clients must pass
``verify_challenge_resource=False`` (the challenge names the real service's
resource, which does not match 127.0.0.1) and trust
:attr:`KeyVaultEmulator.ca_file`.

Not emulated: RBAC and access policies (one bearer token is accepted),
soft-delete recovery and purge, backup/restore, key import and release,
symmetric encrypt/decrypt (AES-GCM/CBC), paging (every list fits in one page).
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs
from azure.core.credentials import AccessToken
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from .server import LocalServer, Request, Response

if TYPE_CHECKING:
    from aureus_core.testing.faults import FaultInjector

VAULT = "vault"
MANAGED_HSM = "managedhsm"
TENANT = "00000000-0000-0000-0000-0000000a0e0e"

_KEY_TYPES = {
    VAULT: {"RSA", "RSA-HSM", "EC", "EC-HSM"},
    MANAGED_HSM: {"RSA-HSM", "EC-HSM", "oct-HSM"},
}
_CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "256": hashes.SHA256(),
    "384": hashes.SHA384(),
    "512": hashes.SHA512(),
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_bytes(value: int, size: int | None = None) -> bytes:
    return value.to_bytes(size or (value.bit_length() + 7) // 8, "big")


class ServiceError(Exception):
    """An error answer: status, Key Vault error code, message, optional inner code."""

    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner

    def response(self) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return Response(status=self.status, body={"error": error})


@attrs.define(kw_only=True, eq=False)
class _Version:
    version: str
    kty: str
    key_ops: list[str]
    material: Any = attrs.field(repr=False)
    """An RSA or EC private key, or the bytes of an oct key."""
    size: int | None
    curve: str | None
    created: int
    updated: int
    enabled: bool = True
    tags: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Fault:
    """Answer ``status`` to the next ``count`` requests (``None``: until cleared)."""

    status: int = 503
    count: int | None = None
    code: str = "ServiceUnavailable"


class EmulatorCredential:
    """A ``TokenCredential`` that hands out the emulator's bearer token."""

    def __init__(self, token: str, *, lifetime: int = 3600) -> None:
        self._token = token
        self._lifetime = lifetime
        self.scopes: list[tuple[str, ...]] = []

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """The token, valid for ``lifetime`` seconds."""
        self.scopes.append(scopes)
        return AccessToken(self._token, int(time.time()) + self._lifetime)

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "EmulatorCredential(<token>)"


class KeyVaultEmulator:
    """A Key Vault (``kind="vault"``) or Managed HSM (``kind="managedhsm"``) on 127.0.0.1.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    :attr:`host` is the vault host of its identifiers (``127.0.0.1:PORT``,
    the address it serves); ``port`` 0 picks a free port.
    """

    def __init__(
        self,
        *,
        kind: str = VAULT,
        port: int = 0,
        token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if kind not in _KEY_TYPES:
            raise ValueError(f"kind must be {VAULT!r} or {MANAGED_HSM!r}, not {kind!r}")
        self.kind = kind
        self._token = token or secrets.token_urlsafe(24)
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, list[_Version]] = {}
        self._policies: dict[str, dict[str, Any]] = {}
        self._fault: Fault | None = None
        self._injector: FaultInjector | None = None
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request received, challenges and faults included."""
        self._server = LocalServer(self._handle, port=port)

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> KeyVaultEmulator:
        """Start serving; returns ``self``."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()

    def __enter__(self) -> KeyVaultEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""
        return self._server.url

    @property
    def host(self) -> str:
        """The vault host of the emulator's identifiers: ``127.0.0.1:PORT``."""
        return urlsplit(self.url).netloc

    @property
    def token(self) -> str:
        """The bearer token the emulator accepts (a test value, not a secret)."""
        return self._token

    @property
    def ca_file(self) -> str:
        """The certificate to trust (``connection_verify``)."""
        assert self._server.ca_file is not None, "the emulator is not running"
        return self._server.ca_file

    @property
    def resource(self) -> str:
        """The resource the challenge names (what the token's scope is for)."""
        return (
            "https://managedhsm.azure.net"
            if self.kind == MANAGED_HSM
            else "https://vault.azure.net"
        )

    def credential(self) -> EmulatorCredential:
        """A credential the emulator accepts."""
        return EmulatorCredential(self._token)

    def provider_options(self) -> dict[str, Any]:
        """Options for the ``azure-kv`` provider that point it at this emulator."""
        options: dict[str, Any] = {
            "vault": self.host,
            "connection_verify": self.ca_file,
            "verify_challenge_resource": False,
        }
        if self.kind == MANAGED_HSM:
            options["managed_hsm"] = True
        return options

    def environment(self) -> dict[str, str]:
        """Environment variables a client process needs to reach this emulator.

        ``AZURE_KEYVAULT_URL`` is the vault URL, ``AZURE_KEYVAULT_TOKEN`` the
        bearer token it accepts, and ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``
        make ``requests`` and ``ssl`` trust its certificate.
        """
        return {
            "AZURE_KEYVAULT_URL": self.url,
            "AZURE_KEYVAULT_TOKEN": self._token,
            "REQUESTS_CA_BUNDLE": self.ca_file,
            "SSL_CERT_FILE": self.ca_file,
        }

    def stack_config(
        self, *, wrapping_keys: tuple[str, ...] = (), **options: Any
    ) -> dict[str, Any]:
        """A ``KeyStack.from_dict`` configuration for this emulator.

        The token reaches the provider through a ``static`` credential source
        (its ``token`` value); ``options`` add to or override the provider's.
        """
        return {
            "stack": {"wrapping_keys": list(wrapping_keys)},
            "providers": {
                "azure-kv": {
                    "credentials": "azure-emulator",
                    "retry_total": 2,
                    "retry_backoff_factor": 0.01,
                    "retry_backoff_max": 0.05,
                    **self.provider_options(),
                    **options,
                }
            },
            "credentials": {
                "azure-emulator": {"source": "static", "values": {"token": self._token}}
            },
        }

    def provider(self, **overrides: Any) -> Any:
        """An ``azure-kv`` provider for this emulator, with retries bounded to milliseconds."""
        from aureus_azure import AzureKeyVaultProvider

        options: dict[str, Any] = {
            "credential": self.credential(),
            "retry_total": 2,
            "retry_backoff_factor": 0.01,
            "retry_backoff_max": 0.05,
            "connection_timeout": 2.0,
            "read_timeout": 5.0,
            **self.provider_options(),
        }
        options.update(overrides)
        return AzureKeyVaultProvider(**options)

    def key_client(self, credential: Any = None, **kwargs: Any) -> Any:
        """A plain ``azure.keyvault.keys.KeyClient`` for this emulator."""
        from azure.keyvault.keys import KeyClient

        return KeyClient(
            self.url,
            credential or self.credential(),
            verify_challenge_resource=False,
            connection_verify=self.ca_file,
            **kwargs,
        )

    # -- faults ----------------------------------------------------------------

    def inject_fault(self, status: int = 503, *, count: int | None = None) -> None:
        """Answer ``status`` to the next ``count`` requests (all of them if ``None``)."""
        code = {429: "Throttled", 500: "InternalServerError"}.get(status, "ServiceUnavailable")
        with self._lock:
            self._fault = Fault(status=status, count=count, code=code)

    def use_faults(self, injector: FaultInjector | None) -> None:
        """Consult ``injector`` on every request (``None``: stop): its latency, then its faults.

        Throttling is answered 429 ``Throttled`` with a ``Retry-After`` header
        (the plan's ``retry_after``, 0 by default), as Key Vault sends one and
        azure-core retries a throttled POST only when it does; server errors
        are 503 ``ServiceUnavailable``, and drops close the connection unanswered.
        """
        with self._lock:
            self._injector = injector

    def clear_faults(self) -> None:
        """Answer normally again."""
        with self._lock:
            self._fault = None

    # -- request handling ------------------------------------------------------

    def _take_fault(self) -> Fault | None:
        with self._lock:
            fault = self._fault
            if fault is not None and fault.count is not None:
                remaining = fault.count - 1
                self._fault = attrs.evolve(fault, count=remaining) if remaining > 0 else None
            return fault

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append((request.method, request.path))
        with self._lock:
            injector = self._injector
        if injector is not None:
            parts = [p for p in request.path.split("/") if p]
            decision = injector.decide(parts[-1] if parts else request.method)
            decision.wait()
            outcome = decision.outcome.value
            if outcome == "drop":
                return Response(status=0)  # the server closes the connection unanswered
            if outcome == "throttle":
                retry_after = injector.plan.retry_after
                return Response(
                    status=429,
                    body={
                        "error": {
                            "code": "Throttled",
                            "message": "Request was not processed because too many requests "
                            "were received. Reason: VaultRequestTypeLimitReached",
                        }
                    },
                    headers={"Retry-After": f"{retry_after:g}"},
                )
            if outcome == "error":
                return ServiceError(
                    503, "ServiceUnavailable", "The service is temporarily unavailable."
                ).response()
        fault = self._take_fault()
        if fault is not None:
            return ServiceError(
                fault.status, fault.code, "the emulator injected a fault"
            ).response()
        authorization = request.headers.get("authorization")
        if authorization != f"Bearer {self._token}":
            return self._unauthorized(authorization)
        try:
            return self._route(request)
        except ServiceError as error:
            return error.response()
        except (ValueError, KeyError, TypeError):
            return ServiceError(400, "BadParameter", "The request is malformed.").response()

    def _unauthorized(self, authorization: str | None) -> Response:
        """The real service's 401: the challenge, and a message that tells why."""
        challenge = (
            f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
            f'resource="{self.resource}"'
        )
        scheme, _, credential = (authorization or "").partition(" ")
        if scheme.lower() in ("bearer", "pop") and credential.strip():
            # A token was sent but it is not one the service can read (the
            # emulator's tokens are opaque, so any other value is unreadable).
            message = "[BearerReadAccessTokenFailed] Error validating token: 'S2S12005'."
        else:
            message = "AKV10000: Request is missing a Bearer or PoP token."
        return Response(
            status=401,
            body={"error": {"code": "Unauthorized", "message": message}},
            headers={"WWW-Authenticate": challenge},
        )

    def _route(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        method = request.method
        if parts == ["keys"] and method == "GET":
            return Response(status=200, body={"value": self._list_keys(), "nextLink": None})
        if len(parts) < 2 or parts[0] not in ("keys", "deletedkeys"):
            raise ServiceError(404, "NotFound", f"No route for {method} {request.path}.")
        name, rest = parts[1], parts[2:]
        if parts[0] == "deletedkeys":
            raise ServiceError(404, "KeyNotFound", f"Deleted Key not found: {name}")
        operations = ("wrapkey", "unwrapkey", "sign", "verify", "encrypt", "decrypt")
        if rest == ["create"] and method == "POST":
            return self._ok(self._create(name, request.json()))
        if rest == ["rotate"] and method == "POST":
            return self._ok(self._rotate(name))
        if rest == ["versions"] and method == "GET":
            return Response(status=200, body={"value": self._list_versions(name), "nextLink": None})
        if rest == ["rotationpolicy"]:
            return Response(status=200, body=self._rotation_policy(name, request))
        if not rest and method == "DELETE":
            return self._ok(self._delete(name))
        if len(rest) <= 1 and method in ("GET", "PATCH"):
            version = self._version(name, rest[0] if rest else None)
            if method == "PATCH":
                self._update(version, request.json())
            return self._ok(self._bundle(name, version))
        if rest and rest[-1] in operations and len(rest) <= 2 and method == "POST":
            version = self._version(name, rest[0] if len(rest) == 2 else None)
            return Response(status=200, body=self._operate(name, version, rest[-1], request.json()))
        raise ServiceError(405, "MethodNotAllowed", f"{method} {request.path} is not supported.")

    @staticmethod
    def _ok(body: Any) -> Response:
        return Response(status=200, body=body)

    # -- keys ------------------------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def _kid(self, name: str, version: str | None = None) -> str:
        return f"{self.url}/keys/{name}" + (f"/{version}" if version else "")

    def _versions(self, name: str) -> list[_Version]:
        versions = self._keys.get(name)
        if not versions:
            raise ServiceError(
                404, "KeyNotFound", f"A key with (name/id) {name} was not found in this key vault."
            )
        return versions

    def _version(self, name: str, version: str | None) -> _Version:
        with self._lock:
            versions = self._versions(name)
            if not version:
                return versions[-1]
            for candidate in versions:
                if candidate.version == version:
                    return candidate
        raise ServiceError(
            404,
            "KeyNotFound",
            f"A key with (name/id) {name}/{version} was not found in this key vault.",
        )

    def _generate(self, body: dict[str, Any], template: _Version | None = None) -> _Version:
        kty = template.kty if template else str(body.get("kty", ""))
        if kty not in _KEY_TYPES[self.kind]:
            allowed = ", ".join(sorted(_KEY_TYPES[self.kind]))
            raise ServiceError(
                400,
                "BadParameter",
                f"Key type {kty!r} is not supported here; use one of {allowed}.",
            )
        size: int | None = None
        curve: str | None = None
        material: Any
        if kty.startswith("RSA"):
            size = template.size if template else int(body.get("key_size") or 2048)
            if size not in (2048, 3072, 4096):
                raise ServiceError(400, "BadParameter", f"RSA key size {size} is not supported.")
            material = rsa.generate_private_key(public_exponent=65537, key_size=size)
            default_ops = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]
        elif kty.startswith("EC"):
            curve = template.curve if template else str(body.get("crv") or "P-256")
            if curve not in _CURVES:
                raise ServiceError(400, "BadParameter", f"Curve {curve!r} is not supported.")
            material = ec.generate_private_key(_CURVES[curve][0])
            default_ops = ["sign", "verify"]
        else:
            size = template.size if template else int(body.get("key_size") or 256)
            if size not in (128, 192, 256):
                raise ServiceError(400, "BadParameter", f"oct key size {size} is not supported.")
            material = secrets.token_bytes(size // 8)
            default_ops = ["wrapKey", "unwrapKey", "encrypt", "decrypt"]
        now = self._now()
        attributes = body.get("attributes") or {}
        return _Version(
            version=uuid.uuid4().hex,
            kty=kty,
            key_ops=list(template.key_ops if template else body.get("key_ops") or default_ops),
            material=material,
            size=size,
            curve=curve,
            created=now,
            updated=now,
            enabled=bool(attributes.get("enabled", True)),
            tags=dict(template.tags if template else body.get("tags") or {}),
        )

    def _create(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        version = self._generate(body)
        with self._lock:
            self._keys.setdefault(name, []).append(version)  # an existing name gets a new version
        return self._bundle(name, version)

    def _rotate(self, name: str) -> dict[str, Any]:
        current = self._version(name, None)
        version = self._generate({}, template=current)
        with self._lock:
            self._versions(name).append(version)
        return self._bundle(name, version)

    def _update(self, version: _Version, body: dict[str, Any]) -> None:
        with self._lock:
            attributes = body.get("attributes") or {}
            if "enabled" in attributes and attributes["enabled"] is not None:
                version.enabled = bool(attributes["enabled"])
            if body.get("tags") is not None:
                version.tags = dict(body["tags"])
            if body.get("key_ops") is not None:
                version.key_ops = list(body["key_ops"])
            version.updated = self._now()

    def _delete(self, name: str) -> dict[str, Any]:
        with self._lock:
            versions = self._versions(name)
            del self._keys[name]
            self._policies.pop(name, None)
        bundle = self._bundle(name, versions[-1])
        bundle["deletedDate"] = self._now()
        return bundle  # no recoveryId: soft-delete is not emulated

    def _attributes(self, version: _Version) -> dict[str, Any]:
        return {
            "enabled": version.enabled,
            "created": version.created,
            "updated": version.updated,
            "recoveryLevel": "Purgeable",
            "exportable": False,
        }

    def _jwk(self, name: str, version: _Version) -> dict[str, Any]:
        jwk: dict[str, Any] = {
            "kid": self._kid(name, version.version),
            "kty": version.kty,
            "key_ops": list(version.key_ops),
        }
        if isinstance(version.material, rsa.RSAPrivateKey):
            numbers = version.material.public_key().public_numbers()
            jwk.update(n=_b64(_int_bytes(numbers.n)), e=_b64(_int_bytes(numbers.e)))
        elif isinstance(version.material, ec.EllipticCurvePrivateKey):
            assert version.curve is not None
            size = _CURVES[version.curve][1]
            point = version.material.public_key().public_numbers()
            jwk.update(
                crv=version.curve,
                x=_b64(_int_bytes(point.x, size)),
                y=_b64(_int_bytes(point.y, size)),
            )
        return jwk

    def _bundle(self, name: str, version: _Version) -> dict[str, Any]:
        return {
            "key": self._jwk(name, version),
            "attributes": self._attributes(version),
            "tags": dict(version.tags),
        }

    def _list_versions(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            versions = list(self._versions(name))
        return [
            {"kid": self._kid(name, v.version), "attributes": self._attributes(v), "tags": v.tags}
            for v in versions
        ]

    def _list_keys(self) -> list[dict[str, Any]]:
        with self._lock:
            items = sorted((name, versions[-1]) for name, versions in self._keys.items())
        return [
            {"kid": self._kid(name), "attributes": self._attributes(v), "tags": v.tags}
            for name, v in items
        ]

    def _rotation_policy(self, name: str, request: Request) -> dict[str, Any]:
        self._version(name, None)
        policy_id = f"{self.url}/keys/{name}/rotationpolicy"
        with self._lock:
            if request.method == "PUT":
                body = request.json()
                now = self._now()
                attributes = dict(body.get("attributes") or {})
                attributes.update(created=now, updated=now)
                self._policies[name] = {
                    "id": policy_id,
                    "lifetimeActions": body.get("lifetimeActions") or [],
                    "attributes": attributes,
                }
            elif request.method != "GET":
                raise ServiceError(405, "MethodNotAllowed", "Use GET or PUT.")
            default = {
                "id": policy_id,
                "lifetimeActions": [
                    {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}
                ],
                "attributes": {},
            }
            return dict(self._policies.get(name, default))

    # -- cryptographic operations ----------------------------------------------

    def _operate(self, name: str, version: _Version, operation: str, body: dict[str, Any]) -> Any:
        op_name = {"wrapkey": "wrapKey", "unwrapkey": "unwrapKey"}.get(operation, operation)
        if not version.enabled:
            raise ServiceError(
                403,
                "Forbidden",
                f"Operation {op_name} is not allowed on a disabled key.",
                inner="KeyDisabled",
            )
        if op_name not in version.key_ops:
            raise ServiceError(
                403,
                "Forbidden",
                f"Operation {op_name} is not permitted on this key.",
                inner="KeyOperationForbidden",
            )
        algorithm = str(body["alg"])
        value = _unb64(str(body["value"]))
        kid = self._kid(name, version.version)
        if operation in ("encrypt", "decrypt") and not isinstance(
            version.material, rsa.RSAPrivateKey
        ):
            raise ServiceError(400, "BadParameter", "The emulator encrypts with RSA keys only.")
        if operation in ("wrapkey", "encrypt"):
            return {"kid": kid, "value": _b64(self._wrap(version, algorithm, value))}
        if operation in ("unwrapkey", "decrypt"):
            return {"kid": kid, "value": _b64(self._unwrap(version, algorithm, value))}
        if operation == "sign":
            return {"kid": kid, "value": _b64(self._sign(version, algorithm, value))}
        signature = _unb64(str(body["value"]))
        digest = _unb64(str(body["digest"]))
        return {"value": self._verify(version, algorithm, digest, signature)}

    @staticmethod
    def _oaep(algorithm: str) -> padding.AsymmetricPadding:
        if algorithm == "RSA-OAEP-256":
            return padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
        if algorithm == "RSA-OAEP":
            return padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)  # noqa: S303
        if algorithm == "RSA1_5":
            return padding.PKCS1v15()
        raise ServiceError(400, "BadParameter", f"Algorithm {algorithm!r} does not fit an RSA key.")

    def _wrap(self, version: _Version, algorithm: str, value: bytes) -> bytes:
        material = version.material
        if isinstance(material, rsa.RSAPrivateKey):
            return material.public_key().encrypt(value, self._oaep(algorithm))
        if isinstance(material, bytes) and algorithm in ("A128KW", "A192KW", "A256KW"):
            if int(algorithm[1:4]) != len(material) * 8:
                raise ServiceError(
                    400, "BadParameter", f"Algorithm {algorithm} needs another key size."
                )
            return aes_key_wrap(material, value)
        raise ServiceError(400, "BadParameter", f"Algorithm {algorithm!r} does not fit this key.")

    def _unwrap(self, version: _Version, algorithm: str, value: bytes) -> bytes:
        material = version.material
        try:
            if isinstance(material, rsa.RSAPrivateKey):
                return material.decrypt(value, self._oaep(algorithm))
            if isinstance(material, bytes) and algorithm in ("A128KW", "A192KW", "A256KW"):
                return aes_key_unwrap(material, value)
        except (ValueError, InvalidUnwrap):
            raise ServiceError(400, "BadParameter", "The parameter is incorrect.") from None
        raise ServiceError(400, "BadParameter", f"Algorithm {algorithm!r} does not fit this key.")

    @staticmethod
    def _signing(algorithm: str) -> tuple[str, hashes.HashAlgorithm]:
        family, bits = algorithm[:2], algorithm[2:]
        if family not in ("ES", "PS", "RS") or bits not in _HASHES:
            raise ServiceError(400, "BadParameter", f"Unknown signing algorithm {algorithm!r}.")
        return family, _HASHES[bits]

    def _check_digest(self, digest: bytes, chosen: hashes.HashAlgorithm) -> None:
        if len(digest) != chosen.digest_size:
            raise ServiceError(400, "BadParameter", "The digest length does not fit the algorithm.")

    def _sign(self, version: _Version, algorithm: str, digest: bytes) -> bytes:
        family, chosen = self._signing(algorithm)
        self._check_digest(digest, chosen)
        material = version.material
        prehashed = utils.Prehashed(chosen)
        if family == "ES" and isinstance(material, ec.EllipticCurvePrivateKey):
            assert version.curve is not None
            size = _CURVES[version.curve][1]
            r, s = utils.decode_dss_signature(material.sign(digest, ec.ECDSA(prehashed)))
            return _int_bytes(r, size) + _int_bytes(s, size)  # JWS form: raw r || s
        if family in ("PS", "RS") and isinstance(material, rsa.RSAPrivateKey):
            return material.sign(digest, self._rsa_padding(family, chosen), prehashed)
        raise ServiceError(400, "BadParameter", f"Algorithm {algorithm!r} does not fit this key.")

    @staticmethod
    def _rsa_padding(family: str, chosen: hashes.HashAlgorithm) -> padding.AsymmetricPadding:
        if family == "RS":
            return padding.PKCS1v15()
        return padding.PSS(mgf=padding.MGF1(chosen), salt_length=chosen.digest_size)

    def _verify(self, version: _Version, algorithm: str, digest: bytes, signature: bytes) -> bool:
        family, chosen = self._signing(algorithm)
        self._check_digest(digest, chosen)
        material = version.material
        prehashed = utils.Prehashed(chosen)
        try:
            if family == "ES" and isinstance(material, ec.EllipticCurvePrivateKey):
                half = len(signature) // 2
                der = utils.encode_dss_signature(
                    int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
                )
                material.public_key().verify(der, digest, ec.ECDSA(prehashed))
            elif family in ("PS", "RS") and isinstance(material, rsa.RSAPrivateKey):
                material.public_key().verify(
                    signature, digest, self._rsa_padding(family, chosen), prehashed
                )
            else:
                raise ServiceError(
                    400, "BadParameter", f"Algorithm {algorithm!r} does not fit this key."
                )
        except InvalidSignature:
            return False
        return True
