"""The ``aureus`` command as a Unix tool: pipes, terminals, debug, key names, exit codes."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from aureus_core.envelope.spool import SealedSpool
from aureus_core.errors import DecryptionError, KeyNotFound

AUREUS = str(Path(sys.executable).with_name("aureus"))
Run = Callable[..., Result]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUREUS_")}
    env["AUREUS_KEYSTORE"] = str(tmp_path / "ks")
    return env


def _message(run: Run, tmp_path: Path, *, signed: bool, size: int = 64 * 1024) -> bytes:
    run("keys", "create", "k", "--type", "aes-256", "--if-not-exists")
    plain = tmp_path / "plain.bin"
    plain.write_bytes(bytes(range(256)) * (size // 256))
    out = tmp_path / "msg.bin"
    args = ["encrypt", "--key", "local://k", "--frame-length", "4096", "-o", str(out), str(plain)]
    result = run(*args, *(["--signed"] if signed else []))
    assert result.exit_code == 0, result.stderr
    return out.read_bytes()


def test_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    env = _env(tmp_path)
    subprocess.run([AUREUS, "keys", "create", "k", "--type", "aes-256"], env=env, check=True)
    (tmp_path / "big").write_bytes(os.urandom(4 * 1024 * 1024))
    subprocess.run(
        [AUREUS, "encrypt", "--key", "k", "-o", str(tmp_path / "big.msg"), str(tmp_path / "big")],
        env=env,
        check=True,
    )
    shell = f"set -o pipefail; {AUREUS} decrypt {tmp_path / 'big.msg'} | head -c 10 >/dev/null"
    done = subprocess.run(["bash", "-c", shell], env=env, capture_output=True, text=True)
    assert done.stderr == ""
    assert done.returncode == 141  # as `cat big | head` reports under pipefail


def _on_a_terminal(args: list[str], env: dict[str, str], stdin: bytes) -> tuple[int, bytes, str]:
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [AUREUS, *args], input=stdin, stdout=follower, stderr=subprocess.PIPE, env=env
        )
        os.close(follower)
        follower = -1
        shown = b""
        try:
            while chunk := os.read(leader, 65536):
                shown += chunk
        except OSError:  # EIO once the terminal has nothing more
            pass
        return done.returncode, shown, done.stderr.decode()
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)


def test_encrypt_refuses_to_write_a_message_to_a_terminal(tmp_path: Path) -> None:
    env = _env(tmp_path)
    subprocess.run([AUREUS, "keys", "create", "k", "--type", "aes-256"], env=env, check=True)
    code, shown, err = _on_a_terminal(["encrypt", "--key", "k"], env, b"secret")
    assert code == 2
    assert shown == b""
    assert "refusing to write a binary message to the terminal" in err
    assert "-o -" in err
    code, shown, err = _on_a_terminal(["encrypt", "--key", "k", "-o", "-"], env, b"secret")
    assert (code, err) == (0, "")
    assert len(shown) > 100


def test_debug_is_accepted_after_the_subcommand_and_from_the_environment(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    quiet = run("keys", "describe", "local://absent")
    assert quiet.exit_code == 2
    assert "aureus: error:" in quiet.stderr
    for args in (
        ("keys", "describe", "local://absent", "--debug"),
        ("--debug", "keys", "describe", "local://absent"),
    ):
        with pytest.raises(KeyNotFound, match="absent"):
            run(*args)
    monkeypatch.setenv("AUREUS_DEBUG", "1")
    with pytest.raises(KeyNotFound, match="absent"):
        run("keys", "describe", "local://absent")
    monkeypatch.setenv("AUREUS_DEBUG", "0")
    assert run("keys", "describe", "local://absent").exit_code == 2


def test_every_command_taking_a_key_accepts_a_bare_name(run: Run, tmp_path: Path) -> None:
    assert run("keys", "create", "pay", "--type", "aes-256").stdout.strip() == "local://pay"
    assert run("keys", "create", "sig", "--type", "ed25519").exit_code == 0
    assert "uri:             local://pay" in run("keys", "describe", "pay").stdout
    assert run("keys", "rotate", "pay").stdout.strip() == "local://pay is now at version 2"
    assert run("keys", "public-key", "sig").stdout.startswith("-----BEGIN PUBLIC KEY-----")
    signature = run("sign", "--key", "sig", input=b"data").stdout.strip()
    assert (
        run("verify", "--key", "sig", "--signature", signature, "-", input=b"data").exit_code == 0
    )
    sealed = run("encrypt", "--key", "pay", "-o", "m.bin", input=b"hello").exit_code
    assert sealed == 0
    opened = run("decrypt", "--key", "pay", "m.bin")
    assert (opened.exit_code, opened.stdout_bytes) == (0, b"hello")


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b"hello, this is a plain text file\n", "it starts with text"),
        (b"", "the input is empty"),
        (b"\x1f\x8b\x08\x00" + bytes(20), "gzip signature (1f 8b)"),
        (b'{"encrypted": "abc"}', "it starts like JSON"),
        (b"AgV4AAAAAAAAAAAAAAAAAAAAAAAAAAAA", "base64 text"),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(20), "binary data whose first byte is 7f"),
    ],
)
def test_input_that_is_not_a_message_exits_2_and_says_what_it_is(
    run: Run, tmp_path: Path, data: bytes, shown: str
) -> None:
    run("keys", "create", "k", "--type", "aes-256")
    (tmp_path / "in.bin").write_bytes(data)
    result = run("decrypt", "in.bin")
    assert result.exit_code == 2
    assert "is not an encrypted message" in result.stderr
    assert shown in result.stderr
    assert "could not be decrypted and authenticated" not in result.stderr
    assert data[1:6] not in result.stderr.encode() or not data  # no content is repeated
    inspected = run("inspect", "in.bin")
    assert inspected.exit_code == 2
    assert shown in inspected.stderr


def test_a_tampered_message_still_exits_1(run: Run, tmp_path: Path) -> None:
    message = bytearray(_message(run, tmp_path, signed=False))
    message[-40] ^= 1
    (tmp_path / "bad.bin").write_bytes(message)
    result = run("decrypt", "bad.bin")
    assert result.exit_code == 1
    assert "could not be decrypted and authenticated" in result.stderr


def test_signed_message_reaches_stdout_only_after_its_signature_verifies(
    run: Run, tmp_path: Path
) -> None:
    message = _message(run, tmp_path, signed=True)
    (tmp_path / "cut.bin").write_bytes(message[:-30])  # the signature footer is cut short
    held = run("decrypt", "cut.bin")
    assert held.exit_code == 1
    assert held.stdout_bytes == b""
    streamed = run("decrypt", "--unverified-stream", "cut.bin")
    assert streamed.exit_code == 1
    assert len(streamed.stdout_bytes) >= 60 * 1024  # the old, frame-by-frame behaviour
    (tmp_path / "ok.bin").write_bytes(message)
    whole = run("decrypt", "ok.bin")
    assert whole.exit_code == 0
    assert whole.stdout_bytes == (tmp_path / "plain.bin").read_bytes()


def test_spool_past_its_memory_bound_is_sealed_on_disk(tmp_path: Path) -> None:
    secret = b"top secret plaintext " * 2000
    with SealedSpool(memory_bound=1024, directory=str(tmp_path)) as spool:
        for start in range(0, len(secret), 700):
            spool.write(secret[start : start + 700])
        assert spool.spilled
        assert os.listdir(tmp_path) == []  # unnamed on Linux
        on_disk = os.pread(spool.fileno(), 1 << 20, 0)
        assert b"top secret" not in on_disk
        assert len(on_disk) >= len(secret)
        out = tmp_path / "out"
        with out.open("wb") as dst:
            assert spool.release(dst) == len(secret)
        assert out.read_bytes() == secret


@pytest.mark.parametrize("where", ["flip", "truncate", "append"])
def test_a_spool_file_altered_on_disk_releases_nothing(tmp_path: Path, where: str) -> None:
    with SealedSpool(memory_bound=10) as spool:
        spool.write(os.urandom(3000))
        size = os.fstat(spool.fileno()).st_size
        if where == "flip":
            byte = os.pread(spool.fileno(), 1, size - 5)
            os.pwrite(spool.fileno(), bytes([byte[0] ^ 1]), size - 5)
        elif where == "truncate":
            os.ftruncate(spool.fileno(), size - 1)
        else:
            os.pwrite(spool.fileno(), b"x", size)
        out = tmp_path / "out"
        with out.open("wb") as dst, pytest.raises(DecryptionError, match="modified"):
            spool.release(dst)
        assert out.read_bytes() == b""


def test_a_spool_file_altered_after_its_check_stops_the_release_with_a_decryption_error(
    tmp_path: Path,
) -> None:
    """Someone who can write to this process's open file (its /proc/PID/fd) alters it
    between the check of every record and the write-out: the release stops at the altered
    record with DecryptionError and says the output is incomplete. Before, cryptography's
    InvalidTag escaped, which the CLI does not turn into its error and exit code."""

    class Raced(SealedSpool):
        def _opened(self) -> list[int] | None:
            lengths = super()._opened()
            assert lengths is not None
            os.ftruncate(self.fileno(), 4 + lengths[0] + 10)  # into the second record
            return lengths

    record = 1024 * 1024
    out = io.BytesIO()
    with Raced(memory_bound=1024, directory=str(tmp_path)) as spool:
        for _ in range(3):
            spool.write(b"V" * record)
        with pytest.raises(
            DecryptionError,
            match=r"^the temporary file holding the verified plaintext was modified while it "
            r"was being written out; the output is incomplete and must be discarded$",
        ):
            spool.release(out)
    # What came out is the genuine first record, and nothing of the altered one.
    assert out.getvalue() == b"V" * record


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "aureus.toml"
    path.write_text(text)
    return path


def test_wrong_passphrase_names_the_variable_it_came_from(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(
        tmp_path,
        f"""
