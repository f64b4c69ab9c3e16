r"""The ``pkcs11`` key provider: keys generated and used on a PKCS#11 token.

Wrapping keys are AES-256 secret keys; a data key is encrypted with AES-GCM
*on the token*, under additional data that binds the key's URI and the
encryption context.  The wrapped form (provider ID ``aureus-pkcs11``)::

    provider_info = b"pkcs11://TOKEN/NAME?version=N"            (UTF-8)
    ciphertext    = 0x01 || IV (12 bytes) || GCM ciphertext || tag (16 bytes)
    AAD           = b"aureus-pkcs11\\x00" || uint16(len(provider_info))
                    || provider_info || serialized encryption context

Signing keys are Ed25519 (``CKM_EDDSA``), ECDSA P-256/P-384 (DER signatures
over SHA-256/SHA-384; the token hashes if it offers ``CKM_ECDSA_SHA256`` /
``CKM_ECDSA_SHA384``, otherwise the host hashes and the token signs the digest
with ``CKM_ECDSA``) and RSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt).
Verification uses the public key read from the token, once it is trusted (see
:meth:`Pkcs11KeyProvider.public_key`).  Which key types the provider declares
follows the token's mechanism list, read at start.

The provider uses only private token objects (``CKA_PRIVATE`` true), which a
session sees and makes only after login, so it needs the user PIN.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TypeVar

import pkcs11
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from pkcs11 import MGF, Mechanism
from pkcs11 import exceptions as p11
from pkcs11.mechanisms import GCMParams
from pkcs11.types import DecryptMixin, EncryptMixin, SignMixin

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey, WrappedKey
from aureus_core.errors import (
    AureusError,
    ConfigError,
    CredentialError,
    DecryptionError,
    ImportRefused,
    KeyExists,
    KeyNotFound,
    KeystoreCorrupted,
    SignatureError,
    UnsupportedOperation,
)
from aureus_core.interfaces import Capability, KeyMaterial, KeyProviderBase
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyMetadata, KeyPurpose, KeySpec, KeyState, KeyType, KeyVersion
from aureus_core.signature import Signature
from aureus_core.wrapped_import import (
    ImportJob,
    ImportParameters,
    check_import_token,
    default_expiry,
    import_parameters_of,
    new_import_token,
)

from . import imports, objects
from .errors import RECONNECTABLE, SCHEME, translate
from .naming import KeyName, parse_ref, version_to_id
from .plugin import PIN_ENV
from .session import SessionPool

PROVIDER_ID = "aureus-pkcs11"
"""The provider ID of data keys this provider wraps."""
FORMAT_VERSION = 1
IV_SIZE = 12
TAG_SIZE = 16
_AAD_PREFIX = b"aureus-pkcs11\x00"
PSS_SALT = 32
_CHALLENGE = b"aureus-pkcs11 public key check\x00"
"""Prefix of the random message a private key signs to vouch for its public key."""

T = TypeVar("T")

_ALGORITHMS: dict[KeyType, str] = {
    KeyType.ED25519: "ed25519",
    KeyType.ECDSA_P256: "ecdsa-p256-sha256",
    KeyType.ECDSA_P384: "ecdsa-p384-sha384",
    KeyType.RSA_2048: "rsa-pss-sha256",
    KeyType.RSA_3072: "rsa-pss-sha256",
    KeyType.RSA_4096: "rsa-pss-sha256",
}
_EC_HASH: dict[KeyType, tuple[Callable[[bytes], bytes], Mechanism, hashes.HashAlgorithm]] = {
    KeyType.ECDSA_P256: (
        lambda m: hashlib.sha256(m).digest(),
        Mechanism.ECDSA_SHA256,
        hashes.SHA256(),
    ),
    KeyType.ECDSA_P384: (
        lambda m: hashlib.sha384(m).digest(),
        Mechanism.ECDSA_SHA384,
        hashes.SHA384(),
    ),
}


def supported_key_types(mechanisms: frozenset[Mechanism]) -> frozenset[KeyType]:
    """The key types a token with ``mechanisms`` can generate and use."""
    types: set[KeyType] = set()
    if {Mechanism.AES_KEY_GEN, Mechanism.AES_GCM} <= mechanisms:
        types.add(KeyType.AES_256)
    if {Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA} <= mechanisms:
        types.add(KeyType.ED25519)
    if Mechanism.EC_KEY_PAIR_GEN in mechanisms and Mechanism.ECDSA in mechanisms:
        types.update((KeyType.ECDSA_P256, KeyType.ECDSA_P384))
    if Mechanism.RSA_PKCS_KEY_PAIR_GEN in mechanisms and (
        Mechanism.SHA256_RSA_PKCS_PSS in mechanisms or Mechanism.RSA_PKCS_PSS in mechanisms
    ):
        types.update((KeyType.RSA_2048, KeyType.RSA_3072, KeyType.RSA_4096))
    return frozenset(types)


class Pkcs11KeyProvider(KeyProviderBase):
    """Keys on one PKCS#11 token, reached through a :class:`SessionPool`."""

    scheme = SCHEME

    def __init__(self, pool: SessionPool, *, clock: Callable[[], datetime] | None = None) -> None:
        self._pool = pool
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._create_lock = threading.Lock()
        self._public_keys: dict[tuple[str, int], tuple[int | None, objects.PublicKey]] = {}
        """Trusted public keys by (name, version), with the private key object's handle."""
        self.token = pool.token_label
        self.key_types = supported_key_types(pool.mechanisms)
        capabilities = {
            Capability.CREATE,
            Capability.DESCRIBE,
            Capability.LIST,
            Capability.ROTATE,
            Capability.VERSIONS,
        }
        if KeyType.AES_256 in self.key_types:
            capabilities.update((Capability.WRAP, Capability.IMPORT))
        if self.key_types - {KeyType.AES_256}:
            capabilities.update((Capability.SIGN, Capability.PUBLIC_KEY))
        self._kwp = imports.kwp_mechanism(pool.mechanisms)
        self.import_types = (
            frozenset(imports.IMPORT_TYPES) & self.key_types
            if self._kwp is not None
            else frozenset()
        )
        """Key types a wrapped import can create on this token."""
        if self.import_types:
            capabilities.update((Capability.IMPORT, Capability.WRAPPED_IMPORT))
        self.capabilities = frozenset(capabilities)

    def __repr__(self) -> str:
        return f"Pkcs11KeyProvider(token={self.token!r}, module={self._pool.selector.module!r})"

    # -- plumbing --------------------------------------------------------------

    def _run(self, operation: str, work: Callable[[pkcs11.Session], T]) -> T:
        if not self._pool.has_pin:
            raise CredentialError(
                f"the pkcs11 provider for token {self.token!r} has no user PIN, and it uses only "
                "private token objects (CKA_PRIVATE=true), which only a logged-in session sees "
                f"or makes: give it the PIN (value 'pin' of its credential source, or {PIN_ENV})",
                code="CKR_USER_NOT_LOGGED_IN",
            )
        try:
            return self._pool.run(operation, work)
        except p11.PKCS11Error as error:
            raise translate(error, operation=operation, token=self.token) from None

    def _name(self, key: KeyRef | str) -> KeyName:
        if isinstance(key, str) and "://" not in key:
            key = KeyRef(scheme=SCHEME, key_id=key)  # a name given to create or import
        name = parse_ref(key, self.token)
        if name.token != self.token:
            raise ConfigError(
                f"{KeyRef.parse(key).uri} names token {name.token!r}, but this provider uses "
                f"token {self.token!r}: configure another provider for that token"
            )
        return name

    def _metadata(
        self,
        session: pkcs11.Session,
        name: KeyName,
        versions: dict[int, objects.KeyVersionObject],
    ) -> KeyMetadata:
        ordered = [versions[v] for v in sorted(versions)]
        current = ordered[-1]
        made = objects.creation_times(session, name.name)
        when = [made.get(v.version, objects.UNKNOWN_DATE) for v in ordered]
        return KeyMetadata(
            ref=name.ref(None),
            key_type=current.key_type,
            state=KeyState.ENABLED,
            created_at=when[0],
            current_version=str(current.version),
            versions=tuple(
                KeyVersion(version=str(v.version), created_at=stamp)
                for v, stamp in zip(ordered, when, strict=False)
            ),
            extra={"token": self.token},
        )

    def _describe(self, session: pkcs11.Session, name: KeyName) -> KeyMetadata:
        versions = objects.find_versions(session, name.name)
        objects.select(versions, name.name, name.ref(None).uri, None)
        return self._metadata(session, name, versions)

    def _require_type(self, key_type: KeyType) -> None:
        if key_type not in self.key_types:
            supported = ", ".join(sorted(t.value for t in self.key_types)) or "none"
            raise UnsupportedOperation(
                SCHEME,
                f"key type {key_type.value}",
                f"token {self.token!r} lacks the mechanisms for it; it supports: {supported}",
            )

    # -- key management ----------------------------------------------------------

    def create_key(self, name: str, spec: KeySpec) -> KeyMetadata:
        """Generate version 1 of ``name`` on the token (sensitive, non-extractable)."""
        key = self._name(name)
        if key.version is not None:
            raise ConfigError(f"{key.ref().uri}: a new key cannot name a version")
        self._require_type(spec.key_type)

        def work(session: pkcs11.Session) -> KeyMetadata:
            if objects.find_versions(session, key.name):
                raise KeyExists(f"key {key.ref().uri} already exists", provider=SCHEME)
            objects.generate(session, key.name, 1, spec.key_type, now=self._clock())
            return self._describe(session, key)

        with self._create_lock:
            return self._run("create key", work)

    def describe_key(self, key: KeyRef) -> KeyMetadata:
        """The key's versions as found on the token."""
        name = self._name(key)

        def work(session: pkcs11.Session) -> KeyMetadata:
            versions = objects.find_versions(session, name.name)
            objects.select(versions, name.name, name.ref(None).uri, name.version)
            return self._metadata(session, name, versions)

        return self._run("describe key", work)

    def list_keys(self) -> Sequence[KeyMetadata]:
        """Every key on the token whose label is a valid key name and whose type Aureus uses."""

        def work(session: pkcs11.Session) -> list[KeyMetadata]:
            found = []
            for label in objects.key_names(session):
                versions = objects.find_versions(session, label)
                if versions:
                    found.append(self._metadata(session, KeyName(self.token, label), versions))
            return found

        return self._run("list keys", work)

    def rotate_key(self, key: KeyRef) -> KeyMetadata:
        """Generate the next version; older ones stay on the token for unwrap and verify."""
        name = self._name(key)

        def work(session: pkcs11.Session) -> KeyMetadata:
            versions = objects.find_versions(session, name.name)
            current = objects.select(versions, name.name, name.ref(None).uri, None)
            self._require_type(current.key_type)
            objects.generate(
                session, name.name, current.version + 1, current.key_type, now=self._clock()
            )
            return self._describe(session, name)

        with self._create_lock:
            return self._run("rotate key", work)

    def import_key(
        self, name: str, spec: KeySpec, material: KeyMaterial, *, new_version: bool = False
    ) -> KeyMetadata:
        """Import raw AES-256 key bytes, or wrapped material, as a non-extractable key.

        Wrapped material (see :meth:`import_parameters`) is unwrapped on the
        token with ``C_UnwrapKey``; raw AES bytes become an object through
        ``C_CreateObject``.
        """
        if material.format == "wrapped":
            return self._import_wrapped(name, spec, material, new_version=new_version)
        if spec.key_type is not KeyType.AES_256 or material.format != "raw":
            raise UnsupportedOperation(
                SCHEME,
                f"import_key of {spec.key_type.value} ({material.format})",
                "only raw aes-256 keys are imported; generate signing keys on the token, or "
                "create them with the vendor's tool and adopt them (see docs/pkcs11.md)",
            )
        value = material.data.reveal()
        if len(value) != 32:
            raise ConfigError(f"an aes-256 key is 32 bytes, not {len(value)}")
        key = self._name(name)

        def work(session: pkcs11.Session) -> KeyMetadata:
            versions = objects.find_versions(session, key.name)
            if versions and not new_version:
                raise KeyExists(
                    f"key {key.ref().uri} already exists: pass new_version to add a version",
                    provider=SCHEME,
                )
            if versions and next(iter(versions.values())).key_type is not KeyType.AES_256:
                raise ConfigError(f"key {key.ref().uri} is not an aes-256 key")
            version = max(versions) + 1 if versions else 1
            objects.import_secret(session, key.name, version, bytes(value), now=self._clock())
            return self._describe(session, key)

        with self._create_lock:
            return self._run("import key", work)

    def import_parameters(
        self, name: str, spec: KeySpec, *, new_version: bool = False
    ) -> ImportParameters:
        """An import job on the token: an RSA-3072 pair whose private half only unwraps.

        The job expires after a day; expired jobs are destroyed when the next
        one is made or when their token is presented.
        """
        key = self._name(name)
        if key.version is not None:
            raise ConfigError(f"{key.ref().uri}: import into a key, not a version")
        if spec.key_type not in self.import_types:
            offered = ", ".join(sorted(t.value for t in self.import_types)) or "none"
            raise UnsupportedOperation(
                SCHEME,
                f"wrapped import of {spec.key_type.value}",
                f"token {self.token!r} imports wrapped: {offered}",
            )
        now = self._clock()

        def work(session: pkcs11.Session) -> ImportParameters:
            imports.sweep(session, now)
            versions = objects.find_versions(session, key.name)
            if versions and not new_version:
                raise KeyExists(
                    f"key {key.ref().uri} already exists: ask for parameters with new_version "
                    "to import a new version of it",
                    provider=SCHEME,
                )
            if new_version:
                current = objects.select(versions, key.name, key.ref().uri, None)
                if current.key_type is not spec.key_type:
                    raise ConfigError(
                        f"key {key.ref().uri} is an {current.key_type.value} key, "
                        f"not {spec.key_type.value}"
                    )
            job = ImportJob(
                token=new_import_token(),
                name=key.name,
                key_type=spec.key_type,
                new_version=new_version,
                algorithm=imports.ALGORITHM,
                expires_at=default_expiry(now),
            )
            pem = imports.create_job(session, job)
            return import_parameters_of(job, key_uri=key.ref().uri, wrapping_public_key=pem)

        with self._create_lock:
            return self._run("import parameters", work)

    def _import_wrapped(
        self, name: str, spec: KeySpec, material: KeyMaterial, *, new_version: bool
    ) -> KeyMetadata:
        key = self._name(name)
        token = check_import_token(material.import_token)
        wrapped = bytes(material.data.reveal())
        kwp = self._kwp
        if kwp is None:
            raise UnsupportedOperation(SCHEME, "wrapped import", f"token {self.token!r}")
        now = self._clock()

        def work(session: pkcs11.Session) -> KeyMetadata:
            found = imports.find_job(session, token)
            if found is None:
                raise ImportRefused(
                    f"import token {token} is unknown to token {self.token!r} or was already "
                    "used: run `aureus keys import-params` for a new one",
                    provider=SCHEME,
                )
            job, private = found
            if now >= job.expires_at:
                imports.destroy_job(session, token)
            try:
                job.check(
                    uri=key.ref().uri,
                    name=key.name,
                    key_type=spec.key_type,
                    new_version=new_version,
                    now=now,
                )
            except ImportRefused as error:
                raise ImportRefused(str(error), provider=SCHEME) from None
            versions = objects.find_versions(session, key.name)
            if versions and not new_version:
                raise KeyExists(f"key {key.ref().uri} already exists", provider=SCHEME)
            if new_version and not versions:
                raise KeyNotFound(f"no key {key.ref().uri} on the token", provider=SCHEME)
            version = max(versions) + 1 if versions else 1
            made = imports.unwrap_into(session, job, private, wrapped, version=version, kwp=kwp)
            if not imports.destroy_job(session, token):  # another session used it first
                made.destroy()
                raise ImportRefused(
                    f"import token {token} was used by another import at the same time",
                    provider=SCHEME,
                )
            if job.key_type is KeyType.AES_256:
                objects.record_aes_256(session, key.name, version)
            else:
                imports.store_public_half(session, made, job, version)
            objects.record_creation(session, key.name, version, now)
            return self._describe(session, key)

        with self._create_lock:
            return self._run("import key", work)

    # -- signing -----------------------------------------------------------------

    def _signing_version(self, session: pkcs11.Session, name: KeyName) -> objects.KeyVersionObject:
        versions = objects.find_versions(session, name.name)
        chosen = objects.select(versions, name.name, name.ref(None).uri, name.version)
        if chosen.key_type.purpose is not KeyPurpose.SIGN:
            raise ConfigError(
                f"{name.ref(None).uri} is an {chosen.key_type.value} wrapping key, not a signing "
                "key: sign with an ed25519, ecdsa or rsa key"
            )
        return chosen

    def _trusted_public_key(
        self, session: pkcs11.Session, name: KeyName, chosen: objects.KeyVersionObject
    ) -> objects.PublicKey:
        """The public key of ``chosen`` from the token's public-key object, once it is trusted.

        A private public-key object stands as it is: only a PIN holder makes one.
        A public one (every public half made before they were private, or one
        planted without the PIN) must verify a signature the version's private
        key makes on the token over a random challenge.  The answer is kept for
        the provider's life, per version and private key object.
        """
        remembered = self._public_keys.get((name.name, chosen.version))
        if remembered is not None and remembered[0] == chosen.key.handle:
            return remembered[1]
        challenge: tuple[bytes, bytes] | None = None
        for obj in objects.public_key_objects(session, name.name, chosen.version):
            try:
                public = objects.load_public_key(obj, chosen.key_type)
            except ValueError:
                continue  # not even a key of this type
            if not objects.is_private(obj):
                if challenge is None:
                    message = _CHALLENGE + os.urandom(32)
                    challenge = message, self._sign_on_token(chosen, name.name, message)
                if not _signed_by(chosen.key_type, public, *challenge):
                    continue
            self._public_keys[(name.name, chosen.version)] = (chosen.key.handle, public)
            return public
        ident = version_to_id(chosen.version).hex().upper()
        raise KeystoreCorrupted(
            f"the token's public key for {name.ref(chosen.version).uri} does not belong to its "
            "private key: possible tampering (a session without the PIN can replace public "
            "objects), so this version neither verifies nor exports its public key. Delete the "
            f"public-key objects labelled {name.name!r} with CKA_ID {ident} and store the genuine "
            "public key again, as a private object, from a copy you trust (docs/pkcs11.md shows "
            "how), or rotate the key and sign with the new version",
            provider=SCHEME,
            code="public-key-mismatch",
        )

    def public_key(self, key: KeyRef) -> bytes:
        """The PEM (SubjectPublicKeyInfo) public key of the current or pinned version.

        Raises :class:`KeystoreCorrupted` if the token's public-key object does
        not belong to the version's private key.
        """
        name = self._name(key)

        def work(session: pkcs11.Session) -> bytes:
            chosen = self._signing_version(session, name)
            public = self._trusted_public_key(session, name, chosen)
            return public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )

        return self._run("public key", work)

    def sign(self, key: KeyRef, message: bytes) -> Signature:
        """Sign on the token with the current or pinned version."""
        name = self._name(key)

        def work(session: pkcs11.Session) -> Signature:
            chosen = self._signing_version(session, name)
            return Signature(
                value=self._sign_on_token(chosen, name.name, message),
                key_uri=name.ref(chosen.version).uri,
                key_version=str(chosen.version),
                algorithm=_ALGORITHMS[chosen.key_type],
            )

        return self._run("sign", work)

    def _sign_on_token(self, chosen: objects.KeyVersionObject, name: str, message: bytes) -> bytes:
        """Sign ``message`` on the token with ``chosen``, in the provider's signature format."""
        mechanisms = self._pool.mechanisms
        private = objects.capable(chosen.key, SignMixin, "sign", name)
        key_type = chosen.key_type
        if key_type is KeyType.ED25519:
            return bytes(private.sign(message, mechanism=Mechanism.EDDSA))
        if key_type in _EC_HASH:
            digest, combined, _ = _EC_HASH[key_type]
            if combined in mechanisms:
                raw = bytes(private.sign(message, mechanism=combined))
            else:
                raw = bytes(private.sign(digest(message), mechanism=Mechanism.ECDSA))
            half = len(raw) // 2
            return encode_dss_signature(
                int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
            )
        params = (Mechanism.SHA256, MGF.SHA256, PSS_SALT)
        if Mechanism.SHA256_RSA_PKCS_PSS in mechanisms:
            return bytes(
                private.sign(
                    message, mechanism=Mechanism.SHA256_RSA_PKCS_PSS, mechanism_param=params
                )
            )
        return bytes(
            private.sign(
                hashlib.sha256(message).digest(),
                mechanism=Mechanism.RSA_PKCS_PSS,
                mechanism_param=params,
            )
        )

    def verify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """Check a signature with the token's public key for the version, once it is trusted.

        Raises :class:`KeystoreCorrupted` if the token's public-key object does
        not belong to the version's private key (see :meth:`public_key`).
        """
        name = self._name(key)

        def work(session: pkcs11.Session) -> tuple[KeyType, objects.PublicKey]:
            chosen = self._signing_version(session, name)
            return chosen.key_type, self._trusted_public_key(session, name, chosen)

        key_type, public = self._run("verify", work)
        return _verify(key_type, public, message, signature)

    # -- wrapping ----------------------------------------------------------------

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """Encrypt ``data_key`` with AES-GCM on the token, binding the key URI and ``context``."""
        name = self._name(key)

        def work(session: pkcs11.Session) -> WrappedKey:
            chosen = self._wrapping_version(session, name)
            pinned = name.ref(chosen.version)
            info = pinned.uri.encode()
            iv = os.urandom(IV_SIZE)
            encrypter = objects.capable(chosen.key, EncryptMixin, "encrypt", name.name)
            sealed = encrypter.encrypt(
                bytes(data_key),
                mechanism=Mechanism.AES_GCM,
                mechanism_param=GCMParams(iv, _aad(info, context), TAG_SIZE * 8),
            )
            assert isinstance(sealed, bytes)  # one buffer in, one buffer out
            edk = EncryptedDataKey(
                provider_id=PROVIDER_ID,
                provider_info=info,
                ciphertext=bytes([FORMAT_VERSION]) + iv + sealed,
            )
            return WrappedKey(key=pinned, encrypted=edk)

        return self._run("wrap", work)

    def _wrapping_version(self, session: pkcs11.Session, name: KeyName) -> objects.KeyVersionObject:
        versions = objects.find_versions(session, name.name)
        chosen = objects.select(versions, name.name, name.ref(None).uri, name.version)
        if chosen.key_type is not KeyType.AES_256:
            raise ConfigError(
                f"{name.ref(None).uri} is an {chosen.key_type.value} signing key, not a wrapping "
                "key: wrap with an aes-256 key"
            )
        return chosen

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        """The pinned key named by one of our wrapped keys, if it is on this token."""
        if encrypted.provider_id != PROVIDER_ID:
            return None
        try:
            name = parse_ref(encrypted.provider_info.decode("utf-8"), self.token)
        except (UnicodeDecodeError, AureusError):
            return None
        if name.token != self.token or name.version is None:
            return None
        return name.ref()

    def discovery_refusal(self, key: KeyRef, named: Sequence[KeyRef]) -> str | None:
        """Whether a decrypt without ``keys=`` may unwrap with ``key``: only on this token.

        The provider's scope is the one token its configuration names, as the
        local provider's is its keystore; :meth:`owner_of` already ignores
        wrapped keys that name any other token, so they are never asked.
        """
        try:
            token = parse_ref(key, self.token).token
        except AureusError:
            return f"{key.uri} is not a {SCHEME} key this provider can read"
        if token == self.token:
            return None
        return (
            f"token {token!r} is not the {SCHEME} provider's token {self.token!r}: configure a "
            "provider for it"
        )

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """Decrypt a wrapped data key on the token; every failure is a DecryptionError."""
        name = self._name(key)
        owner = self.owner_of(encrypted)
        if owner is None:
            raise DecryptionError()
        owned = parse_ref(owner, self.token)
        if owned.name != name.name or name.version not in (None, owned.version):
            raise DecryptionError()
        blob = encrypted.ciphertext
        if len(blob) < 1 + IV_SIZE + TAG_SIZE or blob[0] != FORMAT_VERSION:
            raise DecryptionError()
        iv, sealed = blob[1 : 1 + IV_SIZE], blob[1 + IV_SIZE :]
        aad = _aad(encrypted.provider_info, context)

        def work(session: pkcs11.Session) -> bytearray:
            chosen = self._wrapping_version(session, owned)
            try:
                decrypter = objects.capable(chosen.key, DecryptMixin, "decrypt", owned.name)
                plain = decrypter.decrypt(
                    sealed,
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(iv, aad, TAG_SIZE * 8),
                )
            except p11.PKCS11Error as error:
                if type(error) in RECONNECTABLE:
                    raise
                raise DecryptionError() from None
            assert isinstance(plain, bytes)  # one buffer in, one buffer out
            return bytearray(plain)

        return self._run("unwrap", work)

    def close(self) -> None:
        """Close the pool's sessions and give up its share of the login."""
        self._pool.close()


