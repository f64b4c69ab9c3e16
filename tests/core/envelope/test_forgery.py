"""Attacks on the message format, each built from bytes, each refused before plaintext."""

from __future__ import annotations

import os

import pytest

from aureus_core import DecryptionError, KeyStack
from aureus_core.testing import forge


def _strip_signature(message: bytes, beta_key: bytes, new_plaintext: bytes) -> bytes:
    """What the holder of ``beta`` can write from a signed message to alpha and beta.

    The stored context (with ``aws-crypto-public-key``) and every encrypted
    data key are kept, so alpha still unwraps; the suite becomes unsigned,
    the plaintext is new and commitment and header tag are correct.
    """
    header, _ = forge.read_header(message)
    context = forge.serialize_context(dict(header.context))
    beta = next(e for e in header.encrypted_data_keys if e.provider_info.startswith(b"beta:"))
    data_key = forge.unwrap_raw_aes(beta, beta_key, context)
    return forge.unsigned_message(
        data_key=data_key,
        message_id=os.urandom(32),
        context=context,
        edks=header.encrypted_data_keys,
        plaintext=new_plaintext,
    )


def test_a_co_recipient_cannot_strip_the_signature(stack: KeyStack, raw_keys):
    signed = stack.encrypt(
        b"pay 10 to bob", keys=["local://alpha", "local://beta"], context={"t": "1"}, signed=True
    )
    forged = _strip_signature(signed, raw_keys["beta"], b"pay 10000 to mallory")
    # The forgery is well formed: only the suite/public-key mismatch gives it away.
    header, _ = forge.read_header(forged)
    assert header.suite.suite_id == forge.UNSIGNED
    assert "aws-crypto-public-key" in header.context
    for keys in (None, ["local://alpha"]):
        with pytest.raises(DecryptionError, match="signature key in its header disagree"):
            stack.decrypt(forged, keys=keys)
    with pytest.raises(DecryptionError):
        stack.inspect(forged)


def test_the_same_unsigned_message_without_the_public_key_decrypts(stack: KeyStack, raw_keys):
    """Control: the forge builds valid messages, so the refusal above is the check's."""
    signed = stack.encrypt(b"x", keys=["local://alpha", "local://beta"], signed=False)
    header, _ = forge.read_header(signed)
    context = forge.serialize_context(dict(header.context))
    beta = next(e for e in header.encrypted_data_keys if e.provider_info.startswith(b"beta:"))
    data_key = forge.unwrap_raw_aes(beta, raw_keys["beta"], context)
    rebuilt = forge.unsigned_message(
        data_key=data_key,
        message_id=os.urandom(32),
        context=context,
        edks=header.encrypted_data_keys,
        plaintext=b"rebuilt by hand",
    )
    assert stack.decrypt(rebuilt, keys=["local://alpha"]) == b"rebuilt by hand"


def test_a_signed_suite_without_its_public_key_is_refused(stack: KeyStack, raw_keys):
    """0x0578 whose context lacks ``aws-crypto-public-key``: refused at the header."""
    plain = stack.encrypt(b"x", keys=["local://beta"], context={"t": "1"})
    header, _ = forge.read_header(plain)
    context = forge.serialize_context(dict(header.context))
    data_key = forge.unwrap_raw_aes(header.encrypted_data_keys[0], raw_keys["beta"], context)
    forged = forge.unsigned_message(
        data_key=data_key,
        message_id=os.urandom(32),
        context=context,
        edks=header.encrypted_data_keys,
        plaintext=b"no footer at all",
        suite_id=forge.SIGNED,
    )
    with pytest.raises(DecryptionError, match="signature key in its header disagree"):
        stack.decrypt(forged)


def test_inspect_reports_signed_from_the_suite(stack: KeyStack):
    assert stack.inspect(stack.encrypt(b"x", signed=True)).signed is True
    assert stack.inspect(stack.encrypt(b"x")).signed is False
