"""Wrapped import on a SoftHSM2 token: what the conformance kit cannot see.

The material is unwrapped on the token and stays there (CKA_VALUE is refused),
the import job's private key can only unwrap and is gone once used, and
material wrapped by openssl or by ``cryptography`` directly (not by Aureus's
helper) imports too.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pkcs11
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
from pkcs11 import Attribute, ObjectClass
from pkcs11 import exceptions as p11

from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey
from aureus_core.errors import ImportRefused, UnsupportedOperation
from aureus_core.interfaces import KeyMaterial
from aureus_core.keys import KeySpec, KeyType
from aureus_core.sensitive import Secret
from aureus_core.testing.key_material import fresh_material
from aureus_core.wrapped_import import wrap_for_import
from aureus_pkcs11 import Pkcs11KeyProvider
from aureus_pkcs11.imports import LABEL_PREFIX
from aureus_pkcs11.softhsm import SoftHsm

MakeProvider = Callable[..., Pkcs11KeyProvider]
TOKEN, PIN = "aureus-test", "4711-user"
CONTEXT = EncryptionContext({"tenant": "acme", "purpose": "wrapped-import"})


def _name() -> str:
    return f"w-{uuid.uuid4().hex[:10]}"


def _objects(provider: Pkcs11KeyProvider, template: dict[Attribute, object]) -> list[pkcs11.Object]:
    return provider._pool.run("test", lambda session: list(session.get_objects(template)))


def _import(provider: Pkcs11KeyProvider, name: str, key_type: KeyType) -> KeyMaterial:
    parameters = provider.import_parameters(name, KeySpec(key_type=key_type))
    material = fresh_material(key_type)
    blob = wrap_for_import(
        key_type,
        material,
        wrapping_public_key=parameters.wrapping_public_key,
        algorithm=parameters.wrapping_algorithm,
        expected_fingerprint=parameters.fingerprint,
    )
    provider.import_key(
        name,
        KeySpec(key_type=key_type),
        KeyMaterial(format="wrapped", data=Secret(blob), import_token=parameters.import_token),
    )
    assert _objects(provider, {Attribute.LABEL: LABEL_PREFIX + parameters.import_token}) == []
    return material


def _edk_from(material: bytes, uri: str, data_key: bytes) -> EncryptedDataKey:
    """A wrapped data key in the documented aureus-pkcs11 layout, made off the token."""
    info = uri.encode()
    aad = b"aureus-pkcs11\x00" + struct.pack(">H", len(info)) + info + CONTEXT.serialize()
    iv = os.urandom(12)
    sealed = AESGCM(material).encrypt(iv, data_key, aad)
    return EncryptedDataKey(
        provider_id="aureus-pkcs11", provider_info=info, ciphertext=b"\x01" + iv + sealed
    )


@pytest.mark.parametrize("key_type", [KeyType.AES_256, KeyType.RSA_2048])
def test_imported_key_never_reveals_its_value(
    make_provider: MakeProvider, key_type: KeyType
) -> None:
    """The token refuses CKA_VALUE (CKA_PRIVATE_EXPONENT) of an imported key; the job is gone."""
    provider = make_provider()
    name = _name()
    _import(provider, name, key_type)
    secret_class = (
        ObjectClass.SECRET_KEY if key_type is KeyType.AES_256 else ObjectClass.PRIVATE_KEY
    )
    secret = Attribute.VALUE if key_type is KeyType.AES_256 else Attribute.PRIVATE_EXPONENT

    def ask(session: pkcs11.Session) -> list[tuple[bool, bool, bool]]:
        answers = []
        for obj in session.get_objects({Attribute.LABEL: name, Attribute.CLASS: secret_class}):
            with pytest.raises(p11.AttributeSensitive):
                obj[secret]
            answers.append(
                (obj[Attribute.SENSITIVE], obj[Attribute.EXTRACTABLE], obj[Attribute.PRIVATE])
            )
        return answers

    assert provider._pool.run("test", ask) == [(True, False, True)]


def test_import_job_key_only_unwraps_and_never_leaves(make_provider: MakeProvider) -> None:
    """The job's private key: CKA_UNWRAP only, sensitive, non-extractable, private."""
    provider = make_provider()
    parameters = provider.import_parameters(_name(), KeySpec(key_type=KeyType.AES_256))
    [private] = _objects(
        provider,
        {
            Attribute.LABEL: LABEL_PREFIX + parameters.import_token,
            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
        },
    )

    def attributes(session: pkcs11.Session) -> dict[str, bool]:
        with pytest.raises(p11.AttributeSensitive):
            private[Attribute.PRIVATE_EXPONENT]
        return {
            attribute.name: bool(private[attribute])
            for attribute in (
                Attribute.UNWRAP,
                Attribute.DECRYPT,
                Attribute.SIGN,
                Attribute.SENSITIVE,
                Attribute.EXTRACTABLE,
                Attribute.PRIVATE,
                Attribute.TOKEN,
            )
        }

    assert provider._pool.run("test", attributes) == {
        "UNWRAP": True,
        "DECRYPT": False,
        "SIGN": False,
        "SENSITIVE": True,
        "EXTRACTABLE": False,
        "PRIVATE": True,
        "TOKEN": True,
    }
    # The exported PEM is the token's public half: its modulus matches the private key's.
    public = serialization.load_pem_public_key(parameters.wrapping_public_key)
    assert isinstance(public, rsa.RSAPublicKey)
    modulus = provider._pool.run("test", lambda session: bytes(private[Attribute.MODULUS]))
    assert public.public_numbers().n == int.from_bytes(modulus, "big")
    assert public.key_size == 3072


