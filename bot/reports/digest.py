"""The digest service: reads the evening digest and the weekly report, and queues them.

It owns the unit of work and the clock: periods come from the injected clock in the digest's
time zone (bot/reports/periods.py), figures and views from bot/reports/evening.py and
bot/reports/weekly.py, and each result is a neutral page view that every transport renders
(digest.html.j2, weekly.html.j2). Messages go through the outbox with one idempotency key per
digest and local date, so a re-run (a restart, a second scheduler fire, a catch-up at start)
posts nothing twice. Next: bot/reports/periods.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.messages.outbox import Destination, OutboxItem, OutboxOp, photo_payload
from bot.messages.views import View, notice_view, page_view
from bot.model import GlobalRole
from bot.ports import UnitOfWorkFactory
from bot.reports.evening import ChartData, DigestFigures, chart_data, evening_context, read_day
from bot.reports.formatting import percent
from bot.reports.periods import day_so_far, weeks
from bot.reports.weekly import (
    MAX_RECURRING,
    RECURRING_MIN_NEGATIVE,
    WeeklyFigures,
    read_week,
    weekly_context,
)
from bot.staff.directory import Directory
from bot.staff.rights import Actor

# Who may ask for /digest: the people the digest is written for, and the duty officer.
DIGEST_READERS = frozenset({GlobalRole.LEADERSHIP, GlobalRole.DUTY})

# Sent after the chart; cards and answers to commands keep their own, higher urgency.
DIGEST_URGENCY = 0
KEEP_CHARTS = timedelta(days=30)

EVENING = "evening"
WEEKLY = "weekly"
CHART_MIMETYPE = "image/png"


@dataclass(frozen=True, slots=True)
class Chart:
    """A rendered chart: PNG bytes and their pixel size (handlers/reports/charts.py draws it)."""

    png: bytes
    width: int
    height: int


class DigestService:
    """Computes digests and queues them for the leadership recipients."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        directory: Directory,
        tz: ZoneInfo,
        recipients: Sequence[Destination] = (),
        on_outbox: Callable[[], None] = lambda: None,
        translate: Callable[[str], str] | None = None,
        checklist_steps: int = 0,
        code_title: Callable[[str], str] = str,
    ) -> None:
        self._code_title = code_title  # heating → «Отопление» (Playbook.code_title)
        # Items on the crisis checklist (crisis.yaml): "4/6 done" needs the six.
        self._checklist_steps = checklist_steps
        self._uow = uow_factory
        self._clock = clock
        self._directory = directory
        self.tz = tz
        self.recipients = tuple(recipients)
        self._on_outbox = on_outbox
        # Only for names inside the chart (the picture has no template): message key → text.
        self._translate = translate or (lambda key: key)

    def now(self) -> datetime:
        return self._clock.now()

    async def evening(self, now: datetime | None = None) -> DigestFigures:
        """Today so far, as the evening digest and /digest show it."""
        now = now or self._clock.now()
        async with self._uow() as uow:
            return await read_day(uow, day_so_far(now, self.tz), now)

    async def weekly(self, now: datetime | None = None) -> WeeklyFigures:
        now = now or self._clock.now()
        this, previous = weeks(now, self.tz)
        async with self._uow() as uow:
            return WeeklyFigures(
                this=await read_week(uow, this, now),
                previous=await read_week(uow, previous, now),
                now=now,
                authors=await uow.reports.recurring_authors(
                    this, RECURRING_MIN_NEGATIVE, MAX_RECURRING
                ),
            )

    # --- views ---

    def evening_view(self, figures: DigestFigures) -> View:
        context = evening_context(
            figures, self._directory, self.tz, self._checklist_steps, self._code_title
        )
        return page_view("digest.html.j2", context)

    def weekly_view(self, figures: WeeklyFigures) -> View:
        context = weekly_context(figures, self._directory, self.tz, self._code_title)
        return page_view("weekly.html.j2", context)

    def caption_view(self, figures: DigestFigures) -> View:
        sla = figures.overall_sla.compliance
        return notice_view(
            "digest.caption",
            date=figures.now.astimezone(self.tz).strftime("%d.%m"),
            negative=figures.negative,
            sla=percent(sla),
        )

    def chart_data(self, figures: DigestFigures) -> ChartData:
        return chart_data(figures, self._directory, self._translate)

    async def reader_view(self, actor: Actor) -> View:
        """/digest: today so far, for leadership and the duty officer only."""
        if not actor.is_staff:
            return notice_view("ui.not_staff")
        if not DIGEST_READERS & actor.global_roles:
            return notice_view("ui.no_rights")
        return self.evening_view(await self.evening())

    # --- sending ---

    def key(self, kind: str, fire: datetime) -> str:
        """One digest per scheduled fire time (local, to the minute): the idempotency key of
        its messages."""
        return f"digest:{kind}:{fire.astimezone(self.tz).strftime('%Y-%m-%dT%H:%M')}"

    async def send(
        self,
        kind: str,
        view: View,
        fire: datetime,
        chart: Chart | None = None,
        caption: View | None = None,
    ) -> int:
        """Queue a digest (the chart first, then the text) for every recipient; `fire` is the
        scheduled time it stands for. Returns how many messages were queued: 0 when this
        digest was queued before."""
        if not self.recipients:
            return 0
        key = self.key(kind, fire)
        now = self._clock.now()
        async with self._uow() as uow:
            items: list[OutboxItem] = []
            blob = None
            if chart is not None:
                # Charts are only needed until delivered; keep a month for re-sends by hand.
                await uow.blobs.prune(now - KEEP_CHARTS)
                blob = await uow.blobs.put(chart.png, CHART_MIMETYPE, now)
            for dest in self.recipients:
                if chart is not None and blob is not None:
                    payload = photo_payload(
                        blob=blob,
                        caption=caption or notice_view("digest.caption_short"),
                        width=chart.width,
                        height=chart.height,
                        size=len(chart.png),
                        filename=f"{key.replace(':', '-')}.png",
                    )
                    items.append(_item(dest, OutboxOp.PHOTO, payload, f"{key}:chart", now))
                items.append(_item(dest, OutboxOp.POST, view, f"{key}:text", now))
            queued = await uow.outbox.enqueue(items)
            await uow.commit()
        if queued:
            self._on_outbox()
        return queued

    async def already_sent(self, kind: str, fire: datetime) -> bool:
        """Whether the digest for this fire time was queued (skip even the computing)."""
        async with self._uow() as uow:
            return await uow.kv.get(_sent_key(kind)) == self.key(kind, fire)

    async def mark_sent(self, kind: str, fire: datetime) -> None:
        async with self._uow() as uow:
            await uow.kv.set(_sent_key(kind), self.key(kind, fire))
            await uow.commit()


def _sent_key(kind: str) -> str:
    return f"digest.{kind}.last"


def _item(dest: Destination, op: OutboxOp, view: View, key: str, now: datetime) -> OutboxItem:
    return dest.message(op, view, key, now, ref=key, urgency=DIGEST_URGENCY)
