"""The fault and latency injector: plans, random draws, the control endpoint, the TCP proxy."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from aureus_core.testing.faults import (
    FaultInjector,
    FaultPlan,
    FaultProxy,
    Outcome,
    set_remote_plan,
)


def test_a_plan_refuses_what_makes_no_sense() -> None:
    with pytest.raises(ValueError, match="throttle must be a fraction from 0 to 1"):
        FaultPlan(throttle=1.5)
    with pytest.raises(ValueError, match="must not exceed 1"):
        FaultPlan(throttle=0.6, error=0.6)
    with pytest.raises(ValueError, match="latency must be a number of seconds"):
        FaultPlan(latency=-1)
    with pytest.raises(ValueError, match="unknown fault plan field"):
        FaultPlan.from_json({"throttel": 0.5})
    with pytest.raises(ValueError, match="operations must be a list"):
        FaultPlan.from_json({"operations": "Encrypt"})
    plan = FaultPlan.from_json({"throttle": 0.25, "operations": ["Encrypt"]})
    assert FaultPlan.from_json(plan.to_json()) == plan


def test_draws_follow_the_fractions_and_the_operation_filter() -> None:
    injector = FaultInjector(FaultPlan(throttle=0.5, error=0.25), seed=7)
    outcomes = [injector.decide("Encrypt").outcome for _ in range(4000)]
    assert 0.45 < outcomes.count(Outcome.THROTTLE) / 4000 < 0.55
    assert 0.20 < outcomes.count(Outcome.ERROR) / 4000 < 0.30
    assert Outcome.DROP not in outcomes
    assert injector.counts()["throttle"] == outcomes.count(Outcome.THROTTLE)
    injector.set_plan(FaultPlan(drop=1.0, latency=0.2, operations=("Decrypt",)))
    assert injector.decide("Encrypt").outcome is Outcome.PASS
    assert injector.decide("Encrypt").latency == 0.0  # not covered: no latency either
    decision = injector.decide("Decrypt")
    assert (decision.outcome, decision.latency) == (Outcome.DROP, 0.2)


def test_the_control_endpoint_sets_reads_and_clears_the_plan() -> None:
    with FaultInjector() as injector:
        url = injector.serve_control()
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/faults")
        state = set_remote_plan(url, FaultPlan(error=1.0))
        assert state["plan"]["error"] == 1.0
        assert injector.plan.error == 1.0
        assert injector.decide("x").outcome is Outcome.ERROR
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            assert json.loads(response.read())["counts"]["error"] == 1
        bad = urllib.request.Request(url, data=b'{"drop": 2}', method="PUT")  # noqa: S310
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=5)  # noqa: S310
        with refused.value:
            assert refused.value.code == 400
            assert "drop must be a fraction" in json.loads(refused.value.read())["error"]
        assert injector.plan.error == 1.0  # a refused plan changes nothing
        cleared = set_remote_plan(url, None)
        assert cleared["plan"] == FaultPlan().to_json()
        assert cleared["counts"]["error"] == 0


@pytest.fixture
def echo_server() -> Iterator[str]:
    """A TCP server that echoes every line back."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue

            def echo(connection: socket.socket = connection) -> None:
                with connection:
                    while data := connection.recv(4096):
                        connection.sendall(data)

            threading.Thread(target=echo, daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    server.close()


def _round_trip(endpoint: str, payload: bytes) -> bytes:
    host, port = endpoint.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(payload)
        return connection.recv(4096)


def test_the_tcp_proxy_adds_latency_and_drops_connections(echo_server: str) -> None:
    with FaultProxy(echo_server) as proxy:
        assert _round_trip(proxy.endpoint, b"hello") == b"hello"
        proxy.injector.set_plan(FaultPlan(latency=0.2))
        started = time.monotonic()
        assert _round_trip(proxy.endpoint, b"slow") == b"slow"
        assert time.monotonic() - started >= 0.2
        proxy.injector.set_plan(FaultPlan(drop=1.0))
        assert _round_trip(proxy.endpoint, b"dropped") == b""  # closed, never answered
        assert proxy.injector.counts()["drop"] == 1
    with pytest.raises(ValueError, match="host:port"):
        FaultProxy("nowhere")
    with pytest.raises(ValueError, match="protocol"):
        FaultProxy("127.0.0.1:1", protocol="smtp")


def test_the_command_line_proxy_is_controlled_from_outside(echo_server: str) -> None:
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "aureus_core.testing.faults", "--upstream", echo_server],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().strip()
        control = process.stdout.readline().strip().removeprefix("AUREUS_FAULTS_URL=")
        assert _round_trip(endpoint, b"through") == b"through"
        set_remote_plan(control, FaultPlan(drop=1.0))
        assert _round_trip(endpoint, b"dropped") == b""
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
