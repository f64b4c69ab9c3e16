"""Several processes on one keystore: concurrent writers, and writers killed mid-write.

The writers are ``_keystore_worker.py`` run with this interpreter.  A crash is
a real SIGKILL, either from the test after a seeded number of completed
operations or from inside the worker just before its N-th ``fsync``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

import aureus_core
import aureus_local
from aureus_core.context import EncryptionContext
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.sensitive import Secret
from aureus_local import LocalKeyProvider

WORKER = Path(__file__).with_name("_keystore_worker.py")
CONTEXT = EncryptionContext(check="crash")

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs fork/exec and SIGKILL")


def worker_env(passphrase: str | None = None) -> dict[str, str]:
    """The environment for a worker: this checkout importable, no stray passphrase."""
    env = dict(os.environ)
    paths = [
        str(Path(aureus_local.__file__).resolve().parents[1]),
        str(Path(aureus_core.__file__).resolve().parents[1]),
    ]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("AUREUS_KEYSTORE_PASSPHRASE", None)
    env.pop("AUREUS_TEST_KILL_AT_FSYNC", None)
    if passphrase is not None:
        env["AUREUS_KEYSTORE_PASSPHRASE"] = passphrase
    return env


Spawn = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start workers; any still running at teardown are killed and reaped."""
    started: list[subprocess.Popen[str]] = []

    def start(
        mode: str, directory: Path, prefix: str, count: int, env: dict[str, str]
    ) -> subprocess.Popen[str]:
        worker = subprocess.Popen(
            [sys.executable, str(WORKER), mode, str(directory), prefix, str(count)],
            stdin=subprocess.PIPE if mode == "create" else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()


def record(confirmed: dict[str, int], lines: Iterable[str]) -> None:
    """Note what a worker reported as done: ``create NAME`` / ``rotate NAME VERSION``."""
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "create":
            confirmed[parts[1]] = max(confirmed.get(parts[1], 0), 1)
        elif parts[0] == "rotate":
            confirmed[parts[1]] = max(confirmed.get(parts[1], 0), int(parts[2]))


def assert_keystore_sound(
    directory: Path, confirmed: dict[str, int], passphrase: str | None = None
) -> None:
    """The keystore loads, authenticates, holds every confirmed change, and every version works."""
    provider = LocalKeyProvider(
        directory, passphrase=None if passphrase is None else Secret(passphrase)
    )
    try:
        listed = {meta.ref.key_id: meta for meta in provider.list_keys()}
        for name, done in confirmed.items():
            assert name in listed, f"confirmed key {name} is missing"
            assert int(listed[name].current_version) >= done
        for name, meta in listed.items():
            assert [v.version for v in meta.versions] == [
                str(n) for n in range(1, int(meta.current_version) + 1)
            ]
            for version in meta.versions:
                key = KeyRef.parse(f"local://{name}?version={version.version}")
                if meta.key_type is KeyType.AES_256:
                    wrapped = provider.wrap(key, bytes(32), CONTEXT)
                    assert provider.unwrap(key, wrapped.encrypted, CONTEXT) == bytes(32)
                else:
                    signature = provider.sign(key, b"after the crash")
                    assert provider.verify(key, b"after the crash", signature.value)
    finally:
        provider.close()


@pytest.mark.parametrize("passphrase", [None, "shared secret"])
def test_concurrent_processes_lose_no_keys(
    tmp_path: Path, spawn: Spawn, passphrase: str | None
) -> None:
    """Three processes start together on a keystore that does not exist yet."""
    directory = tmp_path / "ks"
    env = worker_env(passphrase)
    workers = [spawn("create", directory, f"p{i}", 5, env) for i in range(3)]
    for worker in workers:  # the start barrier: all are running and waiting now
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    confirmed: dict[str, int] = {}
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        record(confirmed, out.splitlines())

    assert set(confirmed) == {f"p{p}-{i}" for p in range(3) for i in range(5)}
    assert_keystore_sound(directory, confirmed, passphrase)
    provider = LocalKeyProvider(
        directory, passphrase=None if passphrase is None else Secret(passphrase)
    )
    assert len(provider.list_keys()) == 15
    assert (directory / "master.key").exists() == (passphrase is None)


def test_sigkill_at_seeded_moments(tmp_path: Path, spawn: Spawn) -> None:
    """Kill a churning writer after a seeded number of completed operations, repeatedly."""
    rng = random.Random(1729)  # noqa: S311 (a reproducible test schedule, not crypto)
    directory = tmp_path / "ks"
    env = worker_env()
    confirmed: dict[str, int] = {}
    for round_number in range(10):
        worker = spawn("churn", directory, f"r{round_number}", 0, env)
        assert worker.stdout is not None
        seen = [worker.stdout.readline() for _ in range(rng.randint(1, 30))]
        worker.send_signal(signal.SIGKILL)
        out, err = worker.communicate(timeout=30)
        assert worker.returncode == -signal.SIGKILL, err
        record(confirmed, [*seen, *out.splitlines()])

        assert_keystore_sound(directory, confirmed)

    assert len(confirmed) >= 6


@pytest.mark.parametrize("kill_at", range(1, 9))
def test_sigkill_inside_the_write_protocol(tmp_path: Path, spawn: Spawn, kill_at: int) -> None:
    """Kill before the N-th fsync: during master.key creation, before and after renames."""
    directory = tmp_path / "ks"
    env = worker_env()
    env["AUREUS_TEST_KILL_AT_FSYNC"] = str(kill_at)
    worker = spawn("churn", directory, "f", 6, env)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL, err
    confirmed: dict[str, int] = {}
    record(confirmed, out.splitlines())

    assert_keystore_sound(directory, confirmed)

    # The next writer recovers: it cleans up, creates what is missing, and writes.
    survivor = LocalKeyProvider(directory)
    survivor.create_key("after", KeySpec(key_type="aes-256"))
    survivor.close()
    assert sorted(p.name for p in directory.iterdir()) == [
        "keystore.json",
        "keystore.lock",
        "master.key",
    ]
    assert_keystore_sound(directory, {**confirmed, "after": 1})
