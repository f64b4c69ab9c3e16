"""An in-memory key provider: Ed25519 signing and AES-256-GCM wrapping, versioned."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from datetime import datetime, timezone

import attrs
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_core import (
    Capability,
    ConfigError,
    DecryptionError,
    EncryptedDataKey,
    EncryptionContext,
    KeyExists,
    KeyMetadata,
    KeyNotFound,
    KeyProviderBase,
    KeyRef,
    KeySpec,
    KeyState,
    KeyType,
    KeyVersion,
    Signature,
    SignatureError,
    UnsupportedOperation,
    WrappedKey,
)

PROVIDER_ID = "aureus-example"


@attrs.define
class _Version:
    created_at: datetime
    material: bytes = attrs.field(repr=False)


@attrs.define
class _Key:
    spec: KeySpec
    versions: list[_Version] = attrs.field(factory=list)


class MemoryKeyProvider(KeyProviderBase):
    """Keys held in process memory; gone when the process ends."""

    scheme = "example"
    capabilities = frozenset(
        {
            Capability.CREATE,
            Capability.DESCRIBE,
            Capability.LIST,
            Capability.ROTATE,
            Capability.VERSIONS,
            Capability.SIGN,
            Capability.PUBLIC_KEY,
            Capability.WRAP,
        }
    )
    key_types = frozenset({KeyType.AES_256, KeyType.ED25519})

    def __init__(self) -> None:
        self._keys: dict[str, _Key] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<MemoryKeyProvider keys={len(self._keys)}>"

    # -- helpers -------------------------------------------------------------

    def _new_material(self, key_type: KeyType) -> bytes:
        if key_type is KeyType.AES_256:
            return os.urandom(32)
        return Ed25519PrivateKey.generate().private_bytes_raw()

    def _lookup(self, ref: KeyRef) -> tuple[str, _Key, int]:
        if ref.scheme != self.scheme:
            raise ConfigError(f"{ref.uri} is not an {self.scheme}:// key")
        key = self._keys.get(ref.key_id)
        if key is None:
            raise KeyNotFound(f"no key {ref.with_version(None).uri}", provider=self.scheme)
        index = len(key.versions) if ref.version is None else int(ref.version)
        if not (ref.version is None or ref.version.isdigit()) or not 1 <= index <= len(
            key.versions
        ):
            raise KeyNotFound(f"{ref.uri}: no such version", provider=self.scheme)
        return ref.key_id, key, index

    def _metadata(self, name: str, key: _Key) -> KeyMetadata:
        return KeyMetadata(
            ref=KeyRef(scheme=self.scheme, key_id=name),
            key_type=key.spec.key_type,
            state=KeyState.ENABLED,
            created_at=key.versions[0].created_at,
            current_version=str(len(key.versions)),
            versions=tuple(
                KeyVersion(version=str(i), created_at=v.created_at)
                for i, v in enumerate(key.versions, 1)
            ),
            description=key.spec.description,
        )

    # -- management ------------------------------------------------------------

    def create_key(self, name: str, spec: KeySpec) -> KeyMetadata:
        """Create a key with one version."""
        if spec.key_type not in self.key_types:
            raise UnsupportedOperation(self.scheme, f"key type {spec.key_type.value}")
        with self._lock:
            if name in self._keys:
                raise KeyExists(f"{self.scheme}://{name} already exists", provider=self.scheme)
            key = _Key(spec=spec)
            key.versions.append(
                _Version(datetime.now(timezone.utc), self._new_material(spec.key_type))
            )
            self._keys[name] = key
            return self._metadata(name, key)

    def describe_key(self, key: KeyRef) -> KeyMetadata:
        """Describe a key."""
        with self._lock:
            name, entry, _ = self._lookup(key)
            return self._metadata(name, entry)

    def list_keys(self) -> Sequence[KeyMetadata]:
        """Every key, by name."""
        with self._lock:
            return [self._metadata(n, k) for n, k in sorted(self._keys.items())]

    def rotate_key(self, key: KeyRef) -> KeyMetadata:
        """Add a version and make it current."""
        with self._lock:
            name, entry, _ = self._lookup(key)
            entry.versions.append(
                _Version(datetime.now(timezone.utc), self._new_material(entry.spec.key_type))
            )
            return self._metadata(name, entry)

    # -- signing ---------------------------------------------------------------

    def _signer(self, key: KeyRef) -> tuple[str, int, Ed25519PrivateKey]:
        with self._lock:
            name, entry, index = self._lookup(key)
        if entry.spec.key_type is not KeyType.ED25519:
            raise ConfigError(f"{key.uri} is a wrapping key; it cannot sign")
        material = entry.versions[index - 1].material
        return name, index, Ed25519PrivateKey.from_private_bytes(material)

    def public_key(self, key: KeyRef) -> bytes:
        """PEM public key."""
        _, _, private = self._signer(key)
        return private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, key: KeyRef, message: bytes) -> Signature:
        """Ed25519 signature."""
        name, index, private = self._signer(key)
        return Signature(
            value=private.sign(message),
            key_uri=f"{self.scheme}://{name}",
            key_version=str(index),
            algorithm="ed25519",
        )

    def verify(self, key: KeyRef, message: bytes, signature: bytes) -> bool:
        """Check an Ed25519 signature."""
        _, _, private = self._signer(key)
        if len(signature) != 64:
            raise SignatureError("an Ed25519 signature is 64 bytes")
        try:
            private.public_key().verify(signature, message)
        except InvalidSignature:
            return False
        return True

    # -- wrapping --------------------------------------------------------------

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """AES-256-GCM under the key's version, the context as associated data."""
        with self._lock:
            name, entry, index = self._lookup(key)
        if entry.spec.key_type is not KeyType.AES_256:
            raise ConfigError(f"{key.uri} is a signing key; it cannot wrap")
        nonce = os.urandom(12)
        sealed = AESGCM(entry.versions[index - 1].material).encrypt(
            nonce, data_key, context.serialize()
        )
        return WrappedKey(
            key=KeyRef(scheme=self.scheme, key_id=name, version=str(index)),
            encrypted=EncryptedDataKey(
                provider_id=PROVIDER_ID,
                provider_info=f"{name}:{index}".encode(),
                ciphertext=nonce + sealed,
            ),
        )

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        """The key named in the provider info, if it is one of ours."""
        if encrypted.provider_id != PROVIDER_ID:
            return None
        name, _, version = encrypted.provider_info.decode("utf-8", "replace").rpartition(":")
        if name not in self._keys or not version.isdigit():
            return None
        return KeyRef(scheme=self.scheme, key_id=name, version=version)

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """Reverse :meth:`wrap`; every failure is the same DecryptionError."""
        owner = self.owner_of(encrypted)
        if owner is None or owner.key_id != key.key_id:
            raise DecryptionError()
        if key.version is not None and key.version != owner.version:
            raise DecryptionError()
        try:
            with self._lock:
                _, entry, index = self._lookup(owner)
            material = entry.versions[index - 1].material
            data = encrypted.ciphertext
            return bytearray(AESGCM(material).decrypt(data[:12], data[12:], context.serialize()))
        except (InvalidTag, KeyNotFound, ValueError):
            raise DecryptionError() from None
