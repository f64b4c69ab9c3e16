"""The header parser reads in-memory messages by offset and streams field by field: same verdicts."""

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
    header, raw, offset = _verdict(message, limits)  # type: ignore[misc]
    assert raw == message[:offset] and header.frame_length == 64 * 1024
