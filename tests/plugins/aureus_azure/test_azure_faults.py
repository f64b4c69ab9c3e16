"""A throttling storm and an outage, injected from outside through the fault control endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from aureus_azure.testing import KeyVaultEmulator
from aureus_core import KeyStack
from aureus_core.errors import ProviderUnavailable
from aureus_core.keys import KeySpec, KeyType
from aureus_core.reliability import OPEN_CODE, BreakerState
from aureus_core.testing.faults import FaultInjector, FaultPlan, set_remote_plan

WRAP = KeySpec(key_type=KeyType.RSA_2048, options={"purpose": "wrap"})


@pytest.fixture
def storm() -> Iterator[tuple[KeyVaultEmulator, FaultInjector, str]]:
    with KeyVaultEmulator() as emulator, FaultInjector(seed=3) as injector:
        emulator.use_faults(injector)
        yield emulator, injector, injector.serve_control()


def test_the_provider_rides_out_a_throttling_storm_and_the_breaker_reports_an_outage(
    storm: tuple[KeyVaultEmulator, FaultInjector, str],
) -> None:
    emulator, injector, control = storm
    provider = emulator.provider(retry_total=8)
    config = {"providers": {"azure-kv": {"circuit_breaker": {"failures": 2, "cooldown": 0.3}}}}
    with KeyStack.from_dict(config, providers={"azure-kv": provider}) as stack:
        key = provider.create_key("storm", WRAP).ref
        # a third of all requests answered 429 Throttled: azure-core's retries absorb them
        set_remote_plan(control, FaultPlan(throttle=0.33, latency=0.002))
        for index in range(15):
            message = stack.encrypt(b"payload %d" % index, keys=[key])
            assert stack.decrypt(message) == b"payload %d" % index
        assert injector.counts()["throttle"] >= 5
        assert stack.breaker("azure-kv").state is BreakerState.CLOSED

        # every connection dropped unanswered: the retries run out, the breaker opens
        set_remote_plan(control, FaultPlan(drop=1.0, operations=["wrapkey"]))
        for _ in range(2):
            with pytest.raises(ProviderUnavailable):
                stack.encrypt(b"down", keys=[key])
        assert stack.breaker("azure-kv").state is BreakerState.OPEN
        seen = sum(injector.counts().values())
        with pytest.raises(ProviderUnavailable) as fast:
            stack.encrypt(b"down", keys=[key])
        assert fast.value.code == OPEN_CODE
        assert sum(injector.counts().values()) == seen

        set_remote_plan(control, None)
        time.sleep(0.35)
        assert stack.decrypt(stack.encrypt(b"back", keys=[key])) == b"back"
        assert stack.breaker("azure-kv").state is BreakerState.CLOSED


def test_503_answers_are_an_outage_and_429_with_retry_after_is_honoured(
    storm: tuple[KeyVaultEmulator, FaultInjector, str],
) -> None:
    emulator, injector, _control = storm
    provider = emulator.provider(retry_total=1)
    try:
        key = provider.create_key("answers", WRAP).ref
        injector.set_plan(FaultPlan(error=1.0))
        with pytest.raises(ProviderUnavailable, match="temporarily unavailable"):
            provider.describe_key(key)
        injector.set_plan(FaultPlan(throttle=1.0, retry_after=0.3))
        started = time.monotonic()
        with pytest.raises(Exception, match="too many requests") as throttled:
            provider.describe_key(key)
        assert type(throttled.value).__name__ == "Throttled"
        assert time.monotonic() - started >= 0.3  # the SDK waited as Retry-After said
    finally:
        provider.close()


def test_tls_passes_through_the_tcp_proxy_with_its_latency(
    azure_key_vault: KeyVaultEmulator,
) -> None:
    from azure.keyvault.keys import KeyClient

    from aureus_core.testing.faults import FaultProxy

    azure_key_vault.clear_faults()
    with FaultProxy(azure_key_vault.host) as proxy:
        client = KeyClient(
            f"https://{proxy.endpoint}",
            azure_key_vault.credential(),
            verify_challenge_resource=False,
            connection_verify=azure_key_vault.ca_file,
            retry_total=0,
        )
        created = client.create_ec_key("through-proxy")
        proxy.injector.set_plan(FaultPlan(latency=0.1))
        started = time.monotonic()
        assert client.get_key("through-proxy").id == created.id
        assert time.monotonic() - started >= 0.1
        client.close()
