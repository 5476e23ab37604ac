"""Aggregate queries for digests and exports (bot.reports.figures.ReportRepository).

Every figure is computed by the database: GROUP BY for counts, ROW_NUMBER/COUNT OVER for
percentiles, JSON array expansion for codes. Each query reads one indexed slice (a period of
one timestamp column, see migration 0006) and returns at most a few hundred rows.

Two things differ per dialect: the seconds between two timestamps (julianday on SQLite,
EXTRACT(EPOCH ...) on PostgreSQL), switched here, and the function that expands a JSON array
into rows (store.driver.json_elements).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Text,
    and_,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy import case as sql_case
from sqlalchemy.ext.asyncio import AsyncSession

from bot.crisis.checklist import checklist_state
from bot.model import (
    TERMINAL_STATES,
    Action,
    AuthorLabel,
    CaseState,
    IgnoreReason,
    Sentiment,
)
from bot.reports.figures import (
    ANSWERED_OUTCOMES,
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
from store.driver import json_elements
from store.mappers import author_seen, crisis_span
from store.models import AuthorRow, CaseRow, CrisisRow, EventRow, MentionRow, UTCDateTime
from store.repos.cases import current_due
from store.repos.crises import SqlCrisisRepository

OPEN_STATES = tuple(s.value for s in CaseState if s not in TERMINAL_STATES)
_ANSWERED = tuple(o.value for o in ANSWERED_OUTCOMES)


class SqlReportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session
        bind = session.bind
        self._sqlite = bind is not None and bind.dialect.name == "sqlite"

    # --- dialect switch -------------------------------------------------------------------

    def _seconds(self, later: Any, earlier: Any) -> ColumnElement[Any]:
        if self._sqlite:
            return (func.julianday(later) - func.julianday(earlier)) * 86400.0
        return func.extract("epoch", later - earlier)

    def _array_values(self, column: Any) -> Any:
        return json_elements(column, sqlite=self._sqlite).alias("item")

    @staticmethod
    def _moment(value: datetime) -> ColumnElement[Any]:
        return literal(value, UTCDateTime())

    # --- cases ------------------------------------------------------------------------------

    async def case_counts(self, period: Period, now: datetime) -> list[CaseCounts]:
        counts: dict[tuple[str, str], dict[str, int]] = {}

        def add(rows: Sequence[Any], *names: str) -> None:
            for dept, source, *values in rows:
                slot = counts.setdefault((dept, source), {})
                for name, value in zip(names, values, strict=True):
                    slot[name] = int(value or 0)

        live = CaseRow.drill.is_(false())
        group = (CaseRow.department, CaseRow.source)
        new = await self._s.execute(
            select(*group, func.count())
            .where(live, *_within(CaseRow.created_at, period))
            .group_by(*group)
        )
        add(new.all(), "new")
        answered = await self._s.execute(
            select(*group, func.count())
            .where(
                live,
                or_(
                    and_(*_within(CaseRow.published_at, period)),
                    and_(
                        CaseRow.published_at.is_(None),
                        CaseRow.outcome.in_(_ANSWERED),
                        *_within(CaseRow.closed_at, period),
                    ),
                ),
            )
            .group_by(*group)
        )
        add(answered.all(), "answered")
        ignored = await self._s.execute(
            select(*group, func.count())
            .where(
                live,
                CaseRow.ignore_reason == IgnoreReason.NOT_NEGATIVE.value,
                *_within(CaseRow.closed_at, period),
            )
            .group_by(*group)
        )
        add(ignored.all(), "not_negative")
        open_now = await self._s.execute(
            select(*group, func.count(), func.sum(sql_case((current_due() < now, 1), else_=0)))
            .where(live, CaseRow.state.in_(OPEN_STATES))
            .group_by(*group)
        )
        add(open_now.all(), "open", "overdue")
        return [
            CaseCounts(dept, source, **values) for (dept, source), values in sorted(counts.items())
        ]

    async def sla(self, period: Period, now: datetime) -> list[SlaCounts]:
        decided = Period(period.start, min(period.end, now))  # deadlines still ahead don't count
        live = CaseRow.drill.is_(false())
        result: dict[str, dict[str, int]] = {}
        # (deadline, the moment that keeps it) per kind. Closing or ignoring a case in time
        # keeps them too: nothing more is owed.
        kinds = (
            ("first_touch", CaseRow.first_touch_due_at, CaseRow.first_touched_at),
            ("answer", CaseRow.answer_due_at, CaseRow.approved_at),
            ("reaction", CaseRow.reaction_due_at, CaseRow.reacted_at),
        )
        for kind, due_at, done_at in kinds:
            kept = or_(done_at <= due_at, CaseRow.closed_at <= due_at)
            rows = await self._s.execute(
                select(CaseRow.department, func.count(), func.sum(sql_case((kept, 1), else_=0)))
                .where(live, *_within(due_at, decided))
                .group_by(CaseRow.department)
            )
            for dept, due, met in rows.all():
                result.setdefault(dept, {}).update(
                    {f"{kind}_due": int(due), f"{kind}_met": int(met)}
                )
        return [SlaCounts(dept, **values) for dept, values in sorted(result.items())]

    async def response_times(self, period: Period) -> list[ResponseTimes]:
        first = await self._durations(CaseRow.first_touched_at, period)
        answer = await self._durations(CaseRow.approved_at, period)
        departments = sorted(d for d in {*first, *answer} if d is not None)
        rows = [
            ResponseTimes(dept, first.get(dept, Durations()), answer.get(dept, Durations()))
            for dept in departments
        ]
        rows.append(
            ResponseTimes(None, first.get(None, Durations()), answer.get(None, Durations()))
        )
        return rows

    async def _durations(self, moment: Any, period: Period) -> dict[str | None, Durations]:
        """Nearest-rank percentiles in SQL, per department and (key None) for all: the value at
        rank ceil(p·n) of the sorted durations, found with ROW_NUMBER and COUNT over the same
        partition. The durations are read once (a materialized CTE) for both."""
        base = (
            select(
                CaseRow.department.label("department"),
                self._seconds(moment, CaseRow.created_at).label("s"),
            )
            .where(CaseRow.drill.is_(false()), *_within(moment, period))
            .cte("durations")
            .prefix_with("MATERIALIZED")
        )

        def summary(by_department: bool) -> Any:
            partition = [base.c.department] if by_department else None
            dept = base.c.department if by_department else literal(None, Text)
            ranked = select(
                dept.label("department"),
                base.c.s,
                func.row_number().over(partition_by=partition, order_by=base.c.s).label("rn"),
                func.count().over(partition_by=partition).label("n"),
            ).subquery()

            def at_rank(percent: int) -> ColumnElement[Any]:
                rank = (ranked.c.n * percent + 99) // 100  # integer ceil(n·p)
                return func.max(sql_case((ranked.c.rn == cast(rank, Integer), ranked.c.s)))

            return select(
                ranked.c.department, func.max(ranked.c.n), at_rank(50), at_rank(90)
            ).group_by(ranked.c.department)

        rows = await self._s.execute(union_all(summary(True), summary(False)))
        return {
            dept: Durations(int(n), _round(median), _round(p90))
            for dept, n, median, p90 in rows.all()
        }

    async def oldest_open(self, limit: int) -> list[OpenCase]:
        rows = await self._s.execute(
            select(
                CaseRow.id,
                CaseRow.department,
                CaseRow.source,
                CaseRow.state,
                CaseRow.priority,
                CaseRow.created_at,
                CaseRow.codes,
            )
            .where(CaseRow.drill.is_(false()), CaseRow.state.in_(OPEN_STATES))
            .order_by(CaseRow.created_at, CaseRow.id)
            .limit(limit)
        )
        return [
            OpenCase(id_, dept, source, state, priority, created, tuple(codes or ()))
            for id_, dept, source, state, priority, created, codes in rows.all()
        ]

    async def not_negative(self, period: Period, limit: int) -> list[Correction]:
        actor = (
            select(EventRow.actor)
            .where(EventRow.case_id == CaseRow.id, EventRow.kind == Action.IGNORE.value)
            .order_by(EventRow.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        rows = await self._s.execute(
            select(CaseRow.id, CaseRow.department, CaseRow.source, CaseRow.closed_at, actor)
            .where(
                CaseRow.drill.is_(false()),
                CaseRow.ignore_reason == IgnoreReason.NOT_NEGATIVE.value,
                *_within(CaseRow.closed_at, period),
            )
            .order_by(CaseRow.closed_at.desc(), CaseRow.id.desc())
            .limit(limit)
        )
        return [Correction(*row) for row in rows.all()]

    async def top_codes(self, period: Period, limit: int) -> list[CodeCount]:
        item = self._array_values(CaseRow.codes)
        cases = func.count().label("cases")
        rows = await self._s.execute(
            select(item.c.value, cases)
            .select_from(CaseRow)
            .join(item, true())
            .where(CaseRow.drill.is_(false()), *_within(CaseRow.created_at, period))
            .group_by(item.c.value)
            .order_by(cases.desc(), item.c.value)
            .limit(limit)
        )
        return [CodeCount(str(code), int(n)) for code, n in rows.all()]

    # --- mentions ---------------------------------------------------------------------------

    def _negative_in(self, period: Period) -> list[ColumnElement[bool]]:
        return [
            MentionRow.sentiment == Sentiment.NEGATIVE.value,
            *_within(MentionRow.received_at, period),
            or_(MentionRow.case_id.is_(None), CaseRow.drill.is_(false())),
        ]

    async def negative_by_hour(self, period: Period) -> list[HourCount]:
        seconds = self._seconds(MentionRow.received_at, self._moment(period.start))
        if self._sqlite:
            # A millisecond of slack: julianday arithmetic is not exact at the hour.
            hour = cast((seconds + 0.001) / 3600, Integer).label("hour")
        else:
            hour = cast(func.floor(seconds / 3600), Integer).label("hour")
        rows = await self._s.execute(
            select(CaseRow.department, hour, func.count())
            .select_from(MentionRow)
            .outerjoin(CaseRow, CaseRow.id == MentionRow.case_id)
            .where(*self._negative_in(period))
            .group_by(CaseRow.department, hour)
        )
        return sorted(
            (HourCount(dept, int(h), int(n)) for dept, h, n in rows.all()),
            key=lambda c: (c.department or "", c.hour),
        )

    async def negative_mentions(self, period: Period) -> int:
        count = await self._s.scalar(
            select(func.count())
            .select_from(MentionRow)
            .outerjoin(CaseRow, CaseRow.id == MentionRow.case_id)
            .where(*self._negative_in(period))
        )
        return int(count or 0)

    # --- authors and crises -----------------------------------------------------------------

    def _author_mentions(self, period: Period, negative: bool) -> Any:
        where = [
            MentionRow.author_id == AuthorRow.id,
            *_within(MentionRow.received_at, period),
            _not_drill(),
        ]
        if negative:
            where.append(MentionRow.sentiment == Sentiment.NEGATIVE.value)
        return select(func.count()).select_from(MentionRow).where(*where).scalar_subquery()

    async def labelled_authors(
        self, period: Period, labels: Sequence[AuthorLabel], limit: int
    ) -> list[AuthorSeen]:
        if not labels:
            return []
        # Labels are a short JSON list of known words: a quoted match is exact.
        text = cast(AuthorRow.labels, Text)
        seen = (
            select(
                AuthorRow.id,
                AuthorRow.display_name,
                AuthorRow.labels,
                self._author_mentions(period, negative=False).label("mentions"),
                self._author_mentions(period, negative=True).label("negative"),
            )
            .where(
                AuthorRow.last_seen_at >= period.start,  # cheap pre-filter; counts decide
                or_(*(text.like(f'%"{label.value}"%') for label in labels)),
            )
            .subquery()
        )
        rows = await self._s.execute(
            select(seen)
            .where(seen.c.mentions > 0)
            .order_by(seen.c.negative.desc(), seen.c.mentions.desc(), seen.c.id)
            .limit(limit)
        )
        return [author_seen(*row) for row in rows.all()]

    async def recurring_authors(
        self, period: Period, min_negative: int, limit: int
    ) -> list[AuthorSeen]:
        negative = func.count().label("negative")
        top = (
            select(MentionRow.author_id, negative)
            .where(
                MentionRow.sentiment == Sentiment.NEGATIVE.value,
                *_within(MentionRow.received_at, period),
                _not_drill(),
            )
            .group_by(MentionRow.author_id)
            .having(func.count() >= min_negative)
            .order_by(negative.desc(), MentionRow.author_id)
            .limit(limit)
            .subquery()
        )
        rows = await self._s.execute(
            select(
                AuthorRow.id,
                AuthorRow.display_name,
                AuthorRow.labels,
                self._author_mentions(period, negative=False),
                top.c.negative,
            )
            .join(top, top.c.author_id == AuthorRow.id)
            .order_by(top.c.negative.desc(), AuthorRow.id)
        )
        return [author_seen(*row) for row in rows.all()]

    async def crises(self, period: Period) -> list[CrisisSpan]:
        rows = await self._s.scalars(
            select(CrisisRow)
            .where(
                CrisisRow.drill.is_(false()),
                CrisisRow.opened_at < period.end,
                or_(CrisisRow.closed_at.is_(None), CrisisRow.closed_at >= period.start),
            )
            .order_by(CrisisRow.opened_at, CrisisRow.id)
        )
        spans = [crisis_span(row) for row in rows]
        if not spans:
            return spans
        ticks = await SqlCrisisRepository(self._s).checklist_events(
            [span.id for span in spans], min(span.opened_at for span in spans)
        )
        done_at: dict[int, list[datetime]] = {}
        for span in spans:
            state = checklist_state(t for t in ticks if t.crisis_id == span.id)
            done_at[span.id] = sorted(tick.at for tick in state.values())
        return [replace(span, checklist_done_at=tuple(done_at[span.id])) for span in spans]


def _not_drill() -> ColumnElement[bool]:
    """A mention that belongs to no drill case: drills count in no author's history."""
    drill_case = select(CaseRow.id).where(CaseRow.id == MentionRow.case_id, CaseRow.drill)
    return ~exists(drill_case)


def _within(column: Any, period: Period) -> list[ColumnElement[bool]]:
    return [column >= period.start, column < period.end]


def _round(seconds: Any) -> float | None:
    # julianday arithmetic leaves microsecond noise; figures are shown in minutes anyway.
    return None if seconds is None else float(round(float(seconds), 3))
