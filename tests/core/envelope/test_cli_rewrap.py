import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aureus_core import KeyStack

AUREUS = str(Path(sys.executable).with_name("aureus"))


@pytest.fixture
def cli(tmp_path):
    env = {**os.environ, "AUREUS_KEYSTORE": str(tmp_path / "ks")}
    env.pop("AUREUS_CONFIG", None)

    def run(*args, input=None, check=False):
        return subprocess.run(
            [AUREUS, *args], cwd=tmp_path, env=env, input=input, capture_output=True, check=check
        )

    with KeyStack.local(tmp_path / "ks") as stack:  # faster than three subprocesses
        for name in ("data", "backup", "archive"):
            stack.create_key(name, "aes-256")
    return run


def no_output(tmp_path, name="out.aes"):
    """Neither the output file nor a leftover temporary file beside it."""
    return not (tmp_path / name).exists() and not [
        p for p in tmp_path.iterdir() if p.name.startswith(f".{name}.")
    ]


def recipients(cli, path):
    info = json.loads(cli("inspect", "--json", path).stdout)
    return [k["key"] for k in info["encrypted_data_keys"]]


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_rewrap_file_to_two_new_keys(cli, tmp_path, signed):
    (tmp_path / "plain.bin").write_bytes(os.urandom(100_000))
    args = ["--key", "local://data", "--context", "tenant=acme", "--frame-length", "4096"]
    args += ["--signed"] if signed else []
    cli("encrypt", *args, "-o", "msg.aes", "plain.bin", check=True)
    result = cli(
        "rewrap",
        "--to",
        "local://backup",
        "--to",
        "local://archive",
        "--key",
        "local://data",
        "--context",
        "tenant=acme",
        "-o",
        "out.aes",
        "msg.aes",
    )
    assert result.returncode == 0, result.stderr
    assert recipients(cli, "out.aes") == ["backup:1", "archive:1"]
    for key in ("local://backup", "local://archive"):
        decrypted = cli("decrypt", "--key", key, "-o", f"{key[8:]}.bin", "out.aes")
        assert decrypted.returncode == 0, decrypted.stderr
        assert (tmp_path / f"{key[8:]}.bin").read_bytes() == (tmp_path / "plain.bin").read_bytes()
    assert cli("decrypt", "--key", "local://data", "out.aes").returncode == 1


def test_rewrap_in_place_and_through_pipes(cli, tmp_path):
    message = cli("encrypt", "--key", "local://data", input=b"piped", check=True).stdout
    piped = cli("rewrap", "--to", "local://backup", input=message)
    assert piped.returncode == 0, piped.stderr
    assert cli("decrypt", "--key", "local://backup", input=piped.stdout).stdout == b"piped"

    (tmp_path / "msg.aes").write_bytes(message)
    result = cli("rewrap", "--to", "local://archive", "-o", "msg.aes", "msg.aes")
    assert result.returncode == 0, result.stderr
    assert recipients(cli, "msg.aes") == ["archive:1"]
    assert cli("decrypt", "msg.aes").stdout == b"piped"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".msg.aes.")]


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_bad_input_exits_1_without_output(cli, tmp_path, signed):
    (tmp_path / "plain.bin").write_bytes(os.urandom(20_000))
    extra = ["--signed"] if signed else []
    args = ["--key", "local://data", "--frame-length", "1024", *extra]
    cli("encrypt", *args, "-o", "msg.aes", "plain.bin", check=True)
    original = (tmp_path / "msg.aes").read_bytes()
    # header: the message ID; frame: inside a middle frame; end: the signature
    # (signed) or the final frame's tag (unsigned); and a truncated message.
    for index in (10, len(original) // 2, len(original) - 5, None):
        message = bytearray(original)
        if index is None:
            del message[-30:]
        else:
            message[index] ^= 0x01
        (tmp_path / "bad.aes").write_bytes(bytes(message))
        result = cli("rewrap", "--to", "local://backup", "-o", "out.aes", "bad.aes")
        assert result.returncode == 1, (index, result.stderr)
        assert b"aureus: error:" in result.stderr
        assert no_output(tmp_path)


def test_no_verify_body_is_accepted_and_still_authenticates(cli, tmp_path):
    message = bytearray(
        cli("encrypt", "--key", "local://data", input=os.urandom(5000), check=True).stdout
    )
    message[-10] ^= 0x01  # the final frame's tag
    (tmp_path / "bad.aes").write_bytes(bytes(message))
    assert cli("rewrap", "--to", "local://backup", "bad.aes").returncode == 1
    result = cli("rewrap", "--to", "local://backup", "--no-verify-body", "-o", "out.aes", "bad.aes")
    assert result.returncode == 1, result.stderr
    assert no_output(tmp_path)


def test_context_and_key_mismatch_exit_1(cli, tmp_path):
    message = cli("encrypt", "--key", "local://data", "--context", "a=1", input=b"x").stdout
    (tmp_path / "msg.aes").write_bytes(message)
    args = ["--to", "local://backup", "--context", "a=2"]
    wrong_context = cli("rewrap", *args, "-o", "out.aes", "msg.aes")
    assert wrong_context.returncode == 1
    assert b"context" in wrong_context.stderr
    wrong_key = cli("rewrap", "--to", "local://backup", "--key", "local://archive", "msg.aes")
    assert wrong_key.returncode == 1
    assert no_output(tmp_path)


def test_other_errors_exit_2_without_output(cli, tmp_path):
    message = cli("encrypt", "--key", "local://data", input=b"x", check=True).stdout
    (tmp_path / "msg.aes").write_bytes(message)
    missing = cli("rewrap", "--to", "local://nope", "-o", "out.aes", "msg.aes")
    assert missing.returncode == 2
    assert b"nope" in missing.stderr
    assert no_output(tmp_path)
    assert cli("rewrap", "msg.aes").returncode == 2  # --to is required
    assert cli("rewrap", "--to", "local://backup", "missing.aes").returncode == 2
    twice = cli("rewrap", "--to", "local://backup", "--to", "local://backup", "msg.aes")
    assert (twice.returncode, b"twice" in twice.stderr) == (2, True)
