"""The ``local`` key provider: AES-256 wrapping and Ed25519 / ECDSA P-256 signing keys.

Imported raw keyring keys (AES-128/192/256, RSA 2048-4096) wrap data keys
under a key namespace and key name of the user's choosing, in the AWS
Encryption SDK's raw AES / raw RSA keyring layouts (see
:mod:`aureus_local.rawkeys`); they have a single version.

Keys live in a :class:`~aureus_local.keystore.Keystore` directory and are
named ``local://NAME`` (current version) or ``local://NAME?version=N``.
Every key is versioned: rotation adds a version and makes it current, and
older versions keep unwrapping and verifying until they are disabled, fall
below the key's minimum decryption version, or are destroyed (see
docs/rotation.md).  Wraps and signatures are counted per version.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import attrs

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey, WrappedKey
from aureus_core.errors import (
    AureusError,
    ConfigError,
    CredentialError,
    DecryptionError,
    ImportRefused,
    KeyDisabled,
    KeyExists,
    ProviderUnavailable,
    hint,
)
from aureus_core.interfaces import Capability, KeyMaterial, KeyProviderBase
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyMetadata, KeyPurpose, KeySpec, KeyState, KeyType, KeyVersion
from aureus_core.sensitive import Secret
from aureus_core.signature import Signature
from aureus_core.wrapped_import import (
    ImportParameters,
    check_import_token,
    decode_material,
    import_parameters_of,
    unwrap_for_import,
)

from . import macs, rawkeys, signing, wrapping
from . import material as key_material
from .document import KeyRecord, VersionRecord
from .imports import ImportJobs
from .keystore import (
    DEFAULT_RECHECK_INTERVAL,
    MAX_WRAPS_PER_VERSION,
    PASSPHRASE_ENV,
    USAGE_FLUSH_INTERVAL,
    USAGE_FLUSH_OPERATIONS,
    Keystore,
    KeystoreInfo,
    Snapshot,
    utc_now,
)
from .naming import SCHEME, check_name, key_ref, key_uri, parse_ref, parse_version
from .sealing import DEFAULT_SCRYPT_LOG_N


class LocalKeyProvider(KeyProviderBase):
    """Keys in a local keystore directory, sealed under a key file or a passphrase.

    Construction does no I/O: the keystore is read on the first operation and
    created on the first write.  All methods are thread-safe.

    Each wrap counts one message for the wrapping version, each signature one
    message and the signed bytes for the signing version.  The counts are
    flushed into the keystore at most every ``usage_flush_interval`` seconds
    (on the ``monotonic`` clock) or ``usage_flush_operations`` uses, with
    every other write and on :meth:`close`.

    ``keystore_id``, ``fingerprint``, ``min_generation``, ``state_file``,
    ``scrypt_log_n``, ``insecure_kdf_for_tests``, ``max_wraps_per_version``
    and ``recheck_interval`` are passed to
    :class:`~aureus_local.keystore.Keystore`.  ECDSA signatures in high-S
    form fail to verify unless ``accept_high_s``.
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
            Capability.LIFECYCLE,
            Capability.MIN_DECRYPTION_VERSION,
            Capability.DESTROY_VERSION,
            Capability.WRAPPED_IMPORT,
        }
    )
    key_types = key_material.SUPPORTED_TYPES

    def __init__(
        self,
        keystore_dir: Path,
        *,
        passphrase: Secret[str] | None = None,
        passphrase_source: str = PASSPHRASE_ENV,
        scrypt_log_n: int = DEFAULT_SCRYPT_LOG_N,
        insecure_kdf_for_tests: bool = False,
        keystore_id: str | None = None,
        fingerprint: str | None = None,
        min_generation: int = 0,
        state_file: Path | None = None,
        max_wraps_per_version: int = MAX_WRAPS_PER_VERSION,
        accept_high_s: bool = False,
        clock: Callable[[], datetime] = utc_now,
        usage_flush_interval: float = USAGE_FLUSH_INTERVAL,
        usage_flush_operations: int = USAGE_FLUSH_OPERATIONS,
        monotonic: Callable[[], float] = time.monotonic,
        recheck_interval: float = DEFAULT_RECHECK_INTERVAL,
    ) -> None:
        self._clock = clock
        self._accept_high_s = accept_high_s
        self._keystore = Keystore(
            Path(keystore_dir),
            passphrase=passphrase,
            passphrase_source=passphrase_source,
            scrypt_log_n=scrypt_log_n,
            insecure_kdf_for_tests=insecure_kdf_for_tests,
            keystore_id=keystore_id,
            fingerprint=fingerprint,
            min_generation=min_generation,
            state_file=None if state_file is None else Path(state_file),
            max_wraps_per_version=max_wraps_per_version,
            clock=self._now,
            usage_flush_interval=usage_flush_interval,
            usage_flush_operations=usage_flush_operations,
            monotonic=monotonic,
            recheck_interval=recheck_interval,
        )
        self._imports = ImportJobs(self._keystore)

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

    def keystore_info(self) -> KeystoreInfo:
        """The keystore's ID, fingerprint and generation (what ``[providers.local]`` can pin)."""
        return self._keystore.info()

    def change_passphrase(self, new_passphrase: Secret[str]) -> KeystoreInfo:
        """Re-seal the keystore under a new passphrase, atomically; see :class:`Keystore`."""
        return self._keystore.change_passphrase(new_passphrase)

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
        return self._metadata(record)

    def describe_key(self, key: KeyRef) -> KeyMetadata:
        """The key's metadata; a pinned version must exist."""
        record, _ = self._find(key)
        return self._metadata(record)

    def list_keys(self) -> Sequence[KeyMetadata]:
        """Every key in the keystore, sorted by name."""
        snapshot = self._keystore.snapshot()
        if snapshot is None:
            return []
        return [self._metadata(snapshot.keys[name]) for name in sorted(snapshot.keys)]

    def rotate_key(self, key: KeyRef) -> KeyMetadata:
        """Add a version with fresh material of the same type and make it current."""
        record, _ = self._find(key)
        _refuse_raw_versions(record, "rotated")
        rotated = self._keystore.add_version(
            record.name,
            lambda stored: key_material.generate(stored.key_type),
            origin="generated",
            created_at=self._now(),
        )
        return self._metadata(rotated)

    def import_key(
        self, name: str, spec: KeySpec, material: KeyMaterial, *, new_version: bool = False
    ) -> KeyMetadata:
        """Import raw AES-256 bytes or a PEM private key, as a new key or a new version.

        With the key options ``namespace``, ``key_name`` (and ``padding`` for
        RSA) the key becomes a raw keyring key: AES-128/192/256 raw bytes, or
        an RSA 2048/3072/4096 PEM private key (or public key, to wrap only).
        """
        name = check_name(name)
        if material.format == "wrapped":
            return self._import_wrapped(name, spec, material, new_version=new_version)
        keyring = rawkeys.keyring_from_options(
            KeyType.parse(spec.key_type), dict(spec.options), material
        )
        if keyring is not None:
            return self._import_raw(name, spec, keyring, material, new_version=new_version)
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
            return self._metadata(record)

        def same_type(existing: KeyRecord) -> bytes:
            _refuse_raw_versions(existing, "given new versions")
            if existing.key_type is not key_type:
                raise ConfigError(
                    f"key {key_uri(name)} is an {existing.key_type.value} key; a new version "
                    f"must be {existing.key_type.value} too, not {key_type.value}"
                )
            return stored

        record = self._keystore.add_version(
            name, same_type, origin="imported", created_at=self._now()
        )
        return self._metadata(record)

    def import_parameters(
        self, name: str, spec: KeySpec, *, new_version: bool = False
    ) -> ImportParameters:
        """An import job for ``name``: an RSA-3072 key pair sealed beside the keystore.

        The local provider unwraps on the host, so it offers RSA-OAEP with
        SHA-256 (``rsa-oaep-sha256-aes-kwp``); see :mod:`aureus_local.imports`.
        """
        name = check_name(name)
        key_type = self._check_spec(spec)
        snapshot = self._keystore.snapshot()
        exists = snapshot is not None and name in snapshot.keys
        if exists and not new_version:
            raise KeyExists(
                f"key {key_uri(name)} already exists: ask for parameters with new_version "
                "to import a new version of it",
                provider=SCHEME,
            )
        if new_version and not exists:
            raise self._keystore.not_found(name)
        job, pem = self._imports.create(name, key_type, new_version=new_version, now=self._now())
        return import_parameters_of(job, key_uri=key_uri(name), wrapping_public_key=pem)

    def _import_wrapped(
        self, name: str, spec: KeySpec, material: KeyMaterial, *, new_version: bool
    ) -> KeyMetadata:
        key_type = self._check_spec(spec)
        token = check_import_token(material.import_token)
        job, private = self._imports.open(token)
        try:
            job.check(
                uri=key_uri(name),
                name=name,
                key_type=key_type,
                new_version=new_version,
                now=self._now(),
            )
        except ImportRefused as error:
            if self._now() >= job.expires_at:
                self._imports.sweep(self._now())
            raise ImportRefused(str(error), provider=SCHEME) from None
        unwrapped = unwrap_for_import(material.data.reveal(), private, job.algorithm, token)
        try:
            plain = decode_material(key_type, bytes(unwrapped))
        finally:
            unwrapped[:] = bytes(len(unwrapped))
        self._imports.claim(token)  # used up before the key is stored: it imports once
        return self.import_key(name, spec, plain, new_version=new_version)

    # -- signing -------------------------------------------------------------

    def public_key(self, key: KeyRef) -> bytes:
        """The SubjectPublicKeyInfo PEM of the current (or pinned) version.

        Disabled versions and those below the minimum still export their
        public key; a destroyed version has none (:class:`KeyDisabled`).
        """
        snapshot, record, version = self._locate(key)
        if record.keyring is not None:
            if version.destroyed:
                _check_usable(record, version)
            material = snapshot.material(record, version)
            return rawkeys.public_key_pem(record.key_type, record.keyring, material)
        private, _, _ = self._signing_key(key, "it has no public key", usable=False)
        return key_material.public_key_pem(private)

    def sign(self, key: KeyRef, message: bytes) -> Signature:
        """Sign with the current (or pinned) version; counts a message and its bytes."""
        private, record, version = self._signing_key(key, "it cannot sign")
        data = bytes(message)
        signature = Signature(
            value=signing.SIGNERS[record.key_type](private, data),
            key_uri=key_uri(record.name),
            key_version=str(version.version),
            algorithm=signing.ALGORITHMS[record.key_type],
        )
        self._keystore.record_use(record.name, version.version, byte_count=len(data))
        return signature

    def verify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """Check a raw signature against the pinned version, or else the current one.

        The signature is checked first: one that does not verify is ``False``
        whatever the version's state, and so is any signature for a destroyed
        version (there is nothing left to check it with), so a caller who
        submits signatures learns nothing about the key's lifecycle.  A valid
        signature by a disabled version, or one below the minimum decryption
        version, raises :class:`KeyDisabled`.
        """
        snapshot, record, version = self._locate(key)
        _refuse_aes(record, "it cannot verify signatures")
        if version.destroyed:
            return False
        private = self._private_key(snapshot, record, version)
        public = snapshot.loaded(record, version, "public", lambda _: private.public_key())
        valid = signing.verify(
            public,
            bytes(message),
            bytes(signature),
            accept_high_s=self._accept_high_s,
        )
        if valid:
            _check_usable(record, version)
        return valid

    # -- wrapping ------------------------------------------------------------

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """Wrap a data key with the current (or pinned) version, binding ``context``.

        Counts one message for the version (not the data key's bytes: the
        plaintext it will protect is unknown here), and takes one of the
        version's AES-GCM wraps (:class:`KeyDisabled` once they are used up:
        rotate the key).
        """
        snapshot, record, version = self._locate(key, usable=True)
        if record.keyring is not None:
            if record.key_type in rawkeys.AES_TYPES:  # random GCM IVs: the same bound applies
                try:
                    self._keystore.reserve_wrap(record.name, version.version)
                except KeyDisabled as error:
                    raise KeyDisabled(
                        f"{key_uri(record.name)} has made the most wraps one AES-GCM key may "
                        "make with random 96-bit IVs (NIST SP 800-38D); a raw keyring key "
                        "cannot be rotated: import a new key under a new key name and wrap "
                        "with it",
                        provider=SCHEME,
                        code=error.code,
                    ) from None
            encrypted = rawkeys.wrap(
                record.key_type,
                record.keyring,
                snapshot.material(record, version),
                bytes(data_key),
                EncryptionContext.coerce(context),
            )
            self._keystore.record_use(record.name, version.version)
            return WrappedKey(key=key_ref(record.name, version.version), encrypted=encrypted)
        if record.key_type is not KeyType.AES_256:
            raise ConfigError(
                f"key {key_uri(record.name)} is an {record.key_type.value} signing key; "
                "it cannot wrap data keys: use an aes-256 key"
            )
        self._keystore.reserve_wrap(record.name, version.version)
        encrypted = wrapping.wrap(
            snapshot.aead(record, version),
            record.name,
            version.version,
            bytes(data_key),
            EncryptionContext.coerce(context),
        )
        self._keystore.record_use(record.name, version.version)
        return WrappedKey(key=key_ref(record.name, version.version), encrypted=encrypted)

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """Unwrap a data key; every failure is the same opaque :class:`DecryptionError`.

        Problems with the keystore itself (wrong passphrase, a damaged file)
        are not the message's fault and are raised as they are.  The wrapped
        key is authenticated before the version's lifecycle is consulted: one
        that does not authenticate is an opaque failure whatever the state of
        the version it names, and so is any wrapped key naming a destroyed
        version (nothing is left to authenticate it with).  Only an authentic
        wrapped key of a disabled version, or of one below the key's minimum
        decryption version, raises :class:`KeyDisabled` (naming the key, the
        version and the minimum, nothing secret); its data key is wiped first.
        """
        try:
            name, pinned = parse_ref(key)
            if encrypted.provider_id != wrapping.PROVIDER_ID:
                return self._unwrap_raw(name, pinned, encrypted, EncryptionContext.coerce(context))
            named = wrapping.parse_info(encrypted)
            if named is None or named[0] != name or pinned not in (None, named[1]):
                raise DecryptionError()
            snapshot, record, version = self._locate(key_ref(*named))
            if (
                record.key_type is not KeyType.AES_256
                or version.destroyed
                or record.keyring is not None
            ):
                raise DecryptionError()
            data_key = wrapping.unwrap(
                snapshot.aead(record, version),
                record.name,
                version.version,
                encrypted,
                EncryptionContext.coerce(context),
            )
        except (CredentialError, ProviderUnavailable):
            raise
        except AureusError:
            raise DecryptionError() from None
        try:
            _check_usable(record, version)
        except KeyDisabled:
            data_key[:] = bytes(len(data_key))
            raise
        return data_key

    # -- MACs ----------------------------------------------------------------

    def mac(self, key: KeyRef, message: bytes) -> bytes:
        """HMAC-SHA-256 of ``message`` under a key derived from an aes-256 key version.

        The HMAC key is HKDF-SHA-256 of the version's material with a fixed
        label, so it is never the AES key itself and never leaves the provider.
        A version that may not unwrap may not compute MACs either.
        """
        snapshot, record, version = self._locate(key, usable=True)
        if record.keyring is not None:
            raise ConfigError(
                f"key {key_uri(record.name)} is a raw keyring key; it only wraps data keys "
                "(in the raw keyring layout): compute MACs with an aes-256 key created here"
            )
        if record.key_type is not KeyType.AES_256:
            raise ConfigError(
                f"key {key_uri(record.name)} is an {record.key_type.value} signing key; "
                "it cannot compute MACs: use an aes-256 key"
            )
        return macs.mac(snapshot.material(record, version), bytes(message))

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        """``local://NAME?version=V`` if a key of this keystore wrapped ``encrypted``.

        An ``aureus-local`` encrypted data key names its key and version; any
        other provider ID is claimed only by a raw keyring key whose key
        namespace it is and whose key name and layout the provider info
        carries, and which can unwrap (not a public-key-only RSA key).
        """
        if encrypted.provider_id != wrapping.PROVIDER_ID:
            record = self._raw_owner(encrypted)
            return None if record is None else key_ref(record.name, record.current_version)
        named = wrapping.parse_info(encrypted)
        if named is None:
            return None
        snapshot = self._keystore.snapshot()
        if snapshot is None or named[0] not in snapshot.keys:
            return None
        if snapshot.keys[named[0]].keyring is not None:
            return None
        return key_ref(*named)

    # -- lifecycle -------------------------------------------------------------

    def set_version_state(self, key: KeyRef, state: KeyState) -> KeyMetadata:
        """Enable or disable the version ``key`` pins; the current version stays enabled."""
        name, number = _pinned(key, "enable or disable")
        wanted = KeyState(state)
        if wanted not in (KeyState.ENABLED, KeyState.DISABLED):
            raise ConfigError(
                f"a key version can be set to enabled or disabled, not {wanted.value}; "
                "to destroy one, use destroy_version (`aureus keys destroy`)"
            )

        def change(record: KeyRecord) -> KeyRecord | None:
            version = self._version(record, number)
            pinned = key_uri(name, number)
            if version.state is wanted:
                return None
            if version.destroyed:
                raise ConfigError(
                    f"{pinned} was destroyed: its material is gone, so it can be neither "
                    "enabled nor disabled"
                )
            if wanted is KeyState.DISABLED and number == record.current_version:
                raise ConfigError(
                    f"{pinned} is the current version of {key_uri(name)} and cannot be "
                    f"disabled: rotate first (`aureus keys rotate {key_uri(name)}`), then "
                    "disable this version"
                )
            return record.replacing(attrs.evolve(version, state=wanted))

        return self._metadata(self._keystore.update_key(name, change))

    def set_min_decryption_version(self, key: KeyRef, version: str) -> KeyMetadata:
        """Refuse unwrap, verify and MACs with versions below ``version`` (at most the current).

        The minimum may be lowered again later; destroyed versions stay unusable.
        """
        name, pinned = parse_ref(key)
        if pinned is not None:
            raise ConfigError(
                f"{key_uri(name, pinned)}: name the key without ?version= and give the minimum "
                "version separately"
            )
        number = parse_version(str(version))
        if number is None:
            raise ConfigError(
                f"invalid minimum decryption version {version!r} for {key_uri(name)}: local "
                "key versions are whole numbers counting from 1"
            )

        def change(record: KeyRecord) -> KeyRecord | None:
            self._version(record, number)
            if number > record.current_version:
                raise ConfigError(
                    f"the minimum decryption version of {key_uri(name)} cannot be {number}: "
                    f"the current version is {record.current_version}, and a higher minimum "
                    "would refuse the version that encrypts and signs; rotate first"
                )
            if record.min_decryption_version == number:
                return None
            return attrs.evolve(record, min_decryption_version=number)

        return self._metadata(self._keystore.update_key(name, change))

    def destroy_version(self, key: KeyRef, *, confirm: bool = False) -> KeyMetadata:
        """Erase the material of the version ``key`` pins from the keystore, for good.

        Only a version that is disabled or below the minimum decryption
        version may be destroyed, never the current one, and only with
        ``confirm=True``.  The version stays listed, in state ``destroyed``,
        with its counters.  Destroying a destroyed version changes nothing.
        """
        name, number = _pinned(key, "destroy")

        def change(record: KeyRecord) -> KeyRecord | None:
            version = self._version(record, number)
            pinned = key_uri(name, number)
            if version.destroyed:
                return None
            if number == record.current_version:
                raise ConfigError(
                    f"{pinned} is the current version of {key_uri(name)} and cannot be "
                    "destroyed: rotate first, then disable this version (or raise the "
                    "minimum decryption version above it) and destroy it"
                )
            minimum = record.min_decryption_version
            if version.state is not KeyState.DISABLED and (minimum is None or number >= minimum):
                raise ConfigError(
                    f"{pinned} is enabled and {_minimum_text(minimum)}, so it may still be "
                    f"needed: disable it first (`aureus keys disable '{pinned}'`) or raise the "
                    "minimum above it, make sure nothing fails without it, then destroy it"
                )
            if not confirm:
                raise ConfigError(
                    f"not destroying {pinned} without confirmation: destroying erases its key "
                    "material for good, and nothing it wrapped or signed can be unwrapped or "
                    f"verified again; pass {hint('confirm=True', '--yes')}"
                )
            return record.replacing(
                attrs.evolve(version, state=KeyState.DESTROYED, nonce=None, ciphertext=None)
            )

        return self._metadata(self._keystore.update_key(name, change))

    def flush_usage(self) -> None:
        """Write this process's unflushed usage counters into the keystore now."""
        self._keystore.flush_usage()

    def close(self) -> None:
        """Flush the usage counters, then drop the cached document and decrypted material."""
        self._keystore.close()

    # -- raw keyring keys --------------------------------------------------------

    def _import_raw(
        self,
        name: str,
        spec: KeySpec,
        keyring: rawkeys.RawKeyring,
        material: KeyMaterial,
        *,
        new_version: bool,
    ) -> KeyMetadata:
        key_type = KeyType.parse(spec.key_type)
        if new_version:
            raise ConfigError(
                f"{key_uri(name)}: a raw keyring key has a single version (messages name it "
                "by key namespace and key name only); import the new key under a new key "
                "name instead"
            )
        record = self._keystore.add_key(
            name,
            key_type,
            rawkeys.stored_material(key_type, keyring, material),
            description=spec.description,
            labels=spec.labels,
            origin="imported",
            created_at=self._now(),
            keyring=keyring,
        )
        return self._metadata(record)

    def _raw_owner(self, encrypted: EncryptedDataKey) -> KeyRecord | None:
        """The raw keyring key that claims ``encrypted``, if any (and it can unwrap)."""
        snapshot = self._keystore.snapshot()
        if snapshot is None:
            return None
        for record in snapshot.keys.values():
            keyring = record.keyring
            if (
                keyring is not None
                and not keyring.public_only
                and rawkeys.names(keyring, record.key_type, encrypted)
            ):
                return record
        return None

    def _unwrap_raw(
        self,
        name: str,
        pinned: int | None,
        encrypted: EncryptedDataKey,
        context: EncryptionContext,
    ) -> bytearray:
        """Unwrap with the raw keyring key ``name`` (which must be the one the message names)."""
        record = self._raw_owner(encrypted)
        if record is None or record.name != name:
            raise DecryptionError()
        snapshot, record, version = self._locate(key_ref(name, pinned))
        assert record.keyring is not None
        if version.destroyed:
            raise DecryptionError()
        data_key = rawkeys.unwrap(
            record.key_type,
            record.keyring,
            snapshot.material(record, version),
            encrypted,
            context,
        )
        try:  # authentic first: only then may the version's state be reported
            _check_usable(record, version)
        except KeyDisabled:
            data_key[:] = bytes(len(data_key))
            raise
        return data_key

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

    def _locate(
        self, key: KeyRef | str, *, usable: bool = False
    ) -> tuple[Snapshot, KeyRecord, VersionRecord]:
        """The snapshot, key and version (pinned, else current) ``key`` names.

        With ``usable=True`` a version that may not be used (disabled,
        destroyed, below the minimum) raises :class:`KeyDisabled`.
        """
        name, pinned = parse_ref(key)
        snapshot = self._keystore.snapshot()
        record = None if snapshot is None else snapshot.keys.get(name)
        if snapshot is None or record is None:
            raise self._keystore.not_found(name)
        version = record.current if pinned is None else record.version(pinned)
        if version is None:
            raise self._keystore.not_found(name, pinned)
        if usable:
            _check_usable(record, version)
        return snapshot, record, version

    def _version(self, record: KeyRecord, number: int) -> VersionRecord:
        version = record.version(number)
        if version is None:
            raise self._keystore.not_found(record.name, number)
        return version

    def _metadata(self, record: KeyRecord) -> KeyMetadata:
        """The key's metadata, with usage counted here but not yet flushed included."""
        versions = []
        for v in record.versions:
            messages, byte_count = self._keystore.unflushed_use(record.name, v.version)
            versions.append(
                KeyVersion(
                    version=str(v.version),
                    created_at=v.created_at,
                    state=v.state,
                    messages=v.messages + messages,
                    bytes=v.byte_count + byte_count,
                )
            )
        minimum = record.min_decryption_version
        extra = {"origin": record.current.origin}
        if record.keyring is not None:
            extra.update(record.keyring.describe())
        return KeyMetadata(
            ref=key_ref(record.name),
            key_type=record.key_type,
            state=KeyState.ENABLED,
            created_at=record.created_at,
            current_version=str(record.current_version),
            versions=tuple(versions),
            min_decryption_version=None if minimum is None else str(minimum),
            description=record.description,
            labels=dict(record.labels),
            extra=extra,
            usage=KeyPurpose.WRAP if record.keyring is not None else None,
        )

    def _find(self, key: KeyRef | str) -> tuple[KeyRecord, VersionRecord]:
        _, record, version = self._locate(key)
        return record, version

    def _signing_key(
        self, key: KeyRef, refusal: str, *, usable: bool = True
    ) -> tuple[key_material.PrivateKey, KeyRecord, VersionRecord]:
        snapshot, record, version = self._locate(key)
        _refuse_aes(record, refusal)
        if usable or version.destroyed:
            _check_usable(record, version)
        return self._private_key(snapshot, record, version), record, version

    @staticmethod
    def _private_key(
        snapshot: Snapshot, record: KeyRecord, version: VersionRecord
    ) -> key_material.PrivateKey:
        """The version's private-key object, loaded once per snapshot (loading ECDSA costs)."""
        found = _PRIVATE_KEY_LOADERS.get(record.key_type)
        if found is None:  # not a signing key type: private_key says so
            return key_material.private_key(record.key_type, snapshot.material(record, version))
        return snapshot.loaded(record, version, *found)


