"""The limiter's rule for a shared slot granted by a late answer (handlers/telegram/limits.py):
the database stamped it before the answer came, so the send would leave later than the window
has it. It is left spent and another asked for, twice at most. A fake SendSlots (the port)
on the limiter's own fake clock: what is tested is the limiter, not the database."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.ports import SlotScope
from handlers.telegram.limits import SHARED_LATENCY_ALLOWANCE_S, RateLimiter, TelegramLimits


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class AnsweringSlots:
    """Grants every reservation, each answer taking the next of `delays` (then the last)."""

    def __init__(self, clock: FakeTime, delays: list[float]) -> None:
        self.clock = clock
        self.delays = delays
        self.asked: list[tuple[str, ...]] = []

    async def reserve(self, scopes: Sequence[SlotScope]) -> float:
        self.asked.append(tuple(scope.key for scope in scopes))
        delay = self.delays[min(len(self.asked), len(self.delays)) - 1]
        await self.clock.sleep(delay)
        return 0.0


async def test_a_prompt_grant_is_used_at_once() -> None:
    clock = FakeTime()
    slots = AnsweringSlots(clock, [0.005])
    limiter = RateLimiter(TelegramLimits(), monotonic=clock, sleep=clock.sleep, shared=slots)
    await limiter.acquire(-42)
    assert slots.asked == [("telegram:chat:-42", "telegram:global", "telegram:group:-42")]


async def test_a_late_grant_is_left_spent_and_another_asked_for() -> None:
    clock = FakeTime()
    late = SHARED_LATENCY_ALLOWANCE_S * 3
    slots = AnsweringSlots(clock, [late, 0.005])
    limiter = RateLimiter(TelegramLimits(), monotonic=clock, sleep=clock.sleep, shared=slots)
    await limiter.acquire(-42)
    assert len(slots.asked) == 2


async def test_a_database_always_late_still_lets_sends_go() -> None:
    clock = FakeTime()
    slots = AnsweringSlots(clock, [SHARED_LATENCY_ALLOWANCE_S * 3])
    limiter = RateLimiter(TelegramLimits(), monotonic=clock, sleep=clock.sleep, shared=slots)
    await limiter.acquire(777)  # a private chat: no group window
    assert slots.asked == [("telegram:chat:777", "telegram:global")] * 3
