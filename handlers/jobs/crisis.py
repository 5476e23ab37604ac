"""Scheduling of crisis evaluation: an interval job, plus a nudge from intake.

The job alone would let a crisis wait up to CHECK_EVERY_S; intake therefore nudges on every
negative mention, and a burst of nudges becomes one evaluation NUDGE_DELAY_S later (the
counting costs a few indexed aggregate queries, not one per mention). The interval job stays
as the safety net, e.g. for closing crises when no mentions arrive at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.cases.grouping import IntakeResult
from bot.crisis.service import CrisisService
from bot.model import Mention, Sentiment
from handlers.jobs import add_job

log = logging.getLogger(__name__)

CHECK_EVERY_S = 30.0
NUDGE_DELAY_S = 2.0  # long enough to take a burst of mentions in one count
JOB_ID = "crisis-evaluation"


class CrisisJobs:
    def __init__(
        self,
        crises: CrisisService,
        every_s: float = CHECK_EVERY_S,
        nudge_delay_s: float = NUDGE_DELAY_S,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self._crises = crises
        # Only the leader evaluates: a follower's mentions reach it by the interval job.
        self._leading = leading
        self._every_s = every_s
        self._nudge_delay_s = nudge_delay_s
        self._pending: asyncio.Task[None] | None = None
        self._dirty = False  # nudged since the last evaluation started
        self._running = False

    def schedule(self, scheduler: AsyncIOScheduler) -> None:
        add_job(scheduler, self.run, "interval", job_id=JOB_ID, seconds=self._every_s)
        self._running = True

    async def run(self) -> None:
        try:
            await self._crises.evaluate()
        except Exception:  # the job must survive a bad minute (database restart…)
            log.exception("crisis evaluation failed")

    def mention_received(self, mention: Mention, result: IntakeResult) -> None:
        """Intake's observer: a new negative mention may tip a threshold."""
        if result.duplicate or mention.sentiment is not Sentiment.NEGATIVE:
            return
        self.nudge()

    def nudge(self) -> None:
        if not self._running or not self._leading():
            return
        self._dirty = True
        if self._pending is None or self._pending.done():
            self._pending = asyncio.get_running_loop().create_task(self._soon(), name="crisis")

    async def _soon(self) -> None:
        # Mentions that arrive while an evaluation runs get one more evaluation after it.
        while self._dirty:
            await asyncio.sleep(self._nudge_delay_s)
            self._dirty = False
            await self.run()

    async def stop(self) -> None:
        self._running = False
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending
        self._pending = None
