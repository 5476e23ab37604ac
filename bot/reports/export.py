"""The case export (`otklik report`): rows as the store streams them, and the summary built
from exactly those rows, so the Summary sheet and the Cases sheet never disagree.

Definitions (the README states them too; they match the digest's, bot/reports/figures.py):
- the period is [from 00:00, to + 1 day 00:00) in the organisation's time zone, by the case's
  creation time;
- answered: published, or closed with an outcome other than no_action;
- a deadline is kept when the first reply the author saw (resp. an approved answer), or closing
  the case, came by it; one still ahead and not yet kept is undecided;
- SLA met: no deadline missed and every deadline decided; undecided while one is still open;
- times are wall-clock minutes from the case's creation;
- drill cases are exported, flagged, and left out of the summary.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.model import CaseState, IgnoreReason, Outcome
from bot.reports.figures import ANSWERED_OUTCOMES, Period

__all__ = [
    "ExportAuthor",
    "ExportCase",
    "ReportSummary",
    "SummaryRow",
    "export_period",
    "summarise",
]


@dataclass(frozen=True, slots=True)
class ExportCase:
    id: int
    department: str
    priority: str
    source: str
    codes: tuple[str, ...]
    state: str
    outcome: str | None
    ignore_reason: str | None
    escalation_level: int
    drill: bool
    author_id: int | None  # the author of the case's first mention
    created_at: datetime
    first_touched_at: datetime | None
    approved_at: datetime | None
    published_at: datetime | None
    closed_at: datetime | None
    first_touch_due_at: datetime | None
    answer_due_at: datetime | None
    assignee: str | None = None  # staff id of who owns (or last owned) the case

    @property
    def answered(self) -> bool:
        if self.published_at is not None:
            return True
        return (
            self.closed_at is not None
            and self.outcome is not None
            and Outcome(self.outcome) in ANSWERED_OUTCOMES
        )

    @property
    def open(self) -> bool:
        return CaseState(self.state).is_open

    @property
    def not_negative(self) -> bool:
        return self.ignore_reason == IgnoreReason.NOT_NEGATIVE.value

    @property
    def minutes_to_first_touch(self) -> int | None:
        return _minutes(self.created_at, self.first_touched_at)

    @property
    def minutes_to_answer(self) -> int | None:
        return _minutes(self.created_at, self.approved_at)

    def first_touch_met(self, now: datetime) -> bool | None:
        done = [m for m in (self.first_touched_at, self.closed_at) if m is not None]
        return _kept(self.first_touch_due_at, min(done) if done else None, now)

    def answer_met(self, now: datetime) -> bool | None:
        done = [m for m in (self.approved_at, self.closed_at) if m is not None]
        return _kept(self.answer_due_at, min(done) if done else None, now)

    def sla_met(self, now: datetime) -> bool | None:
        """False if a deadline was missed; True once every deadline was kept; else None."""
        pairs = (
            (self.first_touch_due_at, self.first_touch_met(now)),
            (self.answer_due_at, self.answer_met(now)),
        )
        verdicts = [verdict for due, verdict in pairs if due is not None]
        if False in verdicts:
            return False
        if not verdicts or None in verdicts:
            return None
        return True


@dataclass(frozen=True, slots=True)
class ExportAuthor:
    id: int
    name: str
    identities: tuple[str, ...]  # "channel:external id"
    labels: tuple[str, ...]
    negative_count: int
    neutral_count: int
    positive_count: int
    first_seen_at: datetime | None
    last_seen_at: datetime | None


@dataclass(slots=True)
class SummaryRow:
    """One department's figures (department None: all of them)."""

    department: str | None
    cases: int = 0
    answered: int = 0
    open: int = 0
    not_negative: int = 0
    sla_decided: int = 0
    sla_met: int = 0
    first_touch_minutes: list[int] = field(default_factory=list)
    answer_minutes: list[int] = field(default_factory=list)

    @property
    def sla_share(self) -> float | None:
        return self.sla_met / self.sla_decided if self.sla_decided else None

    @property
    def first_touch_median(self) -> int | None:
        return percentile(self.first_touch_minutes, 0.5)

    @property
    def first_touch_p90(self) -> int | None:
        return percentile(self.first_touch_minutes, 0.9)

    @property
    def answer_median(self) -> int | None:
        return percentile(self.answer_minutes, 0.5)

    @property
    def answer_p90(self) -> int | None:
        return percentile(self.answer_minutes, 0.9)

    def add(self, case: ExportCase, now: datetime) -> None:
        self.cases += 1
        self.answered += case.answered
        self.open += case.open
        self.not_negative += case.not_negative
        verdict = case.sla_met(now)
        if verdict is not None:
            self.sla_decided += 1
            self.sla_met += verdict
        if case.minutes_to_first_touch is not None:
            self.first_touch_minutes.append(case.minutes_to_first_touch)
        if case.minutes_to_answer is not None:
            self.answer_minutes.append(case.minutes_to_answer)


