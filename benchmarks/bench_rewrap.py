"""Rewrap cost, against decrypting alone and against decrypting then re-encrypting.

For one in-memory message per suite (default 64 MiB, 64 KiB frames), prints
the best of N runs of ``rewrap_stream``, one-shot ``rewrap``,
``decrypt_stream``, ``encrypt_stream`` and one-shot decrypt + encrypt, plus the
peak traced Python memory of each streamed run.  Output goes to a
sink that discards it, so the numbers are CPU cost, not disk speed.

    .venv/bin/python benchmarks/bench_rewrap.py [--size MIB] [--runs N] [--quick]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable

from aureus_core import KeyStack

MIB = 1024 * 1024


class Discard(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        return memoryview(data).nbytes  # type: ignore[arg-type]


def best(run: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def peak(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="message size in MiB (default 64)")
    parser.add_argument("--runs", type=int, default=5, help="runs per row; the best counts")
    parser.add_argument("--quick", action="store_true", help="8 MiB, 2 runs: a smoke run")
    args = parser.parse_args()
    size, runs = (8, 2) if args.quick else (args.size, args.runs)
    plaintext = os.urandom(size * MIB)
    with tempfile.TemporaryDirectory() as directory, KeyStack.local(directory) as stack:
        for name in ("old", "new"):
            stack.create_key(name, "aes-256")
        to = ["local://new"]
        for signed in (False, True):
            message = stack.encrypt(plaintext, keys=["local://old"], signed=signed)

            def streamed(message: bytes = message) -> int:
                return stack.rewrap_stream(io.BytesIO(message), Discard(), to_keys=to)

            rows: dict[str, tuple[Callable[[], object], bool]] = {
                "rewrap_stream": (streamed, True),
                "rewrap": (lambda m=message: stack.rewrap(m, to_keys=to), False),
                "decrypt_stream": (
                    lambda m=message: stack.decrypt_stream(io.BytesIO(m), Discard()),
                    True,
                ),
                "encrypt_stream": (
                    lambda s=signed: stack.encrypt_stream(
                        io.BytesIO(plaintext), Discard(), keys=to, signed=s
                    ),
                    True,
                ),
                "decrypt + encrypt (one-shot)": (
                    lambda m=message, s=signed: stack.encrypt(stack.decrypt(m), keys=to, signed=s),
                    False,
                ),
            }
            print(f"{'0x0578 (signed)' if signed else '0x0478'}, {size} MiB, 64 KiB frames")
            for label, (run, stream) in rows.items():
                seconds = best(run, runs)
                memory = f"  peak {peak(run) // 1024:6d} KiB" if stream else ""
                print(f"  {label:34s} {seconds * 1000:8.1f} ms {size / seconds:8.0f} MiB/s{memory}")


if __name__ == "__main__":
    main()
