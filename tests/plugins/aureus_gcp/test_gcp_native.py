"""gcp-kms's native coroutines (grpc.aio) under AsyncKeyStack: errors, outages, cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from aureus_core import AsyncKeyStack, KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.errors import KeyNotFound, ProviderUnavailable
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.testing import capture_audit
from aureus_core.testing.faults import FaultInjector, FaultPlan
from aureus_gcp import GcpKmsProvider
from aureus_gcp.testing import CloudKmsEmulator

CONTEXT = EncryptionContext({"tenant": "t1"})


@pytest.fixture
def injector(gcp_kms: CloudKmsEmulator) -> Iterator[FaultInjector]:
    with FaultInjector(seed=3) as faults:
        gcp_kms.use_faults(faults)
        try:
            yield faults
        finally:
            gcp_kms.use_faults(None)


def _key(provider: GcpKmsProvider, name: str) -> KeyRef:
    return provider.create_key(name, KeySpec(key_type=KeyType.AES_256)).ref


def test_native_errors_are_the_blocking_ones(
    gcp_kms: CloudKmsEmulator, make_gcp_provider: Callable[..., GcpKmsProvider]
) -> None:
    provider = make_gcp_provider(retry_deadline=0.3)
    ref = _key(provider, "errors")
    wrapped = provider.wrap(ref, b"k" * 32, CONTEXT)
    gcp_kms.fail("Decrypt", grpc.StatusCode.UNAVAILABLE)

    async def main() -> tuple[BaseException, BaseException]:
        try:
            with pytest.raises(ProviderUnavailable) as native:
                await provider.aunwrap(wrapped.key, wrapped.encrypted, CONTEXT)
            missing_key = KeyRef.parse(f"{ref.with_version(None).uri}-missing")
            with pytest.raises(KeyNotFound) as missing:
                await provider.awrap(missing_key, b"k" * 32, CONTEXT)
            return native.value, missing.value
        finally:
            await provider.aclose()

    native, missing = asyncio.run(main())
    with pytest.raises(ProviderUnavailable) as blocking:
        provider.unwrap(wrapped.key, wrapped.encrypted, CONTEXT)
    assert type(native) is type(blocking.value)
    assert native.code == blocking.value.code
    assert "attempts" in str(native)  # the async retry policy retried, as the blocking one
    assert "missing" in str(missing)


def test_gcp_slow_while_local_is_up_still_decrypts_and_cancels_the_loser(
    gcp_kms: CloudKmsEmulator,
    make_gcp_provider: Callable[..., GcpKmsProvider],
    injector: FaultInjector,
    tmp_path: Path,
) -> None:
    provider = make_gcp_provider()
    gcp_key = _key(provider, "slow")
    with KeyStack.local(tmp_path / "ks") as local:
        local.create_key("local://fallback", "aes-256")
        providers = {"gcp-kms": provider, "local": local.provider("local")}
        with KeyStack(providers=providers) as plain:
            message = plain.encrypt(b"payload", keys=[gcp_key, "local://fallback"])
        injector.set_plan(FaultPlan(latency=3.0, operations=("Decrypt",)))

        async def main() -> tuple[bytes, float]:
            async with AsyncKeyStack(KeyStack(providers=providers), own=True) as aio:
                start = time.perf_counter()
                plaintext = await aio.decrypt(message)
                return plaintext, time.perf_counter() - start

        plaintext, elapsed = asyncio.run(main())
    assert plaintext == b"payload"
    assert elapsed < 2.0  # Cloud KMS answers only after 3 s; local won and the RPC was cancelled


def test_a_deadline_cancels_the_rpcs_and_leaves_nothing_running(
    make_gcp_provider: Callable[..., GcpKmsProvider], injector: FaultInjector
) -> None:
    provider = make_gcp_provider()
    keys = [_key(provider, f"deadline-{n}") for n in range(3)]
    injector.set_plan(FaultPlan(latency=3.0, operations=("Encrypt",)))

    async def main() -> tuple[float, set[asyncio.Task[Any]], list[tuple[object, object]]]:
        aio = AsyncKeyStack(KeyStack(providers={"gcp-kms": provider}), own=True)
        with capture_audit() as events:
            start = time.perf_counter()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(aio.encrypt(b"late", keys=keys), timeout=0.3)
            took = time.perf_counter() - start
        left = asyncio.all_tasks() - {asyncio.current_task()}
        await aio.aclose()
        outcomes = [(e["operation"], e["outcome"]) for e in events if e["phase"] == "outcome"]
        return took, left, outcomes

    took, left, outcomes = asyncio.run(main())
    assert took < 1.5  # not the 3 s the three Encrypt calls would take
    assert left == set()
    assert outcomes == [("encrypt", "CancelledError")]


def test_three_gcp_recipients_wrap_at_once_on_the_loop(
    make_gcp_provider: Callable[..., GcpKmsProvider], injector: FaultInjector
) -> None:
    provider = make_gcp_provider()
    keys = [_key(provider, f"fan-{n}") for n in range(3)]
    # 0.5 s per Encrypt: concurrent is ~0.5 s, one after another at least 1.5 s, so
    # 1.5 s is the bound that tells them apart with the most room for the first call's
    # channel set-up on a busy CI machine.
    injector.set_plan(FaultPlan(latency=0.5, operations=("Encrypt",)))

    async def main() -> tuple[bytes, float]:
        async with AsyncKeyStack(KeyStack(providers={"gcp-kms": provider}), own=True) as aio:
            start = time.perf_counter()
            message = await aio.encrypt(b"fan-out", keys=keys)
            return message, time.perf_counter() - start

    message, elapsed = asyncio.run(main())
    assert elapsed < 3 * 0.5
    injector.clear()
    with KeyStack(providers={"gcp-kms": provider}) as sync:
        for key in keys:
            assert sync.decrypt(message, keys=[key]) == b"fan-out"
