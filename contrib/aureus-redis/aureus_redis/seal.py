"""Sealing cache entries for storage outside the process.

One 32-byte sealing key gives two subkeys (HKDF-SHA256): one names entries
(HMAC-SHA256 of the cache's entry key, so Redis never sees an encryption
context, a key ID or a partition), and one seals them (AES-256-GCM with the
entry's Redis name as authenticated data, so an entry copied under another
name, or altered, fails to open).
"""

from __future__ import annotations

import hmac
import os
import struct
from hashlib import sha256

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from aureus_core.datakey import EncryptedDataKey
from aureus_core.errors import ConfigError
from aureus_core.interfaces import CacheEntry

FORMAT = 1
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_BYTES = 8


class SealError(Exception):
    """A stored entry that does not open: altered, forged, or sealed under another key."""


def _derive(key: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(key)


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def field(self, data: bytes | bytearray) -> None:
        self.out += struct.pack(">I", len(data))
        self.out += data


class _Reader:
    def __init__(self, data: bytes | bytearray) -> None:
        self.data = memoryview(data)
        self.at = 0

    def field(self) -> bytes:
        if self.at + 4 > len(self.data):
            raise SealError("truncated entry")
        (size,) = struct.unpack_from(">I", self.data, self.at)
        self.at += 4
        if self.at + size > len(self.data):
            raise SealError("truncated entry")
        value = bytes(self.data[self.at : self.at + size])
        self.at += size
        return value


class Sealer:
    """Names and seals cache entries with subkeys of one sealing key."""

    def __init__(self, key: bytes | bytearray) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigError(
                f"the redis cache sealing key must be {KEY_BYTES} bytes (base64 or hex of "
                f"{KEY_BYTES} random bytes; make one with "
                '`python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"`)'
            )
        self._name_key = _derive(bytes(key), b"aureus redis cache: entry names")
        self._aead = AESGCM(_derive(bytes(key), b"aureus redis cache: entry seal"))
        self.key_id = _derive(bytes(key), b"aureus redis cache: key id")[:KEY_ID_BYTES]

    def name(self, entry_key: bytes) -> str:
        """The Redis name of an entry: a keyed hash of the cache's entry key, in hex."""
        return hmac.new(self._name_key, entry_key, sha256).hexdigest()

    def seal(self, name: bytes, entry: CacheEntry, wall_created: float) -> bytes:
        """Encrypt ``entry`` (material, data keys, signing key, versions) bound to ``name``."""
        writer = _Writer()
        writer.field(struct.pack(">d", wall_created))
        writer.field(entry.material)
        writer.field(struct.pack(">I", len(entry.encrypted)))
        for edk in entry.encrypted:
            writer.field(edk.provider_id.encode())
            writer.field(edk.provider_info)
            writer.field(edk.ciphertext)
        writer.field("\n".join(entry.key_versions).encode())
        signing = b""
        if entry.signing_key is not None:
            signing = entry.signing_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        writer.field(signing)
        nonce = os.urandom(NONCE_BYTES)
        header = bytes([FORMAT]) + self.key_id
        try:
            sealed = self._aead.encrypt(nonce, bytes(writer.out), header + name)
        finally:
            writer.out[:] = bytes(len(writer.out))
        return header + nonce + sealed

    def open(self, name: bytes, blob: bytes, messages: int, used_bytes: int) -> CacheEntry:
        """The entry sealed in ``blob`` under ``name``; :class:`SealError` if it does not open."""
        head = 1 + KEY_ID_BYTES
        if len(blob) < head + NONCE_BYTES + 16 or blob[0] != FORMAT:
            raise SealError("not a sealed entry of a known format")
        if not hmac.compare_digest(blob[1:head], self.key_id):
            raise SealError("sealed under another sealing key")
        try:
            plain = bytearray(
                self._aead.decrypt(
                    blob[head : head + NONCE_BYTES], blob[head + NONCE_BYTES :], blob[:head] + name
                )
            )
        except InvalidTag:
            raise SealError("the seal does not authenticate") from None
        try:
            reader = _Reader(plain)
            (wall_created,) = struct.unpack(">d", reader.field())
            material = bytearray(reader.field())
            (count,) = struct.unpack(">I", reader.field())
            encrypted = tuple(
                EncryptedDataKey(
                    provider_id=reader.field().decode(),
                    provider_info=reader.field(),
                    ciphertext=reader.field(),
                )
                for _ in range(count)
            )
            versions = reader.field().decode()
            signing = reader.field()
        except (struct.error, UnicodeDecodeError) as error:
            raise SealError(f"malformed entry ({type(error).__name__})") from None
        finally:
            plain[:] = bytes(len(plain))
        signing_key = None
        if signing:
            loaded = serialization.load_der_private_key(signing, password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise SealError("the entry's signing key is not an EC key")
            signing_key = loaded
        return CacheEntry(
            material=material,
            encrypted=encrypted,
            created_at=wall_created,
            messages=messages,
            bytes=used_bytes,
            signing_key=signing_key,
            key_versions=tuple(versions.split("\n")) if versions else (),
        )

    def __repr__(self) -> str:
        return f"Sealer(key_id={self.key_id.hex()})"
