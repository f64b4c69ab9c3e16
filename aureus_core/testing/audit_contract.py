"""The audit-sink contract: every test an :class:`AuditSink` must pass.

Subclass :class:`AuditSinkContract`, override the ``audit_sink`` fixture,
the ``recorded_events`` fixture (how to read back what the sink wrote) and
the ``break_store`` fixture (how to make its store fail); a sink that cannot
be read back sets ``readable = False`` instead of the first, one whose store
cannot fail from a test sets ``breakable = False`` instead of the second.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone

import pytest

from ..audit import AuditEvent
from ..errors import AuditSinkError
from ..interfaces import AuditSink
from .concurrency import run_in_threads

RecordedEvents = Callable[[], Sequence[Mapping[str, object]] | None]
"""Returns what a sink recorded, one mapping per event (``AuditEvent.to_dict`` keys)."""
BreakStore = Callable[[], AbstractContextManager[None]]
"""Returns a context manager during which the sink's store fails (unwritable, gone, full)."""

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


def make_minimal_event(number: int) -> AuditEvent:
    """An audit event with only its operation set (every optional field left out)."""
    return AuditEvent(
        operation=f"{OPERATION_PREFIX}bare-{number}-\u00e9\u4e2d",
        time=_EPOCH + timedelta(seconds=number),
    )


def _summary(record: Mapping[str, object]) -> tuple[object, object, object]:
    return record.get("operation"), record.get("outcome"), record.get("key_uri")


def _plain(value: object) -> object:
    """``value`` with tuples as lists, as JSON would give it back."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def assert_records_match(
    records: Sequence[Mapping[str, object]], events: Sequence[AuditEvent]
) -> None:
    """Each record holds every field of its event's ``to_dict()``, equal; extra fields pass."""
    assert [_summary(r) for r in records] == [_summary(e.to_dict()) for e in events]
    for number, (record, event) in enumerate(zip(records, events, strict=True)):
        got = _plain(dict(record))
        assert isinstance(got, dict)
        for field, value in event.to_dict().items():
            assert field in got, f"record #{number} lost the field {field!r}"
            assert got[field] == _plain(value), f"record #{number} changed the field {field!r}"


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
    breakable: bool = True
    """``False``: the sink's store cannot be made to fail from a test (process memory), or
    the sink cannot see it fail; the broken-store test is skipped.  Say why in a comment."""
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

    @pytest.fixture
    def break_store(self) -> BreakStore | None:
        """A context manager during which the sink's store fails; ``None``: no such fixture."""
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

    def test_emit_many(self, audit_sink: AuditSink, recorded_events: RecordedEvents | None) -> None:
        """Events with every field set, and with none but the operation, are recorded whole.

        For a sink that cannot be read back (``readable = False``) this can only
        check that ``emit`` accepts them and returns ``None``.
        """
        events = [
            make_event(number) if number % 2 else make_minimal_event(number)
            for number in range(self.event_count)
        ]
        for event in events:
            assert audit_sink.emit(event) is None  # type: ignore[func-returns-value]
        if recorded_events is None and not self.readable:
            return
        assert_records_match(self.read_back(recorded_events), events)

    def test_read_back_in_order(
        self, audit_sink: AuditSink, recorded_events: RecordedEvents | None
    ) -> None:
        """What was emitted is recorded in order, every field of ``to_dict()`` intact."""
        events = [make_event(number) for number in range(self.event_count)]
        for event in events:
            audit_sink.emit(event)
        assert_records_match(self.read_back(recorded_events), events)

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

    def test_close_is_idempotent(
        self, audit_sink: AuditSink, recorded_events: RecordedEvents | None
    ) -> None:
        """close() may be called again: the sink stays closed and keeps what it recorded."""
        audit_sink.emit(make_event(0))
        audit_sink.close()
        audit_sink.close()
        with pytest.raises(AuditSinkError):
            audit_sink.emit(make_event(1))
        records = self.contract_records(recorded_events)
        if records is not None:
            assert_records_match(records, [make_event(0)])

    def test_broken_store_raises_audit_sink_error(
        self,
        audit_sink: AuditSink,
        recorded_events: RecordedEvents | None,
        break_store: BreakStore | None,
    ) -> None:
        """While its store fails, emit raises AuditSinkError; it never drops an event silently.

        The stack counts an event as recorded when emit returns, so a sink that
        swallows the failure loses the event while the operation goes ahead.
        Once the store works again, the sink records again.
        """
        if break_store is None:
            if not self.breakable:
                pytest.skip("the sink's store cannot be made to fail (breakable = False)")
            pytest.fail(
                f"{type(self).__name__} has no break_store fixture, so nothing checks that the "
                "sink reports a failed write: override break_store to return a function giving "
                "a context manager during which the store fails, or set breakable = False if "
                "it cannot fail from a test",
                pytrace=False,
            )
        before, during, after = make_event(0), make_event(1), make_event(2)
        audit_sink.emit(before)
        with break_store(), pytest.raises(AuditSinkError):
            audit_sink.emit(during)
        audit_sink.emit(after)
        records = self.contract_records(recorded_events)
        if records is not None:
            kept = [r for r in records if r.get("operation") != during.operation]
            assert_records_match(kept, [before, after])

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
            assert_records_match(records, [make_event(0)])
