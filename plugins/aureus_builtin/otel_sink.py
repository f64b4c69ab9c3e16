"""The ``otel`` audit sink: each event as an OpenTelemetry log record, or as a span event.

A plugin of its own (entry point ``otel``, extra ``otel``): loading it looks
for the ``opentelemetry`` package, so without it ``aureus
plugins`` shows the plugin unavailable with the line that installs it, and
nothing else breaks.  The API itself is imported by the first sink built, so
a command that configures no ``otel`` sink does not pay for it.

Log records carry the event as JSON in the body and flattened into
``aureus.audit.*`` attributes, with event name ``aureus.audit``.  An event
that would be dropped (no logger provider configured, or in span-event mode
no recording span) raises, so a required audit trail notices.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import json
import time
from collections.abc import Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from aureus_core.audit import AuditEvent
from aureus_core.errors import AuditSinkError, ConfigError
from aureus_core.hookspecs import hookimpl
from aureus_core.options import Options
from aureus_core.registry import AuditSinkRegistry

if TYPE_CHECKING:
    from opentelemetry._logs import LoggerProvider

EVENT_NAME = "aureus.audit"
ATTRIBUTE_PREFIX = "aureus.audit."
SIGNALS = ("logs", "span-event")
DEFAULT_SCOPE = "aureus.audit"
_UNCONFIGURED = ("ProxyLoggerProvider", "NoOpLoggerProvider")


def _require_api() -> None:
    """No ``opentelemetry`` package: the plugin is unavailable, with the line that installs it.

    Only located, not imported (importing a package's submodules would import
    the package): the extra's distributions are checked by the plugin host.
    """
    if importlib.util.find_spec("opentelemetry") is None:
        raise ModuleNotFoundError("No module named 'opentelemetry'", name="opentelemetry")


_require_api()


@functools.cache
def _api() -> Any:
    """The OpenTelemetry API functions the sink calls, imported once."""
    try:
        from opentelemetry import trace
        from opentelemetry._logs import LogRecord, SeverityNumber, get_logger_provider
    except ImportError as error:  # found at plugin load, but broken or partly installed
        raise ConfigError(
            f"the otel audit sink cannot import the OpenTelemetry API ({error}); "
            "reinstall it: pip install 'aureus-kms[otel]'"
        ) from None

    return SimpleNamespace(
        get_current_span=trace.get_current_span,
        LogRecord=LogRecord,
        SeverityNumber=SeverityNumber,
        get_logger_provider=get_logger_provider,
        has_event_name="event_name" in inspect.signature(LogRecord.__init__).parameters,
    )


def attributes(event: AuditEvent) -> dict[str, Any]:
    """The event flattened into OpenTelemetry attributes (``aureus.audit.details.count`` ...)."""
    flat: dict[str, Any] = {}
    for name, value in event.to_dict().items():
        if isinstance(value, Mapping):
            for entry, item in value.items():
                flat[f"{ATTRIBUTE_PREFIX}{name}.{entry}"] = str(item)
        elif isinstance(value, list):
            flat[ATTRIBUTE_PREFIX + name] = [str(item) for item in value]
        else:
            flat[ATTRIBUTE_PREFIX + name] = value
    return flat


class OtelAuditSink:
    """Sends events to OpenTelemetry: log records (``signal="logs"``) or span events.

    ``logger_provider`` defaults to the global one, looked up at each event so
    an SDK configured later is used.
    """

    def __init__(
        self,
        *,
        signal: str = "logs",
        scope: str = DEFAULT_SCOPE,
        logger_provider: LoggerProvider | None = None,
    ) -> None:
        if signal not in SIGNALS:
            raise ConfigError(f"signal must be 'logs' or 'span-event', not {signal!r}")
        self.signal = signal
        self.scope = scope
        self._logger_provider = logger_provider
        self._closed = False
        self._api = _api()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> OtelAuditSink:
        """Build from ``[[audit.sinks]]`` options: ``signal`` and ``scope``."""
        reader = Options("the otel audit sink", options, ("signal", "scope"))
        signal = reader.string("signal", "logs")
        return cls(signal=signal, scope=reader.string("scope", DEFAULT_SCOPE))

    def emit(self, event: AuditEvent) -> None:
        """Record ``event``; raise :class:`AuditSinkError` if OpenTelemetry would drop it."""
        if not isinstance(event, AuditEvent):
            raise TypeError(f"an audit sink records AuditEvent objects, not {type(event).__name__}")
        if self._closed:
            raise AuditSinkError(f"the otel audit sink ({self.signal}) is closed")
        if self.signal == "span-event":
            span = self._api.get_current_span()
            if not span.is_recording():
                raise AuditSinkError(
                    "the otel audit sink found no recording span to add the event to: "
                    'configure an OpenTelemetry TracerProvider, or use signal = "logs"'
                )
            span.add_event(EVENT_NAME, attributes(event), int(event.time.timestamp() * 1e9))
            return
        api = self._api
        provider = self._logger_provider or api.get_logger_provider()
        if type(provider).__name__ in _UNCONFIGURED:
            raise AuditSinkError(
                "the otel audit sink has no OpenTelemetry LoggerProvider, so the event would "
                "be dropped: configure the SDK (opentelemetry._logs.set_logger_provider) "
                "before the first operation"
            )
        extra: dict[str, Any] = {"event_name": EVENT_NAME} if api.has_event_name else {}
        failed = event.outcome not in ("ok", "pending")
        record = api.LogRecord(
            timestamp=int(event.time.timestamp() * 1e9),
            observed_timestamp=time.time_ns(),
            severity_number=api.SeverityNumber.WARN if failed else api.SeverityNumber.INFO,
            severity_text="WARN" if failed else "INFO",
            body=json.dumps(event.to_dict(), sort_keys=True),
            attributes=attributes(event),
            **extra,
        )
        provider.get_logger(self.scope).emit(record)

    def close(self) -> None:
        """Record nothing more; the providers belong to the application."""
        self._closed = True

    def __repr__(self) -> str:
        return f"OtelAuditSink(signal={self.signal!r}, scope={self.scope!r})"


@hookimpl
def aureus_register_audit_sinks(registry: AuditSinkRegistry) -> None:
    """Register the ``otel`` audit sink."""
    registry.register(
        "otel",
        OtelAuditSink.from_options,
        description="OpenTelemetry log records or span events (options: signal, scope)",
    )
