"""Data-key cache: provider wrap calls and throughput for 10 000 encrypts.

Measures, in one run, a local-key stack with and without the memory cache,
under one encryption context and under 100 contexts, counting the provider's
wrap (and unwrap) calls; the same 10 000 encrypts from 1, 4 and 8 threads
(no cache, memory, Redis) and from 4 processes sharing one Redis, against
``ceil(N / max_messages)``; and 1 KiB round trips with a cached data key
against raw Tink AEAD on the same payload.  The Redis rows need
``redis-server`` and ``pip install -e contrib/aureus-redis``; the benchmark
starts its own server on a unix socket.

    python benchmarks/bench_cache.py [--messages N] [--max-messages M]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import math
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aureus_builtin.memory_cache import MemoryCache
from aureus_core import KeyStack
from aureus_core.cache import CachePolicy, DataKeyCache
from aureus_core.testing.cache_contract import stack_encrypt_worker
from aureus_core.testing.counting import CountingProvider
from aureus_local import LocalKeyProvider


def make_stack(
    directory: Path, cached: bool, max_messages: int
) -> tuple[KeyStack, CountingProvider]:
    counting = CountingProvider(LocalKeyProvider(directory))
    cache = (
        DataKeyCache(MemoryCache(capacity=1000), CachePolicy(max_messages=max_messages))
        if cached
        else None
    )
    stack = KeyStack.from_dict(
        {"stack": {"wrapping_keys": ["local://bench"]}},
        providers={"local": counting},
        cache=cache,
    )
    return stack, counting


def run_encrypts(
    directory: Path, cached: bool, contexts: int, n: int, max_messages: int
) -> dict[str, Any]:
    stack, counting = make_stack(directory, cached, max_messages)
    payload = os.urandom(1024)
    started = time.perf_counter()
    for index in range(n):
        stack.encrypt(payload, context={"tenant": str(index % contexts)})
    elapsed = time.perf_counter() - started
    return {
        "cached": cached,
        "contexts": contexts,
        "wraps": counting.wraps,
        "per_s": n / elapsed,
        "us": elapsed / n * 1e6,
    }


@contextlib.contextmanager
def redis_cache_options(directory: Path) -> Iterator[dict[str, Any] | None]:
    """Options of a redis cache on a fresh server, or ``None`` if Redis is not available."""
    try:
        from aureus_redis.testing import RedisServer
    except ImportError:
        yield None
        return
    if shutil.which("redis-server") is None:
        yield None
        return
    server_dir = directory / "redis"
    server_dir.mkdir()
    key = directory / "sealing-key"
    key.write_text(base64.b64encode(os.urandom(32)).decode())
    with RedisServer.start(server_dir) as server:
        yield {"url": server.url, "sealing_key_file": str(key)}


def threaded_row(
    directory: Path, backend: str, options: dict[str, Any], threads: int, n: int, limit: int
) -> dict[str, Any]:
    """``n`` encrypts under one context from ``threads`` threads; wrap calls and rate."""
    config: dict[str, Any] = {
        "stack": {"wrapping_keys": ["local://bench"]},
        "providers": {"local": {"keystore": str(directory)}},
    }
    if backend != "none":
        config["cache"] = {"backend": backend, "max_messages": limit, **options}
    setup = KeyStack.from_dict(config)
    counting = CountingProvider(setup.provider("local"))
    stack = KeyStack.from_dict(config, providers={"local": counting})
    if stack.cache is not None:
        stack.cache.clear()
    payload = os.urandom(1024)

    def work(count: int) -> None:
        for _ in range(count):
            stack.encrypt(payload, context={"tenant": "one"})

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, [n // threads] * threads))
    elapsed = time.perf_counter() - started
    stack.close()
    setup.close()
    return {"wraps": counting.wraps, "per_s": n / elapsed}


def processes_row(directory: Path, options: dict[str, Any], n: int, limit: int) -> dict[str, Any]:
    """4 processes sharing one Redis: wrap calls, most messages on one data key, rate."""
    config = {
        "stack": {"wrapping_keys": ["local://bench"]},
        "providers": {"local": {"keystore": str(directory)}},
        "cache": {"backend": "redis", "max_messages": limit, "partition": "procs", **options},
    }
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(4) as pool:
        pool.starmap(stack_encrypt_worker, [(config, 1, {"tenant": "warm-up"})] * 4)
        started = time.perf_counter()
        results = pool.starmap(stack_encrypt_worker, [(config, n // 4, {"tenant": "one"})] * 4)
        elapsed = time.perf_counter() - started
    uses = Counter(d for _, digests in results for d in digests)
    return {
        "wraps": sum(w for w, _ in results),
        "most": max(uses.values()),
        "per_s": n / elapsed,
    }


def concurrency_rows(directory: Path, n: int, limit: int) -> None:
    """Provider calls and rate by threads and backends, and 4 processes on one Redis."""
    expected = math.ceil(n / limit)
    print(f"\n{n} encrypts of 1 KiB under one context, max_messages={limit}")
    header = ("cache", "threads", "wrap calls", "expected", "msgs/s")
    print("{:<7} {:>8} {:>10} {:>8} {:>9}".format(*header))
    with redis_cache_options(directory) as redis_options:
        backends: list[tuple[str, dict[str, Any]]] = [("none", {}), ("memory", {})]
        if redis_options is not None:
            backends.append(("redis", redis_options))
        for backend, options in backends:
            for threads in (1, 4, 8):
                row = threaded_row(directory, backend, options, threads, n, limit)
                want = n if backend == "none" else expected
                print(
                    f"{backend:<7} {threads:>8} {row['wraps']:>10} {want:>8} {row['per_s']:>9.0f}"
                )
        if redis_options is None:
            print("redis rows skipped: needs redis-server and pip install -e contrib/aureus-redis")
            return
        row = processes_row(directory, redis_options, n, limit)
        print(
            f"redis, 4 processes: {row['wraps']} wrap calls (bound {expected} + 4), "
            f"at most {row['most']} messages per data key, {row['per_s']:.0f} msgs/s"
        )


def median_time(fn: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--max-messages", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="1 000 messages, for a smoke run")
    args, ignored = parser.parse_known_args()
    if ignored:
        print(f"(ignoring options meant for the other benchmarks: {' '.join(ignored)})")
    n, limit = (1000, 100) if args.quick else (args.messages, args.max_messages)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        setup = KeyStack.local(directory)
        setup.create_key("bench", "aes-256")
        setup.close()
        print(f"{n} encrypts of 1 KiB, local aes-256 key, cache max_messages={limit}")
        header = ("cache", "contexts", "wrap calls", "expected", "µs/msg", "msgs/s")
        print("{:<6} {:>8} {:>10} {:>8} {:>8} {:>9}".format(*header))
        for contexts in (1, 100):
            for cached in (False, True):
                row = run_encrypts(directory, cached, contexts, n, limit)
                expected = (contexts * math.ceil((n / contexts) / limit)) if cached else n
                print(
                    f"{'yes' if cached else 'no':<6} {contexts:>8} {row['wraps']:>10} "
                    f"{expected:>8} {row['us']:>8.1f} {row['per_s']:>9.0f}"
                )

        concurrency_rows(directory, n, limit)

        stack, counting = make_stack(directory, True, limit)
        payload = os.urandom(1024)
        message = stack.encrypt(payload)
        rounds = 2000

        def aureus_cached() -> None:
            for _ in range(rounds):
                stack.decrypt(stack.encrypt(payload))

        aureus = median_time(aureus_cached, 5) / rounds
        line = f"\n1 KiB round trip, cached data key: {aureus * 1e6:.1f} µs"
        try:
            import tink
            from tink import aead

            aead.register()
            primitive = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(
                aead.Aead
            )

            def tink_round_trips() -> None:
                for _ in range(rounds):
                    primitive.decrypt(primitive.encrypt(payload, b"ctx"), b"ctx")

            raw = median_time(tink_round_trips, 5) / rounds
            line += (
                f"; raw Tink AEAD {raw * 1e6:.1f} µs; Aureus at {raw / aureus:.1%} of Tink "
                "(target 20 %)"
            )
        except ImportError:
            line += "; tink not installed (pip install -e '.[bench]')"
        print(line)
        calls = f"{counting.wraps} wraps, {counting.unwraps} unwraps"
        print(f"provider calls during those round trips: {calls}")
        assert stack.decrypt(message) == payload


if __name__ == "__main__":
    main()
