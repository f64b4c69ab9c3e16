"""An in-process Google Cloud KMS emulator for tests, speaking the real gRPC protocol on 127.0.0.1.

It serves ``google.cloud.kms.v1.KeyManagementService`` so the official
``google-cloud-kms`` client (and anything built on it) talks to it unchanged:
key rings, crypto keys and versions with Cloud KMS's life cycle (enable,
disable, scheduled destruction, restore, automatic rotation on the emulator's
clock), ``Encrypt``/``Decrypt`` (AES-256-GCM), ``AsymmetricSign``,
``AsymmetricDecrypt``, ``GetPublicKey``, ``MacSign``/``MacVerify`` and
``GenerateRandomBytes``, with real cryptography, request CRC32C checks, and
Cloud KMS's status codes and messages.  HSM keys are emulated in software.

Asymmetric versions start in ``PENDING_GENERATION`` and turn ``ENABLED``
after ``generation_delay`` seconds, as the service's do.  ``ListLocations``
and ``GetLocation`` name a fixed set of locations; ``GetIamPolicy``,
``SetIamPolicy`` and ``TestIamPermissions`` keep a policy per resource without
enforcing it; ``ListImportJobs`` answers an empty list.  The transport is plain
gRPC, gRPC local credentials, or TLS with a CA made at start.

Not emulated: IAM enforcement (every caller is allowed unless a policy hook
says no), import jobs beyond an empty list, EKM/external keys, raw encryption,
key encapsulation, post-quantum algorithms, key deletion, Autokey,
attestations, ``order_by``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import google_crc32c
import grpc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.cloud import kms_v1
from google.cloud.kms_v1.services.key_management_service.transports import (
    KeyManagementServiceGrpcTransport,
)
from google.cloud.kms_v1.types import resources, service
from google.cloud.location import locations_pb2  # type: ignore[import-untyped]
from google.iam.v1 import iam_policy_pb2, policy_pb2  # type: ignore[import-untyped]

from .server import (
    INSECURE,
    TLS,
    GrpcServer,
    RpcError,
    check_loopback,
    check_transport,
    client_channel,
)
from .tls import LoopbackCertificates

if TYPE_CHECKING:
    from aureus_core.testing.faults import FaultInjector

Purpose = resources.CryptoKey.CryptoKeyPurpose
Algorithm = resources.CryptoKeyVersion.CryptoKeyVersionAlgorithm
State = resources.CryptoKeyVersion.CryptoKeyVersionState
ProtectionLevel = resources.ProtectionLevel

Code = grpc.StatusCode
_T = TypeVar("_T")

_ID = re.compile(r"[a-zA-Z0-9_-]{1,63}")
_LOCATION = re.compile(r"projects/[^/]+/locations/[^/]+")
_KEY_RING = re.compile(r"(?P<parent>projects/[^/]+/locations/[^/]+)/keyRings/(?P<id>[^/]+)")
_KEY = re.compile(
    r"(?P<parent>projects/[^/]+/locations/[^/]+/keyRings/[^/]+)/cryptoKeys/(?P<id>[^/]+)"
)
_VERSION = re.compile(
    r"(?P<parent>projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+)"
    r"/cryptoKeyVersions/(?P<id>[^/]+)"
)
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")

_KIB = 1024
_SOFTWARE_LIMIT = 64 * _KIB
_HSM_LIMIT = 8 * _KIB
_DEFAULT_DESTROY_DURATION = timedelta(days=30)
_MIN_ROTATION, _MAX_ROTATION = timedelta(hours=24), timedelta(hours=876_000)
_MIN_DESTROY, _MAX_DESTROY = timedelta(hours=24), timedelta(days=120)
_MAX_PAGE_SIZE = 1000
_CIPHERTEXT_FORMAT = 0x01
_NONCE_SIZE = 12

# The IAM permission each RPC checks, for the policy hook's PERMISSION_DENIED message.
_PERMISSIONS = {
    "CreateKeyRing": "cloudkms.keyRings.create",
    "GetKeyRing": "cloudkms.keyRings.get",
    "ListKeyRings": "cloudkms.keyRings.list",
    "CreateCryptoKey": "cloudkms.cryptoKeys.create",
    "GetCryptoKey": "cloudkms.cryptoKeys.get",
    "ListCryptoKeys": "cloudkms.cryptoKeys.list",
    "UpdateCryptoKey": "cloudkms.cryptoKeys.update",
    "UpdateCryptoKeyPrimaryVersion": "cloudkms.cryptoKeys.update",
    "CreateCryptoKeyVersion": "cloudkms.cryptoKeyVersions.create",
    "GetCryptoKeyVersion": "cloudkms.cryptoKeyVersions.get",
    "ListCryptoKeyVersions": "cloudkms.cryptoKeyVersions.list",
    "UpdateCryptoKeyVersion": "cloudkms.cryptoKeyVersions.update",
    "DestroyCryptoKeyVersion": "cloudkms.cryptoKeyVersions.destroy",
    "RestoreCryptoKeyVersion": "cloudkms.cryptoKeyVersions.restore",
    "Encrypt": "cloudkms.cryptoKeyVersions.useToEncrypt",
    "Decrypt": "cloudkms.cryptoKeyVersions.useToDecrypt",
    "AsymmetricSign": "cloudkms.cryptoKeyVersions.useToSign",
    "AsymmetricDecrypt": "cloudkms.cryptoKeyVersions.useToDecrypt",
    "GetPublicKey": "cloudkms.cryptoKeyVersions.viewPublicKey",
    "MacSign": "cloudkms.cryptoKeyVersions.useToSign",
    "MacVerify": "cloudkms.cryptoKeyVersions.useToVerify",
    "GenerateRandomBytes": "cloudkms.locations.generateRandomBytes",
    "ListImportJobs": "cloudkms.importJobs.list",
    "ListLocations": "cloudkms.locations.list",
    "GetLocation": "cloudkms.locations.get",
    "GetIamPolicy": "cloudkms.cryptoKeys.getIamPolicy",
    "SetIamPolicy": "cloudkms.cryptoKeys.setIamPolicy",
    "TestIamPermissions": "cloudkms.cryptoKeys.get",
}

# The locations ListLocations names: a few multi-regions and regions, as the service does.
LOCATIONS = (
    ("global", "Global"),
    ("us", "United States"),
    ("europe", "Europe"),
    ("asia", "Asia"),
    ("us-central1", "Iowa"),
    ("us-east1", "South Carolina"),
    ("europe-west1", "Belgium"),
    ("asia-northeast1", "Tokyo"),
)
_PROJECT = re.compile(r"projects/(?P<project>[^/]+)")
_EMPTY_POLICY_ETAG = b"\x00\x20\x01"  # what the service answers for a resource with no bindings

_CHECKSUM_FIELDS = (
    "ciphertext_crc32c",
    "plaintext_crc32c",
    "signature_crc32c",
    "pem_crc32c",
    "mac_crc32c",
    "data_crc32c",
)
_VERIFIED_FIELDS = (
    "verified_plaintext_crc32c",
    "verified_additional_authenticated_data_crc32c",
    "verified_ciphertext_crc32c",
    "verified_digest_crc32c",
    "verified_data_crc32c",
    "verified_mac_crc32c",
)

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def _member(enum: Any, name: str) -> Any:
    """The member of a proto enum called ``name``."""
    try:
        return enum.__members__[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a {enum.__name__}") from None


@attrs.frozen(kw_only=True)
class _AlgorithmSpec:
    """What a version algorithm needs: purpose, key kind, size, hash, curve."""

    purpose: Any
    kind: str
    """``aes``, ``ec``, ``ed25519``, ``rsa-pss``, ``rsa-pkcs1``, ``rsa-oaep`` or ``hmac``."""
    size: int = 0
    """RSA modulus bits, AES or HMAC key bytes."""
    hash_name: str = ""
    curve: Callable[[], ec.EllipticCurve] | None = None
    hsm_only: bool = False


def _algorithms() -> dict[Any, _AlgorithmSpec]:
    sign, decrypt = Purpose.ASYMMETRIC_SIGN, Purpose.ASYMMETRIC_DECRYPT
    table: dict[Any, _AlgorithmSpec] = {
        Algorithm.GOOGLE_SYMMETRIC_ENCRYPTION: _AlgorithmSpec(
            purpose=Purpose.ENCRYPT_DECRYPT, kind="aes", size=32
        ),
        Algorithm.EC_SIGN_P256_SHA256: _AlgorithmSpec(
            purpose=sign, kind="ec", hash_name="sha256", curve=ec.SECP256R1
        ),
        Algorithm.EC_SIGN_P384_SHA384: _AlgorithmSpec(
            purpose=sign, kind="ec", hash_name="sha384", curve=ec.SECP384R1
        ),
        Algorithm.EC_SIGN_SECP256K1_SHA256: _AlgorithmSpec(
            purpose=sign, kind="ec", hash_name="sha256", curve=ec.SECP256K1, hsm_only=True
        ),
        Algorithm.EC_SIGN_ED25519: _AlgorithmSpec(purpose=sign, kind="ed25519"),
    }
    for bits in (2048, 3072, 4096):
        for kind, prefix in (("rsa-pss", "RSA_SIGN_PSS"), ("rsa-pkcs1", "RSA_SIGN_PKCS1")):
            table[_member(Algorithm, f"{prefix}_{bits}_SHA256")] = _AlgorithmSpec(
                purpose=sign, kind=kind, size=bits, hash_name="sha256"
            )
        for hash_name in ("sha256", "sha1"):
            table[_member(Algorithm, f"RSA_DECRYPT_OAEP_{bits}_{hash_name.upper()}")] = (
                _AlgorithmSpec(purpose=decrypt, kind="rsa-oaep", size=bits, hash_name=hash_name)
            )
    table[Algorithm.RSA_SIGN_PSS_4096_SHA512] = _AlgorithmSpec(
        purpose=sign, kind="rsa-pss", size=4096, hash_name="sha512"
    )
    table[Algorithm.RSA_SIGN_PKCS1_4096_SHA512] = _AlgorithmSpec(
        purpose=sign, kind="rsa-pkcs1", size=4096, hash_name="sha512"
    )
    table[Algorithm.RSA_DECRYPT_OAEP_4096_SHA512] = _AlgorithmSpec(
        purpose=decrypt, kind="rsa-oaep", size=4096, hash_name="sha512"
    )
    for hash_name, size in (("sha1", 20), ("sha224", 28), ("sha256", 32), ("sha384", 48)):
        table[_member(Algorithm, f"HMAC_{hash_name.upper()}")] = _AlgorithmSpec(
            purpose=Purpose.MAC, kind="hmac", size=size, hash_name=hash_name
        )
    table[Algorithm.HMAC_SHA512] = _AlgorithmSpec(
        purpose=Purpose.MAC, kind="hmac", size=64, hash_name="sha512"
    )
    return table


_ALGORITHMS = _algorithms()
_SUPPORTED_PURPOSES = (
    Purpose.ENCRYPT_DECRYPT,
    Purpose.ASYMMETRIC_SIGN,
    Purpose.ASYMMETRIC_DECRYPT,
    Purpose.MAC,
)
_ASYMMETRIC_PURPOSES = (Purpose.ASYMMETRIC_SIGN, Purpose.ASYMMETRIC_DECRYPT)


def crc32c(data: bytes) -> int:
    """The CRC32C of ``data``, as Cloud KMS's ``*_crc32c`` fields carry it."""
    return int(google_crc32c.value(data))


