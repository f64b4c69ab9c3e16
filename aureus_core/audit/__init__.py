"""Audit events and the trail that delivers them to sinks."""

from __future__ import annotations

from .events import AuditEvent
from .trail import AuditTrail

__all__ = ["AuditEvent", "AuditTrail"]
