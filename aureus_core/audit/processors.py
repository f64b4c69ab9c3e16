"""Audit processors: small callables between the stack and the sinks, as in structlog.

A processor takes an :class:`AuditEvent` and returns it (changed or not), or
``None`` to drop it.  A trail runs its processors in order before any sink
sees the event.  Three ship with Aureus, configured in ``[audit] processors``:

.. code-block:: toml

    [audit]
    processors = [
      { type = "drop", operations = ["describe", "list"] },
      { type = "redact", drop = ["principal"], hash = ["details.recipients"] },
      { type = "enrich", labels = { app = "payments" }, host = true },
    ]

Any callable works in code: ``KeyStack(audit_processors=[...])`` or
``AuditTrail(processors=[...])``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import attrs

from ..audit_event import AuditEvent
from ..errors import ConfigError
from .hashing import FieldHasher

Processor = Callable[[AuditEvent], AuditEvent | None]
"""Returns the event to pass on, or ``None`` to drop it."""

HASH_PREFIX = "hmac-sha256:"
"""Marks a value a :class:`Redact` processor replaced by its keyed hash."""

_STRING_FIELDS = ("provider", "key_uri", "key_version", "principal", "trace_id", "span_id")
_DROPPABLE = (*_STRING_FIELDS, "byte_count", "context_keys", "context_hashes", "details", "labels")
_MAPPINGS = ("details", "labels")


class DropOperations:
    """Drops the events of the named operations (both phases)."""

    def __init__(self, operations: Collection[str]) -> None:
        self.operations = frozenset(operations)

    def __call__(self, event: AuditEvent) -> AuditEvent | None:
        """``None`` for a listed operation, else the event unchanged."""
        return None if event.operation in self.operations else event

    def __repr__(self) -> str:
        return f"DropOperations({sorted(self.operations)!r})"


class Redact:
    """Removes fields, or replaces their values by keyed hashes.

    Field names are event fields (``principal``, ``key_uri`` ...) or one entry
    of a mapping field: ``details.recipients``, ``labels.host``.  ``operation``,
    ``outcome``, ``phase``, ``request_id`` and ``time`` cannot be redacted.
    Hashed values read ``hmac-sha256:<hex>``; without a ``hasher`` the key is
    random for this processor's lifetime.
    """

    def __init__(
        self,
        *,
        drop: Collection[str] = (),
        hash: Collection[str] = (),
        hasher: FieldHasher | None = None,
    ) -> None:
        for name in drop:
            _check_field(name, droppable=True)
        for name in hash:
            _check_field(name, droppable=False)
        overlap = set(drop) & set(hash)
        if overlap:
            raise ConfigError(
                f"the redact processor both drops and hashes {', '.join(sorted(overlap))}: "
                "choose one"
            )
        self.drop = tuple(drop)
        self.hash = tuple(hash)
        self._hasher = hasher if hasher is not None or not hash else FieldHasher.ephemeral()

    def __call__(self, event: AuditEvent) -> AuditEvent:
        """The event without the dropped fields and with the hashed ones replaced."""
        changes: dict[str, Any] = {}
        mappings = {name: dict(getattr(event, name)) for name in _MAPPINGS}
        for name in self.drop:
            field, _, entry = name.partition(".")
            if entry:
                mappings[field].pop(entry, None)
            else:
                changes[field] = attrs.fields_dict(AuditEvent)[field].default
        for name in self.hash:
            field, _, entry = name.partition(".")
            if entry:
                if entry in mappings[field]:
                    mappings[field][entry] = self._hashed(name, mappings[field][entry])
            else:
                value = getattr(event, field)
                if value is not None:
                    changes[field] = self._hashed(name, value)
        for field, mapping in mappings.items():
            if field not in changes and mapping != dict(getattr(event, field)):
                changes[field] = tuple(mapping.items())
        return attrs.evolve(event, **changes) if changes else event

    def _hashed(self, name: str, value: str) -> str:
        assert self._hasher is not None
        return HASH_PREFIX + self._hasher.hash(name, value)

    def __repr__(self) -> str:
        return f"Redact(drop={list(self.drop)!r}, hash={list(self.hash)!r})"


def _check_field(name: str, *, droppable: bool) -> None:
    field, dot, entry = name.partition(".")
    if dot:
        if field in _MAPPINGS and entry:
            return
        raise ConfigError(
            f"the redact processor cannot address {name!r}: only details.NAME and "
            "labels.NAME have entries"
        )
    allowed = _DROPPABLE if droppable else _STRING_FIELDS
    if field not in allowed:
        raise ConfigError(
            f"the redact processor cannot {'drop' if droppable else 'hash'} {name!r}; "
            f"it can {'drop' if droppable else 'hash'} {', '.join(allowed)}, details.NAME "
            "and labels.NAME"
        )


class Enrich:
    """Adds static labels (``app``, ``env`` ...) and, with ``host=True``, the host name."""

    def __init__(self, labels: Mapping[str, str] | None = None, *, host: bool = False) -> None:
        added = dict(labels or {})
        if host:
            added.setdefault("host", socket.gethostname())
        self.labels = added

    def __call__(self, event: AuditEvent) -> AuditEvent:
        """The event with the labels added (an event's own labels win)."""
        if not self.labels:
            return event
        merged = {**self.labels, **dict(event.labels)}
        return attrs.evolve(event, labels=tuple(merged.items()))

    def __repr__(self) -> str:
        return f"Enrich(labels={self.labels!r})"


def _strings(where: str, name: str, value: object) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: {name} must be a list of names")
    return list(value)


def _check_options(where: str, options: Mapping[str, Any], allowed: Collection[str]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}: unknown option(s) {', '.join(unknown)}; it accepts "
            f"{', '.join(sorted(allowed))}"
        )


def build_processor(
    kind: str, options: Mapping[str, Any], *, hasher: FieldHasher, where: str
) -> Processor:
    """One processor from its ``type`` and options; ``where`` names it in errors."""
    if kind == "drop":
        _check_options(where, options, ("operations",))
        if "operations" not in options:
            raise ConfigError(f"{where}: the drop processor needs operations = [...]")
        return DropOperations(_strings(where, "operations", options["operations"]))
    if kind == "redact":
        _check_options(where, options, ("drop", "hash"))
        try:
            return Redact(
                drop=_strings(where, "drop", options.get("drop", [])),
                hash=_strings(where, "hash", options.get("hash", [])),
                hasher=hasher,
            )
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
    if kind == "enrich":
        _check_options(where, options, ("labels", "host"))
        labels = options.get("labels", {})
        if not isinstance(labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise ConfigError(f"{where}: labels must be a table of names to strings")
        host = options.get("host", False)
        if not isinstance(host, bool):
            raise ConfigError(f"{where}: host must be true or false")
        return Enrich(labels, host=host)
    raise ConfigError(f"{where}: unknown audit processor type {kind!r}; use drop, redact or enrich")


def build_processors(
    specs: Sequence[tuple[str, Mapping[str, Any]]], *, hasher: FieldHasher
) -> list[Processor]:
    """Processors from ``(type, options)`` pairs, as in ``[audit] processors``."""
    return [
        build_processor(kind, options, hasher=hasher, where=f"[audit] processors[{index}]")
        for index, (kind, options) in enumerate(specs)
    ]
