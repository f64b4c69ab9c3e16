"""TtlCache: expiry on an injected clock, TTL 0, and forgetting a resource and its children."""

from __future__ import annotations

from aureus_core.ttl import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_value_lives_exactly_until_the_ttl() -> None:
    clock = Clock()
    cache: TtlCache[str] = TtlCache(10, clock)
    cache.put("keys/a", "pem-a")
    clock.now += 9.999
    assert cache.get("keys/a") == "pem-a"
    clock.now += 0.001
    assert cache.get("keys/a") is None
    assert cache.get("keys/a") is None  # evicted, not resurrected


def test_ttl_zero_caches_nothing() -> None:
    cache: TtlCache[str] = TtlCache(0, Clock())
    cache.put("keys/a", "pem-a")
    assert cache.get("keys/a") is None


def test_forget_drops_the_resource_and_what_is_below_it_only() -> None:
    cache: TtlCache[int] = TtlCache(60, Clock())
    for name, value in [("k/a", 1), ("k/a/versions/2", 2), ("k/ab", 3), ("k/b", 4)]:
        cache.put(name, value)
    cache.forget("k/a")
    assert [cache.get(n) for n in ("k/a", "k/a/versions/2", "k/ab", "k/b")] == [None, None, 3, 4]
    cache.clear()
    assert cache.get("k/b") is None
