"""The store on SQLite and PostgreSQL: migrations, repositories, transactions."""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from bot.messages.outbox import OutboxItem, OutboxOp, OutboxStatus
from bot.model import (
    Author,
    AuthorLabel,
    Case,
    CaseState,
    Draft,
    DraftStatus,
    Event,
    EventKind,
    Identity,
    Mention,
    Priority,
    Sentiment,
)
from bot.ports import ConcurrentUpdate
from store.db import Database
from store.models import Base

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def make_case(**changes: object) -> Case:
    base = Case(
        id=None,
        department="housing",
        state=CaseState.NEW,
        priority=Priority.HIGH,
        created_at=T0,
        source="vk",
        codes=("heating",),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_migrations_create_exactly_the_models(database: Database) -> None:
    def diff(connection: Connection) -> list[object]:
        def on_this_engine(item: object, *_: object) -> bool:
            # An index the model creates on one engine only (Index.ddl_if) is compared there.
            only = getattr(item, "_ddl_if", None)
            return only is None or only.dialect in (None, connection.dialect.name)

        opts = {"compare_type": True, "include_object": on_this_engine}
        context = MigrationContext.configure(connection, opts=opts)
        with warnings.catch_warnings():
            # SQLite cannot reflect an expression index (urgency DESC): alembic says it skips
            # it, before asking on_this_engine; the index is PostgreSQL's only anyway.
            warnings.filterwarnings("ignore", "autogenerate skipping .* expression-based index")
            return list(compare_metadata(context, Base.metadata))

    async with database.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    assert {"cases", "mentions", "authors", "events", "outbox", "drafts"} <= tables
    assert await database.current_revision() == "0028"
    await database.upgrade()  # running it again is a no-op


async def test_sqlite_pragmas(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    async with db.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    await db.dispose()


async def test_sqlite_units_of_work_take_turns(sqlite_url: str) -> None:
    # Concurrent writers wait for each other in the process, not in SQLite's busy handler.
    db = Database(sqlite_url)
    await db.upgrade()
    order: list[str] = []

    async def write(name: str) -> None:
        async with db.uow() as uow:
            order.append(f"{name} in")
            await uow.kv.set(name, "1")
            await asyncio.sleep(0.01)  # give the other task every chance to cut in
            await uow.commit()
            order.append(f"{name} out")

    await asyncio.gather(write("a"), write("b"), write("c"))
    assert order == ["a in", "a out", "b in", "b out", "c in", "c out"]

    # A nested unit of work in the same task does not wait for itself …
    async with db.uow() as outer:
        async with db.uow() as inner:
            assert await inner.kv.get("a") == "1"
        await outer.kv.set("d", "1")
        await outer.commit()

    # … and a reader does not wait for a writer.
    held, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with db.uow() as uow:
            await uow.kv.set("e", "1")
            held.set()
            await release.wait()
            await uow.commit()

    holder = asyncio.create_task(hold())
    await held.wait()
    async with db.reader() as uow:
        assert await asyncio.wait_for(uow.kv.get("d"), 5) == "1"
    release.set()
    await holder
    async with db.uow() as uow:
        assert await uow.kv.get("e") == "1"
    await db.dispose()


async def test_case_round_trip_with_drafts_and_optimistic_lock(database: Database) -> None:
    async with database.uow() as uow:
        case = await uow.cases.add(make_case())
        await uow.commit()
    assert case.id is not None

    draft = Draft(1, "Мы разбираемся", "spec", T0 + timedelta(minutes=5))
    taken = replace(
        case,
        state=CaseState.AWAITING_APPROVAL,
        assignee="spec",
        drafts=(draft,),
        first_touched_at=T0 + timedelta(minutes=1),
        version=1,
    )
    async with database.uow() as uow:
        await uow.cases.save(taken, expected_version=0)
        await uow.commit()

    approved = replace(
        taken,
        state=CaseState.APPROVED,
        version=2,
        approved_at=T0 + timedelta(minutes=9),
        drafts=(replace(draft, status=DraftStatus.APPROVED, reviewer="appr"),),
    )
    async with database.uow() as uow:
        await uow.cases.save(approved, expected_version=1)
        await uow.commit()

    async with database.uow() as uow:
        loaded = await uow.cases.get(case.id)
        assert loaded == approved
        assert loaded is not None and loaded.first_touched_at is not None
        assert loaded.first_touched_at.tzinfo is not None
        with pytest.raises(ConcurrentUpdate):
            await uow.cases.save(replace(approved, version=3), expected_version=1)
        assert [c.id for c in await uow.cases.list_open("housing")] == [case.id]
        assert await uow.cases.list_open("transport") == []


async def test_uncommitted_work_is_rolled_back(database: Database) -> None:
    with pytest.raises(RuntimeError):
        async with database.uow() as uow:
            await uow.cases.add(make_case())
            raise RuntimeError("crash before commit")
    async with database.uow() as uow:
        assert await uow.cases.list_open() == []


async def test_mentions_are_idempotent_and_authors_keep_identities(database: Database) -> None:
    identity = Identity("vk", "id42", "Пётр Сидоров", "https://vk.com/id42")
    async with database.uow() as uow:
        author = await uow.authors.add(Author(None, "Пётр Сидоров", (identity,), first_seen_at=T0))
        mention = Mention(
            source="vk",
            external_id="wall-1_100",
            text="Опять нет горячей воды",
            author=identity,
            received_at=T0,
            sentiment=Sentiment.NEGATIVE,
            codes=("water",),
            author_id=author.id,
        )
        stored = await uow.mentions.add(mention)
        duplicate = await uow.mentions.add(replace(mention, text="changed"))
        await uow.commit()
    assert stored is not None and stored.id is not None
    assert duplicate is None

    email = Identity("email", "petr@example.org", "Пётр")
    async with database.uow() as uow:
        found = await uow.authors.find_by_identity(identity)
        assert found is not None and found.id == author.id
        await uow.authors.save(
            replace(
                found,
                identities=(*found.identities, email),
                negative_count=3,
                labels=frozenset({AuthorLabel.SYSTEMATIC_CRITIC}),
            )
        )
        await uow.commit()
    async with database.uow() as uow:
        by_email = await uow.authors.find_by_identity(email)
        assert by_email is not None and by_email.id == author.id
        assert by_email.negative_count == 3
        assert by_email.labels == {AuthorLabel.SYSTEMATIC_CRITIC}
        again = await uow.mentions.get_by_external("vk", "wall-1_100")
        assert again is not None and again.text == "Опять нет горячей воды"
        # What bulk routing reads: the labels alone, for every author asked (none: empty).
        quiet = await uow.authors.add(Author(None, "Анна", (Identity("vk", "id7"),)))
        assert await uow.authors.labels_of([author.id or 0, quiet.id or 0, 999]) == {
            author.id: {AuthorLabel.SYSTEMATIC_CRITIC},
            quiet.id: frozenset(),
        }


async def test_events_are_kept_in_order(database: Database) -> None:
    async with database.uow() as uow:
        case = await uow.cases.add(make_case())
        events = [
            Event(case.id, T0, "system", EventKind.CREATED, None, CaseState.NEW, {"a": 1}),
            Event(case.id, T0, "spec", "take", CaseState.NEW, CaseState.TAKEN),
            Event(None, T0, "tg:9", EventKind.DENIED, None, None, {"action": "take"}),
        ]
        await uow.events.append(events)
        await uow.commit()
    async with database.uow() as uow:
        assert case.id is not None
        loaded = await uow.events.for_case(case.id)
    assert [(e.kind, e.actor, e.to_state, e.payload) for e in loaded] == [
        ("created", "system", CaseState.NEW, {"a": 1}),
        ("take", "spec", CaseState.TAKEN, {}),
    ]
    assert all(e.at == T0 for e in loaded)


def item(
    key: str,
    chat: str = "-100",
    op: OutboxOp = OutboxOp.POST,
    ref: str = "card:1",
    at: datetime = T0,
) -> OutboxItem:
    return OutboxItem(
        transport="telegram",
        chat=chat,
        op=op,
        payload={"k": key},
        idempotency_key=key,
        ref_key=ref,
        created_at=at,
    )


async def test_outbox_queue_semantics(database: Database) -> None:
    async with database.uow() as uow:
        queued = await uow.outbox.enqueue(
            [item("a1"), item("a2", op=OutboxOp.EDIT), item("b1", chat="-200"), item("a1")]
        )
        await uow.commit()
    # "a1" repeated was skipped; the edit of a card not yet posted was folded into the post.
    assert queued == 2

    async with database.uow() as uow:
        heads = await uow.outbox.due_heads(T0, 10)
        assert [h.idempotency_key for h in heads] == ["a1", "b1"]
        assert heads[0].payload == {"k": "a2"}
        assert await uow.outbox.due_heads(T0 - timedelta(seconds=1), 10) == []
        first = heads[0]
        assert first.id is not None
        assert await uow.outbox.claim(first.id, T0)
        assert not await uow.outbox.claim(first.id, T0)  # nobody claims it twice
        await uow.commit()

    async with database.uow() as uow:
        # The chat's head is in flight: nothing else from that chat is due.
        await uow.outbox.enqueue([item("a3", op=OutboxOp.EDIT), item("a4", op=OutboxOp.EDIT)])
        assert [h.idempotency_key for h in await uow.outbox.due_heads(T0, 10)] == ["b1"]
        # a1 sending, b1 pending, a3 pending with a4's content (in a3's place in the line).
        assert await uow.outbox.depth() == 3
        assert await uow.outbox.backlog("telegram") == {"-100": 2, "-200": 1}
        assert await uow.outbox.requeue_in_flight() == 1
        await uow.outbox.mark_delivered(first.id, T0, "555")
        await uow.refs.put("telegram", "-100", "card:1", "555")
        await uow.commit()

    async with database.uow() as uow:
        heads = await uow.outbox.due_heads(T0, 10)
        assert [h.idempotency_key for h in heads] == ["b1", "a3"]
        assert heads[1].payload == {"k": "a4"}
        stored = [await uow.outbox.get(n) for n in range(1, 6)]
        assert [i.status for i in stored if i] == [
            OutboxStatus.DELIVERED,
            OutboxStatus.PENDING,
            OutboxStatus.PENDING,
        ]
        assert await uow.refs.get("telegram", "-100", "card:1") == "555"
        assert await uow.refs.find("telegram", "-100", "555") == "card:1"
        await uow.kv.set("matrix.since", "s1")
        await uow.kv.set("matrix.since", "s2")
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.kv.get("matrix.since") == "s2"
        assert await uow.kv.get("nothing") is None


async def test_more_urgent_items_go_first_within_a_chat(database: Database) -> None:
    async with database.uow() as uow:
        await uow.outbox.enqueue(
            [
                replace(item("low", ref="card:1"), urgency=0),
                replace(item("high", ref="card:2"), urgency=2),
                replace(item("high2", ref="card:3"), urgency=2),
            ]
        )
        await uow.commit()
    async with database.uow() as uow:
        assert [h.idempotency_key for h in await uow.outbox.due_heads(T0, 10)] == ["high"]


async def test_driver_level_rows_keep_the_column_types(database: Database) -> None:
    """store.driver writes and reads past Core: UTC datetimes, JSON and conflicts must come
    out as Core would give them, on each backend."""
    from sqlalchemy import Table

    from store.driver import insert_rows, select_rows
    from store.models import OutboxRow

    table = OutboxRow.__table__
    assert isinstance(table, Table)
    columns = ("idempotency_key", "transport", "chat", "op", "payload", "status", "attempts")
    columns += ("urgency",)
    moments = ("created_at", "next_attempt_at")
    local = T0.astimezone(timezone(timedelta(hours=3)))  # stored as the same instant
    rows = [
        (
            f"k{n}",
            "telegram",
            "-100",
            "post",
            {"view": "notice", "n": n},
            "pending",
            n,
            0,
            local,
            T0,
        )
        for n in range(3)
    ]
    async with database.uow() as uow:
        await insert_rows(uow.session, table, columns + moments, rows)
        # A known key is left out, the rest goes in.
        again = [("k1", *rows[1][1:]), ("k9", *rows[2][1:])]
        await insert_rows(
            uow.session, table, columns + moments, again, skip_conflicts_on="idempotency_key"
        )
        await uow.commit()
    async with database.uow() as uow:
        found = await select_rows(
            uow.session,
            table,
            ("idempotency_key", "payload", "created_at", "attempts"),
            "created_at <= ? AND attempts >= ? ORDER BY idempotency_key",
            (T0, 1),
            ("created_at", "attempts"),
        )
    assert found == [
        ["k1", {"view": "notice", "n": 1}, T0, 1],
        ["k2", {"view": "notice", "n": 2}, T0, 2],
        ["k9", {"view": "notice", "n": 2}, T0, 2],
    ]
    assert all(row[2].tzinfo is not None for row in found)
