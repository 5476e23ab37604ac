"""Encryption at rest: personal data never reaches the database file or a dump in clear, is
read back transparently, survives key rotation, and existing rows are encrypted by 0011."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import stat
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.clock import FrozenClock
from bot.model import Author, Identity
from bot.settings.playbook import load_playbook
from handlers.app import App
from store import crypto
from store.db import Database
from store.rotation import encrypted_columns, rotate_keys
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP, POSTGRES_URL
from tests.doubles.fakes import RecordingTransport
from tests.doubles.support import API_TOKENS, make_config, make_mention
from tests.handlers.ingest.test_importer import build
from tests.handlers.test_cli import free_port

MON = {"Authorization": f"Bearer {API_TOKENS['MON_TOKEN']}"}

# Values no schema, template or index could hold by chance.
NAME = "Евдокия Пантелеймоновна Шуршикова"
IDENTITY = "id-shurshikova-7731"
TEXT = "Третий день нет отопления на Калиновой улице 17, батареи ледяные"
URL = "https://vk.com/wall-4242_shurshikova"
PROFILE = "https://vk.com/shurshikova.evdokia"
STORY = "story-shurshikova-1"
NOW = datetime(2026, 11, 20, 13, 30, tzinfo=UTC)
SECRETS = (NAME, IDENTITY, TEXT, URL, PROFILE, STORY, "Калиновой улице", "shurshikova")


def api_mention(n: int) -> dict[str, Any]:
    return {
        "external_id": f"leak-{n}",
        "text": f"{TEXT} (#{n})",
        "sentiment": "negative",
        "author": {"id": IDENTITY, "name": NAME, "channel": "vk", "profile_url": PROFILE},
        "url": f"{URL}_{n}",
        "story_id": STORY,
        "reach": 120,
    }


def found_in(data: bytes) -> list[str]:
    return [value for value in SECRETS if value.encode() in data]


def sqlite_bytes(path: Path) -> bytes:
    """The database file after its write-ahead log is folded in (and any log that is left)."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


