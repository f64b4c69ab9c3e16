"""Start-up of the ``aureus`` command: ``aureus encrypt`` of 1 KiB against ``import aureus_core``.

Whole processes, timed from the parent, interleaved in one run: ``python -c
pass``, ``python -c "import aureus_core"`` and ``aureus encrypt --key
local://bench IN -o OUT`` on a 1 KiB file with a local AES-256 key in a
temporary keystore.  Each cell is the median of N runs.  The children run
without ``PYTHONDONTWRITEBYTECODE`` (so bytecode is cached, as in an ordinary
install) and without ``AUREUS_*`` settings that would change the work (a
config file, an audit log, plugin filters); one untimed run of each warms the
cache.  The target is encrypt <= 1.5x the import of ``aureus_core``.

    .venv/bin/python benchmarks/bench_cli.py
    .venv/bin/python benchmarks/bench_cli.py --quick       # fewer runs (~5 s)
    .venv/bin/python benchmarks/bench_cli.py --runs 41
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.5
CLEARED = (
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONPROFILEIMPORTTIME",
    "AUREUS_CONFIG",
    "AUREUS_AUDIT_LOG",
    "AUREUS_LOAD_PLUGINS",
    "AUREUS_DISABLE_PLUGINS",
    "AUREUS_KEYSTORE_PASSPHRASE",
    "AUREUS_DEBUG",
)


def _aureus_command() -> list[str]:
    """The installed console script next to this interpreter, else the same entry point."""
    script = Path(sys.executable).with_name("aureus")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from aureus_core.cli import main; sys.exit(main())"]


def _time(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer runs, for a smoke run")
    parser.add_argument("--runs", type=int, default=None, help="process runs per row")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the numbers")
    args, _ = parser.parse_known_args(argv)
    runs = args.runs or (7 if args.quick else 21)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    with tempfile.TemporaryDirectory(prefix="aureus-bench-cli-") as workdir:
        work = Path(workdir)
        env = {k: v for k, v in os.environ.items() if k not in CLEARED}
        env["AUREUS_KEYSTORE"] = str(work / "keystore")
        aureus = _aureus_command()
        subprocess.run(
            [*aureus, "keys", "create", "--type", "aes-256", "bench"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        plaintext = work / "in.bin"
        plaintext.write_bytes(os.urandom(1024))
        message = work / "out.bin"
        rows = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "import aureus_core": [sys.executable, "-c", "import aureus_core"],
            "aureus encrypt 1 KiB": [
                *aureus,
                "encrypt",
                "--key",
                "local://bench",
                str(plaintext),
                "-o",
                str(message),
            ],
        }
        for command in rows.values():  # compile and cache the bytecode; check it works
            _time(command, env)
        decrypted = subprocess.run(
            [*aureus, "decrypt", str(message)], env=env, check=True, capture_output=True
        ).stdout
        assert decrypted == plaintext.read_bytes(), "the benchmark's message does not round-trip"
        times: dict[str, list[float]] = {name: [] for name in rows}
        for _ in range(runs):  # interleaved, so load hits every row alike
            for name, command in rows.items():
                times[name].append(_time(command, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["import aureus_core"]
    encrypt = medians["aureus encrypt 1 KiB"]
    ratio = encrypt / base
    print(f"{'process (median of ' + str(runs) + ')':<28} {'time':>9} {'x import':>9}")
    for name, value in medians.items():
        print(f"{name:<28} {value * 1e3:>7.1f}ms {value / base:>9.2f}")
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(
        f"aureus encrypt / import aureus_core = {ratio:.2f}  {verdict} (<= {TARGET}); "
        f"the command adds {(encrypt - base) * 1e3:.1f} ms to the import"
    )
    if load > (os.cpu_count() or 1):
        print(f"warning: 1-minute load average {load:.1f}: other work shares the CPUs")
    if len(_aureus_command()) > 1:
        print("note: no `aureus` script installed next to this interpreter; ran the entry point")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"runs": runs, "load": load, "median_s": medians, "ratio": ratio}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
