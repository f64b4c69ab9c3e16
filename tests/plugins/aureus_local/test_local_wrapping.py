"""Wrapping data keys in the AWS Encryption SDK raw AES keyring layout."""

from __future__ import annotations

import struct

import attrs
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.errors import ConfigError, DecryptionError, KeyNotFound
from aureus_core.interfaces import KeyMaterial
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec
from aureus_core.sensitive import Secret
from aureus_local import LocalKeyProvider, wrapping

WRAPPING_KEY = bytes(range(32))
CONTEXT = EncryptionContext({"tenant": "acme", "purpose": "invoices"})
DATA_KEY = bytes(range(200, 232))


def ref(uri: str) -> KeyRef:
    return KeyRef.parse(uri)


@pytest.fixture
def wrapper(local_provider: LocalKeyProvider) -> LocalKeyProvider:
    """The provider with ``local://w``, an AES-256 key whose material is WRAPPING_KEY."""
    local_provider.import_key(
        "w", KeySpec(key_type="aes-256"), KeyMaterial(format="raw", data=Secret(WRAPPING_KEY))
    )
    return local_provider


@pytest.mark.parametrize("size", [16, 24, 32])
def test_wrap_unwrap_round_trip(wrapper: LocalKeyProvider, size: int) -> None:
    data_key = DATA_KEY[:size]

    wrapped = wrapper.wrap(ref("local://w"), data_key, CONTEXT)

    assert wrapped.key == ref("local://w?version=1")
    unwrapped = wrapper.unwrap(ref("local://w"), wrapped.encrypted, CONTEXT)
    assert isinstance(unwrapped, bytearray)
    assert unwrapped == data_key
    assert wrapper.unwrap(wrapped.key, wrapped.encrypted, CONTEXT) == data_key


def test_wrap_layout_is_the_raw_aes_keyring(wrapper: LocalKeyProvider) -> None:
    encrypted = wrapper.wrap(ref("local://w"), DATA_KEY, CONTEXT).encrypted
    info = encrypted.provider_info

    assert encrypted.provider_id == "aureus-local"
    assert info[:3] == b"w:1"
    assert info[3:7] == struct.pack(">I", 128) == b"\x00\x00\x00\x80"
    assert info[7:11] == struct.pack(">I", 12) == b"\x00\x00\x00\x0c"
    assert len(info) == 3 + 4 + 4 + 12
    assert len(encrypted.ciphertext) == len(DATA_KEY) + 16
    iv = info[11:]
    assert AESGCM(WRAPPING_KEY).decrypt(iv, encrypted.ciphertext, CONTEXT.serialize()) == DATA_KEY


def test_ivs_are_fresh(wrapper: LocalKeyProvider) -> None:
    infos = {
        wrapper.wrap(ref("local://w"), DATA_KEY, CONTEXT).encrypted.provider_info[-12:]
        for _ in range(20)
    }
    assert len(infos) == 20


def test_empty_context_is_bound_as_no_bytes(wrapper: LocalKeyProvider) -> None:
    encrypted = wrapper.wrap(ref("local://w"), DATA_KEY, EncryptionContext()).encrypted
    iv = encrypted.provider_info[-12:]
    assert AESGCM(WRAPPING_KEY).decrypt(iv, encrypted.ciphertext, b"") == DATA_KEY
    with pytest.raises(DecryptionError):
        wrapper.unwrap(ref("local://w"), encrypted, CONTEXT)


def test_wrong_context_fails(wrapper: LocalKeyProvider) -> None:
    encrypted = wrapper.wrap(ref("local://w"), DATA_KEY, CONTEXT).encrypted
    for context in (
        EncryptionContext(),
        EncryptionContext({"tenant": "acme"}),
        EncryptionContext({"tenant": "acme", "purpose": "invoiceS"}),
    ):
        with pytest.raises(DecryptionError) as caught:
            wrapper.unwrap(ref("local://w"), encrypted, context)
        assert str(caught.value) == str(DecryptionError())


