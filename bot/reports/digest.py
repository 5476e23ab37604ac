"""The evening digest and the weekly report: figures from the database, views for templates.

Pure assembly: periods come from the injected clock in the organisation's (or the digest's)
time zone, figures from uow.reports (aggregate SQL, store/queries/reports.py), and the result is a
neutral page view that every transport renders (digest.html.j2, weekly.html.j2). Messages go
through the outbox with one idempotency key per digest and local date, so a re-run (a restart,
a second scheduler fire, a catch-up at start) posts nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.messages.outbox import Destination, OutboxItem, OutboxOp, photo_payload
from bot.messages.views import View, notice_view, page_view
from bot.model import AuthorLabel, GlobalRole
from bot.ports import UnitOfWork, UnitOfWorkFactory
from bot.reports.figures import (
    AuthorSeen,
    CaseCounts,
    CodeCount,
    Correction,
    CrisisSpan,
    Durations,
    HourCount,
    OpenCase,
    Period,
    ResponseTimes,
    SlaCounts,
)
from bot.staff.directory import Directory
from bot.staff.rights import Actor

# Who may ask for /digest: the people the digest is written for, and the duty officer.
DIGEST_READERS = frozenset({GlobalRole.LEADERSHIP, GlobalRole.DUTY})

# List lengths: the digest is read on a phone and must stay under Telegram's 4096 characters.
MAX_DEPARTMENTS = 12
MAX_SOURCES = 6
MAX_CODES = 5
MAX_PEOPLE = 5
MAX_OLDEST = 5
MAX_CORRECTIONS = 5
MAX_CRISES = 5
MAX_TIMELINE = 6
MAX_RANKING = 12
MAX_RECURRING = 8
RECURRING_MIN_NEGATIVE = 2  # weekly: an author is "recurring" from two negative mentions on
HOURS_IN_DAY = 24
MAX_SHOWN_NAME = 40  # characters of an author's or department's name in a digest line
# Sent after the chart; cards and answers to commands keep their own, higher urgency.
DIGEST_URGENCY = 0
NO_DEPARTMENT = ""  # negative mentions that belong to no case
KEEP_CHARTS = timedelta(days=30)

EVENING = "evening"
WEEKLY = "weekly"
CHART_MIMETYPE = "image/png"


# --- periods ------------------------------------------------------------------------------


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first moment of a local day (DST-safe: a day may have 23 or 25 hours)."""
    return datetime.combine(day, time(), tzinfo=tz)


def day_so_far(now: datetime, tz: ZoneInfo) -> Period:
    """Today in the given time zone, from local midnight to now."""
    return Period(local_midnight(now.astimezone(tz).date(), tz), now)


def weeks(now: datetime, tz: ZoneInfo) -> tuple[Period, Period]:
    """The seven whole local days before today, and the seven before those."""
    today = now.astimezone(tz).date()
    this = Period(local_midnight(today - timedelta(days=7), tz), local_midnight(today, tz))
    previous = Period(local_midnight(today - timedelta(days=14), tz), this.start)
    return this, previous


# --- figures ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestFigures:
    """Everything the evening digest (and /digest) shows, read in one unit of work."""

    period: Period
    now: datetime
    counts: list[CaseCounts]
    sla: list[SlaCounts]
    times: list[ResponseTimes]
    hourly: list[HourCount]
    negative: int
    codes: list[CodeCount]
    crises: list[CrisisSpan]
    people: list[AuthorSeen]
    oldest: list[OpenCase]
    corrections: list[Correction]

    def total(self, name: str) -> int:
        return sum(int(getattr(c, name)) for c in self.counts)

    @property
    def overall_sla(self) -> SlaCounts:
        return _pool(self.sla)

    @property
    def overall_times(self) -> ResponseTimes:
        return next((t for t in self.times if t.department is None), ResponseTimes(None))


@dataclass(frozen=True, slots=True)
class WeekFigures:
    period: Period
    counts: list[CaseCounts]
    sla: list[SlaCounts]
    times: list[ResponseTimes]
    negative: int
    codes: list[CodeCount]

    def total(self, name: str) -> int:
        return sum(int(getattr(c, name)) for c in self.counts)


@dataclass(frozen=True, slots=True)
class WeeklyFigures:
    this: WeekFigures
    previous: WeekFigures
    now: datetime
    authors: list[AuthorSeen]


