"""A circuit breaker shared by every key provider.

Providers retry transient failures themselves (botocore, google-api-core and
azure-core each have bounded retry policies).  When a backend stays down, the
breaker stops every caller from paying those retries again and again: after
``failures`` consecutive :class:`~aureus_core.errors.ProviderUnavailable`
errors it *opens*, and calls fail at once with a ``ProviderUnavailable`` that
says so; after ``cooldown`` seconds it *half-opens* and lets one trial call
through; the trial's success closes it, its failure opens it again.

Any other answer from the backend (a key not found, access denied, a failed
decryption) proves the backend is reachable and counts as a success.  A
corrupted local keystore is not a transient outage and is not counted.

:class:`KeyStack` puts every provider it hands out behind a
:class:`GuardedProvider`, one breaker per provider scheme; configure it with
``[providers.<scheme>.circuit_breaker]`` (``failures``, ``cooldown``,
``enabled``).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs

from .errors import AureusError, ConfigError, KeystoreCorrupted, ProviderUnavailable
from .interfaces import KeyProvider
from .keyref import KeyRef
from .proxy import ProviderProxy

T = TypeVar("T")

BREAKER_OPTION = "circuit_breaker"
"""The provider option (a table) that configures the provider's breaker."""
OPEN_CODE = "CircuitOpen"
"""The ``code`` of the error a breaker raises while open."""

# Calls that never reach the backend: the breaker neither guards nor counts them.
_LOCAL_METHODS = frozenset({"owner_of"})


class BreakerState(str, enum.Enum):
    """Where a circuit breaker stands."""

    CLOSED = "closed"
    """Calls go through; consecutive outages are counted."""
    OPEN = "open"
    """Calls fail at once until the cool-down has passed."""
    HALF_OPEN = "half-open"
    """One trial call is in flight; the others fail at once."""


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"circuit_breaker.{attribute.name} must be a positive integer")


def _positive_number(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"circuit_breaker.{attribute.name} must be a positive number of seconds")


@attrs.frozen(kw_only=True)
class BreakerPolicy:
    """When a breaker opens and how long it stays open."""

    failures: int = attrs.field(default=5, validator=_positive_int)
    """Consecutive ``ProviderUnavailable`` errors that open the breaker."""
    cooldown: float = attrs.field(default=30.0, validator=_positive_number)
    """Seconds the breaker stays open before letting one trial call through."""
    enabled: bool = True

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> BreakerPolicy:
        """Build from a ``circuit_breaker`` table, rejecting unknown keys."""
        if not isinstance(options, Mapping):
            raise ConfigError("circuit_breaker must be a table (failures, cooldown, enabled)")
        unknown = set(options) - {"failures", "cooldown", "enabled"}
        if unknown:
            raise ConfigError(
                f"circuit_breaker has unknown key(s) {', '.join(sorted(unknown))}; "
                "allowed: cooldown, enabled, failures"
            )
        enabled = options.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError("circuit_breaker.enabled must be true or false")
        return cls(
            failures=options.get("failures", 5),
            cooldown=options.get("cooldown", 30.0),
            enabled=enabled,
        )


