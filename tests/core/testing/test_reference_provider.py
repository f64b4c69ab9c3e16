"""The contract is satisfiable: a small provider built on KeyProviderBase passes all of it.

``ReferenceProvider`` keeps keys in memory: Ed25519 signing and AES-256-GCM
wrapping, every key versioned.  It proves the contract can be met without the
local plugin, and test_contract_failures.py breaks it one method at a time
(loading this file's text as a module) to prove the contract notices.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from datetime import datetime, timezone

import pytest
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey, WrappedKey
from aureus_core.errors import (
    ConfigError,
    DecryptionError,
    KeyExists,
    KeyNotFound,
    SignatureError,
    UnsupportedOperation,
)
from aureus_core.interfaces import Capability, KeyProviderBase
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyMetadata, KeySpec, KeyState, KeyType, KeyVersion
from aureus_core.signature import Signature
from aureus_core.testing import KeyProviderContract

PROVIDER_ID = "aureus-reference"
NONCE_SIZE = 12


class ReferenceProvider(KeyProviderBase):
    """Keys in a dict: name -> (key type, list of (created_at, material))."""

    scheme = "reference"
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
        self._keys: dict[str, tuple[KeyType, list[tuple[datetime, bytes]]]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ReferenceProvider(keys={len(self._keys)})"

    def _material(self, ref: KeyRef) -> tuple[str, KeyType, int, bytes]:
        if ref.scheme != self.scheme:
            raise ConfigError(f"{ref.uri} is not a {self.scheme}:// key")
        with self._lock:
            found = self._keys.get(ref.key_id)
            if found is None:
                raise KeyNotFound(f"no key {self.scheme}://{ref.key_id}", provider=self.scheme)
            key_type, versions = found
            number = len(versions) if ref.version is None else _number(ref.version)
            if not 1 <= number <= len(versions):
                raise KeyNotFound(f"{ref.uri}: no such version", provider=self.scheme)
            return ref.key_id, key_type, number, versions[number - 1][1]

    def _metadata(self, name: str) -> KeyMetadata:
        key_type, versions = self._keys[name]
        return KeyMetadata(
            ref=KeyRef(scheme=self.scheme, key_id=name),
            key_type=key_type,
            state=KeyState.ENABLED,
            created_at=versions[0][0],
            current_version=str(len(versions)),
            versions=tuple(
                KeyVersion(version=str(i), created_at=created)
                for i, (created, _) in enumerate(versions, 1)
            ),
        )

    def create_key(self, name: str, spec: KeySpec) -> KeyMetadata:
        """Create a key with one version."""
        if spec.key_type not in self.key_types:
            raise UnsupportedOperation(self.scheme, f"key type {spec.key_type.value}")
        with self._lock:
            if name in self._keys:
                raise KeyExists(f"{self.scheme}://{name} exists", provider=self.scheme)
            self._keys[name] = (spec.key_type, [_new_version(spec.key_type)])
            return self._metadata(name)

    def describe_key(self, key: KeyRef) -> KeyMetadata:
        """The key's metadata."""
        name, _, _, _ = self._material(key)
        with self._lock:
            return self._metadata(name)

    def list_keys(self) -> Sequence[KeyMetadata]:
        """Every key."""
        with self._lock:
            return [self._metadata(name) for name in sorted(self._keys)]

    def rotate_key(self, key: KeyRef) -> KeyMetadata:
        """Add a version."""
        name, key_type, _, _ = self._material(key)
        with self._lock:
            self._keys[name][1].append(_new_version(key_type))
            return self._metadata(name)

    def _signer(self, key: KeyRef) -> tuple[str, int, Ed25519PrivateKey]:
        name, key_type, number, material = self._material(key)
        if key_type is not KeyType.ED25519:
            raise ConfigError(f"{key.uri} cannot sign")
        return name, number, Ed25519PrivateKey.from_private_bytes(material)

    def public_key(self, key: KeyRef) -> bytes:
        """The PEM public key."""
        return (
            self._signer(key)[2]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def sign(self, key: KeyRef, message: bytes) -> Signature:
        """An Ed25519 signature."""
        name, number, private = self._signer(key)
        return Signature(
            value=private.sign(message),
            key_uri=f"{self.scheme}://{name}",
            key_version=str(number),
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

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        """AES-256-GCM, the context as associated data."""
        name, key_type, number, material = self._material(key)
        if key_type is not KeyType.AES_256:
            raise ConfigError(f"{key.uri} cannot wrap")
        nonce = os.urandom(NONCE_SIZE)
        sealed = AESGCM(material).encrypt(nonce, bytes(data_key), context.serialize())
        return WrappedKey(
            key=KeyRef(scheme=self.scheme, key_id=name, version=str(number)),
            encrypted=EncryptedDataKey(
                provider_id=PROVIDER_ID,
                provider_info=f"{name}?version={number}".encode(),
                ciphertext=nonce + sealed,
            ),
        )

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        """The key named in the provider info, if ours."""
        if encrypted.provider_id != PROVIDER_ID:
            return None
        name, _, version = encrypted.provider_info.decode("utf-8", "replace").partition("?version=")
        with self._lock:
            if name not in self._keys or not version.isdigit():
                return None
        return KeyRef(scheme=self.scheme, key_id=name, version=version)

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        """Reverse wrap; every failure is the same DecryptionError."""
        owner = self.owner_of(encrypted)
        if owner is None or owner.key_id != key.key_id or key.version not in (None, owner.version):
            raise DecryptionError()
        try:
            _, key_type, _, material = self._material(owner)
            if key_type is not KeyType.AES_256:
                raise DecryptionError()
            data = encrypted.ciphertext
            nonce, sealed = data[:NONCE_SIZE], data[NONCE_SIZE:]
            return bytearray(AESGCM(material).decrypt(nonce, sealed, context.serialize()))
        except (InvalidTag, KeyNotFound, ValueError):
            raise DecryptionError() from None


def _number(version: str) -> int:
    return int(version) if version.isascii() and version.isdigit() else 0


def _new_version(key_type: KeyType) -> tuple[datetime, bytes]:
    if key_type is KeyType.AES_256:
        material = os.urandom(32)
    else:
        material = Ed25519PrivateKey.generate().private_bytes_raw()
    return datetime.now(timezone.utc), material


class TestReferenceProvider(KeyProviderContract):
    @pytest.fixture
    def provider(self) -> ReferenceProvider:
        return ReferenceProvider()
