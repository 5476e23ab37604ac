"""The scheduler's pulse: a tiny job on every instance, so /healthz can tell a scheduler that
died or stalls (its loop blocked, its jobs stuck) from one that merely has nothing due.

Measured on the event loop's monotonic clock, not the injected Clock: what is watched is the
real scheduler, which runs on real time even when tests and drills move the bot's clock.
"""

from __future__ import annotations

import asyncio

from apscheduler.schedulers.base import BaseScheduler

from handlers.jobs import add_job

JOB_ID = "scheduler-heartbeat"
EVERY_S = 10.0
STALE_AFTER = 3  # beats missed before the scheduler counts as stalled


class SchedulerHeartbeat:
    def __init__(self, every_s: float = EVERY_S) -> None:
        self.every_s = every_s
        self._last: float | None = None  # loop time of the last beat (or of scheduling)

    def schedule(self, scheduler: BaseScheduler) -> None:
        self._last = asyncio.get_running_loop().time()
        add_job(scheduler, self.beat, "interval", job_id=JOB_ID, seconds=self.every_s)

    async def beat(self) -> None:
        self._last = asyncio.get_running_loop().time()

    def problem(self, scheduler: BaseScheduler) -> str | None:
        """None while the scheduler runs and beats; otherwise what is wrong with it."""
        if not scheduler.running:
            return "scheduler is not running"
        if self._last is None:
            return "scheduler has no heartbeat job"
        silent_s = asyncio.get_running_loop().time() - self._last
        if silent_s > STALE_AFTER * self.every_s:
            return f"scheduler stalled: no heartbeat for {silent_s:.0f} s"
        return None
