"""Small named values the bot keeps between runs."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from store.models import KeyValueRow


class SqlKeyValueRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, key: str) -> str | None:
        row = await self._s.get(KeyValueRow, key, populate_existing=True)
        return row.value if row else None

    async def set(self, key: str, value: str) -> None:
        await self._s.merge(KeyValueRow(key=key, value=value))
        await self._s.flush()
