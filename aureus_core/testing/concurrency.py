"""Run one operation from many threads at once, for the contracts' concurrency tests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

BARRIER_TIMEOUT = 60.0
"""Seconds the threads wait for each other to start before giving up."""


def run_in_threads(task: Callable[[int, int], T], *, threads: int, operations: int) -> list[T]:
    """Call ``task(thread, operation)`` ``operations`` times in each of ``threads`` threads.

    The threads start together (behind a barrier) to make overlap likely.
    Returns every result, thread by thread and in call order; the first
    exception raised by any call is re-raised.
    """
    if threads < 1 or operations < 1:
        raise ValueError("threads and operations must be at least 1")
    barrier = threading.Barrier(threads, timeout=BARRIER_TIMEOUT)

    def worker(thread: int) -> list[T]:
        barrier.wait()
        return [task(thread, operation) for operation in range(operations)]

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="aureus-contract") as pool:
        futures = [pool.submit(worker, thread) for thread in range(threads)]
        return [result for future in futures for result in future.result()]
