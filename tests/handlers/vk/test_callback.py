"""The Callback API endpoint on its own: never a 500, whatever comes in or fails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.clock import FrozenClock
from bot.settings.connections import VkConfig
from handlers.vk.callback import AUDITS_PER_MINUTE, REFUSED, VkCallback
from store.db import Database
from tests.doubles.vk_server import CallbackSender

GROUP = 5
SECRET = "Secret1"


async def serve(database: Database) -> AsyncIterator[CallbackSender]:
    config = VkConfig(group_id=GROUP, token="t" * 40, secret=SECRET, confirmation="abc")
    app = web.Application()
    VkCallback(
        config, database, FrozenClock(datetime(2026, 12, 6, tzinfo=UTC)), lambda: None
    ).add_routes(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield CallbackSender(f"http://{host}:{port}/vk/callback", GROUP, SECRET)
    finally:
        await runner.cleanup()


@pytest.fixture
async def stored(tmp_path: Path) -> AsyncIterator[tuple[CallbackSender, Database]]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/o.db")
    await database.upgrade()
    async for sender in serve(database):
        yield sender, database
    await database.dispose()


async def test_a_database_that_fails_is_503_for_vk_to_retry(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/absent/dir/o.db")
    async for sender in serve(database):
        comment = {"id": 1, "from_id": 9, "text": "x", "post_id": 1, "owner_id": -GROUP}
        answers = await sender.send("wall_reply_new", comment, retries=1)
        assert [a.status for a in answers] == [503, 503]
        # Refusals still answer, though they cannot be audited.
        forged = await sender.send("wall_reply_new", comment, secret="x", retries=0)
        assert [a.status for a in forged] == [403]
    await database.dispose()


async def test_malformed_bodies_are_400_and_unknown_events_ok(
    stored: tuple[CallbackSender, Database],
) -> None:
    sender, _ = stored
    for raw in (
        b"",
        b"[]",
        b'{"type": 5}',
        b'{"type": "wall_reply_new"}',
        b"\xff\xfe",
        b"[" * 100_000,
    ):
        assert (await sender.post(None, raw=raw))[0].status == 400, raw[:20]
    no_id = {"type": "wall_reply_new", "group_id": GROUP, "secret": SECRET, "object": {}}
    assert (await sender.post(no_id))[0].status == 400
    assert (await sender.send("group_join", {"user_id": 1}))[0].ok  # not taken, not retried
    old = {**no_id, "event_id": "e1", "v": "5.131"}
    assert (await sender.post(old))[0].text == "set API version 5.199 for this server in VK"


async def test_a_flood_of_forgeries_is_audited_only_so_far(
    stored: tuple[CallbackSender, Database],
) -> None:
    sender, database = stored
    for _ in range(AUDITS_PER_MINUTE + 10):
        assert (await sender.send("wall_reply_new", {}, secret="guess", retries=0))[0].status == 403
    async with database.uow() as uow:
        assert len(await uow.events.of_kind(REFUSED)) == AUDITS_PER_MINUTE


async def test_a_chunked_body_is_read_whole(stored: tuple[CallbackSender, Database]) -> None:
    sender, _ = stored
    comment = {"id": 7, "from_id": 9, "text": "Когда починят лифт?", "post_id": 1}
    body = json.dumps(
        {
            "type": "wall_reply_new",
            "group_id": GROUP,
            "secret": SECRET,
            "event_id": "chunked-1",
            "v": "5.199",
            "object": {**comment, "owner_id": -GROUP},
        }
    ).encode()

    async def in_pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 16):  # no length: aiohttp sends it chunked
            yield body[start : start + 16]
            await asyncio.sleep(0.001)

    async with aiohttp.ClientSession() as http, http.post(sender.url, data=in_pieces()) as answer:
        assert answer.status == 200, await answer.text()
        assert await answer.text() == "ok"