@pytest.fixture
async def running(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> AsyncIterator[tuple[App, str, RecordingTransport]]:
    port = free_port()
    config = make_config(tmp_path, sqlite_url, port)
    transport = RecordingTransport()
    app = App(config, load_playbook(config.playbooks.path), clock, {"telegram": transport})
    await app.start()
    try:
        yield app, f"http://127.0.0.1:{port}", transport
    finally:
        await app.stop()


async def test_the_sqlite_file_holds_no_personal_data_in_clear(
    running: tuple[App, str, RecordingTransport], tmp_path: Path
) -> None:
    app, base, transport = running
    async with aiohttp.ClientSession() as http:
        url = f"{base}/api/v1/mentions"
        async with http.post(url, json=[api_mention(n) for n in range(3)], headers=MON) as r:
            assert r.status == 202
            cases = (await r.json())["cases"]
        async with http.post(url, json=api_mention(3), headers=MON) as r:
            assert r.status == 202
        async with http.post(url, json=api_mention(3), headers=MON) as r:  # deduplicated
            assert (await r.json())["duplicates"] == 1
    await app.worker.run_once()

    # Read back in clear, through the store: grouping by story and author worked.
    assert cases[0] is not None and len(set(cases)) == 1
    async with app.database.uow() as uow:
        mentions = await uow.mentions.for_case(cases[0])
        author = await uow.authors.find_by_identity(Identity("vk", IDENTITY))
    assert len(mentions) == 4 and mentions[0].text == f"{TEXT} (#0)"
    assert mentions[0].author.display_name == NAME and mentions[0].story_id == STORY
    assert author is not None and author.display_name == NAME
    assert author.identities[0].profile_url == PROFILE
    assert NAME in str(transport.posts()[0].payload)  # the card quoted the citizen

    await app.stop()
    stored = sqlite_bytes(tmp_path / "otklik.db")
    assert b"housing" in stored  # the search works: what is not personal is in clear
    assert found_in(stored) == []


@pytest.mark.postgres
async def test_a_postgres_dump_holds_no_personal_data_in_clear(
    tmp_path: Path, clock: FrozenClock
) -> None:
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not installed (apt-get install postgresql-client)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    database = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        await database.upgrade()
        _, bulk = build(tmp_path, database, clock)
        person = Identity("vk", IDENTITY, NAME, PROFILE)
        batch = [
            replace(
                make_mention(f"leak-{n}", clock.now(), text=f"{TEXT} (#{n})"),
                author=person,
                url=f"{URL}_{n}",
                story_id=STORY,
            )
            for n in range(4)
        ]
        result = await bulk.receive_many(batch)
        assert result.stored == 4
        assert len({r.case.id for r in result.results if r.case}) == 1  # one story, one case
        again = await bulk.receive_many(batch[:1])
        assert again.duplicates == 1
        async with database.uow() as uow:
            author = await uow.authors.find_by_identity(Identity("vk", IDENTITY))
            assert author is not None and author.display_name == NAME
        dumping = await asyncio.create_subprocess_exec(
            pg_dump,
            "--schema",
            schema,
            "--data-only",
            _libpq_url(POSTGRES_URL),
            stdout=asyncio.subprocess.PIPE,
        )
        dump, _ = await asyncio.wait_for(dumping.communicate(), 60)
        assert dumping.returncode == 0
    finally:
        await database.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
    assert b"COPY" in dump and b"housing" in dump
    assert found_in(dump) == []


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


# --- keys --------------------------------------------------------------------------------------


def keyring(*ids: str) -> crypto.Keyring:
    """A keyring of test keys (the same bytes for the same id), the first current."""
    keys = {key_id: key_id.encode().ljust(32, b".") for key_id in ids}
    return crypto.Keyring(ids[0], keys, b"i" * 32, f"keys {', '.join(ids)}")


async def _store_people(
    directory: Path, database: Database, clock: FrozenClock, count: int
) -> None:
    _, bulk = build(directory, database, clock)
    await bulk.receive_many(
        [
            replace(
                make_mention(f"m{n}", clock.now(), text=f"{TEXT} {n}"),
                author=Identity("vk", f"{IDENTITY}-{n % 5}", NAME, PROFILE),
            )
            for n in range(count)
        ]
    )


def _key_ids(path: Path) -> dict[str | None, int]:
    """How many stored values each key id encrypts (None: in clear), over every encrypted
    column."""
    counts: dict[str | None, int] = {}
    with sqlite3.connect(path) as db:
        for table, names in encrypted_columns().items():
            for name in names:
                for (value,) in db.execute(f"SELECT {name} FROM {table.name}"):
                    if value:
                        key_id = crypto.Keyring.key_id_of(value)
                        counts[key_id] = counts.get(key_id, 0) + 1
    return counts


async def test_rotation_moves_every_value_to_the_new_key_while_writes_go_on(
    tmp_path: Path, clock: FrozenClock
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'otklik.db'}"
    first = Database(url, keyring=keyring("a"))
    await first.upgrade()
    await _store_people(tmp_path, first, clock, 60)
    await first.dispose()
    assert set(_key_ids(tmp_path / "otklik.db")) == {"a"}

    both = Database(url, keyring=keyring("b", "a"))
    _, bulk = build(tmp_path, both, clock)

    async def keep_writing() -> None:  # the bot, meanwhile
        for n in range(10):
            later = clock.now() + timedelta(minutes=n)
            await bulk.receive_many([make_mention(f"during-{n}", later, text=f"{TEXT} {n}")])
            await asyncio.sleep(0)

    progress: list[tuple[str, int]] = []
    tables, _ = await asyncio.gather(
        rotate_keys(both, batch=7, progress=lambda s: progress.append((s.table, s.rows))),
        keep_writing(),
    )
    await both.dispose()
    assert sum(t.rewritten for t in tables) > 60
    assert ("mentions", 7) in progress  # reported batch by batch

    # A second run finds nothing left to do; a value the bot wrote meanwhile is under b anyway.
    again = Database(url, keyring=keyring("b", "a"))
    assert sum(t.rewritten for t in await rotate_keys(again, batch=50)) == 0
    await again.dispose()
    assert set(_key_ids(tmp_path / "otklik.db")) == {"b"}

    only_b = Database(url, keyring=keyring("b"))
    async with only_b.uow() as uow:
        first_mention = await uow.mentions.get_by_external("vk", "m0")
        author = await uow.authors.find_by_identity(Identity("vk", f"{IDENTITY}-0"))
        during = await uow.mentions.get_by_external("vk", "during-9")
        cases = await uow.cases.list_open()
        waiting = await uow.outbox.due_heads(clock.now() + timedelta(days=1), 100)
    await only_b.dispose()
    assert first_mention is not None and first_mention.text == f"{TEXT} 0"
    assert author is not None and author.display_name == NAME
    assert author.identities[0].profile_url == PROFILE
    assert during is not None and during.text == f"{TEXT} 9"
    assert cases and all(c.id for c in cases)
    assert all(isinstance(item.payload, dict) for item in waiting)


async def test_a_value_under_a_key_not_given_is_refused_by_name(
    tmp_path: Path, clock: FrozenClock
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'otklik.db'}"
    database = Database(url, keyring=keyring("a"))
    await database.upgrade()
    await _store_people(tmp_path, database, clock, 1)
    await database.dispose()
    other = Database(url, keyring=keyring("c"))
    with pytest.raises(crypto.KeyringError, match="key 'a'"):
        async with other.uow() as uow:
            await uow.mentions.get_by_external("vk", "m0")
    await other.dispose()


def test_keys_come_from_the_environment_with_ids_and_the_first_encrypts() -> None:
    a, b, index = crypto.new_key_text(), crypto.new_key_text(), crypto.new_key_text()
    ring = crypto.load_keyring(
        "postgresql+asyncpg://h/db", {"OTKLIK_DATA_KEY": f"new:{b},{a}", "OTKLIK_INDEX_KEY": index}
    )
    assert ring.current == "new" and len(ring.keys) == 2
    sealed = ring.encrypt(NAME)
    assert sealed.startswith("v1:new:") and NAME not in sealed
    assert ring.decrypt(sealed) == NAME and ring.encrypt(NAME) != sealed  # fresh nonce
    assert ring.blind(NAME) == ring.blind(NAME) != ring.blind(NAME + " ")
    with pytest.raises(crypto.KeyringError, match="OTKLIK_INDEX_KEY"):
        crypto.load_keyring("sqlite+aiosqlite:///x.db", {"OTKLIK_DATA_KEY": a})
    with pytest.raises(crypto.KeyringError, match="required for postgresql"):
        crypto.load_keyring("postgresql+asyncpg://h/db", {})
    with pytest.raises(crypto.KeyringError, match="5 bytes; a key is 32 random bytes"):
        crypto.load_keyring(
            "postgresql+asyncpg://h/db", {"OTKLIK_DATA_KEY": "c2hvcnQ=", "OTKLIK_INDEX_KEY": index}
        )


def test_without_keys_an_sqlite_file_gets_a_private_key_file_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'otklik.db'}"
    first = crypto.load_keyring(url, {})
    path = tmp_path / "data" / "otklik.db.keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "OTKLIK_DATA_KEY is not set" in caplog.text
    again = crypto.load_keyring(url, {})  # the next start reads the same keys
    assert again.keys == first.keys and again.index_key == first.index_key
    assert again.decrypt(first.encrypt(TEXT)) == TEXT


