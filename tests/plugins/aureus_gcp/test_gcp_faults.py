"""A throttling storm and an outage, injected from outside through the fault control endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from aureus_core import KeyStack
from aureus_core.errors import ProviderUnavailable
from aureus_core.keys import KeySpec, KeyType
from aureus_core.reliability import OPEN_CODE, BreakerState
from aureus_core.testing.faults import FaultInjector, FaultPlan, FaultProxy, set_remote_plan
from aureus_gcp.testing import CloudKmsEmulator

RING = {"project": "aureus-tests", "location": "global", "key_ring": "storm"}


@pytest.fixture
def storm() -> Iterator[tuple[CloudKmsEmulator, FaultInjector, str]]:
    with CloudKmsEmulator() as emulator, FaultInjector(seed=1) as injector:
        emulator.use_faults(injector)
        yield emulator, injector, injector.serve_control()


def test_the_provider_rides_out_a_throttling_storm_and_the_breaker_reports_an_outage(
    storm: tuple[CloudKmsEmulator, FaultInjector, str],
) -> None:
    emulator, injector, control = storm
    provider = emulator.provider(**RING)
    config = {"providers": {"gcp-kms": {"circuit_breaker": {"failures": 3, "cooldown": 0.3}}}}
    with KeyStack.from_dict(config, providers={"gcp-kms": provider}) as stack:
        key = provider.create_key("storm", KeySpec(key_type=KeyType.AES_256)).ref
        # half of all RPCs throttled (RESOURCE_EXHAUSTED): the retry policy absorbs them
        set_remote_plan(control, FaultPlan(throttle=0.5))
        for index in range(20):
            message = stack.encrypt(b"payload %d" % index, keys=[key])
            assert stack.decrypt(message) == b"payload %d" % index
        assert injector.counts()["throttle"] >= 10
        assert stack.breaker("gcp-kms").state is BreakerState.CLOSED

        # every RPC UNAVAILABLE: retries run out, three outages open the breaker
        set_remote_plan(control, FaultPlan(error=1.0))
        for _ in range(3):
            with pytest.raises(ProviderUnavailable):
                stack.encrypt(b"down", keys=[key])
        breaker = stack.breaker("gcp-kms")
        assert breaker.state is BreakerState.OPEN
        seen = sum(injector.counts().values())
        with pytest.raises(ProviderUnavailable) as fast:
            stack.encrypt(b"down", keys=[key])
        assert fast.value.code == OPEN_CODE
        assert "3 consecutive outage(s)" in str(fast.value)
        assert sum(injector.counts().values()) == seen  # failed fast: the backend saw nothing

        set_remote_plan(control, None)
        time.sleep(0.35)
        assert stack.decrypt(stack.encrypt(b"back", keys=[key])) == b"back"
        assert breaker.state.value == "closed"


def test_latency_and_dropped_connections_through_the_tcp_proxy() -> None:
    with CloudKmsEmulator() as emulator, FaultProxy(emulator.endpoint) as proxy:
        provider = emulator.provider(endpoint=proxy.endpoint, **RING)
        try:
            key = provider.create_key("proxied", KeySpec(key_type=KeyType.AES_256)).ref
            proxy.injector.set_plan(FaultPlan(latency=0.1))
            started = time.monotonic()
            provider.describe_key(key)
            assert time.monotonic() - started >= 0.1
            proxy.injector.set_plan(FaultPlan(drop=1.0))
            with pytest.raises(ProviderUnavailable):
                provider.describe_key(key)
            assert proxy.injector.counts()["drop"] >= 1
        finally:
            provider.close()
