"""SLA timers in SQL. Bulk by design: arming 100,000 cases is a few statements per chunk."""

from __future__ import annotations

from collections import defaultdict, namedtuple
from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.model import Case
from bot.sla.timers import Timer
from store.driver import chunks, in_list, insert_rows, one_of, select_rows
from store.mappers import case_from_row, timer_from_row, timer_values
from store.models import CaseRow, TimerRow

_TIMERS = cast(Table, TimerRow.__table__)
_CASES = cast(Table, CaseRow.__table__)
_CASE_COLUMNS = tuple(column.name for column in _CASES.c)
# Named tuples of every column, for the mappers: mypy cannot type fields known at import.
_CaseValues = namedtuple("_CaseValues", _CASE_COLUMNS)  # type: ignore[misc]
_TIMER_COLUMNS = tuple(column.name for column in _TIMERS.c)
_TimerValues = namedtuple("_TimerValues", _TIMER_COLUMNS)  # type: ignore[misc]
_ARMED = ("case_id", "kind", "due_at", "payload", "key", "fired_at")  # timer_values' columns


class SqlTimerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def pending_for(self, case_ids: Sequence[int]) -> dict[int, list[Timer]]:
        found: dict[int, list[Timer]] = defaultdict(list)
        for chunk in chunks(case_ids):
            query = select(_TIMERS).where(
                one_of(self._s, _TIMERS.c.case_id, chunk), _TIMERS.c.fired_at.is_(None)
            )
            for row in (await self._s.execute(query)).all():
                found[row.case_id].append(timer_from_row(row))
        return dict(found)

    async def add_many(self, timers: Sequence[Timer]) -> int:
        if not timers:
            return 0
        # Straight to the driver (store/driver.py): one statement for all on PostgreSQL.
        added = 0
        for chunk in chunks(timers, 5_000):
            rows = timer_values(chunk)
            # Counted from the keys: executemany's rowcount is not reliable on every driver.
            keys = {row["key"] for row in rows}
            known = 0
            for part in chunks(sorted(keys)):
                found = await self._s.execute(
                    select(_TIMERS.c.key).where(one_of(self._s, _TIMERS.c.key, part))
                )
                known += len(found.all())
            values = [tuple(row[name] for name in _ARMED) for row in rows]
            await insert_rows(self._s, _TIMERS, _ARMED, values, skip_conflicts_on="key")
            added += len(keys) - known
        return added

    async def cases_of(self, case_ids: Sequence[int]) -> dict[int, Case]:
        """The cases timers belong to, without their drafts: what firing needs to decide
        (state, deadlines, level). Read past Core (store.driver): the SLA clock reads
        thousands at once."""
        found: dict[int, Case] = {}
        for chunk in chunks(case_ids):
            where = f"id IN ({in_list(len(chunk))})"
            rows = await select_rows(
                self._s, _CASES, _CASE_COLUMNS, where, chunk, ("id",) * len(chunk)
            )
            for values in rows:
                case = case_from_row(_CaseValues(*values), ())  # type: ignore[arg-type]  # a CaseRow's columns
                assert case.id is not None
                found[case.id] = case
        return found

    async def delete(self, timer_ids: Sequence[int]) -> None:
        for chunk in chunks(timer_ids):
            await self._s.execute(
                delete(_TIMERS).where(_TIMERS.c.id.in_(chunk), _TIMERS.c.fired_at.is_(None))
            )

    async def due(self, now: datetime, limit: int) -> list[Timer]:
        where = f"fired_at IS NULL AND due_at <= ? ORDER BY due_at, id LIMIT {int(limit)}"
        if self._s.get_bind().dialect.name == "postgresql":
            # Several instances run the SLA clock: the rows stay locked until the transaction
            # that fires them commits, and another instance skips them instead of waiting,
            # then (re-reading a row whose firing committed meanwhile) finds it fired. So
            # each timer fires once. SQLite: one process, one writer.
            where += " FOR UPDATE SKIP LOCKED"
        rows = await select_rows(self._s, _TIMERS, _TIMER_COLUMNS, where, (now,), ("due_at",))
        return [timer_from_row(_TimerValues(*values)) for values in rows]

    async def mark_fired(self, timer_ids: Sequence[int], at: datetime) -> None:
        for chunk in chunks(timer_ids):
            await self._s.execute(
                update(_TIMERS).where(_TIMERS.c.id.in_(chunk)).values(fired_at=at)
            )

    async def next_due(self) -> datetime | None:
        # ORDER BY … LIMIT 1 rides the pending index and keeps the column's UTC type (MIN()
        # would hand SQLite's text back).
        query = (
            select(_TIMERS.c.due_at)
            .where(_TIMERS.c.fired_at.is_(None))
            .order_by(_TIMERS.c.due_at)
            .limit(1)
        )
        return cast(datetime | None, (await self._s.execute(query)).scalar())
