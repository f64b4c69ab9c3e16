"""Concurrent fan-out: wraps for several recipients and unwraps of a message's candidates.

The providers are the real local keystore behind
:class:`~aureus_core.testing.latency.LatencyProvider`, which adds a round trip
to each call and counts how many overlapped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from aureus_core import DecryptionError, KeyStack
from aureus_core.config import StackConfig
from aureus_core.errors import ConfigError, ProviderUnavailable
from aureus_core.interfaces import KeyProvider
from aureus_core.keyref import KeyRef
from aureus_core.proxy import ProviderProxy
from aureus_core.testing.latency import LatencyProvider

T = TypeVar("T")
KEYS = ["local://alpha", "local://beta", "local://gamma"]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[KeyStack]:
    with KeyStack.local(tmp_path / "ks") as stack:
        for uri in KEYS:
            stack.create_key(uri, "aes-256")
        yield stack


def _timed(stack: KeyStack, provider: KeyProvider, **config: Any) -> KeyStack:
    return KeyStack(config=StackConfig(**config), providers={"local": provider})


def _seconds(call: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def test_three_recipients_wrap_at_once(stack: KeyStack) -> None:
    slow = LatencyProvider(stack.provider("local"), latency=0.2)
    with _timed(stack, slow) as timed:
        message, elapsed = _seconds(lambda: timed.encrypt(b"payload", keys=KEYS))
    assert slow.calls["wrap"] == 3
    assert slow.max_in_flight == 3
    assert elapsed < 2 * 0.2  # one after another it cannot be under 3 x 0.2 s
    for uri in KEYS:  # each recipient alone opens it
        assert stack.decrypt(message, keys=[uri]) == b"payload"


def test_concurrency_one_is_sequential(stack: KeyStack) -> None:
    slow = LatencyProvider(stack.provider("local"), latency=0.1)
    with _timed(stack, slow, concurrency=1) as timed:
        _, elapsed = _seconds(lambda: timed.encrypt(b"payload", keys=KEYS))
    assert slow.max_in_flight == 1
    assert elapsed >= 3 * 0.1


def test_concurrency_must_be_a_positive_integer() -> None:
    with pytest.raises(ConfigError, match="concurrency must be a positive integer"):
        StackConfig.from_dict({"stack": {"concurrency": 0}})
    assert StackConfig.from_dict({"stack": {"concurrency": 3}}).concurrency == 3


def test_decrypt_does_not_wait_for_a_candidate_that_is_down(stack: KeyStack) -> None:
    message = stack.encrypt(b"payload", keys=["local://alpha", "local://beta"])
    down = LatencyProvider(
        stack.provider("local"), latency=0.05, down=["local://alpha"], timeout=1.0
    )
    with _timed(stack, down) as timed:
        plaintext, elapsed = _seconds(lambda: timed.decrypt(message))
        assert plaintext == b"payload"
        assert elapsed < 0.5  # one after another: 1.0 s for alpha, then beta
        assert down.calls["unwrap"] == 2


def test_a_wrap_that_fails_fails_the_encrypt(stack: KeyStack) -> None:
    down = LatencyProvider(stack.provider("local"), latency=0.01, down=["local://beta"])
    with _timed(stack, down) as timed, pytest.raises(ProviderUnavailable, match="local://beta"):
        timed.encrypt(b"payload", keys=KEYS)


class Recording(ProviderProxy):
    """Unwraps answer after a per-key delay, or fail; every data key handed out is kept."""

    def __init__(
        self,
        provider: KeyProvider,
        delays: dict[str, float],
        fail: dict[str, Exception],
        barrier: threading.Barrier | None = None,
    ) -> None:
        super().__init__(provider)
        self.barrier = barrier
        self.delays = delays
        self.fail = fail
        self.handed_out: dict[str, bytearray] = {}
        self.sent: list[str] = []

    def _call(
        self, method: str, key: KeyRef | None, function: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        if method != "unwrap" or key is None:
            return function(*args, **kwargs)
        self.sent.append(key.key_id)
        if self.barrier is not None:
            self.barrier.wait()  # every unwrap has started: none can be cancelled unsent
        time.sleep(self.delays.get(key.key_id, 0.0))
        if key.key_id in self.fail:
            raise self.fail[key.key_id]
        result = function(*args, **kwargs)
        assert isinstance(result, bytearray)
        self.handed_out[key.key_id] = result
        return result


def test_concurrency_one_decrypts_one_candidate_at_a_time_and_stops_at_the_first(
    stack: KeyStack,
) -> None:
    """With concurrency = 1 a decrypt asks its candidates in message order, one at a time,
    and no other once a data key comes back (as documented). Before, it still raced them
    on the one-thread pool, which took the next unwrap before the first was done."""
    message = stack.encrypt(b"payload", keys=KEYS)
    for _ in range(20):
        recording = Recording(stack.provider("local"), {"alpha": 0.01}, {})
        with _timed(stack, recording, concurrency=1) as reader:
            assert reader.decrypt(message) == b"payload"
            assert reader.decrypt_batch([message, message]) == [b"payload", b"payload"]
        assert recording.sent == ["alpha", "alpha"]
    # The first candidate failing, the next is asked, still one at a time.
    recording = Recording(
        stack.provider("local"), {}, {"alpha": ProviderUnavailable("down", provider="local")}
    )
    with _timed(stack, recording, concurrency=1) as reader:
        assert reader.decrypt(message) == b"payload"
    assert recording.sent == ["alpha", "beta"]


def test_the_first_data_key_wins_and_the_others_are_wiped(stack: KeyStack) -> None:
    message = stack.encrypt(b"payload", keys=KEYS)
    delays = {"alpha": 0.3, "beta": 0.0, "gamma": 0.15}
    recording = Recording(stack.provider("local"), delays, {}, threading.Barrier(3, timeout=10))
    reader = _timed(stack, recording)
    with reader:
        assert reader.decrypt(message) == b"payload"
    # close() waited for the losers; every data key that came back is now zeros
    assert sorted(recording.handed_out) == ["alpha", "beta", "gamma"]
    for key_id, data_key in recording.handed_out.items():
        assert len(data_key) == 32
        assert data_key == bytearray(32), key_id


def test_a_refused_key_is_never_sent(stack: KeyStack) -> None:
    message = stack.encrypt(b"payload", keys=KEYS)
    recording = Recording(stack.provider("local"), {}, {})
    with _timed(stack, recording) as strict:
        assert strict.decrypt(message, keys=["local://gamma"]) == b"payload"
    assert recording.sent == ["gamma"]
    recording = Recording(stack.provider("local"), {}, {})
    with _timed(stack, recording, decrypt_allow=("local://[ab]*",)) as narrowed:
        assert narrowed.decrypt(message) == b"payload"
    # alpha and beta race (beta may be cancelled unsent if alpha wins first); never gamma
    assert recording.sent
    assert set(recording.sent) <= {"alpha", "beta"}


def test_when_every_candidate_is_down_the_error_names_each(stack: KeyStack) -> None:
    message = stack.encrypt(b"payload", keys=["local://alpha", "local://beta"])
    down = LatencyProvider(
        stack.provider("local"), latency=0.0, down=["local://alpha", "local://beta"]
    )
    with _timed(stack, down) as timed, pytest.raises(ProviderUnavailable) as raised:
        timed.decrypt(message)
    text = str(raised.value)
    assert "local://alpha?version=1 (ProviderUnavailable: local://alpha did not answer" in text
    assert "local://beta?version=1 (ProviderUnavailable: local://beta did not answer" in text
    assert raised.value.code == "Timeout"  # same type and code: callers that retry still do


def test_when_every_unwrap_fails_the_error_names_each_without_saying_why(
    stack: KeyStack,
) -> None:
    message = stack.encrypt(b"payload", keys=["local://alpha", "local://beta"])
    wrong = {k: DecryptionError("tag mismatch: secret detail") for k in ("alpha", "beta")}
    recording = Recording(stack.provider("local"), {}, wrong)  # type: ignore[arg-type]
    with _timed(stack, recording) as timed, pytest.raises(DecryptionError) as raised:
        timed.decrypt(message)
    text = str(raised.value)
    assert text.startswith("the message could not be decrypted: none of its 2 encrypted data key")
    assert (
        "tried: local://alpha?version=1 (did not unwrap); local://beta?version=1 (did not unwrap)"
    ) in text
    assert "tag mismatch" not in text


def test_concurrent_provider_spans_nest_under_the_operation(tmp_path: Path) -> None:
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from aureus_core.telemetry import Telemetry

    exporter = InMemorySpanExporter()
    tracer_provider = sdk_trace.TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))

    def spans(name: str) -> list[Any]:
        return [s for s in exporter.get_finished_spans() if s.name == name]

    telemetry = Telemetry(tracer_provider=tracer_provider)
    with KeyStack.local(tmp_path / "ks", telemetry=telemetry) as stack:
        for uri in KEYS:
            stack.create_key(uri, "aes-256")
        message = stack.encrypt(b"payload", keys=KEYS)
        assert stack.decrypt(message) == b"payload"
    (encrypt,) = spans("aureus.encrypt")
    wraps = spans("aureus.provider.wrap")
    assert len(wraps) == 3
    assert {w.parent.span_id for w in wraps} == {encrypt.context.span_id}
    assert {w.context.trace_id for w in wraps} == {encrypt.context.trace_id}
    (decrypt,) = spans("aureus.decrypt")
    unwraps = spans("aureus.provider.unwrap")
    assert unwraps
    assert {u.parent.span_id for u in unwraps} == {decrypt.context.span_id}
