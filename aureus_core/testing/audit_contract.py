"""The audit-sink contract: every test an :class:`AuditSink` must pass.

Subclass :class:`AuditSinkContract`, override the ``audit_sink`` fixture
and the ``recorded_events`` fixture (how to read back what the sink wrote);
a sink that cannot be read back sets ``readable = False`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone

import pytest

from ..audit import AuditEvent
from ..errors import AuditSinkError
from ..interfaces import AuditSink
from .concurrency import run_in_threads

RecordedEvents = Callable[[], Sequence[Mapping[str, object]] | None]
"""Returns what a sink recorded, one mapping per event (``AuditEvent.to_dict`` keys)."""

OPERATION_PREFIX = "contract-"
_EPOCH = datetime(2030, 1, 1, tzinfo=timezone.utc)


def make_event(number: int, *, thread: int = 0) -> AuditEvent:
    """An audit event with every field set, told apart by ``number`` and ``thread``."""
    return AuditEvent(
        operation=f"{OPERATION_PREFIX}op-{thread}-{number}",
        outcome="ok" if number % 3 else "DecryptionError",
        request_id=f"{thread:04x}{number:028x}",
        time=_EPOCH + timedelta(seconds=number),
        provider="contract",
        key_uri=f"contract://key-{thread}-{number}?version={number % 4 + 1}",
        key_version=str(number % 4 + 1),
        context_keys=("purpose", "tenant"),
        context_hashes=(("purpose", f"{number:064x}"), ("tenant", f"{thread:064x}")),
        byte_count=number * 100,
        principal="contract-principal",
        trace_id=f"{number:032x}",
        span_id=f"{number:016x}",
        details=(("thread", str(thread)), ("number", str(number))),
        labels=(("app", "contract"),),
    )


def _summary(record: Mapping[str, object]) -> tuple[object, object, object]:
    return record.get("operation"), record.get("outcome"), record.get("key_uri")


class AuditSinkContract:
    """Conformance tests for an audit sink.

    Override ``audit_sink`` to return a fresh sink.  Override
    ``recorded_events`` to return a callable that reads back what the sink
    recorded (a sequence of mappings with at least ``operation``, ``outcome``
    and ``key_uri``, as :meth:`AuditEvent.to_dict` gives).  Without it the
    read-back tests fail, unless the class sets ``readable = False`` for a
    sink whose records cannot be read back from a test; they are then
    skipped with that reason.  Records whose operation does not start with
    ``contract-`` are ignored, so a sink may record more than the events it
    was given.
    """

    readable: bool = True
    """``False``: what the sink records cannot be read back, so skip the read-back tests."""
    event_count: int = 50
    concurrency_threads: int = 8
    concurrency_operations: int = 25

    @pytest.fixture
    def audit_sink(self) -> AuditSink:
        """The audit sink under test: override this fixture in your subclass."""
        pytest.fail(
            f"{type(self).__name__} must override the 'audit_sink' fixture to return "
            "a fresh AuditSink",
            pytrace=False,
        )

    @pytest.fixture
    def recorded_events(self) -> RecordedEvents | None:
        """How to read back what the sink recorded; ``None``: it cannot be read back."""
        return None

    @staticmethod
    def contract_records(
        recorded_events: RecordedEvents | None,
    ) -> list[Mapping[str, object]] | None:
        """The contract's events among the recorded ones; ``None`` if there is no read-back."""
        records = recorded_events() if recorded_events is not None else None
        if records is None:
            return None
        return [r for r in records if str(r.get("operation", "")).startswith(OPERATION_PREFIX)]

    def read_back(self, recorded_events: RecordedEvents | None) -> list[Mapping[str, object]]:
        """The contract's recorded events; skip only if the class says ``readable = False``."""
        records = self.contract_records(recorded_events)
        if records is None:
            if not self.readable:
                pytest.skip("this sink cannot be read back (readable = False)")
            pytest.fail(
                f"{type(self).__name__} has no recorded_events fixture, so nothing checks what "
                "the sink wrote: override recorded_events to return a function that reads the "
                "records back, or set readable = False if they cannot be read from a test",
                pytrace=False,
            )
        return records

    def test_satisfies_the_protocol(self, audit_sink: AuditSink) -> None:
        """The sink has the methods of AuditSink."""
        assert isinstance(audit_sink, AuditSink)

    def test_emit_many(self, audit_sink: AuditSink) -> None:
        """Events with every field set are accepted."""
        for number in range(self.event_count):
            audit_sink.emit(make_event(number))

    def test_read_back_in_order(
        self, audit_sink: AuditSink, recorded_events: RecordedEvents | None
    ) -> None:
        """What was emitted is recorded in order, operation, outcome and key intact."""
        events = [make_event(number) for number in range(self.event_count)]
        for event in events:
            audit_sink.emit(event)
        records = self.read_back(recorded_events)
        assert [_summary(r) for r in records] == [_summary(e.to_dict()) for e in events]

    def test_emit_from_threads(
        self, audit_sink: AuditSink, recorded_events: RecordedEvents | None
    ) -> None:
        """Events emitted from many threads are all recorded, each thread's in its order."""

        def task(thread: int, operation: int) -> None:
            audit_sink.emit(make_event(operation, thread=thread))

        run_in_threads(
            task, threads=self.concurrency_threads, operations=self.concurrency_operations
        )
        if recorded_events is None and not self.readable:
            return
        records = self.read_back(recorded_events)
        assert len(records) == self.concurrency_threads * self.concurrency_operations
        for thread in range(self.concurrency_threads):
            prefix = f"{OPERATION_PREFIX}op-{thread}-"
            mine = [_summary(r) for r in records if str(r["operation"]).startswith(prefix)]
            expected = [
                _summary(make_event(n, thread=thread).to_dict())
                for n in range(self.concurrency_operations)
            ]
            assert mine == expected

    def test_close_is_idempotent(self, audit_sink: AuditSink) -> None:
        """close() may be called more than once."""
        audit_sink.emit(make_event(0))
        audit_sink.close()
        audit_sink.close()

    def test_emit_after_close_raises_audit_sink_error(
        self, audit_sink: AuditSink, recorded_events: RecordedEvents | None
    ) -> None:
        """A closed sink refuses events with AuditSinkError, never drops them silently."""
        audit_sink.emit(make_event(0))
        audit_sink.close()
        with pytest.raises(AuditSinkError):
            audit_sink.emit(make_event(1))
        records = self.contract_records(recorded_events)
        if records is not None:
            assert [_summary(r) for r in records] == [_summary(make_event(0).to_dict())]
