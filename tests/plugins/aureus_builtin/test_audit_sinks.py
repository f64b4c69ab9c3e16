from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence

import pytest

from aureus_builtin.audit_sinks import LoggingAuditSink, MemoryAuditSink, parse_level
from aureus_core.audit import AuditEvent
from aureus_core.errors import AuditSinkError, ConfigError
from aureus_core.testing import AuditSinkContract, make_event


class TestMemoryAuditSinkContract(AuditSinkContract):
    breakable = False  # its store is a list in process memory: nothing to break

    @pytest.fixture
    def audit_sink(self) -> MemoryAuditSink:
        return MemoryAuditSink.from_options({})

    @pytest.fixture
    def recorded_events(
        self, audit_sink: MemoryAuditSink
    ) -> Callable[[], Sequence[Mapping[str, object]]]:
        return lambda: [event.to_dict() for event in audit_sink.events]


class TestLoggingAuditSinkContract(AuditSinkContract):
    # A handler that fails reports to logging.Handler.handleError, never to the caller:
    # the sink cannot see a failed write, so a broken handler loses events unseen.
    breakable = False

    @pytest.fixture
    def logger_name(self) -> str:
        return f"aureus.audit.test-{uuid.uuid4().hex[:8]}"

    @pytest.fixture
    def audit_sink(self, logger_name: str) -> LoggingAuditSink:
        return LoggingAuditSink.from_options({"logger": logger_name})

    @pytest.fixture
    def recorded_events(
        self, caplog: pytest.LogCaptureFixture, logger_name: str
    ) -> Callable[[], Sequence[Mapping[str, object]]]:
        caplog.set_level(logging.INFO, logger=logger_name)
        return lambda: [json.loads(r.getMessage()) for r in caplog.records if r.name == logger_name]


def test_memory_events_is_a_copy():
    sink = MemoryAuditSink()
    sink.emit(make_event(1))
    events = sink.events
    events.clear()
    assert [e.operation for e in sink.events] == ["contract-op-0-1"]
    sink.clear()
    assert sink.events == []


def test_memory_sink_refuses_what_is_not_an_event():
    with pytest.raises(TypeError, match="AuditEvent"):
        MemoryAuditSink().emit({"operation": "encrypt"})  # type: ignore[arg-type]


def test_logging_sink_writes_one_json_record_per_event(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="aureus.audit")
    sink = LoggingAuditSink.from_options({})
    event = AuditEvent(operation="encrypt", key_uri="local://payments", byte_count=12)
    sink.emit(event)
    (record,) = [r for r in caplog.records if r.name == "aureus.audit"]
    assert record.levelno == logging.INFO
    assert json.loads(record.getMessage()) == event.to_dict()
    assert record.aureus_event == event.to_dict()  # type: ignore[attr-defined]


def test_logging_sink_options(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG, logger="my.audit")
    sink = LoggingAuditSink.from_options({"logger": "my.audit", "level": "warning"})
    sink.emit(AuditEvent(operation="sign", outcome="AccessDenied"))
    (record,) = [r for r in caplog.records if r.name == "my.audit"]
    assert (record.levelno, json.loads(record.getMessage())["outcome"]) == (
        logging.WARNING,
        "AccessDenied",
    )
    assert repr(sink) == "LoggingAuditSink(logger='my.audit', level='WARNING')"


def test_logging_sink_below_the_logger_level_writes_nothing(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="quiet.audit")
    LoggingAuditSink(logger="quiet.audit", level=logging.INFO).emit(make_event(1))
    assert [r for r in caplog.records if r.name == "quiet.audit"] == []


@pytest.mark.parametrize(
    ("value", "level"),
    [("INFO", 20), ("debug", 10), (" Error ", 40), ("WARN", 30), (25, 25), (0, 0)],
)
def test_parse_level(value, level):
    assert parse_level(value) == level


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"level": "LOUD"},
            "option 'level' of the logging audit sink: unknown logging level 'LOUD'; "
            "use DEBUG, INFO, WARNING, ERROR, CRITICAL or a number",
        ),
        (
            {"level": -1},
            "option 'level' of the logging audit sink: a logging level cannot be negative (-1)",
        ),
        (
            {"level": 1.5},
            "option 'level' of the logging audit sink: a logging level is a name or a number, "
            "not float",
        ),
        (
            {"logger": 3},
            "option 'logger' of the logging audit sink must be a string, not int",
        ),
        ({"logger": ""}, "option 'logger' of the logging audit sink may not be empty"),
        (
            {"handler": "file"},
            "unknown option(s) for the logging audit sink: handler; it accepts level, logger",
        ),
    ],
)
def test_logging_sink_option_errors(options, message):
    with pytest.raises(ConfigError) as error:
        LoggingAuditSink.from_options(options)
    assert str(error.value) == message


def test_memory_sink_takes_no_options():
    with pytest.raises(ConfigError) as error:
        MemoryAuditSink.from_options({"size": 3})
    assert str(error.value) == (
        "unknown option(s) for the memory audit sink: size; it accepts no options"
    )


def test_a_sink_names_the_type_it_was_given_instead_of_an_event():
    for sink in (MemoryAuditSink(), LoggingAuditSink(logger="aureus.audit.typed")):
        with pytest.raises(TypeError) as error:
            sink.emit({"operation": "encrypt"})  # type: ignore[arg-type]
        assert str(error.value) == "an audit sink records AuditEvent objects, not dict"


def test_a_closed_memory_sink_refuses_new_events_and_keeps_the_old():
    sink = MemoryAuditSink()
    sink.emit(make_event(1))
    sink.close()
    with pytest.raises(AuditSinkError) as error:
        sink.emit(make_event(2))
    assert str(error.value) == "the memory audit sink is closed; it records nothing more"
    assert [e.operation for e in sink.events] == ["contract-op-0-1"]
    assert repr(sink) == "MemoryAuditSink(events=1)"


def test_a_closed_logging_sink_names_its_logger(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="closed.audit")
    sink = LoggingAuditSink(logger="closed.audit", level=logging.ERROR)
    assert (sink.logger, sink.level) == (logging.getLogger("closed.audit"), logging.ERROR)
    sink.close()
    with pytest.raises(AuditSinkError) as error:
        sink.emit(make_event(1))
    assert str(error.value) == "the logging audit sink for logger 'closed.audit' is closed"
    assert [r for r in caplog.records if r.name == "closed.audit"] == []


def test_the_logged_json_has_its_members_in_sorted_order(caplog: pytest.LogCaptureFixture):
    """One event always logs as the same text, whatever order its dict was built in."""
    caplog.set_level(logging.INFO, logger="sorted.audit")
    event = make_event(4)
    assert list(event.to_dict()) != sorted(event.to_dict())  # built unsorted
    LoggingAuditSink(logger="sorted.audit").emit(event)
    (record,) = [r for r in caplog.records if r.name == "sorted.audit"]
    message = record.getMessage()
    assert list(json.loads(message)) == sorted(event.to_dict())
    assert message == json.dumps(event.to_dict(), sort_keys=True)
