"""Rows for `otklik report`: the cases of a period and their authors, streamed in chunks.

Both queries select the same cases (created in the period, by the created_at index) and read
them with yield_per, so an export of a year holds one chunk in memory at a time. A case's
author is the author of its first mention (lowest mention id, by the case_id index).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.reports.export import ExportAuthor, ExportCase
from bot.reports.figures import Period
from store.mappers import export_author, export_case
from store.models import AuthorIdentityRow, AuthorRow, CaseRow, MentionRow


class SqlExportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def cases(self, period: Period, chunk: int = 1000) -> AsyncIterator[list[ExportCase]]:
        statement = (
            select(CaseRow, _first_author().label("author_id"))
            .where(*_in_period(period))
            .order_by(CaseRow.id)
            .execution_options(yield_per=chunk)
        )
        result = await self._s.stream(statement)
        async for rows in result.partitions():
            yield [export_case(row, author_id) for row, author_id in rows]

    async def authors(self, period: Period, chunk: int = 1000) -> AsyncIterator[list[ExportAuthor]]:
        statement = (
            select(AuthorRow)
            .where(AuthorRow.id.in_(select(_first_author()).where(*_in_period(period))))
            .order_by(AuthorRow.id)
            .execution_options(yield_per=chunk)
        )
        result = await self._s.stream(statement)
        async for rows in result.partitions():
            authors = [row for (row,) in rows]
            identities = await self._identities([a.id for a in authors])
            yield [export_author(a, identities.get(a.id, ())) for a in authors]

    async def _identities(self, author_ids: list[int]) -> dict[int, tuple[str, ...]]:
        if not author_ids:
            return {}
        rows = await self._s.execute(
            select(
                AuthorIdentityRow.author_id,
                AuthorIdentityRow.channel,
                AuthorIdentityRow.external_id,
            )
            .where(AuthorIdentityRow.author_id.in_(author_ids))
            .order_by(AuthorIdentityRow.author_id, AuthorIdentityRow.id)
        )
        found: dict[int, list[str]] = {}
        for author_id, channel, external_id in rows:
            found.setdefault(author_id, []).append(f"{channel}:{external_id}")
        return {author_id: tuple(values) for author_id, values in found.items()}


def _in_period(period: Period) -> tuple[Any, ...]:
    return (CaseRow.created_at >= period.start, CaseRow.created_at < period.end)


def _first_author() -> Any:
    return (
        select(MentionRow.author_id)
        .where(MentionRow.case_id == CaseRow.id)
        .order_by(MentionRow.id)
        .limit(1)
        .scalar_subquery()
    )
