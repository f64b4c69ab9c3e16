"""The keystore's administration: its options, repr and info, passphrase changes, key creation.

What an operator configures and reads back, and what a passphrase change must keep: the usage
counters it carries, the passphrase and pins of the process that made it, and the other
processes that read the keystore after it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aureus_core.context import EncryptionContext
from aureus_core.errors import (
    ConfigError,
    CredentialError,
    KeyExists,
    KeyNotFound,
    KeystoreCorrupted,
)
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec
from aureus_core.sensitive import Secret
from aureus_local import LocalKeyProvider
from aureus_local.keystore import Keystore, KeystoreInfo, check_scrypt_log_n

MakeProvider = Callable[..., LocalKeyProvider]
CONTEXT = EncryptionContext(app="admin")
OLD = "correct horse battery staple"
NEW = "a new and longer passphrase, 2031"
ID_REFUSAL = (
    "the local provider's {option} must be 32 lowercase hex digits as "
    "`aureus keys keystore-info` prints it, not {value!r}"
)


def ref(uri: str) -> KeyRef:
    return KeyRef.parse(uri)


def stored(directory: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((directory / "keystore.json").read_text())
    return result


def stored_messages(directory: Path, name: str) -> list[int]:
    return [v["messages"] for v in stored(directory)["keys"][name]["versions"]]


# -- options ------------------------------------------------------------------------------


def test_a_keystore_refuses_cheap_scrypt_unless_told_it_is_for_tests(tmp_path: Path) -> None:
    strong = (
        "scrypt_log_n must be a whole number from 17 to 20 (lower values are for test suites: "
        "insecure_kdf_for_tests), not 10"
    )
    with pytest.raises(ConfigError) as caught:
        Keystore(tmp_path / "ks", passphrase=Secret(OLD), scrypt_log_n=10)
    assert str(caught.value) == strong
    with pytest.raises(ConfigError) as caught:
        check_scrypt_log_n(10)
    assert str(caught.value) == strong
    assert check_scrypt_log_n(10, insecure=True) == 10
    with pytest.raises(ConfigError) as caught:
        check_scrypt_log_n(9, insecure=True)
    assert str(caught.value) == "scrypt_log_n must be a whole number from 10 to 20, not 9"
    Keystore(tmp_path / "ks", passphrase=Secret(OLD), scrypt_log_n=10, insecure_kdf_for_tests=True)


@pytest.mark.parametrize(
    "value",
    [
        "0123456789abcdef0123456789abcde",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef0123456789abcdeX",
        12345,
    ],
)
@pytest.mark.parametrize(
    ("argument", "option"),
    [("keystore_id", "keystore_id"), ("fingerprint", "keystore_fingerprint")],
)
def test_a_pin_is_32_lowercase_hex_digits(
    tmp_path: Path, argument: str, option: str, value: object
) -> None:
    """Too short (31 digits), upper case, or not a string at all: each is refused by name."""
    with pytest.raises(ConfigError) as caught:
        Keystore(tmp_path / "ks", **{argument: value})  # type: ignore[arg-type]
    assert str(caught.value) == ID_REFUSAL.format(option=option, value=value)
    Keystore(tmp_path / "ks", **{argument: "0123456789abcdef" * 2})  # type: ignore[arg-type]


def test_one_wrap_per_version_is_the_smallest_limit(tmp_path: Path) -> None:
    Keystore(tmp_path / "ks", max_wraps_per_version=1)
    with pytest.raises(ConfigError, match=r"max_wraps_per_version must be a whole number from 1"):
        Keystore(tmp_path / "ks", max_wraps_per_version=0)


@pytest.mark.parametrize("value", [True, 61, -0.5, "1"])
def test_the_recheck_interval_is_a_number_of_seconds_from_0_to_60(
    tmp_path: Path, value: object
) -> None:
    with pytest.raises(ConfigError) as caught:
        Keystore(tmp_path / "ks", recheck_interval=value)  # type: ignore[arg-type]
    assert str(caught.value) == (
        f"recheck_interval must be a number of seconds from 0 to 60, not {value!r}"
    )
    for accepted in (0, 60, 0.25):
        Keystore(tmp_path / "ks", recheck_interval=accepted)


def test_the_repr_names_the_directory_and_how_it_unlocks(tmp_path: Path) -> None:
    directory = tmp_path / "ks"
    assert repr(Keystore(directory)) == f"Keystore({str(directory)!r}, unlock='key file')"
    assert repr(Keystore(directory, passphrase=Secret(OLD))) == (
        f"Keystore({str(directory)!r}, unlock='passphrase')"
    )


# -- info ---------------------------------------------------------------------------------


def test_info_of_a_key_file_and_of_a_passphrase_keystore(
    make_provider: MakeProvider, tmp_path: Path
) -> None:
    key_file = make_provider(tmp_path / "a")
    key_file.create_key("k", KeySpec(key_type="aes-256"))
    info = key_file.keystore_info()
    document = stored(tmp_path / "a")
    assert info == KeystoreInfo(
        directory=tmp_path / "a",
        keystore_id=document["keystore_id"],
        fingerprint=info.fingerprint,
        generation=1,
        unlock="key-file",
        scrypt_log_n=None,
    )
    assert len(info.fingerprint) == 32
    assert info.to_dict() == {
        "directory": str(tmp_path / "a"),
        "keystore_id": document["keystore_id"],
        "fingerprint": info.fingerprint,
        "generation": 1,
        "unlock": "key-file",
        "scrypt_log_n": None,
    }
    sealed = make_provider(tmp_path / "b", passphrase=Secret(OLD), scrypt_log_n=10)
    sealed.create_key("k", KeySpec(key_type="aes-256"))
    sealed.create_key("l", KeySpec(key_type="aes-256"))
    assert sealed.keystore_info().to_dict() == {
        "directory": str(tmp_path / "b"),
        "keystore_id": stored(tmp_path / "b")["keystore_id"],
        "fingerprint": sealed.keystore_info().fingerprint,
        "generation": 2,
        "unlock": "passphrase",
        "scrypt_log_n": 10,
    }


def test_info_of_a_keystore_not_made_yet_says_how_it_is_made(
    local_provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    with pytest.raises(KeyNotFound) as caught:
        local_provider.keystore_info()
    assert str(caught.value) == (
        f"keystore {keystore_dir} has no keystore.json yet: it is created with the first key "
        "(`aureus keys create`)"
    )
    assert caught.value.provider == "local"


# -- passphrase changes -------------------------------------------------------------------


def test_change_passphrase_refusals_word_for_word(
    make_provider: MakeProvider, keystore_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = make_provider(passphrase=Secret(OLD), scrypt_log_n=10)
    with pytest.raises(CredentialError) as caught:
        provider.change_passphrase(Secret(""))
    assert str(caught.value) == "the new passphrase is empty: choose a non-empty one"
    with pytest.raises(KeyNotFound) as missing:
        provider.change_passphrase(Secret(NEW))
    assert str(missing.value) == (
        f"keystore {keystore_dir} has no keystore.json: there is nothing to re-seal"
    )
    assert missing.value.provider == "local"
    provider.create_key("k", KeySpec(key_type="aes-256"))
    # Removed by another process between the check and the read, under the lock.
    monkeypatch.setattr(provider.keystore, "_read_file", lambda: None)
    with pytest.raises(KeyNotFound) as raced:
        provider.change_passphrase(Secret(NEW))
    assert str(raced.value) == f"keystore {keystore_dir} has no keystore.json"
    assert raced.value.provider == "local"
    monkeypatch.undo()
    key_file = make_provider(keystore_dir.parent / "key-file")
    key_file.create_key("k", KeySpec(key_type="aes-256"))
    with pytest.raises(ConfigError) as caught_config:
        key_file.change_passphrase(Secret(NEW))
    assert str(caught_config.value) == (
        f"keystore {keystore_dir.parent / 'key-file'} is unlocked by its key file master.key, "
        "not a passphrase: there is no passphrase to change (converting a key-file keystore "
        "is not supported)"
    )


def test_a_change_carries_the_unflushed_counts_once(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    provider = make_provider(passphrase=Secret(OLD), scrypt_log_n=10, usage_flush_operations=1000)
    provider.create_key("s", KeySpec(key_type="ed25519"))
    for _ in range(3):
        provider.sign(ref("local://s"), b"release")
    assert stored_messages(keystore_dir, "s") == [0]
    provider.change_passphrase(Secret(NEW))
    assert stored_messages(keystore_dir, "s") == [3]  # written with the re-sealed document
    provider.flush_usage()
    provider.close()
    assert stored_messages(keystore_dir, "s") == [3]  # and not counted again


def test_counts_a_failed_change_took_are_written_later(
    make_provider: MakeProvider, keystore_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = make_provider(passphrase=Secret(OLD), scrypt_log_n=10, usage_flush_operations=1000)
    provider.create_key("s", KeySpec(key_type="ed25519"))
    provider.sign(ref("local://s"), b"release")
    provider.sign(ref("local://s"), b"release")

    def fail(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(provider.keystore, "_commit", fail)
    with pytest.raises(OSError, match="disk full"):
        provider.change_passphrase(Secret(NEW))
    monkeypatch.undo()
    assert stored_messages(keystore_dir, "s") == [0]
    provider.flush_usage()
    assert stored_messages(keystore_dir, "s") == [2]
    assert make_provider(
        passphrase=Secret(OLD), scrypt_log_n=10
    ).list_keys()  # the old passphrase still opens


def test_the_process_that_changed_the_passphrase_reopens_with_the_new_one(
    make_provider: MakeProvider,
) -> None:
    provider = make_provider(passphrase=Secret(OLD), scrypt_log_n=10)
    provider.create_key("k", KeySpec(key_type="aes-256"))
    provider.change_passphrase(Secret(NEW))
    provider.close()  # forgets the derived master key: the next read derives it again
    assert [m.uri for m in provider.list_keys()] == ["local://k"]


def test_a_fingerprint_pin_follows_the_change_for_reads_after_other_writers(
    make_provider: MakeProvider,
) -> None:
    writer = make_provider(passphrase=Secret(OLD), scrypt_log_n=10)
    writer.create_key("k", KeySpec(key_type="aes-256"))
    pinned = make_provider(
        passphrase=Secret(OLD),
        scrypt_log_n=10,
        fingerprint=writer.keystore_info().fingerprint,
        recheck_interval=0,
    )
    info = pinned.change_passphrase(Secret(NEW))
    # Another process writes: the pinned provider reads and verifies the file again.
    make_provider(passphrase=Secret(NEW), scrypt_log_n=10, fingerprint=info.fingerprint).create_key(
        "after", KeySpec(key_type="aes-256")
    )
    assert sorted(m.uri for m in pinned.list_keys()) == ["local://after", "local://k"]
    # Its pin is the new fingerprint, not none: a re-seal it did not make is refused.
    make_provider(passphrase=Secret(NEW), scrypt_log_n=10).change_passphrase(Secret(NEW))
    with pytest.raises(KeystoreCorrupted, match="unless its passphrase was changed"):
        pinned.list_keys()


def test_a_reader_follows_a_change_to_the_same_passphrase_at_a_new_salt(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    """Another process re-seals under the same passphrase: the reader derives the key again."""
    reader = make_provider(passphrase=Secret(OLD), scrypt_log_n=10, recheck_interval=0)
    reader.create_key("k", KeySpec(key_type="aes-256"))
    salt = stored(keystore_dir)["master_key"]["salt"]
    make_provider(passphrase=Secret(OLD), scrypt_log_n=10).change_passphrase(Secret(OLD))
    assert stored(keystore_dir)["master_key"]["salt"] != salt
    assert [m.uri for m in reader.list_keys()] == ["local://k"]
    reader.create_key("l", KeySpec(key_type="aes-256"))  # and writes under the new master key
    assert len(make_provider(passphrase=Secret(OLD), scrypt_log_n=10).list_keys()) == 2


def test_a_closed_passphrase_keystore_opens_again(make_provider: MakeProvider) -> None:
    provider = make_provider(passphrase=Secret(OLD), scrypt_log_n=10)
    provider.create_key("k", KeySpec(key_type="aes-256"))
    provider.close()
    assert [m.uri for m in provider.list_keys()] == ["local://k"]
    provider.close()
    provider.create_key("l", KeySpec(key_type="aes-256"))


# -- keys, counters, files ----------------------------------------------------------------


def test_a_taken_name_is_refused_word_for_word(
    local_provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    local_provider.create_key("k", KeySpec(key_type="aes-256"))
    with pytest.raises(KeyExists) as caught:
        local_provider.create_key("k", KeySpec(key_type="aes-256"))
    assert str(caught.value) == (
        f"key local://k already exists in keystore {keystore_dir}: pick another name, or "
        "rotate the existing key to get new material"
    )
    assert caught.value.provider == "local"


def test_a_process_that_opens_a_keystore_counts_from_zero(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    """The first uses of a new keystore object flush after exactly N of them."""
    make_provider().create_key("s", KeySpec(key_type="ed25519"))
    user = make_provider(usage_flush_operations=2, monotonic=lambda: 0.0)
    user.sign(ref("local://s"), b"one")
    assert stored_messages(keystore_dir, "s") == [0]
    user.sign(ref("local://s"), b"two")
    assert stored_messages(keystore_dir, "s") == [2]


def test_import_parameters_on_an_existing_keystore_write_nothing_to_it(
    local_provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    local_provider.create_key("k", KeySpec(key_type="aes-256"))
    before = (keystore_dir / "keystore.json").read_bytes()
    local_provider.import_parameters("new", KeySpec(key_type="aes-256"))
    assert (keystore_dir / "keystore.json").read_bytes() == before


def test_only_temporary_files_of_the_keystore_are_cleaned_up(
    local_provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    local_provider.create_key("k", KeySpec(key_type="aes-256"))
    stale = [keystore_dir / ".keystore.json.0a1b.tmp", keystore_dir / ".master.key.0a1b.tmp"]
    kept = [
        keystore_dir / "notes.tmp",  # the suffix alone
        keystore_dir / ".keystore.json.0a1b.bak",  # the prefix alone
    ]
    for path in (*stale, *kept):
        path.write_bytes(b"x")
    local_provider.create_key("l", KeySpec(key_type="aes-256"))
    assert [path.exists() for path in stale] == [False, False]
    assert [path.exists() for path in kept] == [True, True]


def test_a_new_keystore_is_dated_by_the_providers_clock(
    local_provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    local_provider.create_key("k", KeySpec(key_type="aes-256"))
    assert stored(keystore_dir)["created_at"] == "2030-01-01T12:00:00+00:00"  # conftest.START


def test_counts_flush_when_the_interval_has_passed(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    now = [0.0]
    provider = make_provider(
        usage_flush_interval=30, usage_flush_operations=1000, monotonic=lambda: now[0]
    )
    provider.create_key("s", KeySpec(key_type="ed25519"))
    provider.sign(ref("local://s"), b"one")
    now[0] = 29.0
    provider.sign(ref("local://s"), b"two")
    assert stored_messages(keystore_dir, "s") == [0]
    now[0] = 30.0
    provider.sign(ref("local://s"), b"three")
    assert stored_messages(keystore_dir, "s") == [3]


def test_a_flush_that_fails_is_logged_with_the_keystore_and_the_reason(
    make_provider: MakeProvider,
    keystore_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A counter must not break an encryption: the failed flush is a warning, then a retry."""
    provider = make_provider(usage_flush_operations=1)
    provider.create_key("s", KeySpec(key_type="ed25519"))

    def fail(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(provider.keystore, "_write", fail)
    with caplog.at_level(logging.WARNING, logger="aureus_local.keystore"):
        provider.sign(ref("local://s"), b"one")
    assert [r.getMessage() for r in caplog.records] == [
        f"usage counters of keystore {keystore_dir} not saved yet: disk full"
    ]
    monkeypatch.undo()
    provider.sign(ref("local://s"), b"two")
    assert stored_messages(keystore_dir, "s") == [2]


@pytest.mark.parametrize("planted", ["world-readable", "group-writable", "another-owner"])
def test_a_master_key_file_planted_before_the_keystore_exists_is_not_adopted(
    tmp_path: Path, planted: str
) -> None:
    """Someone who can write to the keystore directory before its first key places a
    master.key of their own. Before, the first create_key adopted it: its placer could open
    every key sealed under it, and the fingerprint the operator pins vouched for it."""
    import os

    from aureus_core.errors import KeystoreCorrupted

    directory = tmp_path / "ks"
    directory.mkdir()
    planted_key = directory / "master.key"
    planted_key.write_bytes(b"A" * 32)
    if planted == "world-readable":
        planted_key.chmod(0o644)
    elif planted == "group-writable":
        planted_key.chmod(0o620)
    else:
        if os.geteuid() != 0:
            pytest.skip("giving a file to another owner needs root")
        planted_key.chmod(0o600)
        os.chown(planted_key, 12345, 12345)
    provider = LocalKeyProvider(directory, insecure_kdf_for_tests=True)
    with pytest.raises(KeystoreCorrupted) as refused:
        provider.create_key("payments", KeySpec(key_type="aes-256"))
    assert str(refused.value).startswith(
        f"keystore {directory} has no keystore.json yet, but has a master.key that this user "
        "did not create as Aureus does (owner uid "
    )
    assert "Delete it if you do not know where it came from" in str(refused.value)
    assert refused.value.provider == "local"
    assert not (directory / "keystore.json").exists()
    provider.close()
    # Deleted, the keystore is created with a key of its own.
    planted_key.unlink()
    provider = LocalKeyProvider(directory, insecure_kdf_for_tests=True)
    provider.create_key("payments", KeySpec(key_type="aes-256"))
    assert planted_key.read_bytes() != b"A" * 32
    assert planted_key.stat().st_mode & 0o777 == 0o600
    provider.close()


def test_a_master_key_file_this_user_left_is_adopted(tmp_path: Path) -> None:
    """A crash between master.key and keystore.json leaves a key Aureus made: owned by this
    user, mode 0600. The next create uses it (the crash tests kill inside that window)."""
    directory = tmp_path / "ks"
    directory.mkdir()
    leftover = directory / "master.key"
    leftover.write_bytes(b"B" * 32)
    leftover.chmod(0o600)
    provider = LocalKeyProvider(directory, insecure_kdf_for_tests=True)
    provider.create_key("payments", KeySpec(key_type="aes-256"))
    provider.close()
    assert leftover.read_bytes() == b"B" * 32


def test_a_master_key_file_planted_while_the_keystore_is_being_created_is_not_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the file is placed after the check that none exists and before this
    process links its own into place. The key that won the race is checked like any
    other found in place."""
    import os

    from aureus_core.errors import KeystoreCorrupted

    directory = tmp_path / "ks"
    directory.mkdir()
    real_link = os.link

    def planted_first(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        Path(target).write_bytes(b"A" * 32)
        Path(target).chmod(0o644)
        real_link(source, target)  # raises FileExistsError, as a lost race does

    monkeypatch.setattr("aureus_local.keystore.os.link", planted_first)
    provider = LocalKeyProvider(directory, insecure_kdf_for_tests=True)
    with pytest.raises(KeystoreCorrupted, match="that this user did not create as Aureus does"):
        provider.create_key("payments", KeySpec(key_type="aes-256"))
    provider.close()


def test_an_existing_keystores_master_key_is_vouched_for_by_the_keystore_not_its_mode(
    tmp_path: Path,
) -> None:
    """Once keystore.json exists, its verifier and MAC decide whether master.key is the
    right key: a copy restored with looser permissions still opens (the adoption check is
    for a keystore that does not exist yet)."""
    directory = tmp_path / "ks"
    provider = LocalKeyProvider(directory, insecure_kdf_for_tests=True)
    provider.create_key("payments", KeySpec(key_type="aes-256"))
    provider.close()
    (directory / "master.key").chmod(0o640)
    reopened = LocalKeyProvider(directory, insecure_kdf_for_tests=True)
    assert reopened.describe_key(KeyRef.parse("local://payments")).current_version == "1"
    reopened.close()
