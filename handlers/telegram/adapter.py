"""The Telegram side of a running Otklik: updates by long polling (only while this instance
leads: Telegram lets one poller in; polling.py) or by webhook (every instance serves it,
webhook.py), each acting once (once.py); the aiogram dispatcher, commands, delivery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiogram import Bot, Dispatcher
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand
from aiohttp import web

from bot.chat.answers import COMMANDS
from bot.chat.checks import ConfiguredChat
from bot.chat.inbound import ChatServices
from bot.leadership import Leadership
from bot.messages.texts import Texts, texts_for
from bot.ports import SendSlots
from bot.settings.connections import TelegramConfig
from bot.settings.fields import LOCALES
from handlers.telegram import buttons, commands, comments, replies
from handlers.telegram.checks import check_chats
from handlers.telegram.context import TRANSPORT, TelegramContext
from handlers.telegram.limits import RateLimiter, TelegramLimits
from handlers.telegram.once import OnceHandler
from handlers.telegram.polling import TelegramPoller
from handlers.telegram.render import TelegramRenderer
from handlers.telegram.seen import SeenChats
from handlers.telegram.session import TelegramSession
from handlers.telegram.transport import TelegramTransport
from handlers.telegram.webhook import TelegramWebhook, webhook_secrets
from store.db import Database

log = logging.getLogger(__name__)

POLL_AGAIN_S = 1.0  # after a polling that failed, before the next


class TelegramAdapter:
    """A bot.chat.inbound.ChatAdapter: polling or a webhook in, TelegramTransport out."""

    name = TRANSPORT

    def __init__(
        self,
        config: TelegramConfig,
        texts: Texts,
        chats: Sequence[ConfiguredChat] = (),
        *,
        database: Database,
        leadership: Leadership | None = None,
        instance: str = "",
        send_slots: SendSlots | None = None,
    ) -> None:
        session = TelegramSession(api=TelegramAPIServer.from_base(config.api_base))
        self.bot = Bot(config.token, session=session)
        # `send_slots`: the limits shared with other instances, per bot (its token's id).
        limiter = RateLimiter(
            TelegramLimits.from_config(config.limits),
            shared=send_slots,
            scope=f"telegram:{self.bot.id}",
        )
        self.transport = TelegramTransport(
            self.bot, TelegramRenderer(texts), limiter, protect_content=config.protect_content
        )
        self._config = config
        self._texts = texts
        self._chats = list(chats)  # the departments' chats, checked at start
        self._dispatcher = Dispatcher()
        # Order matters: buttons, then commands, then citizens' comments and private messages,
        # then free-text replies to our messages.
        self._dispatcher.include_routers(
            buttons.make_router(),
            commands.make_router(),
            comments.make_router(
                (g.chat_id for g in config.discussion_groups), config.direct_messages
            ),
            replies.make_router(),
        )
        # Every update's chat, for `otklik chats`; the log it writes to comes with start.
        self._seen = SeenChats(None)
        self._dispatcher.update.outer_middleware(self._seen)
        self._database = database
        # Long polling waits for it; a lone process leads from the start.
        self._leadership = leadership or Leadership()
        self._instance = instance
        self._polling: asyncio.Task[None] | None = None
        self.webhook: TelegramWebhook | None = None

    async def start(self, services: ChatServices) -> None:
        me = await self.bot.get_me()
        log.info("telegram: @%s, updates by %s", me.username, self._config.mode)
        await comments.check_discussion_groups(self.bot, me, self._config.discussion_groups)
        if services.problems is not None:
            await services.problems.report(TRANSPORT, await check_chats(self.bot, me, self._chats))
        self._seen.chats = services.chats
        await self._register_commands()
        # Claimed in the database, so that each update acts once whichever instance sees it.
        # Not when one process polls (SQLite): nobody else can see its updates, and the offset
        # it stores keeps a restart from fetching handled ones again.
        once = OnceHandler(
            self.bot,
            self._dispatcher,
            self._database,
            services.clock,
            self._instance,
            self._config.webhook.reclaim_after_s,
            claims=self._config.mode == "webhook" or not self._database.is_sqlite,
            ctx=TelegramContext.of(services),  # what every handler gets as `ctx`
        )
        if self._config.mode == "webhook":
            secrets = await webhook_secrets(self._config.webhook, self._database, self.bot.id)
            self.webhook = TelegramWebhook(self._config.webhook, self.bot, once, secrets)
            return  # the webhook is set once the endpoint is served (open_webhook)
        poller = TelegramPoller(
            self.bot,
            once,
            self._database,
            services.clock,
            self._dispatcher.resolve_used_update_types(),
        )
        self._polling = asyncio.create_task(
            self._poll_while_leading(poller), name="telegram-polling"
        )

    # ---- webhook mode -------------------------------------------------------------------

    def add_webhook_routes(self, app: web.Application) -> None:
        """The endpoint, on the API's HTTP server (handlers/app.py); nothing in polling mode."""
        if self.webhook is not None:
            self.webhook.add_routes(app)

    async def open_webhook(self) -> None:
        """setWebhook, once the endpoint listens. Every instance sets the same URL, secret
        and update types; none deletes it at stop, the others still serve it."""
        if self.webhook is None:
            return
        settings = self._config.webhook
        await self.bot.set_webhook(
            settings.public_url,
            secret_token=self.webhook.secret,
            # What polling would ask for: the update types the routers handle.
            allowed_updates=self._dispatcher.resolve_used_update_types(),
            max_connections=settings.max_connections,
        )
        log.info("telegram: webhook set to %s", settings.public_url)

    # ---- polling mode -------------------------------------------------------------------

    async def _poll_while_leading(self, poller: TelegramPoller) -> None:
        """Long polling while this instance leads; stopped when it stops leading."""
        while True:
            await self._leadership.until_leading()
            await self._drop_stale_webhook()
            log.info("telegram: polling")
            polling = asyncio.create_task(poller.run(), name="telegram-getupdates")
            losing = asyncio.ensure_future(self._leadership.until_lost())
            try:
                await asyncio.wait({polling, losing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                losing.cancel()
                polling.cancel()  # the updates in hand finish first (polling.py)
                await asyncio.wait({polling})  # raises nothing, but our own cancellation
            if not polling.cancelled() and (error := polling.exception()) is not None:
                log.error("telegram: polling failed; polling again", exc_info=error)
            if self._leadership.leading:
                await asyncio.sleep(POLL_AGAIN_S)
            else:
                log.info("telegram: no longer the leader, polling stopped")

    async def _drop_stale_webhook(self) -> None:
        """A webhook left from webhook mode makes getUpdates fail with 409: drop it (its
        pending updates stay queued for the poll)."""
        try:
            info = await self.bot.get_webhook_info()
            if info.url:
                log.warning("telegram: polling mode; deleting the webhook %s", info.url)
                await self.bot.delete_webhook(drop_pending_updates=False)
        except TelegramAPIError as error:
            log.warning("telegram: could not check for a webhook (%s)", error)

    async def _register_commands(self) -> None:
        """The command menu in Russian and English; the configured language is the default."""
        for language in LOCALES:
            texts = texts_for(self._texts.templates_dir, language)
            menu = [BotCommand(command=c, description=texts.t(f"commands.{c}")) for c in COMMANDS]
            try:
                await self.bot.set_my_commands(menu, language_code=language)
                if language == self._texts.locale:
                    await self.bot.set_my_commands(menu)
            except TelegramAPIError as error:
                log.warning("telegram: could not register commands (%s)", error)

    async def stop(self) -> None:
        if self._polling is not None:
            self._polling.cancel()  # the poll stops, the updates in hand finish
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling
            self._polling = None
        if self.webhook is not None:
            await self.webhook.close()  # updates in hand are finished; new ones go elsewhere
        await self.bot.session.close()
