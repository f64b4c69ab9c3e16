"""A throttling storm in front of moto's server, through the fault proxy (AWS JSON protocol)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from aureus_aws import AwsKmsOptions, AwsKmsProvider
from aureus_aws.testing import MotoServer
from aureus_core import KeyStack
from aureus_core.errors import ProviderUnavailable
from aureus_core.keys import KeySpec, KeyType
from aureus_core.reliability import OPEN_CODE, BreakerState
from aureus_core.testing.faults import AWS, FaultInjector, FaultPlan, FaultProxy, set_remote_plan


@pytest.fixture
def proxied(moto_server: MotoServer) -> Iterator[FaultProxy]:
    endpoint = moto_server.url.removeprefix("http://")
    with FaultProxy(endpoint, FaultInjector(seed=5), protocol=AWS) as proxy, proxy.injector:
        yield proxy


def _provider(proxy: FaultProxy, **options: Any) -> AwsKmsProvider:
    settings = {"region": "us-east-1", "endpoint_url": proxy.url, **options}
    return AwsKmsProvider(AwsKmsOptions.from_mapping(settings))


def test_botocore_rides_out_throttling_and_the_breaker_reports_an_outage(
    proxied: FaultProxy,
) -> None:
    control = proxied.injector.serve_control()
    provider = _provider(proxied, retries={"mode": "standard", "max_attempts": 6})
    config = {"providers": {"aws-kms": {"circuit_breaker": {"failures": 2, "cooldown": 0.3}}}}
    with KeyStack.from_dict(config, providers={"aws-kms": provider}) as stack:
        key = provider.create_key(f"storm-{time.time_ns()}", KeySpec(key_type=KeyType.AES_256))
        # a quarter of the KMS calls answered ThrottlingException, as KMS does: retried
        set_remote_plan(
            control, FaultPlan(throttle=0.25, operations=["GenerateDataKey", "Encrypt", "Decrypt"])
        )
        for index in range(5):
            message = stack.encrypt(b"payload %d" % index, keys=[key.ref])
            assert stack.decrypt(message, keys=[key.ref]) == b"payload %d" % index
        counts = proxied.injector.counts()
        assert counts["throttle"] >= 2, counts
        assert stack.breaker("aws-kms").state is BreakerState.CLOSED

        # every Encrypt answered 500 KMSInternalException: retries run out, the breaker opens
        set_remote_plan(control, FaultPlan(error=1.0, operations=["GenerateDataKey", "Encrypt"]))
        for _ in range(2):
            with pytest.raises(ProviderUnavailable):
                stack.encrypt(b"down", keys=[key.ref])
        assert stack.breaker("aws-kms").state is BreakerState.OPEN
        with pytest.raises(ProviderUnavailable) as fast:
            stack.encrypt(b"down", keys=[key.ref])
        assert fast.value.code == OPEN_CODE

        set_remote_plan(control, None)
        time.sleep(0.35)
        assert stack.decrypt(stack.encrypt(b"back", keys=[key.ref]), keys=[key.ref]) == b"back"
        assert stack.breaker("aws-kms").state is BreakerState.CLOSED
