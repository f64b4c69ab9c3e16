"""The message body: framed (per-frame IVs, associated data, layout) or one single block."""

from __future__ import annotations

import struct

FRAME_STRING = b"AWSKMSEncryptionClient Frame"
FINAL_FRAME_STRING = b"AWSKMSEncryptionClient Final Frame"
SINGLE_BLOCK_STRING = b"AWSKMSEncryptionClient Single Block"
SINGLE_BLOCK_SEQUENCE = 1
"""A non-framed body is authenticated as sequence number 1."""
FINAL_FRAME_MARKER = 0xFFFFFFFF
MAX_FRAMES = 0xFFFFFFFF
"""Frames in one message, the final one included: the format allows 2**32 - 1.

Numbers run from 1.  The final frame's number follows the marker, so it may be
0xFFFFFFFF; a regular frame's may not (it would read as the marker), and one is
always followed by the final frame, so regular frames stop at ``MAX_FRAMES - 1``.
"""

FRAME_IV = struct.Struct(">8xI")
"""A frame's IV: 8 zero bytes, then its sequence number."""
FRAME_AAD_TAIL = struct.Struct(">IQ")
"""The end of a frame's associated data: sequence number and content length."""
_IV = FRAME_IV
_AAD_TAIL = FRAME_AAD_TAIL


def frame_iv(sequence: int) -> bytes:
    """The deterministic IV for frame ``sequence``: 8 zero bytes, then the number."""
    return _IV.pack(sequence)


def frame_aad(message_id: bytes, sequence: int, length: int, *, final: bool) -> bytes:
    """Associated data binding a frame to its message, position, length and finality."""
    label = FINAL_FRAME_STRING if final else FRAME_STRING
    return message_id + label + _AAD_TAIL.pack(sequence, length)


def single_block_aad(message_id: bytes, length: int) -> bytes:
    """Associated data of a non-framed body of ``length`` plaintext bytes."""
    return message_id + SINGLE_BLOCK_STRING + _AAD_TAIL.pack(SINGLE_BLOCK_SEQUENCE, length)


def single_block_size(content_length: int, iv_length: int = 12, tag_length: int = 16) -> int:
    """Bytes a non-framed body occupies: IV, 8-byte length, ciphertext, tag."""
    return iv_length + 8 + content_length + tag_length


def regular_frame_size(frame_length: int, iv_length: int = 12, tag_length: int = 16) -> int:
    """Bytes one regular frame occupies in a message."""
    return 4 + iv_length + frame_length + tag_length


def final_frame_size(content_length: int, iv_length: int = 12, tag_length: int = 16) -> int:
    """Bytes the final frame occupies in a message."""
    return 8 + iv_length + 4 + content_length + tag_length
