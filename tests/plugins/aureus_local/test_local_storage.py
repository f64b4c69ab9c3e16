"""The on-disk keystore: permissions, integrity, passphrases, sharing and secrecy."""

from __future__ import annotations

import base64
import errno
import hmac
import json
import os
import re
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import filelock
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from aureus_core.context import EncryptionContext
from aureus_core.errors import (
    ConfigError,
    CredentialError,
    KeyNotFound,
    KeystoreCorrupted,
    ProviderUnavailable,
)
from aureus_core.interfaces import KeyMaterial
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec
from aureus_core.sensitive import Secret
from aureus_local import LocalKeyProvider
from aureus_local import keystore as keystore_module
from aureus_local.atomic import write_new_file
from aureus_local.document import FORMAT_VERSION
from aureus_local.keystore import Keystore
from aureus_local.sealing import Sealer

MakeProvider = Callable[..., LocalKeyProvider]
CONTEXT = EncryptionContext(app="tests")


def ref(uri: str) -> KeyRef:
    return KeyRef.parse(uri)


def keystore_json(directory: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((directory / "keystore.json").read_text())
    return result


def write_keystore_json(directory: Path, document: dict[str, Any]) -> None:
    (directory / "keystore.json").write_text(json.dumps(document, indent=1))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# -- permissions ---------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.usefixtures("permissive_umask")
def test_directory_0700_and_files_0600_whatever_the_umask(
    local_provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    local_provider.create_key("k", KeySpec(key_type="aes-256"))
    local_provider.rotate_key(ref("local://k"))

    assert mode_of(keystore_dir) == 0o700
    assert sorted(p.name for p in keystore_dir.iterdir()) == [
        "keystore.json",
        "keystore.lock",
        "master.key",
    ]
    for path in keystore_dir.iterdir():
        assert mode_of(path) == 0o600, path.name
    assert len((keystore_dir / "master.key").read_bytes()) == 32


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_existing_open_directory_is_tightened(
    local_provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    keystore_dir.mkdir()
    keystore_dir.chmod(0o755)
    local_provider.create_key("k", KeySpec(key_type="aes-256"))
    assert mode_of(keystore_dir) == 0o700


def test_keystore_path_that_is_a_file(make_provider: MakeProvider, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    provider = make_provider(tmp_path / "file")
    with pytest.raises(ConfigError) as refused:
        provider.create_key("k", KeySpec(key_type="aes-256"))
    assert str(refused.value) == (
        f"keystore path {tmp_path / 'file'} exists and is not a directory: point the "
        "keystore option or AUREUS_KEYSTORE at a directory"
    )
    assert (tmp_path / "file").read_text() == "x"


# -- integrity -------------------------------------------------------------------


def _edit_description(doc: dict[str, Any]) -> None:
    doc["keys"]["w"]["description"] = "edited"


def _roll_back_current_version(doc: dict[str, Any]) -> None:
    doc["keys"]["w"]["current_version"] = 1


def _drop_a_version(doc: dict[str, Any]) -> None:
    doc["keys"]["w"]["versions"].pop()
    doc["keys"]["w"]["current_version"] = 1


def _drop_a_key(doc: dict[str, Any]) -> None:
    del doc["keys"]["s"]


def _flip_ciphertext_byte(doc: dict[str, Any]) -> None:
    version = doc["keys"]["w"]["versions"][0]
    raw = bytearray(base64.b64decode(version["ciphertext"]))
    raw[5] ^= 0x40
    version["ciphertext"] = base64.b64encode(bytes(raw)).decode()


def _swap_material(doc: dict[str, Any]) -> None:
    first, second = doc["keys"]["w"]["versions"]
    first["ciphertext"], second["ciphertext"] = second["ciphertext"], first["ciphertext"]
    first["nonce"], second["nonce"] = second["nonce"], first["nonce"]


def _change_created_at(doc: dict[str, Any]) -> None:
    doc["keys"]["s"]["created_at"] = "2000-01-01T00:00:00+00:00"


def _add_unknown_field(doc: dict[str, Any]) -> None:
    doc["keys"]["s"]["state"] = "disabled"


def _remove_mac(doc: dict[str, Any]) -> None:
    del doc["mac"]


def _change_keystore_id(doc: dict[str, Any]) -> None:
    doc["keystore_id"] = "0" * 32


TAMPERINGS: dict[str, Callable[[dict[str, Any]], None]] = {
    "description": _edit_description,
    "current version": _roll_back_current_version,
    "dropped version": _drop_a_version,
    "dropped key": _drop_a_key,
    "ciphertext byte": _flip_ciphertext_byte,
    "swapped material": _swap_material,
    "created_at": _change_created_at,
    "unknown field": _add_unknown_field,
    "no mac": _remove_mac,
    "keystore id": _change_keystore_id,
}


@pytest.fixture
def filled(local_provider: LocalKeyProvider) -> LocalKeyProvider:
    """A provider whose keystore holds ``w`` (aes-256, 2 versions) and ``s`` (ed25519)."""
    local_provider.create_key("w", KeySpec(key_type="aes-256", description="original"))
    local_provider.rotate_key(ref("local://w"))
    local_provider.create_key("s", KeySpec(key_type="ed25519"))
    return local_provider


def _assert_corrupted_and_unchanged(provider: LocalKeyProvider, directory: Path) -> None:
    before = (directory / "keystore.json").read_bytes()
    for operation in (
        provider.list_keys,
        lambda: provider.describe_key(ref("local://s")),
        lambda: provider.create_key("new", KeySpec(key_type="aes-256")),
        lambda: provider.rotate_key(ref("local://s")),
    ):
        with pytest.raises(KeystoreCorrupted) as caught:
            operation()
        message = str(caught.value)
        assert str(directory / "keystore.json") in message
        assert "backup" in message
    assert (directory / "keystore.json").read_bytes() == before
    assert sorted(p.name for p in directory.iterdir()) == [
        "keystore.json",
        "keystore.lock",
        "master.key",
    ]


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_tampering_is_detected_and_nothing_changes(
    filled: LocalKeyProvider, keystore_dir: Path, tampering: str
) -> None:
    document = keystore_json(keystore_dir)
    TAMPERINGS[tampering](document)
    write_keystore_json(keystore_dir, document)

    _assert_corrupted_and_unchanged(filled, keystore_dir)


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"[]", b"\xff\xfe", b'{"format": "something-else"}', b"null"],
)
def test_unreadable_files_are_corrupted(
    filled: LocalKeyProvider, keystore_dir: Path, content: bytes
) -> None:
    (keystore_dir / "keystore.json").write_bytes(content)
    _assert_corrupted_and_unchanged(filled, keystore_dir)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            b'{"generation": 1234567890.12345678901234567890}',
            "it is not valid JSON (unexpected number '1234567890.123456789')",
        ),
        (
            b'{"format": 1, "' + b"f" * 300 + b'": 1, "' + b"f" * 300 + b'": 2}',
            "it is not valid JSON (duplicate field '" + "f" * 83 + ")",
        ),
    ],
    ids=["float", "duplicate field"],
)
def test_a_refused_document_is_quoted_in_a_bounded_excerpt(
    filled: LocalKeyProvider, keystore_dir: Path, content: bytes, reason: str
) -> None:
    """A number is quoted to 20 characters, any other parse error to 100: never the whole file."""
    (keystore_dir / "keystore.json").write_bytes(content)
    with pytest.raises(KeystoreCorrupted) as refused:
        filled.list_keys()
    assert str(refused.value) == (
        f"keystore file {keystore_dir / 'keystore.json'} is corrupted: {reason}. Nothing was "
        "changed; restore keystore.json (with its master.key, if any) from a backup"
    )


