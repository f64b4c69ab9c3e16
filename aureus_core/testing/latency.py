"""A provider wrapper that answers after a delay: fan-out measurable without a cloud.

Put any provider behind :class:`LatencyProvider` and hand it to a stack::

    slow = LatencyProvider(stack.provider("local"), latency=0.05)
    with KeyStack(providers={"local": slow}) as timed:
        timed.encrypt(b"x", keys=[alpha, beta, gamma])  # ~50 ms with fan-out, ~150 ms without

Keys listed in ``down`` behave like an unreachable backend: their calls wait
``timeout`` seconds and raise :class:`~aureus_core.errors.ProviderUnavailable`.
The wrapper counts calls and the most that were in flight at once, so a test
can prove that calls overlapped.  It imports nothing from pytest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from ..errors import ProviderUnavailable
from ..interfaces import KeyProvider
from ..keyref import KeyRef
from ..proxy import ProviderProxy

T = TypeVar("T")

# Calls answered from the wrapped provider's own state, never delayed.
_INSTANT = frozenset({"owner_of"})


class LatencyProvider(ProviderProxy):
    """``provider`` with ``latency`` seconds added to every backend call.

    ``down`` holds key URIs (without ``?version=``) whose calls fail with
    :class:`~aureus_core.errors.ProviderUnavailable` after ``timeout``
    seconds (default: ``latency``), as a region that stopped answering would.
    """

    def __init__(
        self,
        provider: KeyProvider,
        latency: float = 0.05,
        *,
        down: Collection[str] = (),
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if latency < 0 or (timeout is not None and timeout < 0):
            raise ValueError("latency and timeout are seconds, 0 or more")
        super().__init__(provider)
        self.latency = latency
        self.down = frozenset(KeyRef.parse(uri).with_version(None).uri for uri in down)
        self.timeout = latency if timeout is None else timeout
        self._sleep = sleep
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}
        """Method name -> how many calls it received."""
        self.in_flight = 0
        self.max_in_flight = 0
        """The most calls that were waiting at the same time."""

    def _call(
        self, method: str, key: KeyRef | None, function: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        if method in _INSTANT:
            return function(*args, **kwargs)
        with self._lock:
            self.calls[method] = self.calls.get(method, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if key is not None and key.with_version(None).uri in self.down:
                self._sleep(self.timeout)
                raise ProviderUnavailable(
                    f"{key.with_version(None).uri} did not answer within {self.timeout:g}s "
                    "(LatencyProvider marks it down)",
                    provider=self.scheme,
                    code="Timeout",
                )
            self._sleep(self.latency)
            return function(*args, **kwargs)
        finally:
            with self._lock:
                self.in_flight -= 1


__all__ = ["LatencyProvider"]
