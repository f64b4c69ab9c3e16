from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from aureus_core.testing import FakeClock

START = datetime(2030, 1, 1, tzinfo=timezone.utc)


def test_stands_still_until_advanced():
    clock = FakeClock()
    assert clock.now() == clock() == START
    assert clock.now().utcoffset() == timedelta(0)
    assert clock.advance(timedelta(hours=1)) == START + timedelta(hours=1)
    assert clock.advance(30) == START + timedelta(hours=1, seconds=30)
    assert clock.advance(0.5) == START + timedelta(hours=1, seconds=30.5)
    assert clock.monotonic() == 3630.5


def test_is_a_datetime_callable():
    clock: Callable[[], datetime] = FakeClock(datetime(2024, 2, 29, 12, tzinfo=timezone.utc))
    assert clock().isoformat() == "2024-02-29T12:00:00+00:00"


def test_start_in_another_zone_is_converted_to_utc():
    plus_two = timezone(timedelta(hours=2))
    clock = FakeClock(datetime(2030, 1, 1, 2, tzinfo=plus_two))
    assert clock.now() == START
    assert clock.now().tzinfo == timezone.utc


def test_set_jumps_forward():
    clock = FakeClock()
    later = START + timedelta(days=90)
    assert clock.set(later) == later == clock.now()
    assert clock.monotonic() == timedelta(days=90).total_seconds()


@pytest.mark.parametrize("move", [lambda c: c.advance(-1), lambda c: c.advance(timedelta(-1))])
def test_never_goes_back(move):
    clock = FakeClock()
    with pytest.raises(ValueError, match="only moves forward"):
        move(clock)
    assert clock.now() == START


def test_set_in_the_past_is_refused():
    clock = FakeClock()
    with pytest.raises(ValueError, match="only moves forward"):
        clock.set(START - timedelta(seconds=1))


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock().set(datetime(2031, 1, 1))


def test_repr():
    assert repr(FakeClock()) == "FakeClock(2030-01-01T00:00:00+00:00)"
