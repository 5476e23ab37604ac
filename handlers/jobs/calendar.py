"""The daily look at the production calendar (bot/sla/coverage.py): at start and every
morning, whether a working calendar is about to run out."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.sla.coverage import CalendarGap, CalendarWatch

log = logging.getLogger(__name__)

JOB_ID = "calendar-coverage"
MISFIRE_GRACE_S = 12 * 3600


class CalendarJobs:
    def __init__(self, watch: CalendarWatch, tz: ZoneInfo) -> None:
        self._watch = watch
        self._trigger = CronTrigger(hour=9, minute=0, timezone=tz)

    def schedule(self, scheduler: BaseScheduler) -> None:
        scheduler.add_job(
            self.run,
            self._trigger,
            id=JOB_ID,
            name="production calendar coverage",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=MISFIRE_GRACE_S,
        )

    async def run(self) -> list[CalendarGap]:
        try:
            return await self._watch.check()
        except Exception:  # a warning must not stop the bot; tomorrow tries again
            log.exception("production calendar check failed")
            return []