# --- migration 0011 ----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def unmigrated(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[Database]:
    """A database on each backend with no tables yet."""
    if request.param == "sqlite":
        db = Database(sqlite_url)
        yield db
        await db.dispose()
        return
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        yield db
    finally:
        await db.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


PLAIN_ROWS = [
    "INSERT INTO authors (id, display_name, labels, negative_count, neutral_count, "
    f"positive_count) VALUES (1, '{NAME}', '[]', 1, 0, 0)",
    "INSERT INTO author_identities (author_id, channel, external_id, display_name, profile_url) "
    f"VALUES (1, 'vk', '{IDENTITY}', '{NAME}', '{PROFILE}')",
    "INSERT INTO cases (id, department, state, priority, created_at, source, drill, "
    "escalation_level, codes, mention_count, version) "
    "VALUES (1, 'housing', 'new', 'normal', '2026-11-20 10:00:00', 'vk', false, 0, '[]', 1, 0)",
    "INSERT INTO mentions (source, external_id, url, author_id, identity_channel, "
    "identity_external_id, identity_name, text, received_at, sentiment, sentiment_source, "
    f"reach, codes, story_id, case_id) VALUES ('vk', 'old-1', '{URL}', 1, 'vk', '{IDENTITY}', "
    f"'{NAME}', '{TEXT}', '2026-11-20 10:00:00', 'negative', 'source', 5, '[]', '{STORY}', 1)",
    "INSERT INTO drafts (case_id, version, text, author, created_at, status, pre_approved) "
    f"VALUES (1, 1, 'Уважаемая {NAME}, чиним', 'anna', '2026-11-20 10:00:00', 'pending', false)",
    "INSERT INTO outbox (idempotency_key, transport, chat, op, payload, urgency, status, "
    "attempts, created_at, next_attempt_at) VALUES ('k1', 'telegram', '-100', 'post', "
    f"'{{\"text\": \"{NAME}\"}}', 0, 'pending', 0, '2026-11-20 10:00:00', '2026-11-20 10:00:00')",
]


