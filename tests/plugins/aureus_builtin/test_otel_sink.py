"""The otel audit sink: OpenTelemetry log records or span events (skipped without the SDK)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from aureus_builtin.otel_sink import OtelAuditSink, attributes
from aureus_core.errors import AuditSinkError, ConfigError
from aureus_core.plugins import PluginHost, install_line
from aureus_core.testing import AuditSinkContract, make_event


@pytest.fixture
def exporter() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()


@pytest.fixture
def logger_provider(exporter: InMemoryLogRecordExporter) -> LoggerProvider:
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider


class TestOtelAuditSinkContract(AuditSinkContract):
    # The SDK tells the caller of Logger.emit nothing: a shut-down provider or exporter
    # drops the record with a log line. The sink refuses only when no SDK is configured.
    breakable = False

    @pytest.fixture
    def audit_sink(self, logger_provider: LoggerProvider) -> OtelAuditSink:
        return OtelAuditSink(logger_provider=logger_provider)

    @pytest.fixture
    def recorded_events(
        self, exporter: InMemoryLogRecordExporter
    ) -> Callable[[], Sequence[Mapping[str, object]]]:
        return lambda: [json.loads(str(r.log_record.body)) for r in exporter.get_finished_logs()]


def test_a_log_record_carries_the_event(
    logger_provider: LoggerProvider, exporter: InMemoryLogRecordExporter
) -> None:
    event = make_event(3)
    OtelAuditSink(logger_provider=logger_provider).emit(event)
    (exported,) = exporter.get_finished_logs()
    record = exported.log_record
    assert json.loads(str(record.body)) == event.to_dict()
    assert record.attributes is not None
    assert record.attributes["aureus.audit.operation"] == "contract-op-0-3"
    assert record.attributes["aureus.audit.details.number"] == "3"
    assert record.attributes["aureus.audit.context_keys"] == ("purpose", "tenant")
    assert record.severity_text == "WARN"  # outcome DecryptionError
    assert exported.instrumentation_scope is not None
    assert exported.instrumentation_scope.name == "aureus.audit"


def test_no_logger_provider_means_the_event_is_refused() -> None:
    with pytest.raises(AuditSinkError, match="no OpenTelemetry LoggerProvider"):
        OtelAuditSink().emit(make_event(1))


def test_span_events_go_to_the_current_span() -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    sink = OtelAuditSink.from_options({"signal": "span-event"})
    with pytest.raises(AuditSinkError, match="no recording span"):
        sink.emit(make_event(1))
    with tracer_provider.get_tracer("test").start_as_current_span("operation"):
        sink.emit(make_event(2))
    (span,) = spans.get_finished_spans()
    (event,) = span.events
    assert event.name == "aureus.audit"
    expected = attributes(make_event(2))
    assert event.attributes is not None
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in event.attributes.items()} == (
        expected
    )


def test_options() -> None:
    assert repr(OtelAuditSink.from_options({"scope": "payments.audit"})) == (
        "OtelAuditSink(signal='logs', scope='payments.audit')"
    )
    with pytest.raises(ConfigError, match="signal must be 'logs' or 'span-event'"):
        OtelAuditSink.from_options({"signal": "metrics"})


def test_the_otel_plugin_is_registered() -> None:
    host = PluginHost(environ={"AUREUS_LOAD_PLUGINS": "otel"})
    (info,) = [i for i in host.plugins() if i.name == "otel"]
    assert (info.status.value, info.registers) == ("loaded", {"audit_sinks": ("otel",)})


def test_without_opentelemetry_the_plugin_is_unavailable_with_the_install_line() -> None:
    script = textwrap.dedent(
        """
        import json, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, Block())
        from aureus_core.plugins import PluginHost
        infos = {i.name: i.to_dict() for i in PluginHost().plugins()}
        print(json.dumps(infos))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUREUS_")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    infos: dict[str, Any] = json.loads(done.stdout)
    assert infos["otel"]["status"] == "unavailable"
    # the line for how aureus-kms is installed here (a checkout, or a release)
    expected = install_line(metadata.distribution("aureus-kms"), ["otel"])
    assert infos["otel"]["install_hint"] == expected
    assert "pip install" in expected
    assert "aureus-kms[otel]" in expected
    assert infos["builtin"]["status"] == "loaded"
    assert "jsonl" in infos["builtin"]["registers"]["audit_sinks"]
