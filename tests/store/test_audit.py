"""The audit trail: the database refuses to rewrite events, the hash chain shows any change
made behind the triggers' back, and writers in several processes keep one chain."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from bot.model import SYSTEM_ACTOR, Event, EventKind
from store.audit import GENESIS
from store.db import Database
from store.models import Base
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP, POSTGRES_URL

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def denied(n: int, name: str = "Пётр Сидоров") -> Event:
    payload = {"action": "take", "reason": "no_right", "staff": False, "name": name, "n": n}
    return Event(
        None, T0 + timedelta(seconds=n), f"tg:{900 + n}", EventKind.DENIED, None, None, payload
    )


async def append(database: Database, *events: Event) -> None:
    async with database.uow() as uow:
        await uow.events.append(list(events))
        await uow.commit()


async def execute(database: Database, sql: str) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(text(sql))


async def drop_triggers(database: Database) -> None:
    """What someone with write access to the database file could do: the chain still tells."""
    if database.is_sqlite:
        await execute(database, "DROP TRIGGER events_refuse_update")
        await execute(database, "DROP TRIGGER events_refuse_delete")
    else:
        await execute(database, "DROP TRIGGER events_append_only ON events")


async def test_the_database_refuses_to_change_or_delete_an_event(database: Database) -> None:
    await append(database, denied(1), denied(2))
    for statement in (
        "UPDATE events SET kind = 'created' WHERE id = 1",
        "UPDATE events SET payload = '{}' WHERE id = 2",
        "UPDATE events SET prev_hash = hash WHERE id = 2",
        # Redaction's own shape, but no erasure event orders it.
        "UPDATE events SET nonce = NULL, redacted_by = 2 WHERE id = 1",
        "DELETE FROM events WHERE id = 2",
        "DELETE FROM events",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            await execute(database, statement)
    if not database.is_sqlite:
        with pytest.raises(DBAPIError, match="append-only"):
            await execute(database, "TRUNCATE events")
    async with database.reader() as uow:
        report = await uow.events.verify()
    assert report.ok and report.checked == 2


async def test_verify_follows_the_chain_and_names_the_first_broken_event(
    database: Database,
) -> None:
    async with database.reader() as uow:
        empty = await uow.events.verify()
    assert empty.ok and empty.checked == 0 and empty.head == GENESIS
    await append(database, *(denied(n) for n in range(1, 6)))
    async with database.reader() as uow:
        report = await uow.events.verify()
        records = await uow.events.records()
    assert report.ok and report.checked == 5 and report.head == records[-1].hash
    assert records[0].prev_hash == GENESIS
    assert [r.prev_hash for r in records[1:]] == [r.hash for r in records[:-1]]

    await drop_triggers(database)
    # A changed payload: the seal no longer matches.
    await execute(database, 'UPDATE events SET payload = \'{"name": "someone else"}\' WHERE id = 3')
    async with database.reader() as uow:
        report = await uow.events.verify()
    assert (report.ok, report.broken_at, report.checked) == (False, 3, 2)
    assert report.reason == "actor or payload changed"


@pytest.mark.parametrize(
    ("tamper", "broken_at", "reason"),
    [
        ("DELETE FROM events WHERE id = 3", 4, "not linked"),
        ("UPDATE events SET at = '2020-01-01 00:00:00.000000' WHERE id = 2", 2, "fields changed"),
        ("UPDATE events SET kind = 'created' WHERE id = 4", 4, "fields changed"),
        ("UPDATE events SET nonce = NULL WHERE id = 5", 5, "nonce removed"),
    ],
)
async def test_verify_detects_each_kind_of_tampering(
    sqlite_url: str, tamper: str, broken_at: int, reason: str
) -> None:
    database = Database(sqlite_url)
    await database.upgrade()
    try:
        await append(database, *(denied(n) for n in range(1, 6)))
        await drop_triggers(database)
        await execute(database, tamper)
        async with database.reader() as uow:
            report = await uow.events.verify()
        assert not report.ok and report.broken_at == broken_at
        assert report.reason and report.reason.startswith(reason)
    finally:
        await database.dispose()


async def test_chain_is_computed_at_commit_and_readable_in_the_same_transaction(
    database: Database,
) -> None:
    async with database.uow() as uow:
        await uow.events.append([denied(1)])
        assert [e.payload["n"] for e in await uow.events.of_kind(EventKind.DENIED)] == [1]
        await uow.events.append([denied(2)])
        # Not committed: nothing stays, and the chain does not remember it.
    async with database.uow() as uow:
        assert await uow.events.of_kind(EventKind.DENIED) == []
        await uow.events.append([denied(3)])
        await uow.commit()
    async with database.reader() as uow:
        report = await uow.events.verify()
    assert report.ok and report.checked == 1


@pytest.fixture
async def two_processes() -> AsyncIterator[tuple[Database, Database]]:
    """Two engines on one PostgreSQL schema: what two bot processes sharing a database are."""
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    options = {"server_settings": {"search_path": schema}}
    first = Database(POSTGRES_URL, connect_args=options)
    second = Database(POSTGRES_URL, connect_args=options)
    try:
        await first.upgrade()
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.mark.postgres
async def test_writers_in_two_processes_extend_one_chain(
    two_processes: tuple[Database, Database],
) -> None:
    first, second = two_processes

    async def writer(database: Database, offset: int) -> None:
        for n in range(15):
            async with database.uow() as uow:
                await uow.events.append([denied(offset + n), denied(offset + n + 1000)])
                await asyncio.sleep(0)  # let the other writer interleave
                await uow.commit()

    await asyncio.gather(writer(first, 0), writer(second, 100), writer(first, 200))
    async with second.reader() as uow:
        report = await uow.events.verify()
    assert report.ok and report.checked == 90


async def test_events_of_a_merge_or_a_refusal_need_no_case(database: Database) -> None:
    merge = Event(None, T0, SYSTEM_ACTOR, EventKind.AUTHOR_MERGED, None, None, {"keep": 1})
    async with database.uow() as uow:
        first_id = await uow.events.record(merge)
        second_id = await uow.events.record(denied(1))
        await uow.commit()
    assert (first_id, second_id) == (1, 2)
    async with database.reader() as uow:
        (record,) = await uow.events.records(1)
    assert record.id == 2 and record.payload["n"] == 1 and record.actor == "tg:901"


async def test_upgrade_chains_the_events_stored_before_it(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    try:
        await database.upgrade("0009")
        async with database.engine.begin() as conn:
            for n in range(1, 4):
                await conn.execute(
                    text(
                        "INSERT INTO events (case_id, at, actor, kind, payload) "
                        f"VALUES (NULL, '2026-11-20 10:00:0{n}.000000', 'spec', 'denied', "
                        f"'{{\"n\": {n}}}')"
                    )
                )
        await database.upgrade()
        async with database.reader() as uow:
            report = await uow.events.verify()
        assert report.ok and report.checked == 3
        await append(database, denied(4))
        async with database.reader() as uow:
            assert (await uow.events.verify()).checked == 4
        with pytest.raises(DBAPIError, match="append-only"):
            await execute(database, "DELETE FROM events WHERE id = 1")
    finally:
        await database.dispose()


async def test_a_schema_made_by_create_all_refuses_changes_too(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await append(database, denied(1))
        with pytest.raises(DBAPIError, match="append-only"):
            await execute(database, "UPDATE events SET kind = 'created'")
    finally:
        await database.dispose()
