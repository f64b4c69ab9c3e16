"""A controllable clock for tests: time moves only when the test says so."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

DEFAULT_START = datetime(2030, 1, 1, tzinfo=timezone.utc)


class FakeClock:
    """A wall clock that stands still until :meth:`advance` or :meth:`set` moves it.

    Call it (or :meth:`now`) for a timezone-aware UTC ``datetime``, so it fits
    anywhere a ``Callable[[], datetime]`` clock is accepted;
    :meth:`monotonic` gives seconds since the start, for monotonic clocks.
    Thread-safe.
    """

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        self._start = _utc(start, "start")
        self._now = self._start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The current fake time (UTC)."""
        with self._lock:
            return self._now

    def __call__(self) -> datetime:
        return self.now()

    def monotonic(self) -> float:
        """Seconds since the clock was created (never decreases)."""
        with self._lock:
            return (self._now - self._start).total_seconds()

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (a ``timedelta`` or seconds); return the new time."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError(f"a clock only moves forward; cannot advance by {step}")
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: datetime) -> datetime:
        """Jump forward to ``when``; return it."""
        target = _utc(when, "when")
        with self._lock:
            if target < self._now:
                raise ValueError(
                    f"a clock only moves forward; {target.isoformat()} is before "
                    f"{self._now.isoformat()}"
                )
            self._now = target
            return target

    def __repr__(self) -> str:
        return f"FakeClock({self.now().isoformat()})"


def _utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, e.g. with tzinfo=timezone.utc")
    return value.astimezone(timezone.utc)
