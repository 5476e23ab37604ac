"""Two instances of the bot on one PostgreSQL database keep Telegram's limits together (issue 21).

Each "instance" is a process of its own with what a running Otklik delivers with: its own
Database engine on the shared database, its own RateLimiter with the shared send slots under
it (store/send_slots.py), its own aiogram Bot and TelegramTransport. Both send a hundred
messages each into the same three groups as fast as their limiters let them, one sender per
chat as the outbox delivers, against the Telegram test server at Telegram's real limits, both
sides run SCALE times faster. The server must answer no 429 and see no group get more than 20
messages in any (scaled) minute.

The same with in-process limits only (the behaviour before) gets 429s: the regression witness.
Last, the wiring: a whole App on PostgreSQL counts its cards' sends in the shared windows.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.clock import SystemClock
from bot.messages import views
from bot.messages.outbox import Delivery, OutboxItem, OutboxOp, RetryLater
from bot.messages.texts import DEFAULT_TEMPLATES_DIR, texts_for
from bot.model import Identity, Mention, Sentiment
from bot.settings.config import load_config
from bot.settings.playbook import load_playbook
from handlers.app import App
from handlers.telegram.limits import RateLimiter, TelegramLimits
from handlers.telegram.render import TelegramRenderer
from handlers.telegram.transport import TelegramTransport
from store.db import Database
from store.send_slots import SqlSendSlots
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP, POSTGRES_URL
from tests.doubles.bot_config import telegram_bot_config
from tests.doubles.telegram_server.flood import Limits
from tests.doubles.telegram_server.server import TelegramServer
from tests.doubles.telegram_world import TOKEN

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_UP, reason=POSTGRES_SKIP),
]

SCALE = 20  # a minute lasts 3 s on both sides
PER_INSTANCE = 100
GROUPS = 3
PER_GROUP_PER_MIN = 20
_keys = itertools.count(1)


class PlainHttpSession(AiohttpSession):
    async def close(self) -> None:
        # aiogram sleeps 250 ms here for TLS shutdown; plain HTTP to localhost has none.
        if self._session is not None and not self._session.closed:
            await self._session.close()


@dataclass
class Instance:
    transport: TelegramTransport
    slots: SqlSendSlots | None


@asynccontextmanager
async def shared_schema() -> AsyncIterator[str]:
    """A migrated schema of its own on the test database, which both instances open."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    first = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        await first.upgrade()
        await first.dispose()
        yield schema
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@asynccontextmanager
async def instance(api_base: str, schema: str, shared: bool) -> AsyncIterator[Instance]:
    database = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    bot = Bot(TOKEN, session=PlainHttpSession(api=TelegramAPIServer.from_base(api_base)))
    slots = SqlSendSlots(database) if shared else None
    limiter = RateLimiter(TelegramLimits(scale=SCALE), shared=slots, scope=f"telegram:{bot.id}")
    renderer = TelegramRenderer(texts_for(DEFAULT_TEMPLATES_DIR, "ru"))
    try:
        yield Instance(TelegramTransport(bot, renderer, limiter, protect_content=False), slots)
    finally:
        if slots is not None:
            await slots.close()
        await bot.session.close()
        await database.dispose()


async def send_all(who: Instance, name: str, chats: Sequence[int], count: int) -> list[str]:
    """`count` notices spread over the chats, each chat's in order by one sender (as the
    outbox delivers a chat's queue), all chats at once. Returns the refusals (429s)."""
    refused: list[str] = []

    async def sender(chat: int, numbers: range) -> None:
        for number in numbers:
            item = OutboxItem(
                transport="telegram",
                chat=str(chat),
                op=OutboxOp.POST,
                payload=views.notice_view("ui.truncated", count=number),
                idempotency_key=f"{name}-{next(_keys)}",
            )
            try:
                await who.transport.deliver(Delivery(item))
            except RetryLater as exc:
                refused.append(str(exc))

    await asyncio.gather(
        *(sender(chat, range(n, count, len(chats))) for n, chat in enumerate(chats))
    )
    return refused


def run_instance(
    api_base: str, schema: str, shared: bool, name: str, chats: list[int], count: int
) -> list[str]:
    """One instance in a process of its own, as instances run: its sends, its refusals."""

    async def run() -> list[str]:
        async with instance(api_base, schema, shared) as who:
            return await send_all(who, name, chats, count)

    return asyncio.run(run())


async def both_send(
    server: TelegramServer, schema: str, shared: bool, chats: list[int], count: int
) -> list[list[str]]:
    """Two instances, two processes, sending at once; the refusals each got."""
    loop = asyncio.get_running_loop()
    spawn = multiprocessing.get_context("spawn")  # nothing of this process's loop inherited
    with ProcessPoolExecutor(2, mp_context=spawn) as pool:
        return list(
            await asyncio.gather(
                *(
                    loop.run_in_executor(
                        pool, run_instance, server.api_base, schema, shared, name, chats, count
                    )
                    for name in ("a", "b")
                )
            )
        )


