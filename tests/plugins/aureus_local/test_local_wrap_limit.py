"""The AES-GCM random-IV bound: at most ``max_wraps_per_version`` wraps per key version.

NIST SP 800-38D (8.3) limits a key used with random 96-bit IVs to 2**32
invocations.  The count is reserved on disk before each block of wraps, so no
crash can bring it below the wraps really made.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import aureus_core
import aureus_local
from aureus_core.context import EncryptionContext
from aureus_core.errors import ConfigError, KeyDisabled
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec
from aureus_local import LocalKeyProvider
from aureus_local.sealing import Sealer

MakeProvider = Callable[..., LocalKeyProvider]
CONTEXT = EncryptionContext(app="wrap-limit")
DATA_KEY = bytes(range(32))
WORKER = Path(__file__).with_name("_keystore_worker.py")


def ref(uri: str) -> KeyRef:
    return KeyRef.parse(uri)


def reserved(directory: Path, name: str = "w") -> list[int]:
    document = json.loads((directory / "keystore.json").read_text())
    return [v["wraps_reserved"] for v in document["keys"][name]["versions"]]


def test_wraps_stop_at_the_bound_until_the_key_is_rotated(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    provider = make_provider(max_wraps_per_version=40)
    provider.create_key("w", KeySpec(key_type="aes-256"))
    made = [provider.wrap(ref("local://w"), DATA_KEY, CONTEXT) for _ in range(40)]
    assert len({w.encrypted.provider_info for w in made}) == 40  # 40 distinct IVs
    with pytest.raises(KeyDisabled) as refused:
        provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    assert refused.value.code == "wrap-limit"
    assert str(refused.value) == (
        "local://w version 1 has made its 40 wraps, the most one AES-GCM key may make with "
        "random 96-bit IVs (NIST SP 800-38D); rotate the key (`aureus keys rotate "
        "local://w`) and wrap with the new version"
    )
    assert reserved(keystore_dir) == [40]
    # What it wrapped still unwraps; another process is held to the same count.
    assert provider.unwrap(made[0].key, made[0].encrypted, CONTEXT) == DATA_KEY
    with pytest.raises(KeyDisabled, match="has made its 40 wraps"):
        make_provider(max_wraps_per_version=40).wrap(ref("local://w"), DATA_KEY, CONTEXT)
    provider.rotate_key(ref("local://w"))
    assert provider.wrap(ref("local://w"), DATA_KEY, CONTEXT).key.version == "2"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_a_forked_child_reserves_its_own_wraps_and_never_hands_back_the_parents(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    """A pre-fork server (gunicorn --preload, a multiprocessing pool) forks after the parent
    wrapped once, so each child starts with the parent's unused block in memory. Before,
    every child wrapped from it too (the bound of 16 was passed: 4 children made 16 each on
    top of the parent's), and a child that closed handed the parent's block back, so the
    stored count fell below the wraps made."""
    bound = 32
    provider = make_provider(max_wraps_per_version=bound)
    provider.create_key("w", KeySpec(key_type="aes-256"))
    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)  # reserves a block of 16, uses 1
    assert reserved(keystore_dir) == [16]
    made = 1
    for _ in range(3):
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: wrap until refused, then close as a worker would
            count = 0
            try:
                for _ in range(bound):
                    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
                    count += 1
            except KeyDisabled:
                pass
            finally:
                provider.close()
                os.write(writer, str(count).encode())
                os._exit(0)
        os.close(writer)
        os.waitpid(pid, 0)
        made += int(os.read(reader, 100) or b"0")
        os.close(reader)
    left_to_parent = 15
    for _ in range(left_to_parent):  # the parent's own block is still its own
        provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
        made += 1
    # The first child reserved the 16 left under the bound; the others got none.
    assert made == bound
    assert reserved(keystore_dir) == [bound]
    with pytest.raises(KeyDisabled, match="has made its 32 wraps"):
        provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)


def test_processes_share_the_bound(make_provider: MakeProvider, keystore_dir: Path) -> None:
    first, second = (make_provider(max_wraps_per_version=100) for _ in range(2))
    first.create_key("w", KeySpec(key_type="aes-256"))
    done = 0
    for turn in range(300):
        try:
            (first, second)[turn % 2].wrap(ref("local://w"), DATA_KEY, CONTEXT)
            done += 1
        except KeyDisabled:
            pass
    assert reserved(keystore_dir) == [100]
    assert 100 - 2 * 64 <= done <= 100  # each may still hold part of a block it reserved
    first.close()
    second.close()  # hand back what they did not use
    assert reserved(keystore_dir) == [done]


def test_close_hands_back_the_unused_wraps(make_provider: MakeProvider, keystore_dir: Path) -> None:
    provider = make_provider()
    provider.create_key("w", KeySpec(key_type="aes-256"))
    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    assert reserved(keystore_dir) == [16]  # the first block
    provider.close()
    assert reserved(keystore_dir) == [1]


def test_close_writes_nothing_when_every_reserved_wrap_was_used(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    provider = make_provider()
    provider.create_key("w", KeySpec(key_type="aes-256"))
    for _ in range(16):  # exactly the first block
        provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    provider.flush_usage()
    written = (keystore_dir / "keystore.json").read_bytes()
    provider.close()
    assert (keystore_dir / "keystore.json").read_bytes() == written
    assert reserved(keystore_dir) == [16]


def test_close_hands_back_a_single_unused_wrap(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    provider = make_provider()
    provider.create_key("w", KeySpec(key_type="aes-256"))
    for _ in range(15):  # one wrap of the first block left
        provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    provider.close()
    assert reserved(keystore_dir) == [15]


def test_close_after_the_keystore_was_removed_is_quiet_and_recreates_nothing(
    make_provider: MakeProvider, keystore_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider = make_provider()
    provider.create_key("w", KeySpec(key_type="aes-256"))
    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    provider.flush_usage()
    shutil.rmtree(keystore_dir)
    with caplog.at_level(logging.WARNING, logger="aureus_local.keystore"):
        provider.close()
    assert caplog.text == ""
    assert not keystore_dir.exists()


def test_a_keystore_removed_while_closing_is_reported_and_not_recreated(
    make_provider: MakeProvider,
    keystore_dir: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process removes the keystore between close's check and its write."""
    provider = make_provider()
    provider.create_key("w", KeySpec(key_type="aes-256"))
    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    provider.flush_usage()
    store = provider.keystore
    write = store._write

    def removed_first(*args: Any, **kwargs: Any) -> Any:
        shutil.rmtree(keystore_dir, ignore_errors=True)
        return write(*args, **kwargs)

    monkeypatch.setattr(store, "_write", removed_first)
    with caplog.at_level(logging.WARNING, logger="aureus_local.keystore"):
        provider.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"unused wraps of keystore {keystore_dir} not handed back (they stay counted): the "
        "keystore file disappeared before unused wraps were handed back"
    ]
    assert not keystore_dir.exists()


