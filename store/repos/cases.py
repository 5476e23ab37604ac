"""Cases and their drafts: a case is saved only from the version it was read at."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    and_,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy import case as sql_case
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages.outbox import UNDELIVERED, OutboxOp, OutboxStatus
from bot.model import TERMINAL_STATES, Case, CaseState, Draft
from bot.ports import ConcurrentUpdate, DepartmentStatus
from store.driver import chunks, driver_sql, insert_rows, one_of, raced, rowcount
from store.mappers import (
    CASE_COLUMNS,
    case_from_row,
    case_row,
    case_values,
    draft_from_row,
    draft_values,
)
from store.models import CaseRow, DraftRow, MessageRefRow, OutboxRow

_CASES = cast(Table, CaseRow.__table__)
_NEXT_CASE_IDS = (
    f"SELECT nextval(pg_get_serial_sequence('{_CASES.name}', 'id')) FROM generate_series(1, ?)"
)


def _as_utc(value: Any) -> datetime:
    """Aggregates bypass the column type: SQLite hands back text, PostgreSQL a datetime."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def current_due() -> ColumnElement[Any]:
    """The deadline that matters now, as /status reads it: the first reply until the author got
    one, then the approved answer, then resolution."""
    return sql_case(
        (CaseRow.first_touched_at.is_(None), CaseRow.first_touch_due_at),
        (CaseRow.approved_at.is_(None), CaseRow.answer_due_at),
        else_=CaseRow.resolution_due_at,
    )


class SqlCaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, case: Case) -> Case:
        row = CaseRow(**case_values(case))
        self._s.add(row)
        await self._s.flush()
        for draft in case.drafts:
            self._s.add(DraftRow(case_id=row.id, **draft_values(draft)))
        await self._s.flush()
        return case_from_row(row, case.drafts)

    async def add_many(self, cases: Sequence[Case]) -> list[Case]:
        if not cases:
            return []
        if any(case.drafts for case in cases):
            raise ValueError("add_many takes new cases, without drafts")
        if self._s.get_bind().dialect.name == "postgresql":
            return await self._add_numbered(cases)
        statement = insert(CaseRow).returning(CaseRow.id, sort_by_parameter_order=True)
        ids = (await self._s.execute(statement, [case_values(c) for c in cases])).scalars()
        return [replace(case, id=int(new_id)) for case, new_id in zip(cases, ids, strict=True)]

    async def _add_numbered(self, cases: Sequence[Case]) -> list[Case]:
        """PostgreSQL: the ids are drawn from the table's own sequence first, then the rows go
        in with them in one unnest INSERT (as authors do). The ORM's bulk insert renders a
        VALUES list of every row: a statement text, prepared anew, for each batch size, and
        its parameters processed one by one."""
        connection = await self._s.connection()
        drawn = await connection.exec_driver_sql(
            driver_sql(connection.dialect, _NEXT_CASE_IDS), (len(cases),)
        )
        ids = [int(new_id) for (new_id,) in drawn.all()]
        rows = [(i, *case_row(c)) for i, c in zip(ids, cases, strict=True)]
        await insert_rows(self._s, _CASES, ("id", *CASE_COLUMNS), rows)
        return [replace(case, id=i) for case, i in zip(cases, ids, strict=True)]

    async def get_many(self, case_ids: Sequence[int]) -> dict[int, Case]:
        return await self._get_many(case_ids, lock=False)

    async def lock_for_joining(self, case_ids: Sequence[int]) -> dict[int, Case]:
        return await self._get_many(sorted(case_ids), lock=True)

    async def _get_many(self, case_ids: Sequence[int], *, lock: bool) -> dict[int, Case]:
        if not case_ids:
            return {}
        table = cast(Table, CaseRow.__table__)
        rows: list[Row[Any]] = []
        for chunk in chunks(case_ids):
            # Plain rows, not ORM objects: cheaper, and nothing is changed through the session.
            query = select(table).where(one_of(self._s, table.c.id, chunk))
            if lock:
                # Row locks taken in id order (chunks of a sorted list): two writers joining
                # the same cases queue behind each other instead of deadlocking. SQLite has
                # no FOR UPDATE; its single write lock (reserve) already serialises writers.
                query = query.order_by(table.c.id).with_for_update()
            with raced("cases"):
                rows += (await self._s.execute(query)).all()
        drafts = await self._drafts_of([row.id for row in rows])
        return {row.id: case_from_row(row, drafts[row.id]) for row in rows}

    async def record_joined(self, cases: Sequence[Case]) -> None:
        if not cases:
            return
        table = cast(Table, CaseRow.__table__)
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.version == bindparam("b_before"))
            .values(
                mention_count=bindparam("b_count"),
                similar_count=bindparam("b_similar"),
                people_count=bindparam("b_people"),
                last_mention_at=bindparam("b_last"),
                sources=bindparam("b_sources", type_=table.c.sources.type),
                answer_targets=bindparam("b_targets"),
                hand_due=bindparam("b_hand_due"),
                version=bindparam("b_version"),
            )
        )
        params = [
            {
                "b_id": c.id,
                "b_before": c.version - 1,
                "b_count": c.mention_count,
                "b_similar": c.similar_count,
                "b_people": c.people_count,
                "b_last": c.last_mention_at,
                "b_sources": list(c.sources),
                "b_targets": c.answer_targets,
                "b_hand_due": c.hand_due,
                "b_version": c.version,
            }
            for c in cases
        ]
        result = await self._s.execute(statement, params)
        matched = rowcount(result)
        if matched < 0:
            # asyncpg counts no rows of an executemany (-1): read back which versions stand.
            # (lock_for_joining holds the rows there, so this confirms rather than races.)
            wanted = {c.id: c.version for c in cases}
            matched = 0
            for chunk in chunks(list(wanted)):
                found = await self._s.execute(
                    select(table.c.id, table.c.version).where(one_of(self._s, table.c.id, chunk))
                )
                matched += sum(1 for case_id, version in found if wanted[case_id] == version)
        if matched != len(cases):
            raise ConcurrentUpdate("a related case changed while mentions joined it")

    async def record_answers_delivered(self, case_id: int, delivered: int) -> None:
        # No new version: a count the card shows, not a change anyone's button predates.
        await self._s.execute(
            update(CaseRow)
            .where(CaseRow.id == case_id)
            .values(answers_delivered=delivered)
            .execution_options(synchronize_session=False)
        )

    async def get(self, case_id: int) -> Case | None:
        row = await self._s.get(CaseRow, case_id, populate_existing=True)
        if row is None:
            return None
        drafts = await self._drafts_of([case_id])
        return case_from_row(row, drafts[case_id])

    async def save(self, case: Case, expected_version: int) -> None:
        assert case.id is not None
        # The delivered count is the delivery hook's to write (record_answers_delivered): a
        # press saved meanwhile must not put back the count it read.
        values = {k: v for k, v in case_values(case).items() if k != "answers_delivered"}
        result = await self._s.execute(
            update(CaseRow)
            .where(CaseRow.id == case.id, CaseRow.version == expected_version)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if rowcount(result) != 1:
            raise ConcurrentUpdate(f"case {case.id} changed since version {expected_version}")
        stored = {
            row.version: row
            for row in (
                await self._s.scalars(select(DraftRow).where(DraftRow.case_id == case.id))
            ).all()
        }
        for draft in case.drafts:
            row = stored.get(draft.version)
            if row is None:
                self._s.add(DraftRow(case_id=case.id, **draft_values(draft)))
            else:
                for key, value in draft_values(draft).items():
                    setattr(row, key, value)
        await self._s.flush()

    async def list_open(self, department: str | None = None) -> list[Case]:
        query = select(CaseRow).where(CaseRow.state.not_in([s.value for s in TERMINAL_STATES]))
        if department is not None:
            query = query.where(CaseRow.department == department)
        rows = (await self._s.scalars(query.order_by(CaseRow.id))).all()
        drafts = await self._drafts_of([row.id for row in rows])
        return [case_from_row(row, drafts[row.id]) for row in rows]

    async def open_without_card(self, department: str, transport: str, chat: str) -> list[Case]:
        """Open cases of a department whose card is neither delivered to this chat, nor
        waiting in the outbox, nor packed on a pack card: one anti-join on the refs' and the
        outbox's indexes."""
        ref = literal("card:") + sql_cast(CaseRow.id, String) + literal(":") + CaseRow.department
        delivered = select(MessageRefRow.ref_key).where(
            MessageRefRow.transport == transport,
            MessageRefRow.chat == chat,
            MessageRefRow.ref_key == ref,
        )
        waiting = select(OutboxRow.id).where(
            OutboxRow.transport == transport,
            OutboxRow.chat == chat,
            OutboxRow.ref_key == ref,
            # A packed card went out as a line of a pack card: the chat has it.
            OutboxRow.status.in_([s.value for s in (*UNDELIVERED, OutboxStatus.PACKED)]),
            OutboxRow.op == OutboxOp.POST.value,
        )
        query = select(CaseRow).where(
            CaseRow.department == department,
            CaseRow.state.not_in([s.value for s in TERMINAL_STATES]),
            ~delivered.exists(),
            ~waiting.exists(),
        )
        rows = (await self._s.scalars(query.order_by(CaseRow.id))).all()
        drafts = await self._drafts_of([row.id for row in rows])
        return [case_from_row(row, drafts[row.id]) for row in rows]

    async def status(self, now: datetime, soon: datetime) -> list[DepartmentStatus]:
        due = current_due()
        rows = await self._s.execute(
            select(
                CaseRow.department,
                func.count(),
                func.sum(sql_case((due < now, 1), else_=0)),
                func.sum(sql_case((and_(due >= now, due < soon), 1), else_=0)),
                func.min(sql_case((CaseRow.state == CaseState.NEW.value, CaseRow.created_at))),
            )
            .where(
                CaseRow.state.not_in([s.value for s in TERMINAL_STATES]),
                CaseRow.drill.is_(False),  # a drill's cases count in no figure
            )
            .group_by(CaseRow.department)
        )
        return [
            DepartmentStatus(
                dept,
                int(total),
                int(overdue or 0),
                int(at_risk or 0),
                _as_utc(oldest) if oldest is not None else None,
            )
            for dept, total, overdue, at_risk, oldest in rows.all()
        ]

    async def _drafts_of(self, case_ids: Sequence[int]) -> dict[int, list[Draft]]:
        by_case: dict[int, list[Draft]] = defaultdict(list)
        for chunk in chunks(case_ids):
            rows = await self._s.scalars(
                select(DraftRow)
                .where(one_of(self._s, DraftRow.case_id, chunk))
                .order_by(DraftRow.case_id, DraftRow.version)
            )
            for row in rows:
                by_case[row.case_id].append(draft_from_row(row))
        return by_case
