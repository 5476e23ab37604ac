"""Pacing of the bot's events so that the homeserver's message rate limit is never hit.

Synapse limits each account, not each room (`rc_message`: by default 0.2 events per second
with bursts of 10), and counts every event the bot sends, in all its rooms together:
messages, edits, reactions, redactions, and its own joins and leaves too. A refusal
(M_LIMIT_EXCEEDED) holds the room's queue for its retry_after_ms, so the limit is kept here
instead, as a strict sliding window like the Telegram limiter's: never more than `burst`
events in any `burst / per_second` seconds, a little longer for the request's way to the
server. Rooms take turns, first come, first served.

What a room can take in a minute (for the queue message, bot/messages/delivery.py) is the
account's rate shared by the rooms sending now, in outbox items: a card is one message and a
reaction per button.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["EVENTS_PER_ITEM", "MatrixLimits", "MatrixPacer"]

SAFETY_MARGIN = 0.05  # the window is this much longer than the server's (relative) ...
LATENCY_ALLOWANCE_S = 0.1  # ... plus the spread of request latencies
# Events one outbox item of a backlog costs: a new card's message and its seven reactions.
EVENTS_PER_ITEM = 8
ACTIVE_S = 60.0  # a room that sent within this long shares the account's rate
UNPACED_CAPACITY = 1_000_000  # items a minute when the account is exempt: never a queue


@dataclass(frozen=True, slots=True)
class MatrixLimits:
    per_second: float = 0.2  # 0: not paced (the account is exempt on the homeserver)
    burst: int = 10

    def __post_init__(self) -> None:
        if self.per_second < 0 or self.burst < 1:
            raise ValueError("per_second must be 0 or more, burst 1 or more")

    @property
    def paced(self) -> bool:
        return self.per_second > 0

    def span(self) -> float:
        """Seconds in which at most `burst` events may go, with the safety margins."""
        return self.burst / self.per_second * (1 + SAFETY_MARGIN) + LATENCY_ALLOWANCE_S


class MatrixPacer:
    """Waits until the account may send one more event. One per account: every room counts."""

    def __init__(
        self,
        limits: MatrixLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.limits = limits or MatrixLimits()
        self._monotonic = monotonic
        self._sleep = sleep
        self._sent: deque[float] = deque(maxlen=self.limits.burst)
        self._lock = asyncio.Lock()  # FIFO: rooms are served in the order they asked
        self._active: dict[str, float] = {}  # room -> when it last sent

    async def acquire(self, room: str | None) -> None:
        """Returns when one event may go to the room, and counts it. `room` None: an event
        that is no delivery (a join): it counts, but the room does not share the rate."""
        if room is not None:
            self._active[room] = self._monotonic()
        if not self.limits.paced:
            return
        async with self._lock:
            span = self.limits.span()
            while True:
                now = self._monotonic()
                full = len(self._sent) == self.limits.burst
                delay = self._sent[0] + span - now if full else 0.0
                if delay <= 0:
                    self._sent.append(now)  # maxlen drops the oldest, which decides nothing now
                    if room is not None:
                        self._active[room] = now
                    return
                await self._sleep(delay)

    def capacity_per_minute(self, room: str) -> int:
        """Outbox items the room can take in a minute at the sustained rate, sharing it with
        the other rooms that sent within the last minute."""
        if not self.limits.paced:
            return UNPACED_CAPACITY
        now = self._monotonic()
        for other, at in list(self._active.items()):
            if now - at > ACTIVE_S:
                del self._active[other]
        sharing = len(self._active.keys() | {room})
        events = self.limits.burst / self.limits.span() * 60
        return max(1, math.floor(events / EVENTS_PER_ITEM / sharing))
