"""Key derivation, key commitment and header authentication."""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import DecryptionError
from .suites import AlgorithmSuite

DERIVE_LABEL = b"DERIVEKEY"
COMMIT_LABEL = b"COMMITKEY"
COMMITMENT_LENGTH = 32


def hkdf(
    hash_name: str, key: bytes | bytearray, salt: bytes | None, infos: tuple[bytes, ...]
) -> list[bytes]:
    """HKDF (RFC 5869) of ``key`` for each ``(info)``, with one shared extract step.

    Returns one output of the hash's digest length per info.  Built on the
    standard library's one-shot HMAC: for the two derivations of a committing
    message this is three HMAC calls instead of four, with no objects built.
    """
    if not salt:  # RFC 5869: no salt means a string of HashLen zeros
        salt = bytes(hashlib.new(hash_name).digest_size)
    prk = hmac.digest(salt, key, hash_name)
    return [hmac.digest(prk, info + b"\x01", hash_name) for info in infos]


def derive_keys(
    suite: AlgorithmSuite, data_key: bytes | bytearray, message_id: bytes
) -> tuple[bytes, bytes]:
    """Return ``(data encryption key, commitment value)`` for one message.

    Committing suites use HKDF with the message ID as salt; the non-committing
    version-1 suites use HKDF with the message ID in the info, or (suites
    without a KDF) the data key itself, and give an empty commitment.
    """
    if len(data_key) != suite.data_key_length:
        raise DecryptionError()
    if suite.kdf_hash is None:
        return bytes(data_key), b""
    name = suite.kdf_hash().name
    if suite.committing:
        encryption_key, commitment = hkdf(
            name, data_key, message_id, (suite.id_bytes + DERIVE_LABEL, COMMIT_LABEL)
        )
        return encryption_key[: suite.data_key_length], commitment[:COMMITMENT_LENGTH]
    (encryption_key,) = hkdf(name, data_key, None, (suite.id_bytes + message_id,))
    return encryption_key[: suite.data_key_length], b""


def check_commitment(expected: bytes, stored: bytes) -> None:
    """Compare commitment values in constant time."""
    if not hmac.compare_digest(expected, stored):
        raise DecryptionError()


def header_auth_tag(aead: AESGCM, suite: AlgorithmSuite, header: bytes) -> bytes:
    """The tag over the header body (IV of zeros, empty plaintext)."""
    return aead.encrypt(bytes(suite.iv_length), b"", header)


def check_header_auth(aead: AESGCM, iv: bytes, tag: bytes, header: bytes) -> None:
    """Authenticate the header body, or raise :class:`DecryptionError`."""
    try:
        aead.decrypt(iv, tag, header)
    except InvalidTag:
        raise DecryptionError() from None
