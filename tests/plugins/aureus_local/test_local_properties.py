"""Hypothesis properties of signing through the stack, for every local signing key type."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aureus_core import KeyStack, SignatureError

SIGNING_TYPES = ["ed25519", "ecdsa-p256"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyStack]:
    directory: Path = tmp_path_factory.mktemp("properties")
    with KeyStack.local(directory) as stack:
        for key_type in SIGNING_TYPES:
            stack.create_key(key_type, key_type)
        yield stack


@pytest.mark.parametrize("key_type", SIGNING_TYPES)
@settings(max_examples=75, deadline=None)
@given(message=st.binary(max_size=2048))
def test_sign_verify_round_trip(stack: KeyStack, key_type: str, message: bytes) -> None:
    signature = stack.sign(message, key=f"local://{key_type}")
    assert stack.verify(message, signature, key=f"local://{key_type}")
    assert stack.verify(message, signature.value, key=f"local://{key_type}")


@pytest.mark.parametrize("key_type", SIGNING_TYPES)
@settings(max_examples=75, deadline=None)
@given(message=st.binary(min_size=1, max_size=512), data=st.data())
def test_any_changed_message_byte_fails(
    stack: KeyStack, key_type: str, message: bytes, data: st.DataObject
) -> None:
    signature = stack.sign(message, key=f"local://{key_type}")
    index = data.draw(st.integers(0, len(message) - 1))
    flip = data.draw(st.integers(1, 255))
    changed = bytearray(message)
    changed[index] ^= flip
    assert not stack.verify(bytes(changed), signature, key=f"local://{key_type}")


@pytest.mark.parametrize("key_type", SIGNING_TYPES)
@settings(max_examples=75, deadline=None)
@given(message=st.binary(max_size=512), data=st.data())
def test_any_changed_signature_byte_fails(
    stack: KeyStack, key_type: str, message: bytes, data: st.DataObject
) -> None:
    signature = stack.sign(message, key=f"local://{key_type}")
    # ECDSA signatures vary in length, so draw a position independent of it.
    index = data.draw(st.integers(0, 2**16)) % len(signature.value)
    flip = data.draw(st.integers(1, 255))
    changed = bytearray(signature.value)
    changed[index] ^= flip
    # A changed byte may leave a well-formed signature (False) or break its
    # encoding (SignatureError); it must never verify.
    try:
        valid = stack.verify(message, bytes(changed), key=f"local://{key_type}")
    except SignatureError:
        return
    assert valid is False
