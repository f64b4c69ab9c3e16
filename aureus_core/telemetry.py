"""Tracing and metrics for stack operations (OpenTelemetry, when configured).

A placeholder until the observability work lands: :meth:`Telemetry.operation`
is where every stack operation opens its span.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Telemetry:
    """Spans and metrics for one stack; a no-op for now."""

    @contextmanager
    def operation(self, name: str, attributes: dict[str, Any]) -> Iterator[None]:
        """Open a span around one stack operation; ``attributes`` may grow inside it."""
        yield
