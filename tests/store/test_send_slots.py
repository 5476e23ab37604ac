"""Send slots shared through PostgreSQL (store/send_slots.py): grants, refusals with the wait,
the database's clock, all or nothing, instances reserving at once, and a database that
cannot be asked. Real PostgreSQL: the slots exist for it alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from sqlalchemy import make_url, text

from bot.ports import SendSlotsUnavailable, SlotScope
from store.db import Database
from store.send_slots import SqlSendSlots
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP, POSTGRES_URL, Instances

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_UP, reason=POSTGRES_SKIP),
]


def window(key: str, limit: int, span_s: float = 60.0, usable: int | None = None) -> SlotScope:
    return SlotScope(key, limit=limit, span_s=span_s, usable=limit if usable is None else usable)


def on_time(db: Database) -> SqlSendSlots:
    """Slots that count no grant as late. A grant answered late is given up and asked again
    (tested on its own below): on a loaded machine that would add a spent stamp here and
    there, which the exact counts of the other tests do not expect."""
    return SqlSendSlots(db, late_after_s=60.0)


async def stored(db: Database, key: str) -> list[datetime]:
    async with db.engine.connect() as conn:
        sent = (
            await conn.execute(text("SELECT sent FROM send_slots WHERE scope = :k"), {"k": key})
        ).scalar_one_or_none()
    return list(sent or [])


async def test_a_window_grants_its_limit_then_says_how_long_to_wait(
    instances: Instances,
) -> None:
    db = await instances()
    slots = on_time(db)
    try:
        chat = window("t:chat:-1", limit=3, span_s=2.0)
        assert [await slots.reserve([chat]) for _ in range(3)] == [0.0, 0.0, 0.0]
        wait = await slots.reserve([chat])
        assert 1.0 < wait <= 2.0  # the first of the three leaves the window then
        assert len(await stored(db, "t:chat:-1")) == 3  # a refusal counts nothing
        await asyncio.sleep(wait)
        assert await slots.reserve([chat]) == 0.0
        assert len(await stored(db, "t:chat:-1")) == 3  # the window keeps its limit's worth
    finally:
        await slots.close()


async def test_a_send_counts_in_every_window_or_in_none(instances: Instances) -> None:
    db = await instances()
    slots = on_time(db)
    try:
        group = window("t:group:-7", limit=2)
        assert await slots.reserve([window("t:chat:-7", 5), group]) == 0.0
        assert await slots.reserve([window("t:chat:-7", 5), group]) == 0.0
        # The group is full: the chat and the bot's window must not count this send.
        assert await slots.reserve([window("t:chat:-7", 5), window("t:global", 30), group]) > 0
        assert len(await stored(db, "t:chat:-7")) == 2
        assert await stored(db, "t:global") == []
    finally:
        await slots.close()


async def test_slots_kept_for_urgent_sends(instances: Instances) -> None:
    db = await instances()
    slots = on_time(db)
    try:
        card = window("t:group:-9", limit=5, usable=3)
        press = window("t:group:-9", limit=5)
        assert [await slots.reserve([card]) for _ in range(3)] == [0.0] * 3
        assert await slots.reserve([card]) > 0  # two of five are left to presses
        assert [await slots.reserve([press]) for _ in range(2)] == [0.0] * 2
        assert await slots.reserve([press]) > 0
    finally:
        await slots.close()


async def test_the_database_clock_decides(instances: Instances) -> None:
    """Send times are the database's, and waits are counted from its clock: instances on
    machines whose clocks disagree still agree on the windows."""
    db = await instances()
    slots = on_time(db)
    try:
        async with db.engine.begin() as conn:
            # Three sends the database saw 50 s ago, in a window of 60 s.
            await conn.execute(
                text(
                    "INSERT INTO send_slots (scope, sent) SELECT 't:chat:-3', "
                    "array_fill(clock_timestamp() - interval '50 seconds', ARRAY[3])"
                )
            )
        wait = await slots.reserve([window("t:chat:-3", limit=3, span_s=60.0)])
        assert 9.0 < wait <= 10.0
        assert await slots.reserve([window("t:chat:-4", limit=3)]) == 0.0
        async with db.engine.connect() as conn:
            database_now = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
        (sent,) = await stored(db, "t:chat:-4")
        assert abs((database_now - sent).total_seconds()) < 5
    finally:
        await slots.close()


async def test_instances_reserving_at_once_never_overfill_a_window(instances: Instances) -> None:
    """Two instances, forty sends each at once over three groups and the bot's window: the bot
    gets exactly its limit, each group at most its own, and no reservation deadlocks."""
    first, second = await instances(), await instances()
    # Late grants spent (see on_time) would leave fewer than 25 granted here.
    pools = [on_time(db) for db in (first, first, second, second)]

    async def send(slots: SqlSendSlots, n: int) -> tuple[str, bool]:
        group = f"t:group:-{n % 3}"
        scopes = [window(group, limit=10), window("t:global", limit=25)]
        if n % 2:  # the keys come in either order: the statement locks them sorted
            scopes.reverse()
        return group, await slots.reserve(scopes) == 0.0

    try:
        results = await asyncio.gather(*(send(pools[n % 4], n) for n in range(80)))
        granted = [group for group, ok in results if ok]
        assert len(granted) == 25
        assert all(granted.count(f"t:group:-{g}") <= 10 for g in range(3))
        assert len(await stored(first, "t:global")) == 25
    finally:
        for slots in pools:
            await slots.close()


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A port that accepts connections and never answers: a database that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_database_that_cannot_be_asked_refuses_with_an_error() -> None:
    refused = Database("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        with pytest.raises(SendSlotsUnavailable):
            await SqlSendSlots(refused).reserve([window("t:chat:1", 3)])
    finally:
        await refused.dispose()
    async with silent_server() as port:
        hanging = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/none")
        try:
            with pytest.raises(SendSlotsUnavailable):
                await SqlSendSlots(hanging, timeout_s=0.5).reserve([window("t:chat:1", 3)])
        finally:
            await hanging.dispose()


async def test_sqlite_has_no_shared_slots(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        with pytest.raises(ValueError, match="SQLite"):
            SqlSendSlots(db)
    finally:
        await db.dispose()


@contextlib.asynccontextmanager
async def slow_relay(delay_s: float) -> AsyncIterator[int]:
    """A TCP relay to PostgreSQL that holds each answer `delay_s` before passing it on."""
    pipes: set[asyncio.Task[None]] = set()
    writers: list[asyncio.StreamWriter] = []

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, hold: float) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                await asyncio.sleep(hold)
                sink.write(data)
                await sink.drain()
        sink.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = make_url(POSTGRES_URL)
        upstream_reader, upstream_writer = await asyncio.open_connection(
            target.host, target.port or 5432
        )
        writers.extend((writer, upstream_writer))
        for task in (pipe(reader, upstream_writer, 0.0), pipe(upstream_reader, writer, delay_s)):
            pipes.add(asyncio.create_task(task))

    server = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in writers:
            writer.close()
        for task in pipes:
            task.cancel()
        server.close()
        await server.wait_closed()


async def test_a_grant_answered_late_is_left_spent_and_asked_again(instances: Instances) -> None:
    """The database stamped a late grant long before the send can leave: it stays counted
    (spent), and a fresh one is asked for, twice at most, so a slow database still sends."""
    db = await instances()
    fast = on_time(db)  # the one grant before: not late, whatever the machine's load
    chat = window("t:chat:-5", limit=10)
    assert await fast.reserve([chat]) == 0.0
    await fast.close()
    async with slow_relay(0.3) as port:
        slow_db = Database(
            make_url(POSTGRES_URL).set(port=port).render_as_string(hide_password=False),
            connect_args={"server_settings": {"search_path": await search_path(db)}},
        )
        slow = SqlSendSlots(slow_db, timeout_s=30.0)
        try:
            assert await slow.reserve([chat]) == 0.0
        finally:
            await slow.close()
            await slow_db.dispose()
    assert len(await stored(db, "t:chat:-5")) == 1 + 3  # the first, two spent, the one used


async def search_path(db: Database) -> str:
    async with db.engine.connect() as conn:
        return str((await conn.execute(text("SHOW search_path"))).scalar_one())


async def scope_rows(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM send_slots"))).scalar_one())


async def test_idle_windows_are_pruned_so_the_table_stays_bounded(instances: Instances) -> None:
    """200 chats written to once each, in groups of 20 a little further apart than the idle
    time: the table holds the chats written to lately, never all 200."""
    db = await instances()
    async with db.engine.begin() as conn:  # a row made for a send that never went
        await conn.execute(text("INSERT INTO send_slots (scope, sent) VALUES ('t:chat:-0', '{}')"))
    slots = SqlSendSlots(db, keep_idle_s=0.3, prune_every_s=0.0)
    sizes = []
    try:
        for n in range(1, 201):
            assert await slots.reserve([window(f"t:chat:-{n}", limit=3, span_s=0.2)]) == 0.0
            sizes.append(await scope_rows(db))
            if n % 20 == 0:
                await asyncio.sleep(0.4)
    finally:
        await slots.close()
    assert await stored(db, "t:chat:-0") == []
    assert max(sizes) <= 21  # a group of 20 and the empty row at most, never all 200
    assert sizes[-1] <= 20


async def test_a_window_in_use_is_not_pruned_and_a_pruned_one_starts_afresh(
    instances: Instances,
) -> None:
    """However short the idle time, a row is kept while a send in it still counts (the
    longest window asked for): pruning never lets a chat over its limit."""
    first, second = await instances(), await instances()
    pruning = [SqlSendSlots(db, keep_idle_s=0.01, prune_every_s=0.0) for db in (first, second)]
    chat = window("t:chat:-42", limit=3, span_s=1.5)
    try:
        granted = [await pruning[n % 2].reserve([chat]) for n in range(3)]
        assert granted == [0.0] * 3
        await asyncio.sleep(0.3)  # far past the idle time, inside the window
        for n in range(4):  # each reservation prunes
            other = window(f"t:chat:{n}", limit=3, span_s=0.2)
            assert await pruning[n % 2].reserve([other]) == 0.0
        assert len(await stored(first, "t:chat:-42")) == 3
        assert await pruning[1].reserve([chat]) > 0  # still full: the limit holds
        await asyncio.sleep(1.6)  # the window has passed
        assert await pruning[0].reserve([window("t:chat:9", 3, span_s=0.2)]) == 0.0  # prunes
        assert await stored(first, "t:chat:-42") == []
        assert [await pruning[n % 2].reserve([chat]) for n in range(3)] == [0.0] * 3
        assert await pruning[0].reserve([chat]) > 0  # a pruned window counts afresh
    finally:
        for slots in pruning:
            await slots.close()
