"""MACs under local aes-256 keys: HMAC-SHA-256 under an HKDF-derived key, checked independently."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from aureus_core.errors import ConfigError, KeyNotFound
from aureus_core.interfaces import KeyMaterial
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.sensitive import Secret
from aureus_local import LocalKeyProvider


def test_mac_is_hmac_sha256_under_the_hkdf_of_the_material(
    local_provider: LocalKeyProvider,
) -> None:
    material = os.urandom(32)
    local_provider.import_key(
        "imported",
        KeySpec(key_type=KeyType.AES_256),
        KeyMaterial(format="raw", data=Secret(material)),
    )
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"aureus-local/mac/hmac-sha256/v1"
    ).derive(material)
    expected = hmac.new(derived, b"message", hashlib.sha256).digest()
    assert local_provider.mac(KeyRef.parse("local://imported"), b"message") == expected
    assert expected != hmac.new(material, b"message", hashlib.sha256).digest()


def test_signing_keys_compute_no_macs(local_provider: LocalKeyProvider) -> None:
    local_provider.create_key("signer", KeySpec(key_type=KeyType.ED25519))
    with pytest.raises(ConfigError) as caught:
        local_provider.mac(KeyRef.parse("local://signer"), b"m")
    assert str(caught.value) == (
        "key local://signer is an ed25519 signing key; it cannot compute MACs: use an aes-256 key"
    )
    with pytest.raises(KeyNotFound):
        local_provider.mac(KeyRef.parse("local://missing"), b"m")
