"""Webhook mode: Telegram POSTs each update to the bot's URL (config `telegram.webhook`), and
any instance behind the reverse proxy may get it (https://core.telegram.org/bots/api#setwebhook).

Checks, all before anything acts, none answered with a 500:
- `X-Telegram-Bot-Api-Secret-Token` against the secret, in constant time (403);
- the body's size (413), that it is JSON (400) and a Telegram Update (400, with why).

Then the update is claimed by its id in the database (store/repos/telegram_updates.py):
Telegram delivers it again after any non-2xx answer or a timeout, perhaps to another
instance, and it must act once.
- Claimed here: handled by this instance's aiogram dispatcher, marked done, and only then
  answered 200. If handling fails (the database; Telegram busy or unreachable) the claim is
  released and Telegram is answered 503: its retry handles the update again. A call Telegram
  refuses for good (a press answered too late) ends the update as in polling: logged, 200.
- Handled before: answered 200 at once, nothing acts.
- Being handled by another request: waited for a little, then answered 503; Telegram retries,
  and by then it is done, or its claim went stale (that instance died) and it is handled here.

The secret comes from the config, or is generated once and kept in the database (the first
instance to start writes it; every other one reads the same). Next: adapter.py, which sets
the webhook once this endpoint is served.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
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
from aiohttp import web
from pydantic import ValidationError

from bot.clock import Clock
from bot.settings.connections import TelegramWebhookConfig
from handlers.http_body import read_at_most
from store.db import Database
from store.repos.telegram_updates import UpdateClaim

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET_KEY = "telegram.webhook_secret"  # kv: the generated secret every instance shares
# An update is a message of up to 4,096 characters with its entities and the message it
# replies to; JSON may spell each character as \uXXXX. Far above any real one.
MAX_UPDATE_BYTES = 1024 * 1024
BUSY_WAIT_S = 5.0  # how long a retry waits for another request handling the same update
BUSY_CHECK_S = 0.1
# Failures that may pass (Telegram busy or unreachable): the update is handled again.
_PASSING = (TelegramNetworkError, TelegramServerError, TelegramRetryAfter)
KEEP_SEEN = timedelta(days=2)  # Telegram keeps an undelivered update for 24 hours
PRUNE_EVERY = timedelta(hours=1)


async def webhook_secret(config: TelegramWebhookConfig, database: Database) -> str:
    """The configured secret, or the one kept in the database (made by the first instance)."""
    if config.secret_token:
        return config.secret_token
    async with database.uow() as uow:
        secret = await uow.kv.keep_first(SECRET_KEY, secrets.token_urlsafe(32))
        await uow.commit()
    return secret


class TelegramWebhook:
    """The endpoint at `config.path` on the API's HTTP server."""

    def __init__(
        self,
        config: TelegramWebhookConfig,
        bot: Bot,
        dispatcher: Dispatcher,
        database: Database,
        clock: Clock,
        secret: str,
        instance: str,
        **handler_data: Any,  # what every handler gets, as in polling (`ctx`)
    ) -> None:
        self._config = config
        self._bot = bot
        self._dispatcher = dispatcher
        self._database = database
        self._clock = clock
        self.secret = secret
        self._secret = secret.encode()
        self._closing = False
        self._in_hand: set[asyncio.Task[web.Response]] = set()
        self._instance = instance
        self._handler_data = handler_data
        self._pruned_at = clock.now() - PRUNE_EVERY  # the first handled update prunes

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(self._config.path, self.receive)

    async def close(self, within_s: float = 10.0) -> None:
        """Answer new requests 503 (Telegram retries, maybe on another instance) and let
        the updates in hand finish."""
        self._closing = True
        if self._in_hand:
            await asyncio.wait(self._in_hand, timeout=within_s)

    async def receive(self, request: web.Request) -> web.Response:
        if self._closing:
            return _answer(503, "this instance is stopping; Telegram will retry")
        # Header bytes that are not UTF-8 arrive as surrogates: they cannot match, nor raise.
        given = request.headers.get(SECRET_HEADER, "").encode(errors="replace")
        if not hmac.compare_digest(given, self._secret):
            log.warning("telegram: webhook request from %s without the secret", request.remote)
            return _answer(403, "wrong secret token")
        if (request.content_length or 0) > MAX_UPDATE_BYTES:
            return _answer(413, "the body is too large")
        raw = await read_at_most(request, MAX_UPDATE_BYTES)
        if raw is None:
            return _answer(413, "the body is too large")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return _answer(400, "the body is not JSON")
        if not isinstance(body, dict):
            return _answer(400, "the body is not a JSON object")
        try:
            update = Update.model_validate(body, context={"bot": self._bot})
        except ValidationError as error:
            return _answer(400, f"not a Telegram Update: {_first_problem(error)}")
        except RecursionError:
            return _answer(400, "not a Telegram Update: nested too deep")
        # A task of its own: a client that goes away must not cut handling short, and
        # close() waits for it.
        handling = asyncio.ensure_future(self._handle_once(update))
        self._in_hand.add(handling)
        handling.add_done_callback(self._in_hand.discard)
        return await asyncio.shield(handling)

    async def _handle_once(self, update: Update) -> web.Response:
        update_id = update.update_id
        try:
            claim = await self._claim(update_id)
        except Exception:
            log.exception("telegram: update %s could not be claimed", update_id)
            return _answer(503, "the database is unavailable; Telegram will retry")
        if claim is UpdateClaim.DONE:
            log.info("telegram: update %s again (Telegram's retry): already handled", update_id)
            return web.Response(text="ok")
        if claim is UpdateClaim.BUSY:
            log.info("telegram: update %s is being handled by another request", update_id)
            return _answer(503, "this update is being handled; Telegram will retry")
        try:
            response = await self._dispatcher.feed_update(self._bot, update, **self._handler_data)
            if isinstance(response, TelegramMethod):  # a handler's answer "into the webhook"
                await self._dispatcher.silent_call_request(self._bot, response)
        except TelegramAPIError as error:
            if isinstance(error, _PASSING):
                return await self._failed(update_id)
            # Telegram refused a call the handler made (a press answered too late, a message
            # gone): handling it again would meet the same refusal, as polling would.
            log.error("telegram: update %s: Telegram refused a call: %s", update_id, error)
        except Exception:
            return await self._failed(update_id)
        await self._done(update_id)
        return web.Response(text="ok")

    async def _failed(self, update_id: int) -> web.Response:
        log.exception("telegram: update %s failed; Telegram will retry it", update_id)
        await self._release(update_id)
        return _answer(503, "the update could not be handled; Telegram will retry")

    async def _claim(self, update_id: int) -> UpdateClaim:
        """Claim the update; while another request handles it, wait a little for it to end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_WAIT_S
        while True:
            now = self._clock.now()
            stale = now - timedelta(seconds=self._config.reclaim_after_s)
            async with self._database.uow() as uow:
                claim = await uow.telegram_updates.claim(
                    self._bot.id, update_id, self._instance, now, stale
                )
                await uow.commit()
            if claim is not UpdateClaim.BUSY or loop.time() >= deadline:
                return claim
            await asyncio.sleep(BUSY_CHECK_S)

    async def _done(self, update_id: int) -> None:
        now = self._clock.now()
        try:
            async with self._database.uow() as uow:
                await uow.telegram_updates.done(self._bot.id, update_id, now)
                if now - self._pruned_at >= PRUNE_EVERY:
                    self._pruned_at = now
                    await uow.telegram_updates.prune(now - KEEP_SEEN)
                await uow.commit()
        except Exception:
            # Handled all the same: Telegram gets its 200 and will not send it again; the
            # claim stays "processing" and only a stray replay after the reclaim time repeats.
            log.exception("telegram: update %s handled but not marked done", update_id)

    async def _release(self, update_id: int) -> None:
        try:
            async with self._database.uow() as uow:
                await uow.telegram_updates.release(self._bot.id, update_id, self._instance)
                await uow.commit()
        except Exception:
            # The claim then goes stale: Telegram's retry after reclaim_after_s handles it.
            log.exception("telegram: the claim on update %s could not be released", update_id)


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the update"
    return f"{where}: {first['msg']}"[:200]


def _answer(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason)