def test_any_flipped_ciphertext_byte_fails(wrapper: LocalKeyProvider) -> None:
    encrypted = wrapper.wrap(ref("local://w"), DATA_KEY, CONTEXT).encrypted
    for index in range(len(encrypted.ciphertext)):
        damaged = bytearray(encrypted.ciphertext)
        damaged[index] ^= 0x01
        with pytest.raises(DecryptionError):
            wrapper.unwrap(
                ref("local://w"), attrs.evolve(encrypted, ciphertext=bytes(damaged)), CONTEXT
            )


def _info_variants(info: bytes) -> dict[str, bytes]:
    name, lengths, iv = info[:-20], info[-20:-12], info[-12:]
    return {
        "other key name": b"v:1" + lengths + iv,
        "unknown version": b"w:9" + lengths + iv,
        "version zero": b"w:0" + lengths + iv,
        "no version": b"w" + lengths + iv,
        "tag length 96": name + struct.pack(">II", 96, 12) + iv,
        "iv length 16": name + struct.pack(">II", 128, 16) + iv,
        "extra byte": info + b"\x00",
        "missing byte": info[:-1],
        "flipped iv": info[:-1] + bytes([info[-1] ^ 1]),
        "only lengths": lengths + iv,
        "empty": b"",
        "not utf-8": b"\xff:1" + lengths + iv,
    }


@pytest.mark.parametrize(
    "variant",
    [
        "other key name",
        "unknown version",
        "version zero",
        "no version",
        "tag length 96",
        "iv length 16",
        "extra byte",
        "missing byte",
        "flipped iv",
        "only lengths",
        "empty",
        "not utf-8",
    ],
)
def test_wrong_provider_info_fails(wrapper: LocalKeyProvider, variant: str) -> None:
    wrapper.create_key("v", KeySpec(key_type="aes-256"))
    encrypted = wrapper.wrap(ref("local://w"), DATA_KEY, CONTEXT).encrypted
    damaged = attrs.evolve(
        encrypted, provider_info=_info_variants(encrypted.provider_info)[variant]
    )

    with pytest.raises(DecryptionError) as caught:
        wrapper.unwrap(ref("local://w"), damaged, CONTEXT)
    assert str(caught.value) == str(DecryptionError())


def test_wrong_provider_id_fails(wrapper: LocalKeyProvider) -> None:
    encrypted = wrapper.wrap(ref("local://w"), DATA_KEY, CONTEXT).encrypted
    for provider_id in ("aws-kms", "aureus-locall", "raw", ""):
        with pytest.raises(DecryptionError):
            wrapper.unwrap(
                ref("local://w"), attrs.evolve(encrypted, provider_id=provider_id), CONTEXT
            )


def test_unwrap_checks_the_reference(wrapper: LocalKeyProvider) -> None:
    wrapper.create_key("v", KeySpec(key_type="aes-256"))
    encrypted = wrapper.wrap(ref("local://w"), DATA_KEY, CONTEXT).encrypted
    for uri in ("local://v", "local://w?version=2", "local://absent", "aws-kms://w"):
        with pytest.raises(DecryptionError):
            wrapper.unwrap(ref(uri), encrypted, CONTEXT)


def test_old_versions_unwrap_after_rotation(wrapper: LocalKeyProvider) -> None:
    old = wrapper.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    wrapper.rotate_key(ref("local://w"))

    new = wrapper.wrap(ref("local://w"), DATA_KEY, CONTEXT)

    assert old.key.version == "1"
    assert new.key.version == "2"
    assert new.encrypted.provider_info[:3] == b"w:2"
    for wrapped in (old, new):
        assert wrapper.unwrap(ref("local://w"), wrapped.encrypted, CONTEXT) == DATA_KEY
        assert wrapper.unwrap(wrapped.key, wrapped.encrypted, CONTEXT) == DATA_KEY
    with pytest.raises(DecryptionError):
        wrapper.unwrap(ref("local://w?version=2"), old.encrypted, CONTEXT)
    pinned = wrapper.wrap(ref("local://w?version=1"), DATA_KEY, CONTEXT)
    assert pinned.key.version == "1"
    iv = pinned.encrypted.provider_info[-12:]
    assert AESGCM(WRAPPING_KEY).decrypt(iv, pinned.encrypted.ciphertext, CONTEXT.serialize()) == (
        DATA_KEY
    )


