"""Signing through the stack against raw ``cryptography``: local Ed25519 and ECDSA P-256, 1 KiB.

Both in one process, interleaved, on the same message; each cell is the
fastest of several batches (the least disturbed by other load), and the ratio
is raw time / stack time (1.0 = no overhead).  The stack's keys are created
in a temporary local keystore; the raw keys are generated here.

    .venv/bin/python benchmarks/bench_signing.py
    .venv/bin/python benchmarks/bench_signing.py --quick
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from aureus_core import KeyStack

TARGET = 0.85


def _best(operation: Callable[[], object], batch: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(batch):
            operation()
        best = min(best, (time.perf_counter() - started) / batch)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    args, _ = parser.parse_known_args(argv)
    batch, rounds = (20, 5) if args.quick else (50, 15)
    message = os.urandom(1024)
    with tempfile.TemporaryDirectory(prefix="aureus-bench-") as workdir:
        stack = KeyStack.local(Path(workdir) / "keystore")
        stack.create_key("ed", "ed25519")
        stack.create_key("ec", "ecdsa-p256")
        edwards = ed25519.Ed25519PrivateKey.generate()
        curve = ec.generate_private_key(ec.SECP256R1())
        ecdsa = ec.ECDSA(hashes.SHA256())
        signed = {name: stack.sign(message, key=f"local://{name}") for name in ("ed", "ec")}
        raw_ed, raw_ec = edwards.sign(message), curve.sign(message, ecdsa)
        pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "sign ed25519": (
                lambda: stack.sign(message, key="local://ed"),
                lambda: edwards.sign(message),
            ),
            "verify ed25519": (
                lambda: stack.verify(message, signed["ed"], key="local://ed"),
                lambda: edwards.public_key().verify(raw_ed, message),
            ),
            "sign ecdsa-p256": (
                lambda: stack.sign(message, key="local://ec"),
                lambda: curve.sign(message, ecdsa),
            ),
            "verify ecdsa-p256": (
                lambda: stack.verify(message, signed["ec"], key="local://ec"),
                lambda: curve.public_key().verify(raw_ec, message, ecdsa),
            ),
        }
        for through_stack, raw in pairs.values():  # warm up, and check the stack's verdicts
            assert through_stack() is not False
            raw()
        print(f"{'operation (1 KiB)':<20} {'stack':>10} {'raw':>10} {'raw/stack':>10}  target")
        for name, (through_stack, raw) in pairs.items():
            stack_time = raw_time = float("inf")
            for _ in range(3):  # interleaved, so load hits both alike
                stack_time = min(stack_time, _best(through_stack, batch, rounds))
                raw_time = min(raw_time, _best(raw, batch, rounds))
            ratio = raw_time / stack_time
            verdict = "PASS" if ratio >= TARGET else "MISS"
            print(
                f"{name:<20} {stack_time * 1e6:>8.1f}µs {raw_time * 1e6:>8.1f}µs "
                f"{ratio:>10.2f}  {verdict} (>= {TARGET})"
            )
        stack.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
