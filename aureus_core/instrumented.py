"""A key provider proxy that traces and times every call (see :mod:`aureus_core.telemetry`).

:meth:`KeyStack.provider <aureus_core.stack.KeyStack.provider>` hands out
providers wrapped in :class:`InstrumentedProvider` when OpenTelemetry is
installed.  Each call runs in a child span ``aureus.provider.<method>`` and
its duration goes to the ``aureus.provider.duration`` histogram.  ``scheme``,
``capabilities`` and ``key_types`` read through to the wrapped provider, so
capability checks see what it declares; other attributes are forwarded too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .interfaces import KeyProvider
from .keyref import KeyRef
from .proxy import ProviderProxy

if TYPE_CHECKING:
    from .telemetry import Telemetry

T = TypeVar("T")


class InstrumentedProvider(ProviderProxy):
    """``provider`` with each call in an ``aureus.provider.<method>`` span of ``telemetry``.

    Arguments and results pass through untouched and are never recorded:
    spans get the provider's scheme, the method, the outcome and the key URI.
    """

    __slots__ = ("_telemetry",)

    def __init__(self, provider: KeyProvider, telemetry: Telemetry) -> None:
        super().__init__(provider)
        self._telemetry = telemetry

    @property
    def telemetry(self) -> Telemetry:
        """Where the spans and measurements go."""
        return self._telemetry

    def __getattr__(self, name: str) -> Any:
        if name == "_telemetry":
            raise AttributeError(name)
        return super().__getattr__(name)

    def _call(
        self, method: str, key: KeyRef | None, function: Callable[..., T], *args: Any, **kwargs: Any
    ) -> T:
        return self._telemetry.provider_call(
            self._provider.scheme, method, key, function, *args, **kwargs
        )

    async def _acall(
        self,
        method: str,
        key: KeyRef | None,
        function: Callable[..., Awaitable[T]],
        *args: Any,
        **kwargs: Any,
    ) -> T:
        return await self._telemetry.provider_acall(
            self._provider.scheme, method, key, function, *args, **kwargs
        )


__all__ = ["InstrumentedProvider"]
