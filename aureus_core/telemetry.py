"""Tracing and metrics for stack operations, through the OpenTelemetry API.

Every stack operation runs in a span ``aureus.<operation>``, and every call
into a key provider in a child span ``aureus.provider.<method>`` (see
:mod:`aureus_core.instrumented`).  Counters and a provider-latency histogram
go to the ``aureus`` meter.  Only ``opentelemetry-api`` is used: with no SDK
configured the API's own no-op objects do the work, and with the API not
installed :class:`Telemetry` does nothing at all.  ``import aureus_core``
never imports OpenTelemetry; the first operation does once the application
has imported it (or names a provider in ``OTEL_PYTHON_TRACER_PROVIDER`` /
``OTEL_PYTHON_METER_PROVIDER``): before that no provider can be set and no
span be current, so there is nothing to record.

Spans and metrics carry operation names, provider schemes, key URIs and
versions, byte counts and error types, never plaintext, key material or
encryption-context values.  See ``docs/observability.md``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .errors import AureusError
from .instrumented import InstrumentedProvider

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from .interfaces import KeyProvider
    from .keyref import KeyRef

P = ParamSpec("P")
T = TypeVar("T")

SCOPE = "aureus"
"""The instrumentation scope (tracer and meter name)."""

PROVIDER_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Histogram bucket bounds (seconds): local keys take microseconds, cloud KMS calls milliseconds."""

_SPAN_FIELDS = (
    ("key_uri", "aureus.key_uri"),
    ("key_version", "aureus.key_version"),
    ("byte_count", "aureus.byte_count"),
)

_available: bool | None = None
"""Whether ``opentelemetry-api`` imports; ``None`` until first needed (tests set ``False``)."""

_PROVIDER_ENV = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
_named_in_env: bool | None = None
"""Whether the environment names a provider for the API to load (read at the first operation)."""


def _untouched() -> bool:
    """Whether nothing in this process has imported OpenTelemetry or names a provider for it.

    A provider is set, and a span started, through the API's modules, so until
    one of them is imported every span and measurement would go nowhere: the
    operation skips them without importing the API (tens of milliseconds, felt
    on every command-line start).  A provider named in the environment is
    loaded by the API itself: the variables are read once, at the first
    operation, as the API reads them once.
    """
    global _named_in_env
    if "opentelemetry" in sys.modules:
        return False
    if _named_in_env is None:
        _named_in_env = any(os.environ.get(name) for name in _PROVIDER_ENV)
    return not _named_in_env


def otel_available() -> bool:
    """Whether the OpenTelemetry API is installed (imported on the first call)."""
    global _available
    if _available is None:
        try:
            import opentelemetry.metrics
            import opentelemetry.trace  # noqa: F401
        except ImportError:
            _available = False
        else:
            _available = True
    return _available


