"""Hostile messages built byte by byte, independently of Aureus's writer.

Everything here follows the AWS Encryption SDK message format (version 2,
framed) directly with ``struct`` and ``cryptography``'s primitives, so a
test can write exactly the hostile bytes an attacker would, including
combinations Aureus's own writer refuses to produce.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from aureus_core.datakey import EncryptedDataKey
from aureus_core.envelope.header import Header, Limits, parse_header
from aureus_core.envelope.reader import Reader

UNSIGNED = 0x0478
SIGNED = 0x0578
FRAME = b"AWSKMSEncryptionClient Frame"
FINAL_FRAME = b"AWSKMSEncryptionClient Final Frame"


def read_header(message: bytes) -> tuple[Header, int]:
    """The parsed header of ``message`` and the offset of its authentication tag."""
    reader = Reader(message)
    header, _raw = parse_header(reader, Limits())
    return header, reader.offset


def serialize_context(pairs: Mapping[str, str]) -> bytes:
    """The encryption context as the format stores it: sorted by key bytes, length-prefixed."""
    if not pairs:
        return b""
    items = sorted((k.encode(), v.encode()) for k, v in pairs.items())
    out = struct.pack(">H", len(items))
    for key, value in items:
        out += struct.pack(">H", len(key)) + key + struct.pack(">H", len(value)) + value
    return out


def derive(data_key: bytes, message_id: bytes, suite_id: int) -> tuple[bytes, bytes]:
    """(data encryption key, commitment) for a committing suite."""
    key = HKDF(
        hashes.SHA512(), 32, salt=message_id, info=suite_id.to_bytes(2, "big") + b"DERIVEKEY"
    ).derive(data_key)
    commitment = HKDF(hashes.SHA512(), 32, salt=message_id, info=b"COMMITKEY").derive(data_key)
    return key, commitment


def header_body(
    suite_id: int,
    message_id: bytes,
    context: bytes,
    edks: Sequence[EncryptedDataKey],
    frame_length: int,
    commitment: bytes,
) -> bytes:
    """A version-2 header body, field by field."""
    out = struct.pack(">BH", 2, suite_id) + message_id
    out += struct.pack(">H", len(context)) + context
    out += struct.pack(">H", len(edks))
    for edk in edks:
        for field in (edk.provider_id.encode(), edk.provider_info, edk.ciphertext):
            out += struct.pack(">H", len(field)) + field
    out += struct.pack(">BI", 0x02, frame_length) + commitment
    return out


def framed_body(key: bytes, message_id: bytes, plaintext: bytes, frame_length: int) -> bytes:
    """Regular frames of ``frame_length`` bytes, then the final frame."""
    aead = AESGCM(key)
    out = b""
    sequence = 1
    rest = plaintext
    while len(rest) > frame_length:
        chunk, rest = rest[:frame_length], rest[frame_length:]
        iv = bytes(8) + struct.pack(">I", sequence)
        aad = message_id + FRAME + struct.pack(">IQ", sequence, len(chunk))
        out += struct.pack(">I", sequence) + iv + aead.encrypt(iv, chunk, aad)
        sequence += 1
    iv = bytes(8) + struct.pack(">I", sequence)
    aad = message_id + FINAL_FRAME + struct.pack(">IQ", sequence, len(rest))
    sealed = aead.encrypt(iv, rest, aad)
    out += struct.pack(">II", 0xFFFFFFFF, sequence) + iv + struct.pack(">I", len(rest)) + sealed
    return out


def unsigned_message(
    *,
    data_key: bytes,
    message_id: bytes,
    context: bytes,
    edks: Sequence[EncryptedDataKey],
    plaintext: bytes,
    frame_length: int = 4096,
    suite_id: int = UNSIGNED,
) -> bytes:
    """A complete message with a correct commitment and header tag, and no footer."""
    key, commitment = derive(data_key, message_id, suite_id)
    body = header_body(suite_id, message_id, context, edks, frame_length, commitment)
    tag = AESGCM(key).encrypt(bytes(12), b"", body)
    return body + tag + framed_body(key, message_id, plaintext, frame_length)


def unwrap_raw_aes(edk: EncryptedDataKey, wrapping_key: bytes, context: bytes) -> bytes:
    """Open a raw-AES-keyring encrypted data key with the wrapping key's bytes."""
    iv = edk.provider_info[-12:]
    return AESGCM(wrapping_key).decrypt(iv, edk.ciphertext, context)
