"""A provider wrapper that answers after a delay: fan-out measurable without a cloud.

Put any provider behind :class:`LatencyProvider` and hand it to a stack::

    slow = LatencyProvider(stack.provider("local"), latency=0.05)
    with KeyStack(providers={"local": slow}) as timed:
        timed.encrypt(b"x", keys=[alpha, beta, gamma])  # ~50 ms with fan-out, ~150 ms without

Keys listed in ``down`` behave like an unreachable backend: their calls wait
``timeout`` seconds and raise :class:`~aureus_core.errors.ProviderUnavailable`.
The wrapper counts calls and the most that were in flight at once, so a test
can prove that calls overlapped.  It imports nothing from pytest.

``native=True`` makes it an :class:`~aureus_core.interfaces.AsyncKeyProvider`
as well: ``awrap``, ``aunwrap``, ``asign`` ... wait with ``asyncio.sleep``
(cancellable, no thread) and then call the wrapped provider (its own
coroutines if it has them), so :class:`~aureus_core.aio.AsyncKeyStack` fans
out on its event loop.  ``native_started`` / ``native_cancelled`` count the
native calls begun and cancelled.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from ..errors import ProviderUnavailable
from ..interfaces import KeyProvider
from ..keyref import KeyRef
from ..proxy import ProviderProxy, native_async

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
        native: bool = False,
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
        self.native = native
        self.native_started = 0
        self.native_cancelled = 0

    @property
    def native_async(self) -> bool:
        """Whether this wrapper offers native coroutines (``native=True``)."""
        return self.native

    def _enter(self, method: str) -> None:
        with self._lock:
            self.calls[method] = self.calls.get(method, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _unavailable(self, key: KeyRef) -> ProviderUnavailable:
        return ProviderUnavailable(
            f"{key.with_version(None).uri} did not answer within {self.timeout:g}s "
            "(LatencyProvider marks it down)",
            provider=self.scheme,
            code="Timeout",
        )

    async def _aforward(self, method: str, key: KeyRef | None, *args: Any, **kwargs: Any) -> Any:
        if not self.native:
            return await super()._aforward(method, key, *args, **kwargs)
        self._enter(method)
        self.native_started += 1
        try:
            down = key is not None and key.with_version(None).uri in self.down
            await asyncio.sleep(self.timeout if down else self.latency)
            if down:
                assert key is not None
                raise self._unavailable(key)
            if native_async(self._provider):
                call: Callable[..., Awaitable[Any]] = getattr(self._provider, f"a{method}")
                return await call(*args, **kwargs)
            return getattr(self._provider, method)(*args, **kwargs)
        except asyncio.CancelledError:
            self.native_cancelled += 1
            raise
        finally:
            self._leave()

    def _call(
        self, method: str, key: KeyRef | None, function: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        if method in _INSTANT:
            return function(*args, **kwargs)
        self._enter(method)
        try:
            if key is not None and key.with_version(None).uri in self.down:
                self._sleep(self.timeout)
                raise self._unavailable(key)
            self._sleep(self.latency)
            return function(*args, **kwargs)
        finally:
            self._leave()


__all__ = ["LatencyProvider"]