def test_aes_key_wrapped_by_openssl_imports(make_provider: MakeProvider, tmp_path: Path) -> None:
    """openssl pkeyutl (RSA-OAEP-SHA1) + openssl enc -id-aes256-wrap-pad; the key then
    unwraps a data key wrapped off the token with the original bytes."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    provider = make_provider()
    name = _name()
    parameters = provider.import_parameters(name, KeySpec(key_type=KeyType.AES_256))
    assert parameters.wrapping_algorithm == "rsa-oaep-sha1-aes-kwp"
    (tmp_path / "wrapping.pem").write_bytes(parameters.wrapping_public_key)
    target, ephemeral = os.urandom(32), os.urandom(32)
    (tmp_path / "target.bin").write_bytes(target)
    (tmp_path / "ephemeral.bin").write_bytes(ephemeral)

    def tool(*args: str) -> None:
        done = subprocess.run([openssl, *args], cwd=tmp_path, capture_output=True, check=False)
        assert done.returncode == 0, done.stderr

    tool("pkey", "-pubin", "-in", "wrapping.pem", "-outform", "DER", "-out", "wrapping.der")
    digest = subprocess.run(
        [openssl, "dgst", "-sha256", "-r", "wrapping.der"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    fingerprint = digest.stdout.split()[0]
    assert parameters.fingerprint == f"sha256:{fingerprint}"
    tool(
        "pkeyutl", "-encrypt", "-pubin", "-inkey", "wrapping.pem",
        "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1",
        "-pkeyopt", "rsa_mgf1_md:sha1", "-in", "ephemeral.bin", "-out", "head.bin",
    )  # fmt: skip
    tool(
        "enc", "-id-aes256-wrap-pad", "-K", ephemeral.hex(), "-iv", "A65959A6",
        "-in", "target.bin", "-out", "tail.bin",
    )  # fmt: skip
    blob = (tmp_path / "head.bin").read_bytes() + (tmp_path / "tail.bin").read_bytes()
    metadata = provider.import_key(
        name,
        KeySpec(key_type=KeyType.AES_256),
        KeyMaterial(format="wrapped", data=Secret(blob), import_token=parameters.import_token),
    )
    pinned = metadata.ref.with_version("1")
    data_key = os.urandom(32)
    made = _edk_from(target, pinned.uri, data_key)
    assert provider.owner_of(made) == pinned
    assert bytes(provider.unwrap(pinned, made, CONTEXT)) == data_key


def test_rsa_key_wrapped_with_cryptography_directly_imports(make_provider: MakeProvider) -> None:
    """RSA-OAEP + RFC 5649 done with ``cryptography`` primitives: the signatures verify."""
    provider = make_provider()
    name = _name()
    parameters = provider.import_parameters(name, KeySpec(key_type=KeyType.RSA_2048))
    original = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = original.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = serialization.load_pem_public_key(parameters.wrapping_public_key)
    assert isinstance(public, rsa.RSAPublicKey)
    ephemeral = os.urandom(32)
    sha1 = hashes.SHA1()  # noqa: S303 - what the token's OAEP takes
    blob = public.encrypt(
        ephemeral, padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None)
    ) + aes_key_wrap_with_padding(ephemeral, der)
    metadata = provider.import_key(
        name,
        KeySpec(key_type=KeyType.RSA_2048),
        KeyMaterial(format="wrapped", data=Secret(blob), import_token=parameters.import_token),
    )
    signature = provider.sign(metadata.ref, b"moved from the old HSM")
    original.public_key().verify(
        signature.value,
        b"moved from the old HSM",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    assert provider.public_key(metadata.ref) == original.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_wrapped_import_as_a_new_version(make_provider: MakeProvider) -> None:
    """A token issued for a new version adds one; older versions keep unwrapping."""
    provider = make_provider()
    name = _name()
    _import(provider, name, KeyType.AES_256)
    ref = provider._name(name).ref()
    old = provider.wrap(ref, b"k" * 32, CONTEXT)
    parameters = provider.import_parameters(
        name, KeySpec(key_type=KeyType.AES_256), new_version=True
    )
    material = fresh_material(KeyType.AES_256)
    blob = wrap_for_import(
        KeyType.AES_256,
        material,
        wrapping_public_key=parameters.wrapping_public_key,
        algorithm=parameters.wrapping_algorithm,
        expected_fingerprint=parameters.fingerprint,
    )
    wrapped = KeyMaterial(format="wrapped", data=Secret(blob), import_token=parameters.import_token)
    with pytest.raises(ImportRefused, match="--new-version"):
        provider.import_key(name, KeySpec(key_type=KeyType.AES_256), wrapped)
    metadata = provider.import_key(
        name, KeySpec(key_type=KeyType.AES_256), wrapped, new_version=True
    )
    assert metadata.current_version == "2"
    assert bytes(provider.unwrap(old.key, old.encrypted, CONTEXT)) == b"k" * 32
    data_key = os.urandom(32)
    made = _edk_from(material.data.reveal(), f"pkcs11://{TOKEN}/{name}?version=2", data_key)
    assert bytes(provider.unwrap(ref.with_version("2"), made, CONTEXT)) == data_key


def test_short_aes_material_is_refused_and_leaves_no_key(make_provider: MakeProvider) -> None:
    """25..31 bytes wrap to the same 40 bytes as 32; the token's AES check refuses them."""
    provider = make_provider()
    name = _name()
    parameters = provider.import_parameters(name, KeySpec(key_type=KeyType.AES_256))
    public = serialization.load_pem_public_key(parameters.wrapping_public_key)
    assert isinstance(public, rsa.RSAPublicKey)
    ephemeral = os.urandom(32)
    sha1 = hashes.SHA1()  # noqa: S303 - what the token's OAEP takes
    blob = public.encrypt(
        ephemeral, padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None)
    ) + aes_key_wrap_with_padding(ephemeral, os.urandom(28))
    with pytest.raises(ImportRefused, match="32-byte AES key"):
        provider.import_key(
            name,
            KeySpec(key_type=KeyType.AES_256),
            KeyMaterial(format="wrapped", data=Secret(blob), import_token=parameters.import_token),
        )
    assert (
        _objects(provider, {Attribute.LABEL: name, Attribute.CLASS: ObjectClass.SECRET_KEY}) == []
    )