def test_truncated_file_is_corrupted(filled: LocalKeyProvider, keystore_dir: Path) -> None:
    path = keystore_dir / "keystore.json"
    path.write_bytes(path.read_bytes()[:-40])
    _assert_corrupted_and_unchanged(filled, keystore_dir)


def test_reformatting_without_changes_still_loads(
    filled: LocalKeyProvider, keystore_dir: Path
) -> None:
    (keystore_dir / "keystore.json").write_text(json.dumps(keystore_json(keystore_dir)))
    assert [m.uri for m in filled.list_keys()] == ["local://s", "local://w"]


def test_material_is_bound_to_its_key_and_version(
    filled: LocalKeyProvider, keystore_dir: Path
) -> None:
    """Even with the master key (so a valid MAC), material moved to another slot won't open."""
    document = keystore_json(keystore_dir)
    _swap_material(document)
    del document["mac"]
    sealer = Sealer((keystore_dir / "master.key").read_bytes())
    document["mac"] = base64.b64encode(sealer.mac(document)).decode()
    write_keystore_json(keystore_dir, document)

    assert filled.describe_key(ref("local://w")).current_version == "2"
    with pytest.raises(KeystoreCorrupted) as refused:
        filled.wrap(ref("local://w"), bytes(32), CONTEXT)
    assert str(refused.value) == (
        f"keystore file {keystore_dir / 'keystore.json'} is corrupted: the material of "
        "local://w?version=2 does not decrypt. Nothing was changed; restore keystore.json "
        "(with its master.key, if any) from a backup"
    )
    # The same refusal from the document this process writes next (its own snapshot).
    filled.create_key("other", KeySpec(key_type="aes-256"))
    with pytest.raises(KeystoreCorrupted, match=r"local://w\?version=2 does not decrypt"):
        filled.wrap(ref("local://w"), bytes(32), CONTEXT)


def test_newer_format_asks_for_an_upgrade(filled: LocalKeyProvider, keystore_dir: Path) -> None:
    document = keystore_json(keystore_dir)
    document["format_version"] = FORMAT_VERSION + 1
    write_keystore_json(keystore_dir, document)

    with pytest.raises(ProviderUnavailable) as caught:
        filled.list_keys()
    assert not isinstance(caught.value, KeystoreCorrupted)
    assert caught.value.provider == "local"
    assert str(caught.value) == (
        f"keystore file {keystore_dir / 'keystore.json'} cannot be read: it has format version "
        f"{FORMAT_VERSION + 1}; this Aureus reads versions 1 and 2 and 3; upgrade aureus-kms"
    )


def test_missing_master_key(
    filled: LocalKeyProvider, keystore_dir: Path, make_provider: MakeProvider
) -> None:
    (keystore_dir / "master.key").unlink()
    before = (keystore_dir / "keystore.json").read_bytes()

    for provider in (filled, make_provider()):
        with pytest.raises(KeystoreCorrupted) as caught:
            provider.create_key("k", KeySpec(key_type="aes-256"))
        assert "master.key" in str(caught.value)
        assert "missing" in str(caught.value)

    assert not (keystore_dir / "master.key").exists()
    assert (keystore_dir / "keystore.json").read_bytes() == before


