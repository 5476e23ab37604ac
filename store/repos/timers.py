"""SLA timers in SQL. Bulk by design: arming 100,000 cases is a few statements per chunk."""

from __future__ import annotations

from collections import defaultdict, namedtuple
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.model import Case
from bot.sla.timers import Timer, TimerKind
from store.driver import in_list, select_rows
from store.models import CaseRow, TimerRow
from store.repositories import _case_from_row

_TIMERS = cast(Table, TimerRow.__table__)
_CASES = cast(Table, CaseRow.__table__)
_CASE_COLUMNS = tuple(column.name for column in _CASES.c)
_CaseValues = namedtuple("_CaseValues", _CASE_COLUMNS)  # type: ignore[misc]
_TIMER_COLUMNS = tuple(column.name for column in _TIMERS.c)
_TimerValues = namedtuple("_TimerValues", _TIMER_COLUMNS)  # type: ignore[misc]
# Well under every backend's limit of bound parameters per statement (7 columns a row).
_CHUNK = 500


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _timer(row: Any) -> Timer:
    return Timer(
        case_id=row.case_id,
        kind=TimerKind(row.kind),
        due_at=row.due_at,
        key=row.key,
        payload=dict(row.payload or {}),
        id=row.id,
        fired_at=row.fired_at,
    )


class SqlTimerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def pending_for(self, case_ids: Sequence[int]) -> dict[int, list[Timer]]:
        found: dict[int, list[Timer]] = defaultdict(list)
        for chunk in _chunks(case_ids):
            query = select(_TIMERS).where(
                _TIMERS.c.case_id.in_(chunk), _TIMERS.c.fired_at.is_(None)
            )
            for row in (await self._s.execute(query)).all():
                found[row.case_id].append(_timer(row))
        return dict(found)

    async def add_many(self, timers: Sequence[Timer]) -> int:
        if not timers:
            return 0
        dialect = self._s.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        # One cached statement, executemany: a multi-row VALUES is compiled anew each time.
        statement = insert(_TIMERS).on_conflict_do_nothing(index_elements=["key"])
        added = 0
        for chunk in _chunks(timers, 5_000):
            rows = [
                {
                    "case_id": t.case_id,
                    "kind": t.kind.value,
                    "due_at": t.due_at,
                    "payload": t.payload,
                    "key": t.key,
                    "fired_at": t.fired_at,
                }
                for t in chunk
            ]
            # Counted from the keys: executemany's rowcount is not reliable on every driver.
            keys = {row["key"] for row in rows}
            known = 0
            for part in _chunks(sorted(keys)):
                found = await self._s.execute(select(_TIMERS.c.key).where(_TIMERS.c.key.in_(part)))
                known += len(found.all())
            await self._s.execute(statement, rows)
            added += len(keys) - known
        return added

    async def cases_of(self, case_ids: Sequence[int]) -> dict[int, Case]:
        """The cases timers belong to, without their drafts: what firing needs to decide
        (state, deadlines, level). Read past Core (store.driver): the SLA clock reads
        thousands at once."""
        found: dict[int, Case] = {}
        for chunk in _chunks(case_ids):
            where = f"id IN ({in_list(len(chunk))})"
            rows = await select_rows(
                self._s, _CASES, _CASE_COLUMNS, where, chunk, ("id",) * len(chunk)
            )
            for values in rows:
                case = _case_from_row(_CaseValues(*values), ())  # type: ignore[arg-type]
                assert case.id is not None
                found[case.id] = case
        return found

    async def delete(self, timer_ids: Sequence[int]) -> None:
        for chunk in _chunks(timer_ids):
            await self._s.execute(
                delete(_TIMERS).where(_TIMERS.c.id.in_(chunk), _TIMERS.c.fired_at.is_(None))
            )

    async def due(self, now: datetime, limit: int) -> list[Timer]:
        where = f"fired_at IS NULL AND due_at <= ? ORDER BY due_at, id LIMIT {int(limit)}"
        rows = await select_rows(self._s, _TIMERS, _TIMER_COLUMNS, where, (now,), ("due_at",))
        return [_timer(_TimerValues(*values)) for values in rows]

    async def mark_fired(self, timer_ids: Sequence[int], at: datetime) -> None:
        for chunk in _chunks(timer_ids):
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
