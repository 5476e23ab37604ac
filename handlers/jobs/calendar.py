"""The daily look at the production calendar (bot/sla/coverage.py): at start and every
morning, whether a working calendar is about to run out."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.sla.coverage import CalendarGap, CalendarWatch
from handlers.jobs import add_job

log = logging.getLogger(__name__)

JOB_ID = "calendar-coverage"
MISFIRE_GRACE_S = 12 * 3600


class CalendarJobs:
    def __init__(self, watch: CalendarWatch, tz: ZoneInfo) -> None:
        self._watch = watch
        self._trigger = CronTrigger(hour=9, minute=0, timezone=tz)

    def schedule(self, scheduler: BaseScheduler) -> None:
        add_job(
            scheduler,
            self.run,
            self._trigger,
            job_id=JOB_ID,
            name="production calendar coverage",
            misfire_grace_s=MISFIRE_GRACE_S,
        )

    async def run(self) -> list[CalendarGap]:
        try:
            return await self._watch.check()
        except Exception:  # a warning must not stop the bot; tomorrow tries again
            log.exception("production calendar check failed")
            return []