def test_replaced_master_key(
    filled: LocalKeyProvider, keystore_dir: Path, make_provider: MakeProvider
) -> None:
    (keystore_dir / "master.key").write_bytes(os.urandom(32))
    with pytest.raises(KeystoreCorrupted, match="not the master key"):
        make_provider().list_keys()
    # A provider that unlocked the keystore earlier keeps reading, but writes no more.
    assert len(filled.list_keys()) == 2
    with pytest.raises(KeystoreCorrupted, match="not the master key"):
        filled.create_key("k", KeySpec(key_type="aes-256"))

    (keystore_dir / "master.key").write_bytes(os.urandom(31))
    with pytest.raises(KeystoreCorrupted, match="exactly 32 bytes"):
        make_provider().list_keys()


def test_stale_temp_files_are_ignored_then_removed(
    filled: LocalKeyProvider, keystore_dir: Path, make_provider: MakeProvider
) -> None:
    (keystore_dir / ".keystore.json.0123456789abcdef.tmp").write_text('{"half": ')
    (keystore_dir / ".master.key.0123456789abcdef.tmp").write_bytes(b"\x00" * 7)

    reader = make_provider()
    assert [m.uri for m in reader.list_keys()] == ["local://s", "local://w"]
    reader.create_key("after", KeySpec(key_type="aes-256"))

    assert not [p for p in keystore_dir.iterdir() if p.name.endswith(".tmp")]
    assert len(filled.list_keys()) == 3


# -- passphrases -------------------------------------------------------------------

PASSPHRASE = "correct horse battery staple"


def test_passphrase_keystore_round_trip(make_provider: MakeProvider, keystore_dir: Path) -> None:
    writer = make_provider(passphrase=Secret(PASSPHRASE), scrypt_log_n=10)
    writer.create_key("w", KeySpec(key_type="aes-256"))
    writer.create_key("s", KeySpec(key_type="ecdsa-p256"))
    wrapped = writer.wrap(ref("local://w"), bytes(range(32)), CONTEXT)
    signature = writer.sign(ref("local://s"), b"message")

    assert not (keystore_dir / "master.key").exists()
    master = keystore_json(keystore_dir)["master_key"]
    assert master["source"] == "passphrase"
    assert (master["kdf"], master["log_n"], master["r"], master["p"]) == ("scrypt", 10, 8, 1)
    assert len(base64.b64decode(master["salt"])) == 16

    reader = make_provider(passphrase=Secret(PASSPHRASE), scrypt_log_n=15)
    assert reader.unwrap(ref("local://w"), wrapped.encrypted, CONTEXT) == bytes(range(32))
    assert reader.verify(ref("local://s"), b"message", signature.value)
    reader.rotate_key(ref("local://s"))
    assert keystore_json(keystore_dir)["master_key"]["log_n"] == 10


def test_wrong_passphrase(make_provider: MakeProvider, keystore_dir: Path) -> None:
    make_provider(passphrase=Secret(PASSPHRASE), scrypt_log_n=10).create_key(
        "k", KeySpec(key_type="aes-256")
    )
    before = (keystore_dir / "keystore.json").read_bytes()
    wrong = make_provider(passphrase=Secret("Tr0ub4dor&3"), scrypt_log_n=10)

    for operation in (wrong.list_keys, lambda: wrong.create_key("x", KeySpec(key_type="aes-256"))):
        with pytest.raises(CredentialError) as caught:
            operation()
        message = str(caught.value)
        assert f"wrong passphrase for keystore {keystore_dir}" in message
        assert "AUREUS_KEYSTORE_PASSPHRASE" in message
        assert "Tr0ub4dor" not in message
        assert PASSPHRASE not in message
    assert (keystore_dir / "keystore.json").read_bytes() == before


