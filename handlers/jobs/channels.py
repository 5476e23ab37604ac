"""Every minute, whether a channel has been failing long enough for a notice in the
coordination chat (bot/reports/channels.py)."""

from __future__ import annotations

import logging

from apscheduler.schedulers.base import BaseScheduler

from bot.reports.channels import ChannelWatch
from handlers.jobs import add_job

log = logging.getLogger(__name__)

JOB_ID = "channel-health"
CHECK_EVERY_S = 60


class ChannelJobs:
    def __init__(self, watch: ChannelWatch) -> None:
        self.watch = watch

    def schedule(self, scheduler: BaseScheduler) -> None:
        add_job(
            scheduler,
            self.run,
            "interval",
            job_id=JOB_ID,
            name="channel health",
            seconds=CHECK_EVERY_S,
        )

    async def run(self) -> list[str]:
        try:
            return await self.watch.check()
        except Exception:  # a notice must not stop the bot; the next minute tries again
            log.exception("channel health check failed")
            return []