@attrs.frozen(kw_only=True)
class EmulatorCall:
    """One RPC the emulator received, and how it was answered.

    ``metadata`` holds the request's gRPC metadata with the ``authorization``
    value replaced by ``sha256:<hex>`` of the bearer token: the token itself is
    never recorded.
    """

    method: str
    resource: str
    metadata: Mapping[str, str]
    code: Any
    """The ``grpc.StatusCode`` answered."""


@attrs.define(kw_only=True)
class _Fault:
    method: str | None
    code: Any
    message: str
    remaining: int | None


@attrs.define(kw_only=True)
class _Corruption:
    method: str | None
    remaining: int | None
    flags: bool = True


@attrs.define(kw_only=True, eq=False)
class _Version:
    name: str
    number: int
    algorithm: Any
    protection_level: Any
    state: Any
    create_time: datetime
    material: Any = attrs.field(default=None, repr=False)
    """Generated on first use; dropped when the version is destroyed."""
    destroy_time: datetime | None = None
    destroy_event_time: datetime | None = None
    ready_at: float | None = None
    """``time.monotonic()`` when a PENDING_GENERATION version turns ENABLED."""


@attrs.define(kw_only=True, eq=False)
class _CryptoKey:
    name: str
    purpose: Any
    create_time: datetime
    algorithm: Any
    protection_level: Any
    labels: dict[str, str]
    destroy_scheduled_duration: timedelta
    rotation_period: timedelta | None = None
    next_rotation_time: datetime | None = None
    primary: int | None = None
    versions: list[_Version] = attrs.Factory(list)


@attrs.define(kw_only=True, eq=False)
class _KeyRing:
    name: str
    create_time: datetime


def _invalid(message: str) -> RpcError:
    return RpcError(Code.INVALID_ARGUMENT, message)


def _precondition(message: str) -> RpcError:
    return RpcError(Code.FAILED_PRECONDITION, message)


def _match(pattern: re.Pattern[str], name: str, kind: str) -> re.Match[str]:
    found = pattern.fullmatch(name)
    if found is None:
        raise _invalid(f"Resource name [{name}] does not represent a valid {kind}.")
    return found


def _check_id(value: str, field: str) -> None:
    if not _ID.fullmatch(value):
        raise _invalid(f"{field} [{value}] must match the expression [a-zA-Z0-9_-]{{1,63}}.")


def _checksum(request: Any, crc_field: str, data_field: str, data: bytes) -> bool:
    """Verify an optional request checksum; ``True`` when it was given and matched."""
    if crc_field not in request:
        return False
    if crc32c(data) != getattr(request, crc_field):
        raise _invalid(
            f"The checksum in field {crc_field} did not match the data in field {data_field}."
        )
    return True


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _page(items: Sequence[_T], page_size: int, page_token: str) -> tuple[list[_T], str]:
    if page_size < 0:
        raise _invalid("page_size must not be negative.")
    offset = 0
    if page_token:
        try:
            decoded = base64.urlsafe_b64decode(page_token.encode()).decode()
            prefix, _, number = decoded.partition(":")
            offset = int(number)
            if prefix != "offset" or offset < 0:
                raise ValueError(decoded)
        except ValueError:
            raise _invalid(f"Invalid page token [{page_token}].") from None
    size = min(page_size or _MAX_PAGE_SIZE, _MAX_PAGE_SIZE)
    page = list(items[offset : offset + size])
    end = offset + size
    token = base64.urlsafe_b64encode(f"offset:{end}".encode()).decode() if end < len(items) else ""
    return page, token


_CLAUSE = re.compile(
    r'\s*(?P<path>[a-zA-Z_][a-zA-Z0-9_.]*)\s*(?P<op>!=|=|:)\s*"?(?P<value>[^"]*?)"?\s*'
)


def _filtered(messages: list[Any], expression: str) -> list[Any]:
    """Apply a Cloud KMS list filter of ``field OP value`` clauses joined by ``AND``.

    ``OP`` is ``=``, ``!=`` or ``:`` (contains; for a map, has the key).  Fields
    are dotted paths into the resource (``state``, ``labels.env``,
    ``version_template.algorithm``).  Anything else is ``INVALID_ARGUMENT``.
    """
    if not expression.strip():
        return messages
    clauses = []
    for part in re.split(r"\s+AND\s+", expression.strip()):
        clause = _CLAUSE.fullmatch(part)
        if clause is None:
            raise _invalid(f"Invalid filter [{expression}].")
        clauses.append((clause["path"].split("."), clause["op"], clause["value"]))

    def value_at(message: Any, path: list[str]) -> Any:
        value: Any = type(message).to_dict(
            message, use_integers_for_enums=False, preserving_proto_field_name=True
        )
        for step in path:
            if not isinstance(value, dict) or step not in value:
                return None
            value = value[step]
        return value

    def holds(message: Any) -> bool:
        for path, op, expected in clauses:
            value = value_at(message, path)
            if op == ":":
                found = expected in value if isinstance(value, (dict, str)) else False
            else:
                text = str(value).lower() if isinstance(value, bool) else str(value)
                found = value is not None and text == expected
                found = found if op == "=" else not found
            if not found:
                return False
        return True

    return [message for message in messages if holds(message)]


