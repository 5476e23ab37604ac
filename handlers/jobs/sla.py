"""The SLA clock on APScheduler: ONE date job, armed for the earliest pending timer.

Timers live in the database (bot/sla/service.py); the scheduler only knows when to look next.
One job whatever the number of open cases: 100,000 cases cost one row each in `timers` and
nothing in the scheduler. After each run the job is re-armed for the next pending moment;
a timer planned earlier than that (a new case, an action) re-arms it sooner.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.base import BaseScheduler

from bot.clock import Clock
from bot.sla.service import SlaService

log = logging.getLogger(__name__)

JOB_ID = "sla-timers"
# Something still due right after a run (a failed chunk, a timer committed meanwhile): look
# again after this pause instead of spinning.
RETRY = timedelta(seconds=1)


class SlaJobs:
    def __init__(self, scheduler: BaseScheduler, sla: SlaService, clock: Clock) -> None:
        self._scheduler = scheduler
        self._sla = sla
        self._clock = clock
        self._armed: datetime | None = None  # when the job runs next; None: not armed
        self._requested: datetime | None = None  # earliest timer planned since the last look
        self._lock = asyncio.Lock()  # one run at a time; fire_due is safe anyway, this is cheap
        self.runs = 0

    @property
    def armed_for(self) -> datetime | None:
        return self._armed

    async def start(self) -> int:
        """At start: plan what a migration left unplanned, fire what came due while the bot
        was down (each timer once), then arm for the next one. Returns how many fired."""
        await self._sla.replan_marked()
        return await self.run()

    async def stop(self) -> None:
        """No more runs; a run in progress finishes (its transactions are short)."""
        if self._scheduler.get_job(JOB_ID) is not None:
            self._scheduler.remove_job(JOB_ID)
        self._armed = None
        async with self._lock:
            pass

    def timer_planned(self, due: datetime) -> None:
        """A service planned a timer due at `due` (called inside its transaction)."""
        if self._requested is None or due < self._requested:
            self._requested = due
        if self._armed is None or due < self._armed:
            self._arm(due)

    async def run(self) -> int:
        async with self._lock:
            self.runs += 1
            self._requested = None
            fired = 0
            try:
                fired = await self._sla.fire_due()
            finally:
                # Even after a failure: the job must come back, or the clock stops.
                upcoming = await self._sla.next_due()
                requested = self._requested
                if requested is not None and (upcoming is None or requested < upcoming):
                    upcoming = requested
                self._armed = None
                if upcoming is not None:
                    now = self._clock.now()
                    self._arm(upcoming if upcoming > now else now + RETRY)
                elif self._scheduler.get_job(JOB_ID) is not None:
                    self._scheduler.remove_job(JOB_ID)
            if fired:
                log.info("SLA: %d timer(s) fired", fired)
            return fired

    def _arm(self, at: datetime) -> None:
        self._armed = at
        # APScheduler runs on the wall clock; our moments are on the injected one (the same
        # in production, a fake one in tests and drills): wait the difference.
        delay = max(at - self._clock.now(), timedelta(0))
        # misfire_grace_time=None: a moment already past (a slow start, a paused laptop)
        # still runs, at once, instead of being dropped as a misfire.
        self._scheduler.add_job(
            self.run,
            "date",
            run_date=datetime.now(UTC) + delay,
            id=JOB_ID,
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
        )