async def test_migration_0011_encrypts_the_rows_it_finds_and_0010_gets_them_back(
    unmigrated: Database,
) -> None:
    database = unmigrated
    await database.upgrade("0010")
    async with database.engine.begin() as conn:
        for statement in PLAIN_ROWS:
            await conn.execute(text(statement))
        blob = "INSERT INTO blobs (sha256, mimetype, size, content, created_at) VALUES "
        await conn.execute(
            text(blob + "('s', 'image/png', 4, :content, '2026-11-20 10:00:00')"),
            {"content": NAME.encode()},
        )

    await database.upgrade()

    async with database.engine.connect() as conn:
        stored = [
            value
            for table, names in encrypted_columns().items()
            for row in (await conn.execute(text(f"SELECT {', '.join(names)} FROM {table.name}")))
            for value in row
            if value
        ]
    assert stored and all(crypto.Keyring.key_id_of(value) == "test" for value in stored)
    assert found_in(b"".join(v if isinstance(v, bytes) else v.encode() for v in stored)) == []
    async with database.uow() as uow:
        mention = await uow.mentions.get_by_external("vk", "old-1")
        author = await uow.authors.find_by_identity(Identity("vk", IDENTITY))
        found = await uow.mentions.find_by_url(URL)
        case = await uow.cases.get(1)
        item = await uow.outbox.get(1)
        picture = await uow.blobs.get("s")
    assert mention is not None and (mention.text, mention.story_id) == (TEXT, STORY)
    # 0016: the mention's copies of its identity gave way to the identity's keyed hash.
    assert (mention.author.external_id, mention.author.display_name) == (IDENTITY, NAME)
    assert author is not None and author.display_name == NAME
    assert author.identities[0].profile_url == PROFILE
    assert found is not None and found.id == mention.id
    assert case is not None and case.drafts[0].text == f"Уважаемая {NAME}, чиним"
    assert item is not None and item.payload["text"] == NAME
    assert picture == NAME.encode()

    await database.downgrade("0010")
    async with database.engine.connect() as conn:
        row = (await conn.execute(text("SELECT text, identity_name FROM mentions"))).one()
    assert tuple(row) == (TEXT, NAME)