def test_passphrase_keystore_without_passphrase(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    make_provider(passphrase=Secret(PASSPHRASE), scrypt_log_n=10).create_key(
        "k", KeySpec(key_type="aes-256")
    )
    with pytest.raises(CredentialError, match="set AUREUS_KEYSTORE_PASSPHRASE"):
        make_provider().describe_key(ref("local://k"))
    with pytest.raises(CredentialError, match="set AUREUS_KEYSTORE_PASSPHRASE"):
        make_provider().create_key("x", KeySpec(key_type="aes-256"))
    assert not (keystore_dir / "master.key").exists()


def test_key_file_keystore_with_passphrase(
    local_provider: LocalKeyProvider, make_provider: MakeProvider
) -> None:
    local_provider.create_key("k", KeySpec(key_type="aes-256"))
    with pytest.raises(CredentialError, match="unset AUREUS_KEYSTORE_PASSPHRASE"):
        make_provider(passphrase=Secret(PASSPHRASE), scrypt_log_n=10).list_keys()


def test_leftover_master_key_refuses_a_passphrase(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    keystore_dir.mkdir()
    (keystore_dir / "master.key").write_bytes(os.urandom(32))
    with pytest.raises(CredentialError, match="unset AUREUS_KEYSTORE_PASSPHRASE"):
        make_provider(passphrase=Secret(PASSPHRASE), scrypt_log_n=10).create_key(
            "k", KeySpec(key_type="aes-256")
        )
    assert not (keystore_dir / "keystore.json").exists()


@pytest.mark.parametrize(("field", "value"), [("log_n", 30), ("r", 1024), ("p", 64)])
def test_tampered_scrypt_parameters_are_refused_before_deriving(
    make_provider: MakeProvider, keystore_dir: Path, field: str, value: int
) -> None:
    make_provider(passphrase=Secret(PASSPHRASE), scrypt_log_n=10).create_key(
        "k", KeySpec(key_type="aes-256")
    )
    document = keystore_json(keystore_dir)
    document["master_key"][field] = value
    write_keystore_json(keystore_dir, document)

    with pytest.raises(KeystoreCorrupted, match=f"master_key.{field}"):
        make_provider(passphrase=Secret(PASSPHRASE)).list_keys()


def test_empty_passphrase_is_refused(make_provider: MakeProvider) -> None:
    with pytest.raises(CredentialError, match="empty"):
        make_provider(passphrase=Secret(""))


# -- sharing -----------------------------------------------------------------------


def test_two_instances_see_each_others_writes(make_provider: MakeProvider) -> None:
    first, second = make_provider(), make_provider()
    first.create_key("a", KeySpec(key_type="aes-256"))
    assert [m.uri for m in second.list_keys()] == ["local://a"]

    second.create_key("b", KeySpec(key_type="ed25519"))
    second.rotate_key(ref("local://a"))
    assert [m.uri for m in first.list_keys()] == ["local://a", "local://b"]
    assert first.describe_key(ref("local://a")).current_version == "2"

    wrapped = first.wrap(ref("local://a"), bytes(32), CONTEXT)
    assert wrapped.key.version == "2"
    assert second.unwrap(ref("local://a"), wrapped.encrypted, CONTEXT) == bytes(32)


def test_close_drops_caches_and_reopens(local_provider: LocalKeyProvider) -> None:
    local_provider.create_key("s", KeySpec(key_type="ed25519"))
    signature = local_provider.sign(ref("local://s"), b"m")
    local_provider.close()
    assert local_provider.verify(ref("local://s"), b"m", signature.value)


def test_concurrent_threads_lose_no_writes(make_provider: MakeProvider) -> None:
    providers = [make_provider(), make_provider()]
    providers[0].create_key("shared", KeySpec(key_type="aes-256"))
    threads, per_thread = 8, 5
    barrier = threading.Barrier(threads)

    def work(index: int) -> None:
        provider = providers[index % 2]
        barrier.wait()
        for i in range(per_thread):
            provider.create_key(f"t{index}-{i}", KeySpec(key_type="ed25519"))
            provider.rotate_key(ref("local://shared"))

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work, i) for i in range(threads)]:
            future.result()

    for provider in providers:
        names = {m.ref.key_id for m in provider.list_keys()}
        assert names == {"shared"} | {
            f"t{t}-{i}" for t in range(threads) for i in range(per_thread)
        }
        shared = provider.describe_key(ref("local://shared"))
        assert shared.current_version == str(1 + threads * per_thread)
        assert [v.version for v in shared.versions] == [
            str(n) for n in range(1, 2 + threads * per_thread)
        ]


def test_concurrent_reads_while_writing(local_provider: LocalKeyProvider) -> None:
    local_provider.create_key("w", KeySpec(key_type="aes-256"))
    wrapped = local_provider.wrap(ref("local://w"), bytes(32), CONTEXT)
    stop = threading.Event()

    def writer() -> None:
        for i in range(20):
            local_provider.rotate_key(ref("local://w"))
            local_provider.create_key(f"k{i}", KeySpec(key_type="aes-256"))
        stop.set()

    def reader() -> int:
        reads = 0
        while not stop.is_set() or reads == 0:
            assert local_provider.unwrap(ref("local://w"), wrapped.encrypted, CONTEXT) == bytes(32)
            reads += 1
        return reads

    with ThreadPoolExecutor(4) as pool:
        readers = [pool.submit(reader) for _ in range(3)]
        pool.submit(writer).result()
        assert all(r.result() > 0 for r in readers)
    assert local_provider.describe_key(ref("local://w")).current_version == "21"


# -- secrets -------------------------------------------------------------------------


def _renderings(secret: bytes) -> list[str]:
    return [
        repr(secret),
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        str(list(secret)),
    ]


