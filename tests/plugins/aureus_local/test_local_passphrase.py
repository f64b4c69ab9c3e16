"""The passphrase KDF: a strong default, weak costs refused unless forced, and re-sealing."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import aureus_core
import aureus_local
from aureus_core.context import EncryptionContext
from aureus_core.errors import ConfigError, CredentialError, KeystoreCorrupted
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyState
from aureus_core.sensitive import Secret
from aureus_local import LocalKeyProvider

MakeProvider = Callable[..., LocalKeyProvider]
CONTEXT = EncryptionContext(app="passphrase")
DATA_KEY = bytes(range(32))
OLD = "correct horse battery staple"
NEW = "a new and longer passphrase, 2031"
WORKER = Path(__file__).with_name("_keystore_worker.py")


def ref(uri: str) -> KeyRef:
    return KeyRef.parse(uri)


def stored(directory: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((directory / "keystore.json").read_text())
    return result


def sealed_material(directory: Path) -> list[Any]:
    return [
        (name, v["version"], v["nonce"], v["ciphertext"])
        for name, key in sorted(stored(directory)["keys"].items())
        for v in key["versions"]
    ]


def test_new_passphrase_keystores_use_scrypt_2_17(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider = LocalKeyProvider(tmp_path / "ks", passphrase=Secret(OLD))
    provider.create_key("k", KeySpec(key_type="aes-256"))
    master = stored(tmp_path / "ks")["master_key"]
    assert (master["kdf"], master["log_n"], master["r"], master["p"]) == ("scrypt", 17, 8, 1)
    assert provider.keystore_info().scrypt_log_n == 17
    provider.close()
    # The default cost is not "weaker than the default": opening it warns of nothing.
    with caplog.at_level(logging.WARNING, logger="aureus_local.keystore"):
        reader = LocalKeyProvider(tmp_path / "ks", passphrase=Secret(OLD))
        assert [m.uri for m in reader.list_keys()] == ["local://k"]
    assert "below the 2**17" not in caplog.text
    reader.close()


@pytest.mark.parametrize("log_n", [10, 14, 15, 16])
def test_weak_scrypt_costs_are_refused_unless_forced_for_tests(tmp_path: Path, log_n: int) -> None:
    with pytest.raises(ConfigError) as refused:
        LocalKeyProvider(tmp_path, passphrase=Secret(OLD), scrypt_log_n=log_n)
    assert str(refused.value) == (
        "scrypt_log_n must be a whole number from 17 to 20 (lower values are for test "
        f"suites: insecure_kdf_for_tests), not {log_n}"
    )
    forced = LocalKeyProvider(
        tmp_path, passphrase=Secret(OLD), scrypt_log_n=log_n, insecure_kdf_for_tests=True
    )
    assert forced.list_keys() == []
    with pytest.raises(ConfigError, match="from 10 to 20"):
        LocalKeyProvider(tmp_path, scrypt_log_n=9, insecure_kdf_for_tests=True)


def test_a_keystore_with_weaker_recorded_costs_still_opens_and_says_so(
    make_provider: MakeProvider, keystore_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    weak = make_provider(passphrase=Secret(OLD), scrypt_log_n=10)
    weak.create_key("w", KeySpec(key_type="aes-256"))
    wrapped = weak.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    with caplog.at_level(logging.WARNING, logger="aureus_local.keystore"):
        reader = make_provider(passphrase=Secret(OLD), insecure_kdf_for_tests=False)
        assert reader.unwrap(wrapped.key, wrapped.encrypted, CONTEXT) == DATA_KEY
    assert [r.getMessage() for r in caplog.records if "scrypt" in r.getMessage()] == [
        f"keystore {keystore_dir} derives its master key with scrypt N=2**10, below the 2**17 "
        "new keystores use: re-seal it with `aureus keys passphrase`"
    ]
    assert OLD not in caplog.text


def filled(make_provider: MakeProvider, passphrase: str) -> tuple[LocalKeyProvider, Any, Any]:
    provider = make_provider(passphrase=Secret(passphrase), scrypt_log_n=10)
    provider.create_key("w", KeySpec(key_type="aes-256"))
    provider.create_key("s", KeySpec(key_type="ecdsa-p256"))
    wrapped = provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    signature = provider.sign(ref("local://s"), b"release")
    provider.rotate_key(ref("local://w"))
    provider.set_version_state(ref("local://w?version=1"), KeyState.DISABLED)
    provider.destroy_version(ref("local://w?version=1"), confirm=True)
    provider.rotate_key(ref("local://s"))
    return provider, wrapped, signature


def test_change_passphrase_reseals_every_version(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    provider, _, signature = filled(make_provider, OLD)
    fresh = provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    before = stored(keystore_dir)
    material = sealed_material(keystore_dir)
    info_before = provider.keystore_info()

    info = provider.change_passphrase(Secret(NEW))

    after = stored(keystore_dir)
    assert after["keystore_id"] == before["keystore_id"]
    assert after["generation"] == before["generation"] + 1 == info.generation
    assert after["master_key"]["salt"] != before["master_key"]["salt"]
    assert after["verifier"] != before["verifier"]
    assert info.fingerprint != info_before.fingerprint
    resealed = sealed_material(keystore_dir)
    assert [m[:2] for m in resealed] == [m[:2] for m in material]
    for old, new in zip(material, resealed, strict=True):
        if old[2] is None:  # destroyed: still nothing
            assert new[2:] == (None, None)
        else:
            assert old[2:] != new[2:]
    # The same provider keeps working; the counters and states carried over.
    assert provider.unwrap(fresh.key, fresh.encrypted, CONTEXT) == DATA_KEY
    assert provider.describe_key(ref("local://w")).version_info("1").state is KeyState.DESTROYED

    with pytest.raises(CredentialError, match="wrong passphrase"):
        make_provider(passphrase=Secret(OLD)).list_keys()
    reader = make_provider(passphrase=Secret(NEW))
    assert reader.unwrap(fresh.key, fresh.encrypted, CONTEXT) == DATA_KEY
    assert reader.verify(ref("local://s?version=1"), b"release", signature.value) is True
    assert reader.keystore_info() == info


def test_the_same_passphrase_moves_an_old_keystore_to_the_current_cost(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    old, _, _ = filled(make_provider, OLD)
    old.close()
    assert stored(keystore_dir)["master_key"]["log_n"] == 10
    strong = make_provider(passphrase=Secret(OLD), insecure_kdf_for_tests=False)
    strong.change_passphrase(Secret(OLD))
    assert stored(keystore_dir)["master_key"]["log_n"] == 17
    assert make_provider(passphrase=Secret(OLD)).describe_key(ref("local://s")).current_version


def test_a_fingerprint_pin_follows_a_change_made_by_the_same_provider(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    provider, _, _ = filled(make_provider, OLD)
    pin = provider.keystore_info().fingerprint
    pinned = make_provider(passphrase=Secret(OLD), fingerprint=pin)
    info = pinned.change_passphrase(Secret(NEW))
    pinned.rotate_key(ref("local://w"))  # still opens: its pin moved with the change
    with pytest.raises(KeystoreCorrupted, match="unless its passphrase was changed"):
        make_provider(passphrase=Secret(NEW), fingerprint=pin).list_keys()
    assert make_provider(passphrase=Secret(NEW), fingerprint=info.fingerprint).list_keys()


def test_change_passphrase_refusals(local_provider: LocalKeyProvider, tmp_path: Path) -> None:
    with pytest.raises(aureus_core.errors.KeyNotFound, match="nothing to re-seal"):
        local_provider.change_passphrase(Secret(NEW))
    local_provider.create_key("k", KeySpec(key_type="aes-256"))
    with pytest.raises(ConfigError, match=r"unlocked by its key file master\.key"):
        local_provider.change_passphrase(Secret(NEW))
    with pytest.raises(CredentialError, match="empty"):
        local_provider.change_passphrase(Secret(""))


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [
            str(Path(aureus_local.__file__).resolve().parents[1]),
            str(Path(aureus_core.__file__).resolve().parents[1]),
            *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []),
        ]
    )
    env["AUREUS_KEYSTORE_PASSPHRASE"] = OLD
    env["AUREUS_TEST_NEW_PASSPHRASE"] = NEW
    return env


@pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")
@pytest.mark.parametrize("kill_at", [1, 2, 3])
def test_a_crash_during_the_change_leaves_the_old_or_the_new_keystore(
    make_provider: MakeProvider, keystore_dir: Path, kill_at: int
) -> None:
    provider, _, signature = filled(make_provider, OLD)
    fresh = provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    provider.close()
    env = worker_env()
    env["AUREUS_TEST_KILL_AT_FSYNC"] = str(kill_at)
    worker = subprocess.run(
        [sys.executable, str(WORKER), "passphrase", str(keystore_dir), "-", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    opened = []
    for passphrase in (OLD, NEW):
        reader = make_provider(passphrase=Secret(passphrase))
        try:
            assert reader.unwrap(fresh.key, fresh.encrypted, CONTEXT) == DATA_KEY
            assert reader.verify(ref("local://s?version=1"), b"release", signature.value)
        except CredentialError:
            continue
        opened.append(passphrase)
    # fsync 1: the complete new file, before its rename; 2: the directory, after it.
    expected = {
        1: (-signal.SIGKILL, "", [OLD]),
        2: (-signal.SIGKILL, "", [NEW]),
        3: (0, "changed\n", [NEW]),
    }
    assert (worker.returncode, worker.stdout, opened) == expected[kill_at], worker.stderr[-2000:]
    # The next writer removes what a killed one left behind.
    make_provider(passphrase=Secret(opened[0])).rotate_key(ref("local://w"))
    assert [p.name for p in keystore_dir.iterdir() if p.name.endswith(".tmp")] == []
