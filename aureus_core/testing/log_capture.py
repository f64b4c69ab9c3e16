"""Every log record of every logger, at every level, as text: for the kit's leak checks.

:func:`capture_every_log_record` lowers every logger (the root and each named
one) to ``DEBUG`` for its block, so a record a provider would only write with
debug logging turned on is still seen, and restores them afterwards.  Each
record is turned into text when it is emitted (message, arguments, exception
and ``extra`` fields), before the caller can wipe a buffer it logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

_STANDARD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class _Collector(logging.Handler):
    """Keeps the text of every record it receives."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[tuple[str, str, str]] = []
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            parts = [self._formatter.format(record), repr(record.args)]
            parts.extend(repr(v) for k, v in vars(record).items() if k not in _STANDARD_FIELDS)
            where = f"a {record.levelname} record of logger {record.name!r}"
            self.records.append((record.name, where, "\n".join(parts)))
        except Exception:
            self.handleError(record)


@contextmanager
def capture_every_log_record() -> Iterator[list[tuple[str, str, str]]]:
    """Collect every record any logger emits in the block, ``DEBUG`` included.

    Yields a list that fills with ``(logger name, where, text)``: where names
    the logger and level, text holds the record's message, arguments,
    exception and extras.
    """
    manager = logging.root.manager
    loggers: list[logging.Logger] = [logging.root]
    loggers.extend(v for v in list(manager.loggerDict.values()) if isinstance(v, logging.Logger))
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    saved_disable = manager.disable
    collector = _Collector()
    # A record stops at the first logger that does not propagate, so listen there too.
    listened = [logger for logger in loggers if logger is logging.root or not logger.propagate]
    logging.disable(logging.NOTSET)
    for logger in loggers:
        logger.disabled = False
        logger.setLevel(logging.DEBUG)
    for logger in listened:
        logger.addHandler(collector)
    try:
        yield collector.records
    finally:
        for logger in listened:
            logger.removeHandler(collector)
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled
        logging.disable(saved_disable)
