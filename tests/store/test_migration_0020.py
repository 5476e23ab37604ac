"""Migration 0020 on both backends: a database at 0016, whose mentions hold each personal value
encrypted in a column of its own, gets them sealed as one record per mention (found by the
same keyed hashes, read back in clear, erased rows still erased), and the downgrade splits
them back into their columns."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from bot.model import Identity
from store import crypto
from store.db import Database

NAME = "Евдокия Пантелеймоновна Шуршикова"
IDENTITY = "id-shurshikova-7731"
COLUMNS = ("external_id", "url", "text", "story_id", "reply_to_url")
# external_id, url, text, story_id, reply_to_url, as 0016 stored them one by one.
ROWS: list[tuple[Any, ...]] = [
    ("m1", "https://vk.com/wall-1_1", "Третий день нет отопления", "story-1", None),
    ("m2", None, "Спасибо за автобус", None, "https://vk.com/wall-1_1"),
    ("m3", None, "[erased]", "story-1", None),  # erased before the upgrade
]


async def _store_at_0016(database: Database) -> None:
    ring = crypto.keyring()
    async with database.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO authors (id, display_name, labels, negative_count, neutral_count, "
                "positive_count) VALUES (1, :name, '[]', 0, 0, 0)"
            ),
            {"name": ring.encrypt(NAME)},
        )
        await conn.execute(
            text(
                "INSERT INTO author_identities (author_id, channel, external_id, "
                "external_id_hash, display_name) VALUES (1, 'vk', :id, :hash, :name)"
            ),
            {"id": ring.encrypt(IDENTITY), "hash": ring.blind(IDENTITY), "name": ""},
        )
        for n, values in enumerate(ROWS, start=1):
            row = dict(zip(COLUMNS, values, strict=True))
            sealed = {c: None if v is None else ring.encrypt(v) for c, v in row.items()}
            hashes = {
                f"{c}_hash": None if row[c] is None else ring.blind(row[c])
                for c in ("external_id", "url", "reply_to_url")
            }
            await conn.execute(
                text(
                    "INSERT INTO mentions (id, source, external_id, external_id_hash, url, "
                    "url_hash, author_id, identity_channel, identity_hash, text, received_at, "
                    "sentiment, sentiment_source, reach, codes, story_id, story_hash, "
                    "reply_to_url, reply_to_url_hash) VALUES (:id, 'vk', :external_id, "
                    ":external_id_hash, :url, :url_hash, 1, 'vk', :identity, :text, "
                    "'2026-11-20 10:00:00', 'negative', 'source', 0, '[]', :story_id, "
                    ":story_hash, :reply_to_url, :reply_to_url_hash)"
                ),
                {
                    "id": n,
                    **sealed,
                    **hashes,
                    "identity": ring.blind(IDENTITY),
                    "story_hash": None if row["story_id"] is None else ring.blind(row["story_id"]),
                },
            )


async def test_0020_seals_each_mention_once_and_the_downgrade_splits_it_back(
    database: Database,
) -> None:
    ring = crypto.keyring()
    await database.downgrade("0019")
    await _store_at_0016(database)

    await database.upgrade()

    async with database.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT id, personal FROM mentions ORDER BY id"))).all()
        columns = (await conn.execute(text("SELECT * FROM mentions"))).keys()
    assert not set(COLUMNS) & set(columns)  # the values live only in the record now
    assert {crypto.Keyring.key_id_of(sealed) for _, sealed in stored} == {ring.current}
    assert [json.loads(ring.decrypt(sealed)) for _, sealed in stored] == [list(row) for row in ROWS]
    async with database.uow() as uow:
        first = await uow.mentions.get_by_external("vk", "m1")
        by_url = await uow.mentions.find_by_url("https://vk.com/wall-1_1")
        second = await uow.mentions.get(2)
        erased = await uow.mentions.get(3)
    assert first is not None and first.text == "Третий день нет отопления"
    assert first.story_id == "story-1" and first.author == Identity("vk", IDENTITY, "")
    assert by_url is not None and by_url.id == first.id
    assert second is not None and second.reply_to_url == "https://vk.com/wall-1_1"
    assert second.url is None and second.story_id is None
    assert erased is not None and (erased.text, erased.url) == ("[erased]", None)

    await database.downgrade("0019")
    async with database.engine.connect() as conn:
        split = (
            await conn.execute(text(f"SELECT {', '.join(COLUMNS)} FROM mentions ORDER BY id"))
        ).all()
    assert [tuple(None if v is None else ring.decrypt(v) for v in row) for row in split] == ROWS
    assert all(crypto.Keyring.key_id_of(v) == ring.current for row in split for v in row if v)

    await database.upgrade()  # and up again, from what the downgrade left
    async with database.uow() as uow:
        again = await uow.mentions.get_by_external("vk", "m2")
    assert again is not None and again.text == "Спасибо за автобус"