class _Instruments:
    """The tracer and metric instruments for one pair of (possibly global) providers."""

    def __init__(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        from opentelemetry import context, metrics, trace

        version = _package_version()
        self.tracer = trace.get_tracer(SCOPE, version, tracer_provider)
        meter = metrics.get_meter(SCOPE, version or "", meter_provider)
        self.operations = meter.create_counter(
            "aureus.operations", unit="{operation}", description="Stack operations, by outcome."
        )
        self.errors = meter.create_counter(
            "aureus.errors", unit="{operation}", description="Stack operations that failed."
        )
        self.cache_hits = meter.create_counter(
            "aureus.cache.hits", unit="{lookup}", description="Data-key cache hits."
        )
        self.cache_misses = meter.create_counter(
            "aureus.cache.misses", unit="{lookup}", description="Data-key cache misses."
        )
        self.provider_duration = meter.create_histogram(
            "aureus.provider.duration",
            unit="s",
            description="Time spent in key provider calls.",
            explicit_bucket_boundaries_advisory=PROVIDER_LATENCY_BUCKETS,
        )
        self.attach = context.attach
        self.detach = context.detach
        self.in_context = trace.set_span_in_context
        self.current_span = trace.get_current_span
        self.status = trace.Status
        self.error_code = trace.StatusCode.ERROR
        explicit = tracer_provider is not None or meter_provider is not None
        self.quiet = _never if explicit else _global_quiet_check()
        """Whether nothing can receive telemetry: then spans and measurements are skipped."""


def _never() -> bool:
    return False


def _global_quiet_check() -> Callable[[], bool]:
    """A cheap test for "no global tracer or meter provider has been set".

    The API's own no-op path costs microseconds per span; skipping it until
    a provider is set leaves an uninstrumented application paying two
    attribute reads.  The set-once globals are private to the API, so if they
    are not where this expects them the test always says "no", and the API's
    no-op objects do the work.
    """
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import _internal as metrics_internal

    # Providers named by OTEL_PYTHON_{TRACER,METER}_PROVIDER are loaded on first lookup.
    trace.get_tracer_provider()
    metrics.get_meter_provider()
    if not (hasattr(trace, "_TRACER_PROVIDER") and hasattr(metrics_internal, "_METER_PROVIDER")):
        return _never

    def quiet() -> bool:
        return trace._TRACER_PROVIDER is None and metrics_internal._METER_PROVIDER is None

    return quiet


_global: _Instruments | None = None


def _global_instruments() -> _Instruments:
    """Instruments on the global providers (proxies that follow a later SDK setup)."""
    global _global
    if _global is None:
        _global = _Instruments(None, None)
    return _global


def _package_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aureus-kms")
    except PackageNotFoundError:
        return None


def _error_type(error: BaseException) -> str:
    kind = type(error)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _record_error(instruments: _Instruments, span: Span, error: BaseException) -> None:
    """Mark ``span`` failed: the error's type always; its message only for Aureus errors.

    Aureus error messages are written to carry no secrets; messages of other
    exceptions (a provider SDK's, a bug's) are not ours to vouch for.  No
    stack trace is recorded: it would include the messages of chained errors.
    """
    if not span.is_recording():
        return
    error_type = _error_type(error)
    attributes = {"exception.type": error_type}
    if isinstance(error, AureusError):
        attributes["exception.message"] = str(error)
        description = f"{type(error).__name__}: {error}"
    else:
        description = type(error).__name__
    span.set_status(instruments.status(instruments.error_code, description))
    span.set_attribute("error.type", error_type)
    span.add_event("exception", attributes)


class Telemetry:
    """Spans and metrics for one stack.

    ``tracer_provider`` and ``meter_provider`` default to the global ones
    (``opentelemetry.trace.set_tracer_provider`` ...), looked up when used, so
    an SDK configured after the stack was built still receives its telemetry.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._bound: _Instruments | None = None
        self._proxies: dict[int, InstrumentedProvider] = {}

    def quiet(self) -> bool:
        """Whether nothing would be traced or counted now (no OpenTelemetry, or no provider set)."""
        instruments = self._instruments()
        return instruments is None or instruments.quiet()

    def _instruments(self) -> _Instruments | None:
        if _available is False:
            return None
        instruments = self._bound
        if instruments is None:
            if self._tracer_provider is None and self._meter_provider is None:
                # _untouched(), without the call once the environment has been read
                if _named_in_env is False and "opentelemetry" not in sys.modules:
                    return None
                if _untouched():
                    return None
            if not otel_available():
                return None
            if self._tracer_provider is None and self._meter_provider is None:
                instruments = _global_instruments()
            else:
                instruments = _Instruments(self._tracer_provider, self._meter_provider)
            self._bound = instruments
        return instruments

    @contextmanager
    def operation(self, name: str, attributes: Mapping[str, Any]) -> Iterator[None]:
        """Run one stack operation in a span ``aureus.<name>`` and count it.

        ``attributes`` is the stack's operation record (``provider``,
        ``key_uri``, ``key_version``, ``byte_count`` ...); it may grow inside
        the block and is read when the block ends.
        """
        instruments = self._instruments()
        if instruments is None or instruments.quiet():
            yield
            return
        span = instruments.tracer.start_span(f"aureus.{name}")
        token = instruments.attach(instruments.in_context(span))
        outcome = "ok"
        try:
            yield
        except BaseException as error:
            outcome = type(error).__name__
            _record_error(instruments, span, error)
            raise
        finally:
            instruments.detach(token)
            labels = {"aureus.operation": name, "aureus.outcome": outcome}
            provider = attributes.get("provider")
            if provider is not None:
                labels["aureus.provider"] = provider
            if span.is_recording():
                span.set_attributes(labels)
                for field, attribute in _SPAN_FIELDS:
                    value = attributes.get(field)
                    if value is not None:
                        span.set_attribute(attribute, value)
            span.end()
            instruments.operations.add(1, labels)
            if outcome != "ok":
                instruments.errors.add(1, labels)

    def provider_call(
        self,
        scheme: str,
        method: str,
        key: KeyRef | None,
        call: Callable[P, T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``call(*args, **kwargs)`` in a span ``aureus.provider.<method>``, timing it."""
        instruments = self._instruments()
        if instruments is None or instruments.quiet():
            return call(*args, **kwargs)
        with self._provider_span(instruments, scheme, method, key):
            return call(*args, **kwargs)

    async def provider_acall(
        self,
        scheme: str,
        method: str,
        key: KeyRef | None,
        call: Callable[P, Awaitable[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """:meth:`provider_call` for a native coroutine: the span covers the await."""
        instruments = self._instruments()
        if instruments is None or instruments.quiet():
            return await call(*args, **kwargs)
        with self._provider_span(instruments, scheme, method, key):
            return await call(*args, **kwargs)

    @contextmanager
    def _provider_span(
        self, instruments: _Instruments, scheme: str, method: str, key: KeyRef | None
    ) -> Iterator[None]:
        span = instruments.tracer.start_span(f"aureus.provider.{method}")
        token = instruments.attach(instruments.in_context(span))
        outcome = "ok"
        start = time.perf_counter()
        try:
            yield
        except BaseException as error:
            outcome = type(error).__name__
            _record_error(instruments, span, error)
            raise
        finally:
            elapsed = time.perf_counter() - start
            instruments.detach(token)
            labels = {"aureus.provider": scheme, "aureus.method": method, "aureus.outcome": outcome}
            if span.is_recording():
                span.set_attributes(labels)
                if key is not None:
                    span.set_attribute("aureus.key_uri", key.with_version(None).uri)
                    if key.version is not None:
                        span.set_attribute("aureus.key_version", key.version)
            span.end()
            instruments.provider_duration.record(elapsed, labels)

    def cache_hit(self, operation: str, provider: str | None = None) -> None:
        """Count a data-key cache hit during ``operation`` (``encrypt`` or ``decrypt``)."""
        self._cache_lookup("hit", operation, provider)

    def cache_miss(self, operation: str, provider: str | None = None) -> None:
        """Count a data-key cache miss during ``operation``."""
        self._cache_lookup("miss", operation, provider)

    def _cache_lookup(self, result: str, operation: str, provider: str | None) -> None:
        instruments = self._instruments()
        if instruments is None or instruments.quiet():
            return
        labels = {"aureus.operation": operation}
        if provider is not None:
            labels["aureus.provider"] = provider
        counter = instruments.cache_hits if result == "hit" else instruments.cache_misses
        counter.add(1, labels)
        span = instruments.current_span()
        if span.is_recording():
            span.set_attribute("aureus.cache", result)

    def instrument(self, provider: KeyProvider) -> KeyProvider:
        """``provider`` behind a proxy that traces and times its calls.

        Without OpenTelemetry, or before any tracer or meter provider is set,
        ``provider`` itself.
        """
        instruments = self._instruments()
        if instruments is None or instruments.quiet():
            return provider
        if isinstance(provider, InstrumentedProvider):
            if provider.telemetry is self:
                return provider
            provider = provider.wrapped
        proxy = self._proxies.get(id(provider))
        if proxy is None or proxy.wrapped is not provider:
            proxy = self._proxies[id(provider)] = InstrumentedProvider(provider, self)
        return proxy


def current_ids() -> tuple[str | None, str | None]:
    """The current span's trace and span IDs in W3C hex form, or ``(None, None)``."""
    if _available is False or (_available is None and (_untouched() or not otel_available())):
        return None, None
    context = _global_instruments().current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


__all__ = ["PROVIDER_LATENCY_BUCKETS", "SCOPE", "Telemetry", "current_ids", "otel_available"]
