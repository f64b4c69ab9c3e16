"""The audit trail: runs processors on every event and delivers it to the sinks.

When auditing is required (the default once any sink is configured) and no
sink records an event, the operation fails with :class:`AuditFailure` rather
than run unaudited, as HashiCorp Vault's audit devices do.  So that a failed
audit never follows a side effect, every operation that is not read-only is
recorded twice: a ``request`` event before it runs (if that cannot be
recorded the operation does not run) and an ``outcome`` event after.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from ..audit_event import OUTCOME, PENDING, REQUEST, AuditEvent
from ..errors import AuditFailure, AureusError
from ..interfaces import AuditSink, ProviderLookup, UsesKeyProviders
from ..keyref import KeyRef
from . import observers
from .hashing import FieldHasher
from .observers import notify
from .processors import Processor, build_processors

READ_ONLY_OPERATIONS = frozenset(
    {"describe", "list", "public_key", "verify", "key_status", "inspect"}
)
"""Operations recorded once, after they ran: they change nothing and release no data.

Every other operation, including ones added later, gets a request event first.
"""

_EVENT_FIELDS = frozenset(attrs.fields_dict(AuditEvent)) - {
    "operation",
    "outcome",
    "phase",
    "request_id",
    "time",
}


def _describe_failure(sink: AuditSink, error: Exception) -> str:
    if isinstance(error, (AureusError, OSError)):
        return f"{type(sink).__name__}: {error}"
    return f"{type(sink).__name__}: {type(error).__name__}"


class AuditTrail:
    """Processors and sinks for one stack; ``build_sinks`` is called once, on first use.

    ``providers`` is handed to sinks that need keys (see
    :class:`~aureus_core.interfaces.UsesKeyProviders`) and keys the field
    hasher when ``hash_key`` is set.  ``processor_specs`` are ``(type,
    options)`` pairs from ``[audit] processors``; they run before
    ``processors``.  ``principal`` maps a provider scheme to who its
    credentials act as, where known.
    """

    def __init__(
        self,
        sinks: Sequence[AuditSink] = (),
        *,
        build_sinks: Callable[[], Sequence[AuditSink]] = tuple,
        required: bool | None = None,
        processors: Sequence[Processor] = (),
        processor_specs: Sequence[tuple[str, Mapping[str, Any]]] = (),
        providers: ProviderLookup | None = None,
        hash_key: KeyRef | None = None,
        context_hashes: bool = False,
        principal: Callable[[str], str | None] | None = None,
    ) -> None:
        self._providers = providers
        self._sinks: list[AuditSink] = []
        self._build = build_sinks
        self._built = False
        self._required = required
        self._lock = threading.RLock()
        if hash_key is not None and providers is not None:
            self.hasher = FieldHasher.from_provider(providers, hash_key)
        else:
            self.hasher = FieldHasher.ephemeral()
        self._context_hashes = context_hashes
        self._principal = principal
        self._processors: list[Processor] = [
            *build_processors(processor_specs, hasher=self.hasher),
            *processors,
        ]
        for sink in sinks:
            self._attach(sink)

    def _attach(self, sink: AuditSink) -> None:
        if self._providers is not None and isinstance(sink, UsesKeyProviders):
            sink.use_key_providers(self._providers)
        self._sinks.append(sink)

    @property
    def sinks(self) -> list[AuditSink]:
        """Every sink, building the configured ones on first use."""
        with self._lock:
            if not self._built:
                self._built = True
                for sink in self._build():
                    self._attach(sink)
            return self._sinks

    @property
    def processors(self) -> list[Processor]:
        """The processors, in the order they run."""
        return list(self._processors)

    @property
    def required(self) -> bool:
        """Whether an operation fails when no sink can record its event."""
        if self._required is not None:
            return self._required
        return bool(self.sinks)

    def add(self, sink: AuditSink) -> None:
        """Deliver events to ``sink`` as well."""
        with self._lock:
            _ = self.sinks  # build the configured sinks first, to keep their order
            self._attach(sink)

    # -- events ----------------------------------------------------------------

    def emit(self, event: AuditEvent) -> None:
        """Process ``event`` and deliver it to every sink.

        Raises :class:`AuditFailure` if auditing is required and no sink
        recorded it (or a processor failed).
        """
        processed = event
        try:
            for processor in self._processors:
                result = processor(processed)
                if result is None:
                    return
                processed = result
        except Exception as error:
            if self.required:
                raise AuditFailure(
                    f"audit processor {processor!r} failed on the {event.operation} event "
                    f"({type(error).__name__}); {self._consequence(event)}"
                ) from error
            return
        notify(processed)
        sinks = self.sinks
        recorded = 0
        failures: list[str] = []
        for sink in sinks:
            try:
                sink.emit(processed)
                recorded += 1
            except Exception as error:  # a failing sink must not hide the others
                failures.append(_describe_failure(sink, error))
        if sinks and not recorded and self.required:
            what = "request for" if event.phase == REQUEST else "outcome of"
            raise AuditFailure(
                f"no audit sink could record the {what} {event.operation} "
                f"({'; '.join(failures)}); {self._consequence(event)}"
            )

    @staticmethod
    def _consequence(event: AuditEvent) -> str:
        if event.phase == REQUEST:
            done = "the operation was not run"
        elif event.request_id is not None and event.operation not in READ_ONLY_OPERATIONS:
            done = (
                f"the operation ran (its request record has request_id {event.request_id}) "
                "but its result is withheld"
            )
        else:
            done = "its result is withheld"
        return (
            f"{done} because auditing is required: fix the sink, or set "
            "[audit] required = false to run unaudited"
        )

    def idle(self) -> bool:
        """Whether an event emitted now would reach nothing: no sink, processor or observer."""
        if self._processors or observers.active():
            return False
        return not (self._sinks if self._built else self.sinks)

    @contextmanager
    def operation(
        self,
        name: str,
        op: dict[str, Any],
        before: Callable[[dict[str, Any]], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Audit one stack operation; ``op`` holds its event fields and may grow inside.

        Emits the request event first unless ``name`` is read-only, then the
        outcome: ``ok``, or the class name of the exception that ended it.
        ``before`` adds fields to ``op`` first, only when events are built.
        """
        if self.idle():
            # Nobody would see the events: no sink, processor or observer. Building
            # them is skipped; the moment one is added, every operation gets both.
            yield op
            return
        if before is not None:
            before(op)
        request_id = uuid.uuid4().hex
        if name not in READ_ONLY_OPERATIONS:
            self.emit(self._event(name, op, request_id, phase=REQUEST, outcome=PENDING))
        try:
            yield op
        except Exception as error:
            self.emit(self._event(name, op, request_id, outcome=type(error).__name__))
            raise
        self.emit(self._event(name, op, request_id))

    def _event(
        self,
        name: str,
        op: Mapping[str, Any],
        request_id: str,
        *,
        phase: str = OUTCOME,
        outcome: str = "ok",
    ) -> AuditEvent:
        fields = {key: value for key, value in op.items() if key in _EVENT_FIELDS}
        provider = fields.get("provider")
        if fields.get("principal") is None and self._principal is not None and provider:
            try:
                fields["principal"] = self._principal(provider)
            except Exception:  # who acted is a nice-to-have; it must not fail the operation
                fields["principal"] = None
        return AuditEvent(
            operation=name, phase=phase, outcome=outcome, request_id=request_id, **fields
        )

    def context_fields(self, context: Mapping[str, str]) -> dict[str, Any]:
        """Event fields for an encryption context: its keys, and hashed values if configured."""
        fields: dict[str, Any] = {"context_keys": tuple(context)}
        if self._context_hashes and context:
            fields["context_hashes"] = tuple(
                (key, self.hasher.hash(key, value)) for key, value in context.items()
            )
        return fields

    def close(self) -> None:
        """Close every sink that was built or added."""
        with self._lock:
            for sink in self._sinks:
                sink.close()
