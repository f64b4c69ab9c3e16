"""A decrypt killed mid-write leaves no file holding plaintext, named or hidden."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aureus_core import KeyStack
from aureus_core.cli import atomic
from aureus_core.cli.atomic import TEMP_SUFFIX, atomic_output, remove_abandoned

AUREUS = str(Path(sys.executable).with_name("aureus"))
FRAME = 4096


def _writing_fd(pid: int, directory: Path) -> Path | None:
    """The /proc entry of a file the process has open for writing in ``directory``."""
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith(str(directory)) and os.stat(entry).st_size > 0:
            return entry
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_sigkill_mid_write_leaves_nothing(tmp_path, signed):
    with KeyStack.local(tmp_path / "ks") as stack:
        stack.create_key("data", "aes-256")
        message = stack.encrypt(
            os.urandom(256 * FRAME), keys=["local://data"], frame_length=FRAME, signed=signed
        )
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "AUREUS_KEYSTORE": str(tmp_path / "ks")}
    env.pop("AUREUS_CONFIG", None)
    process = subprocess.Popen(
        [AUREUS, "decrypt", "-o", str(out / "plain.txt"), "-"],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert process.stdin is not None
    try:
        process.stdin.write(message[: len(message) // 2])
        process.stdin.flush()
        deadline = time.monotonic() + 30
        entry = None
        while entry is None and time.monotonic() < deadline:
            entry = _writing_fd(process.pid, out)
            time.sleep(0.02)
        assert entry is not None, "the decrypt never started writing its output"
        # Plaintext frames are in the output file now, and it has no name.
        assert os.readlink(entry).endswith("(deleted)") or "#" in os.readlink(entry)
        assert os.stat(entry).st_size >= FRAME
        assert list(out.iterdir()) == []
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdin.close()
    assert list(out.iterdir()) == []


def test_success_links_a_complete_private_file(tmp_path):
    target = tmp_path / "result"
    with atomic_output(target) as handle:
        handle.write(b"complete")
        assert list(tmp_path.iterdir()) == []  # nothing visible while writing
    assert target.read_bytes() == b"complete"
    assert target.stat().st_mode & 0o777 == 0o600
    with atomic_output(target) as handle:  # replacing an existing file (-o IN IN)
        handle.write(b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["result"]


def test_failure_leaves_the_old_file_and_nothing_else(tmp_path):
    target = tmp_path / "result"
    target.write_bytes(b"old")

    def fail_midway() -> None:
        with atomic_output(target) as handle:
            handle.write(b"partial plaintext")
            raise RuntimeError("authentication failed")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["result"]


@pytest.mark.parametrize("method", ["no-unnamed-files", "no-links"])
def test_fallbacks_produce_the_same_result(tmp_path, monkeypatch, method):
    if method == "no-unnamed-files":
        monkeypatch.setattr(atomic, "_unnamed", lambda directory: None)
    else:
        monkeypatch.setattr(atomic, "_link", lambda fd, path: False)
    target = tmp_path / "result"
    with atomic_output(target) as handle:
        handle.write(b"x" * 3_000_000)
    assert target.read_bytes() == b"x" * 3_000_000
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["result"]


def test_abandoned_named_files_of_dead_processes_are_removed(tmp_path):
    """Where no unnamed file is possible, SIGKILL can leave a named one; the next run removes it."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(dead.stdout)
    abandoned = tmp_path / f".result.{dead_pid}.abcdef{TEMP_SUFFIX}"
    abandoned.write_bytes(b"partial plaintext")
    live = tmp_path / f".result.{os.getpid()}.abcdef{TEMP_SUFFIX}"
    live.write_bytes(b"a live writer's file")
    other = tmp_path / f".other.{dead_pid}.abcdef{TEMP_SUFFIX}"
    other.write_bytes(b"another target's file")
    assert remove_abandoned(tmp_path, "result") == [abandoned]
    assert not abandoned.exists()
    assert live.exists()
    assert other.exists()
    abandoned.write_bytes(b"partial plaintext")
    with atomic_output(tmp_path / "result") as handle:
        handle.write(b"new")
    assert not abandoned.exists()
