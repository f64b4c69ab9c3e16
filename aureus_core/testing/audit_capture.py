"""``capture_audit()``: a block's audit events, like ``structlog.testing.capture_logs``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..audit import AuditEvent
from ..audit.observers import add_observer, remove_observer


@contextmanager
def capture_audit() -> Iterator[list[dict[str, object]]]:
    """Collect every audit event any stack in this process emits inside the block.

    Yields a list that fills with ``AuditEvent.to_dict()`` dicts, oldest
    first, as the trails' processors left them.  Works whether or not the
    stacks have sinks, and does not count as a sink::

        with capture_audit() as events:
            stack.sign(b"release", key="local://signer")
        assert [e["phase"] for e in events] == ["request", "outcome"]
    """
    captured: list[dict[str, object]] = []
    lock = threading.Lock()

    def record(event: AuditEvent) -> None:
        data = event.to_dict()
        with lock:
            captured.append(data)

    add_observer(record)
    try:
        yield captured
    finally:
        remove_observer(record)
