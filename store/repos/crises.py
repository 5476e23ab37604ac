"""Crises and the counts they are judged by: aggregate SQL over mentions, on both backends.

What a negative mention counts toward:
- scope all: every negative mention received in the window, with or without a case;
- department: the department of the case it opened or joined (its current owner, so a
  rerouted case counts where it went); a mention without a case has no department;
- code: each code on the mention itself. Intake stores the mention's codes together with the
  codes its routing rule adds, so these are the case's codes as well.
Mentions of drill cases count nowhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from bot.crisis.checklist import CHECKLIST_KINDS, ChecklistTick, tick_of
from bot.crisis.thresholds import CountWindow, Crisis, WindowCounts
from bot.model import ClusterCount, Sentiment, TrendWindows
from bot.settings.crisis_rules import ThresholdScope
from store.driver import json_elements
from store.mappers import crisis_from_row, event_from_row, fill_crisis_row
from store.models import CaseRow, CrisisRow, EventRow, MentionRow

# Enough clusters to find the new ones beyond the largest; a storm has a few dozen at most.
CLUSTERS_READ = 200


class SqlCrisisRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # --- counting ---

    def _negative_in(self, window: CountWindow) -> list[ColumnElement[bool]]:
        return [
            MentionRow.sentiment == Sentiment.NEGATIVE.value,
            MentionRow.received_at >= window.start,
            MentionRow.received_at < window.end,
            or_(CaseRow.id.is_(None), CaseRow.drill == false()),
        ]

    def _codes_of_mention(self) -> Any:
        sqlite = self._session.get_bind().dialect.name != "postgresql"
        return json_elements(MentionRow.codes, sqlite=sqlite)

    async def window_counts(self, windows: Sequence[CountWindow]) -> list[WindowCounts]:
        results = []
        codes = self._codes_of_mention()
        for window in windows:
            where = self._negative_in(window)
            # The received_at index narrows each window; a case is joined by primary key.
            per_department = await self._session.execute(
                select(CaseRow.department, func.count())
                .select_from(MentionRow)
                .outerjoin(CaseRow, CaseRow.id == MentionRow.case_id)
                .where(*where)
                .group_by(CaseRow.department)
            )
            by_department: dict[str, int] = {}
            total = 0
            for department, count in per_department:
                total += count
                if department is not None:
                    by_department[department] = count
            by_code: dict[str, int] = defaultdict(int)
            if total:
                per_code = await self._session.execute(
                    select(codes.c.value, func.count())
                    .select_from(MentionRow)
                    .outerjoin(CaseRow, CaseRow.id == MentionRow.case_id)
                    .join(codes, true())
                    .where(*where)
                    .group_by(codes.c.value)
                )
                for code, count in per_code:
                    by_code[str(code).casefold()] += count
            results.append(WindowCounts(total, by_department, dict(by_code)))
        return results

    # --- clusters (bot/crisis/storm.py) ---

    async def clusters(
        self,
        since: datetime,
        trend: TrendWindows,
        *,
        scope: ThresholdScope = ThresholdScope.ALL,
        key: str | None = None,
        negative_only: bool = True,
        limit: int = CLUSTERS_READ,
    ) -> list[ClusterCount]:
        """Cases that more than one mention received in [since, trend.end) joined (or that
        similar mentions joined), largest first, with their authors and the mentions of each
        trend window. Drill cases are left out. Negative only (a crisis's storm) reads the
        crisis counting's index; all mentions (a digest's period) is read once a day."""
        received = MentionRow.received_at
        where: list[ColumnElement[bool]] = [
            received >= since,
            received < trend.end,
            CaseRow.drill == false(),
        ]
        if negative_only:
            where.append(MentionRow.sentiment == Sentiment.NEGATIVE.value)
        if scope is ThresholdScope.DEPARTMENT:
            where.append(CaseRow.department == (key or ""))
        query = (
            select(
                MentionRow.case_id,
                CaseRow.department,
                func.count().label("mentions"),
                func.count(func.distinct(MentionRow.author_id)),
                func.min(received),
                func.max(received),
                func.sum(case((received >= trend.recent_start, 1), else_=0)),
                func.sum(
                    case(
                        (
                            (received >= trend.previous_start) & (received < trend.recent_start),
                            1,
                        ),
                        else_=0,
                    )
                ),
            )
            .select_from(MentionRow)
            .join(CaseRow, CaseRow.id == MentionRow.case_id)
        )
        if scope is ThresholdScope.CODE:
            codes = self._codes_of_mention()
            query = query.join(codes, true())
            where.append(func.lower(codes.c.value) == (key or "").casefold())
        rows = await self._session.execute(
            query.where(*where)
            .group_by(MentionRow.case_id, CaseRow.department)
            .having(or_(func.count() > 1, func.max(CaseRow.similar_count) > 0))
            .order_by(func.count().desc(), MentionRow.case_id)
            .limit(limit)
        )
        return [
            ClusterCount(
                case_id=int(case_id),
                department=str(department),
                mentions=int(mentions),
                people=int(people),
                first_at=first_at,
                last_at=last_at,
                recent=int(recent or 0),
                previous=int(previous or 0),
            )
            for case_id, department, mentions, people, first_at, last_at, recent, previous in rows
        ]

    # --- crises ---

    async def open(self) -> list[Crisis]:
        """Open real crises: a drill's crisis is found by its run (of_drill)."""
        rows = await self._session.scalars(
            select(CrisisRow)
            .where(CrisisRow.closed_at.is_(None), CrisisRow.drill.is_(false()))
            .order_by(CrisisRow.id)
        )
        return [crisis_from_row(row) for row in rows]

    async def of_drill(self, run_id: int) -> Crisis | None:
        """The crisis drill run N opened, open or closed; None if it opened none."""
        row = await self._session.scalar(
            select(CrisisRow)
            .where(CrisisRow.drill_run_id == run_id)
            .order_by(CrisisRow.id)
            .limit(1)
        )
        return crisis_from_row(row) if row is not None else None

    async def get(self, crisis_id: int) -> Crisis | None:
        row = await self._session.get(CrisisRow, crisis_id)
        return crisis_from_row(row) if row is not None else None

    async def add(self, crisis: Crisis) -> Crisis:
        row = CrisisRow()
        fill_crisis_row(row, crisis)
        self._session.add(row)
        await self._session.flush()
        return crisis_from_row(row)

    async def save(self, crisis: Crisis) -> None:
        assert crisis.id is not None
        row = await self._session.get(CrisisRow, crisis.id)
        if row is None:
            raise KeyError(f"no crisis {crisis.id}")
        fill_crisis_row(row, crisis)
        await self._session.flush()

    async def between(self, since: datetime, until: datetime) -> list[Crisis]:
        """Real crises open at any time in [since, until); drills' crises are left out."""
        rows = await self._session.scalars(
            select(CrisisRow)
            .where(
                CrisisRow.drill.is_(false()),
                CrisisRow.opened_at < until,
                or_(CrisisRow.closed_at.is_(None), CrisisRow.closed_at >= since),
            )
            .order_by(CrisisRow.opened_at, CrisisRow.id)
        )
        return [crisis_from_row(row) for row in rows]

    # --- the checklist (events: bot/crisis/checklist.py has the contract) ---

    async def checklist_events(
        self, crisis_ids: Sequence[int], since: datetime
    ) -> list[ChecklistTick]:
        """Checklist ticks and unticks of these crises, oldest first. `since`: the earliest
        opening among them; no tick can be older, and `at` is indexed where `kind` is not."""
        if not crisis_ids:
            return []
        rows = await self._session.scalars(
            select(EventRow)
            .where(
                EventRow.at >= since,
                EventRow.case_id.is_(None),
                EventRow.kind.in_(CHECKLIST_KINDS),
            )
            .order_by(EventRow.id)
        )
        wanted = set(crisis_ids)
        ticks = (tick_of(event_from_row(row)) for row in rows)
        return [tick for tick in ticks if tick is not None and tick.crisis_id in wanted]