@dataclass(slots=True)
class ReportSummary:
    period: Period
    departments: dict[str, SummaryRow] = field(default_factory=dict)
    total: SummaryRow = field(default_factory=lambda: SummaryRow(None))
    drill: int = 0  # drill cases: exported, flagged, not counted above
    # Cases per code, a code as the case keeps it ("topic:heating", or a source's "heating")
    codes: Counter[str] = field(default_factory=Counter)
    # Per assignee's staff id ("" for nobody): the cases and, of them, those still open
    assignees: dict[str, SummaryRow] = field(default_factory=dict)

    def rows(self) -> list[SummaryRow]:
        return [self.departments[d] for d in sorted(self.departments)] + [self.total]

    def code_rows(self) -> list[tuple[str, str, int]]:
        """(dimension, code, cases): chat-set codes by dimension, then plain codes under
        dimension "", each most frequent first."""
        rows = [(*_split_code(code), cases) for code, cases in self.codes.items()]
        return sorted(rows, key=lambda r: (r[0] == "", r[0], -r[2], r[1]))

    def assignee_rows(self) -> list[SummaryRow]:
        """Per assignee (department field: the staff id, "" for nobody), most cases first."""
        return sorted(self.assignees.values(), key=lambda r: (-r.cases, r.department or ""))


def summarise(period: Period, cases: Iterable[ExportCase], now: datetime) -> ReportSummary:
    summary = ReportSummary(period)
    add_to_summary(summary, cases, now)
    return summary


def add_to_summary(summary: ReportSummary, cases: Iterable[ExportCase], now: datetime) -> None:
    for case in cases:
        if case.drill:
            summary.drill += 1
            continue
        row = summary.departments.get(case.department)
        if row is None:
            row = summary.departments[case.department] = SummaryRow(case.department)
        row.add(case, now)
        summary.total.add(case, now)
        summary.codes.update(dict.fromkeys(case.codes, 1))
        who = case.assignee or ""
        mine = summary.assignees.get(who)
        if mine is None:
            mine = summary.assignees[who] = SummaryRow(who)
        mine.add(case, now)


def _split_code(code: str) -> tuple[str, str]:
    dimension, colon, rest = code.partition(":")
    return (dimension, rest) if colon else ("", code)


def percentile(values: list[int], share: float) -> int | None:
    """Nearest rank: the value at rank ceil(share·n) of the sorted values (as the digest)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def export_period(first: date, last: date, tz: ZoneInfo) -> Period:
    """Whole local days from `first` through `last`, as UTC moments."""
    if last < first:
        raise ValueError(f"the period ends ({last}) before it starts ({first})")
    start = datetime.combine(first, time(0), tz)
    end = datetime.combine(last + timedelta(days=1), time(0), tz)
    return Period(start, end)


def _minutes(start: datetime, end: datetime | None) -> int | None:
    if end is None:
        return None
    return max(0, int((end - start).total_seconds() // 60))


def _kept(due: datetime | None, done: datetime | None, now: datetime) -> bool | None:
    if due is None:
        return None
    if done is not None and done <= due:
        return True
    if done is not None or due <= now:
        return False
    return None  # still ahead
