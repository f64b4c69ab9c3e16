"""azure-kv's native coroutines (aio KeyClient over aiohttp) under AsyncKeyStack."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aureus_azure import AzureKeyVaultProvider
from aureus_azure.testing import KeyVaultEmulator
from aureus_core import AsyncKeyStack, KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.errors import ProviderUnavailable
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.testing import capture_audit
from aureus_core.testing.faults import FaultInjector, FaultPlan

CONTEXT = EncryptionContext({"tenant": "t1"})


@pytest.fixture
def injector(azure_managed_hsm: KeyVaultEmulator) -> Iterator[FaultInjector]:
    with FaultInjector(seed=5) as faults:
        azure_managed_hsm.use_faults(faults)
        try:
            yield faults
        finally:
            azure_managed_hsm.use_faults(None)


def _key(provider: AzureKeyVaultProvider, prefix: str) -> KeyRef:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return provider.create_key(name, KeySpec(key_type=KeyType.AES_256)).ref.with_version(None)


def test_native_errors_are_the_blocking_ones(
    azure_managed_hsm: KeyVaultEmulator, hsm_provider: AzureKeyVaultProvider
) -> None:
    ref = _key(hsm_provider, "errors")
    wrapped = hsm_provider.wrap(ref, b"k" * 32, CONTEXT)
    hsm_provider.close()  # forget the cached key info: every call below asks the service
    azure_managed_hsm.inject_fault(503)

    async def main() -> BaseException:
        try:
            with pytest.raises(ProviderUnavailable) as native:
                await hsm_provider.aunwrap(wrapped.key, wrapped.encrypted, CONTEXT)
            return native.value
        finally:
            await hsm_provider.aclose()

    native = asyncio.run(main())
    with pytest.raises(ProviderUnavailable) as blocking:
        hsm_provider.unwrap(wrapped.key, wrapped.encrypted, CONTEXT)
    assert type(native) is type(blocking.value)
    assert str(native) == str(blocking.value)


def test_a_deadline_cancels_the_requests_and_leaves_nothing_running(
    hsm_provider: AzureKeyVaultProvider, injector: FaultInjector
) -> None:
    keys = [_key(hsm_provider, f"deadline-{n}") for n in range(3)]
    injector.set_plan(FaultPlan(latency=1.0, operations=("wrapkey",)))

    async def main() -> tuple[float, set[asyncio.Task[Any]], list[tuple[object, object]]]:
        aio = AsyncKeyStack(KeyStack(providers={"azure-kv": hsm_provider}), own=True)
        with capture_audit() as events:
            start = time.perf_counter()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(aio.encrypt(b"late", keys=keys), timeout=0.5)
            took = time.perf_counter() - start
        left = asyncio.all_tasks() - {asyncio.current_task()}
        await aio.aclose()
        # The cancelled requests' TLS connections close gracefully once the (slow)
        # emulator reads their close_notify; a service's loop runs on, a test's must wait.
        await asyncio.sleep(1.2)
        outcomes = [(e["operation"], e["outcome"]) for e in events if e["phase"] == "outcome"]
        return took, left, outcomes

    took, left, outcomes = asyncio.run(main())
    assert took < 0.9  # not the 1 s each wrapKey takes
    assert left == set()
    assert outcomes == [("encrypt", "CancelledError")]


def test_key_vault_slow_while_local_is_up_still_decrypts(
    hsm_provider: AzureKeyVaultProvider, injector: FaultInjector, tmp_path: Path
) -> None:
    vault_key = _key(hsm_provider, "slow")
    with KeyStack.local(tmp_path / "ks") as local:
        local.create_key("local://fallback", "aes-256")
        providers = {"azure-kv": hsm_provider, "local": local.provider("local")}
        with KeyStack(providers=providers) as plain:
            message = plain.encrypt(b"payload", keys=[vault_key, "local://fallback"])
        injector.set_plan(FaultPlan(latency=3.0, operations=("unwrapkey",)))

        async def main() -> tuple[bytes, float]:
            async with AsyncKeyStack(KeyStack(providers=providers), own=True) as aio:
                start = time.perf_counter()
                plaintext = await aio.decrypt(message)
                return plaintext, time.perf_counter() - start

        plaintext, elapsed = asyncio.run(main())
    assert plaintext == b"payload"
    assert elapsed < 2.0  # Key Vault answers only after 3 s; local won


def test_three_vault_recipients_wrap_at_once_on_the_loop(
    hsm_provider: AzureKeyVaultProvider, injector: FaultInjector
) -> None:
    keys = [_key(hsm_provider, f"fan-{n}") for n in range(3)]
    for key in keys:
        hsm_provider.describe_key(key)  # key info cached: only the wraps remain
    injector.set_plan(FaultPlan(latency=0.3, operations=("wrapkey",)))

    async def main() -> tuple[bytes, float]:
        async with AsyncKeyStack(KeyStack(providers={"azure-kv": hsm_provider}), own=True) as aio:
            start = time.perf_counter()
            message = await aio.encrypt(b"fan-out", keys=keys)
            return message, time.perf_counter() - start

    message, elapsed = asyncio.run(main())
    assert elapsed < 2 * 0.3  # one after another: at least 0.9 s
    injector.clear()
    with KeyStack(providers={"azure-kv": hsm_provider}) as sync:
        for key in keys:
            assert sync.decrypt(message, keys=[key]) == b"fan-out"
