"""Process-wide observers of audit events, for test tooling such as the secret-leak scan.

Every event any :class:`~aureus_core.audit.AuditTrail` emits is handed to
each observer before its sinks see it, whatever the sinks then do.  Observers
run on the emitting thread, inside the operation: they must be quick and must
not raise.  With none registered, emitting costs one empty loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..audit_event import AuditEvent

AuditObserver = Callable[[AuditEvent], None]

_observers: tuple[AuditObserver, ...] = ()
_lock = threading.Lock()


def add_observer(observer: AuditObserver) -> None:
    """Call ``observer`` with every audit event emitted from now on, by any trail."""
    global _observers
    with _lock:
        _observers = (*_observers, observer)


def remove_observer(observer: AuditObserver) -> None:
    """Stop calling ``observer`` (no error if it was not registered)."""
    global _observers
    with _lock:
        _observers = tuple(o for o in _observers if o != observer)


def active() -> bool:
    """Whether any observer is registered."""
    return bool(_observers)


def notify(event: AuditEvent) -> None:
    """Hand ``event`` to every observer (called by :meth:`AuditTrail.emit`)."""
    for observer in _observers:
        observer(event)


__all__ = ["AuditObserver", "active", "add_observer", "notify", "remove_observer"]
