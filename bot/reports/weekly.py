"""The weekly report: this week's and last week's figures, and the template context of
weekly.html.j2 (week-over-week trends, the department ranking, recurring authors, top codes).

The weeks come from bot/reports/periods.py, the figures from uow.reports. Next:
bot/reports/formatting.py, how both reports write numbers, times and names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.ports import UnitOfWork
from bot.reports.figures import (
    AuthorSeen,
    CaseCounts,
    CodeCount,
    Durations,
    Period,
    ResponseTimes,
    SlaCounts,
)
from bot.reports.formatting import (
    MAX_CODES,
    Names,
    duration,
    overall,
    percent,
    person,
    pool,
    rollup,
)
from bot.staff.directory import Directory

MAX_RANKING = 12
MAX_RECURRING = 8
RECURRING_MIN_NEGATIVE = 2  # an author is "recurring" from two negative mentions on


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


def weekly_context(
    figures: WeeklyFigures,
    directory: Directory,
    tz: ZoneInfo,
    code_title: Callable[[str], str] = str,
) -> dict[str, Any]:
    """The weekly report's context; `code_title` names codes as people read them."""
    names = Names(directory)
    this, prev = figures.this, figures.previous
    this_sla, prev_sla = pool(this.sla), pool(prev.sla)
    this_times, prev_times = overall(this.times), overall(prev.times)
    trends = [
        _trend("new", this.total("new"), prev.total("new")),
        _trend("answered", this.total("answered"), prev.total("answered")),
        _trend("negative", this.negative, prev.negative),
        _trend("not_negative", this.total("not_negative"), prev.total("not_negative")),
        _trend("sla", percent(this_sla.compliance), percent(prev_sla.compliance)),
        _trend(
            "answer_median",
            _minutes(this_times.answer.median_s),
            _minutes(prev_times.answer.median_s),
            text=(duration(this_times.answer.median_s), duration(prev_times.answer.median_s)),
        ),
    ]
    sla_by_dept = {s.department: s for s in this.sla}
    times_by_dept = {t.department: t for t in this.times if t.department is not None}
    new_by_dept = rollup(this.counts, lambda c: c.department)
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
                "sla": percent(compliance),
                "answer_median": duration(answer.median_s),
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
        "authors": [person(a) for a in figures.authors[:MAX_RECURRING]],
        "codes": [
            {
                "code": code_title(c.code),
                "cases": c.cases,
                "previous": previous_codes.get(c.code, 0),
            }
            for c in this.codes[:MAX_CODES]
        ],
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


def _minutes(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds // 60)
