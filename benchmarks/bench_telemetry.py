"""Telemetry overhead on ``stack.encrypt`` of 1 KiB (local key, no cache), in one run.

Rows, measured interleaved (round-robin, one sample per row per round):

- ``before``: the placeholder telemetry this work replaced (a bare ``yield``,
  providers not wrapped, no trace-ID lookup);
- ``otel absent``: ``opentelemetry-api`` treated as not installed;
- ``api, no sdk``: the API installed, no tracer or meter provider set;
- ``api no-op objects``: the API's no-op providers passed explicitly, so
  every span and measurement goes through them (what an application that
  sets no-op providers globally pays);
- ``sdk, no exporter``: an SDK tracer and meter provider recording spans and
  metrics but exporting nowhere (for scale; needs ``opentelemetry-sdk``).

    python benchmarks/bench_telemetry.py [--rounds 40] [--batch 200] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import aureus_core.stack as stack_module
from aureus_core import KeyProvider, KeyStack, telemetry
from aureus_core.telemetry import Telemetry


class Placeholder(Telemetry):
    """What ``Telemetry`` was before: nothing around operations, providers unwrapped."""

    @contextmanager
    def operation(self, name: str, attributes: Mapping[str, Any]) -> Iterator[None]:
        yield

    def instrument(self, provider: KeyProvider) -> KeyProvider:
        return provider


def no_ids() -> tuple[str | None, str | None]:
    return None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="5 rounds of 50 calls (CI smoke)")
    args, ignored = parser.parse_known_args()  # `nox -s bench -- ARGS` passes every script's
    if ignored:
        print(f"ignoring options for other benchmarks: {' '.join(ignored)}")
    if args.quick:
        args.rounds, args.batch = 5, 50

    if not telemetry.otel_available():
        raise SystemExit("opentelemetry-api is not installed: nothing to compare")
    real_ids = telemetry.current_ids
    scratch = tempfile.TemporaryDirectory(prefix="aureus-bench-telemetry-")
    directory = scratch.name
    setup = KeyStack.local(directory)
    setup.create_key("bench")
    setup.close()

    def stack(tel: Telemetry) -> KeyStack:
        return KeyStack.local(directory, wrapping_keys=["local://bench"], telemetry=tel)

    def before_mode() -> Callable[[], None]:
        vars(stack_module)["current_ids"] = no_ids

        def undo() -> None:
            vars(stack_module)["current_ids"] = real_ids

        return undo

    def absent_mode() -> Callable[[], None]:
        telemetry._available = False
        return lambda: setattr(telemetry, "_available", True)

    rows: dict[str, tuple[KeyStack, Callable[[], Callable[[], None]]]] = {
        "before": (stack(Placeholder()), before_mode),
        "otel absent": (stack(Telemetry()), absent_mode),
        "api, no sdk": (stack(Telemetry()), lambda: lambda: None),
    }
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    noop = Telemetry(tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
    rows["api no-op objects"] = (stack(noop), lambda: lambda: None)
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider

        recording = Telemetry(tracer_provider=TracerProvider(), meter_provider=MeterProvider())
        rows["sdk, no exporter"] = (stack(recording), lambda: lambda: None)
    except ImportError:
        print("opentelemetry-sdk not installed: no 'sdk' row")

    payload = os.urandom(1024)
    samples: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(3):  # warm up every row
        for item, mode in rows.values():
            undo = mode()
            for _ in range(args.batch):
                item.encrypt(payload)
            undo()
    gc.disable()
    try:
        for _ in range(args.rounds):
            for name, (item, mode) in rows.items():
                undo = mode()
                start = time.perf_counter()
                for _ in range(args.batch):
                    item.encrypt(payload)
                samples[name].append((time.perf_counter() - start) / args.batch)
                undo()
                gc.collect()
    finally:
        gc.enable()

    for item, _ in rows.values():
        item.close()
    scratch.cleanup()

    base = statistics.median(samples["before"])
    print(f"stack.encrypt, 1 KiB, local key; {args.rounds} rounds x {args.batch} calls per row")
    print(f"{'row':<18} {'median':>10} {'min':>10} {'overhead':>10}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(
            f"{name:<18} {median * 1e6:>8.1f}µs {min(values) * 1e6:>8.1f}µs "
            f"{(median - base) * 1e6:>+8.2f}µs"
        )


if __name__ == "__main__":
    main()
