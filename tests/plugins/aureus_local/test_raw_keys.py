"""Raw keyring keys in the local keystore: import rules, storage, lookup and pinning."""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_core import DecryptionError, KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.envelope.keyring import KeyFilter, unwrap_data_key
from aureus_core.errors import ConfigError, KeyDisabled, KeyExists, KeystoreCorrupted, PluginError
from aureus_core.interfaces import KeyMaterial
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyPurpose, KeySpec, KeyType
from aureus_core.sensitive import Secret
from aureus_local import LocalKeyProvider, rawkeys
from aureus_local.rawkeys import Padding, RawKeyring
from aureus_local.sealing import Sealer

NAMESPACE = "acme-raw"
CONTEXT = EncryptionContext({"tenant": "acme"})


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def aes_key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def stack(tmp_path: Path, aes_key: bytes, rsa_key: rsa.RSAPrivateKey) -> Iterator[KeyStack]:
    with KeyStack.local(tmp_path / "ks") as stack:
        stack.import_key("orders", "aes-256", raw=aes_key, namespace=NAMESPACE, key_name="orders")
        stack.import_key(
            "partner",
            "rsa-2048",
            pem=private_pem(rsa_key),
            namespace=NAMESPACE,
            key_name="partner",
            padding="oaep-sha256",
        )
        stack.create_key("plain", "aes-256")
        yield stack


def keystore_file(stack: KeyStack) -> Path:
    directory = stack.provider("local").keystore_dir  # type: ignore[attr-defined]
    return Path(directory) / "keystore.json"


def raw_aes_edk(key: bytes, namespace: str, name: bytes, data_key: bytes, aad: bytes) -> Any:
    """An encrypted data key in the raw AES keyring layout, built byte by byte."""
    iv = os.urandom(12)
    info = name + struct.pack(">II", 128, 12) + iv
    return EncryptedDataKey(
        provider_id=namespace,
        provider_info=info,
        ciphertext=AESGCM(key).encrypt(iv, data_key, aad),
    )


# -- import rules ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"namespace": NAMESPACE}, "both a key namespace and a key name"),
        ({"key_name": "k"}, "both a key namespace and a key name"),
        ({"namespace": "", "key_name": "k"}, "non-empty"),
        ({"namespace": "aws-kms", "key_name": "k"}, "reserved"),
        ({"namespace": "aureus-local", "key_name": "k:1"}, "reserved"),
        ({"namespace": NAMESPACE, "key_name": "a\nb"}, "control characters"),
        ({"namespace": NAMESPACE, "key_name": "k", "padding": "pkcs1"}, "only to RSA keys"),
    ],
)
def test_bad_raw_aes_imports_say_what_is_wrong(
    tmp_path: Path, kwargs: dict[str, str], message: str
) -> None:
    with KeyStack.local(tmp_path / "ks") as stack:
        with pytest.raises(ConfigError, match=message):
            stack.import_key(
                "k",
                "aes-256",
                raw=os.urandom(32),
                namespace=kwargs.get("namespace"),
                key_name=kwargs.get("key_name"),
                padding=kwargs.get("padding"),
            )
        assert stack.list_keys() == []


_PADDINGS = "pkcs1, oaep-sha1, oaep-sha256, oaep-sha384, oaep-sha512"


@pytest.mark.parametrize(
    ("key_type", "options", "message"),
    [
        (
            "aes-128",
            {"namespace": "n", "key_name": "k", "colour": "red", "aa": "1"},
            "unknown key option(s) for the local provider: aa, colour; a raw keyring key takes "
            "namespace, key_name, padding",
        ),
        (
            "aes-128",
            {"namespace": "n"},
            "a raw keyring key needs both a key namespace and a key name (namespace=..., "
            "key_name=...; --namespace and --key-name)",
        ),
        (
            "aes-128",
            {"namespace": "aws-kms-x", "key_name": "k"},
            "key namespace 'aws-kms-x' is reserved (namespaces starting with 'aureus-' or "
            "'aws-kms' name AWS KMS and Aureus providers): choose the namespace the other "
            "party's raw keyring uses",
        ),
        (
            "aes-128",
            {"namespace": "", "key_name": "k"},
            "the raw key's key namespace must be a non-empty string",
        ),
        (
            "aes-128",
            {"namespace": "n", "key_name": "k", "padding": "pkcs1"},
            "padding applies only to RSA keys, not to a raw AES key",
        ),
        (
            "ed25519",
            {"namespace": "n", "key_name": "k"},
            "a raw keyring key must be one of aes-128, aes-192, aes-256, rsa-2048, rsa-3072, "
            "rsa-4096; ed25519 keys cannot wrap data keys",
        ),
        (
            "rsa-2048",
            {"namespace": "n", "key_name": "k"},
            f"a raw RSA key needs its padding (padding=..., --padding): one of {_PADDINGS}, "
            "the same as the other party's raw RSA keyring",
        ),
    ],
)
def test_raw_key_options_are_refused_saying_what_is_wrong_and_what_to_give(
    make_provider: Callable[..., LocalKeyProvider],
    key_type: str,
    options: dict[str, str],
    message: str,
) -> None:
    provider = make_provider()
    material = KeyMaterial(format="raw", data=Secret(os.urandom(16)))
    with pytest.raises(ConfigError) as caught:
        provider.import_key("k", KeySpec(key_type=key_type, options=options), material)
    assert str(caught.value) == message
    assert provider.list_keys() == []


