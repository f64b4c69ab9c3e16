"""Data-key cache: provider wrap calls and throughput for 10 000 encrypts.

Measures, in one process and one run, a local-key stack with and without the
memory cache, under one encryption context and under 100 contexts, counting
the provider's wrap (and unwrap) calls; and 1 KiB round trips with a cached
data key against raw Tink AEAD on the same payload.

    python benchmarks/bench_cache.py [--messages N] [--max-messages M]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aureus_builtin.memory_cache import MemoryCache
from aureus_core import KeyStack
from aureus_core.cache import CachePolicy, DataKeyCache
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
