"""AsyncKeyStack: the same stack from an event loop, fan-out, cancellation, batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aureus_core import AsyncKeyStack, DecryptionError, KeyStack
from aureus_core.config import StackConfig
from aureus_core.errors import ProviderUnavailable
from aureus_core.reliability import OPEN_CODE
from aureus_core.testing import capture_audit
from aureus_core.testing.counting import CountingProvider
from aureus_core.testing.latency import LatencyProvider

KEYS = ["local://alpha", "local://beta", "local://gamma"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyStack]:
    with KeyStack.local(tmp_path_factory.mktemp("aio") / "ks") as stack:
        for uri in KEYS:
            stack.create_key(uri, "aes-256")
        stack.create_key("local://signer", "ed25519")
        yield stack


class Sink:
    """An async sink like aiofiles: ``await write(data)``."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.writes = 0

    async def write(self, data: bytes) -> None:
        await asyncio.sleep(0)
        self.data += data
        self.writes += 1


async def chunks(data: bytes, size: int, pause: float = 0.0) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        if pause:
            await asyncio.sleep(pause)
        yield data[start : start + size]


def test_round_trips_sign_verify_and_key_management(shared: KeyStack) -> None:
    async def main() -> None:
        async with shared.aio() as aio:
            created = await aio.create_key("local://made-async", "aes-256")
            assert created.current_version == "1"
            assert (await aio.rotate_key("local://made-async")).current_version == "2"
            described = await aio.describe_key("local://made-async")
            assert [v.version for v in described.versions] == ["1", "2"]
            assert "local://made-async" in [k.uri for k in await aio.list_keys()]
            message = await aio.encrypt(b"payload", keys=KEYS, context={"tenant": "t1"})
            assert shared.decrypt(message, context={"tenant": "t1"}) == b"payload"
            assert await aio.decrypt(message) == b"payload"
            with pytest.raises(DecryptionError):
                await aio.decrypt(message, context={"tenant": "t2"})
            signature = await aio.sign(b"release", key="local://signer")
            assert await aio.verify(b"release", signature, key="local://signer")
            assert not await aio.verify(b"other", signature, key="local://signer")

    asyncio.run(main())
    assert not shared._closed  # the caller's stack stays open


def test_the_async_stack_shares_the_audit_trail(shared: KeyStack) -> None:
    async def main() -> bytes:
        async with shared.aio() as aio:
            return await aio.encrypt(b"x", keys=KEYS[:1], context={"tenant": "t1"})

    with capture_audit() as events:
        asyncio.run(main())
    assert [(e["operation"], e["phase"], e["outcome"]) for e in events] == [
        ("encrypt", "request", "pending"),
        ("encrypt", "outcome", "ok"),
    ]


def test_async_fan_out_and_concurrent_calls(shared: KeyStack) -> None:
    slow = LatencyProvider(shared.provider("local"), latency=0.2)

    async def main() -> tuple[float, float]:
        async with AsyncKeyStack(KeyStack(providers={"local": slow}), own=True) as aio:
            start = time.perf_counter()
            message = await aio.encrypt(b"one", keys=KEYS)
            fan_out = time.perf_counter() - start
            assert await aio.decrypt(message) == b"one"
            start = time.perf_counter()
            results = await asyncio.gather(*(aio.encrypt(b"m", keys=KEYS[:1]) for _ in range(8)))
            together = time.perf_counter() - start
            assert len(set(results)) == 8
            return fan_out, together

    fan_out, together = asyncio.run(main())
    assert fan_out < 2 * 0.2  # the three wraps overlapped
    assert together < 4 * 0.2  # eight single-key encrypts did not queue one by one (1.6 s)


def test_a_deadline_drops_the_result_and_leaves_no_thread(shared: KeyStack) -> None:
    slow = LatencyProvider(shared.provider("local"), latency=0.5)

    async def main() -> AsyncKeyStack:
        aio = AsyncKeyStack(KeyStack(providers={"local": slow}), own=True)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aio.encrypt(b"late", keys=KEYS[:1]), timeout=0.05)
        await aio.aclose()  # waits for the provider call in flight
        return aio

    aio = asyncio.run(main())
    assert slow.in_flight == 0
    assert all(thread.is_alive() is False for thread in aio._workers._threads)


