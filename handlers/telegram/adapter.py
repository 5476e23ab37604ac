"""The Telegram side of a running Otklik: aiogram dispatcher polling, commands, delivery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand

from bot.chat.answers import COMMANDS
from bot.chat.checks import ConfiguredChat
from bot.chat.inbound import ChatServices
from bot.messages.texts import Texts, texts_for
from bot.ports import SendSlots
from bot.settings.connections import TelegramConfig
from bot.settings.fields import LOCALES
from handlers.telegram import buttons, commands, comments, replies
from handlers.telegram.checks import check_chats
from handlers.telegram.context import TRANSPORT, TelegramContext
from handlers.telegram.limits import RateLimiter, TelegramLimits
from handlers.telegram.render import TelegramRenderer
from handlers.telegram.seen import SeenChats
from handlers.telegram.transport import TelegramTransport

log = logging.getLogger(__name__)


class TelegramAdapter:
    """A bot.chat.inbound.ChatAdapter: polling in, TelegramTransport out."""

    name = TRANSPORT

    def __init__(
        self,
        config: TelegramConfig,
        texts: Texts,
        chats: Sequence[ConfiguredChat] = (),
        send_slots: SendSlots | None = None,
    ) -> None:
        session = AiohttpSession(api=TelegramAPIServer.from_base(config.api_base))
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
        self._polling: asyncio.Task[None] | None = None

    async def start(self, services: ChatServices) -> None:
        me = await self.bot.get_me()
        log.info("telegram: polling as @%s", me.username)
        await comments.check_discussion_groups(self.bot, me, self._config.discussion_groups)
        if services.problems is not None:
            await services.problems.report(TRANSPORT, await check_chats(self.bot, me, self._chats))
        self._seen.chats = services.chats
        await self._register_commands()
        polling = self._dispatcher.start_polling(
            self.bot,
            handle_signals=False,
            close_bot_session=False,
            ctx=TelegramContext.of(services),  # what every handler gets as `ctx`
        )
        self._polling = asyncio.create_task(polling, name="telegram-polling")

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
            with contextlib.suppress(RuntimeError):
                await self._dispatcher.stop_polling()
            with contextlib.suppress(asyncio.CancelledError):
                await self._polling
        await self.bot.session.close()