@pytest.mark.parametrize(("stored", "after_close"), [(15, 0), (14, 14), (3, 3)])
def test_a_release_takes_the_stored_count_to_zero_at_most(
    make_provider: MakeProvider, keystore_dir: Path, stored: int, after_close: int
) -> None:
    """The count on disk was lowered meanwhile (an edit by the master key's holder).

    Handing back the 15 unused wraps of the block may bring it to 0, never below: a
    count that does not hold them all is left as it is.
    """
    provider = make_provider()
    provider.create_key("w", KeySpec(key_type="aes-256"))
    provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    provider.flush_usage()
    document = json.loads((keystore_dir / "keystore.json").read_text())
    document["keys"]["w"]["versions"][0]["wraps_reserved"] = stored
    document.pop("mac")
    sealer = Sealer((keystore_dir / "master.key").read_bytes())
    document["mac"] = base64.b64encode(sealer.mac(document)).decode()
    (keystore_dir / "keystore.json").write_text(json.dumps(document))
    provider.close()
    assert reserved(keystore_dir) == [after_close]
    make_provider().describe_key(ref("local://w"))  # still a valid document


def test_a_reservation_that_cannot_be_written_refuses_the_wrap(
    make_provider: MakeProvider, keystore_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = make_provider()
    provider.create_key("w", KeySpec(key_type="aes-256"))

    def full_disk(content: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(provider.keystore, "_replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    assert reserved(keystore_dir) == [0]


@pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")
@pytest.mark.parametrize("count", [1, 16, 17, 100])
def test_a_crash_never_brings_the_count_below_the_wraps_made(
    make_provider: MakeProvider, keystore_dir: Path, count: int
) -> None:
    make_provider().create_key("w", KeySpec(key_type="aes-256"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [
            str(Path(aureus_local.__file__).resolve().parents[1]),
            str(Path(aureus_core.__file__).resolve().parents[1]),
            *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []),
        ]
    )
    env.pop("AUREUS_KEYSTORE_PASSPHRASE", None)
    worker = subprocess.run(
        [sys.executable, str(WORKER), "wrap", str(keystore_dir), "w", str(count)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert worker.returncode == -signal.SIGKILL, worker.stderr[-2000:]
    assert worker.stdout.splitlines()[-1] == f"wrapped {count}"
    assert reserved(keystore_dir)[0] >= count


@pytest.mark.parametrize("bound", [0, -1, 2**32 + 1, True, 1.5])
def test_the_bound_can_only_be_lowered(tmp_path: Path, bound: object) -> None:
    with pytest.raises(ConfigError, match="max_wraps_per_version must be a whole number from 1"):
        LocalKeyProvider(tmp_path, max_wraps_per_version=bound)  # type: ignore[arg-type]


def test_threads_that_wait_for_one_reservation_share_its_block(
    local_provider: LocalKeyProvider, keystore_dir: Path
) -> None:
    local_provider.create_key("w", KeySpec(key_type="aes-256"))
    generation = json.loads((keystore_dir / "keystore.json").read_text())["generation"]
    write_lock = local_provider._keystore._write_lock  # what a reserving thread queues on
    errors: list[BaseException] = []

    def wrap() -> None:
        try:
            local_provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    # Four threads find no wraps left and queue for the write lock; the first reserves a
    # block, and the three behind it must take their wraps from that block, not write again.
    with write_lock:
        threads = [threading.Thread(target=wrap) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
    for thread in threads:
        thread.join()
    assert errors == []
    document = json.loads((keystore_dir / "keystore.json").read_text())
    assert document["generation"] == generation + 1  # one reservation, one write
    assert reserved(keystore_dir) == [16]


def test_the_last_single_wrap_of_the_bound_is_made(
    make_provider: MakeProvider, keystore_dir: Path
) -> None:
    # Blocks of 16 then 32: with a bound of 17 the second block is the one wrap left.
    provider = make_provider(max_wraps_per_version=17)
    provider.create_key("w", KeySpec(key_type="aes-256"))
    made = [provider.wrap(ref("local://w"), DATA_KEY, CONTEXT) for _ in range(17)]
    assert len({w.encrypted.provider_info for w in made}) == 17
    assert reserved(keystore_dir) == [17]
    with pytest.raises(KeyDisabled) as refused:
        provider.wrap(ref("local://w"), DATA_KEY, CONTEXT)
    assert (refused.value.code, refused.value.provider) == ("wrap-limit", "local")