@pytest.mark.parametrize(("key_type", "size"), [("aes-128", 16), ("aes-192", 24)])
def test_aes_sizes_must_match_the_type(tmp_path: Path, key_type: str, size: int) -> None:
    with KeyStack.local(tmp_path / "ks") as stack:
        with pytest.raises(ConfigError, match=f"exactly {size} bytes of material; got 32 bytes"):
            stack.import_key("k", key_type, raw=os.urandom(32), namespace="n", key_name="k")
        metadata = stack.import_key(
            "k", key_type, raw=os.urandom(size), namespace="n", key_name="k"
        )
        assert metadata.key_type.value == key_type
        assert metadata.purpose is KeyPurpose.WRAP


def test_smaller_aes_types_cannot_be_created(tmp_path: Path) -> None:
    """Keys created here keep the aureus-local layout, which is AES-256 only."""
    with KeyStack.local(tmp_path / "ks") as stack, pytest.raises(Exception, match="aes-128"):
        stack.create_key("k", "aes-128")


def test_rsa_imports_need_a_padding_and_the_right_size(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = private_pem(rsa_key)
    with KeyStack.local(tmp_path / "ks") as stack:
        with pytest.raises(ConfigError, match="needs its padding"):
            stack.import_key("k", "rsa-2048", pem=pem, namespace="n", key_name="k")
        with pytest.raises(
            ConfigError,
            match=r"^unknown RSA padding 'oaep'; choose one of: pkcs1, oaep-sha1, oaep-sha256, "
            r"oaep-sha384, oaep-sha512$",
        ):
            stack.import_key("k", "rsa-2048", pem=pem, namespace="n", key_name="k", padding="oaep")
        with pytest.raises(
            ConfigError,
            match=r"^the PEM holds a 2048-bit RSA key, but the key type is rsa-4096: import a "
            r"raw RSA key with the type of its size \(rsa-2048, rsa-3072 or rsa-4096\)$",
        ):
            stack.import_key("k", "rsa-4096", pem=pem, namespace="n", key_name="k", padding="pkcs1")
        ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with pytest.raises(
            ConfigError, match=r"^the PEM holds a private key that is not an RSA key$"
        ):
            stack.import_key(
                "k", "rsa-2048", pem=ec_pem, namespace="n", key_name="k", padding="pkcs1"
            )
        with pytest.raises(ConfigError, match="cannot wrap"):
            stack.import_key("k", "ed25519", pem=ec_pem, namespace="n", key_name="k")
        assert stack.list_keys() == []


def test_an_rsa_private_key_that_cannot_be_read_is_refused_with_what_to_do(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    encrypted = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"hunter2"),
    )
    damaged = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    expected = {
        encrypted: "the PEM private key is encrypted: decrypt it first, e.g. "
        "`openssl pkey -in K -out K.plain`, and import K.plain",
        damaged: "the material is not a PEM RSA key that can be read: expected "
        "'-----BEGIN PRIVATE KEY-----', '-----BEGIN RSA PRIVATE KEY-----' or, to wrap "
        "only, '-----BEGIN PUBLIC KEY-----'",
    }
    with KeyStack.local(tmp_path / "ks") as stack:
        for pem, message in expected.items():
            with pytest.raises(ConfigError) as caught:
                stack.import_key(
                    "k", "rsa-2048", pem=pem, namespace="n", key_name="k", padding="pkcs1"
                )
            assert str(caught.value) == message
        assert stack.list_keys() == []


def test_key_namespaces_and_names_are_at_most_1024_utf8_bytes(tmp_path: Path) -> None:
    """The bound counts UTF-8 bytes, not characters: 512 two-byte letters are the most."""
    longest = "\u00e9" * 512
    with KeyStack.local(tmp_path / "ks") as stack:
        with pytest.raises(ConfigError) as caught:
            stack.import_key(
                "k", "aes-128", raw=os.urandom(16), namespace=longest + "a", key_name="k"
            )
        assert str(caught.value) == (
            "the raw key's key namespace is 1025 bytes long in UTF-8; at most 1024"
        )
        stack.import_key("k", "aes-128", raw=os.urandom(16), namespace=longest, key_name=longest)
        extra = dict(stack.describe_key("local://k").extra)
        assert (extra["key_namespace"], extra["key_name"]) == (longest, longest)


def test_a_name_with_a_control_character_is_refused_showing_at_most_80_characters(
    tmp_path: Path,
) -> None:
    name = "n" * 100 + "\x1b"
    with KeyStack.local(tmp_path / "ks") as stack, pytest.raises(ConfigError) as caught:
        stack.import_key("k", "aes-128", raw=os.urandom(16), namespace="ns", key_name=name)
    assert str(caught.value) == (f"the raw key's key name {'n' * 80!r} contains control characters")


