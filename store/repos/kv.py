"""Small named values the bot keeps between runs."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from store.driver import conflict_insert
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

    async def keep_first(self, key: str, value: str) -> str:
        """Store `value` unless the key has one already; the stored value either way. Of
        several processes racing, the first writer wins and all get its value."""
        await self._s.execute(
            conflict_insert(self._s, KeyValueRow)
            .values(key=key, value=value)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        stored = await self.get(key)
        assert stored is not None
        return stored