@dataclass(frozen=True, slots=True)
class Chart:
    """A rendered chart: PNG bytes and their pixel size (handlers/reports/charts.py draws it)."""

    png: bytes
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class ChartData:
    """What the chart is drawn from: department name → 24 hourly counts of negative mentions
    (local hours), and department name → SLA compliance (0..1, None when nothing fell due)."""

    hourly: dict[str, list[int]] = field(default_factory=dict)
    compliance: dict[str, float | None] = field(default_factory=dict)


async def read_day(uow: UnitOfWork, period: Period, now: datetime) -> DigestFigures:
    reports = uow.reports
    labels = (AuthorLabel.SYSTEMATIC_CRITIC, AuthorLabel.OPINION_LEADER)
    hourly = await reports.negative_by_hour(period)
    return DigestFigures(
        period=period,
        now=now,
        counts=await reports.case_counts(period, now),
        sla=await reports.sla(period, now),
        times=await reports.response_times(period),
        hourly=hourly,
        negative=sum(h.count for h in hourly),  # every mention of the day is in some hour
        codes=await reports.top_codes(period, MAX_CODES),
        crises=await reports.crises(period),
        people=await reports.labelled_authors(period, labels, 2 * MAX_PEOPLE),
        oldest=await reports.oldest_open(MAX_OLDEST),
        corrections=await reports.not_negative(period, MAX_CORRECTIONS),
    )


async def read_week(uow: UnitOfWork, period: Period, now: datetime) -> WeekFigures:
    reports = uow.reports
    return WeekFigures(
        period=period,
        counts=await reports.case_counts(period, now),
        sla=await reports.sla(period, now),
        times=await reports.response_times(period),
        negative=await reports.negative_mentions(period),
        codes=await reports.top_codes(period, 2 * MAX_CODES),
    )