class CircuitBreaker:
    """Counts consecutive outages of one provider and fails fast while it is down.

    ``clock`` returns seconds (monotonic); tests inject a fake one.
    """

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._last_error = ""

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose cool-down has passed reads half-open)."""
        with self._lock:
            if self._state is BreakerState.OPEN and self._cooled_down():
                return BreakerState.HALF_OPEN
            return self._state

    @property
    def consecutive_failures(self) -> int:
        """Outages counted since the last success."""
        return self._failures

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self.policy.cooldown

    def _refusal(self) -> ProviderUnavailable:
        remaining = max(0.0, self.policy.cooldown - (self._clock() - self._opened_at))
        when = (
            f"a trial call is allowed in {remaining:.1f} s"
            if remaining > 0
            else "a trial call is in flight"
        )
        return ProviderUnavailable(
            f"provider {self.name!r} is failing fast: its circuit breaker opened after "
            f"{self._failures} consecutive outage(s) (last: {self._last_error}); {when}. "
            "Check that the backend is reachable, or tune "
            f"[providers.{self.name}.circuit_breaker]",
            provider=self.name,
            code=OPEN_CODE,
        )

    def before_call(self) -> bool:
        """Admit a call or raise; returns ``True`` if the call is the half-open trial."""
        if not self.policy.enabled or self._closed_now():
            return False  # closed: admitted (read without the lock, as a racing call would be)
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return False
            if self._state is BreakerState.OPEN:
                if not self._cooled_down():
                    raise self._refusal()
                self._state = BreakerState.HALF_OPEN
                self._trial_in_flight = False
            if self._trial_in_flight:
                raise self._refusal()
            self._trial_in_flight = True
            return True

    def _closed_now(self) -> bool:
        return self._state is BreakerState.CLOSED

    def record_success(self) -> None:
        """The backend answered: close the breaker and reset the count."""
        if self._state is BreakerState.CLOSED and not self._failures and not self._trial_in_flight:
            return  # nothing to reset (the usual case: no lock taken)
        with self._lock:
            self._state = BreakerState.CLOSED
            self._failures = 0
            self._trial_in_flight = False

    def record_outage(self, error: ProviderUnavailable) -> None:
        """The backend could not be reached: count it, and open at the threshold."""
        with self._lock:
            self._failures += 1
            self._last_error = f"{type(error).__name__}: {error}"[:300]
            trial = self._state is BreakerState.HALF_OPEN
            self._trial_in_flight = False
            if trial or self._failures >= self.policy.failures:
                self._state = BreakerState.OPEN
                self._opened_at = self._clock()

    def release(self, trial: bool) -> None:
        """A call ended in something that says nothing about the backend (a bug)."""
        if trial:
            with self._lock:
                self._trial_in_flight = False

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``function`` under the breaker."""
        # closed: admitted without a call into before_call (the usual case)
        trial = False if self._state is BreakerState.CLOSED else self.before_call()
        try:
            result = function(*args, **kwargs)
        except KeystoreCorrupted:
            self.release(trial)
            raise
        except ProviderUnavailable as error:
            self.record_outage(error)
            raise
        except AureusError:
            self.record_success()
            raise
        except BaseException:
            self.release(trial)
            raise
        self.record_success()
        return result

    async def acall(self, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``function`` under the breaker, counting as :meth:`call` does.

        A cancelled call says nothing about the backend: it only frees a half-open trial.
        """
        trial = self.before_call()
        try:
            result = await function(*args, **kwargs)
        except KeystoreCorrupted:
            self.release(trial)
            raise
        except ProviderUnavailable as error:
            self.record_outage(error)
            raise
        except AureusError:
            self.record_success()
            raise
        except BaseException:
            self.release(trial)
            raise
        self.record_success()
        return result

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.value})"


class GuardedProvider(ProviderProxy):
    """``provider`` with every backend call going through ``breaker``."""

    __slots__ = ("_breaker",)

    def __init__(self, provider: KeyProvider, breaker: CircuitBreaker) -> None:
        super().__init__(provider)
        self._breaker = breaker

    @property
    def breaker(self) -> CircuitBreaker:
        """The breaker in front of the provider."""
        return self._breaker

    def __getattr__(self, name: str) -> Any:
        if name == "_breaker":
            raise AttributeError(name)
        return super().__getattr__(name)

    def _call(
        self, method: str, key: KeyRef | None, function: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        if method in _LOCAL_METHODS:
            return function(*args, **kwargs)
        return self._breaker.call(function, *args, **kwargs)

    async def _acall(
        self,
        method: str,
        key: KeyRef | None,
        function: Callable[..., Awaitable[T]],
        *args: Any,
        **kwargs: Any,
    ) -> T:
        return await self._breaker.acall(function, *args, **kwargs)


__all__ = [
    "BREAKER_OPTION",
    "OPEN_CODE",
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "GuardedProvider",
]
