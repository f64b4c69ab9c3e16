"""The audit trail in a stack: request and outcome events, failure modes, hashes, capture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aureus_builtin.audit_sinks import MemoryAuditSink
from aureus_core import AuditEvent, AuditFailure, KeyNotFound, KeyStack, hookimpl
from aureus_core.audit import READ_ONLY_OPERATIONS, AuditTrail, Enrich
from aureus_core.config import StackConfig
from aureus_core.interfaces import Credentials
from aureus_core.plugins import PluginHost
from aureus_core.sensitive import Secret
from aureus_core.testing import capture_audit


class FailingSink:
    """Fails every event, or only those of one phase."""

    def __init__(self, phase: str | None = None) -> None:
        self.phase = phase
        self.seen: list[AuditEvent] = []

    def emit(self, event: AuditEvent) -> None:
        if self.phase is None or event.phase == self.phase:
            raise OSError(28, "No space left on device")
        self.seen.append(event)

    def close(self) -> None:
        pass


def summary(events: list[AuditEvent]) -> list[tuple[str, str, str]]:
    return [(e.operation, e.phase, e.outcome) for e in events]


def test_changes_are_requested_before_they_run(tmp_path: Path) -> None:
    sink = MemoryAuditSink()
    with KeyStack.local(tmp_path, audit_sinks=[sink]) as stack:
        stack.create_key("w", "aes-256")
        stack.rotate_key("local://w")
        stack.describe_key("local://w")
        stack.list_keys()
        message = stack.encrypt(b"plaintext", context={"tenant": "acme"}, keys=["local://w"])
        stack.decrypt(message)
    assert summary(sink.events) == [
        ("create", "request", "pending"),
        ("create", "outcome", "ok"),
        ("rotate", "request", "pending"),
        ("rotate", "outcome", "ok"),
        ("describe", "outcome", "ok"),
        ("list", "outcome", "ok"),
        ("encrypt", "request", "pending"),
        ("encrypt", "outcome", "ok"),
        ("decrypt", "request", "pending"),
        ("decrypt", "outcome", "ok"),
    ]
    requests = {e.request_id for e in sink.events if e.phase == "request"}
    assert len(requests) == 4
    assert {e.request_id for e in sink.events if e.operation in ("create", "rotate")} <= requests
    encrypted = sink.events[7]
    assert (encrypted.key_uri, encrypted.byte_count) == ("local://w", len(b"plaintext"))
    assert encrypted.context_keys == ("tenant",)
    assert encrypted.context_hashes == ()
    assert "acme" not in repr(sink.events)
    assert {"describe", "list", "verify", "public_key"} <= READ_ONLY_OPERATIONS


def test_an_unrecordable_request_stops_the_operation_before_it_runs(tmp_path: Path) -> None:
    with KeyStack.local(tmp_path / "ks", audit_sinks=[FailingSink()]) as stack:
        with pytest.raises(AuditFailure) as error:
            stack.create_key("never", "ed25519")
        assert str(error.value) == (
            "no audit sink could record the request for create (FailingSink: [Errno 28] No space "
            "left on device); the operation was not run because auditing is required: fix the "
            "sink, or set [audit] required = false to run unaudited"
        )
    with KeyStack.local(tmp_path / "ks") as unaudited:
        assert unaudited.list_keys() == []


def test_an_unrecordable_outcome_withholds_the_result(tmp_path: Path) -> None:
    sink = FailingSink(phase="outcome")
    stack = KeyStack.local(tmp_path / "ks", audit_sinks=[sink])
    with stack, pytest.raises(AuditFailure) as error:
        stack.create_key("made", "ed25519")
    (request,) = sink.seen
    assert request.phase == "request"
    assert f"the operation ran (its request record has request_id {request.request_id})" in str(
        error.value
    )
    with KeyStack.local(tmp_path / "ks") as unaudited:
        assert [k.uri for k in unaudited.list_keys()] == ["local://made"]


def test_one_working_sink_is_enough(tmp_path: Path) -> None:
    memory = MemoryAuditSink()
    with KeyStack.local(tmp_path, audit_sinks=[FailingSink(), memory]) as stack:
        stack.create_key("k", "ed25519")
    assert len(memory.events) == 2


def test_not_required_runs_unaudited(tmp_path: Path) -> None:
    config = StackConfig.from_dict(
        {"providers": {"local": {"keystore": str(tmp_path)}}, "audit": {"required": False}}
    )
    with KeyStack(config=config, audit_sinks=[FailingSink()]) as stack:
        assert stack.create_key("k", "ed25519").uri == "local://k"
        assert stack.audit_required is False


def test_a_failed_operation_records_its_error(tmp_path: Path) -> None:
    sink = MemoryAuditSink()
    with KeyStack.local(tmp_path, audit_sinks=[sink]) as stack, pytest.raises(KeyNotFound):
        stack.sign(b"m", key="local://missing")
    assert summary(sink.events) == [
        ("sign", "request", "pending"),
        ("sign", "outcome", "KeyNotFound"),
    ]


def test_the_audit_log_variable_adds_a_jsonl_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "logs" / "audit.jsonl"
    monkeypatch.setenv("AUREUS_AUDIT_LOG", str(log))
    with KeyStack.local(tmp_path / "ks") as stack:
        assert stack.audit_required is True
        stack.create_key("k", "ed25519")
        (sink,) = stack.audit.sinks
        assert type(sink).__name__ == "JsonlAuditSink"
        assert [e["operation"] for e in sink.read_events()] == ["create", "create"]  # type: ignore[attr-defined]
    configured = StackConfig.from_dict({"audit": {"sinks": [{"type": "memory"}]}})
    assert [s.name for s in configured.audit_sink_specs()] == ["memory"]
    assert [s.options for s in StackConfig().audit_sink_specs()] == [{"path": str(log)}]
    assert StackConfig().audit_sink_specs(environ={}) == ()


def test_an_unwritable_audit_log_stops_the_operation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("AUREUS_AUDIT_LOG", str(tmp_path / "file" / "audit.jsonl"))
    with KeyStack.local(tmp_path / "ks") as stack, pytest.raises(AuditFailure) as error:
        stack.create_key("k", "ed25519")
    assert "JsonlAuditSink: cannot append to audit log" in str(error.value)
    assert "the operation was not run" in str(error.value)


def test_processors_in_code_and_in_the_configuration(tmp_path: Path) -> None:
    sink = MemoryAuditSink()
    config = {
        "providers": {"local": {"keystore": str(tmp_path)}},
        "audit": {
            "processors": [
                {"type": "drop", "operations": ["describe"]},
                {"type": "redact", "drop": ["key_version"], "hash": ["key_uri"]},
            ]
        },
    }
    stack = KeyStack.from_dict(
        config, audit_sinks=[sink], audit_processors=[Enrich({"app": "payments"})]
    )
    with stack:
        stack.create_key("k", "ed25519")
        stack.describe_key("local://k")
    assert summary(sink.events) == [("create", "request", "pending"), ("create", "outcome", "ok")]
    outcome = sink.events[1]
    assert outcome.key_version is None
    assert outcome.key_uri is not None
    assert outcome.key_uri.startswith("hmac-sha256:")
    assert outcome.key_uri == sink.events[0].key_uri  # the same key, the same hash
    assert dict(outcome.labels) == {"app": "payments"}


def test_a_failing_processor_is_an_audit_failure_when_required(tmp_path: Path) -> None:
    def broken(event: AuditEvent) -> AuditEvent:
        raise RuntimeError("bug")

    stack = KeyStack.local(tmp_path, audit_sinks=[MemoryAuditSink()], audit_processors=[broken])
    with stack, pytest.raises(AuditFailure, match=r"audit processor .* failed on the create event"):
        stack.create_key("k", "ed25519")


def test_context_hashes_under_a_random_key_match_only_within_a_stack(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "providers": {"local": {"keystore": str(tmp_path)}},
        "audit": {"context_hashes": True},
    }
    with KeyStack.local(tmp_path) as setup:
        setup.create_key("w", "aes-256")

    def hashes() -> list[dict[str, str]]:
        sink = MemoryAuditSink()
        with KeyStack.from_dict(config, audit_sinks=[sink]) as stack:
            for tenant in ("acme", "acme", "globex"):
                stack.encrypt(b"x", context={"tenant": tenant}, keys=["local://w"])
        return [dict(e.context_hashes) for e in sink.events if e.phase == "outcome"]

    first, second = hashes(), hashes()
    assert first[0] == first[1] != first[2]
    assert first[0] != second[0]
    assert "acme" not in str(first)


def test_context_hashes_under_a_hash_key_match_across_stacks(tmp_path: Path) -> None:
    with KeyStack.local(tmp_path) as setup:
        setup.create_key("w", "aes-256")
        setup.create_key("audit-hash", "aes-256")
    config: dict[str, Any] = {
        "providers": {"local": {"keystore": str(tmp_path)}},
        "audit": {"context_hashes": True, "hash_key": "local://audit-hash"},
    }

    def one_hash() -> str:
        sink = MemoryAuditSink()
        with KeyStack.from_dict(config, audit_sinks=[sink]) as stack:
            message = stack.encrypt(b"x", context={"tenant": "acme"}, keys=["local://w"])
            stack.decrypt(message)
        encrypt, decrypt = (dict(e.context_hashes) for e in sink.events if e.phase == "outcome")
        assert encrypt == decrypt
        return encrypt["tenant"]

    assert one_hash() == one_hash()


def test_the_principal_comes_from_the_credential_source(tmp_path: Path) -> None:
    class WhoAmI:
        name = "whoami"

        def get_credentials(self) -> Credentials:
            return Credentials(
                kind="test", values={"passphrase": Secret("pass")}, principal="alice@example"
            )

    class Plugin:
        @hookimpl
        def aureus_register_credential_sources(self, registry: Any) -> None:
            registry.register("whoami", lambda options: WhoAmI())

    host = PluginHost()
    host.register(Plugin(), name="whoami-plugin")
    config = {
        "providers": {"local": {"keystore": str(tmp_path), "credentials": "me"}},
        "credentials": {"me": {"source": "whoami"}},
    }
    sink = MemoryAuditSink()
    with KeyStack.from_dict(config, audit_sinks=[sink], host=host) as stack:
        stack.create_key("k", "ed25519")
        stack.sign(b"m", key="local://k")
    assert [e.principal for e in sink.events][-2:] == ["alice@example", "alice@example"]


def test_capture_audit_sees_every_stack(tmp_path: Path) -> None:
    with capture_audit() as events:
        with KeyStack.local(tmp_path / "a") as one:
            one.create_key("k", "ed25519")
        with KeyStack.local(tmp_path / "b") as two:
            two.list_keys()
    assert [(e["operation"], e["phase"]) for e in events] == [
        ("create", "request"),
        ("create", "outcome"),
        ("list", "outcome"),
    ]
    with KeyStack.local(tmp_path / "a") as after:
        after.list_keys()
    assert len(events) == 3


def test_capture_does_not_count_as_a_sink(tmp_path: Path) -> None:
    trail = AuditTrail([FailingSink()])
    with capture_audit() as events, pytest.raises(AuditFailure):
        trail.emit(AuditEvent(operation="sign"))
    assert [e["operation"] for e in events] == ["sign"]


def test_sinks_that_need_keys_get_the_providers() -> None:
    class Keyed:
        def __init__(self) -> None:
            self.providers: object = None

        def use_key_providers(self, providers: object) -> None:
            self.providers = providers

        def emit(self, event: AuditEvent) -> None:
            pass

        def close(self) -> None:
            pass

    def lookup(scheme: str) -> Any:
        raise AssertionError

    given, built, added = Keyed(), Keyed(), Keyed()
    trail = AuditTrail([given], build_sinks=lambda: [built], providers=lookup)
    trail.add(added)
    assert [s.providers for s in (given, built, added)] == [lookup, lookup, lookup]
    assert trail.sinks == [given, built, added]
