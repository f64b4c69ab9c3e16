"""``aureus keys keystore-info`` and ``aureus keys passphrase`` on a local keystore."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aureus_core.cli import main
from aureus_core.testing.audit_capture import capture_audit

OLD = "correct horse battery staple"
NEW = "a new and longer passphrase, 2031"

Run = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """The CLI on a passphrase keystore in ``tmp_path/ks``, configured by ``aureus.toml``."""
    monkeypatch.delenv("AUREUS_CONFIG", raising=False)
    monkeypatch.delenv("AUREUS_KEYSTORE", raising=False)
    monkeypatch.setenv("AUREUS_KEYSTORE_PASSPHRASE", OLD)
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, extra: str = "", input: str | None = None) -> Result:
        (tmp_path / "aureus.toml").write_text(
            "[providers.local]\n"
            'keystore = "ks"\n'
            'state_file = "state/keystores.json"\n'
            "scrypt_log_n = 10\n"
            "insecure_kdf_for_tests = true\n" + extra
        )
        return CliRunner().invoke(
            main, ["--config", "aureus.toml", *args], input=input, catch_exceptions=False
        )

    return invoke


def test_keystore_info_prints_what_to_pin(run: Run, tmp_path: Path) -> None:
    assert run("keys", "create", "payments", "--type", "aes-256").exit_code == 0
    run("keys", "rotate", "local://payments")
    info = json.loads(run("keys", "keystore-info", "--json").stdout)
    document = json.loads((tmp_path / "ks" / "keystore.json").read_text())
    assert info["keystore_id"] == document["keystore_id"]
    assert (info["generation"], info["unlock"], info["scrypt_log_n"]) == (2, "passphrase", 10)
    assert len(info["fingerprint"]) == 32
    state = json.loads((tmp_path / "state" / "keystores.json").read_text())
    assert state["keystores"] == {info["keystore_id"]: {"generation": 2}}

    text = run("keys", "keystore-info").stdout
    assert f'  keystore_id = "{info["keystore_id"]}"\n' in text
    assert f'  keystore_fingerprint = "{info["fingerprint"]}"\n' in text
    assert "  min_generation = 2\n" in text
    assert OLD not in text

    pins = (
        f'keystore_id = "{info["keystore_id"]}"\n'
        f'keystore_fingerprint = "{info["fingerprint"]}"\n'
        "min_generation = 2\n"
    )
    assert run("keys", "list", extra=pins).stdout.startswith("local://payments  aes-256  v2")
    wrong = run("keys", "list", extra=pins.replace(info["fingerprint"], "0" * 32))
    assert wrong.exit_code == 2
    assert wrong.stderr.startswith("aureus: error: keystore file ")
    assert f"its fingerprint is {info['fingerprint']}, but the configuration pins" in wrong.stderr


def test_keys_passphrase_reseals(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    run("keys", "create", "payments", "--type", "aes-256")
    before = json.loads(run("keys", "keystore-info", "--json").stdout)
    monkeypatch.setenv("NEW_KEYSTORE_PASSPHRASE", NEW)
    changed = run("keys", "passphrase", "--new-passphrase-env", "NEW_KEYSTORE_PASSPHRASE")
    assert changed.exit_code == 0, changed.stderr
    assert NEW not in changed.stdout
    assert OLD not in changed.stdout
    stale = run("keys", "list")
    assert stale.exit_code == 2
    assert "wrong passphrase" in stale.stderr
    monkeypatch.setenv("AUREUS_KEYSTORE_PASSPHRASE", NEW)
    after = json.loads(run("keys", "keystore-info", "--json").stdout)
    assert after["keystore_id"] == before["keystore_id"]
    assert after["generation"] == before["generation"] + 1
    assert f"its fingerprint is now {after['fingerprint']}" in changed.stdout

    prompted = run("keys", "passphrase", input=f"{OLD}\n{OLD}\n")
    assert prompted.exit_code == 0, prompted.stderr
    monkeypatch.setenv("AUREUS_KEYSTORE_PASSPHRASE", OLD)
    assert run("keys", "list").stdout.startswith("local://payments")

    monkeypatch.setenv("EMPTY_PASSPHRASE", "")
    empty = run("keys", "passphrase", "--new-passphrase-env", "EMPTY_PASSPHRASE")
    assert (empty.exit_code, empty.stderr) == (
        2,
        "aureus: error: environment variable EMPTY_PASSPHRASE is unset or empty\n",
    )


def test_a_passphrase_change_is_audited_without_the_passphrase(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("keys", "create", "payments", "--type", "aes-256")
    monkeypatch.setenv("NEW_KEYSTORE_PASSPHRASE", NEW)
    with capture_audit() as events:
        changed = run("keys", "passphrase", "--new-passphrase-env", "NEW_KEYSTORE_PASSPHRASE")
    assert changed.exit_code == 0, changed.stderr
    monkeypatch.setenv("AUREUS_KEYSTORE_PASSPHRASE", NEW)
    info = json.loads(run("keys", "keystore-info", "--json").stdout)
    mine = [e for e in events if e["operation"] == "keystore_passphrase"]
    assert [(e["phase"], e["outcome"]) for e in mine] == [("request", "pending"), ("outcome", "ok")]
    assert mine[1]["provider"] == "local"
    assert mine[1]["details"] == {
        "fingerprint": info["fingerprint"],
        "generation": str(info["generation"]),
    }
    assert NEW not in repr(events)
    assert OLD not in repr(events)
