"""Key management: create, describe, list, rotate, import; naming and the plugin factory."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aureus_core.context import EncryptionContext
from aureus_core.errors import (
    ConfigError,
    CredentialError,
    KeyExists,
    KeyNotFound,
    UnsupportedOperation,
)
from aureus_core.interfaces import Capability, Credentials, KeyMaterial, ProviderSettings
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeyPurpose, KeySpec, KeyState, KeyType
from aureus_core.registry import KeyProviderRegistry
from aureus_core.sensitive import Secret
from aureus_local import LocalKeyProvider, create_provider, material
from aureus_local.plugin import aureus_register_key_providers

AdvanceClock = Callable[[timedelta], datetime]
MakeProvider = Callable[..., LocalKeyProvider]


def ref(uri: str) -> KeyRef:
    return KeyRef.parse(uri)


def pem(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_material(data: bytes) -> KeyMaterial:
    return KeyMaterial(format="pem", data=Secret(data))


# -- create / describe / list / rotate ---------------------------------------


def test_create_returns_full_metadata(
    local_provider: LocalKeyProvider, advance_clock: AdvanceClock
) -> None:
    start = advance_clock(timedelta(0))
    spec = KeySpec(key_type="aes-256", description="payments", labels={"team": "billing"})

    meta = local_provider.create_key("payments", spec)

    assert meta.ref == KeyRef(scheme="local", key_id="payments")
    assert meta.uri == "local://payments"
    assert meta.key_type is KeyType.AES_256
    assert meta.purpose is KeyPurpose.WRAP
    assert meta.state is KeyState.ENABLED
    assert meta.created_at == start
    assert meta.current_version == "1"
    assert [(v.version, v.created_at, v.state) for v in meta.versions] == [
        ("1", start, KeyState.ENABLED)
    ]
    assert meta.description == "payments"
    assert meta.labels == (("team", "billing"),)
    assert dict(meta.extra) == {"origin": "generated"}
    assert local_provider.describe_key(ref("local://payments")) == meta


@pytest.mark.parametrize(
    ("key_type", "purpose"),
    [("aes-256", KeyPurpose.WRAP), ("ed25519", KeyPurpose.SIGN), ("ecdsa-p256", KeyPurpose.SIGN)],
)
def test_each_supported_type_creates(
    local_provider: LocalKeyProvider, key_type: str, purpose: KeyPurpose
) -> None:
    meta = local_provider.create_key("k", KeySpec(key_type=key_type))
    assert meta.key_type.value == key_type
    assert meta.purpose is purpose


def test_provider_declares_capabilities_and_types(local_provider: LocalKeyProvider) -> None:
    assert local_provider.scheme == "local"
    assert local_provider.capabilities == {
        Capability.WRAP,
        Capability.SIGN,
        Capability.PUBLIC_KEY,
        Capability.CREATE,
        Capability.DESCRIBE,
        Capability.LIST,
        Capability.ROTATE,
        Capability.VERSIONS,
        Capability.IMPORT,
        Capability.MAC,
        Capability.LIFECYCLE,
        Capability.MIN_DECRYPTION_VERSION,
        Capability.DESTROY_VERSION,
        Capability.WRAPPED_IMPORT,
    }
    assert local_provider.key_types == {KeyType.AES_256, KeyType.ED25519, KeyType.ECDSA_P256}


def test_list_keys_sorted_by_name(local_provider: LocalKeyProvider) -> None:
    for name, key_type in [("zeta", "ed25519"), ("alpha", "aes-256"), ("Mid", "ecdsa-p256")]:
        local_provider.create_key(name, KeySpec(key_type=key_type))

    listed = local_provider.list_keys()

    assert [m.uri for m in listed] == ["local://Mid", "local://alpha", "local://zeta"]
    assert [m.key_type.value for m in listed] == ["ecdsa-p256", "aes-256", "ed25519"]


def test_reads_on_a_missing_keystore_create_nothing(
    local_provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    assert local_provider.list_keys() == []
    with pytest.raises(KeyNotFound):
        local_provider.describe_key(ref("local://nothing"))
    assert not keystore_dir.exists()


def test_rotate_adds_versions_with_their_own_times(
    local_provider: LocalKeyProvider, advance_clock: AdvanceClock
) -> None:
    created = advance_clock(timedelta(0))
    local_provider.create_key("k", KeySpec(key_type="ed25519", description="d"))
    second = advance_clock(timedelta(days=90))
    local_provider.rotate_key(ref("local://k"))
    third = advance_clock(timedelta(days=30))

    meta = local_provider.rotate_key(ref("local://k"))

    assert meta.current_version == "3"
    assert meta.created_at == created
    assert [(v.version, v.created_at) for v in meta.versions] == [
        ("1", created),
        ("2", second),
        ("3", third),
    ]
    assert meta.current.created_at == third
    assert meta.description == "d"
    assert local_provider.describe_key(ref("local://k?version=1")) == meta


def test_rotation_makes_new_material(local_provider: LocalKeyProvider) -> None:
    local_provider.create_key("s", KeySpec(key_type="ed25519"))
    first = local_provider.public_key(ref("local://s"))
    local_provider.rotate_key(ref("local://s"))

    assert local_provider.public_key(ref("local://s")) != first
    assert local_provider.public_key(ref("local://s?version=1")) == first
    assert local_provider.public_key(ref("local://s?version=2")) == local_provider.public_key(
        ref("local://s")
    )


def test_create_existing_name_raises_key_exists(local_provider: LocalKeyProvider) -> None:
    local_provider.create_key("k", KeySpec(key_type="aes-256"))

    with pytest.raises(KeyExists) as caught:
        local_provider.create_key("k", KeySpec(key_type="ed25519"))

    message = str(caught.value)
    assert "local://k" in message
    assert "another name" in message
    assert "rotate" in message
    assert local_provider.describe_key(ref("local://k")).key_type is KeyType.AES_256


@pytest.mark.parametrize("operation", ["describe", "rotate"])
def test_unknown_key_raises_key_not_found(local_provider: LocalKeyProvider, operation: str) -> None:
    local_provider.create_key("present", KeySpec(key_type="aes-256"))
    call = local_provider.describe_key if operation == "describe" else local_provider.rotate_key

    with pytest.raises(KeyNotFound) as caught:
        call(ref("local://absent"))

    assert str(caught.value) == (
        f"no key local://absent in keystore {local_provider.keystore_dir}: "
        "`aureus keys list` shows the keys"
    )
    assert caught.value.provider == "local"


def test_unknown_version_raises_key_not_found(local_provider: LocalKeyProvider) -> None:
    local_provider.create_key("k", KeySpec(key_type="aes-256"))

    with pytest.raises(KeyNotFound) as caught:
        local_provider.describe_key(ref("local://k?version=5"))

    assert str(caught.value) == (
        f"key local://k has no version 5 in keystore {local_provider.keystore_dir}: "
        "`aureus keys list` shows the keys"
    )
    assert caught.value.provider == "local"


@pytest.mark.parametrize(
    "name", ["-lead", ".hidden", "a/b", "a b", "a:b", "é", "x" * 129, "tab\tname"]
)
def test_invalid_names_are_config_errors(local_provider: LocalKeyProvider, name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        local_provider.create_key(name, KeySpec(key_type="aes-256"))
    assert "letters, digits" in str(caught.value)


def test_empty_name_is_a_config_error(local_provider: LocalKeyProvider) -> None:
    with pytest.raises(ConfigError, match="letters, digits"):
        local_provider.create_key("", KeySpec(key_type="aes-256"))


@pytest.mark.parametrize("name", ["a", "A.b_c-9", "0", "x" * 128])
def test_valid_name_edges(local_provider: LocalKeyProvider, name: str) -> None:
    assert local_provider.create_key(name, KeySpec(key_type="aes-256")).ref.key_id == name


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("aws-kms://alias/x", "not a local key"),
        ("local://k?version=abc", "whole numbers"),
        ("local://k?version=0", "whole numbers"),
        ("local://k?version=01", "whole numbers"),
        ("local://k?region=eu", "no parameters"),
        ("local://ks/k", "letters, digits"),
    ],
)
def test_bad_references_are_config_errors(
    local_provider: LocalKeyProvider, uri: str, fragment: str
) -> None:
    local_provider.create_key("k", KeySpec(key_type="aes-256"))
    with pytest.raises(ConfigError, match=fragment):
        local_provider.describe_key(ref(uri))


@pytest.mark.parametrize("key_type", ["rsa-2048", "ecdsa-p384"])
def test_unsupported_key_types(local_provider: LocalKeyProvider, key_type: str) -> None:
    with pytest.raises(UnsupportedOperation) as caught:
        local_provider.create_key("k", KeySpec(key_type=key_type))
    assert caught.value.provider == "local"
    assert caught.value.operation == f"key type {key_type}"
    assert str(caught.value) == (
        f"provider 'local' does not support key type {key_type}; "
        "choose one of: aes-256, ecdsa-p256, ed25519"
    )


@pytest.mark.parametrize(
    ("name", "shown"), [("bad name!", "'bad name!'"), (5, "int"), (None, "NoneType")]
)
def test_an_invalid_key_name_is_shown_if_it_is_text_and_typed_if_not(
    name: object, shown: str
) -> None:
    from aureus_local.naming import NAME_RULE, check_name

    with pytest.raises(ConfigError) as refused:
        check_name(name)
    assert str(refused.value) == f"invalid local key name {shown}: use {NAME_RULE}"


def test_key_options_are_rejected(local_provider: LocalKeyProvider, keystore_dir: Path) -> None:
    with pytest.raises(ConfigError, match="no key options"):
        local_provider.create_key("k", KeySpec(key_type="aes-256", options={"x": "1"}))
    assert not keystore_dir.exists()


def test_naive_clock_is_rejected(make_provider: MakeProvider) -> None:
    provider = make_provider(clock=lambda: datetime(2030, 1, 1))
    with pytest.raises(ConfigError, match="timezone-aware"):
        provider.create_key("k", KeySpec(key_type="aes-256"))


# -- import --------------------------------------------------------------------

RAW_KEY = bytes(range(100, 132))


def test_import_raw_aes_key_is_the_wrapping_key(local_provider: LocalKeyProvider) -> None:
    meta = local_provider.import_key(
        "w", KeySpec(key_type="aes-256"), KeyMaterial(format="raw", data=Secret(RAW_KEY))
    )
    assert dict(meta.extra) == {"origin": "imported"}
    context = EncryptionContext(purpose="test")

    wrapped = local_provider.wrap(ref("local://w"), b"d" * 32, context)

    iv = wrapped.encrypted.provider_info[-12:]
    assert AESGCM(RAW_KEY).decrypt(iv, wrapped.encrypted.ciphertext, context.serialize()) == (
        b"d" * 32
    )


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_import_raw_wrong_size_never_echoes_material(
    local_provider: LocalKeyProvider, size: int, keystore_dir: Path
) -> None:
    data = bytes((i * 37 + 11) % 256 for i in range(size))

    with pytest.raises(ConfigError) as caught:
        local_provider.import_key(
            "w", KeySpec(key_type="aes-256"), KeyMaterial(format="raw", data=Secret(data))
        )

    message = str(caught.value)
    assert message == f"an aes-256 key needs exactly 32 bytes of material; got {size} bytes"
    if data:
        for shown in (repr(data), data.hex(), base64.b64encode(data).decode()):
            assert shown not in message
    assert not keystore_dir.exists()


def test_import_ed25519_pem(local_provider: LocalKeyProvider) -> None:
    key = ed25519.Ed25519PrivateKey.generate()

    local_provider.import_key("s", KeySpec(key_type="ed25519"), pem_material(pem(key)))

    signature = local_provider.sign(ref("local://s"), b"message")
    key.public_key().verify(signature.value, b"message")
    assert local_provider.public_key(ref("local://s")) == key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_import_p256_traditional_pem(local_provider: LocalKeyProvider) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    traditional = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert traditional.startswith(b"-----BEGIN EC PRIVATE KEY-----")

    local_provider.import_key("e", KeySpec(key_type="ecdsa-p256"), pem_material(traditional))

    signature = local_provider.sign(ref("local://e"), b"message")
    key.public_key().verify(signature.value, b"message", ec.ECDSA(hashes.SHA256()))
    assert local_provider.public_key(ref("local://e")) == key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("key", "key_type", "held"),
    [
        (ed25519.Ed25519PrivateKey.generate(), "ecdsa-p256", "an ed25519 key"),
        (ec.generate_private_key(ec.SECP384R1()), "ecdsa-p256", "an EC key on curve secp384r1"),
        (ec.generate_private_key(ec.SECP256R1()), "ed25519", "an EC key on curve secp256r1"),
        (
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ed25519",
            "a key of type RSA",
        ),
        (ed448.Ed448PrivateKey.generate(), "ed25519", "a key of type Ed448"),
    ],
)
def test_import_pem_type_mismatch(
    local_provider: LocalKeyProvider,
    key: Any,
    key_type: str,
    held: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        local_provider.import_key("k", KeySpec(key_type=key_type), pem_material(pem(key)))
    assert str(caught.value) == (
        f"the PEM holds {held}, but the key type is {key_type}: import it with the matching "
        "key type"
    )
    assert local_provider.list_keys() == []


def test_import_encrypted_pem_says_to_decrypt(local_provider: LocalKeyProvider) -> None:
    encrypted = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"hunter2"),
    )
    with pytest.raises(ConfigError) as caught:
        local_provider.import_key("s", KeySpec(key_type="ed25519"), pem_material(encrypted))
    assert str(caught.value) == (
        "the PEM private key is encrypted: decrypt it first, e.g. "
        "`openssl pkey -in K -out K.plain`, and import K.plain"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"not a key at all",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        b"",
    ],
)
def test_import_garbage_pem(local_provider: LocalKeyProvider, data: bytes) -> None:
    """The refusal says which PEM forms are read."""
    with pytest.raises(ConfigError) as caught:
        local_provider.import_key("s", KeySpec(key_type="ed25519"), pem_material(data))
    assert str(caught.value) == (
        "the material is not a PEM private key that can be read: expected "
        "'-----BEGIN PRIVATE KEY-----' (PKCS#8) or a traditional PEM private key"
    )


def test_import_public_key_pem_is_refused(local_provider: LocalKeyProvider) -> None:
    public = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigError, match="not a PEM private key"):
        local_provider.import_key("s", KeySpec(key_type="ed25519"), pem_material(public))


def test_import_wrong_format_for_type(local_provider: LocalKeyProvider) -> None:
    with pytest.raises(ConfigError) as caught:
        local_provider.import_key(
            "s", KeySpec(key_type="ed25519"), KeyMaterial(format="raw", data=Secret(RAW_KEY))
        )
    assert str(caught.value) == (
        "ed25519 keys are imported as a PEM private key (format 'pem'), not 'raw'"
    )
    with pytest.raises(ConfigError) as caught:
        local_provider.import_key(
            "w",
            KeySpec(key_type="aes-256"),
            pem_material(pem(ed25519.Ed25519PrivateKey.generate())),
        )
    assert str(caught.value) == "aes-256 keys are imported as raw bytes (format 'raw'), not 'pem'"


def test_keys_made_here_take_no_key_options(local_provider: LocalKeyProvider) -> None:
    """Key options make a raw keyring key, which is imported; creating or asking for import
    parameters with them is refused, naming them."""
    spec = KeySpec(key_type="aes-256", options={"namespace": "n", "key_name": "k"})
    for call in (
        lambda: local_provider.create_key("w", spec),
        lambda: local_provider.import_parameters("w", spec),
    ):
        with pytest.raises(ConfigError) as caught:
            call()
        assert str(caught.value) == (
            "the local provider takes no key options (got: key_name, namespace)"
        )
    assert local_provider.list_keys() == []


def test_only_signing_key_types_load_as_private_keys() -> None:
    with pytest.raises(ValueError, match=r"^aes-256 is not a signing key type$"):
        material.private_key(KeyType.AES_256, bytes(32))


def test_import_new_version(local_provider: LocalKeyProvider, advance_clock: AdvanceClock) -> None:
    local_provider.create_key("s", KeySpec(key_type="ed25519"))
    old_public = local_provider.public_key(ref("local://s"))
    key = ed25519.Ed25519PrivateKey.generate()
    imported_at = advance_clock(timedelta(hours=1))

    meta = local_provider.import_key(
        "s", KeySpec(key_type="ed25519"), pem_material(pem(key)), new_version=True
    )

    assert meta.current_version == "2"
    assert meta.current.created_at == imported_at
    assert dict(meta.extra) == {"origin": "imported"}
    signature = local_provider.sign(ref("local://s"), b"m")
    assert signature.key_version == "2"
    key.public_key().verify(signature.value, b"m")
    assert local_provider.public_key(ref("local://s?version=1")) == old_public


def test_import_new_version_of_other_type_changes_nothing(
    local_provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    local_provider.create_key("s", KeySpec(key_type="ed25519"))
    before = (keystore_dir / "keystore.json").read_bytes()

    with pytest.raises(ConfigError, match="ed25519"):
        local_provider.import_key(
            "s",
            KeySpec(key_type="ecdsa-p256"),
            pem_material(pem(ec.generate_private_key(ec.SECP256R1()))),
            new_version=True,
        )

    assert (keystore_dir / "keystore.json").read_bytes() == before
    assert local_provider.describe_key(ref("local://s")).current_version == "1"


def test_import_new_version_of_absent_key(
    local_provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    material = KeyMaterial(format="raw", data=Secret(RAW_KEY))
    with pytest.raises(KeyNotFound, match="local://w"):
        local_provider.import_key("w", KeySpec(key_type="aes-256"), material, new_version=True)
    assert not keystore_dir.exists()

    local_provider.create_key("other", KeySpec(key_type="aes-256"))
    with pytest.raises(KeyNotFound, match="local://w"):
        local_provider.import_key("w", KeySpec(key_type="aes-256"), material, new_version=True)


def test_import_existing_name_without_new_version(local_provider: LocalKeyProvider) -> None:
    local_provider.create_key("w", KeySpec(key_type="aes-256"))
    with pytest.raises(KeyExists):
        local_provider.import_key(
            "w", KeySpec(key_type="aes-256"), KeyMaterial(format="raw", data=Secret(RAW_KEY))
        )


# -- the plugin and its factory ------------------------------------------------


class StaticPassphrase:
    name = "static-test"

    def __init__(self, values: dict[str, Secret[str]]) -> None:
        self.values = values

    def get_credentials(self) -> Credentials:
        return Credentials(kind="static", values=self.values)


def test_plugin_registers_the_local_scheme() -> None:
    registry = KeyProviderRegistry()
    aureus_register_key_providers(registry)
    registration = registry.get("local")
    assert registration.factory is create_provider
    assert "local keystore" in registration.description


def test_factory_reads_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUREUS_KEYSTORE_PASSPHRASE", raising=False)
    provider = create_provider(ProviderSettings(options={"keystore": str(tmp_path / "ks")}))
    assert provider.keystore_dir == tmp_path / "ks"
    provider.create_key("k", KeySpec(key_type="aes-256"))
    assert (tmp_path / "ks" / "master.key").exists()


def test_factory_environment_and_default_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUREUS_KEYSTORE", str(tmp_path / "from-env"))
    assert create_provider(ProviderSettings()).keystore_dir == tmp_path / "from-env"

    monkeypatch.delenv("AUREUS_KEYSTORE")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    default = create_provider(ProviderSettings()).keystore_dir
    assert default.name == "keystore"
    assert default.parent.name == "aureus"


def test_factory_passphrase_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUREUS_KEYSTORE_PASSPHRASE", "from the environment")
    options = {"keystore": str(tmp_path / "ks"), "scrypt_log_n": 10, "insecure_kdf_for_tests": True}
    create_provider(ProviderSettings(options=options)).create_key("k", KeySpec(key_type="aes-256"))
    assert not (tmp_path / "ks" / "master.key").exists()

    monkeypatch.setenv("AUREUS_KEYSTORE_PASSPHRASE", "")
    with pytest.raises(CredentialError, match="set AUREUS_KEYSTORE_PASSPHRASE"):
        create_provider(ProviderSettings(options=options)).list_keys()


def test_factory_passphrase_from_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUREUS_KEYSTORE_PASSPHRASE", raising=False)
    options = {
        "keystore": str(tmp_path / "ks"),
        "scrypt_log_n": "10",
        "insecure_kdf_for_tests": True,
    }
    good = StaticPassphrase({"passphrase": Secret("correct horse")})
    create_provider(ProviderSettings(options=options, credentials=good)).create_key(
        "k", KeySpec(key_type="ed25519")
    )

    bad = StaticPassphrase({"passphrase": Secret("wrong horse")})
    with pytest.raises(CredentialError, match="wrong passphrase"):
        create_provider(ProviderSettings(options=options, credentials=bad)).list_keys()

    with pytest.raises(CredentialError, match="no 'passphrase'"):
        create_provider(ProviderSettings(options=options, credentials=StaticPassphrase({})))


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"keystor": "/tmp/x"}, "unknown option"),
        ({"scrypt_log_n": 9}, "scrypt_log_n"),
        ({"scrypt_log_n": 21}, "scrypt_log_n"),
        ({"scrypt_log_n": "many"}, "scrypt_log_n"),
        ({"scrypt_log_n": True}, "scrypt_log_n"),
        ({"scrypt_log_n": 16}, "scrypt_log_n must be a whole number from 17 to 20"),
        ({"scrypt_log_n": 10}, "insecure_kdf_for_tests"),
        ({"scrypt_log_n": 10, "insecure_kdf_for_tests": "yes"}, "true or false"),
        ({"keystore_id": "ABC"}, "32 lowercase hex digits"),
        ({"keystore_fingerprint": 7}, "must be a string"),
        ({"min_generation": -1}, "whole number"),
        ({"state_file": ""}, "file path"),
        ({"accept_high_s": 1}, "true or false"),
        ({"keystore": ""}, "directory path"),
        ({"keystore": 42}, "directory path"),
    ],
)
def test_factory_rejects_bad_options(options: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        create_provider(ProviderSettings(options=options))


def test_key_metadata_times_are_utc(
    make_provider: MakeProvider, advance_clock: AdvanceClock
) -> None:
    plus_two = timezone(timedelta(hours=2))
    provider = make_provider(clock=lambda: datetime(2031, 5, 1, 14, 0, tzinfo=plus_two))
    meta = provider.create_key("k", KeySpec(key_type="aes-256"))
    assert meta.created_at == datetime(2031, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert meta.created_at.tzinfo == timezone.utc
