"""Each Telegram update acts once, however it arrives and whichever instance sees it: by webhook
(webhook.py; Telegram delivers again after a non-2xx answer or a timeout, maybe to another
instance) or by long polling (polling.py; a new leader may fetch again what the old one handled
but had not confirmed yet).

The update is claimed by its id in the database (store/repos/telegram_updates.py) before the
aiogram dispatcher sees it, and marked done after:
- claimed here: handled, then done. While it is handled the claim is renewed every third of
  `reclaim_after_s`, so a handling that outlasts Telegram's redelivery (60 s) or the reclaim
  time still counts as in hand and nobody else acts on it;
- done before: nothing acts;
- in hand elsewhere (a live, renewed claim): waited for a little, then left to the caller
  (webhook: 503 and Telegram retries; polling: asks again). A claim not renewed for
  `reclaim_after_s` is an instance that died: it is taken over and handled here.
If handling fails in a way that may pass (the database; Telegram busy or unreachable) the claim
is released and the caller has the update handled again. A call Telegram refuses for good (a
press answered too late) ends the update as handled, logged.

A poll's batch (`handle_many`) is claimed in one statement and marked done in one: the
claims cost a poll two statements, not two an update. Without `claims` (one process polling,
on SQLite: no other instance can see its updates) updates are only handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import Update

from bot.clock import Clock
from store.db import Database
from store.repos.telegram_updates import UpdateClaim

log = logging.getLogger(__name__)

BUSY_CHECK_S = 0.1  # how often a claim in hand elsewhere is looked at again
# Failures that may pass (Telegram busy or unreachable): the update is handled again.
_PASSING = (TelegramNetworkError, TelegramServerError, TelegramRetryAfter)
KEEP_SEEN = timedelta(days=2)  # Telegram keeps an undelivered update for 24 hours
PRUNE_EVERY = timedelta(hours=1)
RENEWALS_PER_RECLAIM = 3  # a claim is renewed this often within the reclaim time


class Handled(enum.Enum):
    HERE = "here"  # handled by this call, and marked done
    BEFORE = "before"  # done already: nothing acted
    ELSEWHERE = "elsewhere"  # in hand elsewhere right now: nothing acted, ask again later
    FAILED = "failed"  # not handled, claim released: handle it again


class OnceHandler:
    """Claims, handles through the dispatcher and marks done: one update at a time, any number
    at once."""

    def __init__(
        self,
        bot: Bot,
        dispatcher: Dispatcher,
        database: Database,
        clock: Clock,
        instance: str,
        reclaim_after_s: float,
        *,
        claims: bool = True,
        **handler_data: Any,  # what every handler gets (`ctx`)
    ) -> None:
        self._bot = bot
        self._dispatcher = dispatcher
        self._database = database
        self._clock = clock
        self._instance = instance
        self._claims = claims
        self._reclaim_after = timedelta(seconds=reclaim_after_s)
        self._renew_every_s = reclaim_after_s / RENEWALS_PER_RECLAIM
        self._handler_data = handler_data
        self._pruned_at = clock.now() - PRUNE_EVERY  # the first handled update prunes

    async def handle(self, update: Update, busy_wait_s: float) -> Handled:
        """Handle `update` unless it was or is being handled; a claim in hand elsewhere is
        waited for up to `busy_wait_s`."""
        if not self._claims:
            return await self._handle_claimed(update)
        try:
            claim = await self._claim(update.update_id, busy_wait_s)
        except Exception:
            log.exception("telegram: update %s could not be claimed", update.update_id)
            return Handled.FAILED
        if claim is not UpdateClaim.TAKEN:
            return _not_taken(update.update_id, claim)
        return (await self._handle_in_hand([update]))[0]

    async def handle_many(self, updates: Sequence[Update]) -> list[Handled]:
        """`handle` of each of a poll's batch, all at once, claimed in one statement and
        marked done in one; a claim in hand elsewhere is not waited for (ELSEWHERE)."""
        if not self._claims:
            return list(await asyncio.gather(*map(self._handle_claimed, updates)))
        ids = [update.update_id for update in updates]
        now = self._clock.now()
        try:
            async with self._database.uow() as uow:
                claims = await uow.telegram_updates.claim_many(
                    self._bot.id, ids, self._instance, now, now - self._reclaim_after
                )
                await uow.commit()
        except Exception:
            log.exception("telegram: updates %s to %s could not be claimed", ids[0], ids[-1])
            return [Handled.FAILED] * len(updates)
        taken = [update for update in updates if claims[update.update_id] is UpdateClaim.TAKEN]
        in_hand = dict(zip(ids_of(taken), await self._handle_in_hand(taken), strict=True))
        return [in_hand.get(i) or _not_taken(i, claims[i]) for i in ids]

    async def _handle_in_hand(self, updates: Sequence[Update]) -> list[Handled]:
        """Updates claimed here: handled at once, their claims renewed meanwhile; then the
        ones handled are marked done and the failed ones released."""
        if not updates:
            return []
        renewing = asyncio.create_task(self._renew_while_in_hand(ids_of(updates)))
        try:
            handled = await asyncio.gather(*map(self._handle_claimed, updates))
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        done = []
        for update, outcome in zip(updates, handled, strict=True):
            if outcome is Handled.FAILED:
                await self._release(update.update_id)
            else:
                done.append(update.update_id)
        await self._done(done)
        return list(handled)

    async def _handle_claimed(self, update: Update) -> Handled:
        """Through the dispatcher: HERE, or FAILED when it may go better another time."""
        update_id = update.update_id
        try:
            response = await self._dispatcher.feed_update(self._bot, update, **self._handler_data)
            if isinstance(response, TelegramMethod):  # a handler's answer "into the webhook"
                await self._dispatcher.silent_call_request(self._bot, response)
        except TelegramAPIError as error:
            if isinstance(error, _PASSING):
                log.exception("telegram: update %s failed; it will be handled again", update_id)
                return Handled.FAILED
            # Telegram refused a call the handler made (a press answered too late, a message
            # gone): handling it again would meet the same refusal.
            log.error("telegram: update %s: Telegram refused a call: %s", update_id, error)
        except Exception:
            log.exception("telegram: update %s failed; it will be handled again", update_id)
            return Handled.FAILED
        return Handled.HERE

    async def _claim(self, update_id: int, busy_wait_s: float) -> UpdateClaim:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + busy_wait_s
        while True:
            now = self._clock.now()
            async with self._database.uow() as uow:
                claim = await uow.telegram_updates.claim(
                    self._bot.id, update_id, self._instance, now, now - self._reclaim_after
                )
                await uow.commit()
            if claim is not UpdateClaim.BUSY or loop.time() >= deadline:
                return claim
            await asyncio.sleep(BUSY_CHECK_S)

    async def _renew_while_in_hand(self, update_ids: list[int]) -> None:
        while True:
            await asyncio.sleep(self._renew_every_s)
            try:
                async with self._database.uow() as uow:
                    ours = await uow.telegram_updates.renew(
                        self._bot.id, update_ids, self._instance, self._clock.now()
                    )
                    await uow.commit()
            except Exception:
                # The next renewal may pass; only a claim left unrenewed for the whole
                # reclaim time can be taken over.
                log.warning("telegram: the claims on updates %s were not renewed", update_ids)
                continue
            if ours < len(update_ids):
                log.error("telegram: of updates %s in hand, some were taken over", update_ids)

    async def _release(self, update_id: int) -> None:
        try:
            async with self._database.uow() as uow:
                await uow.telegram_updates.release(self._bot.id, update_id, self._instance)
                await uow.commit()
        except Exception:
            # The claim then goes stale: handled again after reclaim_after_s.
            log.exception("telegram: the claim on update %s could not be released", update_id)

    async def _done(self, update_ids: list[int]) -> None:
        if not update_ids:
            return
        now = self._clock.now()
        try:
            async with self._database.uow() as uow:
                await uow.telegram_updates.done(self._bot.id, update_ids, now)
                if now - self._pruned_at >= PRUNE_EVERY:
                    self._pruned_at = now
                    await uow.telegram_updates.prune(now - KEEP_SEEN)
                await uow.commit()
        except Exception:
            # Handled all the same (the webhook answers 200, polling confirms it); the claims
            # stay "processing" and only a stray replay after the reclaim time repeats one.
            log.exception("telegram: updates %s handled but not marked done", update_ids)


def ids_of(updates: Sequence[Update]) -> list[int]:
    return [update.update_id for update in updates]


def _not_taken(update_id: int, claim: UpdateClaim) -> Handled:
    if claim is UpdateClaim.DONE:
        log.info("telegram: update %s again: already handled", update_id)
        return Handled.BEFORE
    log.info("telegram: update %s is being handled elsewhere", update_id)
    return Handled.ELSEWHERE