@pytest.mark.parametrize("key_type", [KeyType.ED25519, KeyType.ECDSA_P256])
def test_types_the_token_cannot_import_are_refused_up_front(
    make_provider: MakeProvider, key_type: KeyType
) -> None:
    """No job is made for a type the provider cannot import; the message lists what it can."""
    provider = make_provider()
    with pytest.raises(UnsupportedOperation, match="imports wrapped: aes-256, rsa-2048"):
        provider.import_parameters(_name(), KeySpec(key_type=key_type))


def test_cli_wrapped_import_on_the_token(softhsm: SoftHsm, tmp_path: Path) -> None:
    """import-params, then wrap-for-import with no configuration at all, then import --wrapped."""
    config = tmp_path / "aureus.toml"
    config.write_text(
        f'[providers.pkcs11]\nmodule = "{softhsm.module}"\ntoken = "{TOKEN}"\n'
        'credentials = "hsm-pin"\n\n[credentials.hsm-pin]\nsource = "env"\n'
        'variables = { pin = "DEMO_HSM_PIN" }\n',
        encoding="utf-8",
    )
    online = {
        **os.environ,
        **softhsm.environment(),
        "AUREUS_CONFIG": str(config),
        "DEMO_HSM_PIN": PIN,
        "AUREUS_KEYSTORE": str(tmp_path / "keystore"),
    }
    offline = {k: v for k, v in os.environ.items() if not k.startswith(("AUREUS_", "SOFTHSM"))}
    aureus = str(Path(sys.executable).with_name("aureus"))

    def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [aureus, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )

    uri = f"pkcs11://{TOKEN}/{_name()}"
    started = run(online, "keys", "import-params", uri, "--type", "aes-256", "-o", "wrapping.pem")
    assert started.returncode == 0, started.stderr
    fields = dict(line.split(":", 1) for line in started.stdout.splitlines()[:6] if ":" in line)
    token, fingerprint = fields["import token"].strip(), fields["fingerprint"].strip()
    assert fingerprint.startswith("sha256:")
    (tmp_path / "key.bin").write_bytes(os.urandom(32))
    wrong = run(
        offline, "keys", "wrap-for-import", "--type", "aes-256", "--wrapping-key", "wrapping.pem",
        "--algorithm", "rsa-oaep-sha1-aes-kwp", "--fingerprint", "sha256:" + "0" * 64,
        "--raw-key-file", "key.bin", "-o", "wrapped.bin",
    )  # fmt: skip
    assert wrong.returncode == 2
    assert "do not wrap key material for it" in wrong.stderr
    assert not (tmp_path / "wrapped.bin").exists()
    wrapped = run(
        offline, "keys", "wrap-for-import", "--type", "aes-256", "--wrapping-key", "wrapping.pem",
        "--algorithm", "rsa-oaep-sha1-aes-kwp", "--fingerprint", fingerprint,
        "--raw-key-file", "key.bin", "-o", "wrapped.bin",
    )  # fmt: skip
    assert wrapped.returncode == 0, wrapped.stderr
    imported = run(
        online, "keys", "import", uri, "--type", "aes-256",
        "--wrapped", "wrapped.bin", "--import-token", token,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == uri
    again = run(
        online, "keys", "import", uri, "--type", "aes-256", "--new-version",
        "--wrapped", "wrapped.bin", "--import-token", token,
    )  # fmt: skip
    assert again.returncode == 2
    assert "already used" in again.stderr
    (tmp_path / "note.txt").write_bytes(b"moved keys\n")
    encrypted = run(online, "encrypt", "--key", uri, "-o", "note.aes", "note.txt")
    assert encrypted.returncode == 0, encrypted.stderr
    decrypted = run(online, "decrypt", "-o", "note.out", "note.aes")
    assert decrypted.returncode == 0, decrypted.stderr
    assert (tmp_path / "note.out").read_bytes() == b"moved keys\n"
