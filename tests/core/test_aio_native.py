"""AsyncKeyStack with native async providers: fan-out and the race on the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aureus_core import AsyncKeyStack, DecryptionError, KeyStack
from aureus_core.config import StackConfig
from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey, WrappedKey
from aureus_core.errors import ProviderUnavailable
from aureus_core.interfaces import AsyncKeyProvider, KeyProvider
from aureus_core.keyref import KeyRef
from aureus_core.proxy import ProviderProxy, native_async
from aureus_core.reliability import OPEN_CODE
from aureus_core.testing import capture_audit
from aureus_core.testing.latency import LatencyProvider

T = TypeVar("T")
SCHEMES = ["east", "west", "dr"]
LATENCY = 0.05


class Renamed(ProviderProxy):
    """A local keystore serving another URI scheme, so one test has several providers."""

    __slots__ = ("_name",)

    def __init__(self, provider: KeyProvider, name: str) -> None:
        super().__init__(provider)
        self._name = name

    @property
    def scheme(self) -> str:
        return self._name

    @scheme.setter
    def scheme(self, value: str) -> None:
        self._name = value

    def _local(self, ref: KeyRef) -> KeyRef:
        return attrs.evolve(ref, scheme="local")

    def _ours(self, ref: KeyRef) -> KeyRef:
        return attrs.evolve(ref, scheme=self._name)

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        wrapped = self._provider.wrap(self._local(key), data_key, context)
        encrypted = attrs.evolve(wrapped.encrypted, provider_id=f"aureus-{self._name}")
        return WrappedKey(key=self._ours(wrapped.key), encrypted=encrypted)

    def unwrap(
        self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext
    ) -> bytearray:
        inner = attrs.evolve(encrypted, provider_id="aureus-local")
        return self._provider.unwrap(self._local(key), inner, context)

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        if encrypted.provider_id != f"aureus-{self._name}":
            return None
        owner = self._provider.owner_of(attrs.evolve(encrypted, provider_id="aureus-local"))
        return None if owner is None else self._ours(owner)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyStack]:
    with KeyStack.local(tmp_path_factory.mktemp("native") / "ks") as stack:
        for name in ("alpha", "beta", "gamma"):
            stack.create_key(f"local://{name}", "aes-256")
        stack.create_key("local://signer", "ed25519")
        yield stack


def three(local: KeyStack, **options: Any) -> dict[str, LatencyProvider]:
    """Three native providers (schemes east, west, dr) answering after ``LATENCY``."""
    inner = local.provider("local")
    options.setdefault("latency", LATENCY)
    return {
        scheme: LatencyProvider(Renamed(inner, scheme), native=True, **options)
        for scheme in SCHEMES
    }


KEYS = [
    f"{scheme}://{name}" for scheme, name in zip(SCHEMES, ("alpha", "beta", "gamma"), strict=True)
]


def stack_of(providers: dict[str, LatencyProvider], **config: Any) -> KeyStack:
    return KeyStack(config=StackConfig(**config), providers=dict(providers))


def run(main: Callable[[], Any]) -> Any:
    return asyncio.run(main())


def test_the_latency_provider_is_native_only_when_asked(local: KeyStack) -> None:
    inner = local.provider("local")
    assert not native_async(inner)
    assert not native_async(LatencyProvider(inner))
    assert native_async(LatencyProvider(inner, native=True))
    assert isinstance(LatencyProvider(inner, native=True), AsyncKeyProvider)


def test_three_native_recipients_cost_about_the_slowest(local: KeyStack) -> None:
    providers = three(local)

    async def main() -> tuple[bytes, list[float], set[str]]:
        threads: set[str] = set()
        async with AsyncKeyStack(stack_of(providers), own=True) as aio:
            times = []
            message = b""
            for _ in range(5):
                start = time.perf_counter()
                message = await aio.encrypt(b"payload", keys=KEYS, context={"t": "1"})
                times.append(time.perf_counter() - start)
            threads = {t.name for t in threading.enumerate()}
            return message, times, threads

    message, times, threads = run(main)
    assert all(p.native_started == 5 for p in providers.values())  # every wrap was native
    assert all(p.calls == {"wrap": 5} for p in providers.values())
    assert min(times) < 1.5 * LATENCY  # sequential is 3 x 50 ms; the goal is ~ the slowest
    assert not any(name.startswith("aureus-fanout") for name in threads)  # no pool thread
    for key in KEYS:  # each recipient alone opens it, with the sync stack
        with stack_of(three(local, latency=0.0)) as sync:
            assert sync.decrypt(message, keys=[key], context={"t": "1"}) == b"payload"


def test_a_native_provider_down_while_another_is_up_still_decrypts(local: KeyStack) -> None:
    with stack_of(three(local, latency=0.0)) as plain:
        message = plain.encrypt(b"payload", keys=KEYS[:2])
    providers = three(local)
    providers["east"] = LatencyProvider(
        Renamed(local.provider("local"), "east"),
        native=True,
        latency=LATENCY,
        down=[KEYS[0]],
        timeout=5.0,
    )

    async def main() -> tuple[bytes, float]:
        async with AsyncKeyStack(stack_of(providers), own=True) as aio:
            start = time.perf_counter()
            plaintext = await aio.decrypt(message)
            return plaintext, time.perf_counter() - start

    plaintext, elapsed = run(main)
    assert plaintext == b"payload"
    assert elapsed < 1.0  # the first candidate would answer only after 5 s
    assert providers["east"].native_cancelled == 1  # the loser was cancelled for real
    assert providers["east"].in_flight == 0


def test_when_every_native_candidate_is_down_the_error_names_each(local: KeyStack) -> None:
    with stack_of(three(local, latency=0.0)) as plain:
        message = plain.encrypt(b"payload", keys=KEYS[:2])
    providers = three(local, latency=0.0, down=KEYS[:2], timeout=0.01)

    async def main() -> None:
        async with AsyncKeyStack(stack_of(providers), own=True) as aio:
            await aio.decrypt(message)

    with pytest.raises(ProviderUnavailable) as raised:
        run(main)
    assert KEYS[0] in str(raised.value)
    assert KEYS[1] in str(raised.value)


def test_a_cancelled_native_call_leaves_no_output_task_or_thread(local: KeyStack) -> None:
    providers = three(local, latency=2.0)
    with stack_of(three(local, latency=0.0)) as plain:
        message = plain.encrypt(b"secret", keys=KEYS[:1])

    async def main() -> tuple[float, float, set[asyncio.Task[Any]], int]:
        aio = AsyncKeyStack(stack_of(providers), own=True)
        with capture_audit() as events:
            start = time.perf_counter()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(aio.encrypt(b"secret", keys=KEYS), timeout=0.1)
            encrypt_took = time.perf_counter() - start
            start = time.perf_counter()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(aio.decrypt(message), timeout=0.1)
            decrypt_took = time.perf_counter() - start
            # the native calls were over when the cancellation completed, not later
            assert all(p.in_flight == 0 for p in providers.values())
        # No native call is left on the loop, and the operations' workers are idle.
        left = asyncio.all_tasks() - {asyncio.current_task()}
        busy = aio._workers._work_queue.qsize()
        outcomes = [(e["operation"], e["outcome"]) for e in events if e["phase"] == "outcome"]
        assert outcomes == [("encrypt", "CancelledError"), ("decrypt", "CancelledError")]
        await aio.aclose()
        return encrypt_took, decrypt_took, left, busy

    encrypt_took, decrypt_took, left, busy = run(main)
    assert encrypt_took < 1.0
    assert decrypt_took < 1.0
    assert left == set()
    assert busy == 0
    assert sum(p.native_cancelled for p in providers.values()) == 4  # 3 wraps + 1 unwrap
    assert all(p.in_flight == 0 for p in providers.values())


def test_the_data_key_cache_serves_native_encrypts_as_sync_ones(local: KeyStack) -> None:
    from aureus_builtin.memory_cache import MemoryCache
    from aureus_core.cache import CachePolicy, DataKeyCache

    providers = three(local, latency=0.0)
    cache = DataKeyCache(MemoryCache(capacity=10), CachePolicy(max_messages=10))

    async def main() -> list[bytes]:
        stack = KeyStack(providers=dict(providers), cache=cache)
        async with AsyncKeyStack(stack, own=True) as aio:
            with capture_audit() as events:
                sealed = [await aio.encrypt(b"cached", keys=KEYS) for _ in range(3)]
            details = [e["details"] for e in events if e["phase"] == "outcome"]
            assert [d["cache"] for d in details] == ["miss", "hit", "hit"]  # type: ignore[index]
            return sealed

    sealed = run(main)
    assert all(p.native_started == 1 for p in providers.values())  # one wrap each, then hits
    with stack_of(three(local, latency=0.0)) as sync:
        assert [sync.decrypt(m, keys=[KEYS[2]]) for m in sealed] == [b"cached"] * 3


def test_native_and_pool_providers_mix_in_one_operation(local: KeyStack) -> None:
    providers = three(local)
    blocking = LatencyProvider(Renamed(local.provider("local"), "west"), latency=LATENCY)
    mixed: dict[str, KeyProvider] = {**providers, "west": blocking}

    async def main() -> bytes:
        async with AsyncKeyStack(KeyStack(providers=mixed), own=True) as aio:
            message = await aio.encrypt(b"mixed", keys=KEYS)
            assert await aio.decrypt(message, keys=[KEYS[1]]) == b"mixed"
            return message

    message = run(main)
    assert blocking.calls == {"wrap": 1, "unwrap": 1}  # through the pool, as before
    assert providers["east"].native_started == 1
    assert providers["dr"].native_started == 1
    with stack_of(three(local, latency=0.0)) as sync:
        assert sync.decrypt(message, keys=[KEYS[2]]) == b"mixed"


def test_the_breaker_counts_native_outages(local: KeyStack) -> None:
    providers = three(local, latency=0.0, down=[KEYS[0]], timeout=0.0)
    config = StackConfig(providers={"east": {"circuit_breaker": {"failures": 2}}})

    async def main() -> None:
        stack = KeyStack(config=config, providers=dict(providers))
        async with AsyncKeyStack(stack, own=True) as aio:
            for _ in range(2):
                with pytest.raises(ProviderUnavailable, match="did not answer"):
                    await aio.encrypt(b"x", keys=[KEYS[0]])
            with pytest.raises(ProviderUnavailable) as raised:
                await aio.encrypt(b"x", keys=[KEYS[0]])
            assert raised.value.code == OPEN_CODE

    run(main)
    assert providers["east"].native_started == 2  # the third never reached the provider


def test_native_sign_verify_and_public_key(local: KeyStack) -> None:
    signer = LatencyProvider(local.provider("local"), latency=0.0, native=True)

    async def main() -> None:
        async with AsyncKeyStack(KeyStack(providers={"local": signer}), own=True) as aio:
            signature = await aio.sign(b"release", key="local://signer")
            assert await aio.verify(b"release", signature, key="local://signer")
            assert not await aio.verify(b"other", signature, key="local://signer")
            assert (await aio.public_key("local://signer")).startswith(b"-----BEGIN PUBLIC KEY")

    run(main)
    assert signer.calls["sign"] == 1
    assert signer.calls["public_key"] == 1
    assert signer.native_started == sum(signer.calls.values())  # every call went native


def test_a_tampered_message_fails_natively_as_it_does_in_sync(local: KeyStack) -> None:
    with stack_of(three(local, latency=0.0)) as plain:
        message = bytearray(plain.encrypt(b"payload", keys=KEYS))
    message[-1] ^= 1

    async def main() -> None:
        async with AsyncKeyStack(stack_of(three(local, latency=0.0)), own=True) as aio:
            await aio.decrypt(bytes(message))

    with pytest.raises(DecryptionError):
        run(main)


recipients = st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True)
contexts = st.dictionaries(
    st.text(st.characters(categories=("L", "N")), min_size=1, max_size=8),
    st.text(max_size=12),
    max_size=3,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payload=st.binary(max_size=3000), context=contexts, keys=recipients, sync_first=st.booleans()
)
def test_native_async_and_sync_messages_are_interchangeable(
    local: KeyStack, payload: bytes, context: dict[str, str], keys: list[str], sync_first: bool
) -> None:
    providers = three(local, latency=0.0)

    async def main() -> None:
        with stack_of(three(local, latency=0.0)) as sync:
            async with AsyncKeyStack(stack_of(providers), own=True) as aio:
                if sync_first:
                    message = sync.encrypt(payload, context=context, keys=keys)
                    assert await aio.decrypt(message, context=context) == payload
                else:
                    message = await aio.encrypt(payload, context=context, keys=keys)
                    assert sync.decrypt(message, context=context) == payload
                for key in keys:  # every recipient alone, strict mode, on both sides
                    assert await aio.decrypt(message, keys=[key], context=context) == payload
                    assert sync.decrypt(message, keys=[key], context=context) == payload

    asyncio.run(main())
    assert sum(p.native_started for p in providers.values()) >= 1 + len(keys)


def test_batches_and_streams_use_native_calls(local: KeyStack, tmp_path: Path) -> None:
    providers = three(local, latency=0.0)

    async def main() -> None:
        async with AsyncKeyStack(stack_of(providers), own=True) as aio:
            sealed = await aio.encrypt_batch([b"a", b"b"], keys=KEYS)
            assert await aio.decrypt_batch(sealed) == [b"a", b"b"]
            (tmp_path / "plain").write_bytes(b"rows" * 1000)
            await aio.encrypt_file(tmp_path / "plain", tmp_path / "sealed", keys=KEYS[:2])
            await aio.decrypt_file(tmp_path / "sealed", tmp_path / "opened")

    run(main)
    assert (tmp_path / "opened").read_bytes() == b"rows" * 1000
    assert providers["east"].native_started >= 2
    assert providers["west"].native_started >= 2


def test_native_provider_spans_nest_under_the_operation(local: KeyStack) -> None:
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from aureus_core.telemetry import Telemetry

    exporter = InMemorySpanExporter()
    tracer_provider = sdk_trace.TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    providers = three(local, latency=0.01)

    def spans(name: str) -> list[Any]:
        return [s for s in exporter.get_finished_spans() if s.name == name]

    async def main() -> None:
        stack = KeyStack(
            providers=dict(providers), telemetry=Telemetry(tracer_provider=tracer_provider)
        )
        async with AsyncKeyStack(stack, own=True) as aio:
            message = await aio.encrypt(b"payload", keys=KEYS)
            assert await aio.decrypt(message) == b"payload"

    run(main)
    assert sum(p.native_started for p in providers.values()) >= 4
    (encrypt,) = spans("aureus.encrypt")
    wraps = spans("aureus.provider.wrap")
    assert len(wraps) == 3
    assert {w.parent.span_id for w in wraps} == {encrypt.context.span_id}
    # each span covers its awaited call (the providers answer after 10 ms)
    assert all(w.end_time - w.start_time >= 9_000_000 for w in wraps)
    (decrypt,) = spans("aureus.decrypt")
    unwraps = spans("aureus.provider.unwrap")
    assert unwraps
    assert {u.parent.span_id for u in unwraps} == {decrypt.context.span_id}
