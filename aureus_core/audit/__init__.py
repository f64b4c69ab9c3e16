"""Audit events, the processors that shape them and the trail that delivers them to sinks."""

from __future__ import annotations

from ..audit_event import AuditEvent
from .hashing import FieldHasher, derive_key
from .processors import DropOperations, Enrich, Processor, Redact
from .trail import READ_ONLY_OPERATIONS, AuditTrail

__all__ = [
    "READ_ONLY_OPERATIONS",
    "AuditEvent",
    "AuditTrail",
    "DropOperations",
    "Enrich",
    "FieldHasher",
    "Processor",
    "Redact",
    "derive_key",
]
