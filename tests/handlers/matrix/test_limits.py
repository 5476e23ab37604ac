"""The Matrix pacer on a scripted clock: never more than the homeserver's burst in its window,
every room counting against the one account, and the capacity the queue message reads."""

from __future__ import annotations

import asyncio

import pytest

from handlers.matrix.limits import EVENTS_PER_ITEM, UNPACED_CAPACITY, MatrixLimits, MatrixPacer


class ScriptedTime:
    """A monotonic clock that moves only when the pacer sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_a_burst_then_the_sustained_rate_across_rooms() -> None:
    time = ScriptedTime()
    limits = MatrixLimits(per_second=0.2, burst=10)  # Synapse's default rc_message
    pacer = MatrixPacer(limits, time.monotonic, time.sleep)
    sent: list[float] = []
    for n in range(25):
        await pacer.acquire("!a" if n % 2 else "!b")  # two rooms, one account
        sent.append(time.now)
    assert sent[:10] == [0.0] * 10  # the burst goes at once
    span = limits.span()
    assert span > 10 / 0.2  # a little longer than the server's own window
    # Never more than the burst in any window of the server's length, whatever the room.
    for start, at in enumerate(sent):
        in_window = [t for t in sent[start:] if t < at + 10 / 0.2]
        assert len(in_window) <= 10
    assert sent[10] == pytest.approx(span) and sent[20] == pytest.approx(2 * span)


async def test_rooms_are_served_in_the_order_they_asked() -> None:
    time = ScriptedTime()
    pacer = MatrixPacer(MatrixLimits(per_second=1, burst=1), time.monotonic, time.sleep)
    order: list[str] = []

    async def send(room: str) -> None:
        await pacer.acquire(room)
        order.append(room)

    await asyncio.gather(*(send(room) for room in ("!1", "!2", "!3", "!4")))
    assert order == ["!1", "!2", "!3", "!4"]


def test_capacity_is_shared_by_the_rooms_sending_now() -> None:
    time = ScriptedTime()
    limits = MatrixLimits(per_second=0.2, burst=10)
    pacer = MatrixPacer(limits, time.monotonic, time.sleep)
    alone = pacer.capacity_per_minute("!a")
    # About 11 events a minute at Synapse's defaults: one new card with its reactions.
    assert alone == int(10 / limits.span() * 60 / EVENTS_PER_ITEM) == 1
    fast = MatrixPacer(MatrixLimits(per_second=2, burst=20), time.monotonic, time.sleep)
    assert fast.capacity_per_minute("!a") == 14

    async def two_rooms() -> None:
        await fast.acquire("!a")
        await fast.acquire("!b")

    asyncio.run(two_rooms())
    assert fast.capacity_per_minute("!a") == 7  # half each while both send
    time.now += 61  # "!b" has been quiet for a minute
    asyncio.run(fast.acquire("!a"))
    assert fast.capacity_per_minute("!a") == 14


async def test_an_exempt_account_is_not_paced() -> None:
    time = ScriptedTime()
    pacer = MatrixPacer(MatrixLimits(per_second=0), time.monotonic, time.sleep)
    for _ in range(100):
        await pacer.acquire("!a")
    assert time.slept == [] and pacer.capacity_per_minute("!a") == UNPACED_CAPACITY
    with pytest.raises(ValueError):
        MatrixLimits(per_second=-1)
