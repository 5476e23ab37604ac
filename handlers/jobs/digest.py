"""Scheduled digests: the evening digest (with its chart) and the weekly report.

Two APScheduler cron jobs in the digest time zone. Each run is keyed by the cron fire time it
stands for (digest:evening:2026-11-20T19:00), so a second fire, a restart within the same
minute or a catch-up sends nothing twice: the outbox skips known idempotency keys, and a
key-value mark skips even the computing.

A digest missed while the bot was down is sent at start when its fire time was earlier the
same local day (misfire_grace_time covers a late fire while running: a busy loop, a
suspended machine). Yesterday's missed digest is not sent the next morning: it would say
"today" about a day that is over.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.messages.outbox import Destination, Transport
from bot.messages.texts import Texts
from bot.reports.digest import EVENING, WEEKLY, Chart, DigestService
from bot.reports.periods import local_midnight
from bot.settings.config import Config, DigestConfig
from bot.staff.directory import SANDBOX
from handlers.jobs import add_job
from handlers.reports.charts import CHART_HEIGHT, CHART_WIDTH, render_digest_chart

log = logging.getLogger(__name__)

MISFIRE_GRACE_S = 3600  # a fire up to an hour late still runs (same evening)


def digest_recipients(config: Config, transports: Mapping[str, Transport]) -> list[Destination]:
    """Where digests go, on the transports that run (others would only fill the outbox)."""
    recipients = config.digest.recipients
    found = [Destination("telegram", str(chat)) for chat in recipients.telegram_chat_ids]
    found += [Destination("matrix", room) for room in recipients.matrix_room_ids]
    # The sandbox has no chats of its own to name: its coordination page stands for them all.
    found.append(Destination(SANDBOX, config.coordination_department))
    return [dest for dest in found if dest.transport in transports]


class DigestJobs:
    def __init__(self, digests: DigestService, texts: Texts, config: DigestConfig) -> None:
        self._digests = digests
        self._texts = texts
        self.tz: ZoneInfo = digests.tz
        self._triggers = {
            EVENING: CronTrigger.from_crontab(config.evening_cron, timezone=self.tz),
            WEEKLY: CronTrigger.from_crontab(config.weekly_cron, timezone=self.tz),
        }

    def schedule(self, scheduler: BaseScheduler) -> None:
        for kind, trigger in self._triggers.items():
            add_job(
                scheduler,
                self.run,
                trigger,
                args=[kind],
                job_id=f"digest:{kind}",
                name=f"{kind} digest",
                misfire_grace_s=MISFIRE_GRACE_S,
            )

    async def catch_up(self) -> int:
        """At start: send a digest whose fire time passed earlier today while we were down."""
        queued = 0
        for kind in self._triggers:
            if self.last_fire(kind, self._digests.now()) is not None:
                queued += await self.run(kind)
        return queued

    def last_fire(self, kind: str, now: datetime) -> datetime | None:
        """The latest fire time of a job in [local midnight, now], if any."""
        trigger = self._triggers[kind]
        moment = local_midnight(now.astimezone(self.tz).date(), self.tz)
        last = None
        while True:
            fire = trigger.get_next_fire_time(None, moment)
            if fire is None or fire > now:
                return last
            last = fire
            moment = fire + timedelta(seconds=1)

    async def run(self, kind: str) -> int:
        """Compute and queue one digest for the fire time it stands for; the number of
        messages queued (0: nothing due today, or already sent)."""
        if not self._digests.recipients:  # nobody to send to: compute nothing
            return 0
        now = self._digests.now()
        fire = self.last_fire(kind, now)
        if fire is None:  # a misfire from yesterday, or a manual call off schedule
            fire = now
        if await self._digests.already_sent(kind, fire):
            return 0
        if kind == EVENING:
            queued = await self._evening(now, fire)
        else:
            figures = await self._digests.weekly(now)
            queued = await self._digests.send(WEEKLY, self._digests.weekly_view(figures), fire)
        await self._digests.mark_sent(kind, fire)
        log.info("%s digest for %s: %d messages queued", kind, fire.isoformat(), queued)
        return queued

    async def _evening(self, now: datetime, fire: datetime) -> int:
        digests = self._digests
        figures = await digests.evening(now)
        chart: Chart | None = None
        try:
            data = digests.chart_data(figures)
            t = self._texts.t
            png = await render_digest_chart(
                data.hourly,
                data.compliance,
                title=t("digest.chart_title"),
                hourly_title=t("digest.chart_hourly"),
                compliance_title=t("digest.chart_compliance"),
                other_label=t("digest.chart_other"),
            )
            chart = Chart(png, CHART_WIDTH, CHART_HEIGHT)
        except Exception:  # the figures matter more than the picture: send the text anyway
            log.exception("digest chart failed; sending the text only")
        return await digests.send(
            EVENING,
            digests.evening_view(figures),
            fire,
            chart=chart,
            caption=digests.caption_view(figures),
        )
