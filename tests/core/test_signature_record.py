"""The signature record: what it writes, what it reads back, and what it refuses."""

from __future__ import annotations

import json

import pytest

from aureus_core.errors import SignatureError
from aureus_core.signature import Signature

RECORD = Signature(
    value=b"\x00\x01sig\xff", key_uri="local://signer", key_version="3", algorithm="ed25519"
)


def test_to_json_writes_every_field_sorted_with_the_value_in_base64():
    assert json.loads(RECORD.to_json()) == {
        "algorithm": "ed25519",
        "key_uri": "local://signer",
        "key_version": "3",
        "signature": "AAFzaWf/",
    }
    assert RECORD.to_json() == (
        '{"algorithm": "ed25519", "key_uri": "local://signer", "key_version": "3", '
        '"signature": "AAFzaWf/"}'
    )


def test_from_json_reads_what_to_json_wrote():
    assert Signature.from_json(RECORD.to_json()) == RECORD
    assert Signature.from_json(RECORD.to_json().encode()) == RECORD


def test_from_json_takes_numbers_as_text():
    text = '{"signature": "AA==", "key_uri": "local://k", "key_version": 2, "algorithm": "x"}'
    assert Signature.from_json(text).key_version == "2"


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",  # not an object
        '{"signature": "AA==", "key_uri": "u", "key_version": "1"}',  # no algorithm
        '{"signature": "A?==", "key_uri": "u", "key_version": "1", "algorithm": "a"}',
        '{"signature": "AAA", "key_uri": "u", "key_version": "1", "algorithm": "a"}',
        '{"signature": 5, "key_uri": "u", "key_version": "1", "algorithm": "a"}',
    ],
)
def test_a_malformed_record_is_refused_with_what_is_expected(text):
    with pytest.raises(
        SignatureError,
        match=r"^malformed signature record: expected JSON with signature, key_uri, "
        r"key_version and algorithm$",
    ):
        Signature.from_json(text)


def test_repr_shows_the_length_of_the_value_never_its_bytes():
    assert repr(RECORD) == (
        "Signature(value=<6 bytes>, key_uri='local://signer', key_version='3', algorithm='ed25519')"
    )


@pytest.mark.parametrize("value", ["AA!==", "AA==\n", "A A==", "AA==%"])
def test_a_signature_with_characters_outside_base64_is_refused_not_skipped(value):
    """A lenient decoder would drop the stray characters and read one zero byte."""
    text = json.dumps({"signature": value, "key_uri": "u", "key_version": "1", "algorithm": "a"})
    with pytest.raises(SignatureError, match=r"^malformed signature record"):
        Signature.from_json(text)
    lenient = text.replace(json.dumps(value), '"AA=="')
    assert Signature.from_json(lenient).value == b"\x00"


def test_a_record_is_built_by_field_name_only():
    """Positional fields would let a key URI and a version trade places without a word."""
    with pytest.raises(TypeError):
        Signature(b"sig", "local://signer", "3", "ed25519")  # type: ignore[call-arg]