def test_streams_round_trip(shared: KeyStack) -> None:
    payload = bytes(range(256)) * 300

    async def main() -> None:
        async with shared.aio() as aio:
            sealed = Sink()
            count = await aio.encrypt_stream(
                chunks(payload, 1000), sealed, keys=KEYS[:2], frame_length=4096
            )
            assert count == len(payload)
            assert shared.decrypt(bytes(sealed.data)) == payload
            opened = Sink()
            reader = asyncio.StreamReader()
            reader.feed_data(bytes(sealed.data))
            reader.feed_eof()
            assert await aio.decrypt_stream(reader, opened) == len(payload)
            assert bytes(opened.data) == payload

    asyncio.run(main())


def test_hold_signed_keeps_a_signed_message_from_the_sink_until_its_signature_verifies(
    shared: KeyStack,
) -> None:
    """As the synchronous ``decrypt_stream``: a sink that cannot be taken back (a network
    peer) gets nothing of a signed message whose signature fails. Before, the async form had
    no ``hold_signed``, and every frame but the last reached the sink first."""
    from aureus_core import DecryptionError

    payload = b"A" * 100_000
    forged = bytearray(shared.encrypt(payload, keys=KEYS[:1], signed=True, frame_length=4096))
    forged[-5] ^= 1  # in the footer's signature: every frame's tag still verifies

    async def main() -> tuple[int, int, bytes]:
        async with shared.aio() as aio:
            streamed, held, good = Sink(), Sink(), Sink()
            with pytest.raises(DecryptionError):
                await aio.decrypt_stream(chunks(bytes(forged), 4000), streamed)
            with pytest.raises(DecryptionError):
                await aio.decrypt_stream(chunks(bytes(forged), 4000), held, hold_signed=True)
            intact = shared.encrypt(payload, keys=KEYS[:1], signed=True, frame_length=4096)
            count = await aio.decrypt_stream(
                chunks(intact, 4000), good, hold_signed=True, memory_bound=8192
            )
            assert count == len(payload)
            return len(streamed.data), len(held.data), bytes(good.data)

    streamed, held, good = asyncio.run(main())
    assert streamed == len(payload) - len(payload) % 4096  # the frames before the last
    assert held == 0
    assert good == payload  # held past memory_bound in the sealed spool, then released


def test_a_cancelled_stream_writes_nothing_afterwards(shared: KeyStack) -> None:
    payload = bytes(64 * 1024)
    message = shared.encrypt(payload, keys=KEYS[:1], frame_length=1024)

    async def main() -> tuple[int, int, list[dict[str, Any]]]:
        async with shared.aio() as aio:
            sink = Sink()
            with capture_audit() as events:
                task = asyncio.create_task(
                    aio.decrypt_stream(chunks(message, 1100, pause=0.01), sink)
                )
                await asyncio.sleep(0.15)
                assert 0 < len(sink.data) < len(payload)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            at_cancel = len(sink.data)
            await asyncio.sleep(0.2)
            return at_cancel, len(sink.data), list(events)

    at_cancel, later, events = asyncio.run(main())
    assert later == at_cancel  # the worker stopped: no write after the cancellation
    assert events[-1]["operation"] == "decrypt"
    assert events[-1]["outcome"] == "StreamCancelled"


