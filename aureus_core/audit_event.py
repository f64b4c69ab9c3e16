"""Audit events: one per stack operation, never carrying secrets.

A module of its own that imports nothing from Aureus, so the plugin
interfaces (:class:`~aureus_core.interfaces.AuditSink`) can name the event
without importing the audit trail, which imports them.
"""

from __future__ import annotations

from datetime import datetime, timezone

import attrs

REQUEST = "request"
OUTCOME = "outcome"
PHASES = (REQUEST, OUTCOME)
PENDING = "pending"
"""The outcome of a request event: the operation has not run yet."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


@attrs.frozen(kw_only=True)
class AuditEvent:
    """What happened, to which key, with what outcome.

    Holds no plaintext, data keys or key material: encryption-context values
    are not recorded here, only the context's keys and, when configured,
    keyed hashes of the values (``context_hashes``).

    Operations that change keys or use them on data are recorded twice: a
    ``request`` event before they run (``outcome`` is ``pending``) and an
    ``outcome`` event after, both with the same ``request_id``.
    """

    operation: str
    outcome: str = "ok"
    """``ok``, ``pending`` (a request), or the class name of the error that stopped it."""
    phase: str = attrs.field(default=OUTCOME, validator=attrs.validators.in_(PHASES))
    """``request`` (before the operation runs) or ``outcome`` (after)."""
    request_id: str | None = None
    """Ties an operation's request and outcome events together."""
    time: datetime = attrs.field(factory=_now)
    provider: str | None = None
    key_uri: str | None = None
    key_version: str | None = None
    context_keys: tuple[str, ...] = ()
    context_hashes: tuple[tuple[str, str], ...] = ()
    """Context key -> HMAC-SHA-256 of its value under the stack's audit hash key (hex)."""
    byte_count: int | None = None
    principal: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    details: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    """Static fields added by an enrichment processor (``host``, ``app`` ...)."""

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form (``None`` and empty fields omitted)."""
        data: dict[str, object] = {
            "time": self.time.isoformat(),
            "operation": self.operation,
            "outcome": self.outcome,
            "phase": self.phase,
        }
        for name in (
            "request_id",
            "provider",
            "key_uri",
            "key_version",
            "byte_count",
            "principal",
            "trace_id",
            "span_id",
        ):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.context_keys:
            data["context_keys"] = list(self.context_keys)
        if self.context_hashes:
            data["context_hashes"] = dict(self.context_hashes)
        if self.details:
            data["details"] = dict(self.details)
        if self.labels:
            data["labels"] = dict(self.labels)
        return data