_PRIVATE_KEY_LOADERS = {
    key_type: (f"private:{key_type.value}", functools.partial(key_material.private_key, key_type))
    for key_type in (KeyType.ED25519, KeyType.ECDSA_P256)
}
"""What :meth:`Snapshot.loaded` calls to load a signing key version, by key type."""


def _refuse_aes(record: KeyRecord, refusal: str) -> None:
    """Raise :class:`ConfigError` if ``record`` is a wrapping key, not a signing key."""
    if record.keyring is not None:
        raise ConfigError(
            f"key {key_uri(record.name)} is a raw keyring key; {refusal}: it only wraps "
            "data keys; use an ed25519 or ecdsa-p256 key"
        )
    if record.key_type is KeyType.AES_256:
        raise ConfigError(
            f"key {key_uri(record.name)} is an aes-256 wrapping key; {refusal}: "
            "use an ed25519 or ecdsa-p256 key"
        )


def _pinned(key: KeyRef | str, verb: str) -> tuple[str, int]:
    """The key name and the version ``key`` must pin to ``verb`` it."""
    name, number = parse_ref(key)
    if number is None:
        raise ConfigError(
            f"name the version to {verb}: {key_uri(name)}?version=N "
            "(`aureus keys describe` lists the versions)"
        )
    return name, number


