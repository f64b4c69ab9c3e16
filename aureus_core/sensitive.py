"""A wrapper that keeps secret values out of reprs, logs and tracebacks."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Secret(Generic[T]):
    """Holds a secret value; its ``repr`` and ``str`` are ``<secret>``.

    Call :meth:`reveal` at the one place that needs the value.
    """

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        """Return the wrapped value."""
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        import hmac

        a, b = self._value, other._value
        if isinstance(a, (bytes, bytearray)) and isinstance(b, (bytes, bytearray)):
            return hmac.compare_digest(bytes(a), bytes(b))
        if isinstance(a, str) and isinstance(b, str):
            return hmac.compare_digest(a.encode(), b.encode())
        return bool(a == b)

    def __hash__(self) -> int:
        raise TypeError("Secret values are not hashable")

    def __reduce__(self) -> str:
        raise TypeError("Secret values cannot be pickled")
