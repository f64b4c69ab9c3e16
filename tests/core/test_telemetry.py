import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aureus_core import (
    AuditEvent,
    DecryptionError,
    KeyNotFound,
    KeyProvider,
    KeyStack,
    telemetry,
)
from aureus_core.instrumented import InstrumentedProvider
from aureus_core.telemetry import PROVIDER_LATENCY_BUCKETS, Telemetry, current_ids
from aureus_core.testing import assert_no_secret

PLAINTEXT = b"telemetry test plaintext: the spans must never carry this"


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def emit(self, event: AuditEvent) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


class Otel:
    """An SDK tracer and meter provider that keep everything in memory."""

    def __init__(self) -> None:
        sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        self.tracer_provider = sdk_trace.TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = Telemetry(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def spans(self, name: str | None = None) -> list[Any]:
        spans = self.exporter.get_finished_spans()
        return [s for s in spans if name is None or s.name == name]

    def span(self, name: str) -> Any:
        (span,) = self.spans(name)
        return span

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for found in scope.metrics
            if found.name == metric
            for point in found.data.data_points
        ]

    def count(self, metric: str, **labels: str) -> int:
        wanted = {f"aureus.{k}": v for k, v in labels.items()}
        return sum(
            p.value
            for p in self.points(metric)
            if all(p.attributes.get(k) == v for k, v in wanted.items())
        )


@pytest.fixture
def otel() -> Otel:
    return Otel()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def stack(tmp_path: Path, otel: Otel, sink: RecordingSink) -> Iterator[KeyStack]:
    with KeyStack.local(
        tmp_path / "ks",
        wrapping_keys=["local://wrap"],
        signing_key="local://sign",
        telemetry=otel.telemetry,
        audit_sinks=[sink],
    ) as stack:
        yield stack


def operation_attributes(span: Any) -> dict[str, Any]:
    return dict(span.attributes)


def test_every_operation_has_a_span_with_its_attributes(stack: KeyStack, otel: Otel):
    stack.create_key("wrap", "aes-256")
    stack.create_key("sign", "ed25519")
    stack.rotate_key("local://wrap")
    message = stack.encrypt(PLAINTEXT)
    assert stack.decrypt(message) == PLAINTEXT
    signature = stack.sign(PLAINTEXT)
    assert stack.verify(PLAINTEXT, signature)

    creates = otel.spans("aureus.create")
    assert [operation_attributes(s) for s in creates] == [
        {
            "aureus.operation": "create",
            "aureus.outcome": "ok",
            "aureus.provider": "local",
            "aureus.key_uri": f"local://{name}",
            "aureus.key_version": "1",
        }
        for name in ("wrap", "sign")
    ]
    assert operation_attributes(otel.span("aureus.rotate")) == {
        "aureus.operation": "rotate",
        "aureus.outcome": "ok",
        "aureus.provider": "local",
        "aureus.key_uri": "local://wrap",
        "aureus.key_version": "2",
    }
    for name in ("encrypt", "decrypt"):
        assert operation_attributes(otel.span(f"aureus.{name}")) == {
            "aureus.operation": name,
            "aureus.outcome": "ok",
            "aureus.provider": "local",
            "aureus.key_uri": "local://wrap",
            "aureus.key_version": "2",
            "aureus.byte_count": len(PLAINTEXT),
        }
    for name in ("sign", "verify"):
        assert operation_attributes(otel.span(f"aureus.{name}")) == {
            "aureus.operation": name,
            "aureus.outcome": "ok",
            "aureus.provider": "local",
            "aureus.key_uri": "local://sign",
            "aureus.key_version": "1",
            "aureus.byte_count": len(PLAINTEXT),
        }
    for span in otel.spans():
        assert span.status.is_ok
        assert span.instrumentation_scope.name == "aureus"


def test_provider_calls_are_child_spans(stack: KeyStack, otel: Otel):
    stack.create_key("wrap", "aes-256")
    otel.exporter.clear()
    stack.decrypt(stack.encrypt(PLAINTEXT))

    encrypt = otel.span("aureus.encrypt")
    wrap = otel.span("aureus.provider.wrap")
    assert wrap.parent.span_id == encrypt.context.span_id
    assert wrap.context.trace_id == encrypt.context.trace_id
    assert dict(wrap.attributes) == {
        "aureus.provider": "local",
        "aureus.method": "wrap",
        "aureus.outcome": "ok",
        "aureus.key_uri": "local://wrap",
    }
    decrypt = otel.span("aureus.decrypt")
    unwrap = otel.span("aureus.provider.unwrap")
    assert unwrap.parent.span_id == decrypt.context.span_id
    assert unwrap.attributes["aureus.key_version"] == "1"
    assert otel.span("aureus.provider.owner_of").parent.span_id == decrypt.context.span_id
    # operations end after the provider calls they made
    assert encrypt.end_time >= wrap.end_time


