"""The circuit breaker every provider sits behind, and provider-generated data keys."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import pytest

from aureus_core import KeyStack
from aureus_core.context import EncryptionContext
from aureus_core.datakey import EncryptedDataKey, WrappedKey
from aureus_core.errors import (
    ConfigError,
    DecryptionError,
    KeyNotFound,
    KeystoreCorrupted,
    ProviderError,
    ProviderUnavailable,
    Throttled,
)
from aureus_core.instrumented import InstrumentedProvider
from aureus_core.interfaces import Capability, KeyProviderBase
from aureus_core.keyref import KeyRef
from aureus_core.keys import KeySpec, KeyType
from aureus_core.reliability import (
    OPEN_CODE,
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    GuardedProvider,
)
from aureus_core.testing.clock import FakeClock


class Seconds:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flaky(KeyProviderBase):
    """Wraps by XOR (a stand-in, not cryptography); fails as told."""

    scheme = "flaky"
    capabilities = frozenset({Capability.WRAP, Capability.DESCRIBE})

    def __init__(self) -> None:
        self.down = False
        self.calls = 0
        self.failure: type[Exception] = ProviderUnavailable

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.down:
            raise self.failure("backend at 127.0.0.1:9 refused the connection")

    def describe_key(self, key: KeyRef):
        self._maybe_fail()
        raise KeyNotFound(f"no key {key.uri}")

    def wrap(self, key: KeyRef, data_key: bytes, context: EncryptionContext) -> WrappedKey:
        self._maybe_fail()
        blob = bytes(b ^ 0x5A for b in data_key)
        edk = EncryptedDataKey(provider_id="aureus-flaky", provider_info=b"k", ciphertext=blob)
        return WrappedKey(key=key, encrypted=edk)

    def unwrap(self, key: KeyRef, encrypted: EncryptedDataKey, context: EncryptionContext):
        self._maybe_fail()
        return bytearray(b ^ 0x5A for b in encrypted.ciphertext)

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        return KeyRef.parse("flaky://k") if encrypted.provider_id == "aureus-flaky" else None


REF = KeyRef.parse("flaky://k")
CONTEXT = EncryptionContext({"purpose": "test"})


def breaker_stack(provider: Flaky, clock: Seconds, **options: object) -> KeyStack:
    config = {
        "providers": {"flaky": {"circuit_breaker": {"failures": 3, "cooldown": 10, **options}}}
    }
    return KeyStack.from_dict(config, providers={"flaky": provider}, breaker_clock=clock)


def test_breaker_opens_after_consecutive_outages_and_fails_fast():
    provider, clock = Flaky(), Seconds()
    stack = breaker_stack(provider, clock)
    guarded = stack.provider("flaky")
    provider.down = True
    for _ in range(3):
        with pytest.raises(ProviderUnavailable, match="refused the connection"):
            guarded.wrap(REF, b"k" * 32, CONTEXT)
    assert stack.breaker("flaky").state is BreakerState.OPEN
    with pytest.raises(ProviderUnavailable) as refused:
        guarded.wrap(REF, b"k" * 32, CONTEXT)
    assert refused.value.code == OPEN_CODE
    assert "failing fast" in str(refused.value)
    assert "3 consecutive outage(s)" in str(refused.value)
    assert "[providers.flaky.circuit_breaker]" in str(refused.value)
    assert provider.calls == 3, "an open breaker must not call the backend"


def test_breaker_half_opens_after_the_cooldown_and_a_success_closes_it():
    provider, clock = Flaky(), Seconds()
    stack = breaker_stack(provider, clock)
    guarded = stack.provider("flaky")
    provider.down = True
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            guarded.wrap(REF, b"k" * 32, CONTEXT)
    clock.now += 9.9
    with pytest.raises(ProviderUnavailable, match=r"in 0\.1 s"):
        guarded.wrap(REF, b"k" * 32, CONTEXT)
    clock.now += 0.1
    provider.down = False
    assert guarded.wrap(REF, b"k" * 32, CONTEXT).key == REF
    breaker = stack.breaker("flaky")
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 0


def test_a_failed_trial_reopens_at_once():
    provider, clock = Flaky(), Seconds()
    stack = breaker_stack(provider, clock)
    guarded = stack.provider("flaky")
    provider.down = True
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            guarded.wrap(REF, b"k" * 32, CONTEXT)
    clock.now += 10
    with pytest.raises(ProviderUnavailable, match="refused"):
        guarded.wrap(REF, b"k" * 32, CONTEXT)  # the trial reaches the backend and fails
    assert provider.calls == 4
    assert stack.breaker("flaky").state is BreakerState.OPEN
    with pytest.raises(ProviderUnavailable, match="failing fast"):
        guarded.wrap(REF, b"k" * 32, CONTEXT)
    assert provider.calls == 4


def test_only_one_trial_call_while_half_open():
    clock = Seconds()
    breaker = CircuitBreaker("x", BreakerPolicy(failures=1, cooldown=1), clock=clock)
    breaker.record_outage(ProviderUnavailable("down"))
    clock.now += 1
    assert breaker.before_call() is True
    with pytest.raises(ProviderUnavailable, match="a trial call is in flight"):
        breaker.before_call()
    breaker.record_success()
    assert breaker.before_call() is False


def test_other_backend_answers_count_as_success():
    provider, clock = Flaky(), Seconds()
    stack = breaker_stack(provider, clock)
    guarded = stack.provider("flaky")
    provider.down = True
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            guarded.wrap(REF, b"k" * 32, CONTEXT)
    provider.down = False
    with pytest.raises(KeyNotFound):
        guarded.describe_key(REF)  # the backend answered: it is up
    assert stack.breaker("flaky").consecutive_failures == 0
    provider.down = True
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            guarded.wrap(REF, b"k" * 32, CONTEXT)
    assert stack.breaker("flaky").state is BreakerState.CLOSED


def test_a_corrupted_keystore_is_not_an_outage():
    provider, clock = Flaky(), Seconds()
    provider.down, provider.failure = True, KeystoreCorrupted
    stack = breaker_stack(provider, clock)
    guarded = stack.provider("flaky")
    for _ in range(5):
        with pytest.raises(KeystoreCorrupted):
            guarded.wrap(REF, b"k" * 32, CONTEXT)
    assert stack.breaker("flaky").state is BreakerState.CLOSED
    assert provider.calls == 5


def test_a_disabled_breaker_never_opens():
    provider, clock = Flaky(), Seconds()
    stack = breaker_stack(provider, clock, enabled=False)
    guarded = stack.provider("flaky")
    provider.down = True
    for _ in range(6):
        with pytest.raises(ProviderUnavailable, match="refused"):
            guarded.wrap(REF, b"k" * 32, CONTEXT)
    assert provider.calls == 6


def test_decrypt_reports_an_unreachable_provider_not_an_opaque_failure():
    provider, clock = Flaky(), Seconds()
    with breaker_stack(provider, clock) as stack:
        message = stack.encrypt(b"payload", keys=["flaky://k"], context={"a": "b"})
        provider.down = True
        with pytest.raises(ProviderUnavailable, match="refused the connection"):
            stack.decrypt(message)
        provider.down = False
        assert stack.decrypt(message) == b"payload"
        assert stack.decrypt(message, context={"a": "b"}) == b"payload"


def test_a_wrong_key_is_still_the_opaque_decryption_error(tmp_path: Path):
    provider, clock = Flaky(), Seconds()
    with breaker_stack(provider, clock) as stack:
        message = bytearray(stack.encrypt(b"payload", keys=["flaky://k"]))
        message[-40] ^= 1
        with pytest.raises(DecryptionError):
            stack.decrypt(bytes(message))


def test_every_stack_provider_is_guarded(tmp_path: Path):
    with KeyStack.local(tmp_path / "ks") as stack:
        provider = stack.provider("local")
        if isinstance(provider, InstrumentedProvider):  # tracing is on in this test run
            provider = provider.wrapped
        assert isinstance(provider, GuardedProvider)
        assert provider.breaker is stack.breaker("local")
        assert provider.keystore_dir == tmp_path / "ks"  # provider attributes pass through


def test_breaker_options_are_validated():
    with pytest.raises(ConfigError, match=r"\[providers.flaky\] circuit_breaker.failures"):
        KeyStack.from_dict(
            {"providers": {"flaky": {"circuit_breaker": {"failures": 0}}}},
            providers={"flaky": Flaky()},
        ).provider("flaky")
    with pytest.raises(ConfigError, match=r"unknown key.*retries"):
        BreakerPolicy.from_options({"retries": 3})
    with pytest.raises(ConfigError, match="cooldown must be a positive number"):
        BreakerPolicy.from_options({"cooldown": -1})


def test_breaker_is_thread_safe_under_concurrent_outages():
    clock = Seconds()
    breaker = CircuitBreaker("x", BreakerPolicy(failures=50, cooldown=5), clock=clock)

    def fail() -> None:
        raise ProviderUnavailable("down")

    def worker() -> None:
        for _ in range(20):
            with contextlib.suppress(ProviderUnavailable):
                breaker.call(fail)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert breaker.state is BreakerState.OPEN
    assert breaker.consecutive_failures == 50  # counted exactly, then refused without counting


# -- provider-generated data keys ------------------------------------------------


class Generating(Flaky):
    """A stand-in for a KMS that makes data keys itself."""

    scheme = "gen"
    capabilities = frozenset({Capability.WRAP, Capability.GENERATE_DATA_KEY})

    def __init__(self, length: int | None = None) -> None:
        super().__init__()
        self.generated: list[bytes] = []
        self.length = length

    def generate_data_key(self, key: KeyRef, length: int, context: EncryptionContext):
        data_key = bytearray(os.urandom(self.length or length))
        self.generated.append(bytes(data_key))
        wrapped = self.wrap(key, bytes(data_key), context)
        edk = EncryptedDataKey(
            provider_id="aureus-gen", provider_info=b"k", ciphertext=wrapped.encrypted.ciphertext
        )
        return data_key, WrappedKey(key=key, encrypted=edk)

    def owner_of(self, encrypted: EncryptedDataKey) -> KeyRef | None:
        return KeyRef.parse("gen://k") if encrypted.provider_id == "aureus-gen" else None


def test_the_first_wrapping_key_generates_the_data_key_and_the_rest_wrap_it(tmp_path: Path):
    gen = Generating()
    with KeyStack.local(tmp_path / "ks") as stack:
        stack.create_key("second", KeySpec(key_type=KeyType.AES_256))
    with KeyStack.from_dict(
        {"providers": {"local": {"keystore": str(tmp_path / "ks")}}}, providers={"gen": gen}
    ) as stack:
        message = stack.encrypt(b"payload", keys=["gen://k", "local://second"])
        assert len(gen.generated) == 1
        assert gen.calls == 1, "generate_data_key wraps once; no separate wrap call"
        info = stack.inspect(message)
        assert [k.provider_id for k in info.recipients] == ["aureus-gen", "aureus-local"]
        assert stack.decrypt(message, keys=["local://second"]) == b"payload"
        assert stack.decrypt(message, keys=["gen://k"]) == b"payload"


def test_a_generated_key_of_the_wrong_length_is_refused():
    stack = KeyStack(providers={"gen": Generating(length=16)})
    with pytest.raises(ProviderError, match="16-byte data key; the algorithm suite needs 32"):
        stack.encrypt(b"payload", keys=["gen://k"])


def test_fake_clock_is_not_needed_for_breakers():
    # The breaker takes a plain monotonic-seconds callable; FakeClock offers one too.
    clock = FakeClock()
    breaker = CircuitBreaker("x", BreakerPolicy(failures=1, cooldown=2), clock=clock.monotonic)
    breaker.record_outage(ProviderUnavailable("down"))
    assert breaker.state is BreakerState.OPEN


# -- replication -------------------------------------------------------------------


class Replicating(Flaky):
    """A stand-in for a provider with regional replicas."""

    scheme = "rep"
    capabilities = frozenset({Capability.REPLICATE})

    def replicate_key(self, key: KeyRef, region: str):
        from datetime import datetime, timezone

        from aureus_core.keys import KeyMetadata, KeyState, KeyVersion

        now = datetime.now(timezone.utc)
        return KeyMetadata(
            ref=KeyRef.parse(f"rep://{key.key_id}?region={region}"),
            key_type=KeyType.AES_256,
            state=KeyState.ENABLED,
            created_at=now,
            current_version="1",
            versions=(KeyVersion(version="1", created_at=now),),
        )


def test_replicate_key_goes_to_the_provider_and_is_audited():
    from aureus_core.testing import capture_audit

    with KeyStack(providers={"rep": Replicating()}) as stack, capture_audit() as events:
        replica = stack.replicate_key("rep://mrk-1", "eu-west-1")
    assert replica.uri == "rep://mrk-1?region=eu-west-1"
    outcome = [e for e in events if e["operation"] == "replicate"][-1]
    assert outcome["outcome"] == "ok"
    assert outcome["details"] == {"region": "eu-west-1", "replica": replica.uri}


def test_replicate_key_on_a_provider_without_replicas_is_unsupported(tmp_path: Path):
    from aureus_core.errors import UnsupportedOperation

    with KeyStack.local(tmp_path / "ks") as stack:
        with pytest.raises(UnsupportedOperation, match="'local' does not support replicate_key"):
            stack.replicate_key("local://k", "eu-west-1")
        with pytest.raises(ConfigError, match="needs the target region"):
            stack.replicate_key("local://k", " ")


def test_throttling_is_an_answer_it_never_opens_the_breaker_and_resets_the_count():
    """A throttling backend is up: Throttled neither counts as an outage nor keeps one counted."""
    provider, clock = Flaky(), Seconds()
    stack = breaker_stack(provider, clock)
    guarded = stack.provider("flaky")
    provider.down = True
    for _ in range(2):  # two outages counted ...
        with pytest.raises(ProviderUnavailable):
            guarded.wrap(REF, b"k" * 32, CONTEXT)
    provider.failure = Throttled
    for _ in range(10):  # ... then many throttled answers: still closed
        with pytest.raises(Throttled):
            guarded.wrap(REF, b"k" * 32, CONTEXT)
    assert stack.breaker("flaky").state is BreakerState.CLOSED
    provider.failure = ProviderUnavailable
    for _ in range(2):  # the count started again: two more outages do not open it
        with pytest.raises(ProviderUnavailable):
            guarded.wrap(REF, b"k" * 32, CONTEXT)
    assert stack.breaker("flaky").state is BreakerState.CLOSED
    assert provider.calls == 14, "every call reached the backend"