def _refuse_raw_versions(record: KeyRecord, what: str) -> None:
    if record.keyring is not None:
        raise ConfigError(
            f"{key_uri(record.name)} is a raw keyring key and cannot be {what}: messages name "
            "it by key namespace and key name alone, so it has one version; import a new key "
            "under a new key name (and add it to the wrapping keys) instead"
        )


def _minimum_text(minimum: int | None) -> str:
    if minimum is None:
        return "no minimum decryption version is set"
    return f"the minimum decryption version is {minimum}"


def _check_usable(record: KeyRecord, version: VersionRecord) -> None:
    """Raise :class:`KeyDisabled` if ``version`` may not unwrap, verify, wrap, sign or MAC."""
    number, minimum = version.version, record.min_decryption_version
    destroyed = version.destroyed
    if (
        not destroyed
        and version.state is not KeyState.DISABLED
        and (minimum is None or number >= minimum)
    ):
        return  # usable (the usual case): no message to build
    uri = key_uri(record.name)
    if destroyed:
        problem = (
            f"{uri} version {number} was destroyed ({_minimum_text(minimum)}); its material "
            "is gone, so what it wrapped or signed can no longer be unwrapped or verified"
        )
    elif version.state is KeyState.DISABLED:
        problem = (
            f"{uri} version {number} is disabled ({_minimum_text(minimum)}); enable it with "
            f"`aureus keys enable '{key_uri(record.name, number)}'` if it is still needed"
        )
    elif minimum is not None and number < minimum:
        problem = (
            f"{uri} version {number} is below the minimum decryption version {minimum}; "
            f"lower the minimum with `aureus keys min-version {uri} {number}` if it is "
            "still needed"
        )
    else:
        return
    raise KeyDisabled(problem, provider=SCHEME)
