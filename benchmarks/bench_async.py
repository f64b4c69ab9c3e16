"""Async API and fan-out: latency of multi-recipient calls, throughput from one event loop.

Two parts, in one process and one run:

1. Fan-out, no cloud: the local keystore behind ``LatencyProvider`` (50 ms per
   call).  An encrypt to 3 recipients with ``[stack] concurrency = 1`` (one
   wrap after another, as before fan-out) against the default pool; a
   decrypt whose first candidate is down (its calls time out after 200 ms)
   and whose second answers, sequential against concurrent.  Then the same
   two calls through ``AsyncKeyStack`` with the wrapper in its native mode
   (the wraps and the race awaited on the event loop).
2. Throughput: ``--messages`` (default 1,000) concurrent 1 KiB encrypts from
   one event loop, ``AsyncKeyStack.encrypt`` (native coroutines where the
   provider has them), the same with the provider's coroutines hidden (the
   thread-pool path), and ``asyncio.to_thread`` around ``KeyStack.encrypt``
   with a default executor of the same size, against each backend: the local
   keystore, moto's server (AWS KMS), the in-repo Cloud KMS emulator and the
   Key Vault (Managed HSM) emulator.  Backends whose extras are not
   installed are skipped with the reason.

    python benchmarks/bench_async.py [--messages 1000] [--workers 16] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aureus_core import AsyncKeyStack, KeyStack
from aureus_core.config import StackConfig
from aureus_core.interfaces import KeyProvider
from aureus_core.keys import KeySpec, KeyType
from aureus_core.proxy import ProviderProxy, native_async
from aureus_core.testing.latency import LatencyProvider
from aureus_local import LocalKeyProvider

LATENCY = 0.05
TIMEOUT = 0.2
KEYS = ["local://alpha", "local://beta", "local://gamma"]


def _median_ms(call: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


class Blocking(ProviderProxy):
    """A provider with its native coroutines hidden: AsyncKeyStack uses its thread pool."""

    @property
    def native_async(self) -> bool:
        return False


async def _async_median_ms(call: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _native_fan_out(local: KeyProvider, message: bytes, runs: int) -> tuple[float, float]:
    slow = LatencyProvider(local, latency=LATENCY, native=True)
    down = LatencyProvider(local, latency=LATENCY, down=[KEYS[0]], timeout=TIMEOUT, native=True)
    config = StackConfig(providers={"local": {"circuit_breaker": {"enabled": False}}})

    async def main() -> tuple[float, float]:
        async with (
            AsyncKeyStack(KeyStack(providers={"local": slow}), own=True) as fast,
            AsyncKeyStack(KeyStack(config=config, providers={"local": down}), own=True) as racing,
        ):
            await fast.encrypt(b"warm", keys=KEYS)
            encrypt = await _async_median_ms(lambda: fast.encrypt(b"x" * 1024, keys=KEYS), runs)
            decrypt = await _async_median_ms(lambda: racing.decrypt(message), runs)
            return encrypt, decrypt

    return asyncio.run(main())


def fan_out(directory: Path, runs: int) -> None:
    local = LocalKeyProvider(directory)
    for uri in KEYS:
        local.create_key(uri.split("//")[1], KeySpec(key_type=KeyType.AES_256))
    print(f"\n## Fan-out: local keystore + LatencyProvider ({LATENCY * 1000:.0f} ms per call)\n")
    print(
        "| call | one after another | concurrent (pool) | AsyncKeyStack, native "
        "| slowest recipient | ratio pool / native |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    slow = LatencyProvider(local, latency=LATENCY)
    results = {}
    for concurrency in (1, 8):
        with KeyStack(
            config=StackConfig(concurrency=concurrency), providers={"local": slow}
        ) as stack:
            stack.encrypt(b"warm", keys=KEYS)
            results[concurrency] = _median_ms(lambda: stack.encrypt(b"x" * 1024, keys=KEYS), runs)
    encrypts = dict(results)
    with KeyStack(providers={"local": local}) as plain:
        message = plain.encrypt(b"x" * 1024, keys=KEYS[:2])
    down = LatencyProvider(local, latency=LATENCY, down=[KEYS[0]], timeout=TIMEOUT)
    decrypts = {}
    for concurrency in (1, 8):
        # a breaker that never opens: every run pays the dead candidate's timeout
        config = StackConfig(
            concurrency=concurrency,
            providers={"local": {"circuit_breaker": {"enabled": False}}},
        )
        with KeyStack(config=config, providers={"local": down}) as stack:
            decrypts[concurrency] = _median_ms(lambda: stack.decrypt(message), runs)
    native_encrypt, native_decrypt = _native_fan_out(local, message, runs)
    slowest = LATENCY * 1000
    print(
        f"| encrypt to 3 recipients | {encrypts[1]:.1f} ms | {encrypts[8]:.1f} ms "
        f"| {native_encrypt:.1f} ms | {slowest:.0f} ms "
        f"| {encrypts[8] / slowest:.2f}x / {native_encrypt / slowest:.2f}x |"
    )
    print(
        f"| decrypt, 1st candidate down ({TIMEOUT * 1000:.0f} ms timeout), 2nd up "
        f"| {decrypts[1]:.1f} ms | {decrypts[8]:.1f} ms | {native_decrypt:.1f} ms "
        f"| {slowest:.0f} ms | {decrypts[8] / slowest:.2f}x / {native_decrypt / slowest:.2f}x |"
    )


@contextlib.contextmanager
def backends(directory: Path) -> Iterator[list[tuple[str, KeyStack | None, str]]]:
    """(name, stack, key URI or skip reason) for each backend."""
    found: list[tuple[str, KeyStack | None, str]] = []
    with contextlib.ExitStack() as exits:
        local = KeyStack.local(directory / "tp")
        exits.callback(local.close)
        local.create_key("local://tp", "aes-256")
        found.append(("local keystore", local, "local://tp"))
        try:
            from aureus_aws import AwsKmsOptions, AwsKmsProvider
            from aureus_aws.testing import TEST_ENVIRONMENT, MotoServer

            os.environ.update(TEST_ENVIRONMENT)
            server = exits.enter_context(MotoServer())
            aws = AwsKmsProvider(
                AwsKmsOptions.from_mapping({"region": "us-east-1", "endpoint_url": server.url})
            )
            ref = aws.create_key("bench", KeySpec(key_type=KeyType.AES_256)).ref
            stack = KeyStack(providers={"aws-kms": aws})
            exits.callback(stack.close)
            found.append(("AWS KMS (moto server)", stack, ref.uri))
        except ImportError as error:
            found.append(("AWS KMS (moto server)", None, f"skipped: {error}"))
        try:
            from aureus_gcp.testing import CloudKmsEmulator

            emulator = exits.enter_context(CloudKmsEmulator())
            gcp = emulator.provider(project="bench", location="global", key_ring="bench")
            ref = gcp.create_key("bench", KeySpec(key_type=KeyType.AES_256)).ref
            stack = KeyStack(providers={"gcp-kms": gcp})
            exits.callback(stack.close)
            found.append(("Cloud KMS (emulator)", stack, ref.uri))
        except ImportError as error:
            found.append(("Cloud KMS (emulator)", None, f"skipped: {error}"))
        try:
            from aureus_azure.testing import KeyVaultEmulator

            vault = exits.enter_context(KeyVaultEmulator(kind="managedhsm"))
            azure = vault.provider()
            ref = azure.create_key("bench", KeySpec(key_type=KeyType.AES_256)).ref
            stack = KeyStack(providers={"azure-kv": azure})
            exits.callback(stack.close)
            found.append(("Key Vault Managed HSM (emulator)", stack, ref.uri))
        except ImportError as error:
            found.append(("Key Vault Managed HSM (emulator)", None, f"skipped: {error}"))
        yield found


async def _async_stack(stack: KeyStack, key: str, n: int, workers: int) -> float:
    payload = os.urandom(1024)
    async with AsyncKeyStack(stack, workers=workers) as aio:
        # warm: every worker's connection (a native client opens its own per event loop)
        await asyncio.gather(*(aio.encrypt(payload, keys=[key]) for _ in range(workers)))
        start = time.perf_counter()
        await asyncio.gather(*(aio.encrypt(payload, keys=[key]) for _ in range(n)))
        return n / (time.perf_counter() - start)


async def _to_thread(stack: KeyStack, key: str, n: int, workers: int) -> float:
    payload = os.urandom(1024)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=workers))
    await asyncio.gather(
        *(asyncio.to_thread(stack.encrypt, payload, keys=[key]) for _ in range(workers))
    )
    start = time.perf_counter()
    await asyncio.gather(*(asyncio.to_thread(stack.encrypt, payload, keys=[key]) for _ in range(n)))
    return n / (time.perf_counter() - start)


def throughput(directory: Path, n: int, workers: int) -> None:
    print(f"\n## {n} concurrent 1 KiB encrypts from one event loop ({workers} threads each)\n")
    print(
        "| backend | AsyncKeyStack (native where offered) | AsyncKeyStack, thread pool only "
        "| asyncio.to_thread(KeyStack.encrypt) | ratio native / to_thread |"
    )
    print("| --- | --- | --- | --- | --- |")
    with backends(directory) as found:
        for name, stack, key in found:
            if stack is None:
                print(f"| {name} | {key} | | | |")
                continue
            scheme = key.split("://")[0]
            provider = stack.provider(scheme)
            native = native_async(provider)
            pooled = KeyStack(providers={scheme: Blocking(stack._providers[scheme])})
            rates: dict[str, list[float]] = {"aio": [], "pool": [], "thread": []}
            for _ in range(2):  # interleaved, best of two each
                rates["aio"].append(asyncio.run(_async_stack(stack, key, n, workers)))
                if native:
                    rates["pool"].append(asyncio.run(_async_stack(pooled, key, n, workers)))
                rates["thread"].append(asyncio.run(_to_thread(stack, key, n, workers)))
            aio, thread = max(rates["aio"]), max(rates["thread"])
            pool = f"{max(rates['pool']):,.0f} msg/s" if native else "(no native coroutines)"
            print(
                f"| {name} | {aio:,.0f} msg/s | {pool} | {thread:,.0f} msg/s "
                f"| {aio / thread:.2f}x |"
            )


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="100 messages, 5 runs (CI smoke)")
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        print(f"ignoring options for other benchmarks: {' '.join(ignored)}")
    if args.quick:
        args.messages, args.runs = 100, 5
    with tempfile.TemporaryDirectory() as directory:
        fan_out(Path(directory) / "fan", args.runs)
        throughput(Path(directory), args.messages, args.workers)


if __name__ == "__main__":
    main()