def most_in_any_window(stamps: list[float], width: float) -> int:
    return max(
        (sum(1 for t in stamps if start <= t < start + width) for start in stamps), default=0
    )


@asynccontextmanager
async def telegram_and_schema() -> AsyncIterator[tuple[TelegramServer, list[int], str]]:
    server = TelegramServer(Limits(time_scale=SCALE), monotonic=time.monotonic)
    await server.start()
    server.add_bot(TOKEN, "otklik_bot")
    groups = [
        server.create_chat("supergroup", f"Отдел {n}", bot_status="administrator").id
        for n in range(GROUPS)
    ]
    try:
        async with shared_schema() as schema:
            yield server, groups, schema
    finally:
        await server.stop()


async def test_two_instances_share_telegrams_limits_through_postgresql() -> None:
    async with telegram_and_schema() as (server, groups, schema):
        refused = await both_send(server, schema, True, groups, PER_INSTANCE)
        assert refused == [[], []]
        assert server.stats.count_429 == 0
        delivered = 0
        for group in groups:
            sent = [m for m in server.messages(group) if m.bot_id is not None]
            delivered += len(sent)
            # What the server saw, on its own clock, in its own (scaled) minutes.
            stamps = [
                call.at * SCALE
                for call in server.stats.calls
                if call.chat_id == group and call.method == "sendMessage"
            ]
            assert len(stamps) == len(sent)
            assert most_in_any_window(stamps, 60.0) <= PER_GROUP_PER_MIN
        assert delivered == 2 * PER_INSTANCE


async def test_in_process_limits_alone_let_two_instances_break_them() -> None:
    """The regression witness: each instance keeps the limits alone, together they break them."""
    async with telegram_and_schema() as (server, groups, schema):
        # Each sends 40 into one group: at most 17 a (scaled) minute by its own count.
        refused = await both_send(server, schema, False, groups[:1], 40)
        assert server.stats.count_429 > 0
        assert sum(len(r) for r in refused) == server.stats.count_429


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A database of its own on the test server (the App takes a URL, not a schema)."""
    url = make_url(POSTGRES_URL).set(database=f"t_{uuid.uuid4().hex[:12]}")
    plain = make_url(POSTGRES_URL).set(drivername="postgresql")
    admin = await asyncpg.connect(plain.render_as_string(hide_password=False))
    try:
        await admin.execute(f'CREATE DATABASE "{url.database}"')
        yield url.render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        await admin.close()


async def test_a_running_bot_on_postgresql_reserves_each_send_in_the_database(
    tmp_path: Path,
) -> None:
    """The wiring: App on PostgreSQL gives its Telegram adapter the shared send slots, and the
    card a new case gets was counted in its chat's, its group's and the bot's windows."""
    server = TelegramServer(Limits(time_scale=SCALE), monotonic=time.monotonic)
    await server.start()
    server.add_bot(TOKEN, "otklik_bot")
    chats = {
        name: server.create_chat("supergroup", name, bot_status="administrator").id
        for name in ("housing", "transport", "coordination")
    }
    try:
        async with fresh_database() as url:
            path = tmp_path / "config.yaml"
            path.write_text(
                telegram_bot_config(
                    database_url=url,
                    api_base=server.api_base,
                    token=TOKEN,
                    scale=SCALE,
                    chats=chats,
                    staff=(),
                ),
                encoding="utf-8",
            )
            config = load_config(path, env={})
            app = App(config, load_playbook(config.playbooks.path), SystemClock())
            assert app.send_slots is not None
            await app.start()
            try:
                mention = Mention(
                    source="vk",
                    external_id="m1",
                    text="Третий день нет отопления, батареи ледяные",
                    author=Identity("vk", "id1", "Пётр Сидоров"),
                    received_at=datetime.now(UTC),
                    url="https://vk.com/wall-1_1",
                    sentiment=Sentiment.NEGATIVE,
                )
                result = await app.intake.receive(mention)
                assert result.case is not None

                def posted() -> list[int]:
                    return [
                        chat
                        for chat in chats.values()
                        if any(m.bot_id is not None for m in server.messages(chat))
                    ]

                await server.wait_for(lambda: bool(posted()), 10)
                (chat,) = posted()
                async with app.database.engine.connect() as conn:
                    rows = await conn.execute(
                        text("SELECT scope, cardinality(sent) FROM send_slots")
                    )
                    counted = dict(rows.tuples().all())
            finally:
                await app.stop()
    finally:
        await server.stop()
    bot = TOKEN.split(":")[0]
    for scope in (f"chat:{chat}", f"group:{chat}", "global"):
        assert counted.get(f"telegram:{bot}:{scope}", 0) >= 1, counted
