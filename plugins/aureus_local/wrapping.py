"""Wrapped data keys in the AWS Encryption SDK raw AES keyring layout.

An encrypted data key made by a local key has provider ID ``aureus-local`` and
provider info ``NAME:VERSION`` (UTF-8) || tag length in bits (4 bytes, 128) ||
IV length (4 bytes, 12) || the 12-byte IV.  Its ciphertext is the AES-256-GCM
encryption of the data key followed by the 16-byte tag, with the serialized
encryption context as associated data.  A raw AES keyring of the official SDK
configured with key namespace ``aureus-local`` and key name ``NAME:VERSION``
reads and writes the same bytes.  Raw keyring keys (:mod:`aureus_local.rawkeys`)
use the same layout under their own key namespace and key name.
"""

from __future__ import annotations

import functools
import secrets
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.errors import ConfigError, DecryptionError

from .naming import is_valid_name, parse_version

PROVIDER_ID = "aureus-local"
TAG_BITS = 128
IV_SIZE = 12
DATA_KEY_SIZES = (16, 24, 32)

_LENGTHS = struct.Struct(">II")
_SUFFIX_SIZE = _LENGTHS.size + IV_SIZE


def key_name(name: str, version: int) -> bytes:
    """The keyring key name that identifies one key version."""
    return f"{name}:{version}".encode()


def wrap(
    wrapping_key: bytes | AESGCM,
    name: str,
    version: int,
    data_key: bytes,
    context: EncryptionContext,
) -> EncryptedDataKey:
    """Encrypt ``data_key`` under one version of a local AES-256 key."""
    return seal(wrapping_key, PROVIDER_ID, key_name(name, version), data_key, context)


def seal(
    wrapping_key: bytes | AESGCM,
    provider_id: str,
    name: bytes,
    data_key: bytes,
    context: EncryptionContext,
) -> EncryptedDataKey:
    """Encrypt ``data_key`` in the raw AES keyring layout (any AES key size).

    ``wrapping_key`` is the key, or an :class:`AESGCM` built on it: each call
    draws its own random IV, so a shared cipher object never repeats one.
    """
    if len(data_key) not in DATA_KEY_SIZES:
        raise ConfigError(
            f"a data key to wrap must be 16, 24 or 32 bytes long, not {len(data_key)}"
        )
    iv = secrets.token_bytes(IV_SIZE)
    aead = wrapping_key if isinstance(wrapping_key, AESGCM) else AESGCM(wrapping_key)
    ciphertext = aead.encrypt(iv, bytes(data_key), context.serialize())
    info = name + _LENGTHS.pack(TAG_BITS, IV_SIZE) + iv
    return EncryptedDataKey(provider_id=provider_id, provider_info=info, ciphertext=ciphertext)


def key_name_in(info: bytes) -> bytes | None:
    """The key name at the start of raw AES provider info, or ``None`` if the layout differs.

    Strict: a non-empty name, then exactly a 128-bit tag length, a 12-byte IV
    length and the IV.
    """
    if len(info) <= _SUFFIX_SIZE:
        return None
    head, lengths = info[:-_SUFFIX_SIZE], info[-_SUFFIX_SIZE:-IV_SIZE]
    if _LENGTHS.unpack(lengths) != (TAG_BITS, IV_SIZE):
        return None
    return head


def parse_info(encrypted: EncryptedDataKey) -> tuple[str, int] | None:
    """The key name and version an encrypted data key names, or ``None`` if it is not ours.

    Strict: the provider ID, tag and IV lengths and the overall length must be
    exactly what :func:`wrap` writes.
    """
    if encrypted.provider_id != PROVIDER_ID:
        return None
    head = key_name_in(encrypted.provider_info)
    if head is None:
        return None
    if len(head) <= _MEMO_MAX_HEAD:
        return _parse_head_memo(bytes(head))
    return _parse_head(head)


_MEMO_MAX_HEAD = 160
"""Key names up to this size are parsed once (a valid name is at most 128 characters)."""


def _parse_head(head: bytes) -> tuple[str, int] | None:
    try:
        text = head.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return None
    name, sep, version_text = text.rpartition(":")
    version = parse_version(version_text)
    if not sep or version is None or not is_valid_name(name):
        return None
    return name, version


_parse_head_memo = functools.lru_cache(maxsize=1024)(_parse_head)


def unwrap(
    wrapping_key: bytes | AESGCM,
    name: str,
    version: int,
    encrypted: EncryptedDataKey,
    context: EncryptionContext,
) -> bytearray:
    """Decrypt a data key that :func:`wrap` made with version ``version`` of key ``name``.

    Any failure (another key or version named, a malformed layout, a failed
    authentication) is the same opaque :class:`DecryptionError`.
    """
    if parse_info(encrypted) != (name, version):
        raise DecryptionError()
    return open_sealed(wrapping_key, encrypted, context)


def open_sealed(
    wrapping_key: bytes | AESGCM, encrypted: EncryptedDataKey, context: EncryptionContext
) -> bytearray:
    """Decrypt a data key in the raw AES keyring layout (the caller checked whose it is).

    Any failure is the same opaque :class:`DecryptionError`.
    """
    if key_name_in(encrypted.provider_info) is None:
        raise DecryptionError()
    iv = encrypted.provider_info[-IV_SIZE:]
    try:
        aead = wrapping_key if isinstance(wrapping_key, AESGCM) else AESGCM(wrapping_key)
        plaintext = aead.decrypt(iv, encrypted.ciphertext, context.serialize())
    except (InvalidTag, ValueError):
        raise DecryptionError() from None
    if len(plaintext) not in DATA_KEY_SIZES:
        raise DecryptionError()
    return bytearray(plaintext)