def test_owner_of(wrapper: LocalKeyProvider) -> None:
    encrypted = wrapper.wrap(ref("local://w"), DATA_KEY, CONTEXT).encrypted
    wrapper.rotate_key(ref("local://w"))

    assert wrapper.owner_of(encrypted) == ref("local://w?version=1")
    assert wrapper.owner_of(attrs.evolve(encrypted, provider_id="aws-kms")) is None
    info = encrypted.provider_info
    assert wrapper.owner_of(attrs.evolve(encrypted, provider_info=b"x:1" + info[3:])) is None
    assert wrapper.owner_of(attrs.evolve(encrypted, provider_info=info + b"\x00")) is None
    foreign = EncryptedDataKey(provider_id="aureus-local", provider_info=b"", ciphertext=b"")
    assert wrapper.owner_of(foreign) is None


def test_owner_of_on_an_empty_keystore(local_provider: LocalKeyProvider) -> None:
    info = b"w:1" + struct.pack(">II", 128, 12) + bytes(12)
    encrypted = EncryptedDataKey(provider_id="aureus-local", provider_info=info, ciphertext=b"")
    assert local_provider.owner_of(encrypted) is None


@pytest.mark.parametrize("size", [0, 8, 15, 31, 33, 64])
def test_wrap_rejects_bad_data_key_sizes(wrapper: LocalKeyProvider, size: int) -> None:
    with pytest.raises(ConfigError, match="16, 24 or 32 bytes"):
        wrapper.wrap(ref("local://w"), bytes(size), CONTEXT)


def test_signing_keys_do_not_wrap(local_provider: LocalKeyProvider) -> None:
    local_provider.create_key("s", KeySpec(key_type="ed25519"))
    with pytest.raises(ConfigError, match="cannot wrap"):
        local_provider.wrap(ref("local://s"), DATA_KEY, CONTEXT)


def test_wrap_unknown_key(local_provider: LocalKeyProvider) -> None:
    with pytest.raises(KeyNotFound, match="local://w"):
        local_provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)


LENGTHS_AND_IV = struct.pack(">II", 128, 12) + bytes(range(12))


def test_provider_info_without_a_key_name_names_no_key() -> None:
    # Exactly the lengths and the IV: the key name is empty, so the info names nothing.
    assert len(LENGTHS_AND_IV) == 20
    assert wrapping.key_name_in(LENGTHS_AND_IV) is None
    assert wrapping.key_name_in(LENGTHS_AND_IV[1:]) is None
    assert wrapping.key_name_in(b"k" + LENGTHS_AND_IV) == b"k"


# Heads up to 160 bytes take the memoised parse, longer ones the direct parse: both refuse alike.
@pytest.mark.parametrize("long", [False, True], ids=["short", "long"])
@pytest.mark.parametrize(
    "head",
    [
        b"\xff\xfe:1",  # not UTF-8
        b"bad name:1",  # a version, but a space in the name
        b"-w:1",  # a version, but the name starts with '-'
        b"w:01",  # a version with a leading zero
        b"w",  # no version
        b":1",  # no name
    ],
)
def test_provider_info_that_names_no_valid_local_key_version_is_not_ours(
    wrapper: LocalKeyProvider, head: bytes, long: bool
) -> None:
    if long:  # a name over 160 bytes (valid names stop at 128: these stay invalid)
        name, sep, version = head.rpartition(b":")
        head = (name or b"w") + b"w" * 170 + sep + version
        assert len(head) > 160
    encrypted = wrapper.wrap(ref("local://w"), DATA_KEY, CONTEXT).encrypted
    forged = attrs.evolve(encrypted, provider_info=head + encrypted.provider_info[-20:])

    assert wrapping.parse_info(forged) is None
    assert wrapper.owner_of(forged) is None
    with pytest.raises(DecryptionError) as caught:
        wrapper.unwrap(ref("local://w"), forged, CONTEXT)
    assert str(caught.value) == str(DecryptionError())


