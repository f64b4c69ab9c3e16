"""The audit trail: builds configured sinks lazily and delivers every event to them.

When auditing is required (the default once any sink is configured) and no
sink records an event, the operation fails with :class:`AuditFailure` rather
than run unaudited, as HashiCorp Vault's audit devices do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from ..errors import AuditFailure
from ..interfaces import AuditSink
from .events import AuditEvent


class AuditTrail:
    """Sinks for one stack; ``build_sinks`` is called once, on first use."""

    def __init__(
        self,
        sinks: Sequence[AuditSink] = (),
        *,
        build_sinks: Callable[[], Sequence[AuditSink]] = tuple,
        required: bool | None = None,
    ) -> None:
        self._sinks = list(sinks)
        self._build = build_sinks
        self._built = False
        self._required = required
        self._lock = threading.RLock()

    @property
    def sinks(self) -> list[AuditSink]:
        """Every sink, building the configured ones on first use."""
        with self._lock:
            if not self._built:
                self._sinks.extend(self._build())
                self._built = True
            return self._sinks

    @property
    def required(self) -> bool:
        """Whether an operation fails when no sink can record its event."""
        if self._required is not None:
            return self._required
        return bool(self.sinks)

    def add(self, sink: AuditSink) -> None:
        """Deliver events to ``sink`` as well."""
        with self._lock:
            self.sinks.append(sink)

    def emit(self, event: AuditEvent) -> None:
        """Deliver ``event`` to every sink; raise if required and none recorded it."""
        sinks = self.sinks
        recorded = 0
        failures: list[str] = []
        for sink in sinks:
            try:
                sink.emit(event)
                recorded += 1
            except Exception as error:  # a failing sink must not hide the others
                failures.append(f"{type(sink).__name__}: {type(error).__name__}")
        if sinks and not recorded and self.required:
            raise AuditFailure(
                f"no audit sink could record the {event.operation} event "
                f"({'; '.join(failures)}); the operation is refused because auditing is "
                "required: fix the sink or set [audit] required = false"
            )

    def close(self) -> None:
        """Close every sink that was built or added."""
        with self._lock:
            for sink in self._sinks:
                sink.close()
