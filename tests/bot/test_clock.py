"""The injected clocks: a scaled one keeps every interval of the bot as fast as scaled limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.clock import FrozenClock, ScaledClock, SystemClock, speed

START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def test_a_scaled_clock_starts_where_told_and_tells_its_speed() -> None:
    clock = ScaledClock(5, START)
    first = clock.now()
    assert first >= START and first.tzinfo is not None
    assert clock.now() >= first  # it only moves forward
    # A rate measured in real time (a chat's messages a minute) is divided by it.
    assert speed(clock) == 5
    assert speed(SystemClock()) == speed(FrozenClock(START)) == 1


@pytest.mark.parametrize("scale", [0, -1])
def test_a_scaled_clock_needs_a_positive_scale(scale: float) -> None:
    with pytest.raises(ValueError):
        ScaledClock(scale)