def test_errors_set_status_and_count(stack: KeyStack, otel: Otel):
    with pytest.raises(DecryptionError):
        stack.decrypt(b"\x02\x04\x78" + bytes(10))  # a header cut short
    with pytest.raises(KeyNotFound):
        stack.describe_key("local://missing")

    decrypt = otel.span("aureus.decrypt")
    assert not decrypt.status.is_ok
    assert decrypt.status.description.startswith("DecryptionError: ")
    assert decrypt.attributes["error.type"] == "aureus_core.errors.DecryptionError"
    assert decrypt.attributes["aureus.outcome"] == "DecryptionError"
    (event,) = decrypt.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "aureus_core.errors.DecryptionError"
    assert event.attributes["exception.message"] == decrypt.status.description.split(": ", 1)[1]
    assert "exception.stacktrace" not in event.attributes

    child = otel.span("aureus.provider.describe_key")
    assert not child.status.is_ok
    assert child.attributes["aureus.outcome"] == "KeyNotFound"
    assert child.parent.span_id == otel.span("aureus.describe").context.span_id

    assert otel.count("aureus.errors", operation="decrypt", outcome="DecryptionError") == 1
    assert otel.count("aureus.errors", operation="describe", outcome="KeyNotFound") == 1
    assert otel.count("aureus.operations", outcome="ok") == 0


def test_foreign_errors_record_their_type_only(tmp_path: Path, otel: Otel):
    class Exploding:
        scheme = "boom"
        capabilities: frozenset[str] = frozenset()
        key_types: frozenset[str] = frozenset()

        def list_keys(self):
            raise ValueError("a message we cannot vouch for")

        def close(self):
            pass

    with KeyStack(providers={"boom": Exploding()}, telemetry=otel.telemetry) as stack:  # type: ignore[dict-item]
        provider = stack.provider("boom")
        with pytest.raises(ValueError, match="vouch"):
            provider.list_keys()
    span = otel.span("aureus.provider.list_keys")
    assert span.status.description == "ValueError"
    assert span.attributes["error.type"] == "ValueError"
    (event,) = span.events
    assert dict(event.attributes) == {"exception.type": "ValueError"}


def test_metrics(stack: KeyStack, otel: Otel):
    stack.create_key("wrap", "aes-256")
    for _ in range(3):
        stack.encrypt(PLAINTEXT)
    stack.list_keys()

    assert otel.count("aureus.operations", operation="encrypt", provider="local", outcome="ok") == 3
    assert otel.count("aureus.operations", operation="create", outcome="ok") == 1
    # an operation whose record names no provider is counted without one
    (listing,) = [
        p for p in otel.points("aureus.operations") if p.attributes["aureus.operation"] == "list"
    ]
    assert "aureus.provider" not in listing.attributes
    assert otel.points("aureus.errors") == []

    durations = {p.attributes["aureus.method"]: p for p in otel.points("aureus.provider.duration")}
    assert durations["wrap"].count == 3
    assert durations["wrap"].attributes["aureus.provider"] == "local"
    assert durations["wrap"].attributes["aureus.outcome"] == "ok"
    assert durations["wrap"].sum > 0
    assert tuple(durations["wrap"].explicit_bounds) == PROVIDER_LATENCY_BUCKETS
    assert durations["create_key"].count == 1


def test_cache_hits_and_misses(stack: KeyStack, otel: Otel):
    tel = otel.telemetry
    with tel.operation("decrypt", {"provider": "local"}):
        tel.cache_miss("decrypt", provider="local")
    with tel.operation("decrypt", {"provider": "local"}):
        tel.cache_hit("decrypt", provider="local")
    tel.cache_hit("encrypt")

    assert otel.count("aureus.cache.misses", operation="decrypt", provider="local") == 1
    assert otel.count("aureus.cache.hits", operation="decrypt", provider="local") == 1
    assert otel.count("aureus.cache.hits", operation="encrypt") == 1
    assert [s.attributes["aureus.cache"] for s in otel.spans("aureus.decrypt")] == ["miss", "hit"]


