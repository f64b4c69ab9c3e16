"""Peak memory of streaming a large file through encrypt_stream and decrypt_stream.

The parent writes a plaintext file (default 1 GiB, in 1 MiB chunks from
os.urandom, or sparse with --sparse) into a temporary directory, then runs one
fresh subprocess per direction so each peak RSS is that direction's alone.  A
child reports its own peak (VmHWM from /proc/self/status, read at the end) and
its baseline after imports and key setup.  The parent also records the child's
ru_maxrss from wait4(), which on Linux is only an upper bound: it keeps the
high-water mark from before exec(), i.e. the parent's RSS at spawn time.  The
decrypted file's SHA-256 must equal the original's (both hashed in chunks).
Nothing holds the file in memory.

    .venv/bin/python benchmarks/bench_stream_memory.py            # 1 GiB
    .venv/bin/python benchmarks/bench_stream_memory.py --size 256 # MiB
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
CHUNK = MIB
TARGET_PEAK_MIB = 64
KEY_NAME = "bench"
CONTEXT = {"purpose": "stream-memory-benchmark"}
QUICK_SIZE_MIB = 64
ENVELOPE_ONLY_OPTIONS = ("--json", "--sizes", "--sweep-frame-length", "--glibc-malloc")
"""Options of bench_envelope.py; ``nox -s bench -- ARGS`` passes ARGS to every script."""


def parse_size(text: str) -> int:
    """``65536``, ``64K``, ``1M`` (binary units) to bytes, as bench_envelope.py accepts."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)(?:i?[bB])?\s*", text)
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 65536, 64K, 1M)")
    return int(match.group(1)) * {"": 1, "k": 1024, "m": MIB}[match.group(2).lower()]


# -- child: one direction, in its own process -----------------------------------


def _proc_status_kib(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (``VmHWM``, ``VmRSS``), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def child(direction: str, keystore: Path, src: Path, dst: Path, frame_length: int | None) -> int:
    """Stream ``src`` to ``dst``; print one JSON line with the time and memory figures."""
    from aureus_core import KeyStack

    with KeyStack.local(keystore, wrapping_keys=[f"local://{KEY_NAME}"]) as stack:
        stack.describe_key(f"local://{KEY_NAME}")  # open the keystore before the baseline is taken
        baseline = {"rss_kib": _proc_status_kib("VmRSS"), "hwm_kib": _proc_status_kib("VmHWM")}
        with src.open("rb") as source, dst.open("wb") as sink:
            started = time.perf_counter()
            if direction == "encrypt":
                count = stack.encrypt_stream(
                    source, sink, context=CONTEXT, frame_length=frame_length
                )
            else:
                count = stack.decrypt_stream(source, sink, context=CONTEXT)
            sink.flush()
            seconds = time.perf_counter() - started
    result = {
        "direction": direction,
        "plaintext_bytes": count,
        "seconds": seconds,
        "baseline": baseline,
        "peak_hwm_kib": _proc_status_kib("VmHWM"),
    }
    print(json.dumps(result), flush=True)
    return 0


# -- parent ---------------------------------------------------------------------


def write_plaintext(path: Path, size: int, *, sparse: bool) -> tuple[str, float]:
    """Create the input file without holding it in memory; return its SHA-256 and seconds."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    if sparse:
        with path.open("wb") as out:
            out.truncate(size)
        return sha256_file(path), time.perf_counter() - started
    with path.open("wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(CHUNK, remaining))
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return digest.hexdigest(), time.perf_counter() - started


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as source:
        while got := source.readinto(buffer):
            digest.update(view[:got])
    return digest.hexdigest()


def run_child(
    direction: str, keystore: Path, src: Path, dst: Path, frame_length: int | None
) -> dict[str, Any]:
    """Run one direction in a fresh interpreter; add its wall time and wait4() ru_maxrss."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        direction,
        "--keystore",
        str(keystore),
        "--src",
        str(src),
        "--dst",
        str(dst),
    ]
    if frame_length is not None:
        command += ["--frame-length", str(frame_length)]
    parent_rss = _proc_status_kib("VmRSS")
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    process.stdout.close()
    # wait4 gives this child's own rusage; RUSAGE_CHILDREN would be the max over all children.
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"the {direction} subprocess failed (exit {process.returncode})")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    result["ru_maxrss_kib"] = usage.ru_maxrss  # kilobytes on Linux
    result["parent_rss_at_spawn_kib"] = parent_rss
    return result


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


