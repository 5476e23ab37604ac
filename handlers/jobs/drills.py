"""Playing crisis drills on APScheduler: one interval job that hands intake whatever the
running drill's timeline has come due (bot/drills/service.py tick).

Polling the database, not a job per mention: a drill started by another process (`otklik
drill start` beside the running bot) is picked up on the next run, and a restart resumes a
drill where it stood (the run row counts what was fed).
"""

from __future__ import annotations

import logging

from apscheduler.schedulers.base import BaseScheduler

from bot.drills.service import DrillService
from handlers.jobs import add_job

log = logging.getLogger(__name__)

JOB_ID = "drill-timeline"
CHECK_EVERY_S = 5.0  # a drill mention comes at most this late; the timeline is in minutes


class DrillJobs:
    def __init__(self, drills: DrillService, every_s: float = CHECK_EVERY_S) -> None:
        self._drills = drills
        self._every_s = every_s

    def schedule(self, scheduler: BaseScheduler) -> None:
        add_job(scheduler, self.run, "interval", job_id=JOB_ID, seconds=self._every_s)

    async def run(self) -> int:
        try:
            return await self._drills.tick()
        except Exception:  # the job must survive a bad minute (database restart…)
            log.exception("drill timeline failed")
            return 0