[providers.local]
keystore = "{tmp_path / "pks"}"
scrypt_log_n = 10
insecure_kdf_for_tests = true
credentials = "pass"

[credentials.pass]
source = "env"
variables = {{ passphrase = "TEAM_KEYSTORE_PASS" }}
""",
    )
    monkeypatch.setenv("TEAM_KEYSTORE_PASS", "correct horse")
    assert run("--config", str(config), "keys", "create", "k", "--type", "aes-256").exit_code == 0
    monkeypatch.setenv("TEAM_KEYSTORE_PASS", "wrong horse")
    result = run("--config", str(config), "keys", "describe", "k")
    assert result.exit_code == 2
    assert "wrong passphrase" in result.stderr
    assert "TEAM_KEYSTORE_PASS" in result.stderr
    assert "AUREUS_KEYSTORE_PASSPHRASE" not in result.stderr
    assert "horse" not in result.stderr


def test_a_misspelt_provider_section_says_where_and_what_was_meant(
    run: Run, tmp_path: Path
) -> None:
    config = _config(tmp_path, f'[providers.lcoal]\nkeystore = "{tmp_path / "ks2"}"\n')
    result = run("--config", str(config), "keys", "list")
    assert result.exit_code == 2
    assert f"{config}: [providers.lcoal]" in result.stderr
    assert "did you mean 'local'?" in result.stderr
    typo = run("keys", "describe", "locla://k")
    assert "did you mean 'local'?" in typo.stderr


def test_hints_speak_the_callers_language(run: Run, tmp_path: Path) -> None:
    from aureus_core.errors import ConfigError
    from aureus_core.stack import KeyStack

    cli = run("encrypt", "-o", "m.bin", input=b"x")
    assert cli.exit_code == 2
    assert "--key URI" in cli.stderr
    assert "keys=[" not in cli.stderr
    unsigned = run("verify", "--signature", "AAAA", "-", input=b"x")
    assert "--key URI" in unsigned.stderr
    assert "key=URI" not in unsigned.stderr
    with KeyStack.from_dict({"providers": {"local": {"keystore": str(tmp_path / "api")}}}) as stack:
        with pytest.raises(ConfigError) as raised:
            stack.encrypt(b"x")
        assert "keys=[URI, ...]" in str(raised.value)
        assert "--key" not in str(raised.value)


def test_rewrap_of_something_that_is_not_a_message_exits_2(run: Run, tmp_path: Path) -> None:
    run("keys", "create", "k", "--type", "aes-256")
    (tmp_path / "notes.txt").write_text("meeting notes\n")
    result = run("rewrap", "--to", "k", "-o", "out.bin", "notes.txt")
    assert result.exit_code == 2
    assert "'notes.txt' is not an encrypted message: it starts with text" in result.stderr
    assert not (tmp_path / "out.bin").exists()