def test_audit_events_carry_the_operation_span_ids(stack: KeyStack, otel: Otel, sink):
    stack.create_key("wrap", "aes-256")
    span = otel.span("aureus.create")
    events = [e for e in sink.events if e.operation == "create"]
    assert events
    for event in events:
        assert event.trace_id == format(span.context.trace_id, "032x")
        assert event.span_id == format(span.context.span_id, "016x")


def test_current_ids_inside_a_span(otel: Otel):
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("outer") as outer:
        trace_id, span_id = current_ids()
    assert trace_id == format(outer.get_span_context().trace_id, "032x")
    assert span_id == format(outer.get_span_context().span_id, "016x")


def test_spans_carry_no_plaintext_or_key_material(stack: KeyStack, otel: Otel):
    raw = os.urandom(32)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private_raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    stack.import_key("wrap", "aes-256", raw=raw)
    stack.import_key("sign", "ed25519", pem=pem)
    context = {"tenant": "secret-tenant-name-value"}
    message = stack.encrypt(PLAINTEXT, context=context)
    stack.decrypt(message, context=context)
    stack.verify(PLAINTEXT, stack.sign(PLAINTEXT))
    with pytest.raises(DecryptionError):
        stack.decrypt(message, context={"tenant": "another-secret-value"})

    secrets: list[bytes | str] = [raw, private_raw, pem, PLAINTEXT, "secret-tenant-name-value"]
    spans = otel.spans()
    assert len(spans) > 10
    for span in spans:
        text = repr(dict(span.attributes)) + span.name + (span.status.description or "")
        text += "".join(repr(dict(e.attributes)) for e in span.events)
        assert_no_secret(text, secrets, f"span {span.name}")


def test_provider_proxy_keeps_the_provider_interface(stack: KeyStack, tmp_path: Path):
    provider = stack.provider("local")
    assert isinstance(provider, InstrumentedProvider)
    assert isinstance(provider, KeyProvider)
    assert provider is stack.provider("local")
    inner = provider.wrapped
    assert provider.scheme == inner.scheme == "local"
    assert provider.capabilities == inner.capabilities
    assert provider.key_types == inner.key_types
    assert provider.keystore_dir == tmp_path / "ks"  # provider-specific attributes pass through
    assert "LocalKeyProvider" in repr(provider)
    members = {name for name in vars(KeyProvider) if not name.startswith("_")}
    members |= set(KeyProvider.__annotations__)
    missing = sorted(members - set(dir(InstrumentedProvider)))
    assert not missing, f"InstrumentedProvider does not define {missing}"


def test_providers_passed_in_are_wrapped_once(tmp_path: Path, otel: Otel):
    with KeyStack.local(tmp_path, telemetry=otel.telemetry) as first:
        proxy = first.provider("local")
        assert isinstance(proxy, InstrumentedProvider)
        with KeyStack(providers={"local": proxy}, telemetry=otel.telemetry) as second:
            assert second.provider("local") is proxy
        other = Telemetry(tracer_provider=otel.tracer_provider)
        with KeyStack(providers={"local": proxy}, telemetry=other) as third:
            rewrapped = third.provider("local")
            assert isinstance(rewrapped, InstrumentedProvider)
            assert rewrapped.wrapped is proxy.wrapped
            assert rewrapped.telemetry is other


def test_api_no_op_providers_work(tmp_path: Path):
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider

    tel = Telemetry(tracer_provider=NoOpTracerProvider(), meter_provider=NoOpMeterProvider())
    sink = RecordingSink()
    with KeyStack.local(
        tmp_path, wrapping_keys=["local://k"], telemetry=tel, audit_sinks=[sink]
    ) as stack:
        stack.create_key("k")
        assert stack.decrypt(stack.encrypt(PLAINTEXT)) == PLAINTEXT
        with pytest.raises(DecryptionError):
            stack.decrypt(b"junk")
    assert all(e.trace_id is None and e.span_id is None for e in sink.events)


