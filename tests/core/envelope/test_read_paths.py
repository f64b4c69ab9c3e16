"""In-memory messages are read by offset, streams field by field: the verdicts are the same."""

from __future__ import annotations

import io

import pytest

from aureus_core import KeyStack
from aureus_core.envelope.header import Header, Limits, parse_header
from aureus_core.envelope.reader import Reader
from aureus_core.errors import AureusError


def _verdict(source: bytes | io.BytesIO, limits: Limits) -> tuple[Header, bytes, int] | str:
    reader = Reader(source)
    try:
        header, raw = parse_header(reader, limits)
    except AureusError as error:
        return f"{type(error).__name__}: {error}"
    return header, raw, reader.offset


def _header_length(message: bytes) -> int:
    reader = Reader(message)
    parse_header(reader, Limits())
    return reader.offset


@pytest.mark.parametrize("signed", [False, True])
def test_every_truncation_and_byte_flip_gets_the_same_verdict_both_ways(
    stack: KeyStack, signed: bool
) -> None:
    message = stack.encrypt(
        b"payload", context={"tenant": "acme", "purpose": "test"}, signed=signed
    )
    end = _header_length(message)
    limits = Limits(max_encrypted_data_keys=2, max_frame_length=1 << 20)
    variants = [message[:cut] for cut in range(end + 1)]
    for index in range(end):
        for flip in (0x01, 0x80, 0xFF):
            changed = bytearray(message)
            changed[index] ^= flip
            variants.append(bytes(changed))
    refused = 0
    for variant in variants:
        in_memory = _verdict(variant, limits)
        streamed = _verdict(io.BytesIO(variant), limits)
        assert in_memory == streamed, variant.hex()
        refused += isinstance(in_memory, str)
    assert 0 < refused < len(variants)  # both outcomes were exercised
    parsed = _verdict(message, limits)
    assert not isinstance(parsed, str)
    header, raw, offset = parsed
    assert raw == message[:offset]
    assert header.frame_length == 64 * 1024


def _decrypted(stack: KeyStack, message: bytes, *, streamed: bool) -> bytes | str:
    try:
        if not streamed:
            return stack.decrypt(message)
        out = io.BytesIO()
        stack.decrypt_stream(io.BytesIO(message), out)
        return out.getvalue()
    except AureusError as error:
        return f"{type(error).__name__}: {error}"


def test_one_shot_and_streamed_decrypt_agree_on_every_body_change(stack: KeyStack) -> None:
    # One-shot decrypt opens the regular frames of an unsigned in-memory message in
    # one loop; streaming reads them one by one. Both must refuse the same bytes.
    plaintext = bytes(range(256)) * 2 + b"tail"
    message = stack.encrypt(plaintext, context={"k": "v"}, frame_length=64)
    body = _header_length(message) + 16  # the header, then its IV-less v2 auth tag
    regular = 4 + 12 + 64 + 16
    first, second = message[body : body + regular], message[body + regular : body + 2 * regular]
    variants = (
        [message[:cut] for cut in range(body, len(message), 7)]
        + [  # frames swapped, a frame dropped, a frame repeated
            message[:body] + second + first + message[body + 2 * regular :],
            message[:body] + message[body + regular :],
            message[:body] + first + message[body:],
        ]
    )
    for index in range(body, len(message)):
        changed = bytearray(message)
        changed[index] ^= 0x01
        variants.append(bytes(changed))
    assert _decrypted(stack, message, streamed=False) == plaintext
    for variant in variants:
        one_shot = _decrypted(stack, variant, streamed=False)
        assert isinstance(one_shot, str), variant.hex()
        assert one_shot.startswith("DecryptionError"), variant.hex()
        assert _decrypted(stack, variant, streamed=True) == one_shot
