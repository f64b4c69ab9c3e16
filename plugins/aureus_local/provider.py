"""The ``local`` key provider: AES-256 wrapping and Ed25519 / ECDSA P-256 signing keys.

Keys live in a :class:`~aureus_local.keystore.Keystore` directory and are
named ``local://NAME`` (current version) or ``local://NAME?version=N``.
Every key is versioned: rotation adds a version and makes it current, and
older versions keep unwrapping and verifying.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey, WrappedKey
from aureus_core.errors import (
    AureusError,
    ConfigError,
    CredentialError,
    DecryptionError,
    ProviderUnavailable,
)
from aureus_core.interfaces import Capability, KeyMaterial, KeyProviderBase
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyMetadata, KeySpec, KeyState, KeyType, KeyVersion
from aureus_core.sensitive import Secret
from aureus_core.signature import Signature

from . import macs, signing, wrapping
from . import material as key_material
from .document import KeyRecord, VersionRecord
from .keystore import Keystore, Snapshot, utc_now
from .naming import SCHEME, check_name, key_ref, key_uri, parse_ref


class LocalKeyProvider(KeyProviderBase):
    """Keys in a local keystore directory, sealed under a key file or a passphrase.

    Construction does no I/O: the keystore is read on the first operation and
    created on the first write.  All methods are thread-safe.
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
            Capability.IMPORT,
            Capability.MAC,
        }
    )
    key_types = key_material.SUPPORTED_TYPES

    def __init__(
        self,
        keystore_dir: Path,
        *,
        passphrase: Secret[str] | None = None,
        scrypt_log_n: int = 15,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._clock = clock
        self._keystore = Keystore(
            Path(keystore_dir), passphrase=passphrase, scrypt_log_n=scrypt_log_n, clock=self._now
        )

    def __repr__(self) -> str:
        return f"LocalKeyProvider(keystore_dir={str(self.keystore_dir)!r})"

    @property
    def keystore_dir(self) -> Path:
        """The keystore directory."""
        return self._keystore.directory

    @property
    def keystore(self) -> Keystore:
        """The underlying keystore."""
        return self._keystore

    # -- key management ------------------------------------------------------

    def create_key(self, name: str, spec: KeySpec) -> KeyMetadata:
        """Create ``local://NAME`` with fresh material as version 1."""
        name = check_name(name)
        key_type = self._check_spec(spec)
        record = self._keystore.add_key(
            name,
            key_type,
            key_material.generate(key_type),
            description=spec.description,
            labels=spec.labels,
            origin="generated",
            created_at=self._now(),
        )
        return _metadata(record)

    def describe_key(self, key: KeyRef) -> KeyMetadata:
        """The key's metadata; a pinned version must exist."""
        record, _ = self._find(key)
        return _metadata(record)

    def list_keys(self) -> Sequence[KeyMetadata]:
        """Every key in the keystore, sorted by name."""
        snapshot = self._keystore.snapshot()
        if snapshot is None:
            return []
        return [_metadata(snapshot.keys[name]) for name in sorted(snapshot.keys)]

    def rotate_key(self, key: KeyRef) -> KeyMetadata:
        """Add a version with fresh material of the same type and make it current."""
        record, _ = self._find(key)
        rotated = self._keystore.add_version(
            record.name,
            lambda stored: key_material.generate(stored.key_type),
            origin="generated",
            created_at=self._now(),
        )
        return _metadata(rotated)

    def import_key(
        self, name: str, spec: KeySpec, material: KeyMaterial, *, new_version: bool = False
    ) -> KeyMetadata:
        """Import raw AES-256 bytes or a PEM private key, as a new key or a new version."""
        name = check_name(name)
        key_type = self._check_spec(spec)
        stored = key_material.from_import(key_type, material)
        if not new_version:
            record = self._keystore.add_key(
                name,
                key_type,
                stored,
                description=spec.description,
                labels=spec.labels,
                origin="imported",
                created_at=self._now(),
            )
            return _metadata(record)

        def same_type(existing: KeyRecord) -> bytes:
            if existing.key_type is not key_type:
                raise ConfigError(
                    f"key {key_uri(name)} is an {existing.key_type.value} key; a new version "
                    f"must be {existing.key_type.value} too, not {key_type.value}"
                )
            return stored

        record = self._keystore.add_version(
            name, same_type, origin="imported", created_at=self._now()
        )
        return _metadata(record)

    # -- signing -------------------------------------------------------------

    def public_key(self, key: KeyRef) -> bytes:
        """The SubjectPublicKeyInfo PEM of the current (or pinned) version."""
        private, _, _ = self._signing_key(key, "it has no public key")
        return key_material.public_key_pem(private)

    def sign(self, key: KeyRef, message: bytes) -> Signature:
        """Sign with the current (or pinned) version."""
        private, record, version = self._signing_key(key, "it cannot sign")
        return Signature(
            value=signing.sign(private, bytes(message)),
            key_uri=key_uri(record.name),
            key_version=str(version.version),
            algorithm=signing.ALGORITHMS[record.key_type],
        )

    def verify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """Check a raw signature against the pinned version, or else the current one."""
        private, _, _ = self._signing_key(key, "it cannot verify signatures")
        return signing.verify(private.public_key(), bytes(message), bytes(signature))

    # -- wrapping ------------------------------------------------------------

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """Wrap a data key with the current (or pinned) version, binding ``context``."""
        snapshot, record, version = self._locate(key)
        if record.key_type is not KeyType.AES_256:
            raise ConfigError(
                f"key {key_uri(record.name)} is an {record.key_type.value} signing key; "
                "it cannot wrap data keys: use an aes-256 key"
            )
        encrypted = wrapping.wrap(
            snapshot.material(record, version),
            record.name,
            version.version,
            bytes(data_key),
            EncryptionContext.coerce(context),
        )
        return WrappedKey(key=key_ref(record.name, version.version), encrypted=encrypted)

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """Unwrap a data key; every failure is the same opaque :class:`DecryptionError`.

        Problems with the keystore itself (wrong passphrase, a damaged file)
        are not the message's fault and are raised as they are.
        """
        try:
            name, pinned = parse_ref(key)
            named = wrapping.parse_info(encrypted)
            if named is None or named[0] != name or pinned not in (None, named[1]):
                raise DecryptionError()
            snapshot, record, version = self._locate(key_ref(*named))
            if record.key_type is not KeyType.AES_256:
                raise DecryptionError()
            return wrapping.unwrap(
                snapshot.material(record, version),
                record.name,
                version.version,
                encrypted,
                EncryptionContext.coerce(context),
            )
        except (CredentialError, ProviderUnavailable):
            raise
        except AureusError:
            raise DecryptionError() from None

    # -- MACs ----------------------------------------------------------------

    def mac(self, key: KeyRef, message: bytes) -> bytes:
        """HMAC-SHA-256 of ``message`` under a key derived from an aes-256 key version.

        The HMAC key is HKDF-SHA-256 of the version's material with a fixed
        label, so it is never the AES key itself and never leaves the provider.
        """
        snapshot, record, version = self._locate(key)
        if record.key_type is not KeyType.AES_256:
            raise ConfigError(
                f"key {key_uri(record.name)} is an {record.key_type.value} signing key; "
                "it cannot compute MACs: use an aes-256 key"
            )
        return macs.mac(snapshot.material(record, version), bytes(message))

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        """``local://NAME?version=V`` if a key of this keystore wrapped ``encrypted``."""
        named = wrapping.parse_info(encrypted)
        if named is None:
            return None
        snapshot = self._keystore.snapshot()
        if snapshot is None or named[0] not in snapshot.keys:
            return None
        return key_ref(*named)

    def close(self) -> None:
        """Drop the cached document and decrypted material."""
        self._keystore.close()

    # -- helpers -------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ConfigError("the provider's clock must return timezone-aware datetimes")
        return now.astimezone(timezone.utc)

    def _check_spec(self, spec: KeySpec) -> KeyType:
        key_type = key_material.check_supported(spec.key_type)
        if spec.options:
            names = ", ".join(name for name, _ in spec.options)
            raise ConfigError(f"the local provider takes no key options (got: {names})")
        return key_type

    def _locate(self, key: KeyRef | str) -> tuple[Snapshot, KeyRecord, VersionRecord]:
        """The snapshot, key and version (pinned, else current) ``key`` names."""
        name, pinned = parse_ref(key)
        snapshot = self._keystore.snapshot()
        record = None if snapshot is None else snapshot.keys.get(name)
        if snapshot is None or record is None:
            raise self._keystore.not_found(name)
        version = record.current if pinned is None else record.version(pinned)
        if version is None:
            raise self._keystore.not_found(name, pinned)
        return snapshot, record, version

    def _find(self, key: KeyRef | str) -> tuple[KeyRecord, VersionRecord]:
        _, record, version = self._locate(key)
        return record, version

    def _signing_key(
        self, key: KeyRef, refusal: str
    ) -> tuple[key_material.PrivateKey, KeyRecord, VersionRecord]:
        snapshot, record, version = self._locate(key)
        if record.key_type is KeyType.AES_256:
            raise ConfigError(
                f"key {key_uri(record.name)} is an aes-256 wrapping key; {refusal}: "
                "use an ed25519 or ecdsa-p256 key"
            )
        private = key_material.private_key(record.key_type, snapshot.material(record, version))
        return private, record, version


def _metadata(record: KeyRecord) -> KeyMetadata:
    return KeyMetadata(
        ref=key_ref(record.name),
        key_type=record.key_type,
        state=KeyState.ENABLED,
        created_at=record.created_at,
        current_version=str(record.current_version),
        versions=tuple(
            KeyVersion(version=str(v.version), created_at=v.created_at, state=KeyState.ENABLED)
            for v in record.versions
        ),
        description=record.description,
        labels=dict(record.labels),
        extra={"origin": record.current.origin},
    )
