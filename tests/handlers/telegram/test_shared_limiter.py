"""The rate limiter with send slots shared through PostgreSQL (handlers/telegram/limits.py over
store/send_slots.py): another instance's sends count, presses keep their reserve across
instances, and a database that cannot be asked delays sends, never lets them through."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from handlers.telegram import limits
from handlers.telegram.limits import RateLimiter, TelegramLimits
from store.db import Database
from store.send_slots import SqlSendSlots
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP, POSTGRES_URL

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_UP, reason=POSTGRES_SKIP),
]

GROUP = -100123
# A chat may take a group's whole minute at once here: the group window is the point.
LIMITS = TelegramLimits(per_chat_per_s=20.0, per_chat_burst=20)


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{name}"'))
    first = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": name}})
    try:
        await first.upgrade()
        await first.dispose()
        yield name
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        await admin.dispose()


@contextlib.asynccontextmanager
async def instance(schema: str, url: str = POSTGRES_URL) -> AsyncIterator[RateLimiter]:
    database = Database(url, connect_args={"server_settings": {"search_path": schema}})
    slots = SqlSendSlots(database, timeout_s=1.0)
    try:
        yield RateLimiter(LIMITS, shared=slots, scope="telegram:1")
    finally:
        await slots.close()
        await database.dispose()


async def finishes(acquiring: asyncio.Future[None], within_s: float) -> bool:
    done, _ = await asyncio.wait({acquiring}, timeout=within_s)
    return bool(done)


# Well within the group's minute, after which the first instance's slots would free: a send
# that went within it did not wait for them. Generous: on a loaded CI machine a reservation
# may time out (1 s here) and be asked again a second later, more than once.
WITHIN_THE_MINUTE_S = 30


async def test_another_instances_sends_count_and_presses_keep_their_reserve(schema: str) -> None:
    async with instance(schema) as first, instance(schema) as second:
        for _ in range(17):  # a group's minute, less the three slots kept for presses
            await asyncio.wait_for(first.acquire(GROUP), timeout=WITHIN_THE_MINUTE_S)
        card = asyncio.ensure_future(second.acquire(GROUP))
        # The second instance has sent nothing, yet its card waits for the first's minute.
        assert not await finishes(card, 1.0)
        for _ in range(3):  # a press in either instance still goes, without that wait
            await asyncio.wait_for(
                second.acquire(GROUP, urgency=11, press=True), timeout=WITHIN_THE_MINUTE_S
            )
        assert not await finishes(
            asyncio.ensure_future(first.acquire(GROUP, urgency=11, press=True)), 0.5
        )
        card.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await card


class DatabaseSwitch:
    """A TCP relay to PostgreSQL that can be cut: while cut it drops every connection."""

    def __init__(self) -> None:
        self.up = False
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def serve(self) -> asyncio.Server:
        return await asyncio.start_server(self._relay, "127.0.0.1", 0)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        target = make_url(POSTGRES_URL)
        upstream_reader, upstream_writer = await asyncio.open_connection(
            target.host, target.port or 5432
        )
        self._writers += [writer, upstream_writer]
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        for pipe in self._pipes:
            pipe.cancel()


async def test_a_send_waits_while_the_database_is_down_and_goes_once_it_is_back(
    schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "SHARED_RETRY_S", 0.2)
    switch = DatabaseSwitch()
    server = await switch.serve()
    port = server.sockets[0].getsockname()[1]
    relayed = make_url(POSTGRES_URL).set(host="127.0.0.1", port=port)
    try:
        async with instance(schema, relayed.render_as_string(hide_password=False)) as limiter:
            sending = asyncio.ensure_future(limiter.acquire(GROUP))
            assert not await finishes(sending, 1.0)  # never unlimited: it waits
            switch.up = True
            assert await finishes(sending, 5.0)
            await sending
        # Counted once in each window, although it was asked while the database was down.
        database = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
        async with database.engine.connect() as conn:
            counted = await conn.execute(
                text("SELECT scope, cardinality(sent) FROM send_slots ORDER BY scope")
            )
            assert dict(counted.tuples().all()) == {
                f"telegram:1:chat:{GROUP}": 1,
                "telegram:1:global": 1,
                f"telegram:1:group:{GROUP}": 1,
            }
        await database.dispose()
    finally:
        switch.close()
        server.close()
        await server.wait_closed()
