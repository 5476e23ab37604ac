"""A production calendar that runs out: the warning before it does.

Deadlines counted on a calendar that does not know a year treat its moved days off as working
days. From WARN_BEFORE before a year ends (and all through a year already begun), every working
calendar of an SLA policy that does not cover the year (bot/settings/production.py, `covers`)
is named once in the log and once in the coordination chat, through the outbox. The outbox's
idempotency key remembers the chat message across restarts; the log line comes once per run.
handlers/jobs/calendar.py runs the check at start and daily.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.messages.outbox import OutboxOp
from bot.messages.views import notice_view
from bot.ports import UnitOfWorkFactory
from bot.settings.playbook import Playbook
from bot.staff.directory import Directory

__all__ = ["WARN_BEFORE", "CalendarGap", "CalendarWatch", "calendar_gaps"]

log = logging.getLogger(__name__)

WARN_BEFORE = timedelta(days=60)
_URGENCY = 1  # above routine notices, below cards of urgent cases


@dataclass(frozen=True, slots=True)
class CalendarGap:
    year: int
    calendars: tuple[str, ...]  # calendar names in sla.yaml


def calendar_gaps(playbook: Playbook, now: datetime, tz: ZoneInfo) -> list[CalendarGap]:
    """Years the policies' working calendars do not know yet: this one, and the next from
    WARN_BEFORE before it starts (in the organisation's time zone)."""
    local = now.astimezone(tz)
    years = [local.year]
    if local >= datetime(local.year + 1, 1, 1, tzinfo=tz) - WARN_BEFORE:
        years.append(local.year + 1)
    used = {policy.calendar for policy in playbook.sla.policies.values()}
    gaps: list[CalendarGap] = []
    for year in years:
        missing = tuple(
            name
            for name in playbook.working_calendars()
            if name in used and not playbook.calendar(name).covers(year)
        )
        if missing:
            gaps.append(CalendarGap(year, missing))
    return gaps


class CalendarWatch:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        directory: Directory,
        playbook: Playbook,
        tz: ZoneInfo,
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._directory = directory
        self._playbook = playbook
        self._tz = tz
        self._on_outbox = on_outbox
        self._logged: set[int] = set()

    async def check(self) -> list[CalendarGap]:
        """Warn about each year not warned about yet; returns every gap found now."""
        now = self._clock.now()
        gaps = calendar_gaps(self._playbook, now, self._tz)
        items = []
        for gap in gaps:
            names = ", ".join(gap.calendars)
            if gap.year not in self._logged:
                self._logged.add(gap.year)
                log.warning(
                    "the working calendar(s) %s do not know %d: public holidays moved by decree "
                    "are missing, so deadlines may fall on days off. Upgrade the holidays "
                    "package, or list the days in sla.yaml and add %d to confirmed_years",
                    names,
                    gap.year,
                    gap.year,
                )
            view = notice_view("sla.calendar_missing", year=gap.year)
            items += [
                dest.message(
                    OutboxOp.POST,
                    view,
                    f"calendar-missing:{gap.year}",
                    now,
                    ref=None,
                    urgency=_URGENCY,
                )
                for dest in self._directory.destinations(self._directory.coordination)
            ]
        if items:
            async with self._uow() as uow:
                queued = await uow.outbox.enqueue(items)  # a key queued before is skipped
                await uow.commit()
            if queued:
                self._on_outbox()
        return gaps
