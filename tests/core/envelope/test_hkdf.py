"""The message format's HKDF against RFC 5869's vectors and the cryptography package."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from aureus_core.envelope.keys import COMMIT_LABEL, DERIVE_LABEL, derive_keys, hkdf
from aureus_core.envelope.suites import DEFAULT_SUITE, SIGNED_SUITE, SUITES, AlgorithmSuite
from aureus_core.errors import DecryptionError


def test_rfc5869_test_case_1_first_block() -> None:
    # RFC 5869 A.1 (SHA-256): the first 32 bytes of its 42-byte OKM are the first block.
    okm = hkdf(
        "sha256",
        bytes([0x0B] * 22),
        bytes(range(0x0D)),
        (bytes(range(0xF0, 0xFA)),),
    )
    assert okm == [
        bytes.fromhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf")
    ]


def test_rfc5869_test_case_3_no_salt() -> None:
    # RFC 5869 A.3 (SHA-256, no salt, empty info): an absent salt is HashLen zeros.
    okm = hkdf("sha256", bytes([0x0B] * 22), None, (b"",))
    assert okm == [
        bytes.fromhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d")
    ]


@pytest.mark.parametrize("suite", [SUITES[suite_id] for suite_id in sorted(SUITES)])
def test_derive_keys_matches_the_cryptography_hkdf(suite: AlgorithmSuite) -> None:
    data_key, message_id = os.urandom(suite.data_key_length), os.urandom(32)
    key, commitment = derive_keys(suite, data_key, message_id)
    if suite.kdf_hash is None:
        assert (key, commitment) == (data_key, b"")
        return
    if suite.committing:
        expected = HKDF(
            algorithm=suite.kdf_hash(),
            length=suite.data_key_length,
            salt=message_id,
            info=suite.id_bytes + DERIVE_LABEL,
        ).derive(data_key)
        expected_commitment = HKDF(
            algorithm=suite.kdf_hash(), length=32, salt=message_id, info=COMMIT_LABEL
        ).derive(data_key)
    else:
        expected = HKDF(
            algorithm=suite.kdf_hash(),
            length=suite.data_key_length,
            salt=None,
            info=suite.id_bytes + message_id,
        ).derive(data_key)
        expected_commitment = b""
    assert (key, commitment) == (expected, expected_commitment)


def test_committing_suites_derive_two_different_values() -> None:
    for suite in (DEFAULT_SUITE, SIGNED_SUITE):
        key, commitment = derive_keys(suite, bytearray(32), bytes(32))
        assert len(key) == len(commitment) == 32
        assert key != commitment
        assert hashes.SHA512.name == suite.kdf_hash.name  # type: ignore[union-attr]


@pytest.mark.parametrize("suite", [SUITES[suite_id] for suite_id in sorted(SUITES)])
def test_a_data_key_of_another_length_than_the_suites_is_refused(suite: AlgorithmSuite) -> None:
    """A short key would stretch fewer secret bytes into a full-length key: refused, as a long."""
    for size in (0, suite.data_key_length - 1, suite.data_key_length + 1):
        with pytest.raises(DecryptionError):
            derive_keys(suite, bytes(size), bytes(32))
    assert len(derive_keys(suite, bytes(suite.data_key_length), bytes(32))[0]) == (
        suite.data_key_length
    )