def test_unwrap_refuses_a_wrapped_key_that_names_another_key_even_under_the_same_aes_key() -> None:
    # The provider info is not authenticated by AES-GCM (the context is the only AAD), so the
    # name check is what stops a wrapped key of one key version opening as another's.
    encrypted = wrapping.wrap(WRAPPING_KEY, "a", 1, DATA_KEY, CONTEXT)
    assert wrapping.unwrap(WRAPPING_KEY, "a", 1, encrypted, CONTEXT) == DATA_KEY
    for name, version in (("b", 1), ("a", 2)):
        with pytest.raises(DecryptionError):
            wrapping.unwrap(WRAPPING_KEY, name, version, encrypted, CONTEXT)


@pytest.mark.parametrize("layout", ["iv only", "name and iv", "tag length 96", "iv length 16"])
def test_open_sealed_refuses_another_layout_even_when_the_iv_would_open_it(layout: str) -> None:
    iv = bytes(range(12))
    ciphertext = AESGCM(WRAPPING_KEY).encrypt(iv, DATA_KEY, CONTEXT.serialize())
    info = {
        "iv only": iv,
        "name and iv": b"k" + iv,
        "tag length 96": b"k" + struct.pack(">II", 96, 12) + iv,
        "iv length 16": b"k" + struct.pack(">II", 128, 16) + iv,
    }[layout]
    encrypted = EncryptedDataKey(provider_id="ns", provider_info=info, ciphertext=ciphertext)
    good = attrs.evolve(encrypted, provider_info=b"k" + struct.pack(">II", 128, 12) + iv)
    assert wrapping.open_sealed(WRAPPING_KEY, good, CONTEXT) == DATA_KEY

    with pytest.raises(DecryptionError):
        wrapping.open_sealed(WRAPPING_KEY, encrypted, CONTEXT)


@pytest.mark.parametrize("size", [0, 1, 15, 20, 33, 64])
def test_an_authentic_wrapped_key_of_another_size_is_not_a_data_key(
    wrapper: LocalKeyProvider, size: int
) -> None:
    # Made by whoever holds the wrapping key: it authenticates, but is no data key.
    iv = bytes(range(12))
    ciphertext = AESGCM(WRAPPING_KEY).encrypt(iv, bytes(size), CONTEXT.serialize())
    info = b"w:1" + struct.pack(">II", 128, 12) + iv
    encrypted = EncryptedDataKey(
        provider_id="aureus-local", provider_info=info, ciphertext=ciphertext
    )

    with pytest.raises(DecryptionError):
        wrapper.unwrap(ref("local://w"), encrypted, CONTEXT)
    with pytest.raises(DecryptionError):
        wrapping.unwrap(WRAPPING_KEY, "w", 1, encrypted, CONTEXT)


def test_a_signing_keys_material_is_never_used_as_an_aes_key(
    local_provider: LocalKeyProvider,
) -> None:
    """Someone who knows an imported signing key's 32 secret bytes wraps a data key under
    them as if they were an AES key, naming that key: unwrap refuses it all the same."""
    pkcs8 = (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8)
    ed = ed25519.Ed25519PrivateKey.generate()
    p256 = ec.generate_private_key(ec.SECP256R1())
    cases = (
        (
            "ed",
            "ed25519",
            ed.private_bytes(*pkcs8, serialization.NoEncryption()),
            ed.private_bytes_raw(),
        ),
        (
            "ec",
            "ecdsa-p256",
            p256.private_bytes(*pkcs8, serialization.NoEncryption()),
            p256.private_numbers().private_value.to_bytes(32, "big"),
        ),
    )
    for name, key_type, pem, secret in cases:
        local_provider.import_key(
            name, KeySpec(key_type=key_type), KeyMaterial(format="pem", data=Secret(pem))
        )
        hostile = wrapping.wrap(secret, name, 1, DATA_KEY, CONTEXT)
        with pytest.raises(DecryptionError):
            local_provider.unwrap(KeyRef.parse(f"local://{name}"), hostile, CONTEXT)
