"""Long polling (getUpdates) on the leader, continued by the next leader where it stopped.

Telegram hands out the earliest updates not yet confirmed, and an update is confirmed only when
a later getUpdates asks from past it (`offset`). So a batch is handled whole (its updates at
once) before the next getUpdates confirms it: an update the leader took is never lost with it.
What a leader that stopped or died handled but had not confirmed, the next one may fetch
again; on PostgreSQL every update is therefore claimed in the database like a webhook delivery
(once.py; a batch in one statement) and acts once. The offset past each handled batch is
stored too, so the next leader (or the same process restarted: on SQLite, one process,
nothing else is claimed) asks from there and does not even fetch those again.

A stored offset older than OFFSET_KEPT is not used: after a week without updates Telegram may
number the next ones from anywhere, lower too, and an offset past them would confirm them
unread. Telegram's own record of what was confirmed is the fallback.

Next: once.py, how one update is handled once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from aiogram import Bot
from aiogram.methods import GetUpdates
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.clock import Clock
from handlers.telegram.once import Handled, OnceHandler
from store.db import Database

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 10  # how long one getUpdates waits for an update
OFFSET_KEY = "telegram.poll_offset.{bot_id}"  # kv: {"offset": …, "at": ISO time}
OFFSET_KEPT = timedelta(days=1)
ATTEMPTS = 3  # an update whose handling failed is tried this often, then left
RETRY_S = 1.0  # times the attempt's number, between attempts
BUSY_WAIT_S = 5.0  # one look at an update in hand elsewhere; asked again until it ends
FINISH_S = 10.0  # what a stopped poll gives the updates in hand
BACKOFF = BackoffConfig(min_delay=1.0, max_delay=5.0, factor=1.3, jitter=0.1)


class TelegramPoller:
    """getUpdates in a loop until cancelled (the leader's lead lost, or the stop)."""

    def __init__(
        self,
        bot: Bot,
        once: OnceHandler,
        database: Database,
        clock: Clock,
        allowed_updates: Sequence[str],
    ) -> None:
        self._bot = bot
        self._once = once
        self._database = database
        self._clock = clock
        self._allowed_updates = list(allowed_updates)
        self._key = OFFSET_KEY.format(bot_id=bot.id)

    async def run(self) -> None:
        offset = await self._stored_offset()
        backoff = Backoff(BACKOFF)
        while True:
            try:
                updates = await self._bot(
                    GetUpdates(
                        offset=offset,
                        timeout=POLL_TIMEOUT_S,
                        allowed_updates=self._allowed_updates,
                    ),
                    request_timeout=int(self._bot.session.timeout + POLL_TIMEOUT_S),
                )
            except Exception as error:
                delay = next(backoff)
                log.error("telegram: getUpdates failed (%s); again in %.1f s", error, delay)
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if not updates:
                continue
            await self._handle_batch(updates)
            offset = updates[-1].update_id + 1
            await self._store_offset(offset)

    async def _handle_batch(self, updates: list[Update]) -> None:
        """Every update of the batch at once, as aiogram's polling would; cancelled, the ones
        in hand get FINISH_S to end (their claims then end done, not stale)."""
        batch = asyncio.ensure_future(self._handle_all(updates))
        try:
            await asyncio.shield(batch)
        except asyncio.CancelledError:
            await asyncio.wait({batch}, timeout=FINISH_S)
            batch.cancel()  # what is still in hand goes stale: the next leader handles it
            raise

    async def _handle_all(self, updates: list[Update]) -> None:
        first = await self._once.handle_many(updates)
        await asyncio.gather(
            *(
                self._handle_again(update, handled)
                for update, handled in zip(updates, first, strict=True)
                if handled in (Handled.ELSEWHERE, Handled.FAILED)
            )
        )

    async def _handle_again(self, update: Update, handled: Handled) -> None:
        failures = 0
        while handled not in (Handled.HERE, Handled.BEFORE):
            if handled is Handled.FAILED:
                failures += 1
                if failures >= ATTEMPTS:
                    log.error(
                        "telegram: update %s left after %s failures", update.update_id, failures
                    )
                    return
                await asyncio.sleep(RETRY_S * failures)
            # ELSEWHERE: an old leader still finishing it, or dead and soon stale: ask again.
            handled = await self._once.handle(update, busy_wait_s=BUSY_WAIT_S)

    async def _stored_offset(self) -> int | None:
        try:
            async with self._database.uow() as uow:
                stored = await uow.kv.get(self._key)
            if stored is None:
                return None
            kept = json.loads(stored)
            offset, at = int(kept["offset"]), datetime.fromisoformat(kept["at"])
        except Exception:  # Telegram's own record of what was confirmed will do
            log.exception("telegram: the stored poll offset could not be read")
            return None
        if self._clock.now() - at > OFFSET_KEPT:
            return None
        log.info("telegram: polling from update %s on", offset)
        return offset

    async def _store_offset(self, offset: int) -> None:
        value = json.dumps({"offset": offset, "at": self._clock.now().isoformat()})
        try:
            async with self._database.uow() as uow:
                await uow.kv.set(self._key, value)
                await uow.commit()
        except Exception:
            # Telegram confirms the batch all the same; a next leader would fetch it again and
            # find it done.
            log.exception("telegram: the poll offset could not be stored")
