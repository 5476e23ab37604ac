"""The store's bulk writes: the ids they hand back are the rows' own, on both backends, and
on SQLite ids that do not follow on make the batch run again instead of mislabelling rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from bot.model import Author, AuthorLabel, Identity, Mention
from bot.ports import ConcurrentUpdate
from store.db import Database
from tests.doubles.support import make_mention

NOW = datetime(2026, 11, 20, 13, 30, tzinfo=UTC)


def authors(count: int) -> list[Author]:
    # Equal values on purpose: rows told apart by their values only would be interchangeable.
    return [
        Author(
            None,
            "Житель",
            (Identity("vk", f"u{n}", "Житель"),),
            labels=frozenset({AuthorLabel.SYSTEMATIC_CRITIC}) if n % 2 else frozenset(),
            negative_count=1,
            first_seen_at=NOW,
            last_seen_at=NOW,
        )
        for n in range(count)
    ]


async def test_bulk_inserts_hand_back_the_ids_the_rows_got(database: Database) -> None:
    async with database.uow() as uow:
        # Earlier rows, the newest of them deleted: ids go on from the largest left.
        await uow.authors.add_many(authors(3))
        await uow.session.execute(text("DELETE FROM author_identities WHERE author_id = 3"))
        await uow.session.execute(text("DELETE FROM authors WHERE id = 3"))
        await uow.commit()
    async with database.uow() as uow:
        await uow.mentions.reserve()
        created = await uow.authors.add_many(
            [replace(a, identities=(Identity("tg", f"t{n}"),)) for n, a in enumerate(authors(5))]
        )
        mentions: list[Mention] = [
            replace(make_mention(f"m{n}", NOW), author=Identity("tg", f"t{n % 5}"))
            for n in range(12)
        ]
        author_ids = [created[n % 5].id or 0 for n in range(12)]
        ids = await uow.mentions.add_many(mentions, author_ids)
        await uow.commit()

    async with database.uow() as uow:
        for author in created:
            assert author.id is not None
            found = await uow.authors.find_by_identity(author.identities[0])
            assert found is not None and found.id == author.id
            assert found.labels == author.labels
        for mention, new_id, author_id in zip(mentions, ids, author_ids, strict=True):
            stored = await uow.mentions.get_by_external(mention.source, mention.external_id)
            assert stored is not None and (stored.id, stored.author_id) == (new_id, author_id)


async def test_sqlite_ids_that_do_not_follow_on_make_the_batch_run_again(
    sqlite_url: str,
) -> None:
    database = Database(sqlite_url)
    await database.upgrade()
    try:
        async with database.uow() as uow:
            (author,) = await uow.authors.add_many(authors(1))
            # A row at the largest id there is: SQLite then picks free ids at random.
            stored = replace(make_mention("last", NOW), author_id=author.id)
            await uow.mentions.add(stored)
            await uow.session.execute(text("UPDATE mentions SET id = 9223372036854775807"))
            await uow.commit()
        async with database.uow() as uow:
            await uow.mentions.reserve()
            batch = [make_mention("a", NOW), make_mention("b", NOW)]
            assert author.id is not None
            with pytest.raises(ConcurrentUpdate, match="mentions: ids"):
                await uow.mentions.add_many(batch, [author.id, author.id])
        async with database.uow() as uow:  # rolled back: nothing half-written
            assert await uow.mentions.known("vk", ["a", "b", "last"]) == {"last"}
    finally:
        await database.dispose()
