"""The retention policy's daily pass (config `retention`): personal data of cases closed
longer ago than `personal_data_months`, and of mentions that old that opened no case, is
erased by bot/cases/erasure.py, each batch logged as a `retention_erased` event.

The erasure's clock is the injected one; APScheduler only says when. A missed day needs no
catch-up: the next run erases everything due by then.
"""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.cases.erasure import Erasure, RetentionRun
from bot.settings.config import RetentionConfig
from handlers.jobs import add_job

log = logging.getLogger(__name__)

JOB_ID = "retention"
MISFIRE_GRACE_S = 6 * 3600


class RetentionJobs:
    def __init__(self, erasure: Erasure, config: RetentionConfig, tz: ZoneInfo) -> None:
        self._erasure = erasure
        self._months = config.personal_data_months
        self._trigger = CronTrigger.from_crontab(config.cron, timezone=tz)

    def schedule(self, scheduler: BaseScheduler) -> None:
        if self._months is None:
            return
        add_job(
            scheduler,
            self.run,
            self._trigger,
            job_id=JOB_ID,
            name="personal data retention",
            misfire_grace_s=MISFIRE_GRACE_S,
        )

    async def run(self) -> RetentionRun | None:
        """One pass; None when no policy is set or the pass failed (logged, tried tomorrow)."""
        if self._months is None:
            return None
        try:
            return await self._erasure.apply_retention(self._months)
        except Exception:
            log.exception("retention pass failed")
            return None
