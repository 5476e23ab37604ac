"""Webhook mode: Telegram POSTs each update to the bot's URL (config `telegram.webhook`), and
any instance behind the reverse proxy may get it (https://core.telegram.org/bots/api#setwebhook).

Checks, all before anything acts, none answered with a 500:
- `X-Telegram-Bot-Api-Secret-Token` against the secret, in constant time (403);
- the body's size (413), that it is JSON (400) and a Telegram Update (400, with why).

Then the update is handled once (once.py): Telegram delivers it again after any non-2xx
answer or a timeout, perhaps to another instance, and it must act once.
- Handled here: answered 200 once handled. If handling failed in a way that may pass (the
  database; Telegram busy or unreachable), 503: Telegram's retry handles it again.
- Handled before: 200 at once, nothing acts.
- In hand elsewhere (another request, here or on another instance, even one that has taken
  longer than Telegram waits): waited for a little, then 503; Telegram retries, and by then
  it is done, or its instance died, its claim went stale and it is handled here.

The secret comes from the config, or is derived from the keys every instance holds (HMAC under
OTKLIK_INDEX_KEY, store/crypto.py) and the bot's id: the same on every instance, stored
nowhere. The one an older release generated and kept in the database is still accepted while
it is there, since an instance of that release starting during a rolling upgrade sets it
again (expand, then contract: a later release deletes it).
Next: adapter.py, which sets the webhook once this endpoint is served.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from dataclasses import dataclass

from aiogram import Bot
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from bot.settings.connections import TelegramWebhookConfig
from handlers.http_body import read_at_most
from handlers.telegram.once import Handled, OnceHandler
from store.db import Database

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Where older releases kept the secret they generated.
LEGACY_SECRET_KEY = "telegram.webhook_secret"
SECRET_LABEL = "telegram webhook secret_token, bot "
# An update is a message of up to 4,096 characters with its entities and the message it
# replies to; JSON may spell each character as \uXXXX. Far above any real one.
MAX_UPDATE_BYTES = 1024 * 1024
BUSY_WAIT_S = 5.0  # how long a retry waits for another request handling the same update


@dataclass(frozen=True)
class WebhookSecrets:
    current: str  # what setWebhook is given
    legacy: str | None = None  # an older release's stored one, still accepted


async def webhook_secrets(
    config: TelegramWebhookConfig, database: Database, bot_id: int
) -> WebhookSecrets:
    """The configured secret, or one derived from the keys and the bot's id (every instance
    computes the same); with it the one an older release stored, if any."""
    if config.secret_token:  # older releases used it too
        return WebhookSecrets(config.secret_token)
    async with database.uow() as uow:
        legacy = await uow.kv.get(LEGACY_SECRET_KEY)
    return WebhookSecrets(database.keyring.derived_secret(f"{SECRET_LABEL}{bot_id}"), legacy)


class TelegramWebhook:
    """The endpoint at `config.path` on the API's HTTP server."""

    def __init__(
        self, config: TelegramWebhookConfig, bot: Bot, once: OnceHandler, secrets: WebhookSecrets
    ) -> None:
        self._config = config
        self._bot = bot
        self._once = once
        self.secret = secrets.current
        self._accepted = [
            secret.encode() for secret in (secrets.current, secrets.legacy) if secret is not None
        ]
        self._closing = False
        self._in_hand: set[asyncio.Task[web.Response]] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(self._config.path, self.receive)

    async def close(self, within_s: float = 10.0) -> None:
        """Answer new requests 503 (Telegram retries, maybe on another instance) and let
        the updates in hand finish."""
        self._closing = True
        if self._in_hand:
            await asyncio.wait(self._in_hand, timeout=within_s)

    def accepts(self, given: bytes) -> bool:
        """Whether the header holds a secret of ours. Each compared in constant time, and all
        of them always: the time taken says nothing either."""
        matches = [hmac.compare_digest(given, secret) for secret in self._accepted]
        return any(matches)

    async def receive(self, request: web.Request) -> web.Response:
        if self._closing:
            return _answer(503, "this instance is stopping; Telegram will retry")
        # Header bytes that are not UTF-8 arrive as surrogates: they cannot match, nor raise.
        given = request.headers.get(SECRET_HEADER, "").encode(errors="replace")
        if not self.accepts(given):
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
        handled = await self._once.handle(update, busy_wait_s=BUSY_WAIT_S)
        if handled is Handled.ELSEWHERE:
            return _answer(503, "this update is being handled; Telegram will retry")
        if handled is Handled.FAILED:
            return _answer(503, "the update could not be handled; Telegram will retry")
        return web.Response(text="ok")


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the update"
    return f"{where}: {first['msg']}"[:200]


def _answer(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason)