class _KeyManagement:
    """Cloud KMS state and the RPCs over it; callers hold the emulator's lock."""

    def __init__(self, now: Callable[[], datetime], generation_delay: float = 0.0) -> None:
        self._now = now
        self.generation_delay = generation_delay
        self.key_rings: dict[str, _KeyRing] = {}
        self.keys: dict[str, _CryptoKey] = {}
        self.policies: dict[str, Any] = {}

    def rpcs(self) -> dict[str, tuple[Any, Any, Callable[[Any], Any]]]:
        """Method name -> (request type, response type, implementation)."""
        s, r = service, resources
        return {
            "CreateKeyRing": (s.CreateKeyRingRequest, r.KeyRing, self.create_key_ring),
            "GetKeyRing": (s.GetKeyRingRequest, r.KeyRing, self.get_key_ring),
            "ListKeyRings": (s.ListKeyRingsRequest, s.ListKeyRingsResponse, self.list_key_rings),
            "CreateCryptoKey": (s.CreateCryptoKeyRequest, r.CryptoKey, self.create_crypto_key),
            "GetCryptoKey": (s.GetCryptoKeyRequest, r.CryptoKey, self.get_crypto_key),
            "ListCryptoKeys": (
                s.ListCryptoKeysRequest,
                s.ListCryptoKeysResponse,
                self.list_crypto_keys,
            ),
            "UpdateCryptoKey": (s.UpdateCryptoKeyRequest, r.CryptoKey, self.update_crypto_key),
            "UpdateCryptoKeyPrimaryVersion": (
                s.UpdateCryptoKeyPrimaryVersionRequest,
                r.CryptoKey,
                self.update_primary_version,
            ),
            "CreateCryptoKeyVersion": (
                s.CreateCryptoKeyVersionRequest,
                r.CryptoKeyVersion,
                self.create_crypto_key_version,
            ),
            "GetCryptoKeyVersion": (
                s.GetCryptoKeyVersionRequest,
                r.CryptoKeyVersion,
                self.get_crypto_key_version,
            ),
            "ListCryptoKeyVersions": (
                s.ListCryptoKeyVersionsRequest,
                s.ListCryptoKeyVersionsResponse,
                self.list_crypto_key_versions,
            ),
            "UpdateCryptoKeyVersion": (
                s.UpdateCryptoKeyVersionRequest,
                r.CryptoKeyVersion,
                self.update_crypto_key_version,
            ),
            "DestroyCryptoKeyVersion": (
                s.DestroyCryptoKeyVersionRequest,
                r.CryptoKeyVersion,
                self.destroy_crypto_key_version,
            ),
            "RestoreCryptoKeyVersion": (
                s.RestoreCryptoKeyVersionRequest,
                r.CryptoKeyVersion,
                self.restore_crypto_key_version,
            ),
            "Encrypt": (s.EncryptRequest, s.EncryptResponse, self.encrypt),
            "Decrypt": (s.DecryptRequest, s.DecryptResponse, self.decrypt),
            "AsymmetricSign": (s.AsymmetricSignRequest, s.AsymmetricSignResponse, self.sign),
            "AsymmetricDecrypt": (
                s.AsymmetricDecryptRequest,
                s.AsymmetricDecryptResponse,
                self.asymmetric_decrypt,
            ),
            "GetPublicKey": (s.GetPublicKeyRequest, r.PublicKey, self.get_public_key),
            "MacSign": (s.MacSignRequest, s.MacSignResponse, self.mac_sign),
            "MacVerify": (s.MacVerifyRequest, s.MacVerifyResponse, self.mac_verify),
            "GenerateRandomBytes": (
                s.GenerateRandomBytesRequest,
                s.GenerateRandomBytesResponse,
                self.generate_random_bytes,
            ),
            "ListImportJobs": (
                s.ListImportJobsRequest,
                s.ListImportJobsResponse,
                self.list_import_jobs,
            ),
        }

    def mixin_rpcs(self) -> dict[str, dict[str, tuple[Any, Any, Callable[[Any], Any]]]]:
        """Service name -> method name -> (request, response, implementation) of the mixins.

        The Cloud KMS client also calls ``google.cloud.location.Locations`` and
        ``google.iam.v1.IAMPolicy`` on the same endpoint.
        """
        loc, iam = locations_pb2, iam_policy_pb2
        return {
            "google.cloud.location.Locations": {
                "ListLocations": (
                    loc.ListLocationsRequest,
                    loc.ListLocationsResponse,
                    self.list_locations,
                ),
                "GetLocation": (loc.GetLocationRequest, loc.Location, self.get_location),
            },
            "google.iam.v1.IAMPolicy": {
                "GetIamPolicy": (iam.GetIamPolicyRequest, policy_pb2.Policy, self.get_iam_policy),
                "SetIamPolicy": (iam.SetIamPolicyRequest, policy_pb2.Policy, self.set_iam_policy),
                "TestIamPermissions": (
                    iam.TestIamPermissionsRequest,
                    iam.TestIamPermissionsResponse,
                    self.test_iam_permissions,
                ),
            },
        }

    # -- time ------------------------------------------------------------------

    def tick(self) -> None:
        """Carry out what the clock has made due: destructions and automatic rotations."""
        now = self._now()
        moment = time.monotonic()
        for key in self.keys.values():
            for version in key.versions:
                if version.state == State.PENDING_GENERATION and (version.ready_at or 0) <= moment:
                    version.state, version.ready_at = State.ENABLED, None
                due = version.destroy_time
                if version.state == State.DESTROY_SCHEDULED and due is not None and due <= now:
                    version.state = State.DESTROYED
                    version.material = None
                    version.destroy_event_time, version.destroy_time = due, None
            while key.next_rotation_time is not None and key.next_rotation_time <= now:
                at = key.next_rotation_time
                key.primary = self._add_version(key, State.ENABLED, at).number
                key.next_rotation_time = at + key.rotation_period if key.rotation_period else None

    # -- lookups ---------------------------------------------------------------

    def _key_ring(self, name: str) -> _KeyRing:
        _match(_KEY_RING, name, "KeyRing")
        ring = self.key_rings.get(name)
        if ring is None:
            raise RpcError(Code.NOT_FOUND, f"KeyRing {name} not found.")
        return ring

    def _key(self, name: str) -> _CryptoKey:
        _match(_KEY, name, "CryptoKey")
        key = self.keys.get(name)
        if key is None:
            raise RpcError(Code.NOT_FOUND, f"CryptoKey {name} not found.")
        return key

    def _version(self, name: str) -> tuple[_CryptoKey, _Version]:
        found = _match(_VERSION, name, "CryptoKeyVersion")
        key = self.keys.get(found["parent"])
        number = found["id"]
        if key is not None and number.isdigit() and 0 < int(number) <= len(key.versions):
            return key, key.versions[int(number) - 1]
        raise RpcError(Code.NOT_FOUND, f"CryptoKeyVersion {name} not found.")

    @staticmethod
    def _require_purpose(key: _CryptoKey, purpose: Any, method: str) -> None:
        if key.purpose != purpose:
            raise _precondition(
                f"{method} requires a CryptoKey with purpose {purpose.name}, "
                f"but {key.name} has purpose {key.purpose.name}."
            )

    @staticmethod
    def _require_enabled(version: _Version) -> None:
        if version.state != State.ENABLED:
            raise _precondition(
                f"CryptoKeyVersion {version.name} is not enabled, "
                f"current state is: {version.state.name}."
            )

    # -- messages --------------------------------------------------------------

    @staticmethod
    def _version_message(version: _Version) -> Any:
        message = resources.CryptoKeyVersion(
            name=version.name,
            state=version.state,
            protection_level=version.protection_level,
            algorithm=version.algorithm,
            create_time=version.create_time,
            generate_time=version.create_time,
        )
        if version.destroy_time is not None:
            message.destroy_time = version.destroy_time
        if version.destroy_event_time is not None:
            message.destroy_event_time = version.destroy_event_time
        return message

    def _key_message(self, key: _CryptoKey) -> Any:
        message = resources.CryptoKey(
            name=key.name,
            purpose=key.purpose,
            create_time=key.create_time,
            labels=dict(key.labels),
            version_template=resources.CryptoKeyVersionTemplate(
                algorithm=key.algorithm, protection_level=key.protection_level
            ),
            destroy_scheduled_duration=key.destroy_scheduled_duration,
        )
        if key.rotation_period is not None:
            message.rotation_period = key.rotation_period
        if key.next_rotation_time is not None:
            message.next_rotation_time = key.next_rotation_time
        if key.purpose == Purpose.ENCRYPT_DECRYPT and key.primary is not None:
            message.primary = self._version_message(key.versions[key.primary - 1])
        return message

    # -- key rings -------------------------------------------------------------

    def create_key_ring(self, request: Any) -> Any:
        """CreateKeyRing."""
        _match(_LOCATION, request.parent, "Location")
        _check_id(request.key_ring_id, "key_ring_id")
        name = f"{request.parent}/keyRings/{request.key_ring_id}"
        if name in self.key_rings:
            raise RpcError(Code.ALREADY_EXISTS, f"KeyRing {name} already exists.")
        ring = _KeyRing(name=name, create_time=self._now())
        self.key_rings[name] = ring
        return resources.KeyRing(name=name, create_time=ring.create_time)

    def get_key_ring(self, request: Any) -> Any:
        """GetKeyRing."""
        ring = self._key_ring(request.name)
        return resources.KeyRing(name=ring.name, create_time=ring.create_time)

    def list_key_rings(self, request: Any) -> Any:
        """ListKeyRings."""
        _match(_LOCATION, request.parent, "Location")
        prefix = f"{request.parent}/keyRings/"
        rings = [
            resources.KeyRing(name=ring.name, create_time=ring.create_time)
            for name, ring in self.key_rings.items()
            if name.startswith(prefix)
        ]
        rings = _filtered(rings, request.filter)
        page, token = _page(rings, request.page_size, request.page_token)
        return service.ListKeyRingsResponse(
            key_rings=page, next_page_token=token, total_size=len(rings)
        )

    # -- crypto keys -----------------------------------------------------------

    @staticmethod
    def _check_algorithm(purpose: Any, algorithm: Any, level: Any) -> None:
        spec = _ALGORITHMS.get(algorithm)
        if spec is None:
            raise RpcError(
                Code.UNIMPLEMENTED,
                f"The emulator does not support algorithm {Algorithm(algorithm).name}.",
            )
        if spec.purpose != purpose:
            raise _invalid(
                f"Algorithm {Algorithm(algorithm).name} is not valid for purpose "
                f"{Purpose(purpose).name}."
            )
        if spec.hsm_only and level != ProtectionLevel.HSM:
            raise _invalid(f"Algorithm {Algorithm(algorithm).name} requires protection level HSM.")

    @staticmethod
    def _check_level(level: Any) -> Any:
        if level == ProtectionLevel.PROTECTION_LEVEL_UNSPECIFIED:
            return ProtectionLevel.SOFTWARE
        if level not in (ProtectionLevel.SOFTWARE, ProtectionLevel.HSM):
            raise RpcError(
                Code.UNIMPLEMENTED,
                f"The emulator does not support protection level {ProtectionLevel(level).name}.",
            )
        return level

    @staticmethod
    def _check_rotation(purpose: Any, period: timedelta | None, next_time: datetime | None) -> None:
        if period is None and next_time is None:
            return
        if purpose != Purpose.ENCRYPT_DECRYPT:
            raise _invalid(
                "rotation_period and next_rotation_time may only be set for keys with "
                f"purpose ENCRYPT_DECRYPT, not {Purpose(purpose).name}."
            )
        if period is not None:
            if not _MIN_ROTATION <= period <= _MAX_ROTATION:
                raise _invalid(
                    "rotation_period must be at least 24 hours and at most 876000 hours."
                )
            if next_time is None:
                raise _invalid("next_rotation_time must be set when rotation_period is set.")

    @staticmethod
    def _check_labels(labels: Mapping[str, str]) -> dict[str, str]:
        if len(labels) > 64:
            raise _invalid("A resource may have at most 64 labels.")
        for label, value in labels.items():
            if not _LABEL_KEY.fullmatch(label) or not _LABEL_VALUE.fullmatch(value):
                raise _invalid(f"Invalid label {label}={value}.")
        return dict(labels)

    def _add_version(self, key: _CryptoKey, state: Any, at: datetime | None = None) -> _Version:
        number = len(key.versions) + 1
        ready_at: float | None = None
        if state == State.ENABLED and key.purpose in _ASYMMETRIC_PURPOSES:
            # The service generates asymmetric key material asynchronously.
            state, ready_at = State.PENDING_GENERATION, time.monotonic() + self.generation_delay
        version = _Version(
            ready_at=ready_at,
            name=f"{key.name}/cryptoKeyVersions/{number}",
            number=number,
            algorithm=key.algorithm,
            protection_level=key.protection_level,
            state=state,
            create_time=at or self._now(),
        )
        key.versions.append(version)
        return version

    def create_crypto_key(self, request: Any) -> Any:
        """CreateCryptoKey."""
        ring = self._key_ring(request.parent)
        _check_id(request.crypto_key_id, "crypto_key_id")
        name = f"{ring.name}/cryptoKeys/{request.crypto_key_id}"
        if name in self.keys:
            raise RpcError(Code.ALREADY_EXISTS, f"CryptoKey {name} already exists.")
        wanted = request.crypto_key
        purpose = wanted.purpose
        if purpose == Purpose.CRYPTO_KEY_PURPOSE_UNSPECIFIED:
            raise _invalid("crypto_key.purpose must be specified.")
        if purpose not in _SUPPORTED_PURPOSES:
            raise RpcError(
                Code.UNIMPLEMENTED,
                f"The emulator does not support purpose {Purpose(purpose).name}.",
            )
        if wanted.import_only:
            raise RpcError(Code.UNIMPLEMENTED, "The emulator does not support key import.")
        template = wanted.version_template
        level = self._check_level(template.protection_level)
        algorithm = template.algorithm
        if algorithm == Algorithm.CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED:
            if purpose != Purpose.ENCRYPT_DECRYPT:
                raise _invalid(
                    "crypto_key.version_template.algorithm must be specified for purpose "
                    f"{Purpose(purpose).name}."
                )
            algorithm = Algorithm.GOOGLE_SYMMETRIC_ENCRYPTION
        self._check_algorithm(purpose, algorithm, level)
        period = wanted.rotation_period if "rotation_period" in wanted else None
        next_time = wanted.next_rotation_time if "next_rotation_time" in wanted else None
        self._check_rotation(purpose, period, next_time)
        destroy_after = _DEFAULT_DESTROY_DURATION
        if "destroy_scheduled_duration" in wanted:
            destroy_after = wanted.destroy_scheduled_duration
            if not _MIN_DESTROY <= destroy_after <= _MAX_DESTROY:
                raise _invalid("destroy_scheduled_duration must be between 24 hours and 120 days.")
        key = _CryptoKey(
            name=name,
            purpose=Purpose(purpose),
            create_time=self._now(),
            algorithm=Algorithm(algorithm),
            protection_level=ProtectionLevel(level),
            labels=self._check_labels(wanted.labels),
            destroy_scheduled_duration=destroy_after,
            rotation_period=period,
            next_rotation_time=_aware(next_time) if next_time is not None else None,
        )
        if not request.skip_initial_version_creation:
            first = self._add_version(key, State.ENABLED)
            if purpose == Purpose.ENCRYPT_DECRYPT:
                key.primary = first.number
        self.keys[name] = key
        return self._key_message(key)

    def get_crypto_key(self, request: Any) -> Any:
        """GetCryptoKey."""
        return self._key_message(self._key(request.name))

    def list_crypto_keys(self, request: Any) -> Any:
        """ListCryptoKeys."""
        ring = self._key_ring(request.parent)
        prefix = f"{ring.name}/cryptoKeys/"
        keys = [self._key_message(k) for n, k in self.keys.items() if n.startswith(prefix)]
        keys = _filtered(keys, request.filter)
        page, token = _page(keys, request.page_size, request.page_token)
        return service.ListCryptoKeysResponse(
            crypto_keys=page, next_page_token=token, total_size=len(keys)
        )

    def update_crypto_key(self, request: Any) -> Any:
        """UpdateCryptoKey: labels, rotation_period, next_rotation_time, version_template."""
        wanted = request.crypto_key
        key = self._key(wanted.name)
        paths = list(request.update_mask.paths)
        if not paths:
            raise _invalid("update_mask must name at least one field.")
        labels, period, next_time = key.labels, key.rotation_period, key.next_rotation_time
        algorithm, level = key.algorithm, key.protection_level
        template = wanted.version_template
        for path in paths:
            if path == "labels":
                labels = self._check_labels(wanted.labels)
            elif path == "rotation_period":
                period = wanted.rotation_period if "rotation_period" in wanted else None
            elif path == "next_rotation_time":
                found = wanted.next_rotation_time if "next_rotation_time" in wanted else None
                next_time = _aware(found) if found is not None else None
            elif path in ("version_template", "version_template.algorithm"):
                algorithm = template.algorithm
                if path == "version_template":
                    level = self._check_level(template.protection_level)
            elif path == "version_template.protection_level":
                level = self._check_level(template.protection_level)
            else:
                raise _invalid(f"The field {path} cannot be updated.")
        if algorithm == Algorithm.CRYPTO_KEY_VERSION_ALGORITHM_UNSPECIFIED:
            raise _invalid("crypto_key.version_template.algorithm must be specified.")
        self._check_algorithm(key.purpose, algorithm, level)
        self._check_rotation(key.purpose, period, next_time)
        key.labels, key.rotation_period, key.next_rotation_time = labels, period, next_time
        key.algorithm, key.protection_level = Algorithm(algorithm), ProtectionLevel(level)
        return self._key_message(key)

    def update_primary_version(self, request: Any) -> Any:
        """UpdateCryptoKeyPrimaryVersion (any state, as Cloud KMS allows)."""
        key = self._key(request.name)
        self._require_purpose(key, Purpose.ENCRYPT_DECRYPT, "UpdateCryptoKeyPrimaryVersion")
        _key, version = self._version(
            f"{key.name}/cryptoKeyVersions/{request.crypto_key_version_id}"
        )
        key.primary = version.number
        return self._key_message(key)

    # -- versions --------------------------------------------------------------

    def create_crypto_key_version(self, request: Any) -> Any:
        """CreateCryptoKeyVersion: a new version from the key's template; primary unchanged."""
        key = self._key(request.parent)
        state = request.crypto_key_version.state
        if state == State.CRYPTO_KEY_VERSION_STATE_UNSPECIFIED:
            state = State.ENABLED
        if state not in (State.ENABLED, State.DISABLED):
            raise _invalid("crypto_key_version.state may only be ENABLED or DISABLED.")
        return self._version_message(self._add_version(key, State(state)))

    def get_crypto_key_version(self, request: Any) -> Any:
        """GetCryptoKeyVersion."""
        return self._version_message(self._version(request.name)[1])

    def list_crypto_key_versions(self, request: Any) -> Any:
        """ListCryptoKeyVersions."""
        key = self._key(request.parent)
        versions = _filtered([self._version_message(v) for v in key.versions], request.filter)
        page, token = _page(versions, request.page_size, request.page_token)
        return service.ListCryptoKeyVersionsResponse(
            crypto_key_versions=page, next_page_token=token, total_size=len(versions)
        )

    def update_crypto_key_version(self, request: Any) -> Any:
        """UpdateCryptoKeyVersion: ``state`` between ENABLED and DISABLED."""
        wanted = request.crypto_key_version
        _key, version = self._version(wanted.name)
        paths = list(request.update_mask.paths)
        if not paths:
            raise _invalid("update_mask must name at least one field.")
        for path in paths:
            if path != "state":
                raise _invalid(f"The field {path} cannot be updated.")
        if wanted.state not in (State.ENABLED, State.DISABLED):
            raise _invalid("crypto_key_version.state may only be updated to ENABLED or DISABLED.")
        if version.state not in (State.ENABLED, State.DISABLED):
            raise _precondition(
                f"CryptoKeyVersion {version.name} is not in state ENABLED or DISABLED, "
                f"current state is: {version.state.name}."
            )
        version.state = State(wanted.state)
        return self._version_message(version)

    def destroy_crypto_key_version(self, request: Any) -> Any:
        """DestroyCryptoKeyVersion: schedule destruction after the key's destroy duration."""
        key, version = self._version(request.name)
        if version.state not in (State.ENABLED, State.DISABLED):
            raise _precondition(
                f"CryptoKeyVersion {version.name} cannot be destroyed, "
                f"current state is: {version.state.name}."
            )
        version.state = State.DESTROY_SCHEDULED
        version.destroy_time = self._now() + key.destroy_scheduled_duration
        return self._version_message(version)

    def restore_crypto_key_version(self, request: Any) -> Any:
        """RestoreCryptoKeyVersion: DESTROY_SCHEDULED back to DISABLED."""
        _key, version = self._version(request.name)
        if version.state != State.DESTROY_SCHEDULED:
            raise _precondition(
                f"CryptoKeyVersion {version.name} is not scheduled for destruction, "
                f"current state is: {version.state.name}."
            )
        version.state = State.DISABLED
        version.destroy_time = None
        return self._version_message(version)

    # -- key material ----------------------------------------------------------

    @staticmethod
    def _material(version: _Version) -> Any:
        if version.material is None:
            spec = _ALGORITHMS[version.algorithm]
            if spec.kind in ("aes", "hmac"):
                version.material = secrets.token_bytes(spec.size)
            elif spec.kind == "ec":
                assert spec.curve is not None
                version.material = ec.generate_private_key(spec.curve())
            elif spec.kind == "ed25519":
                version.material = ed25519.Ed25519PrivateKey.generate()
            else:
                version.material = rsa.generate_private_key(
                    public_exponent=65537, key_size=spec.size
                )
        return version.material

    # -- symmetric encryption ----------------------------------------------------

    def encrypt(self, request: Any) -> Any:
        """Encrypt with the named version, or the key's primary."""
        if _VERSION.fullmatch(request.name):
            key, version = self._version(request.name)
            self._require_purpose(key, Purpose.ENCRYPT_DECRYPT, "Encrypt")
        else:
            key = self._key(request.name)
            self._require_purpose(key, Purpose.ENCRYPT_DECRYPT, "Encrypt")
            if key.primary is None:
                raise _precondition(f"CryptoKey {key.name} has no primary CryptoKeyVersion.")
            version = key.versions[key.primary - 1]
        plaintext, aad = request.plaintext, request.additional_authenticated_data
        if version.protection_level == ProtectionLevel.HSM:
            if len(plaintext) + len(aad) > _HSM_LIMIT:
                raise _invalid(
                    "The combined length of plaintext and additional_authenticated_data "
                    f"must be no larger than {_HSM_LIMIT} bytes for HSM keys."
                )
        elif len(plaintext) > _SOFTWARE_LIMIT:
            raise _invalid(f"The plaintext must be no larger than {_SOFTWARE_LIMIT} bytes.")
        elif len(aad) > _SOFTWARE_LIMIT:
            raise _invalid(
                f"The additional_authenticated_data must be no larger than {_SOFTWARE_LIMIT} bytes."
            )
        verified_plaintext = _checksum(request, "plaintext_crc32c", "plaintext", plaintext)
        verified_aad = _checksum(
            request,
            "additional_authenticated_data_crc32c",
            "additional_authenticated_data",
            aad,
        )
        self._require_enabled(version)
        nonce = secrets.token_bytes(_NONCE_SIZE)
        header = bytes([_CIPHERTEXT_FORMAT]) + version.number.to_bytes(4, "big") + nonce
        sealed = AESGCM(self._material(version)).encrypt(nonce, plaintext, aad)
        ciphertext = header + sealed
        return service.EncryptResponse(
            name=version.name,
            ciphertext=ciphertext,
            ciphertext_crc32c=crc32c(ciphertext),
            verified_plaintext_crc32c=verified_plaintext,
            verified_additional_authenticated_data_crc32c=verified_aad,
            protection_level=version.protection_level,
        )

    def decrypt(self, request: Any) -> Any:
        """Decrypt with the version the ciphertext names."""
        if _VERSION.fullmatch(request.name):
            raise _invalid(
                f"Decrypt takes a CryptoKey name, not a CryptoKeyVersion: [{request.name}]."
            )
        key = self._key(request.name)
        self._require_purpose(key, Purpose.ENCRYPT_DECRYPT, "Decrypt")
        ciphertext, aad = request.ciphertext, request.additional_authenticated_data
        _checksum(request, "ciphertext_crc32c", "ciphertext", ciphertext)
        _checksum(
            request,
            "additional_authenticated_data_crc32c",
            "additional_authenticated_data",
            aad,
        )
        invalid = _invalid("Decryption failed: the ciphertext is invalid.")
        header = 1 + 4 + _NONCE_SIZE
        if len(ciphertext) < header + 16 or ciphertext[0] != _CIPHERTEXT_FORMAT:
            raise invalid
        number = int.from_bytes(ciphertext[1:5], "big")
        if not 0 < number <= len(key.versions):
            raise invalid
        version = key.versions[number - 1]
        self._require_enabled(version)
        try:
            plaintext = AESGCM(self._material(version)).decrypt(
                ciphertext[5:header], ciphertext[header:], aad
            )
        except InvalidTag:
            raise invalid from None
        return service.DecryptResponse(
            plaintext=plaintext,
            plaintext_crc32c=crc32c(plaintext),
            used_primary=key.primary == version.number,
            protection_level=version.protection_level,
        )

    # -- asymmetric keys ---------------------------------------------------------

    def _usable(self, name: str, purposes: tuple[Any, ...], method: str) -> _Version:
        key, version = self._version(name)
        if key.purpose not in purposes:
            wanted = " or ".join(p.name for p in purposes)
            raise _precondition(
                f"{method} requires a CryptoKey with purpose {wanted}, "
                f"but {key.name} has purpose {key.purpose.name}."
            )
        self._require_enabled(version)
        return version

    def sign(self, request: Any) -> Any:
        """AsymmetricSign: a digest (or, for Ed25519, the data itself)."""
        version = self._usable(request.name, (Purpose.ASYMMETRIC_SIGN,), "AsymmetricSign")
        spec = _ALGORITHMS[version.algorithm]
        algorithm_name = version.algorithm.name
        kinds = ("sha256", "sha384", "sha512", "external_mu")
        digest_kind = next((kind for kind in kinds if kind in request.digest), None)
        digest = getattr(request.digest, digest_kind) if digest_kind else b""
        data = request.data
        if digest_kind and data:
            raise _invalid("Only one of digest and data may be set.")
        verified_digest = _checksum(request, "digest_crc32c", "digest", digest)
        verified_data = _checksum(request, "data_crc32c", "data", data)
        private_key = self._material(version)
        if spec.kind == "ed25519":
            if digest_kind:
                raise _invalid(f"Algorithm {algorithm_name} signs data, not a digest: set data.")
            signature = private_key.sign(data)
        else:
            chosen = _HASHES[spec.hash_name]()
            if digest_kind:
                if digest_kind != spec.hash_name:
                    raise _invalid(
                        f"The digest type {digest_kind} does not match the algorithm "
                        f"{algorithm_name}, which requires {spec.hash_name}."
                    )
                if len(digest) != chosen.digest_size:
                    raise _invalid(
                        f"The {digest_kind} digest must be {chosen.digest_size} bytes long."
                    )
            elif "data" in request or "data_crc32c" in request:
                hasher = hashes.Hash(chosen)
                hasher.update(data)
                digest = hasher.finalize()
            else:
                raise _invalid("Either digest or data must be set.")
            prehashed = utils.Prehashed(chosen)
            if spec.kind == "ec":
                signature = private_key.sign(digest, ec.ECDSA(prehashed))
            elif spec.kind == "rsa-pss":
                pss = padding.PSS(mgf=padding.MGF1(chosen), salt_length=chosen.digest_size)
                signature = private_key.sign(digest, pss, prehashed)
            else:
                signature = private_key.sign(digest, padding.PKCS1v15(), prehashed)
        return service.AsymmetricSignResponse(
            signature=signature,
            signature_crc32c=crc32c(signature),
            verified_digest_crc32c=verified_digest,
            verified_data_crc32c=verified_data,
            name=version.name,
            protection_level=version.protection_level,
        )

    def asymmetric_decrypt(self, request: Any) -> Any:
        """AsymmetricDecrypt: RSA-OAEP with the version's hash, empty label."""
        version = self._usable(request.name, (Purpose.ASYMMETRIC_DECRYPT,), "AsymmetricDecrypt")
        verified = _checksum(request, "ciphertext_crc32c", "ciphertext", request.ciphertext)
        chosen = _HASHES[_ALGORITHMS[version.algorithm].hash_name]()
        oaep = padding.OAEP(mgf=padding.MGF1(chosen), algorithm=chosen, label=None)
        try:
            plaintext = self._material(version).decrypt(request.ciphertext, oaep)
        except ValueError:
            raise _invalid(
                "Decryption failed: verify that 'name' refers to the correct CryptoKeyVersion "
                "and that the ciphertext was made with its public key."
            ) from None
        return service.AsymmetricDecryptResponse(
            plaintext=plaintext,
            plaintext_crc32c=crc32c(plaintext),
            verified_ciphertext_crc32c=verified,
            protection_level=version.protection_level,
        )

    def get_public_key(self, request: Any) -> Any:
        """GetPublicKey: SubjectPublicKeyInfo PEM (and DER when asked for)."""
        version = self._usable(
            request.name,
            (Purpose.ASYMMETRIC_SIGN, Purpose.ASYMMETRIC_DECRYPT),
            "GetPublicKey",
        )
        public_key = self._material(version).public_key()
        pem = public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        message = resources.PublicKey(
            pem=pem,
            pem_crc32c=crc32c(pem.encode()),
            algorithm=version.algorithm,
            name=version.name,
            protection_level=version.protection_level,
        )
        formats = resources.PublicKey.PublicKeyFormat
        wanted = request.public_key_format
        if wanted in (formats.PEM, formats.DER):
            data = (
                pem.encode()
                if wanted == formats.PEM
                else public_key.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            message.public_key_format = wanted
            message.public_key = resources.ChecksummedData(data=data, crc32c_checksum=crc32c(data))
        elif wanted != formats.PUBLIC_KEY_FORMAT_UNSPECIFIED:
            raise _invalid(f"Public key format {formats(wanted).name} does not fit this key.")
        return message

    # -- MAC and randomness --------------------------------------------------------

    def _mac(self, version: _Version, data: bytes) -> bytes:
        if len(data) > _SOFTWARE_LIMIT:
            raise _invalid(f"The data must be no larger than {_SOFTWARE_LIMIT} bytes.")
        spec = _ALGORITHMS[version.algorithm]
        return hmac.new(self._material(version), data, spec.hash_name).digest()

    def mac_sign(self, request: Any) -> Any:
        """MacSign."""
        version = self._usable(request.name, (Purpose.MAC,), "MacSign")
        verified = _checksum(request, "data_crc32c", "data", request.data)
        mac = self._mac(version, request.data)
        return service.MacSignResponse(
            name=version.name,
            mac=mac,
            mac_crc32c=crc32c(mac),
            verified_data_crc32c=verified,
            protection_level=version.protection_level,
        )

    def mac_verify(self, request: Any) -> Any:
        """MacVerify."""
        version = self._usable(request.name, (Purpose.MAC,), "MacVerify")
        verified_data = _checksum(request, "data_crc32c", "data", request.data)
        verified_mac = _checksum(request, "mac_crc32c", "mac", request.mac)
        success = hmac.compare_digest(self._mac(version, request.data), request.mac)
        return service.MacVerifyResponse(
            name=version.name,
            success=success,
            verified_data_crc32c=verified_data,
            verified_mac_crc32c=verified_mac,
            verified_success_integrity=True,
            protection_level=version.protection_level,
        )

    def generate_random_bytes(self, request: Any) -> Any:
        """GenerateRandomBytes (HSM only, 8 to 1024 bytes, as Cloud KMS)."""
        _match(_LOCATION, request.location, "Location")
        if request.protection_level != ProtectionLevel.HSM:
            raise _invalid("GenerateRandomBytes supports protection level HSM only.")
        if not 8 <= request.length_bytes <= 1024:
            raise _invalid("length_bytes must be between 8 and 1024.")
        data = secrets.token_bytes(request.length_bytes)
        return service.GenerateRandomBytesResponse(data=data, data_crc32c=crc32c(data))

    # -- import jobs, locations, IAM ---------------------------------------------

    def list_import_jobs(self, request: Any) -> Any:
        """ListImportJobs: the key ring must exist; it never holds an import job."""
        self._key_ring(request.parent)
        return service.ListImportJobsResponse(import_jobs=[], next_page_token="", total_size=0)

    @staticmethod
    def _location(project: str, location_id: str, display_name: str) -> Any:
        metadata = service.LocationMetadata(hsm_available=True, ekm_available=False)
        location = locations_pb2.Location(
            name=f"projects/{project}/locations/{location_id}",
            location_id=location_id,
            display_name=display_name,
        )
        location.metadata.Pack(service.LocationMetadata.pb(metadata))
        return location

    def list_locations(self, request: Any) -> Any:
        """ListLocations: the fixed :data:`LOCATIONS` of the project ``name``."""
        project = _match(_PROJECT, request.name, "Project")["project"]
        locations = [self._location(project, *entry) for entry in LOCATIONS]
        page, token = _page(locations, request.page_size, request.page_token)
        return locations_pb2.ListLocationsResponse(locations=page, next_page_token=token)

    def get_location(self, request: Any) -> Any:
        """GetLocation: one of :data:`LOCATIONS`, else NOT_FOUND."""
        found = _match(_LOCATION, request.name, "Location")
        project, location_id = found.group(0).split("/")[1], found.group(0).split("/")[3]
        for entry_id, display_name in LOCATIONS:
            if entry_id == location_id:
                return self._location(project, entry_id, display_name)
        raise RpcError(Code.NOT_FOUND, f"Location {request.name} is not found.")

    def _iam_resource(self, name: str) -> str:
        if _KEY.fullmatch(name):
            self._key(name)
        elif _KEY_RING.fullmatch(name):
            self._key_ring(name)
        else:
            raise _invalid(f"Resource name [{name}] is not a KeyRing or CryptoKey.")
        return name

    def get_iam_policy(self, request: Any) -> Any:
        """GetIamPolicy: the policy last set (stored, not enforced), else an empty one."""
        resource = self._iam_resource(request.resource)
        stored = self.policies.get(resource)
        if stored is None:
            return policy_pb2.Policy(version=1, etag=_EMPTY_POLICY_ETAG)
        policy = policy_pb2.Policy()
        policy.CopyFrom(stored)
        return policy

    def set_iam_policy(self, request: Any) -> Any:
        """SetIamPolicy: store the policy (with a new etag); a stale etag is ABORTED."""
        resource = self._iam_resource(request.resource)
        current = self.policies.get(resource)
        current_etag = current.etag if current is not None else _EMPTY_POLICY_ETAG
        if request.policy.etag and request.policy.etag != current_etag:
            raise RpcError(
                Code.ABORTED,
                "There were concurrent policy changes. Please retry the whole "
                "read-modify-write with exponential backoff.",
            )
        policy = policy_pb2.Policy()
        policy.CopyFrom(request.policy)
        policy.etag = secrets.token_bytes(8)
        policy.version = policy.version or 1
        self.policies[resource] = policy
        answer = policy_pb2.Policy()
        answer.CopyFrom(policy)
        return answer

    def test_iam_permissions(self, request: Any) -> Any:
        """TestIamPermissions: every caller holds every permission asked about."""
        self._iam_resource(request.resource)
        return iam_policy_pb2.TestIamPermissionsResponse(permissions=list(request.permissions))


def _resource_of(request: Any) -> str:
    for field in ("name", "parent", "location", "resource"):
        value = getattr(request, field, None)
        if isinstance(value, str) and value:
            return value
    for field in ("crypto_key", "crypto_key_version"):
        inner = getattr(request, field, None)
        if inner is not None:
            return str(inner.name)
    return ""


def _metadata(pairs: Sequence[tuple[str, str | bytes]]) -> dict[str, str]:
    return {key: value.hex() if isinstance(value, bytes) else value for key, value in pairs}


def _bearer(metadata: Mapping[str, str]) -> str | None:
    value = metadata.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _redacted(metadata: Mapping[str, str]) -> dict[str, str]:
    """``metadata`` with the bearer token (or whole authorization value) as ``sha256:<hex>``."""
    redacted = dict(metadata)
    if "authorization" in redacted:
        secret = _bearer(metadata) or redacted["authorization"]
        redacted["authorization"] = f"sha256:{hashlib.sha256(secret.encode()).hexdigest()}"
    return redacted


def _corrupt(response: Any, *, flags: bool = True) -> bool:
    """Make every checksum in ``response`` wrong (and, with ``flags``, its ``verified_*`` false).

    ``False`` if it carries no checksum.
    """
    fields = type(response).meta.fields
    touched = False
    for field in _CHECKSUM_FIELDS:
        if field in fields and field in response:
            setattr(response, field, (getattr(response, field) + 1) % 2**32)
            touched = True
    if "public_key" in fields and "public_key" in response:
        response.public_key.crc32c_checksum = (response.public_key.crc32c_checksum + 1) % 2**32
        touched = True
    for field in _VERIFIED_FIELDS:
        if flags and field in fields:
            setattr(response, field, False)
    return touched


class CloudKmsEmulator:
    """A Cloud KMS ``KeyManagementService`` on 127.0.0.1; use as a context manager.

    ``transport`` is ``"insecure"`` (plain HTTP/2), ``"local"`` (gRPC local
    TCP credentials, so clients may attach bearer tokens as call credentials)
    or ``"tls"`` (a certificate from a CA made at start; clients trust
    :attr:`ca_file`).  ``clock`` is the time source (UTC); :meth:`advance`
    moves it forward.  Asymmetric versions stay ``PENDING_GENERATION`` for
    ``generation_delay`` seconds (of real time).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        transport: str = INSECURE,
        clock: Callable[[], datetime] | None = None,
        generation_delay: float = 0.05,
    ) -> None:
        check_loopback(host)
        check_transport(transport)
        if generation_delay < 0:
            raise ValueError("generation_delay must be >= 0 seconds")
        self.host = host
        self.transport = transport
        self._requested_port = port
        self._port: int | None = None
        self._clock = clock
        self._offset = timedelta(0)
        self._lock = threading.RLock()
        self._kms = _KeyManagement(self.now, generation_delay)
        self._rpcs = self._kms.rpcs()
        for methods in self._kms.mixin_rpcs().values():
            self._rpcs.update(methods)
        self._certificates: LoopbackCertificates | None = None
        self._injector: FaultInjector | None = None
        self._faults: list[_Fault] = []
        self._corruptions: list[_Corruption] = []
        self._policy: Callable[[str, str, Mapping[str, str]], bool] | None = None
        self._last_authorization: str | None = None
        self.calls: list[EmulatorCall] = []
        """Every RPC received, in order (see :class:`EmulatorCall`)."""
        self._server = GrpcServer(
            {name: (rpc[0], rpc[1]) for name, rpc in self._kms.rpcs().items()},
            self._handle,
            services={
                service_name: {name: (rpc[0], rpc[1]) for name, rpc in methods.items()}
                for service_name, methods in self._kms.mixin_rpcs().items()
            },
        )

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> CloudKmsEmulator:
        """Start serving; returns ``self``."""
        if self._port is None:
            tls: tuple[bytes, bytes] | None = None
            if self.transport == TLS:
                self._certificates = LoopbackCertificates()
                tls = (self._certificates.private_key_pem, self._certificates.certificate_pem)
            try:
                self._port = self._server.start(
                    self.host, self._requested_port, self.transport, tls
                )
            except BaseException:
                self._drop_certificates()
                raise
        return self

    def stop(self) -> None:
        """Stop serving (calls in flight get half a second); remove the CA file."""
        if self._port is not None:
            self._server.stop(grace=0.5)
            self._port = None
        self._drop_certificates()

    def _drop_certificates(self) -> None:
        if self._certificates is not None:
            self._certificates.cleanup()
            self._certificates = None

    def __enter__(self) -> CloudKmsEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port served on."""
        if self._port is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._port

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``: the ``host:port`` a gRPC channel connects to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def ca_file(self) -> str | None:
        """The CA certificate a TLS client trusts (``None`` unless ``transport="tls"``)."""
        return self._certificates.ca_file if self._certificates is not None else None

    def environment(self) -> dict[str, str]:
        """Environment variables for a client process.

        ``CLOUDKMS_EMULATOR_HOST`` is the endpoint (the official client does not
        read it: pass it as ``client_options={"api_endpoint": ...}``); with TLS,
        ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` makes gRPC trust :attr:`ca_file`
        (it must be set before the process opens its first TLS channel).
        """
        env = {"CLOUDKMS_EMULATOR_HOST": self.endpoint}
        if self.ca_file is not None:
            env["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = self.ca_file
        return env

    def channel(self) -> grpc.Channel:
        """A new channel to the emulator (the caller closes it)."""
        ca_pem = self._certificates.ca_pem if self._certificates is not None else None
        return client_channel(self.endpoint, self.transport, ca_pem)

    def client(self) -> kms_v1.KeyManagementServiceClient:
        """The official client over a new channel (close it with ``client.transport.close()``)."""
        transport = KeyManagementServiceGrpcTransport(channel=self.channel())
        return kms_v1.KeyManagementServiceClient(transport=transport)

    def provider_options(self, **overrides: Any) -> dict[str, Any]:
        """Options for the ``gcp-kms`` provider pointing at this emulator, with tight retries."""
        options: dict[str, Any] = {
            "endpoint": self.endpoint,
            "channel": self.transport,
            # Generous per call: RSA-4096 key generation (on a version's first use)
            # can take seconds on a loaded CI machine.  Retries stay tight.
            "timeout": 10.0,
            "retry_deadline": 1.0,
            "retry_initial": 0.01,
            "retry_maximum": 0.05,
        }
        options.update(overrides)
        return options

    def provider(self, **overrides: Any) -> Any:
        """A ``gcp-kms`` provider for this emulator (see :meth:`provider_options`)."""
        from aureus_core.interfaces import ProviderSettings

        plugin = importlib.import_module("aureus_gcp.plugin")
        return plugin.create_provider(ProviderSettings(options=self.provider_options(**overrides)))

    # -- state -----------------------------------------------------------------

    def now(self) -> datetime:
        """The emulator's current time (the clock plus every :meth:`advance`)."""
        base = self._clock() if self._clock is not None else datetime.now(timezone.utc)
        return _aware(base) + self._offset

    def reset_clock(self) -> None:
        """Undo every :meth:`advance`, so the next test starts at the clock's time.

        What the advanced clock already made happen (destroyed or rotated
        versions) stays; tests that share an emulator keep to their own key rings.
        """
        with self._lock:
            self._offset = timedelta(0)

    def advance(self, delta: timedelta) -> None:
        """Move the emulator's clock forward: due destructions and rotations then happen."""
        if delta < timedelta(0):
            raise ValueError("the emulator's clock only moves forward")
        with self._lock:
            self._offset += delta
            self._kms.tick()

    def create_key(
        self,
        name: str,
        *,
        purpose: str = "ENCRYPT_DECRYPT",
        algorithm: str | None = None,
        protection_level: str = "SOFTWARE",
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Create the CryptoKey ``name`` (and its key ring if needed) directly; returns ``name``.

        A shortcut for seeding the emulator in tests; it applies the same checks
        as ``CreateCryptoKey`` and raises ``ValueError`` where that answers an error.
        """
        found = _KEY.fullmatch(name)
        if found is None:
            raise ValueError(f"not a CryptoKey name: {name!r}")
        ring = _KEY_RING.fullmatch(found["parent"])
        assert ring is not None
        template = resources.CryptoKeyVersionTemplate(
            protection_level=_member(ProtectionLevel, protection_level),
            algorithm=_member(Algorithm, algorithm) if algorithm else 0,
        )
        with self._lock:
            try:
                if found["parent"] not in self._kms.key_rings:
                    self._kms.create_key_ring(
                        service.CreateKeyRingRequest(parent=ring["parent"], key_ring_id=ring["id"])
                    )
                self._kms.create_crypto_key(
                    service.CreateCryptoKeyRequest(
                        parent=found["parent"],
                        crypto_key_id=found["id"],
                        crypto_key=resources.CryptoKey(
                            purpose=_member(Purpose, purpose),
                            version_template=template,
                            labels=dict(labels or {}),
                        ),
                    )
                )
            except RpcError as error:
                raise ValueError(error.message) from None
        return name

    def reset(self) -> None:
        """Forget every key ring, key, fault, policy, recorded call, and clock advance."""
        with self._lock:
            self._kms.key_rings.clear()
            self._kms.keys.clear()
            self._kms.policies.clear()
            self._faults.clear()
            self._corruptions.clear()
            self._policy = None
            self._last_authorization = None
            self._offset = timedelta(0)
            self.calls.clear()

    # -- fault and policy hooks ------------------------------------------------

    def fail(
        self,
        method: str | None,
        code: grpc.StatusCode,
        *,
        times: int | None = None,
        message: str = "injected fault",
    ) -> None:
        """Answer ``code`` to RPC ``method`` (``"Encrypt"``; ``None``: any) ``times`` times.

        ``times=None`` keeps failing until :meth:`clear_faults`.  Faults are
        checked in the order they were added.
        """
        if method is not None and method not in self._rpcs:
            raise ValueError(f"unknown RPC {method!r}; one of {sorted(self._rpcs)}")
        with self._lock:
            self._faults.append(_Fault(method=method, code=code, message=message, remaining=times))

    def corrupt_checksums(
        self, method: str | None = None, *, times: int | None = None, flags: bool = True
    ) -> None:
        """Make the ``*_crc32c`` values of the next ``times`` responses of ``method`` wrong.

        Their ``verified_*`` flags turn ``False`` too, unless ``flags=False``
        (the service verified the request; the answer was damaged on the way
        back).  Only responses that carry a checksum count; ``times=None`` lasts
        until :meth:`clear_faults`.
        """
        with self._lock:
            self._corruptions.append(_Corruption(method=method, remaining=times, flags=flags))

    def clear_faults(self) -> None:
        """Drop every injected fault and checksum corruption."""
        with self._lock:
            self._faults.clear()
            self._corruptions.clear()

    def use_faults(self, injector: FaultInjector | None) -> None:
        """Consult ``injector`` on every RPC (``None``: stop): its latency, then its faults.

        Throttling is answered ``RESOURCE_EXHAUSTED`` and server errors and
        drops ``UNAVAILABLE``, as Cloud KMS answers them; a dropped TCP
        connection needs a :class:`~aureus_core.testing.faults.FaultProxy`.
        """
        with self._lock:
            self._injector = injector

    def set_policy(self, policy: Callable[[str, str, Mapping[str, str]], bool] | None) -> None:
        """Decide each RPC by ``policy(method, resource, metadata)``; ``False``: PERMISSION_DENIED.

        ``resource`` is the request's name (or parent, or location); ``metadata``
        is the call's gRPC metadata, ``authorization`` included.  ``None``
        allows everything again.
        """
        with self._lock:
            self._policy = policy

    def last_authorization(self) -> str | None:
        """The bearer token of the most recent call that carried one.

        For tests that check a token reached the service; the emulator accepts
        any token, or none.
        """
        with self._lock:
            return self._last_authorization

    # -- dispatch ----------------------------------------------------------------

    @staticmethod
    def _take(hooks: list[Any], method: str) -> Any:
        for hook in hooks:
            if hook.method in (None, method):
                if hook.remaining is not None:
                    hook.remaining -= 1
                    if hook.remaining <= 0:
                        hooks.remove(hook)
                return hook
        return None

    def _answer(self, method: str, request: Any, metadata: Mapping[str, str]) -> Any:
        resource = _resource_of(request)
        with self._lock:
            token = _bearer(metadata)
            if token is not None:
                self._last_authorization = token
            fault = self._take(self._faults, method)
            policy = self._policy
            injector = self._injector
        if injector is not None:
            decision = injector.decide(method)
            decision.wait()
            if decision.outcome.value == "throttle":
                raise RpcError(
                    Code.RESOURCE_EXHAUSTED,
                    "Quota exceeded for quota metric 'Cryptographic requests' and limit "
                    "'Cryptographic requests per minute' of service 'cloudkms.googleapis.com'.",
                )
            if decision.outcome.value in ("error", "drop"):
                raise RpcError(Code.UNAVAILABLE, "The service is currently unavailable.")
        if fault is not None:
            raise RpcError(fault.code, fault.message)
        if policy is not None and not policy(method, resource, metadata):
            raise RpcError(
                Code.PERMISSION_DENIED,
                f"Permission '{_PERMISSIONS[method]}' denied on resource '{resource}' "
                "(or it may not exist).",
            )
        with self._lock:
            self._kms.tick()
            response = self._rpcs[method][2](request)
            pending = [c for c in self._corruptions if c.method in (None, method)]
            if pending and _corrupt(response, flags=pending[0].flags):
                self._take(self._corruptions, method)
        return response

    def _handle(self, method: str, request: Any, context: grpc.ServicerContext) -> Any:
        metadata = _metadata(context.invocation_metadata())
        code = Code.OK
        try:
            return self._answer(method, request, metadata)
        except RpcError as error:
            code = error.code
            message = error.message
        except Exception as error:  # a bug in the emulator: say so rather than UNKNOWN
            code = Code.INTERNAL
            message = f"emulator error: {type(error).__name__}: {error}"
        finally:
            call = EmulatorCall(
                method=method,
                resource=_resource_of(request),
                metadata=_redacted(metadata),
                code=code,
            )
            with self._lock:
                self.calls.append(call)
        context.abort(code, message)
        raise AssertionError("context.abort returns only by raising")  # pragma: no cover