def print_report(results: list[dict[str, Any]], size: int, frame_length: int) -> bool:
    print()
    header = (
        f"{'direction':<9} {'bytes':>14} {'time':>7} {'MB/s':>7} {'baseline RSS':>12} "
        f"{'peak RSS':>9} {'ru_maxrss':>9} {'parent RSS':>10} {'target':>6}"
    )
    print(header)
    print(
        f"{'':<9} {'':>14} {'(s)':>7} {'':>7} {'(MiB)':>12} {'(MiB)':>9} {'(MiB)':>9} {'(MiB)':>10}"
    )
    print("-" * len(header))
    passed = True
    for r in results:
        peak = r["peak_hwm_kib"] if r["peak_hwm_kib"] is not None else r["ru_maxrss_kib"]
        ok = peak <= TARGET_PEAK_MIB * 1024
        passed = passed and ok
        print(
            f"{r['direction']:<9} {r['plaintext_bytes']:>14,} {r['seconds']:>7.2f} "
            f"{size / r['seconds'] / 1e6:>7,.1f} {_mib(r['baseline']['rss_kib']):>12} "
            f"{_mib(r['peak_hwm_kib']):>9} {_mib(r['ru_maxrss_kib']):>9} "
            f"{_mib(r['parent_rss_at_spawn_kib']):>10} {'PASS' if ok else 'MISS':>6}"
        )
    print()
    print(
        f"Target: peak RSS <= {TARGET_PEAK_MIB} MiB in both directions "
        f"(frame length {frame_length:,} bytes): {'PASS' if passed else 'MISS'}"
    )
    print("  baseline RSS  the child's VmRSS after imports and keystore setup, before streaming")
    print("  peak RSS      the child's VmHWM, read by the child at the end (what the target uses)")
    print("  ru_maxrss     wait4() of the child; an upper bound: Linux keeps the pre-exec")
    print("                high-water mark, so it is at least the parent's RSS at spawn")
    print("  time, MB/s    the streaming call alone, plaintext bytes (10^6) per second")
    return passed


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", type=int, default=1024, metavar="MIB", help="default 1024")
    parser.add_argument(
        "--quick", action="store_true", help=f"stream {QUICK_SIZE_MIB} MiB (unless --size)"
    )
    parser.add_argument("--frame-length", type=parse_size, metavar="N", help="default: Aureus's")
    parser.add_argument("--sparse", action="store_true", help="a sparse (all-zero) input file")
    parser.add_argument("--dir", type=Path, help="where to make the temporary directory")
    parser.add_argument("--keep-dir", action="store_true", help="keep the files afterwards")
    parser.add_argument("--child", choices=["encrypt", "decrypt"], help=argparse.SUPPRESS)
    parser.add_argument("--keystore", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dst", type=Path, help=argparse.SUPPRESS)
    args, unknown = parser.parse_known_args(argv)
    if args.quick and "--size" not in (argv if argv is not None else sys.argv[1:]):
        args.size = QUICK_SIZE_MIB
    return args, unknown


def main(argv: list[str] | None = None) -> int:
    args, unknown = parse_args(argv)
    if args.child:
        return child(args.child, args.keystore, args.src, args.dst, args.frame_length)
    foreign = [a for a in unknown if a.startswith("--")]
    if any(a.split("=")[0] not in ENVELOPE_ONLY_OPTIONS for a in foreign):
        raise SystemExit(f"unknown options: {' '.join(unknown)}")
    if unknown:
        print(f"(ignoring bench_envelope.py options: {' '.join(unknown)})")
    if args.size < 1:
        raise SystemExit("--size must be at least 1 (MiB)")
    size = args.size * MIB

    from aureus_core import KeyStack
    from aureus_core.envelope.message import DEFAULT_FRAME_LENGTH

    workdir = Path(tempfile.mkdtemp(prefix="aureus-stream-memory-", dir=args.dir))
    try:
        keystore = workdir / "keystore"
        with KeyStack.local(keystore) as stack:
            stack.create_key(KEY_NAME, "aes-256")
        plain, sealed, opened = workdir / "plain.bin", workdir / "sealed.bin", workdir / "out.bin"
        print(
            f"Streaming {args.size} MiB through encrypt_stream and decrypt_stream, one "
            f"subprocess per direction (Python {sys.version.split()[0]}, files in {workdir})"
        )
        expected, seconds = write_plaintext(plain, size, sparse=args.sparse)
        kind = "sparse" if args.sparse else "os.urandom"
        print(f"input   {kind} file written and hashed in {seconds:.1f} s")
        results = [
            run_child("encrypt", keystore, plain, sealed, args.frame_length),
            run_child("decrypt", keystore, sealed, opened, None),
        ]
        started = time.perf_counter()
        actual = sha256_file(opened)
        overhead = sealed.stat().st_size - size
        verdict = "matches" if actual == expected else "DIFFERS"
        print(
            f"check   SHA-256 of the decrypted file {verdict} "
            f"({time.perf_counter() - started:.1f} s); message overhead {overhead:,} bytes"
        )
        if actual != expected:
            raise SystemExit("the decrypted file differs from the original")
        passed = print_report(results, size, args.frame_length or DEFAULT_FRAME_LENGTH)
    finally:
        if args.keep_dir:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
