"""The sandbox side of a running Otklik: a chat adapter whose chats are pages in a browser.

It delivers the outbox like Telegram and Matrix (SandboxTransport) and sends what people do
on the page through the same inbound path (bot/chat/inbound.py), so what works here works
there. Its pages and endpoints join the bot's own HTTP server (handlers/app.py).
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.chat.inbound import ChatServices
from bot.messages.texts import Texts
from bot.settings.config import Config
from handlers.sandbox.context import TRANSPORT, SandboxContext
from handlers.sandbox.feeds import CorpusSamples, FeedProvider
from handlers.sandbox.render import SandboxRenderer
from handlers.sandbox.shown import ChatLog
from handlers.sandbox.transport import SandboxTransport
from handlers.sandbox.web import PREFIX, SandboxWeb

log = logging.getLogger(__name__)


class SandboxAdapter:
    """A bot.chat.inbound.ChatAdapter: the page in, SandboxTransport out. `feeds`: groups of
    ready mentions the page offers besides the playbook corpus's (drill scenarios, say)."""

    name = TRANSPORT

    def __init__(
        self, config: Config, texts: Texts, feeds: list[FeedProvider] | None = None
    ) -> None:
        self.chats = ChatLog(config.sandbox.limits.keep_messages)
        self.transport = SandboxTransport(self.chats, SandboxRenderer(texts))
        samples = CorpusSamples(config, texts.t("sandbox.page.samples"))
        self.web = SandboxWeb(config, self.chats, [samples, *(feeds or [])])
        self._config = config

    def add_routes(self, app: web.Application) -> None:
        self.web.add_routes(app)

    def address(self) -> str:
        """Where to open it, as the operator would type it."""
        host, _, port = self._config.api.listen.rpartition(":")
        if host in ("0.0.0.0", "::", "[::]", ""):
            host = "127.0.0.1"
        return f"http://{host}:{port}{PREFIX}"

    async def start(self, services: ChatServices) -> None:
        self.web.attach(SandboxContext.of(services))

    async def stop(self) -> None:
        self.chats.close()  # ends the browsers' event streams, so the server can stop