# --- the service --------------------------------------------------------------------------


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
    ) -> None:
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
        return page_view("digest.html.j2", evening_context(figures, self._directory, self.tz))

    def weekly_view(self, figures: WeeklyFigures) -> View:
        return page_view("weekly.html.j2", weekly_context(figures, self._directory, self.tz))

    def caption_view(self, figures: DigestFigures) -> View:
        sla = figures.overall_sla.compliance
        return notice_view(
            "digest.caption",
            date=figures.now.astimezone(self.tz).strftime("%d.%m"),
            negative=figures.negative,
            sla=_percent(sla),
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


# --- contexts for the templates -----------------------------------------------------------


def evening_context(figures: DigestFigures, directory: Directory, tz: ZoneInfo) -> dict[str, Any]:
    """The digest's template context: plain numbers and short strings, lists cut to size."""
    names = _Names(directory)
    sla = figures.overall_sla
    times = figures.overall_times
    sla_by_dept = {s.department: s for s in figures.sla}
    times_by_dept = {t.department: t for t in figures.times if t.department is not None}
    by_dept = _rollup(figures.counts, lambda c: c.department)
    departments: list[dict[str, Any]] = [
        {
            "name": names.department(dept),
            **counts,
            "sla": _percent(sla_by_dept[dept].compliance) if dept in sla_by_dept else None,
            "first_touch_median": _duration(
                times_by_dept[dept].first_touch.median_s if dept in times_by_dept else None
            ),
        }
        for dept, counts in by_dept.items()
    ]
    departments.sort(key=lambda d: (-d["overdue"], -d["open"], -d["new"], d["name"]))
    sources: list[dict[str, Any]] = [
        {"name": source, **counts}
        for source, counts in _rollup(figures.counts, lambda c: c.source).items()
    ]
    sources.sort(key=lambda s: (-s["new"], -s["open"], s["name"]))
    critics = [p for p in figures.people if AuthorLabel.SYSTEMATIC_CRITIC in p.labels]
    leaders = [p for p in figures.people if AuthorLabel.OPINION_LEADER in p.labels]
    return {
        "date": figures.now.astimezone(tz).strftime("%d.%m.%Y"),
        "generated_at": _hm(figures.now, tz),
        "totals": {
            "new": figures.total("new"),
            "answered": figures.total("answered"),
            "overdue": figures.total("overdue"),
            "open": figures.total("open"),
            "not_negative": figures.total("not_negative"),
            "negative": figures.negative,
        },
        "sla": {
            "percent": _percent(sla.compliance),
            "first_touch_met": sla.first_touch_met,
            "first_touch_due": sla.first_touch_due,
            "answer_met": sla.answer_met,
            "answer_due": sla.answer_due,
        },
        "times": _times(times),
        "departments": departments[:MAX_DEPARTMENTS],
        "departments_more": max(0, len(departments) - MAX_DEPARTMENTS),
        "sources": sources[:MAX_SOURCES],
        "sources_more": max(0, len(sources) - MAX_SOURCES),
        "crises": [_crisis(c, names, tz) for c in figures.crises[:MAX_CRISES]],
        "crises_more": max(0, len(figures.crises) - MAX_CRISES),
        "codes": [{"code": c.code, "cases": c.cases} for c in figures.codes[:MAX_CODES]],
        "critics": [_person(p) for p in critics[:MAX_PEOPLE]],
        "leaders": [_person(p) for p in leaders[:MAX_PEOPLE]],
        "oldest": [
            {
                "id": c.id,
                "department": names.department(c.department),
                "state": c.state,
                "age": _age(figures.now - c.created_at),
            }
            for c in figures.oldest[:MAX_OLDEST]
        ],
        "corrections": [
            {
                "case_id": c.case_id,
                "department": names.department(c.department),
                "actor": directory.name_of(c.actor) if c.actor else None,
                "at": _hm(c.at, tz),
            }
            for c in figures.corrections[:MAX_CORRECTIONS]
        ],
    }


def weekly_context(figures: WeeklyFigures, directory: Directory, tz: ZoneInfo) -> dict[str, Any]:
    names = _Names(directory)
    this, prev = figures.this, figures.previous
    this_sla, prev_sla = _pool(this.sla), _pool(prev.sla)
    this_times, prev_times = _overall(this.times), _overall(prev.times)
    trends = [
        _trend("new", this.total("new"), prev.total("new")),
        _trend("answered", this.total("answered"), prev.total("answered")),
        _trend("negative", this.negative, prev.negative),
        _trend("not_negative", this.total("not_negative"), prev.total("not_negative")),
        _trend("sla", _percent(this_sla.compliance), _percent(prev_sla.compliance)),
        _trend(
            "answer_median",
            _minutes(this_times.answer.median_s),
            _minutes(prev_times.answer.median_s),
            text=(_duration(this_times.answer.median_s), _duration(prev_times.answer.median_s)),
        ),
    ]
    sla_by_dept = {s.department: s for s in this.sla}
    times_by_dept = {t.department: t for t in this.times if t.department is not None}
    new_by_dept = _rollup(this.counts, lambda c: c.department)
    # Departments with work this week; open cases from before alone do not rank.
    busy = {d for d, c in new_by_dept.items() if c["new"] or c["answered"]}
    departments = sorted(set(sla_by_dept) | set(times_by_dept) | busy)
    ranking: list[dict[str, Any]] = []
    for dept in departments:
        compliance = sla_by_dept[dept].compliance if dept in sla_by_dept else None
        answer = times_by_dept[dept].answer if dept in times_by_dept else Durations()
        ranking.append(
            {
                "name": names.department(dept),
                "sla": _percent(compliance),
                "answer_median": _duration(answer.median_s),
                "new": new_by_dept.get(dept, {}).get("new", 0),
                "_order": (
                    compliance is None,
                    -(compliance or 0.0),
                    answer.median_s if answer.median_s is not None else float("inf"),
                    names.department(dept),
                ),
            }
        )
    ranking.sort(key=lambda r: r["_order"])
    for place, row in enumerate(ranking, start=1):
        del row["_order"]
        row["place"] = place
    previous_codes = {c.code: c.cases for c in prev.codes}
    last_day = this.period.end.astimezone(tz) - timedelta(days=1)
    return {
        "from": this.period.start.astimezone(tz).strftime("%d.%m"),
        "to": last_day.strftime("%d.%m"),
        "trends": trends,
        "ranking": ranking[:MAX_RANKING],
        "ranking_more": max(0, len(ranking) - MAX_RANKING),
        "authors": [_person(a) for a in figures.authors[:MAX_RECURRING]],
        "codes": [
            {"code": c.code, "cases": c.cases, "previous": previous_codes.get(c.code, 0)}
            for c in this.codes[:MAX_CODES]
        ],
    }


def chart_data(
    figures: DigestFigures, directory: Directory, translate: Callable[[str], str]
) -> ChartData:
    names = _Names(directory, translate("digest.no_department"))
    hourly: dict[str, list[int]] = defaultdict(lambda: [0] * HOURS_IN_DAY)
    for row in figures.hourly:
        # A 25-hour DST day folds its last hour into 23.
        hour = min(max(row.hour, 0), HOURS_IN_DAY - 1)
        hourly[names.department(row.department or NO_DEPARTMENT)][hour] += row.count
    sla = {s.department: s.compliance for s in figures.sla}
    compliance = {
        names.department(dept): sla.get(dept) for dept in _ordered(directory.department_ids(), sla)
    }
    return ChartData(dict(hourly), compliance)


# --- helpers ------------------------------------------------------------------------------


class _Names:
    def __init__(self, directory: Directory, no_department: str = "—") -> None:
        self._directory = directory
        self._none = no_department

    def department(self, dept: str | None) -> str:
        if not dept:
            return self._none
        return _short(self._directory.department_name(dept))


def _short(name: str) -> str:
    return name if len(name) <= MAX_SHOWN_NAME else name[: MAX_SHOWN_NAME - 1] + "…"


def _ordered(configured: Iterable[str], seen: Iterable[str]) -> list[str]:
    known = list(configured)
    return known + sorted(set(seen) - set(known))


def _pool(rows: Iterable[SlaCounts]) -> SlaCounts:
    rows = list(rows)
    return SlaCounts(
        "*",
        first_touch_due=sum(r.first_touch_due for r in rows),
        first_touch_met=sum(r.first_touch_met for r in rows),
        answer_due=sum(r.answer_due for r in rows),
        answer_met=sum(r.answer_met for r in rows),
    )


def _overall(times: Iterable[ResponseTimes]) -> ResponseTimes:
    return next((t for t in times if t.department is None), ResponseTimes(None))


_COUNTS = ("new", "answered", "overdue", "open", "not_negative")


def _rollup(
    counts: Iterable[CaseCounts], key: Callable[[CaseCounts], str]
) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for row in counts:
        slot = out.setdefault(key(row), dict.fromkeys(_COUNTS, 0))
        for name in _COUNTS:
            slot[name] += int(getattr(row, name))
    return out


def _times(times: ResponseTimes) -> dict[str, Any]:
    return {
        "first_touch_count": times.first_touch.count,
        "first_touch_median": _duration(times.first_touch.median_s),
        "first_touch_p90": _duration(times.first_touch.p90_s),
        "answer_count": times.answer.count,
        "answer_median": _duration(times.answer.median_s),
        "answer_p90": _duration(times.answer.p90_s),
    }


def _crisis(crisis: CrisisSpan, names: _Names, tz: ZoneInfo) -> dict[str, Any]:
    subject = names.department(crisis.key) if crisis.scope == "department" else crisis.key or ""
    timeline = [
        {
            "at": _hm(_parse(step.get("at")), tz) if step.get("at") else "",
            "event": str(step.get("event", "")),
            "count": step.get("count"),
        }
        for step in crisis.timeline
    ]
    if len(timeline) > MAX_TIMELINE:  # keep how it started and how it ended
        timeline = [*timeline[: MAX_TIMELINE // 2], *timeline[-(MAX_TIMELINE // 2) :]]
    return {
        "id": crisis.id,
        "scope": crisis.scope,
        "subject": subject,
        "opened_at": _hm(crisis.opened_at, tz),
        "count_at_open": crisis.count_at_open,
        "peak_count": crisis.peak_count,
        "peak_at": _hm(crisis.peak_at, tz),
        "closed_at": _hm(crisis.closed_at, tz) if crisis.closed_at else None,
        "timeline": timeline,
    }


def _parse(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _person(author: AuthorSeen) -> dict[str, Any]:
    return {
        "id": author.id,
        "name": _short(author.display_name),
        "mentions": author.mentions,
        "negative": author.negative,
        "labels": sorted(label.value for label in author.labels),
    }


def _trend(
    name: str,
    this: int | None,
    previous: int | None,
    text: tuple[str | None, str | None] | None = None,
) -> dict[str, Any]:
    """One line of week-over-week: the two values as shown, and the change (None: unknown)."""
    delta = None if this is None or previous is None else this - previous
    shown = text or (_str(this), _str(previous))
    return {"name": name, "this": shown[0], "previous": shown[1], "delta": delta}


def _str(value: int | None) -> str | None:
    return None if value is None else str(value)


def _percent(share: float | None) -> int | None:
    # Rounded half up, the way people round a percentage.
    return None if share is None else int(share * 100 + 0.5)


def _minutes(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds // 60)


def _duration(seconds: float | None) -> str | None:
    """H:MM, rounded down to the minute; None when there is nothing to measure."""
    if seconds is None:
        return None
    minutes = int(seconds // 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def _age(delta: timedelta) -> dict[str, int]:
    hours = int(delta.total_seconds() // 3600)
    return {"days": hours // 24, "hours": hours % 24}


def _hm(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%H:%M")