def test_reprs_and_file_hold_no_key_material(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    provider = make_provider(passphrase=Secret(PASSPHRASE), scrypt_log_n=10)
    aes = bytes(range(50, 82))
    signer = ed25519.Ed25519PrivateKey.generate()
    seed = signer.private_bytes_raw()
    provider.import_key(
        "w", KeySpec(key_type="aes-256"), KeyMaterial(format="raw", data=Secret(aes))
    )
    pem = signer.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    provider.import_key(
        "s", KeySpec(key_type="ed25519"), KeyMaterial(format="pem", data=Secret(pem))
    )
    provider.wrap(ref("local://w"), bytes(32), CONTEXT)
    provider.sign(ref("local://s"), b"m")
    snapshot = provider.keystore.snapshot()
    assert snapshot is not None

    shown = "\n".join(
        [
            repr(provider),
            str(provider),
            repr(provider.keystore),
            repr(snapshot),
            repr(snapshot.document),
            repr(snapshot.keys),
            repr(provider.list_keys()),
        ]
    )
    stored = (keystore_dir / "keystore.json").read_text()

    assert str(keystore_dir) in repr(provider)
    for secret in (aes, seed):
        for rendering in _renderings(secret):
            assert rendering not in shown
            assert rendering not in stored
    assert PASSPHRASE not in shown
    assert PASSPHRASE not in stored
    assert repr(Sealer(bytes(32))) == "Sealer(<secret>)"


# -- the documented format, read without Aureus ----------------------------------------


def _spec_hkdf(master: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)


def _check_documented_format(
    directory: Path, master: bytes, name: str, material: bytes, fingerprint: str
) -> None:
    """Check every derived value of ``keystore.json`` as sealing.py's docstring specifies it."""
    document = keystore_json(directory)
    verifier_key = _spec_hkdf(master, b"aureus-local/v1/verifier-key")
    assert base64.b64decode(document["verifier"]) == hmac.digest(
        verifier_key, b"aureus-local/v1/verifier", "sha256"
    )
    fingerprint_label = b"aureus-local/v1/fingerprint\x00"
    keystore_id = document["keystore_id"].encode()
    tag = hmac.digest(verifier_key, fingerprint_label + keystore_id, "sha256")
    assert fingerprint == tag[:16].hex()
    mac = base64.b64decode(document.pop("mac"))
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    mac_key = _spec_hkdf(master, b"aureus-local/v1/document-mac-key")
    assert mac == hmac.digest(
        mac_key, b"aureus-local/v1/document\x00" + canonical.encode("ascii"), "sha256"
    )
    version = document["keys"][name]["versions"][0]
    aad = json.dumps(
        ["aureus-local/v1/material", document["keystore_id"], name, 1, "aes-256"],
        separators=(",", ":"),
    ).encode("ascii")
    material_key = _spec_hkdf(master, b"aureus-local/v1/material-key")
    nonce, sealed = base64.b64decode(version["nonce"]), base64.b64decode(version["ciphertext"])
    assert AESGCM(material_key).decrypt(nonce, sealed, aad) == material


def test_a_key_file_keystore_is_sealed_and_authenticated_as_documented(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    material = bytes(range(100, 132))
    provider = make_provider()
    # Non-ASCII text in the document: the MAC covers its ASCII-escaped canonical JSON.
    spec = KeySpec(key_type="aes-256", description="clé ✓", labels={"équipe": "paiements"})
    provider.import_key("payments", spec, KeyMaterial(format="raw", data=Secret(material)))
    master = (keystore_dir / "master.key").read_bytes()

    _check_documented_format(
        keystore_dir, master, "payments", material, provider.keystore_info().fingerprint
    )


def test_a_passphrase_keystore_derives_its_master_key_as_documented(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    material = bytes(range(50, 82))
    # "é" as e + combining acute (NFD): the key comes from its NFC form, one code point.
    decomposed = "cafe\u0301 passphrase"
    provider = make_provider(passphrase=Secret(decomposed), scrypt_log_n=10)
    spec = KeySpec(key_type="aes-256")
    provider.import_key("payments", spec, KeyMaterial(format="raw", data=Secret(material)))
    params = keystore_json(keystore_dir)["master_key"]
    assert (params["log_n"], params["r"], params["p"]) == (10, 8, 1)
    salt = base64.b64decode(params["salt"])
    master = Scrypt(salt=salt, length=32, n=2**10, r=8, p=1).derive("caf\u00e9 passphrase".encode())

    _check_documented_format(
        keystore_dir, master, "payments", material, provider.keystore_info().fingerprint
    )
    composed = make_provider(passphrase=Secret("caf\u00e9 passphrase"), scrypt_log_n=10)
    assert composed.keystore_info() == provider.keystore_info()


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_sealer_refuses_a_master_key_of_another_size(size: int) -> None:
    with pytest.raises(ValueError, match=r"^a master key is 32 bytes$"):
        Sealer(bytes(size))


# -- what is read before the MAC: every refusal says what is wrong ----------------


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """An edit of one field (dotted path) of the JSON document; ``...`` deletes it."""

    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = document
        for name in parents:
            target = target[name]
        if value is ...:
            del target[last]
        else:
            target[last] = value

    return edit


_MARKER = "'aureus-local-keystore'"
UNAUTHENTICATED_HEADERS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "no mac": (_set("mac", ...), "mac is missing or not a base64 string"),
    "mac not base64": (_set("mac", "!!!!"), "mac is not valid base64"),
    "mac not ASCII": (_set("mac", "\u00e9" * 44), "mac is not valid base64"),
    "mac too short": (_set("mac", "AAAA"), "mac has the wrong length"),
    "format": (
        _set("format", "aureus-local"),
        f"it is not an Aureus local keystore (no format {_MARKER})",
    ),
    "format_version 0": (_set("format_version", 0), "unknown format_version 0"),
    "format_version true": (_set("format_version", True), "unknown format_version True"),
    "format_version text": (_set("format_version", "3"), "unknown format_version '3'"),
    "no format_version": (_set("format_version", ...), "unknown format_version None"),
    "keystore_id upper case": (
        _set("keystore_id", "A" * 32),
        "keystore_id is missing or malformed",
    ),
    "keystore_id not hex": (_set("keystore_id", "X" * 32), "keystore_id is missing or malformed"),
    "keystore_id short": (_set("keystore_id", "a" * 31), "keystore_id is missing or malformed"),
    "keystore_id number": (_set("keystore_id", 7), "keystore_id is missing or malformed"),
    "master_key list": (_set("master_key", []), "master_key is not a JSON object"),
    "master_key source": (_set("master_key.source", "hsm"), "unknown master key source 'hsm'"),
    "master_key extra": (
        _set("master_key.kdf", "scrypt"),
        "master_key has missing fields [] or unknown fields ['kdf']",
    ),
    "verifier short": (_set("verifier", "AAAA"), "verifier has the wrong length"),
    "verifier missing": (_set("verifier", ...), "verifier is missing or not a base64 string"),
}


@pytest.mark.parametrize("case", list(UNAUTHENTICATED_HEADERS))
def test_a_damaged_header_is_refused_with_what_is_wrong(
    filled: LocalKeyProvider, keystore_dir: Path, case: str
) -> None:
    edit, reason = UNAUTHENTICATED_HEADERS[case]
    document = keystore_json(keystore_dir)
    edit(document)
    write_keystore_json(keystore_dir, document)

    with pytest.raises(KeystoreCorrupted) as refused:
        filled.list_keys()
    assert str(refused.value) == (
        f"keystore file {keystore_dir / 'keystore.json'} is corrupted: {reason}. Nothing was "
        "changed; restore keystore.json (with its master.key, if any) from a backup"
    )
    _assert_corrupted_and_unchanged(filled, keystore_dir)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "it is not valid JSON (Expecting value at line 1 column 1)"),
        (b'{"mac":\n  1 2}', "it is not valid JSON (Expecting ',' delimiter at line 2 column 5)"),
        (b"\xff\xfe{}", "it is not valid JSON (it is not UTF-8)"),
        (b'{"format": 1, "format": 2}', "it is not valid JSON (duplicate field 'format')"),
        (b'{"generation": 1.5}', "it is not valid JSON (unexpected number '1.5')"),
        (b'{"generation": 1e400}', "it is not valid JSON (unexpected number '1e400')"),
        (b'{"generation": NaN}', "it is not valid JSON (unexpected number 'NaN')"),
        # Nesting deeper than the interpreter recurses (the wording varies by version).
        (b"[" * 100_000, "it is not valid JSON (maximum recursion depth exceeded"),
        (b"[]", "the document is not a JSON object"),
        (b"null", "the document is not a JSON object"),
    ],
)
def test_a_file_that_is_not_a_keystore_document_says_why(
    filled: LocalKeyProvider, keystore_dir: Path, content: bytes, reason: str
) -> None:
    (keystore_dir / "keystore.json").write_bytes(content)

    with pytest.raises(KeystoreCorrupted) as refused:
        filled.list_keys()
    assert str(refused.value).startswith(
        f"keystore file {keystore_dir / 'keystore.json'} is corrupted: {reason}"
    )
    assert str(refused.value).endswith(
        ". Nothing was changed; restore keystore.json (with its master.key, if any) from a backup"
    )