def test_raw_material_in_the_wrong_format_is_refused_saying_which_format(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    with KeyStack.local(tmp_path / "ks") as stack:
        with pytest.raises(ConfigError) as caught:
            stack.import_key("k", "aes-128", pem=public_pem(rsa_key), namespace="n", key_name="k")
        assert str(caught.value) == (
            "aes-128 keys are imported as raw bytes (raw=..., --raw-key-file), not 'pem'"
        )
        with pytest.raises(ConfigError) as caught:
            stack.import_key(
                "k", "rsa-2048", raw=os.urandom(256), namespace="n", key_name="k", padding="pkcs1"
            )
        assert str(caught.value) == (
            "rsa-2048 keys are imported as a PEM private or public key (pem=..., --pem-file), "
            "not 'raw'"
        )
        assert stack.list_keys() == []


def test_rsa_public_keys_in_either_pem_form_import_as_wrap_only(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    """SubjectPublicKeyInfo and PKCS#1 ('RSA PUBLIC KEY') PEMs, also after leading blank
    lines, make a wrap-only key."""
    pkcs1 = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    assert pkcs1.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    with KeyStack.local(tmp_path / "ks") as stack:
        for name, pem in (("spki", b"\n \n" + public_pem(rsa_key)), ("pkcs1", pkcs1)):
            stack.import_key(
                name, "rsa-2048", pem=pem, namespace="n", key_name=name, padding="pkcs1"
            )
            described = stack.describe_key(f"local://{name}")
            assert dict(described.extra)["private_key"] == "no (wrap only)"
            assert stack.public_key(f"local://{name}") == public_pem(rsa_key)


def test_error_messages_never_show_the_material(tmp_path: Path) -> None:
    secret = b"S3CRET-" + os.urandom(9).hex().encode()
    with KeyStack.local(tmp_path / "ks") as stack:
        for call in (
            lambda: stack.import_key("k", "aes-128", raw=secret, namespace="n", key_name="k"),
            lambda: stack.import_key(
                "k", "rsa-2048", pem=secret, namespace="n", key_name="k", padding="pkcs1"
            ),
        ):
            with pytest.raises(ConfigError) as caught:
                call()
            assert secret.decode() not in str(caught.value)


def test_namespace_and_name_are_unique_in_the_keystore(
    stack: KeyStack, rsa_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(KeyExists) as caught:
        stack.import_key(
            "again",
            "rsa-2048",
            pem=public_pem(rsa_key),
            namespace=NAMESPACE,
            key_name="orders",
            padding="pkcs1",
        )
    assert str(caught.value) == (
        f"key local://orders already has key namespace {NAMESPACE!r} and key name 'orders': "
        "a message names its wrapping key by these two alone, so they must be unique in the "
        "keystore"
    )
    assert caught.value.provider == "local"
    assert "local://again" not in [m.uri for m in stack.list_keys()]
    # The same name under another namespace is another key; so is a key of no keyring.
    stack.import_key("other", "aes-128", raw=os.urandom(16), namespace="other", key_name="orders")
    stack.create_key("plain-2", "aes-256")


def test_raw_keys_have_one_version_and_only_wrap(stack: KeyStack) -> None:
    with pytest.raises(ConfigError) as caught:
        stack.rotate_key("local://orders")
    assert str(caught.value) == (
        "local://orders is a raw keyring key and cannot be rotated: messages name it by key "
        "namespace and key name alone, so it has one version; import a new key under a new key "
        "name (and add it to the wrapping keys) instead"
    )
    with pytest.raises(ConfigError, match="cannot be given new versions"):
        stack.import_key("orders", "aes-256", raw=os.urandom(32), new_version=True)
    with pytest.raises(ConfigError) as caught:
        stack.import_key(
            "orders", "aes-256", raw=os.urandom(32), namespace="x", key_name="y", new_version=True
        )
    assert str(caught.value) == (
        "local://orders: a raw keyring key has a single version (messages name it by key "
        "namespace and key name only); import the new key under a new key name instead"
    )
    with pytest.raises(ConfigError) as caught:
        stack.sign(b"m", key="local://partner")
    assert str(caught.value) == (
        "key local://partner is a raw keyring key; it cannot sign: it only wraps data keys; "
        "use an ed25519 or ecdsa-p256 key"
    )
    with pytest.raises(ConfigError) as caught:
        stack.provider("local").verify(KeyRef.parse("local://partner"), b"m", bytes(256))
    assert str(caught.value) == (
        "key local://partner is a raw keyring key; it cannot verify signatures: it only wraps "
        "data keys; use an ed25519 or ecdsa-p256 key"
    )
    with pytest.raises(ConfigError) as caught:
        stack.provider("local").mac(stack.describe_key("local://orders").ref, b"m")
    assert str(caught.value) == (
        "key local://orders is a raw keyring key; it only wraps data keys (in the raw keyring "
        "layout): compute MACs with an aes-256 key created here"
    )


def test_describe_shows_namespace_name_and_padding(
    stack: KeyStack, rsa_key: rsa.RSAPrivateKey
) -> None:
    metadata = stack.describe_key("local://partner")
    assert metadata.purpose is KeyPurpose.WRAP
    assert dict(metadata.extra) == {
        "origin": "imported",
        "key_namespace": NAMESPACE,
        "key_name": "partner",
        "padding": "oaep-sha256",
        "private_key": "yes",
    }
    assert stack.public_key("local://partner") == public_pem(rsa_key)
    assert metadata.to_dict()["purpose"] == "wrap"


# -- storage -------------------------------------------------------------------------


def test_material_is_sealed_and_the_format_version_says_raw_keys(
    stack: KeyStack, aes_key: bytes, rsa_key: rsa.RSAPrivateKey
) -> None:
    content = keystore_file(stack).read_bytes()
    der = rsa_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for secret in (aes_key, der[-64:]):
        assert base64.b64encode(secret) not in content
        assert secret.hex().encode() not in content
    document = json.loads(content)
    assert document["format_version"] == 3
    assert document["keys"]["partner"]["keyring"] == {
        "namespace": NAMESPACE,
        "key_name": "partner",
        "padding": "oaep-sha256",
        "public_only": False,
    }
    assert "keyring" not in document["keys"]["plain"]


def test_changing_the_pinned_padding_on_disk_is_detected(stack: KeyStack) -> None:
    """Someone with write access but no master key tries to re-pin the key to PKCS#1 v1.5."""
    path = keystore_file(stack)
    document = json.loads(path.read_text())
    document["keys"]["partner"]["keyring"]["padding"] = "pkcs1"
    path.write_text(json.dumps(document, indent=1))
    with pytest.raises(KeystoreCorrupted, match="integrity check"):
        stack.describe_key("local://partner")


def test_a_validly_signed_raw_key_with_two_versions_is_refused(stack: KeyStack) -> None:
    path = keystore_file(stack)
    document = json.loads(path.read_text())
    key = document["keys"]["orders"]
    key["versions"].append({**key["versions"][0], "version": 2})
    document.pop("mac")
    sealer = Sealer((path.parent / "master.key").read_bytes())
    document["mac"] = base64.b64encode(sealer.mac(document)).decode()
    path.write_text(json.dumps(document))
    with pytest.raises(KeystoreCorrupted, match="more than one version"):
        stack.list_keys()


def resign(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit the keystore document and sign it again with its master key (a key holder's edit)."""
    document = json.loads(path.read_text())
    edit(document)
    document.pop("mac")
    sealer = Sealer((path.parent / "master.key").read_bytes())
    document["mac"] = base64.b64encode(sealer.mac(document)).decode()
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    ("name", "size", "accepted"),
    [
        # aes-256: the 32 key bytes and the 16-byte tag, nothing else
        ("orders", 47, False),
        ("orders", 48, True),
        ("orders", 49, False),
        # rsa: from 64 bytes up to a 4096-bit key's DER with margin (4096 + 16 exclusive)
        ("partner", 63, False),
        ("partner", 64, True),
        ("partner", 4111, True),
        ("partner", 4112, False),
    ],
)
def test_stored_raw_key_material_must_have_a_size_its_type_can_have(
    stack: KeyStack, name: str, size: int, accepted: bool
) -> None:
    """The sealed material of a raw key is checked against its type's sizes when read, even in
    a validly signed document (a sealed aes-256 key is 48 bytes; an RSA key 64 to 4111)."""
    path = keystore_file(stack)

    def set_size(document: dict[str, Any]) -> None:
        version = document["keys"][name]["versions"][0]
        version["ciphertext"] = base64.b64encode(os.urandom(size)).decode()

    resign(path, set_size)
    if accepted:
        assert [m.ref.uri for m in stack.list_keys()] == [
            "local://orders",
            "local://partner",
            "local://plain",
        ]
    else:
        with pytest.raises(KeystoreCorrupted, match=f"key '{name}' version 1 ciphertext has the"):
            stack.list_keys()


def test_stored_rsa_material_that_is_not_rsa_is_refused_when_used(
    stack: KeyStack, rsa_key: rsa.RSAPrivateKey
) -> None:
    """A master-key holder who seals an EC key as a raw RSA key's material (a validly signed
    document) gets an error naming the problem when the key is used, not an EC operation."""
    stack.import_key(
        "inbox",
        "rsa-2048",
        pem=public_pem(rsa_key),
        namespace=NAMESPACE,
        key_name="inbox",
        padding="pkcs1",
    )
    path = keystore_file(stack)
    sealer = Sealer((path.parent / "master.key").read_bytes())
    ec_key = ec.generate_private_key(ec.SECP256R1())
    replacements = {
        "partner": ec_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "inbox": ec_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }

    def reseal(document: dict[str, Any]) -> None:
        for name, der in replacements.items():
            nonce, sealed = sealer.seal(
                der,
                keystore_id=document["keystore_id"],
                name=name,
                version=1,
                key_type="rsa-2048",
            )
            version = document["keys"][name]["versions"][0]
            version["nonce"] = base64.b64encode(nonce).decode()
            version["ciphertext"] = base64.b64encode(sealed).decode()

    resign(path, reseal)
    with pytest.raises(ConfigError, match=r"^the stored raw RSA key is not an RSA private key$"):
        stack.public_key("local://partner")
    with pytest.raises(ConfigError, match=r"^the stored raw RSA key is not an RSA key$"):
        stack.public_key("local://inbox")


def test_raw_unwrap_refuses_a_data_key_that_names_another_key_or_a_public_only_key(
    aes_key: bytes, rsa_key: rsa.RSAPrivateKey
) -> None:
    """rawkeys.unwrap checks the namespace and key name itself: a data key wrapped under the
    right AES key but naming another key (or namespace) is refused, not opened; and a
    public-only RSA key never unwraps, even a data key in its exact layout."""
    keyring = RawKeyring(namespace=NAMESPACE, key_name="orders")
    data_key = os.urandom(32)
    aad = CONTEXT.serialize()
    own = raw_aes_edk(aes_key, NAMESPACE, b"orders", data_key, aad)
    assert bytes(rawkeys.unwrap(KeyType.AES_256, keyring, aes_key, own, CONTEXT)) == data_key
    for hostile in (
        raw_aes_edk(aes_key, NAMESPACE, b"other", data_key, aad),
        raw_aes_edk(aes_key, "other-ns", b"orders", data_key, aad),
    ):
        with pytest.raises(DecryptionError):
            rawkeys.unwrap(KeyType.AES_256, keyring, aes_key, hostile, CONTEXT)
    public_only = RawKeyring(
        namespace=NAMESPACE, key_name="inbox", padding=Padding.PKCS1, public_only=True
    )
    der = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    exact = EncryptedDataKey(
        provider_id=NAMESPACE,
        provider_info=b"inbox",
        ciphertext=rsa_key.public_key().encrypt(data_key, rsa_padding.PKCS1v15()),
    )
    with pytest.raises(DecryptionError):
        rawkeys.unwrap(KeyType.RSA_2048, public_only, der, exact, CONTEXT)


def test_a_raw_aes_key_has_no_public_key(stack: KeyStack) -> None:
    with pytest.raises(
        ConfigError, match=r"^a raw aes-256 key is symmetric: it has no public key$"
    ):
        stack.public_key("local://orders")


def test_a_public_key_import_that_is_not_an_rsa_public_key_is_refused(tmp_path: Path) -> None:
    ec_public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    damaged = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    with KeyStack.local(tmp_path / "ks") as stack:
        with pytest.raises(
            ConfigError, match=r"^the PEM holds a public key that is not an RSA key$"
        ):
            stack.import_key(
                "k", "rsa-2048", pem=ec_public, namespace="n", key_name="k", padding="pkcs1"
            )
        expected = (
            "the material is not a PEM RSA public key that can be read: expected "
            "'-----BEGIN PUBLIC KEY-----' or '-----BEGIN RSA PUBLIC KEY-----'"
        )
        with pytest.raises(ConfigError) as caught:
            stack.import_key(
                "k", "rsa-2048", pem=damaged, namespace="n", key_name="k", padding="pkcs1"
            )
        assert str(caught.value) == expected
        assert stack.list_keys() == []


# -- finding the key on decrypt, and pinning ------------------------------------------


def test_decrypt_finds_the_raw_key_and_keys_filters_by_uri(stack: KeyStack) -> None:
    message = stack.encrypt(b"order 42", keys=["local://orders"], context=dict(CONTEXT))
    assert stack.decrypt(message) == b"order 42"
    assert stack.decrypt(message, keys=["local://orders"]) == b"order 42"
    with pytest.raises(DecryptionError, match="could be unwrapped"):
        stack.decrypt(message, keys=["local://plain"])


def test_decrypt_allow_patterns_apply_to_raw_keys(tmp_path: Path, aes_key: bytes) -> None:
    config = {
        "stack": {"decrypt_allow": ["local://p*"]},
        "providers": {"local": {"keystore": str(tmp_path / "ks")}},
    }
    with KeyStack.from_dict(config) as stack:
        stack.import_key("orders", "aes-256", raw=aes_key, namespace=NAMESPACE, key_name="o")
        message = stack.encrypt(b"x", keys=["local://orders"])
        with pytest.raises(DecryptionError, match="could be unwrapped"):
            stack.decrypt(message)


def test_the_provider_id_does_not_pick_a_provider(stack: KeyStack, aes_key: bytes) -> None:
    """A namespace the stack holds no key for is not turned into a provider scheme."""
    provider = stack.provider("local")
    edk = raw_aes_edk(aes_key, "gcp-kms", b"orders", os.urandom(32), CONTEXT.serialize())
    assert provider.owner_of(edk) is None
    edk = raw_aes_edk(aes_key, NAMESPACE, b"orders", os.urandom(32), CONTEXT.serialize())
    owner = provider.owner_of(edk)
    assert owner is not None
    assert owner.uri == "local://orders?version=1"


def test_layouts_are_not_confused(stack: KeyStack, aes_key: bytes) -> None:
    """An RSA-layout EDK naming the AES key, an AES-layout EDK naming the RSA key,
    and an aureus-local EDK naming a raw key by its local name are all disowned."""
    provider = stack.provider("local")
    data_key = os.urandom(32)
    rsa_layout = EncryptedDataKey(
        provider_id=NAMESPACE, provider_info=b"orders", ciphertext=os.urandom(256)
    )
    assert provider.owner_of(rsa_layout) is None
    aes_layout = raw_aes_edk(aes_key, NAMESPACE, b"partner", data_key, CONTEXT.serialize())
    assert provider.owner_of(aes_layout) is None
    local_layout = raw_aes_edk(aes_key, "aureus-local", b"orders:1", data_key, CONTEXT.serialize())
    assert provider.owner_of(local_layout) is None
    ref = stack.describe_key("local://orders").ref.with_version("1")
    with pytest.raises(DecryptionError):
        provider.unwrap(ref, local_layout, CONTEXT)
    with pytest.raises(DecryptionError):
        provider.unwrap(ref, rsa_layout, CONTEXT)


def test_an_rsa_key_is_pinned_to_its_padding(stack: KeyStack, rsa_key: rsa.RSAPrivateKey) -> None:
    """A data key wrapped with PKCS#1 v1.5 (or another OAEP hash) under the name of an
    OAEP-SHA256 key is refused: Aureus never tries another padding."""
    provider = stack.provider("local")
    ref = stack.describe_key("local://partner").ref.with_version("1")
    data_key = os.urandom(32)
    public = rsa_key.public_key()
    oaep_sha256 = rsa_padding.OAEP(
        mgf=rsa_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
    )
    good = EncryptedDataKey(
        provider_id=NAMESPACE,
        provider_info=b"partner",
        ciphertext=public.encrypt(data_key, oaep_sha256),
    )
    assert provider.owner_of(good) == ref
    assert bytes(provider.unwrap(ref, good, CONTEXT)) == data_key
    for other in (
        rsa_padding.PKCS1v15(),
        rsa_padding.OAEP(
            mgf=rsa_padding.MGF1(hashes.SHA1()),  # noqa: S303 (the SDK's OAEP-SHA1 padding)
            algorithm=hashes.SHA1(),  # noqa: S303
            label=None,
        ),
        rsa_padding.OAEP(
            mgf=rsa_padding.MGF1(hashes.SHA512()), algorithm=hashes.SHA512(), label=None
        ),
    ):
        hostile = EncryptedDataKey(
            provider_id=NAMESPACE,
            provider_info=b"partner",
            ciphertext=public.encrypt(data_key, other),
        )
        with pytest.raises(DecryptionError):
            provider.unwrap(ref, hostile, CONTEXT)


def test_a_raw_key_named_at_a_version_it_does_not_have_unwraps_nothing(
    stack: KeyStack, aes_key: bytes
) -> None:
    """A raw key has version 1 only: asked for under ``?version=2`` it unwraps nothing, though
    the data key is in its layout and under its key."""
    provider = stack.provider("local")
    data_key = os.urandom(32)
    edk = raw_aes_edk(aes_key, NAMESPACE, b"orders", data_key, CONTEXT.serialize())
    assert bytes(provider.unwrap(KeyRef.parse("local://orders?version=1"), edk, CONTEXT)) == (
        data_key
    )
    with pytest.raises(DecryptionError):
        provider.unwrap(KeyRef.parse("local://orders?version=2"), edk, CONTEXT)


def test_a_raw_rsa_key_wraps_only_data_keys_of_an_aes_size(stack: KeyStack) -> None:
    provider = stack.provider("local")
    partner = KeyRef.parse("local://partner")
    for size in (16, 24, 32):
        wrapped = provider.wrap(partner, bytes(size), CONTEXT)
        assert bytes(provider.unwrap(wrapped.key, wrapped.encrypted, CONTEXT)) == bytes(size)
    for size in (0, 20, 33):
        with pytest.raises(ConfigError) as caught:
            provider.wrap(partner, bytes(size), CONTEXT)
        assert str(caught.value) == (
            f"a data key to wrap must be 16, 24 or 32 bytes long, not {size}"
        )


def test_a_raw_layout_data_key_offered_to_an_ordinary_local_key_is_an_opaque_failure(
    stack: KeyStack, aes_key: bytes
) -> None:
    """The raw key that claims a data key must be the key asked for: offered to another key
    (here an ordinary aes-256 key) it fails like any data key that is not that key's."""
    provider = stack.provider("local")
    edk = raw_aes_edk(aes_key, NAMESPACE, b"orders", os.urandom(32), CONTEXT.serialize())
    assert provider.owner_of(edk) == KeyRef.parse("local://orders?version=1")
    for other in ("local://plain", "local://partner", "local://plain?version=1"):
        with pytest.raises(DecryptionError):
            provider.unwrap(KeyRef.parse(other), edk, CONTEXT)


def test_an_rsa_wrapped_secret_that_is_not_a_data_key_size_is_refused(
    stack: KeyStack, rsa_key: rsa.RSAPrivateKey
) -> None:
    """RSA decryption succeeds, but 20 or 48 bytes are no AES data key: an opaque failure."""
    provider = stack.provider("local")
    oaep = rsa_padding.OAEP(
        mgf=rsa_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
    )
    ref = KeyRef.parse("local://partner?version=1")
    for size, opens in ((16, True), (20, False), (32, True), (48, False)):
        edk = EncryptedDataKey(
            provider_id=NAMESPACE,
            provider_info=b"partner",
            ciphertext=rsa_key.public_key().encrypt(bytes(size), oaep),
        )
        if opens:
            assert bytes(provider.unwrap(ref, edk, CONTEXT)) == bytes(size)
        else:
            with pytest.raises(DecryptionError):
                provider.unwrap(ref, edk, CONTEXT)


def test_raw_key_wraps_name_version_1_and_are_counted_against_it(stack: KeyStack) -> None:
    provider = stack.provider("local")
    for uri, times in (("local://orders", 3), ("local://partner", 2)):
        for _ in range(times):
            wrapped = provider.wrap(KeyRef.parse(uri), os.urandom(32), CONTEXT)
            assert wrapped.key.uri == f"{uri}?version=1"
        provider.flush_usage()  # type: ignore[attr-defined]
        assert provider.describe_key(KeyRef.parse(uri)).version_info("1").messages == times


def test_raw_aes_binds_the_context(stack: KeyStack, aes_key: bytes) -> None:
    provider = stack.provider("local")
    ref = stack.describe_key("local://orders").ref.with_version("1")
    data_key = os.urandom(32)
    edk = raw_aes_edk(aes_key, NAMESPACE, b"orders", data_key, CONTEXT.serialize())
    assert bytes(provider.unwrap(ref, edk, CONTEXT)) == data_key
    with pytest.raises(DecryptionError):
        provider.unwrap(ref, edk, EncryptionContext({"tenant": "evil"}))


def test_a_public_only_key_never_claims_or_unwraps(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    with KeyStack.local(tmp_path / "ks") as stack:
        stack.import_key(
            "inbox",
            "rsa-2048",
            pem=public_pem(rsa_key),
            namespace="p",
            key_name="inbox",
            padding="pkcs1",
        )
        provider = stack.provider("local")
        wrapped = provider.wrap(stack.describe_key("local://inbox").ref, os.urandom(32), CONTEXT)
        assert provider.owner_of(wrapped.encrypted) is None
        with pytest.raises(DecryptionError):
            provider.unwrap(wrapped.key, wrapped.encrypted, CONTEXT)
        material = Secret(public_pem(rsa_key))
        assert b"PRIVATE" not in material.reveal()


def test_only_unowned_unreserved_provider_ids_are_offered_to_the_stack(
    stack: KeyStack, aes_key: bytes
) -> None:
    """The keyring asks the stack's providers only for a provider ID no convention owns."""
    local = stack.provider("local")
    asked: list[str] = []

    def claimants() -> list[Any]:
        asked.append("asked")
        return [local]

    def lookup(scheme: str) -> Any:
        if scheme == "local":
            return local
        raise PluginError(f"no provider {scheme}")  # what a stack raises: no plugin serves it

    allowed = KeyFilter()
    own = stack.encrypt(b"x", keys=["local://plain"])
    header = stack.inspect(own)
    assert header.recipients[0].provider_id == "aureus-local"
    data_key = os.urandom(32)
    raw = raw_aes_edk(aes_key, NAMESPACE, b"orders", data_key, CONTEXT.serialize())
    key, ref = unwrap_data_key(lookup, [raw], CONTEXT, allowed, claimants)
    assert (bytes(key), ref.uri) == (data_key, "local://orders?version=1")
    assert asked == ["asked"]
    for reserved in ("aureus-gcp-kms", "aws-kms", "aws-kms-mrk"):
        hostile = raw_aes_edk(aes_key, reserved, b"orders", data_key, CONTEXT.serialize())
        with pytest.raises(DecryptionError):
            unwrap_data_key(lookup, [hostile], CONTEXT, allowed, claimants)
    assert asked == ["asked"]
    wrapped = local.wrap(stack.describe_key("local://plain").ref, data_key, CONTEXT)
    key, _ = unwrap_data_key(lookup, [wrapped.encrypted], CONTEXT, allowed, claimants)
    assert bytes(key) == data_key
    assert asked == ["asked"]  # the conventional owner took it: nobody else was asked


def test_raw_aes_wraps_are_bounded_like_local_ones(
    make_provider: Callable[..., LocalKeyProvider], rsa_key: rsa.RSAPrivateKey
) -> None:
    """Random 96-bit IVs under one AES key: the same NIST bound; RSA has none."""
    provider = make_provider(max_wraps_per_version=3)
    provider.import_key(
        "orders",
        KeySpec(key_type="aes-128", options={"namespace": NAMESPACE, "key_name": "o"}),
        KeyMaterial(format="raw", data=Secret(os.urandom(16))),
    )
    provider.import_key(
        "partner",
        KeySpec(
            key_type="rsa-2048",
            options={"namespace": NAMESPACE, "key_name": "p", "padding": "pkcs1"},
        ),
        KeyMaterial(format="pem", data=Secret(public_pem(rsa_key))),
    )
    orders, partner = KeyRef.parse("local://orders"), KeyRef.parse("local://partner")
    made = [provider.wrap(orders, os.urandom(32), CONTEXT) for _ in range(3)]
    with pytest.raises(KeyDisabled) as refused:
        provider.wrap(orders, os.urandom(32), CONTEXT)
    assert str(refused.value) == (
        "local://orders has made the most wraps one AES-GCM key may make with random 96-bit IVs "
        "(NIST SP 800-38D); a raw keyring key cannot be rotated: import a new key under a new "
        "key name and wrap with it"
    )
    assert (refused.value.code, refused.value.provider) == ("wrap-limit", "local")
    assert bytes(provider.unwrap(made[0].key, made[0].encrypted, CONTEXT))
    for _ in range(5):
        provider.wrap(partner, os.urandom(32), CONTEXT)


def test_a_new_passphrase_reseals_raw_keys_too(
    make_provider: Callable[..., LocalKeyProvider], keystore_dir: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    provider = make_provider(passphrase=Secret("old passphrase"), scrypt_log_n=10)
    provider.import_key(
        "partner",
        KeySpec(
            key_type="rsa-2048",
            options={"namespace": NAMESPACE, "key_name": "p", "padding": "oaep-sha1"},
        ),
        KeyMaterial(format="pem", data=Secret(private_pem(rsa_key))),
    )
    wrapped = provider.wrap(KeyRef.parse("local://partner"), bytes(range(32)), CONTEXT)
    before = json.loads((keystore_dir / "keystore.json").read_text())
    provider.change_passphrase(Secret("new passphrase"))
    after = json.loads((keystore_dir / "keystore.json").read_text())
    old_sealed = before["keys"]["partner"]["versions"][0]["ciphertext"]
    assert after["keys"]["partner"]["versions"][0]["ciphertext"] != old_sealed
    assert after["keys"]["partner"]["keyring"] == before["keys"]["partner"]["keyring"]
    reopened = make_provider(passphrase=Secret("new passphrase"), scrypt_log_n=10)
    owner = reopened.owner_of(wrapped.encrypted)
    assert owner is not None
    assert bytes(reopened.unwrap(owner, wrapped.encrypted, CONTEXT)) == bytes(range(32))


# -- the command line ------------------------------------------------------------------


def test_cli_import_describe_and_inspect(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, aes_key: bytes
) -> None:
    aureus = str(Path(sys.executable).with_name("aureus"))
    env = {**os.environ, "AUREUS_KEYSTORE": str(tmp_path / "ks")}
    env.pop("AUREUS_CONFIG", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [aureus, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        return done

    (tmp_path / "aes.key").write_bytes(aes_key)
    (tmp_path / "rsa.pem").write_bytes(public_pem(rsa_key))
    run(
        "keys", "import", "orders", "--type", "aes-256", "--raw-key-file", "aes.key",
        "--namespace", NAMESPACE, "--key-name", "orders-2023",
    )  # fmt: skip
    run(
        "keys", "import", "partner", "--type", "rsa-2048", "--pem-file", "rsa.pem",
        "--namespace", "partner-ns", "--key-name", "inbox", "--padding", "oaep-sha1",
    )  # fmt: skip
    described = run("keys", "describe", "local://partner").stdout
    assert "rsa-2048 (wrap)" in described
    assert "key_namespace:   partner-ns" in described
    assert "padding:         oaep-sha1" in described
    (tmp_path / "plain.txt").write_bytes(b"hello")
    run(
        "encrypt", "--key", "local://orders", "--key", "local://partner",
        "-o", "msg.bin", "plain.txt",
    )  # fmt: skip
    text = run("inspect", "msg.bin").stdout
    assert "raw AES keyring: key namespace 'acme-raw', key name 'orders-2023'" in text
    assert "raw RSA keyring: key namespace 'partner-ns', key name 'inbox'" in text
    info = json.loads(run("inspect", "--json", "msg.bin").stdout)
    assert info["encrypted_data_keys"][0] == {
        "provider_id": NAMESPACE,
        "key": "orders-2023",
        "keyring": "raw-aes",
        "key_namespace": NAMESPACE,
        "key_name": "orders-2023",
    }
    assert run("decrypt", "msg.bin").stdout == "hello"


@pytest.mark.parametrize("namespace", ["aaa", "aureus", "aureusz", "zulu"])
def test_a_raw_key_round_trips_under_namespaces_sorting_either_side_of_aureus_local(
    tmp_path: Path, namespace: str
) -> None:
    """The raw keyring path is chosen by the namespace being another, not by its order."""
    with KeyStack.local(tmp_path / "ks") as stack:
        stack.import_key("k", "aes-256", raw=os.urandom(32), namespace=namespace, key_name="k")
        message = stack.encrypt(b"order 42", keys=["local://k"])
        assert stack.decrypt(message) == b"order 42"
