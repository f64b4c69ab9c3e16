"""The ``memory`` and ``logging`` audit sinks."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from aureus_core.audit import AuditEvent
from aureus_core.errors import AuditSinkError, ConfigError
from aureus_core.options import Options

DEFAULT_LOGGER = "aureus.audit"
DEFAULT_LEVEL = logging.INFO


class MemoryAuditSink:
    """Keeps every event in a list, for tests and for inspection in-process."""

    def __init__(self) -> None:
        self._events: list[AuditEvent] = []
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> MemoryAuditSink:
        """Build from ``[[audit.sinks]]`` options (it takes none)."""
        Options("the memory audit sink", options, ())
        return cls()

    @property
    def events(self) -> list[AuditEvent]:
        """A copy of the events recorded so far, oldest first."""
        with self._lock:
            return list(self._events)

    def emit(self, event: AuditEvent) -> None:
        """Record ``event``."""
        if not isinstance(event, AuditEvent):
            raise TypeError(f"an audit sink records AuditEvent objects, not {type(event).__name__}")
        with self._lock:
            if self._closed:
                raise AuditSinkError("the memory audit sink is closed; it records nothing more")
            self._events.append(event)

    def clear(self) -> None:
        """Forget every recorded event."""
        with self._lock:
            self._events.clear()

    def close(self) -> None:
        """Record nothing more; the events stay readable."""
        with self._lock:
            self._closed = True

    def __repr__(self) -> str:
        return f"MemoryAuditSink(events={len(self.events)})"


def parse_level(value: object) -> int:
    """A logging level from its number or its name (``"INFO"``, ``"warning"`` ...)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"a logging level cannot be negative ({value})")
        return value
    if isinstance(value, str):
        level = logging.getLevelName(value.strip().upper())
        if isinstance(level, int):
            return level
        raise ConfigError(
            f"unknown logging level {value!r}; use DEBUG, INFO, WARNING, ERROR, CRITICAL "
            "or a number"
        )
    raise ConfigError(f"a logging level is a name or a number, not {type(value).__name__}")


class LoggingAuditSink:
    """Writes one log record per event: the event as a JSON message.

    The record also carries the event as a dict in ``extra={"aureus_event": ...}``,
    so structured handlers need not parse the message.
    """

    def __init__(self, logger: str = DEFAULT_LOGGER, level: int = DEFAULT_LEVEL) -> None:
        self._logger = logging.getLogger(logger)
        self._level = parse_level(level)
        self._closed = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> LoggingAuditSink:
        """Build from ``[[audit.sinks]]`` options: ``logger`` and ``level``."""
        reader = Options("the logging audit sink", options, ("logger", "level"))
        try:
            level = parse_level(reader.raw("level", DEFAULT_LEVEL))
        except ConfigError as error:
            raise ConfigError(f"option 'level' of the logging audit sink: {error}") from None
        return cls(logger=reader.string("logger", DEFAULT_LOGGER), level=level)

    @property
    def logger(self) -> logging.Logger:
        """The logger events go to."""
        return self._logger

    @property
    def level(self) -> int:
        """The level of every record."""
        return self._level

    def emit(self, event: AuditEvent) -> None:
        """Log ``event`` as JSON."""
        if not isinstance(event, AuditEvent):
            raise TypeError(f"an audit sink records AuditEvent objects, not {type(event).__name__}")
        if self._closed:
            raise AuditSinkError(
                f"the logging audit sink for logger {self._logger.name!r} is closed"
            )
        data = event.to_dict()
        self._logger.log(
            self._level, json.dumps(data, sort_keys=True), extra={"aureus_event": data}
        )

    def close(self) -> None:
        """Record nothing more; the logger's handlers belong to the application."""
        self._closed = True

    def __repr__(self) -> str:
        return (
            f"LoggingAuditSink(logger={self._logger.name!r}, "
            f"level={logging.getLevelName(self._level)!r})"
        )