def test_the_blind_index_is_keyed_blake2b_of_the_value_in_128_bits() -> None:
    import base64
    import hashlib

    ring = keyring("a")
    for value in ("", IDENTITY, NAME, "x" * 200):
        digest = hashlib.blake2b(value.encode(), key=b"i" * 32, digest_size=16).digest()
        expected = base64.b64encode(digest).decode().rstrip("=")
        assert ring.blind(value) == expected
        assert ring.blind(value) == expected  # again, from the ones kept


def test_hashes_from_the_keyed_state_equal_those_stored_before() -> None:
    """Each value is hashed on a copy of one keyed state: no value's bytes leak into the
    next hash, and every hash equals keyed BLAKE2b in one call, so the blind indexes
    already in databases still find their rows."""
    import base64
    import hashlib

    # Written by the one-call construction before the keyed state was kept.
    assert keyring("a").blind("id12345") == "+yoKJjNZIEn1bha97yjogw"
    # Around BLAKE2b's block of 128 bytes, each value after longer ones and after shorter.
    values = [f"{n}:" + "я" * n for n in (200, 127, 64, 63, 1, 0)] + ["a" * 128, "a" * 129]
    for order in (values, values[::-1]):
        ring = keyring("a")  # nothing kept from the other order
        for value in order:
            digest = hashlib.blake2b(value.encode(), key=b"i" * 32, digest_size=16).digest()
            assert ring.blind_many([value]) == [base64.b64encode(digest).decode().rstrip("=")]


async def test_an_encrypted_column_is_never_compared_and_its_hash_fills_itself(
    database: Database, clock: FrozenClock
) -> None:
    from sqlalchemy import select

    from store.models import AuthorRow, MentionRow

    with pytest.raises(TypeError, match="blind index"):
        select(MentionRow).where(MentionRow.personal == ["orm-1", URL, TEXT, None, None])
    async with database.uow() as uow:
        author = AuthorRow(display_name=NAME)
        uow.session.add(author)
        await uow.session.flush()
        uow.session.add(  # as a test or a script would: the plain values only
            MentionRow(
                source="vk",
                external_id="orm-1",
                url=URL,
                author_id=author.id,
                identity_channel="vk",
                identity_hash=IDENTITY,
                text=TEXT,
                received_at=clock.now(),
                sentiment="negative",
                sentiment_source="source",
                codes=[],
            )
        )
        await uow.commit()
    async with database.uow() as uow:
        by_id = await uow.mentions.get_by_external("vk", "orm-1")
        by_url = await uow.mentions.find_by_url(URL)
    assert by_id is not None and by_id.text == TEXT
    assert by_url is not None and by_url.id == by_id.id


def test_a_keyring_never_shows_its_keys() -> None:
    ring = keyring("a")
    shown = repr(ring)
    assert "a......" not in shown and "iiii" not in shown and "current='a'" in shown