def _aad(info: bytes, context: EncryptionContext) -> bytes:
    return _AAD_PREFIX + struct.pack(">H", len(info)) + info + context.serialize()


def _signed_by(
    key_type: KeyType, public: objects.PublicKey, message: bytes, signature: bytes
) -> bool:
    """Whether ``signature`` (the provider's own) verifies under ``public``."""
    try:
        return _verify(key_type, public, message, signature)
    except SignatureError:  # an RSA key of another size
        return False


def _verify(key_type: KeyType, public: objects.PublicKey, message: bytes, signature: bytes) -> bool:
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            if len(signature) != 64:
                raise SignatureError(f"an Ed25519 signature is 64 bytes, not {len(signature)}")
            public.verify(signature, message)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            try:
                decode_dss_signature(signature)
            except ValueError:
                raise SignatureError("the ECDSA signature is not DER (r, s)") from None
            public.verify(signature, message, ec.ECDSA(_EC_HASH[key_type][2]))
        else:
            assert isinstance(public, rsa.RSAPublicKey)
            size = (public.key_size + 7) // 8
            if len(signature) != size:
                raise SignatureError(
                    f"an RSA-{public.key_size} signature is {size} bytes, not {len(signature)}"
                )
            public.verify(
                signature,
                message,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT),
                hashes.SHA256(),
            )
    except InvalidSignature:
        return False
    return True
