"""Audit events: one per stack operation, never carrying secrets."""

from __future__ import annotations

from datetime import datetime, timezone

import attrs


def _now() -> datetime:
    return datetime.now(timezone.utc)


@attrs.frozen(kw_only=True)
class AuditEvent:
    """What happened, to which key, with what outcome.

    Holds no plaintext, data keys or key material: encryption-context values
    are not recorded here, only the context's keys.
    """

    operation: str
    outcome: str = "ok"
    """``ok``, or the class name of the error that stopped the operation."""
    time: datetime = attrs.field(factory=_now)
    provider: str | None = None
    key_uri: str | None = None
    key_version: str | None = None
    context_keys: tuple[str, ...] = ()
    byte_count: int | None = None
    principal: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    details: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form (``None`` fields omitted)."""
        data: dict[str, object] = {
            "time": self.time.isoformat(),
            "operation": self.operation,
            "outcome": self.outcome,
        }
        for name in (
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
        if self.details:
            data["details"] = dict(self.details)
        return data
