"""Attachments in the store: kept with their mention (one statement and the bulk path), read
back equal, encrypted at rest as one value (file names and captions are personal data),
moved to a new key by `otklik keys rotate`, and added and removed by migration 0019 on both
databases."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from bot.clock import FrozenClock
from bot.model import Attachment, AttachmentKind
from store import crypto
from store.db import Database, alembic_config
from store.models import MentionRow
from store.rotation import encrypted_columns, rotate_keys
from tests.doubles.support import make_mention
from tests.handlers.ingest.test_importer import build

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()

NAME = "Шуршикова_заявление_кв17.pdf"
CAPTION = "Фото протечки у Евдокии Шуршиковой"
ATTACHMENTS = (
    Attachment(AttachmentKind.PHOTO, "telegram:AgACAgIAAxkBAAI00000042", "", "image/jpeg", 532_480),
    Attachment(
        AttachmentKind.DOCUMENT,
        "https://cdn.example.org/d/17.pdf",
        NAME,
        "application/pdf",
        120_009,
        CAPTION,
    ),
)


def keyring(*ids: str) -> crypto.Keyring:
    keys = {key_id: key_id.encode().ljust(32, b".") for key_id in ids}
    return crypto.Keyring(ids[0], keys, b"i" * 32, f"keys {', '.join(ids)}")


async def raw_attachments(database: Database) -> list[str | None]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(text("SELECT attachments FROM mentions ORDER BY id"))
        return [row[0] for row in rows]


async def test_attachments_round_trip_encrypted_on_both_paths(
    database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    cases, bulk = build(tmp_path, database, clock)
    with_files = replace(make_mention("one", clock.now()), attachments=ATTACHMENTS)
    single = await cases.intake(with_files, None)
    assert single.mention is not None
    batch = [
        replace(make_mention("bulk-1", clock.now()), attachments=ATTACHMENTS[1:]),
        make_mention("bulk-2", clock.now()),  # none: NULL, not an empty list
    ]
    assert (await bulk.receive_many(batch)).stored == 2

    async with database.reader() as uow:
        one = await uow.mentions.get_by_external("vk", "one")
        first = await uow.mentions.get_by_external("vk", "bulk-1")
        second = await uow.mentions.get_by_external("vk", "bulk-2")
    assert one is not None and one.attachments == ATTACHMENTS
    assert first is not None and first.attachments == ATTACHMENTS[1:]
    assert second is not None and second.attachments == ()

    stored = await raw_attachments(database)
    assert stored[2] is None
    for value in stored[:2]:
        assert value is not None and crypto.Keyring.key_id_of(value)
        assert NAME not in value and "Шуршиков" not in value and "cdn.example.org" not in value


async def test_rotation_covers_the_attachments_column(tmp_path: Path, clock: FrozenClock) -> None:
    assert "attachments" in encrypted_columns()[MentionRow.__table__]  # type: ignore[index]
    url = f"sqlite+aiosqlite:///{tmp_path / 'otklik.db'}"
    first = Database(url, keyring=keyring("a"))
    await first.upgrade()
    _, bulk = build(tmp_path, first, clock)
    await bulk.receive_many([replace(make_mention("m", clock.now()), attachments=ATTACHMENTS)])
    (before,) = await raw_attachments(first)
    await first.dispose()
    assert before is not None and crypto.Keyring.key_id_of(before) == "a"

    both = Database(url, keyring=keyring("b", "a"))
    assert sum(t.rewritten for t in await rotate_keys(both)) > 0
    await both.dispose()
    only_b = Database(url, keyring=keyring("b"))
    (after,) = await raw_attachments(only_b)
    async with only_b.reader() as uow:
        read = await uow.mentions.get_by_external("vk", "m")
    await only_b.dispose()
    assert after is not None and crypto.Keyring.key_id_of(after) == "b"
    assert read is not None and read.attachments == ATTACHMENTS


async def test_migration_0019_adds_and_drops_the_column(database: Database) -> None:
    async def columns() -> set[str]:
        async with database.engine.connect() as conn:
            found = await conn.run_sync(lambda c: inspect(c).get_columns("mentions"))
        return {c["name"] for c in found}

    assert "attachments" in await columns()
    await database.downgrade("0018")
    assert "attachments" not in await columns()
    await database.upgrade()
    assert "attachments" in await columns() and await database.current_revision() == HEAD
