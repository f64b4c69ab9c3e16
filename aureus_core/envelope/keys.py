"""Key derivation, key commitment and header authentication."""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import DecryptionError
from .suites import AlgorithmSuite

DERIVE_LABEL = b"DERIVEKEY"
COMMIT_LABEL = b"COMMITKEY"
COMMITMENT_LENGTH = 32


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
    if suite.committing:
        encryption_key = HKDF(
            algorithm=suite.kdf_hash(),
            length=suite.data_key_length,
            salt=message_id,
            info=suite.id_bytes + DERIVE_LABEL,
        ).derive(bytes(data_key))
        commitment = HKDF(
            algorithm=suite.kdf_hash(),
            length=COMMITMENT_LENGTH,
            salt=message_id,
            info=COMMIT_LABEL,
        ).derive(bytes(data_key))
        return encryption_key, commitment
    encryption_key = HKDF(
        algorithm=suite.kdf_hash(),
        length=suite.data_key_length,
        salt=None,
        info=suite.id_bytes + message_id,
    ).derive(bytes(data_key))
    return encryption_key, b""


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
