"""The inter-process file lock: exclusion between processes and threads, re-entry, timeouts."""

from __future__ import annotations

import multiprocessing
import os
import stat
import sys
import threading
from pathlib import Path

import filelock
import pytest

from aureus_core.locks import FileLock, LockTimeout

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the flock path is POSIX")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1


def _hold(
    path: str, held: multiprocessing.synchronize.Event, done: multiprocessing.synchronize.Event
) -> None:
    with FileLock(path, timeout=5):
        held.set()
        done.wait(10)


def test_a_lock_held_by_another_process_times_out_then_is_taken_once_released(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "state.lock")
    spawn = multiprocessing.get_context("spawn")
    held, done = spawn.Event(), spawn.Event()
    child = spawn.Process(target=_hold, args=(path, held, done))
    child.start()
    try:
        assert held.wait(30)
        lock = FileLock(path, timeout=0.2)
        with pytest.raises(LockTimeout, match=r"state\.lock stayed locked for 0\.2 s"):
            lock.acquire()
        held_before = lock.is_held
        done.set()
        child.join(10)
        lock.acquire()
        assert (held_before, lock.is_held) == (False, True)
        lock.release()
    finally:
        done.set()
        child.join(10)


def test_two_threads_exclude_each_other_like_two_processes(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "state.lock", timeout=0.1)
    outcome: list[str] = []

    def other() -> None:
        try:
            lock.acquire()
        except LockTimeout:
            outcome.append("timed out")
        else:
            outcome.append("took it")
            lock.release()

    with lock:
        worker = threading.Thread(target=other)
        worker.start()
        worker.join()
    assert outcome == ["timed out"]
    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    assert outcome == ["timed out", "took it"]


def test_a_thread_may_take_it_again_and_the_last_release_unlocks(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "state.lock", timeout=0.1)
    rival = FileLock(tmp_path / "state.lock", timeout=0)
    lock.acquire()
    lock.acquire()
    lock.release()
    assert lock.is_held
    with pytest.raises(LockTimeout):
        rival.acquire()  # another lock object is another holder, even in this thread
    lock.release()
    states: list[bool] = [lock.is_held]
    with rival:
        states.append(rival.is_held)
    assert states == [False, True]


def test_release_without_holding_is_an_error(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "state.lock", timeout=0)
    with pytest.raises(RuntimeError, match="is not held by this thread"):
        lock.release()


def test_the_lock_file_is_created_private_and_never_removed(tmp_path: Path) -> None:
    path = tmp_path / "state.lock"
    old = os.umask(0o022)
    try:
        with FileLock(path, timeout=0, mode=0o600):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)
    assert path.exists()  # removing it would let two holders lock two different files


def test_no_descriptor_is_left_open_after_a_release_or_a_timeout(tmp_path: Path) -> None:
    path = tmp_path / "state.lock"
    before = _open_fds()
    with FileLock(path, timeout=0), pytest.raises(LockTimeout):
        FileLock(path, timeout=0).acquire()
    assert _open_fds() == before


def test_it_excludes_a_holder_using_the_filelock_package(tmp_path: Path) -> None:
    path = tmp_path / "state.lock"
    with filelock.FileLock(str(path)), pytest.raises(LockTimeout):
        FileLock(path, timeout=0.05).acquire()
    with FileLock(path, timeout=0), pytest.raises(filelock.Timeout):
        filelock.FileLock(str(path), timeout=0.05).acquire()


@pytest.mark.parametrize("timeout", [-1.0, float("nan")])
def test_a_timeout_must_be_seconds_not_negative(tmp_path: Path, timeout: float) -> None:
    with pytest.raises(ValueError, match="a lock timeout is seconds >= 0"):
        FileLock(tmp_path / "state.lock", timeout=timeout)
