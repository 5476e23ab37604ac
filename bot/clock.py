"""Injected time. Nothing in Otklik reads the wall clock except SystemClock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that moves only when told to: for tests, drills and benchmarks."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment.astimezone(UTC)


class ScaledClock:
    """The system clock running `scale` times faster from the moment it is made: for drills,
    time-scaled tests and benches against a chat network whose limits run as fast (a
    Telegram test server with `time_scale`). Every interval the bot keeps on the injected
    clock (refreshes, pacing, waits) then shrinks with the limits, none stays real-time."""

    def __init__(self, scale: float, start: datetime | None = None) -> None:
        if not scale > 0:
            raise ValueError("the scale must be positive")
        self.scale = scale
        self._real_start = datetime.now(UTC)
        self._start = (start or self._real_start).astimezone(UTC)

    def now(self) -> datetime:
        return self._start + (datetime.now(UTC) - self._real_start) * self.scale


def speed(clock: Clock) -> float:
    """Seconds of the clock per real second: a rate measured in real time (a chat network's
    messages a minute) is divided by it to be one in the clock's."""
    return clock.scale if isinstance(clock, ScaledClock) else 1.0
