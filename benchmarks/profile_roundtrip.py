"""Where the time of a 1 KiB round trip goes: a profile grouped into rows, scaled to real time.

One local aes-256 key, one-shot encrypt then decrypt of 1 KiB under a
two-pair context, as in ``bench_envelope.py``.  The round trip is first timed
without a profiler; then ``cProfile`` attributes each function's own time
(``tottime``) to a row by the file it is in (C calls count for their caller's
row unless they are a cryptographic primitive).  The profiler inflates Python
calls more than C calls, so the shares are indicative; the rows are scaled so
they add up to the unprofiled time.

    .venv/bin/python benchmarks/profile_roundtrip.py           # this checkout
    .venv/bin/python benchmarks/profile_roundtrip.py --opcodes # bytecodes per row instead

``--opcodes`` counts the Python bytecodes each row executes per round trip
(``sys.settrace`` opcode events): slower, and blind to time spent inside C
calls, but the same on a busy machine as on an idle one, so two checkouts can
be compared while other work shares the cores.
    PYTHONPATH=/path/to/other/checkout:/path/to/other/checkout/plugins \\
        .venv/bin/python benchmarks/profile_roundtrip.py        # another one, same interpreter
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import aureus_core
from aureus_core import KeyStack

CONTEXT = {"purpose": "benchmark", "tenant": "acme"}

# (row, what identifies it in a profile entry "file:line(function)"); first match wins.
ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("crypto: HKDF / HMAC", ("hmac_digest", "HKDF", "kdf", "hmac.py")),
    ("crypto: AES-GCM (wrap, header tag, frame)", ("AESGCM", "aead")),
    ("crypto: random bytes", ("urandom", "token_bytes", "secrets.py")),
    ("local keystore: freshness stat, snapshot, usage", ("keystore.py", "posix.stat")),
    ("local provider: wrap/unwrap/owner_of", ("aureus_local",)),
    ("key references (KeyRef)", ("keyref.py", "KeyRef", "naming.py")),
    ("encryption context", ("context.py", "EncryptionContext")),
    ("header parse/serialize", ("header.py", "reader.py")),
    ("frames and message writer/reader", ("message.py", "frames.py", "buffers.py")),
    ("keyring: materials, candidates, unwrap race", ("keyring.py", "quorum.py")),
    ("provider proxies and circuit breaker", ("proxy.py", "reliability.py", "instrumented.py")),
    ("audit events", ("audit/", "uuid", "AuditEvent", "events.py")),
    ("telemetry", ("telemetry.py", "opentelemetry")),
    ("attrs (evolve, generated __init__)", ("attr", "<attrs generated")),
    ("data-key cache bookkeeping", ("cache.py",)),
    ("stack: encrypt/decrypt, _writer/_reader, lookups", ("stack.py",)),
    ("stdlib (contextlib, threading, struct, ...)", ("contextlib", "threading", "struct", "_abc")),
)


def _row(entry: tuple[str, int, str]) -> str:
    filename, _, function = entry
    text = f"{filename}:{function}"
    for row, needles in ROWS:
        if any(needle in text for needle in needles):
            return row
    return "other Python (builtins, glue)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument(
        "--opcodes", action="store_true", help="count bytecodes per row (load-independent)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aureus-profile-") as workdir:
        stack = KeyStack.local(Path(workdir) / "keystore", wrapping_keys=["local://bench"])
        stack.import_key("bench", "aes-256", raw=os.urandom(32))
        payload = os.urandom(1024)

        def round_trip() -> bytes:
            return stack.decrypt(stack.encrypt(payload, context=CONTEXT))

        assert round_trip() == payload
        for _ in range(300):
            round_trip()
        if args.opcodes:
            rounds = max(1, args.rounds // 10)
            counts = _count_opcodes(round_trip, rounds)
            stack.close()
            return _print_opcodes(counts, rounds)
        samples = []
        for _ in range(15):
            started = time.perf_counter()
            for _ in range(args.rounds // 15):
                round_trip()
            samples.append((time.perf_counter() - started) / (args.rounds // 15))
        real = statistics.median(samples)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.rounds):
            round_trip()
        profile.disable()
        stack.close()
    stats = pstats.Stats(profile)
    rows: dict[str, float] = defaultdict(float)
    calls = 0
    for entry, (_, ncalls, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows[_row(entry)] += tottime
        calls += ncalls
    total = sum(rows.values())
    print(f"aureus_core from {Path(aureus_core.__file__).parent}; Python {sys.version.split()[0]}")
    print(
        f"1 KiB round trip: {real * 1e6:.1f} µs unprofiled (median of 15 batches); "
        f"{calls / args.rounds:.0f} Python/C function calls per round trip"
    )
    print(f"{'row':<52} {'µs':>7} {'share':>6}")
    for row, seconds in sorted(rows.items(), key=lambda item: -item[1]):
        share = seconds / total
        print(f"{row:<52} {share * real * 1e6:>7.1f} {share:>6.1%}")
    return 0


def _count_opcodes(round_trip: Callable[[], bytes], rounds: int) -> dict[tuple[str, str], int]:
    """Bytecodes executed per ``(file, function)`` over ``rounds`` round trips."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    calls: dict[tuple[str, str], int] = defaultdict(int)

    def trace(frame: FrameType, event: str, _arg: object) -> Any:
        code = frame.f_code
        if event == "opcode":
            counts[(code.co_filename, code.co_name)] += 1
        elif event == "call":
            frame.f_trace_opcodes = True
            calls[(code.co_filename, code.co_name)] += 1
        return trace

    sys.settrace(trace)
    try:
        for _ in range(rounds):
            round_trip()
    finally:
        sys.settrace(None)
    counts[("", "<python calls>")] = sum(calls.values())
    return counts


def _print_opcodes(counts: dict[tuple[str, str], int], rounds: int) -> int:
    calls = counts.pop(("", "<python calls>"))
    rows: dict[str, int] = defaultdict(int)
    for (filename, function), n in counts.items():
        rows[_row((filename, 0, function))] += n
    total = sum(rows.values())
    print(f"aureus_core from {Path(aureus_core.__file__).parent}; Python {sys.version.split()[0]}")
    print(
        f"1 KiB round trip: {total / rounds:.0f} bytecodes in {calls / rounds:.0f} Python "
        "function calls (C calls not counted)"
    )
    print(f"{'row':<52} {'bytecodes':>9} {'share':>6}")
    for row, n in sorted(rows.items(), key=lambda item: -item[1]):
        print(f"{row:<52} {n / rounds:>9.0f} {n / total:>6.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