async def test_forget_with_encryption_on_leaves_no_keyed_hash_of_the_links_either(
    database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from bot.cases.erasure import Erasure, Forgotten
    from bot.cases.grouping import CaseOpening
    from bot.cases.service import CaseService
    from bot.model import GlobalRole
    from bot.settings.playbook import load_playbook
    from bot.staff.directory import Directory
    from bot.staff.rights import Actor
    from store.models import AuthorIdentityRow, MentionRow

    config = make_config(tmp_path, database.url)
    cases = CaseService(
        database.uow,
        clock,
        Directory(config, frozenset({"telegram"})),
        config.tz,
        coordination="coordination",
        policy=load_playbook(config.playbooks.path).routing,
    )
    who = Identity("vk", IDENTITY, NAME, PROFILE)
    mention = replace(make_mention("m1", clock.now()), author=who, text=TEXT, url=URL)
    mention = replace(mention, reply_to_url=URL + "_post")
    opened = await cases.intake(mention, CaseOpening("housing"))
    assert opened.mention and opened.mention.author_id
    admin = Actor("admin", "Админ", global_roles=frozenset({GlobalRole.ADMIN}))
    result = await Erasure(database.uow, clock, cases).forget(opened.mention.author_id, admin)
    assert isinstance(result, Forgotten)

    async with database.uow() as uow:
        hashes = (
            await uow.session.execute(
                select(MentionRow.url_hash, MentionRow.reply_to_url_hash, MentionRow.personal)
            )
        ).one()
        identities = (await uow.session.execute(select(AuthorIdentityRow.id))).all()
        found = await uow.mentions.find_by_url(URL)
    # The sealed record keeps only the external and story ids (dedup and counts).
    assert tuple(hashes) == (None, None, ["m1", None, "[erased]", None, None])
    assert identities == []
    assert found is None  # the link no longer leads to them


# --- bulk writes -------------------------------------------------------------------------------


def test_many_values_at_once_seal_and_hash_as_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import base64
    import hashlib

    ring = keyring("a", "b")
    values = [NAME, NAME, IDENTITY, "x" * 300, NAME]
    sealed = ring.encrypt_many(values)
    assert [ring.decrypt(s) for s in sealed] == values
    assert len(set(sealed)) == len(sealed)  # equal values, unequal texts: fresh nonces
    assert {crypto.Keyring.key_id_of(s) for s in sealed} == {"a"}
    nonces = {base64.b64decode(s.split(":", 2)[2])[:12] for s in sealed}
    assert len(nonces) == len(sealed)

    # Hashes kept in two generations of 3: values come back from either, or are computed.
    monkeypatch.setattr(crypto, "_BLINDED_KEPT", 3)
    words = [f"{IDENTITY}-{n}" for n in range(8)]
    for batch in (words, words[::-1], [*words[2:5], NAME], [NAME]):
        expected = [
            base64.b64encode(hashlib.blake2b(w.encode(), key=b"i" * 32, digest_size=16).digest())
            .decode()
            .rstrip("=")
            for w in batch
        ]
        assert ring.blind_many(batch) == expected
        assert [ring.blind(w) for w in batch] == expected


async def test_a_bulk_insert_seals_every_value_under_a_nonce_of_its_own(
    database: Database,
) -> None:
    """A batch repeats values (one author's name on each mention): each is sealed afresh, or
    the database would show which mentions share a name."""
    count = 600
    people = 3
    async with database.uow() as uow:
        await uow.mentions.reserve()
        created = await uow.authors.add_many(
            [
                Author(None, NAME, (Identity("vk", f"{IDENTITY}-{n}", NAME, PROFILE),))
                for n in range(people)
            ]
        )
        mentions = [
            replace(
                make_mention(f"bulk-{n}", NOW, text=TEXT),
                author=Identity("vk", f"{IDENTITY}-{n % people}", NAME),
                url=URL,  # equal addresses: equal keyed hashes, still unequal texts
            )
            for n in range(count)
        ]
        author_ids = [created[n % people].id or 0 for n in range(count)]
        ids = await uow.mentions.add_many(mentions, author_ids)
        await uow.commit()

    async with database.engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT id, personal, url_hash, identity_hash FROM mentions ORDER BY id")
            )
        ).all()
        names = (await conn.execute(text("SELECT display_name FROM authors"))).scalars().all()
    ring = crypto.keyring()
    assert [row[0] for row in stored] == ids
    assert len({row[1] for row in stored}) == count, "a sealed record repeats"
    # One record a mention: its personal values sealed together, under one nonce and tag.
    records = [json.loads(ring.decrypt(row[1])) for row in stored]
    assert records == [[f"bulk-{n}", URL, TEXT, None, None] for n in range(count)]
    assert {crypto.Keyring.key_id_of(row[1]) for row in stored} == {ring.current}
    assert {row[2] for row in stored} == {ring.blind(URL)}
    # The identity is kept once, in author_identities; a mention holds only its hash.
    assert len({row[3] for row in stored}) == people
    assert len(set(names)) == people and {ring.decrypt(n) for n in names} == {NAME}
    async with database.uow() as uow:
        last = await uow.mentions.get_by_external("vk", f"bulk-{count - 1}")
    assert last is not None and last.id == ids[-1] and last.author.display_name == NAME
