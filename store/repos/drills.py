"""Crisis drill runs (bot/drills): the run rows and what a drill report reads of a run."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.model import Case, DrillRun
from store.mappers import case_from_row, drill_run_from_row
from store.models import CaseRow, DrillRunRow


class SqlDrillRunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, run: DrillRun) -> DrillRun:
        row = DrillRunRow(
            scenario=run.scenario,
            started_at=run.started_at,
            started_by=run.started_by,
            hour_in_minutes=run.hour_in_minutes,
            ended_at=run.ended_at,
            ended_by=run.ended_by,
            injected=run.injected,
        )
        self._s.add(row)
        await self._s.flush()
        return drill_run_from_row(row)

    async def get(self, run_id: int) -> DrillRun | None:
        row = await self._s.get(DrillRunRow, run_id, populate_existing=True)
        return drill_run_from_row(row) if row else None

    async def running(self) -> list[DrillRun]:
        rows = await self._s.scalars(
            select(DrillRunRow).where(DrillRunRow.ended_at.is_(None)).order_by(DrillRunRow.id)
        )
        return [drill_run_from_row(row) for row in rows]

    async def previous(self, run: DrillRun) -> DrillRun | None:
        """The latest finished run of the same scenario before this one."""
        assert run.id is not None
        row = await self._s.scalar(
            select(DrillRunRow)
            .where(
                DrillRunRow.scenario == run.scenario,
                DrillRunRow.id < run.id,
                DrillRunRow.ended_at.is_not(None),
            )
            .order_by(DrillRunRow.id.desc())
            .limit(1)
        )
        return drill_run_from_row(row) if row else None

    async def injected(self, run_id: int, count: int) -> None:
        """Timeline mentions handed to intake so far; never goes back."""
        await self._s.execute(
            update(DrillRunRow)
            .where(DrillRunRow.id == run_id, DrillRunRow.injected < count)
            .values(injected=count)
        )

    async def end(self, run: DrillRun) -> bool:
        """Ends a running run; False when it had ended already (another process, a repeat)."""
        assert run.id is not None and run.ended_at is not None
        result = await self._s.execute(
            update(DrillRunRow)
            .where(DrillRunRow.id == run.id, DrillRunRow.ended_at.is_(None))
            .values(ended_at=run.ended_at, ended_by=run.ended_by)
        )
        return bool(getattr(result, "rowcount", 0))

    async def cases_of(self, run_id: int) -> list[Case]:
        rows = await self._s.scalars(
            select(CaseRow).where(CaseRow.drill_run_id == run_id).order_by(CaseRow.id)
        )
        return [case_from_row(row, ()) for row in rows]
