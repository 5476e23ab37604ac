"""The test server's webhooks: setWebhook / deleteWebhook / getWebhookInfo as the Bot API
documents them, delivery by POST with the secret header, retries with back-off, a chat's
order, and the test knobs (round-robin targets, a lost answer). A real aiogram Bot sets the
webhook; a plain aiohttp server plays the bot's endpoint."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError
from aiohttp import web

from tests.doubles.telegram_server.flood import Limits
from tests.doubles.telegram_server.server import TelegramServer
from tests.doubles.telegram_server.state import BotInfo
from tests.doubles.telegram_server.webhooks import SECRET_HEADER

TOKEN = "123456:TEST-token"
SECRET = "s3cret_token-1"
RELAXED = Limits(
    per_chat_per_s=1e6, per_chat_burst=10**6, per_group_per_min=10**6, global_per_s=10**6
)


class Endpoint:
    """A bot's webhook endpoint: records what arrives, answers with `status` (a list: one
    answer per request, the last one repeated)."""

    def __init__(self, status: list[int] | None = None) -> None:
        self.received: list[tuple[dict[str, Any], str | None]] = []
        self.status = status or [200]
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        self.received.append((json.loads(await request.read()), request.headers.get(SECRET_HEADER)))
        status = self.status.pop(0) if len(self.status) > 1 else self.status[0]
        return web.Response(status=status)

    def texts(self) -> list[str]:
        return [u["message"]["text"] for u, _ in self.received if "message" in u]


@pytest.fixture
async def server() -> AsyncIterator[TelegramServer]:
    srv = TelegramServer(RELAXED)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
def info(server: TelegramServer) -> BotInfo:
    return server.add_bot(TOKEN, "otklik_bot")


@pytest.fixture
async def bot(server: TelegramServer, info: BotInfo) -> AsyncIterator[Bot]:
    client = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(server.api_base)))
    yield client
    await client.session.close()


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    hook = Endpoint()
    await hook.start()
    yield hook
    await hook.stop()


async def test_set_webhook_info_and_delete(
    server: TelegramServer, bot: Bot, info: BotInfo, endpoint: Endpoint
) -> None:
    empty = await bot.get_webhook_info()
    assert (empty.url, empty.has_custom_certificate, empty.pending_update_count) == ("", False, 0)
    assert empty.max_connections is None and empty.allowed_updates is None

    assert await bot.set_webhook(
        endpoint.url,
        secret_token=SECRET,
        allowed_updates=["message", "callback_query"],
        max_connections=250,  # clamped to 100, as telegram-bot-api does
    )
    hook = await bot.get_webhook_info()
    assert hook.url == endpoint.url
    assert hook.max_connections == 100
    assert hook.allowed_updates == ["callback_query", "message"]
    assert hook.last_error_date is None

    # getUpdates is refused while a webhook is set
    with pytest.raises(TelegramConflictError) as err:
        await bot.get_updates(timeout=0)
    assert "can't use getUpdates method while webhook is active" in err.value.message

    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates(timeout=0) == []


async def test_set_webhook_checks_url_and_secret(server: TelegramServer, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="HTTPS URL must be provided"):
        await bot.set_webhook("http://example.org/hook")
    with pytest.raises(TelegramBadRequest, match="ports 80, 88, 443 or 8443"):
        await bot.set_webhook("https://example.org:8080/hook")
    with pytest.raises(TelegramBadRequest, match="secret token contains unallowed characters"):
        await bot.set_webhook("https://example.org/hook", secret_token="no spaces")
    with pytest.raises(TelegramBadRequest, match="secret token is too long"):
        await bot.set_webhook("https://example.org/hook", secret_token="a" * 257)
    assert (await bot.get_webhook_info()).url == ""


async def test_a_waiting_poll_ends_with_409_when_a_webhook_is_set(
    server: TelegramServer, bot: Bot, info: BotInfo, endpoint: Endpoint
) -> None:
    other = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(server.api_base)))
    poll = asyncio.create_task(other.get_updates(timeout=30))
    await server.wait_for(lambda: server.is_polling(info))
    await bot.set_webhook(endpoint.url)
    with pytest.raises(TelegramConflictError):
        await asyncio.wait_for(poll, 5)
    await other.session.close()


async def test_updates_are_posted_with_the_secret_in_order(
    server: TelegramServer, bot: Bot, info: BotInfo, endpoint: Endpoint
) -> None:
    ann = server.create_user("Ann", "ann")
    group = server.create_chat("supergroup", "Ops")
    server.add_member(group.id, ann, announce=False)
    server.send_user_message(group.id, ann, "queued before the webhook")
    await bot.set_webhook(endpoint.url, secret_token=SECRET)
    for n in range(5):
        server.send_user_message(group.id, ann, f"message {n}")
    await server.wait_for(lambda: len(endpoint.received) == 6)
    assert endpoint.texts() == ["queued before the webhook"] + [f"message {n}" for n in range(5)]
    assert {secret for _, secret in endpoint.received} == {SECRET}
    assert server.pending_updates(info) == []
    assert (await bot.get_webhook_info()).pending_update_count == 0


async def test_a_failed_delivery_is_retried_and_holds_its_chat(
    server: TelegramServer, bot: Bot, info: BotInfo
) -> None:
    hook = Endpoint(status=[500, 403, 200])
    await hook.start()
    try:
        ann = server.create_user("Ann", "ann")
        group = server.create_chat("supergroup", "Ops")
        server.add_member(group.id, ann, announce=False)
        await bot.set_webhook(hook.url)
        server.send_user_message(group.id, ann, "first")
        server.send_user_message(group.id, ann, "second")
        await server.wait_for(lambda: hook.texts()[-1:] == ["second"])
        # the first one three times (500, 403, then 200), and only then the second
        assert hook.texts() == ["first", "first", "first", "second"]
        info_ = await bot.get_webhook_info()
        assert info_.last_error_message == "Wrong response from the webhook: 403 Forbidden"
        assert info_.last_error_date is not None
        assert [d.status for d in server.deliveries()] == [500, 403, 200, 200]
    finally:
        await hook.stop()


async def test_an_unreachable_webhook_keeps_its_updates(
    server: TelegramServer, bot: Bot, info: BotInfo, endpoint: Endpoint
) -> None:
    ann = server.create_user("Ann", "ann")
    await endpoint.stop()  # nobody listens there now
    await bot.set_webhook(endpoint.url)
    server.send_user_message(ann.id, ann, "hello")
    await server.wait_for(lambda: len(server.deliveries()) >= 2)
    assert {d.error for d in server.deliveries()} == {"Connection refused"}
    assert len(server.pending_updates(info)) == 1
    assert (await bot.get_webhook_info()).last_error_message == "Connection refused"


async def test_round_robin_targets_and_a_lost_answer(
    server: TelegramServer, bot: Bot, info: BotInfo
) -> None:
    first, second = Endpoint(), Endpoint()
    await first.start()
    await second.start()
    try:
        ann = server.create_user("Ann", "ann")
        group = server.create_chat("supergroup", "Ops")
        server.add_member(group.id, ann, announce=False)
        server.set_webhook_targets(info, [first.url, second.url])
        await bot.set_webhook("https://bot.example.org/hook", secret_token=SECRET)
        for n in range(4):
            server.send_user_message(group.id, ann, f"m{n}")
        await server.wait_for(lambda: len(first.received) + len(second.received) == 4)
        assert first.texts() == ["m0", "m2"] and second.texts() == ["m1", "m3"]

        # The endpoint answers 200 but the answer is lost: the update comes again.
        server.send_user_message(group.id, ann, "again")
        update_id = server.lose_webhook_answer(info)
        await server.wait_for(lambda: len(server.deliveries(update_id)) == 2)
        assert [d.error for d in server.deliveries(update_id)] == ["Read timeout expired", None]
        assert first.texts()[-1] == second.texts()[-1] == "again"  # one on each instance
        assert server.pending_updates(info) == []
    finally:
        await first.stop()
        await second.stop()
