"""Binary content for the outbox (digest charts), content-addressed by sha256.

An outbox PHOTO item holds only the sha256; the bytes live here, written in the same
transaction as the item, so a crash never leaves an item without its picture. The same
picture queued for several chats is stored once.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages.outbox import UNDELIVERED, OutboxOp
from store.driver import conflict_insert, rowcount
from store.models import BlobRow, OutboxRow


class SqlBlobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def put(self, content: bytes, mimetype: str, now: datetime) -> str:
        digest = hashlib.sha256(content).hexdigest()
        statement = (
            conflict_insert(self._s, BlobRow)
            .values(
                sha256=digest,
                mimetype=mimetype,
                size=len(content),
                content=content,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["sha256"])
        )
        await self._s.execute(statement)
        return digest

    async def get(self, sha256: str) -> bytes | None:
        content: bytes | None = await self._s.scalar(
            select(BlobRow.content).where(BlobRow.sha256 == sha256)
        )
        return content

    async def prune(self, before: datetime) -> int:
        """Delete pictures stored before `before` that no undelivered item still needs."""
        waiting = await self._s.scalars(
            select(OutboxRow.payload).where(
                OutboxRow.op == OutboxOp.PHOTO.value,
                OutboxRow.status.in_([status.value for status in UNDELIVERED]),
            )
        )
        needed = {payload.get("blob") for payload in waiting if isinstance(payload, dict)}
        statement = delete(BlobRow).where(BlobRow.created_at < before)
        if needed:
            statement = statement.where(BlobRow.sha256.not_in(needed))
        result = await self._s.execute(statement)
        return int(rowcount(result) or 0)