def test_without_opentelemetry_telemetry_does_nothing(
    tmp_path: Path, otel: Otel, sink: RecordingSink, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(telemetry, "_available", False)
    with KeyStack.local(
        tmp_path, wrapping_keys=["local://k"], telemetry=otel.telemetry, audit_sinks=[sink]
    ) as stack:
        stack.create_key("k")
        assert stack.decrypt(stack.encrypt(PLAINTEXT)) == PLAINTEXT
        with pytest.raises(DecryptionError):
            stack.decrypt(b"junk")
        assert not isinstance(stack.provider("local"), InstrumentedProvider)
        otel.telemetry.cache_hit("encrypt")
    assert otel.spans() == []
    assert otel.points("aureus.operations") == []
    assert otel.points("aureus.cache.hits") == []
    assert current_ids() == (None, None)
    assert sink.events
    assert all(e.trace_id is None for e in sink.events)


def run_python(code: str, tmp_path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_importing_and_building_a_stack_imports_no_opentelemetry(tmp_path: Path):
    out = run_python(
        f"""
        import sys
        import aureus_core
        from aureus_core import KeyStack
        stack = KeyStack.local({str(tmp_path / "ks")!r})
        print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
        """,
        tmp_path,
    )
    assert out.strip() == "[]"


def test_stack_works_when_opentelemetry_is_not_installed(tmp_path: Path):
    out = run_python(
        f"""
        import sys
        sys.modules["opentelemetry"] = None  # every "import opentelemetry..." now fails
        from aureus_core import KeyStack, telemetry
        from aureus_core.instrumented import InstrumentedProvider

        with KeyStack.local({str(tmp_path / "ks")!r}, wrapping_keys=["local://k"]) as stack:
            stack.create_key("k")
            assert stack.decrypt(stack.encrypt(b"data")) == b"data"
            assert not isinstance(stack.provider("local"), InstrumentedProvider)
        assert telemetry._available is False
        assert telemetry.current_ids() == (None, None)
        print("ok")
        """,
        tmp_path,
    )
    assert out.strip() == "ok"


def test_global_sdk_set_up_after_the_stack_is_used(tmp_path: Path):
    pytest.importorskip("opentelemetry.sdk")
    out = run_python(
        f"""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from aureus_core import KeyStack
        from aureus_core.instrumented import InstrumentedProvider

        with KeyStack.local({str(tmp_path / "ks")!r}, wrapping_keys=["local://k"]) as stack:
            stack.create_key("k")
            stack.encrypt(b"before")  # nothing configured: no proxy, no spans
            assert not isinstance(stack.provider("local"), InstrumentedProvider)
            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            stack.encrypt(b"after")
            assert isinstance(stack.provider("local"), InstrumentedProvider)
        print(sorted(s.name for s in exporter.get_finished_spans()))
        """,
        tmp_path,
    )
    assert out.strip() == "['aureus.encrypt', 'aureus.provider.wrap']"


def test_operations_import_no_opentelemetry_until_the_application_does(tmp_path: Path):
    pytest.importorskip("opentelemetry.sdk")
    out = run_python(
        f"""
        import sys
        from aureus_core import KeyStack
        from aureus_core.instrumented import InstrumentedProvider

        def otel_modules():
            return sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")

        with KeyStack.local({str(tmp_path / "ks")!r}, wrapping_keys=["local://k"]) as stack:
            stack.create_key("k")
            assert stack.decrypt(stack.encrypt(b"before")) == b"before"
            assert otel_modules() == [], otel_modules()
            assert not isinstance(stack.provider("local"), InstrumentedProvider)

            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                InMemorySpanExporter,
            )

            exporter = InMemorySpanExporter()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            stack.encrypt(b"after")
        print(sorted(s.name for s in exporter.get_finished_spans()))
        """,
        tmp_path,
    )
    assert out.strip() == "['aureus.encrypt', 'aureus.provider.wrap']"


def test_a_provider_named_in_the_environment_is_still_looked_up(tmp_path: Path):
    pytest.importorskip("opentelemetry.sdk")
    env_code = f"""
        import os, sys
        os.environ["OTEL_PYTHON_TRACER_PROVIDER"] = "sdk_tracer_provider"
        from aureus_core import KeyStack
        with KeyStack.local({str(tmp_path / "ks")!r}, wrapping_keys=["local://k"]) as stack:
            stack.create_key("k")
            stack.encrypt(b"data")
        print("opentelemetry.trace" in sys.modules)
        """
    assert run_python(env_code, tmp_path).strip() == "True"
