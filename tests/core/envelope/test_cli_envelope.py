import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

AUREUS = str(Path(sys.executable).with_name("aureus"))


@pytest.fixture
def cli(tmp_path):
    env = {**os.environ, "AUREUS_KEYSTORE": str(tmp_path / "ks")}
    env.pop("AUREUS_CONFIG", None)

    def run(*args, input=None, check=False):
        return subprocess.run(
            [AUREUS, *args], cwd=tmp_path, env=env, input=input, capture_output=True, check=check
        )

    run("keys", "create", "data", "--type", "aes-256", check=True)
    run("keys", "create", "backup", "--type", "aes-256", check=True)
    return run


def test_file_round_trip_with_context_and_two_keys(cli, tmp_path):
    (tmp_path / "plain.bin").write_bytes(os.urandom(200_000))
    encrypted = cli(
        "encrypt",
        "--key",
        "local://data",
        "--key",
        "local://backup",
        "--context",
        "tenant=acme",
        "--context",
        "purpose=backup",
        "--frame-length",
        "4096",
        "-o",
        "msg.aes",
        "plain.bin",
    )
    assert encrypted.returncode == 0, encrypted.stderr
    info = json.loads(cli("inspect", "--json", "msg.aes").stdout)
    assert info["suite"] == "0x0478"
    assert info["encryption_context"] == {"tenant": "acme", "purpose": "backup"}
    assert [k["key"] for k in info["encrypted_data_keys"]] == ["data:1", "backup:1"]
    assert info["frame_length"] == 4096
    decrypted = cli(
        "decrypt", "--key", "local://backup", "--context", "tenant=acme", "-o", "out.bin", "msg.aes"
    )
    assert decrypted.returncode == 0, decrypted.stderr
    assert (tmp_path / "out.bin").read_bytes() == (tmp_path / "plain.bin").read_bytes()


def test_pipes_and_signed(cli):
    encrypted = cli("encrypt", "--key", "local://data", "--signed", input=b"piped data")
    assert encrypted.returncode == 0
    text = cli("inspect", input=encrypted.stdout).stdout.decode()
    assert "0x0578" in text
    assert "signed:         yes" in text
    decrypted = cli("decrypt", input=encrypted.stdout)
    assert (decrypted.returncode, decrypted.stdout) == (0, b"piped data")


def test_failed_decrypt_leaves_no_output_file(cli, tmp_path):
    (tmp_path / "plain.bin").write_bytes(os.urandom(50_000))
    cli(
        "encrypt",
        "--key",
        "local://data",
        "--frame-length",
        "1024",
        "-o",
        "msg.aes",
        "plain.bin",
        check=True,
    )
    message = (tmp_path / "msg.aes").read_bytes()
    (tmp_path / "cut.aes").write_bytes(message[: len(message) - 100])
    result = cli("decrypt", "-o", "out.bin", "cut.aes")
    assert result.returncode == 1
    assert b"could not be decrypted" in result.stderr
    assert not (tmp_path / "out.bin").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.bin")] == []


def test_context_mismatch_exit_1(cli):
    message = cli("encrypt", "--key", "local://data", "--context", "a=1", input=b"x").stdout
    result = cli("decrypt", "--context", "a=2", input=message)
    assert result.returncode == 1
    assert b"context" in result.stderr


def test_usage_errors_exit_2(cli):
    assert cli("encrypt", input=b"x").returncode == 2  # no wrapping key configured
    assert (
        cli("encrypt", "--key", "local://data", "--context", "novalue", input=b"x").returncode == 2
    )
    assert cli("decrypt", "missing-file").returncode == 2
    garbage = cli("inspect", input=b"not a message")
    assert garbage.returncode == 2  # not a message at all: a usage error, not tampering
    assert b"stdin is not an encrypted message: it starts with text" in garbage.stderr


def test_progress_bar_does_not_change_output(cli, tmp_path):
    (tmp_path / "plain.bin").write_bytes(os.urandom(300_000))
    result = cli("encrypt", "--key", "local://data", "--progress", "-o", "msg.aes", "plain.bin")
    assert result.returncode == 0, result.stderr
    decrypted = cli("decrypt", "--progress", "-o", "out.bin", "msg.aes")
    assert decrypted.returncode == 0, decrypted.stderr
    assert (tmp_path / "out.bin").read_bytes() == (tmp_path / "plain.bin").read_bytes()
