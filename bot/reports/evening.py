"""The evening digest (and /digest): today's figures read in one unit of work, the template
context of digest.html.j2, and the data the chart is drawn from.

Figures come from uow.reports (aggregate SQL, store/queries/reports.py) for a period from
bot/reports/periods.py; lists are cut so the digest stays under Telegram's 4096 characters.
Next: bot/reports/weekly.py, the weekly report built the same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.messages.views import headline
from bot.model import AuthorLabel, ClusterCount, TrendWindows
from bot.ports import UnitOfWork
from bot.reports.figures import (
    AuthorSeen,
    CaseCounts,
    CodeCount,
    Correction,
    CrisisSpan,
    HourCount,
    OpenCase,
    Period,
    ResponseTimes,
    SlaCounts,
)
from bot.reports.formatting import (
    MAX_CODES,
    Names,
    duration,
    hm,
    overall,
    percent,
    person,
    pool,
    rollup,
)
from bot.staff.directory import Directory

# List lengths: the digest is read on a phone and must stay under Telegram's 4096 characters.
MAX_DEPARTMENTS = 12
MAX_SOURCES = 6
MAX_PEOPLE = 5
MAX_OLDEST = 5
MAX_CORRECTIONS = 5
# Three crises and three clusters: with every other list at its longest the digest still fits
# (tests/bot/reports/test_digest.py); more of either is counted, not listed.
MAX_CRISES = 3
MAX_TIMELINE = 6
MAX_CLUSTERS = 3
HOURS_IN_DAY = 24
NO_DEPARTMENT = ""  # negative mentions that belong to no case


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
    # The day's clusters (cases several mentions joined), largest first, and what the largest
    # are about (case id -> the first mention's text as one line).
    clusters: list[ClusterCount] = field(default_factory=list)
    stories: dict[int, str] = field(default_factory=dict)

    def total(self, name: str) -> int:
        return sum(int(getattr(c, name)) for c in self.counts)

    @property
    def overall_sla(self) -> SlaCounts:
        return pool(self.sla)

    @property
    def overall_times(self) -> ResponseTimes:
        return overall(self.times)


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
    # Negative mentions, as the crisis card counts them (and read through the same index as
    # the hourly counts). The trend windows are unused here: the whole day is one window.
    until = min(now, period.end)
    clusters = await uow.crises.clusters(
        period.start, TrendWindows(period.start, period.start, until)
    )
    firsts = await uow.mentions.first_of_cases([c.case_id for c in clusters[:MAX_CLUSTERS]])
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
        clusters=clusters,
        stories={case_id: headline(m.text) for case_id, m in firsts.items()},
    )


def evening_context(
    figures: DigestFigures,
    directory: Directory,
    tz: ZoneInfo,
    checklist_steps: int = 0,
    code_title: Callable[[str], str] = str,
) -> dict[str, Any]:
    """The digest's template context: plain numbers and short strings, lists cut to size.
    `checklist_steps`: items on the crisis checklist, for "4/6 done" (0: only ticks shown).
    `code_title`: a code as leadership reads it (Playbook.code_title), not its id."""
    names = Names(directory)
    sla = figures.overall_sla
    times = figures.overall_times
    sla_by_dept = {s.department: s for s in figures.sla}
    times_by_dept = {t.department: t for t in figures.times if t.department is not None}
    by_dept = rollup(figures.counts, lambda c: c.department)
    departments: list[dict[str, Any]] = [
        {
            "name": names.department(dept),
            **counts,
            "sla": percent(sla_by_dept[dept].compliance) if dept in sla_by_dept else None,
            "first_touch_median": duration(
                times_by_dept[dept].first_touch.median_s if dept in times_by_dept else None
            ),
        }
        for dept, counts in by_dept.items()
    ]
    departments.sort(key=lambda d: (-d["overdue"], -d["open"], -d["new"], d["name"]))
    sources: list[dict[str, Any]] = [
        {"name": source, **counts}
        for source, counts in rollup(figures.counts, lambda c: c.source).items()
    ]
    sources.sort(key=lambda s: (-s["new"], -s["open"], s["name"]))
    critics = [p for p in figures.people if AuthorLabel.SYSTEMATIC_CRITIC in p.labels]
    leaders = [p for p in figures.people if AuthorLabel.OPINION_LEADER in p.labels]
    return {
        "date": figures.now.astimezone(tz).strftime("%d.%m.%Y"),
        "generated_at": hm(figures.now, tz),
        "totals": {
            "new": figures.total("new"),
            "answered": figures.total("answered"),
            "overdue": figures.total("overdue"),
            "open": figures.total("open"),
            "not_negative": figures.total("not_negative"),
            "negative": figures.negative,
        },
        "sla": {
            "percent": percent(sla.compliance),
            "first_touch_met": sla.first_touch_met,
            "first_touch_due": sla.first_touch_due,
            "answer_met": sla.answer_met,
            "answer_due": sla.answer_due,
            # Zero when no policy sets a reaction deadline: the digest then says nothing of it.
            "reaction_met": sla.reaction_met,
            "reaction_due": sla.reaction_due,
        },
        "times": _times(times),
        "departments": departments[:MAX_DEPARTMENTS],
        "departments_more": max(0, len(departments) - MAX_DEPARTMENTS),
        "sources": sources[:MAX_SOURCES],
        "sources_more": max(0, len(sources) - MAX_SOURCES),
        "crises": [
            _crisis(c, names, tz, checklist_steps, code_title) for c in figures.crises[:MAX_CRISES]
        ],
        "crises_more": max(0, len(figures.crises) - MAX_CRISES),
        "clusters": [
            {
                "case_id": c.case_id,
                "department": names.department(c.department),
                "story": figures.stories.get(c.case_id, ""),
                "mentions": c.mentions,
                "people": c.people,
                "first": hm(c.first_at, tz),
                "last": hm(c.last_at, tz),
            }
            for c in figures.clusters[:MAX_CLUSTERS]
        ],
        "clusters_more": max(0, len(figures.clusters) - MAX_CLUSTERS),
        "codes": [
            {"code": code_title(c.code), "cases": c.cases} for c in figures.codes[:MAX_CODES]
        ],
        "critics": [person(p) for p in critics[:MAX_PEOPLE]],
        "leaders": [person(p) for p in leaders[:MAX_PEOPLE]],
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
                "at": hm(c.at, tz),
            }
            for c in figures.corrections[:MAX_CORRECTIONS]
        ],
    }


def chart_data(
    figures: DigestFigures, directory: Directory, translate: Callable[[str], str]
) -> ChartData:
    names = Names(directory, translate("digest.no_department"))
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


def _ordered(configured: Iterable[str], seen: Iterable[str]) -> list[str]:
    known = list(configured)
    return known + sorted(set(seen) - set(known))


def _times(times: ResponseTimes) -> dict[str, Any]:
    return {
        "first_touch_count": times.first_touch.count,
        "first_touch_median": duration(times.first_touch.median_s),
        "first_touch_p90": duration(times.first_touch.p90_s),
        "answer_count": times.answer.count,
        "answer_median": duration(times.answer.median_s),
        "answer_p90": duration(times.answer.p90_s),
    }


def _crisis(
    crisis: CrisisSpan,
    names: Names,
    tz: ZoneInfo,
    steps: int,
    code_title: Callable[[str], str],
) -> dict[str, Any]:
    if crisis.scope == "department":
        subject = names.department(crisis.key)
    else:  # a code's crisis: its title; none for all mentions
        subject = code_title(crisis.key) if crisis.key else ""
    timeline = [
        {
            "at": hm(_parse(step.get("at")), tz) if step.get("at") else "",
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
        "opened_at": hm(crisis.opened_at, tz),
        "count_at_open": crisis.count_at_open,
        "peak_count": crisis.peak_count,
        "peak_at": hm(crisis.peak_at, tz),
        "closed_at": hm(crisis.closed_at, tz) if crisis.closed_at else None,
        "timeline": timeline,
        "checklist": _checklist(crisis.checklist_done_at, steps, tz),
    }


def _checklist(done_at: tuple[datetime, ...], steps: int, tz: ZoneInfo) -> dict[str, Any] | None:
    """ "checklist: 4/6 done, first at 10:12, last at 11:40"; None when there is no checklist."""
    if not steps and not done_at:
        return None
    return {
        "done": len(done_at),
        "steps": max(steps, len(done_at)),
        "first": hm(done_at[0], tz) if done_at else None,
        "last": hm(done_at[-1], tz) if done_at else None,
    }


def _parse(value: object) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _age(delta: timedelta) -> dict[str, int]:
    hours = int(delta.total_seconds() // 3600)
    return {"days": hours // 24, "hours": hours % 24}