PASSPHRASE_HEADERS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "kdf": (_set("master_key.kdf", "argon2id"), "unknown master key KDF 'argon2id'"),
    "salt short": (_set("master_key.salt", "AAAA"), "master_key.salt has the wrong length"),
    "log_n 9": (
        _set("master_key.log_n", 9),
        "master_key.log_n is not a whole number in the allowed range",
    ),
    "log_n 21": (
        _set("master_key.log_n", 21),
        "master_key.log_n is not a whole number in the allowed range",
    ),
    "log_n true": (
        _set("master_key.log_n", True),
        "master_key.log_n is not a whole number in the allowed range",
    ),
    "r 9": (_set("master_key.r", 9), "master_key.r is not a whole number in the allowed range"),
    "r 7": (_set("master_key.r", 7), "master_key.r is not a whole number in the allowed range"),
    "p 2": (_set("master_key.p", 2), "master_key.p is not a whole number in the allowed range"),
    # true is 1 to Python: a bool is refused as such, not let through by range(1, 2).
    "p true": (
        _set("master_key.p", True),
        "master_key.p is not a whole number in the allowed range",
    ),
    "p 0": (_set("master_key.p", 0), "master_key.p is not a whole number in the allowed range"),
    "no r": (_set("master_key.r", ...), "master_key has missing fields ['r'] or unknown fields []"),
}


@pytest.mark.parametrize("case", list(PASSPHRASE_HEADERS))
def test_damaged_scrypt_parameters_are_refused_with_what_is_wrong(
    make_provider: MakeProvider, keystore_dir: Path, case: str
) -> None:
    make_provider(passphrase=Secret(PASSPHRASE), scrypt_log_n=10).create_key(
        "k", KeySpec(key_type="aes-256")
    )
    edit, reason = PASSPHRASE_HEADERS[case]
    document = keystore_json(keystore_dir)
    edit(document)
    write_keystore_json(keystore_dir, document)

    with pytest.raises(KeystoreCorrupted) as refused:
        make_provider(passphrase=Secret(PASSPHRASE)).list_keys()
    assert str(refused.value) == (
        f"keystore file {keystore_dir / 'keystore.json'} is corrupted: {reason}. Nothing was "
        "changed; restore keystore.json (with its master.key, if any) from a backup"
    )


@pytest.mark.parametrize("log_n", [10, 20])
def test_the_scrypt_cost_bounds_themselves_are_readable(
    make_provider: MakeProvider, keystore_dir: Path, log_n: int
) -> None:
    # The header is checked before the MAC, so an in-range cost reaches the MAC check.
    make_provider(passphrase=Secret(PASSPHRASE), scrypt_log_n=10).create_key(
        "k", KeySpec(key_type="aes-256")
    )
    document = keystore_json(keystore_dir)
    document["master_key"]["log_n"] = log_n
    write_keystore_json(keystore_dir, document)
    if log_n == 10:
        assert len(make_provider(passphrase=Secret(PASSPHRASE)).list_keys()) == 1
    else:
        with pytest.raises(CredentialError, match="wrong passphrase"):
            make_provider(passphrase=Secret(PASSPHRASE)).list_keys()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_files_are_0600_even_under_a_umask_that_narrows_them(
    local_provider: LocalKeyProvider, keystore_dir: Path, tmp_path: Path
) -> None:
    old = os.umask(0o277)  # os.open alone would make the files 0400
    try:
        local_provider.create_key("k", KeySpec(key_type="aes-256"))
        write_new_file(tmp_path / "direct", b"content")
    finally:
        os.umask(old)

    assert mode_of(keystore_dir / "keystore.json") == 0o600
    assert mode_of(keystore_dir / "master.key") == 0o600
    assert mode_of(tmp_path / "direct") == 0o600
    assert (tmp_path / "direct").read_bytes() == b"content"


