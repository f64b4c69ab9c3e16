"""The ``aws-kms`` key provider: AWS KMS keys for wrapping data keys and signing.

Encrypted data keys use the AWS Encryption SDK's ``aws-kms`` layout: provider
ID ``aws-kms``, provider info the key ARN (UTF-8) KMS reports, ciphertext the
KMS ``CiphertextBlob``; the message's encryption context is the KMS
encryption context.  Messages therefore decrypt with the official SDK and
vice versa.

Versions: KMS picks the key material itself and a ciphertext does not name
it, so wrapped keys and :meth:`owner_of` name the key unpinned.
:meth:`describe_key` lists one version per key material (``1`` for the
original, then one per ``ListKeyRotations`` entry).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import boto3

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey, WrappedKey
from aureus_core.errors import (
    ConfigError,
    DecryptionError,
    KeyExists,
    KeyNotFound,
    ProviderError,
    UnsupportedOperation,
)
from aureus_core.interfaces import Capability, KeyProviderBase
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyMetadata, KeyPurpose, KeySpec, KeyState, KeyType, KeyVersion
from aureus_core.signature import Signature
from aureus_core.ttl import TtlCache

from . import log_redaction, signing
from .errors import kms_errors
from .naming import (
    PROVIDER_ID,
    SCHEME,
    KmsArn,
    alias_name,
    check_ref,
    check_region,
    key_ref,
    region_of,
    same_key,
)
from .options import AwsKmsOptions
from .session import KmsClients

SPEC_OPTIONS = ("multi_region", "custom_key_store_id")
_STATES = {
    "Enabled": KeyState.ENABLED,
    "Disabled": KeyState.DISABLED,
    "PendingDeletion": KeyState.PENDING_DELETION,
    "PendingReplicaDeletion": KeyState.PENDING_DELETION,
    "PendingImport": KeyState.PENDING_IMPORT,
}
MIN_DELETION_DAYS = 7
ALIAS_TTL = 300.0
"""Seconds the key ARN of a configured alias is remembered for discovery decisions."""
MAX_DELETION_DAYS = 30


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(float(value), tz=timezone.utc)


def _flag(value: str, name: str) -> bool:
    if value.lower() in ("true", "yes", "1"):
        return True
    if value.lower() in ("false", "no", "0"):
        return False
    raise ConfigError(f"the aws-kms key option {name} must be true or false, not {value!r}")


class AwsKmsProvider(KeyProviderBase):
    """AWS KMS keys in any region the credentials reach.  Thread-safe."""

    scheme = SCHEME
    capabilities = frozenset(
        {
            Capability.WRAP,
            Capability.GENERATE_DATA_KEY,
            Capability.SIGN,
            Capability.PUBLIC_KEY,
            Capability.CREATE,
            Capability.DESCRIBE,
            Capability.LIST,
            Capability.ROTATE,
            Capability.REPLICATE,
        }
    )
    key_types = frozenset(signing.KEY_SPECS)

    def __init__(
        self,
        options: AwsKmsOptions | None = None,
        *,
        session: boto3.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options or AwsKmsOptions()
        log_redaction.install()
        self._clients = KmsClients(session or boto3.Session(), self.options)
        ttl = self.options.public_key_ttl
        self._public_keys: TtlCache[signing.PublicKey] = TtlCache(ttl, clock)
        self._aliases: TtlCache[str] = TtlCache(ALIAS_TTL, clock)

    def __repr__(self) -> str:
        return (
            f"AwsKmsProvider(region={self._clients.default_region!r}, "
            f"endpoint_url={self.options.endpoint_url!r})"
        )

    @property
    def region(self) -> str:
        """The provider's default region."""
        return self._clients.region()

    def client(self, region: str | None = None) -> Any:
        """The boto3 KMS client the provider uses for ``region`` (default: its own)."""
        return self._clients.get(region)

    def _client_for(self, key: KeyRef) -> Any:
        return self._clients.get(region_of(check_ref(key), self.region))

    # -- wrapping ------------------------------------------------------------

    def _check_wrap_version(self, key: KeyRef) -> None:
        if key.version is None:
            return
        metadata = self.describe_key(key)  # raises KeyNotFound for an unknown version
        if key.version != metadata.current_version:
            raise ConfigError(
                f"KMS wraps with the current key material only; {key.uri} pins older version "
                f"{key.version} (current: {metadata.current_version}): drop ?version="
            )

    def _wrapped(self, response: dict[str, Any]) -> WrappedKey:
        arn = str(response["KeyId"])
        edk = EncryptedDataKey(
            provider_id=PROVIDER_ID,
            provider_info=arn.encode("utf-8"),
            ciphertext=bytes(response["CiphertextBlob"]),
        )
        return WrappedKey(key=key_ref(arn), encrypted=edk)

    @staticmethod
    def _context_args(context: EncryptionContext) -> dict[str, Any]:
        return {"EncryptionContext": dict(context)} if context else {}

    def generate_data_key(
        self, key: KeyRef, length: int, context: EncryptionContext
    ) -> tuple[bytearray, WrappedKey]:
        """KMS ``GenerateDataKey``: a fresh data key and its wrap under ``key``.

        The plaintext comes back as a ``bytearray``; botocore's own copy of
        the response cannot be wiped.
        """
        client = self._client_for(key)
        self._check_wrap_version(key)
        with kms_errors("GenerateDataKey", key.uri):
            response = client.generate_data_key(
                KeyId=key.key_id, NumberOfBytes=length, **self._context_args(context)
            )
        return bytearray(response["Plaintext"]), self._wrapped(response)

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """KMS ``Encrypt`` of ``data_key`` with ``context`` as the KMS encryption context."""
        client = self._client_for(key)
        self._check_wrap_version(key)
        with kms_errors("Encrypt", key.uri):
            response = client.encrypt(
                KeyId=key.key_id, Plaintext=bytes(data_key), **self._context_args(context)
            )
        return self._wrapped(response)

    def _key_arn(self, key: KeyRef) -> KmsArn:
        """The key ARN ``key`` names (asking KMS when it is an alias or a bare ID)."""
        arn = KmsArn.parse(key.key_id)
        if arn is not None and arn.is_key:
            return arn
        client = self._client_for(key)
        with kms_errors("DescribeKey", key.uri):
            described = client.describe_key(KeyId=key.key_id)["KeyMetadata"]["Arn"]
        parsed = KmsArn.parse(str(described))
        if parsed is None:
            raise ProviderError(f"KMS described {key.uri} with ARN {described!r}", provider=SCHEME)
        return parsed

    def _lifecycle_target(self, key: KeyRef) -> tuple[Any, KmsArn]:
        """The client and ARN for a key-state change (send ``arn.resource_id``).

        Enabling, disabling and scheduling deletion are same-account operations,
        so the key ID names the key as well as its ARN (and moto accepts only it).
        """
        arn = self._key_arn(key)
        return self._clients.get(arn.region), arn

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """KMS ``Decrypt`` with ``KeyId`` pinned to ``key`` (strict, multi-Region aware).

        The encrypted data key must name ``key`` (or, for a multi-Region key,
        a replica of it), and KMS must report decrypting with exactly ``key``.
        """
        check_ref(key)
        if encrypted.provider_id != PROVIDER_ID:
            raise DecryptionError()
        try:
            named = KmsArn.parse(encrypted.provider_info.decode("utf-8"))
        except UnicodeDecodeError:
            raise DecryptionError() from None
        if named is None or not named.is_key:
            raise DecryptionError()
        wanted = self._key_arn(key)
        if not same_key(wanted, named):
            raise DecryptionError()
        with kms_errors("Decrypt", key.uri, unwrap=True):
            client = self._clients.get(wanted.region)
            response = client.decrypt(
                KeyId=str(wanted),
                CiphertextBlob=encrypted.ciphertext,
                **self._context_args(context),
            )
        plaintext = bytearray(response["Plaintext"])
        if str(response.get("KeyId")) != str(wanted):
            plaintext[:] = bytes(len(plaintext))
            raise DecryptionError()
        return plaintext

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        """The key an ``aws-kms`` encrypted data key names (see :meth:`discovery_refusal`).

        A multi-Region key is named in this provider's region: its replica
        there decrypts what any replica wrapped.
        """
        if encrypted.provider_id != PROVIDER_ID:
            return None
        try:
            arn = KmsArn.parse(encrypted.provider_info.decode("utf-8"))
        except UnicodeDecodeError:
            return None
        if arn is None or not arn.is_key:
            return None
        region = self._clients.default_region
        if arn.is_multi_region and region and arn.region != region:
            arn = arn.in_region(region)
        return key_ref(str(arn))

    def discovery_refusal(self, key: KeyRef, named: Sequence[KeyRef]) -> str | None:
        """Whether a decrypt without ``keys=`` may send ``Decrypt`` for ``key`` (a key ARN).

        Allowed: a configured key (multi-Region aware; aliases and bare key IDs
        among ``named`` are resolved with ``DescribeKey`` and remembered for
        ``ALIAS_TTL`` seconds), or a key the ``discovery`` option covers; and
        in either case only in a region of :meth:`discovery_regions`.
        """
        arn = KmsArn.parse(key.key_id)
        discovery = self.options.discovery
        if arn is None:  # an alias or key ID (a seed envelope's keyId): its account is unknown
            if not discovery.any_account and not any(
                key.with_version(None) == configured.with_version(None) for configured in named
            ):
                return (
                    "an alias or key ID, not a key ARN, so its account is unknown: name it in "
                    "[stack] wrapping_keys or keys=, or set [providers.aws-kms] discovery = true"
                )
        elif not discovery.allows(arn.partition, arn.account) and not (
            arn.is_key and any(same_key(arn, configured) for configured in self._named_arns(named))
        ):
            return (
                f"account {arn.account} (partition {arn.partition}) is outside the aws-kms "
                f"discovery scope: name the key in [stack] wrapping_keys or keys=, or add the "
                f'account to [providers.aws-kms] discovery = {{ partition = "{arn.partition}", '
                f'accounts = ["{arn.account}"] }}'
            )
        region = region_of(key, self._clients.default_region or "")
        allowed = self.discovery_regions(named)
        if not region or region in allowed:
            return None
        return (
            f"region {region} is outside the aws-kms discovery regions "
            f"({', '.join(sorted(allowed)) or 'none'}): name a key in {region} in [stack] "
            f"wrapping_keys or keys=, or list the region in [providers.aws-kms] "
            f'discovery.regions (discovery = {{ accounts = [...] or "*", regions = ["{region}"] }})'
        )

    def discovery_regions(self, named: Sequence[KeyRef] = ()) -> frozenset[str]:
        """The regions a decrypt without ``keys=`` may send ``Decrypt`` to.

        The provider's region, the regions of the configured keys ``named``
        (read from their ARNs or ``?region=``, without asking KMS), and the
        ``discovery`` option's ``regions``.  A message cannot add one, so it
        cannot make the stack call an endpoint (say, of a region that does not
        exist) whose failures would count toward the circuit breaker.
        """
        default = self._clients.default_region or ""
        regions = set(self.options.discovery.regions)
        regions.update(region_of(ref, default) for ref in named if ref.scheme == SCHEME)
        regions.add(default)
        regions.discard("")
        return frozenset(regions)

    def _named_arns(self, named: Sequence[KeyRef]) -> list[KmsArn]:
        """The key ARNs of the configured keys (aliases and IDs resolved, cached)."""
        found: list[KmsArn] = []
        for ref in named:
            arn = KmsArn.parse(ref.key_id)
            if arn is not None and arn.is_key:
                found.append(arn)
                continue
            resolved = self._aliases.get(ref.with_version(None).uri)
            if resolved is None:
                try:
                    resolved = str(self._key_arn(ref))
                except KeyNotFound:
                    continue
                self._aliases.put(ref.with_version(None).uri, resolved)
            parsed = KmsArn.parse(resolved)
            if parsed is not None:
                found.append(parsed)
        return found

    # -- signing -------------------------------------------------------------

    def _public(self, key: KeyRef) -> signing.PublicKey:
        """The key's public key, cached for ``public_key_ttl``.

        KMS refuses ``GetPublicKey`` for a disabled key or one pending deletion
        (:class:`KeyDisabled`), so local verification notices a state change
        made elsewhere within ``public_key_ttl``, also when a signature pins the
        key's only version; changes made through this provider drop the entry.
        """
        check_ref(key)
        cached = self._public_keys.get(key.with_version(None).uri)
        if cached is None:
            client = self._client_for(key)
            with kms_errors("GetPublicKey", key.uri):
                response = client.get_public_key(KeyId=key.key_id)
            spec = str(response.get("KeySpec") or response.get("CustomerMasterKeySpec"))
            if spec not in signing.ALGORITHMS or response.get("KeyUsage") != "SIGN_VERIFY":
                raise ConfigError(
                    f"{key.uri} is a {spec} {response.get('KeyUsage')} key, not a signing key; "
                    "aws-kms signs with ECC_NIST_P256, ECC_NIST_P384 and RSA SIGN_VERIFY keys"
                )
            cached = signing.PublicKey.from_der(
                str(response["KeyId"]), spec, bytes(response["PublicKey"])
            )
            self._public_keys.put(key.with_version(None).uri, cached)
        if key.version not in (None, "1"):
            raise KeyNotFound(
                f"{key.uri}: a KMS signing key has one version, 1 (KMS does not rotate "
                "asymmetric keys)",
                provider=SCHEME,
            )
        return cached

    def _forget(self, key: KeyRef, arn: KmsArn) -> None:
        """Drop the cached public key of ``key`` (under any name) after its state changed."""
        self._public_keys.discard(
            lambda name, public: public.arn == str(arn) or name == key.with_version(None).uri
        )

    def public_key(self, key: KeyRef) -> bytes:
        """The SubjectPublicKeyInfo PEM of a signing key (``GetPublicKey``, cached)."""
        return self._public(key).pem

    def sign(self, key: KeyRef, message: bytes) -> Signature:
        """KMS ``Sign``; messages over 4 096 bytes are hashed here and signed as a digest."""
        public = self._public(key)
        algorithm = public.algorithm
        payload, message_type = signing.message_and_type(message, algorithm)
        client = self._client_for(key)
        with kms_errors("Sign", key.uri):
            response = client.sign(
                KeyId=key.key_id,
                Message=payload,
                MessageType=message_type,
                SigningAlgorithm=algorithm.kms_name,
            )
        return Signature(
            value=bytes(response["Signature"]),
            key_uri=key_ref(str(response["KeyId"])).uri,
            key_version="1",
            algorithm=algorithm.name,
        )

    def verify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """Verify locally with the cached public key, or with KMS ``Verify`` (``verify_with``)."""
        public = self._public(key)
        if self.options.verify_with == "local":
            return signing.verify_locally(public, message, signature)
        signing.check_format(public, signature)
        payload, message_type = signing.message_and_type(message, public.algorithm)
        client = self._client_for(key)
        try:
            with kms_errors("Verify", key.uri):
                response = client.verify(
                    KeyId=key.key_id,
                    Message=payload,
                    MessageType=message_type,
                    Signature=signature,
                    SigningAlgorithm=public.algorithm.kms_name,
                )
        except ProviderError as error:
            if error.code == "KMSInvalidSignatureException":
                return False
            raise
        return bool(response["SignatureValid"])

    # -- management ----------------------------------------------------------

    def create_key(self, name: str, spec: KeySpec) -> KeyMetadata:
        """Create a KMS key and the alias ``alias/<name>``; a taken alias is :class:`KeyExists`.

        Key options: ``multi_region`` (``true``/``false``) and
        ``custom_key_store_id`` (a CloudHSM key store, which must be
        connected; symmetric keys only).
        """
        alias = alias_name(name)
        if spec.key_type not in self.key_types:
            raise UnsupportedOperation(
                SCHEME,
                f"create_key for {spec.key_type.value} keys",
                f"choose one of {', '.join(sorted(t.value for t in self.key_types))}",
            )
        options = dict(spec.options)
        unknown = sorted(set(options) - set(SPEC_OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown aws-kms key option(s) {', '.join(unknown)}; "
                f"it accepts {', '.join(SPEC_OPTIONS)}"
            )
        client = self.client()
        request: dict[str, Any] = {
            "Description": spec.description,
            "KeySpec": signing.KEY_SPECS[spec.key_type],
            "KeyUsage": "ENCRYPT_DECRYPT" if spec.purpose is KeyPurpose.WRAP else "SIGN_VERIFY",
        }
        if spec.labels:
            request["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in spec.labels]
        if _flag(options.get("multi_region", "false"), "multi_region"):
            request["MultiRegion"] = True
        store = options.get("custom_key_store_id")
        if store:
            from .cloudhsm import require_connected

            if spec.key_type is not KeyType.AES_256:
                raise ConfigError("CloudHSM key stores hold symmetric (aes-256) keys only")
            if request.get("MultiRegion"):
                raise ConfigError("a CloudHSM key store cannot hold multi-Region keys")
            require_connected(client, store)
            request.update(Origin="AWS_CLOUDHSM", CustomKeyStoreId=store)
        if self._alias_exists(client, alias):
            raise KeyExists(
                f"AWS KMS alias {alias} already exists; choose another name",
                provider=SCHEME,
                code="AlreadyExistsException",
            )
        with kms_errors("CreateKey", alias):
            created = client.create_key(**request)["KeyMetadata"]
        try:
            with kms_errors("CreateAlias", alias):
                client.create_alias(AliasName=alias, TargetKeyId=created["KeyId"])
        except KeyExists:
            # Lost a race for the name: do not leave an unnamed key behind.
            client.schedule_key_deletion(
                KeyId=created["KeyId"], PendingWindowInDays=MIN_DELETION_DAYS
            )
            raise
        return self._metadata(created, rotations=[], extra_facts={"alias": alias})

    @staticmethod
    def _alias_exists(client: Any, alias: str) -> bool:
        try:
            with kms_errors("DescribeKey", alias):
                client.describe_key(KeyId=alias)
        except KeyNotFound:
            return False
        return True

    def _metadata(
        self,
        described: dict[str, Any],
        *,
        rotations: Sequence[dict[str, Any]],
        extra_facts: dict[str, str] | None = None,
        labels: Sequence[tuple[str, str]] = (),
    ) -> KeyMetadata:
        spec = str(described.get("KeySpec") or described.get("CustomerMasterKeySpec"))
        key_type = signing.KEY_TYPES.get(spec)
        usage = described.get("KeyUsage")
        expected_usage = "ENCRYPT_DECRYPT" if spec == "SYMMETRIC_DEFAULT" else "SIGN_VERIFY"
        if key_type is None or usage != expected_usage:
            raise UnsupportedOperation(
                SCHEME,
                f"keys of spec {spec} and usage {usage}",
                "Aureus uses SYMMETRIC_DEFAULT wrapping keys and ECC/RSA signing keys",
            )
        state = _STATES.get(str(described.get("KeyState")), KeyState.UNAVAILABLE)
        created_at = _utc(described["CreationDate"])
        versions = [KeyVersion(version="1", created_at=created_at, state=state)]
        for number, rotation in enumerate(
            sorted(rotations, key=lambda r: _utc(r["RotationDate"])), start=2
        ):
            versions.append(
                KeyVersion(
                    version=str(number), created_at=_utc(rotation["RotationDate"]), state=state
                )
            )
        extra = {
            "key_id": str(described["KeyId"]),
            "key_manager": str(described.get("KeyManager", "")),
            "origin": str(described.get("Origin", "")),
            "key_spec": spec,
            "multi_region": str(bool(described.get("MultiRegion", False))).lower(),
        }
        region_config = described.get("MultiRegionConfiguration")
        if region_config:
            extra["multi_region_type"] = str(region_config.get("MultiRegionKeyType", ""))
            primary = region_config.get("PrimaryKey") or {}
            if primary:
                extra["primary_region"] = str(primary.get("Region", ""))
        for field, name in (
            ("CustomKeyStoreId", "custom_key_store_id"),
            ("CloudHsmClusterId", "cloudhsm_cluster_id"),
            ("DeletionDate", "deletion_date"),
        ):
            if described.get(field):
                value = described[field]
                extra[name] = _utc(value).isoformat() if field == "DeletionDate" else str(value)
        extra.update(extra_facts or {})
        return KeyMetadata(
            ref=key_ref(str(described["Arn"])),
            key_type=key_type,
            state=state,
            created_at=created_at,
            current_version=versions[-1].version,
            versions=tuple(versions),
            description=str(described.get("Description", "")),
            labels=dict(labels),
            extra=extra,
            usage=KeyPurpose.WRAP if usage == "ENCRYPT_DECRYPT" else KeyPurpose.SIGN,
        )

    def _describe(self, client: Any, key_id: str, subject: str, *, tags: bool) -> KeyMetadata:
        with kms_errors("DescribeKey", subject):
            described = client.describe_key(KeyId=key_id)["KeyMetadata"]
        arn = str(described["Arn"])
        symmetric = described.get("KeySpec") == "SYMMETRIC_DEFAULT"
        rotations: list[dict[str, Any]] = []
        facts: dict[str, str] = {}
        if symmetric:
            with kms_errors("ListKeyRotations", subject):
                for page in client.get_paginator("list_key_rotations").paginate(KeyId=arn):
                    rotations.extend(page.get("Rotations", []))
            if described.get("Origin") == "AWS_KMS" and described.get("KeyManager") == "CUSTOMER":
                with kms_errors("GetKeyRotationStatus", subject):
                    status = client.get_key_rotation_status(KeyId=arn)
                facts["rotation_enabled"] = str(bool(status.get("KeyRotationEnabled"))).lower()
                if status.get("RotationPeriodInDays"):
                    facts["rotation_period_days"] = str(status["RotationPeriodInDays"])
        labels: list[tuple[str, str]] = []
        if tags:
            with kms_errors("ListResourceTags", subject):
                listed = client.list_resource_tags(KeyId=arn).get("Tags", [])
            labels = [(str(t["TagKey"]), str(t["TagValue"])) for t in listed]
        return self._metadata(described, rotations=rotations, extra_facts=facts, labels=labels)

    def describe_key(self, key: KeyRef) -> KeyMetadata:
        """``DescribeKey`` with versions from ``ListKeyRotations``; a pinned version must exist."""
        metadata = self._describe(self._client_for(key), key.key_id, key.uri, tags=True)
        if key.version is not None:
            metadata.version_info(key.version)
        return metadata

    def list_keys(self) -> Sequence[KeyMetadata]:
        """Customer-managed keys of a type Aureus uses, in the provider's region."""
        client = self.client()
        found: list[KeyMetadata] = []
        with kms_errors("ListKeys", self.region):
            pages = list(client.get_paginator("list_keys").paginate())
        for page in pages:
            for entry in page.get("Keys", []):
                try:
                    metadata = self._describe(client, entry["KeyArn"], entry["KeyArn"], tags=False)
                except (UnsupportedOperation, KeyNotFound):
                    continue
                if dict(metadata.extra).get("key_manager") == "CUSTOMER":
                    found.append(metadata)
        return found

    def rotate_key(self, key: KeyRef) -> KeyMetadata:
        """On-demand rotation (``RotateKeyOnDemand``) of a symmetric key.

        KMS rotates asynchronously: against AWS the new version may show in
        :meth:`describe_key` a little later.  Old material keeps decrypting.
        """
        before = self.describe_key(key.with_version(None))
        facts = dict(before.extra)
        if before.key_type is not KeyType.AES_256 or facts.get("origin") != "AWS_KMS":
            raise UnsupportedOperation(
                SCHEME,
                "rotate_key",
                f"KMS rotates only symmetric keys with KMS-generated material, and {before.uri} "
                f"is {before.key_type.value} with origin {facts.get('origin')}: create a new "
                "key and move the alias",
            )
        client = self._client_for(before.ref)
        with kms_errors("RotateKeyOnDemand", before.uri):
            client.rotate_key_on_demand(KeyId=before.ref.key_id)
        return self.describe_key(before.ref)

    def enable_rotation(self, key: KeyRef, period_days: int = 365) -> KeyMetadata:
        """Turn on automatic rotation every ``period_days`` (90 to 2560) days."""
        if not 90 <= period_days <= 2560:
            raise ConfigError("KMS rotation periods run from 90 to 2560 days")
        client = self._client_for(key)
        with kms_errors("EnableKeyRotation", key.uri):
            client.enable_key_rotation(KeyId=key.key_id, RotationPeriodInDays=period_days)
        return self.describe_key(key.with_version(None))

    def replicate_key(self, key: KeyRef, region: str) -> KeyMetadata:
        """``ReplicateKey``: a replica of a multi-Region key in ``region``."""
        check_region(region, "the replica region")
        primary = self.describe_key(key.with_version(None))
        if dict(primary.extra).get("multi_region") != "true":
            raise ConfigError(
                f"{primary.uri} is a single-Region key; only multi-Region keys replicate: "
                "create one with KeySpec options multi_region=true"
            )
        client = self._client_for(primary.ref)
        with kms_errors("ReplicateKey", primary.uri):
            replica = client.replicate_key(KeyId=primary.ref.key_id, ReplicaRegion=region)
        return self._metadata(replica["ReplicaKeyMetadata"], rotations=[])

    def set_version_state(self, key: KeyRef, state: KeyState) -> KeyMetadata:
        """Enable or disable the whole key (``EnableKey`` / ``DisableKey``).

        KMS has no per-version state, so ``key`` must not pin a version.
        """
        if key.version is not None:
            raise UnsupportedOperation(
                SCHEME,
                "set_version_state for a key version",
                "KMS has no per-version state: pass the key without ?version= to enable "
                "or disable the whole key",
            )
        if state not in (KeyState.ENABLED, KeyState.DISABLED):
            raise ConfigError(
                f"set_version_state takes enabled or disabled, not {state.value}; "
                "use schedule_deletion(confirm=True) to delete a key"
            )
        client, arn = self._lifecycle_target(key)
        if state is KeyState.ENABLED:
            with kms_errors("EnableKey", key.uri):
                client.enable_key(KeyId=arn.resource_id)
        else:
            with kms_errors("DisableKey", key.uri):
                client.disable_key(KeyId=arn.resource_id)
        self._forget(key, arn)
        return self.describe_key(key)

    def schedule_deletion(
        self, key: KeyRef, *, pending_days: int = MAX_DELETION_DAYS, confirm: bool = False
    ) -> KeyMetadata:
        """``ScheduleKeyDeletion`` after ``pending_days`` (7 to 30); needs ``confirm=True``.

        Once deleted, nothing wrapped under the key can ever be decrypted.
        """
        if not confirm:
            raise ConfigError(
                f"deleting {key.uri} makes everything it wrapped undecryptable: pass "
                "confirm=True to schedule the deletion"
            )
        if not MIN_DELETION_DAYS <= pending_days <= MAX_DELETION_DAYS:
            raise ConfigError("KMS deletion waiting periods run from 7 to 30 days")
        client, arn = self._lifecycle_target(key)
        with kms_errors("ScheduleKeyDeletion", key.uri):
            client.schedule_key_deletion(KeyId=arn.resource_id, PendingWindowInDays=pending_days)
        self._forget(key, arn)
        return self.describe_key(key.with_version(None))

    def cancel_deletion(self, key: KeyRef) -> KeyMetadata:
        """``CancelKeyDeletion``; the key comes back disabled, as KMS leaves it."""
        client, arn = self._lifecycle_target(key)
        with kms_errors("CancelKeyDeletion", key.uri):
            client.cancel_key_deletion(KeyId=arn.resource_id)
        self._forget(key, arn)
        return self.describe_key(key.with_version(None))

    def list_aliases(self, key: KeyRef | None = None) -> dict[str, KeyRef]:
        """Customer aliases in the provider's region (or of ``key``), each to its key."""
        client = self._client_for(key) if key is not None else self.client()
        args = {"KeyId": key.key_id} if key is not None else {}
        aliases: dict[str, KeyRef] = {}
        with kms_errors("ListAliases", key.uri if key else self.region):
            for page in client.get_paginator("list_aliases").paginate(**args):
                for entry in page.get("Aliases", []):
                    name = str(entry["AliasName"])
                    if name.startswith("alias/aws/") or not entry.get("TargetKeyId"):
                        continue
                    arn = str(entry["AliasArn"]).replace(name, f"key/{entry['TargetKeyId']}")
                    aliases[name] = key_ref(arn)
        return aliases

    def set_alias(self, name: str, key: KeyRef) -> None:
        """Point ``alias/<name>`` at ``key``, creating the alias if needed."""
        alias = alias_name(name)
        client = self._client_for(key)
        if self._alias_exists(client, alias):
            with kms_errors("UpdateAlias", alias):
                client.update_alias(AliasName=alias, TargetKeyId=key.key_id)
        else:
            with kms_errors("CreateAlias", alias):
                client.create_alias(AliasName=alias, TargetKeyId=key.key_id)

    def close(self) -> None:
        """Close the KMS clients and forget cached public keys; safe to call twice."""
        self._clients.close()
        self._public_keys.clear()
        self._aliases.clear()
