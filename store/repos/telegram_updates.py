"""Telegram updates claimed by id before they are handled (handlers/telegram/once.py), whether
they came by webhook or by long polling: a delivery Telegram retries, an update a new polling
leader fetches again, on this instance or another, acts once. Marked done after; while in
hand the claim is renewed, so it goes stale only when its instance died, and is then claimed
again."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.driver import conflict_insert, rowcount
from store.models import TelegramUpdateRow

PROCESSING = "processing"
DONE = "done"


class UpdateClaim(enum.Enum):
    TAKEN = "taken"  # ours to handle now
    DONE = "done"  # handled before: answer 200, do nothing
    BUSY = "busy"  # another request is handling it right now


class SqlTelegramUpdateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def claim(
        self, bot_id: int, update_id: int, instance: str, now: datetime, stale_before: datetime
    ) -> UpdateClaim:
        """Claim the update for `instance`: new, or "processing" since before `stale_before`.
        The caller commits at once, so other instances see the claim."""
        inserted = await self._s.execute(
            conflict_insert(self._s, TelegramUpdateRow)
            .values(
                bot_id=bot_id,
                update_id=update_id,
                state=PROCESSING,
                instance=instance,
                claimed_at=now,
                done_at=None,
            )
            .on_conflict_do_nothing(index_elements=["bot_id", "update_id"])
        )
        if rowcount(inserted) == 1:
            return UpdateClaim.TAKEN
        # The row is there: take it over if its claim went stale; one UPDATE, so of two
        # instances retrying at once only one wins.
        retaken = await self._s.execute(
            update(TelegramUpdateRow)
            .where(
                TelegramUpdateRow.bot_id == bot_id,
                TelegramUpdateRow.update_id == update_id,
                TelegramUpdateRow.state == PROCESSING,
                TelegramUpdateRow.claimed_at < stale_before,
            )
            .values(instance=instance, claimed_at=now)
        )
        if rowcount(retaken) == 1:
            return UpdateClaim.TAKEN
        state = await self._s.scalar(
            select(TelegramUpdateRow.state).where(
                TelegramUpdateRow.bot_id == bot_id, TelegramUpdateRow.update_id == update_id
            )
        )
        if state is None:  # released between our statements: try again
            return await self.claim(bot_id, update_id, instance, now, stale_before)
        return UpdateClaim.DONE if state == DONE else UpdateClaim.BUSY

    async def claim_many(
        self,
        bot_id: int,
        update_ids: Sequence[int],
        instance: str,
        now: datetime,
        stale_before: datetime,
    ) -> dict[int, UpdateClaim]:
        """`claim` of several updates (a poll's batch): the new ones, nearly always all, in
        one statement; any already there one by one."""
        rows = [
            {
                "bot_id": bot_id,
                "update_id": update_id,
                "state": PROCESSING,
                "instance": instance,
                "claimed_at": now,
                "done_at": None,
            }
            for update_id in update_ids
        ]
        inserted = set(
            await self._s.scalars(
                conflict_insert(self._s, TelegramUpdateRow)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["bot_id", "update_id"])
                .returning(TelegramUpdateRow.update_id)
            )
        )
        claims = dict.fromkeys(inserted, UpdateClaim.TAKEN)
        for update_id in update_ids:
            if update_id not in inserted:
                claims[update_id] = await self.claim(bot_id, update_id, instance, now, stale_before)
        return claims

    async def renew(
        self, bot_id: int, update_ids: Sequence[int], instance: str, now: datetime
    ) -> int:
        """Still in hand: the claims' time moves on, so that none looks stale while its
        instance lives, however long the handling takes. How many are still ours."""
        renewed = await self._s.execute(
            update(TelegramUpdateRow)
            .where(
                TelegramUpdateRow.bot_id == bot_id,
                TelegramUpdateRow.update_id.in_(update_ids),
                TelegramUpdateRow.state == PROCESSING,
                TelegramUpdateRow.instance == instance,
            )
            .values(claimed_at=now)
        )
        return rowcount(renewed)

    async def done(self, bot_id: int, update_ids: Sequence[int], now: datetime) -> None:
        await self._s.execute(
            update(TelegramUpdateRow)
            .where(TelegramUpdateRow.bot_id == bot_id, TelegramUpdateRow.update_id.in_(update_ids))
            .values(state=DONE, done_at=now)
        )

    async def release(self, bot_id: int, update_id: int, instance: str) -> None:
        """Handling failed: the claim goes, so Telegram's retry handles the update at once."""
        await self._s.execute(
            delete(TelegramUpdateRow).where(
                TelegramUpdateRow.bot_id == bot_id,
                TelegramUpdateRow.update_id == update_id,
                TelegramUpdateRow.state == PROCESSING,
                TelegramUpdateRow.instance == instance,
            )
        )

    async def prune(self, before: datetime) -> int:
        """Forget updates claimed before `before`; Telegram no longer retries them."""
        return rowcount(
            await self._s.execute(
                delete(TelegramUpdateRow).where(TelegramUpdateRow.claimed_at < before)
            )
        )
