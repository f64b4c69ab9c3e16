"""A provider proxy that counts calls, for tests and benchmarks of caching and retries."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from ..interfaces import KeyProvider


class CountingProvider:
    """Wraps a provider, forwards everything, and counts calls per method name.

    ``counts["wrap"]`` is the number of ``wrap`` calls so far.  Capability
    attributes are copied so the stack's capability checks see the real ones.
    """

    def __init__(self, inner: KeyProvider) -> None:
        self._inner = inner
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.scheme = inner.scheme
        self.capabilities = inner.capabilities
        self.key_types = inner.key_types

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.counts[name] += 1
            return target(*args, **kwargs)

        return counted

    @property
    def wraps(self) -> int:
        """``wrap`` calls so far."""
        return self.counts["wrap"]

    @property
    def unwraps(self) -> int:
        """``unwrap`` calls so far."""
        return self.counts["unwrap"]

    def __repr__(self) -> str:
        return f"<CountingProvider {self.scheme} {dict(self.counts)}>"