def test_files_appear_only_when_complete(shared: KeyStack, tmp_path: Path) -> None:
    payload = b"field " * 5000
    plain, sealed, opened = tmp_path / "plain", tmp_path / "sealed", tmp_path / "opened"
    plain.write_bytes(payload)

    async def main() -> None:
        async with shared.aio() as aio:
            await aio.encrypt_file(plain, sealed, keys=KEYS[:1], frame_length=1024)
            await aio.decrypt_file(sealed, opened)
            assert opened.read_bytes() == payload
            tampered = bytearray(sealed.read_bytes())
            tampered[-200] ^= 1  # a byte inside the last frames
            (tmp_path / "bad").write_bytes(bytes(tampered))
            with pytest.raises(DecryptionError):
                await aio.decrypt_file(tmp_path / "bad", tmp_path / "bad.out")

    asyncio.run(main())
    assert not (tmp_path / "bad.out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "opened", "plain", "sealed"]


def test_the_breaker_opens_for_async_callers_as_for_sync_ones(shared: KeyStack) -> None:
    down = LatencyProvider(shared.provider("local"), latency=0.0, down=["local://alpha"])
    config = StackConfig(providers={"local": {"circuit_breaker": {"failures": 2}}})

    async def main() -> None:
        async with AsyncKeyStack(
            KeyStack(config=config, providers={"local": down}), own=True
        ) as aio:
            for _ in range(2):
                with pytest.raises(ProviderUnavailable, match="did not answer"):
                    await aio.encrypt(b"x", keys=["local://alpha"])
            with pytest.raises(ProviderUnavailable) as raised:
                await aio.encrypt(b"x", keys=["local://beta"])
            assert raised.value.code == OPEN_CODE

    asyncio.run(main())
    assert down.calls["wrap"] == 2  # the third call never reached the provider


def test_batches_use_one_data_key_and_one_event(shared: KeyStack) -> None:
    counting = CountingProvider(shared.provider("local"))
    values = [b"4111-1111", b"", b"jane@example.com", b"x" * 5000]
    with KeyStack(providers={"local": counting}) as stack, capture_audit() as events:
        sealed = stack.encrypt_batch(values, keys=KEYS[:2], context={"table": "users"})
        assert counting.wraps == 2  # one data key, wrapped once per recipient
        assert [stack.decrypt(m, keys=[KEYS[1]]) for m in sealed] == values
        assert len({stack.inspect(m).message_id for m in sealed}) == len(values)
        before = counting.unwraps
        assert stack.decrypt_batch(sealed) == values
        # the batch's one data key is unwrapped once, not once per message: the two
        # candidates race, and the loser may be cancelled before it starts (1) or not (2)
        assert 1 <= counting.unwraps - before <= 2
    batch_events = [e for e in events if e["operation"] in ("encrypt_batch", "decrypt_batch")]
    assert [(e["operation"], e["phase"]) for e in batch_events] == [
        ("encrypt_batch", "request"),
        ("encrypt_batch", "outcome"),
        ("decrypt_batch", "request"),
        ("decrypt_batch", "outcome"),
    ]
    details = batch_events[1]["details"]
    assert isinstance(details, dict)
    assert details["count"] == "4"
    assert details["recipients"] == "local://alpha?version=1,local://beta?version=1"


def test_a_bad_message_in_a_batch_releases_nothing(shared: KeyStack) -> None:
    sealed = shared.encrypt_batch([b"a", b"b", b"c"], keys=KEYS[:1])
    tampered = bytearray(sealed[1])
    tampered[-1] ^= 1
    with pytest.raises(DecryptionError, match="message 2 of 3 in the batch"):
        shared.decrypt_batch([sealed[0], bytes(tampered), sealed[2]])

    async def main() -> list[bytes]:
        async with shared.aio() as aio:
            return await aio.decrypt_batch(await aio.encrypt_batch([b"p", b"q"], keys=KEYS[:1]))

    assert asyncio.run(main()) == [b"p", b"q"]


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
def test_sync_and_async_messages_are_interchangeable(
    shared: KeyStack, payload: bytes, context: dict[str, str], keys: list[str], sync_first: bool
) -> None:
    async def main() -> None:
        async with shared.aio() as aio:
            if sync_first:
                message = shared.encrypt(payload, context=context, keys=keys)
                assert await aio.decrypt(message, context=context) == payload
            else:
                message = await aio.encrypt(payload, context=context, keys=keys)
                assert shared.decrypt(message, context=context) == payload
            for key in keys:  # every recipient alone, strict mode
                assert await aio.decrypt(message, keys=[key]) == payload

    asyncio.run(main())


def test_a_cancelled_file_decrypt_leaves_no_file(shared: KeyStack, tmp_path: Path) -> None:
    sealed, opened = tmp_path / "sealed", tmp_path / "opened"
    sealed.write_bytes(shared.encrypt(b"secret rows " * 4000, keys=KEYS[:1], frame_length=1024))
    slow = LatencyProvider(shared.provider("local"), latency=0.3)

    async def main() -> None:
        async with AsyncKeyStack(KeyStack(providers={"local": slow}), own=True) as aio:
            task = asyncio.create_task(aio.decrypt_file(sealed, opened))
            await asyncio.sleep(0.1)  # inside the unwrap
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert slow.in_flight == 0  # the cancellation waited for the worker
            assert not opened.exists()

    asyncio.run(main())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sealed"]