def test_a_new_file_is_never_written_over_an_existing_one(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_bytes(b"first")
    with pytest.raises(FileExistsError):
        write_new_file(target, b"second")
    assert target.read_bytes() == b"first"


# -- the keystore's own refusals, word for word ---------------------------------------


def test_a_keystore_locked_by_another_writer_is_a_clear_error(keystore_dir: Path) -> None:
    keystore_dir.mkdir(mode=0o700)
    keystore = Keystore(keystore_dir, lock_timeout=0.05)
    with (
        filelock.FileLock(str(keystore_dir / "keystore.lock")),
        pytest.raises(ProviderUnavailable) as refused,
    ):
        keystore.sealing()  # writes a new, empty keystore: it needs the lock
    assert str(refused.value) == (
        f"keystore {keystore_dir} stayed locked by another writer for 0.05 s "
        "(keystore.lock): retry, or look for a stuck process"
    )
    assert refused.value.provider == "local"
    assert not (keystore_dir / "keystore.json").exists()
    keystore_id, _ = keystore.sealing()  # released: the next writer gets it
    assert (keystore_dir / "keystore.json").exists()
    assert len(keystore_id) == 32


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_a_master_key_file_of_another_size_is_refused_word_for_word(
    filled: LocalKeyProvider, keystore_dir: Path, make_provider: MakeProvider, size: int
) -> None:
    (keystore_dir / "master.key").write_bytes(b"\x01" * size)
    with pytest.raises(KeystoreCorrupted) as refused:
        make_provider().list_keys()
    assert refused.value.provider == "local"
    assert str(refused.value) == (
        f"the master key file {keystore_dir / 'master.key'} is damaged (it must hold exactly "
        "32 bytes): restore it from a backup"
    )


def test_a_missing_or_replaced_master_key_is_refused_word_for_word(
    filled: LocalKeyProvider, keystore_dir: Path, make_provider: MakeProvider
) -> None:
    master = keystore_dir / "master.key"
    master.write_bytes(bytes(32))
    with pytest.raises(KeystoreCorrupted) as refused:
        make_provider().list_keys()
    assert str(refused.value) == (
        f"keystore file {keystore_dir / 'keystore.json'} is corrupted: {master} is not the "
        "master key this file was made with; restore the matching master.key. Nothing was "
        "changed; restore keystore.json (with its master.key, if any) from a backup"
    )
    master.unlink()
    with pytest.raises(KeystoreCorrupted) as refused:
        make_provider().list_keys()
    assert refused.value.provider == "local"
    assert str(refused.value) == (
        f"the master key file {master} of keystore {keystore_dir} is missing: restore it "
        "from a backup; without it the keys in keystore.json cannot be decrypted"
    )


def test_unlocking_with_the_wrong_kind_of_secret_says_which_one_is_needed(
    make_provider: MakeProvider, tmp_path: Path
) -> None:
    key_file = make_provider(tmp_path / "file")
    key_file.create_key("k", KeySpec(key_type="aes-256"))
    with pytest.raises(CredentialError) as refused:
        make_provider(tmp_path / "file", passphrase=Secret(PASSPHRASE)).list_keys()
    assert str(refused.value) == (
        f"keystore {tmp_path / 'file'} is unlocked by its key file master.key, not by a "
        "passphrase: unset AUREUS_KEYSTORE_PASSPHRASE (and drop any passphrase credentials "
        "from the local provider's configuration)"
    )

    make_provider(tmp_path / "pass", passphrase=Secret(PASSPHRASE), scrypt_log_n=10).create_key(
        "k", KeySpec(key_type="aes-256")
    )
    with pytest.raises(CredentialError) as refused:
        make_provider(tmp_path / "pass").list_keys()
    assert str(refused.value) == (
        f"keystore {tmp_path / 'pass'} is protected by a passphrase: set "
        "AUREUS_KEYSTORE_PASSPHRASE, or give the local provider credentials with a "
        "'passphrase' value"
    )
    with pytest.raises(CredentialError) as refused:
        make_provider(tmp_path / "pass", passphrase=Secret("not it")).list_keys()
    assert str(refused.value) == (
        f"wrong passphrase for keystore {tmp_path / 'pass'}: check "
        "AUREUS_KEYSTORE_PASSPHRASE, where it came from"
    )


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
@pytest.mark.usefixtures("permissive_umask")
def test_a_new_file_is_private_from_the_moment_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whoever opens the file before the chmod keeps that descriptor and would read what is
    # written later: the mode must be 0600 at creation, not only after the chmod.
    modes_at_creation: list[int] = []
    real_fchmod = os.fchmod

    def opener_between_creation_and_chmod(fd: int, mode: int) -> None:
        modes_at_creation.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real_fchmod(fd, mode)

    monkeypatch.setattr(os, "fchmod", opener_between_creation_and_chmod)
    write_new_file(tmp_path / "secret", b"key material")

    assert modes_at_creation == [0o600]
    assert mode_of(tmp_path / "secret") == 0o600


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_a_new_file_that_cannot_be_made_private_reports_why_and_leaks_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(fd: int, mode: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refused)
    open_before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(PermissionError, match="Operation not permitted"):
        write_new_file(tmp_path / "secret", b"key material")
    assert len(os.listdir("/proc/self/fd")) == open_before
    assert (tmp_path / "secret").read_bytes() == b""  # nothing was written into it


def test_a_keystore_write_that_fails_reports_its_own_error_and_changes_nothing(
    filled: LocalKeyProvider, keystore_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (keystore_dir / "keystore.json").read_bytes()

    def disk_full(target: Path, content: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    # The fault where the disk refuses: creating the new file.  A write that failed must
    # not be reported as done, nor leave a key this process believes it has.
    monkeypatch.setattr(keystore_module, "write_new_file", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        filled.create_key("new", KeySpec(key_type="aes-256"))
    monkeypatch.undo()

    assert (keystore_dir / "keystore.json").read_bytes() == before
    assert [m.uri for m in filled.list_keys()] == ["local://s", "local://w"]
    assert sorted(p.name for p in keystore_dir.iterdir()) == [
        "keystore.json",
        "keystore.lock",
        "master.key",
    ]


def test_a_document_changed_outside_aureus_is_refused_word_for_word(
    filled: LocalKeyProvider, keystore_dir: Path
) -> None:
    document = keystore_json(keystore_dir)
    _edit_description(document)
    write_keystore_json(keystore_dir, document)

    with pytest.raises(KeystoreCorrupted) as refused:
        filled.list_keys()
    assert refused.value.provider == "local"
    assert str(refused.value) == (
        f"keystore file {keystore_dir / 'keystore.json'} is corrupted: its integrity check "
        "(HMAC) failed, so it was changed outside Aureus or damaged. Nothing was changed; "
        "restore keystore.json (with its master.key, if any) from a backup"
    )


def test_every_temporary_file_is_one_the_next_writer_would_clean_up(
    make_provider: MakeProvider, keystore_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A crash (kill -9) can leave any temporary file behind: each must carry a name the
    # stale-file sweep recognises, or it would stay forever beside the keystore.
    written: list[str] = []
    real = write_new_file  # what the keystore module calls

    def recording(target: Path, content: bytes) -> None:
        written.append(target.name)
        real(target, content)

    monkeypatch.setattr(keystore_module, "write_new_file", recording)
    make_provider().create_key("k", KeySpec(key_type="aes-256"))

    assert len(written) == 2
    assert re.fullmatch(r"\.master\.key\.[0-9a-f]{16}\.tmp", written[0])
    assert re.fullmatch(r"\.keystore\.json\.[0-9a-f]{16}\.tmp", written[1])
    assert sorted(p.name for p in keystore_dir.iterdir()) == [
        "keystore.json",
        "keystore.lock",
        "master.key",
    ]


def test_a_keystore_file_that_goes_away_and_comes_back_is_read_again(
    make_provider: MakeProvider, keystore_dir: Path, tmp_path: Path
) -> None:
    writer = make_provider()
    writer.create_key("k", KeySpec(key_type="aes-256"))
    reader = make_provider(recheck_interval=0)
    assert [m.uri for m in reader.list_keys()] == ["local://k"]

    aside = tmp_path / "aside.json"
    (keystore_dir / "keystore.json").rename(aside)  # e.g. a restore in progress
    assert reader.list_keys() == []
    with pytest.raises(KeystoreCorrupted, match=r"has no keystore\.json, but it existed"):
        reader.create_key("fresh", KeySpec(key_type="aes-256"))  # never a new one in place
    aside.rename(keystore_dir / "keystore.json")
    assert [m.uri for m in reader.list_keys()] == ["local://k"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.usefixtures("permissive_umask")
def test_a_new_keystore_directory_is_0700_from_its_creation_with_its_parents(
    make_provider: MakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Made 0700 by mkdir itself, not opened up first and tightened after.
    directory = tmp_path / "deep" / "er" / "keystore"
    tightened: list[str] = []
    real_chmod = os.chmod

    def chmod(path: Any, mode: int, **kwargs: Any) -> None:
        tightened.append(str(path))
        real_chmod(path, mode, **kwargs)

    monkeypatch.setattr(os, "chmod", chmod)
    make_provider(directory).create_key("k", KeySpec(key_type="aes-256"))

    assert mode_of(directory) == 0o700
    assert str(directory) not in tightened
    assert (directory / "keystore.json").exists()


def test_a_key_update_whose_keystore_is_removed_meanwhile_recreates_nothing(
    filled: LocalKeyProvider, keystore_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process removes the keystore between the update's check and its read.

    The update reports the key as not found and leaves no new directory, master key or
    empty keystore behind (a new master key would look like a keystore of its own).
    """
    store = filled.keystore
    read = store.snapshot

    def removed_first() -> Any:
        shutil.rmtree(keystore_dir)
        return read()

    monkeypatch.setattr(store, "snapshot", removed_first)
    with pytest.raises(KeyNotFound) as refused:
        store.update_key("w", lambda record: attrs.evolve(record, description="changed"))
    assert str(refused.value).startswith("no key local://w in keystore ")
    assert not keystore_dir.exists()
