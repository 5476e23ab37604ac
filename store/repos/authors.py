"""Authors: one card per person, however many channels they write from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.model import Author, AuthorLabel, Identity, Sentiment
from bot.ports import AuthorStanding, AuthorTally, ConcurrentUpdate
from store import crypto
from store.driver import (
    chunks,
    database_form,
    driver_sql,
    insert_numbered,
    insert_rows,
    one_of,
    processors,
    raced,
    result_processor,
    rows_in,
)
from store.mappers import (
    AUTHOR_COLUMNS,
    IDENTITY_COLUMNS,
    author_from_row,
    author_row,
    author_values,
    identity_from_row,
    identity_row,
    identity_values,
)
from store.models import AuthorIdentityRow, AuthorRow, MentionRow

# Core tables for the bulk statements: plain executemany, without the ORM's per-row work.
_AUTHORS = cast(Table, AuthorRow.__table__)
_IDENTITIES = cast(Table, AuthorIdentityRow.__table__)
_MENTIONS = cast(Table, MentionRow.__table__)


class SqlAuthorRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, author_id: int) -> Author | None:
        row = await self._s.get(AuthorRow, author_id, populate_existing=True)
        return await self._author(row) if row else None

    async def find_by_identity(self, identity: Identity) -> Author | None:
        row = await self._s.scalar(
            select(AuthorRow)
            .join(AuthorIdentityRow, AuthorIdentityRow.author_id == AuthorRow.id)
            .where(
                AuthorIdentityRow.channel == identity.channel,
                AuthorIdentityRow.external_id_hash == identity.external_id,
            )
        )
        return await self._author(row) if row else None

    async def cards_of(self, author_ids: Sequence[int]) -> dict[int, Author]:
        found: dict[int, Author] = {}
        for chunk in chunks(sorted(set(author_ids))):
            for row in await self._s.scalars(
                select(AuthorRow)
                .where(one_of(self._s, AuthorRow.id, chunk))
                .execution_options(populate_existing=True)
            ):
                found[row.id] = author_from_row(row)
        return found

    async def labels_of(self, author_ids: Sequence[int]) -> dict[int, frozenset[AuthorLabel]]:
        found: dict[int, frozenset[AuthorLabel]] = {}
        for chunk in chunks(sorted(set(author_ids))):
            rows = await self._s.execute(
                select(AuthorRow.id, AuthorRow.labels).where(one_of(self._s, AuthorRow.id, chunk))
            )
            for author_id, labels in rows:
                found[author_id] = frozenset(AuthorLabel(label) for label in labels or ())
        return found

    async def add(self, author: Author) -> Author:
        row = AuthorRow(**author_values(author))
        self._s.add(row)
        await self._s.flush()
        for identity in author.identities:
            self._s.add(AuthorIdentityRow(**identity_values(row.id, identity)))
        await self._flush_identities()
        return await self._author(row)

    async def save(self, author: Author) -> None:
        assert author.id is not None
        await self._s.execute(
            update(AuthorRow).where(AuthorRow.id == author.id).values(**author_values(author))
        )
        known = {
            (r.channel, r.external_id)
            for r in await self._s.scalars(
                select(AuthorIdentityRow).where(AuthorIdentityRow.author_id == author.id)
            )
        }
        for identity in author.identities:
            if (identity.channel, identity.external_id) not in known:
                self._s.add(AuthorIdentityRow(**identity_values(author.id, identity)))
        await self._flush_identities()

    async def _flush_identities(self) -> None:
        try:
            await self._s.flush()
        except IntegrityError as error:
            # Another intake registered the same person a moment ago: decide again.
            raise ConcurrentUpdate("identity registered concurrently") from error

    async def owners(self, identities: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        by_channel: dict[str, set[str]] = defaultdict(set)
        for channel, external_id in identities:
            by_channel[channel].add(external_id)
        found: dict[tuple[str, str], int] = {}
        blind_many = crypto.keyring().blind_many
        # One channel at a time: (channel, external_id_hash) is the unique index.
        for channel, external_ids in by_channel.items():
            distinct = list(external_ids)
            by_hash = dict(zip(blind_many(distinct), distinct, strict=True))
            for hashed, author_id in await rows_in(self._s, _OWNERS, (channel,), sorted(by_hash)):
                found[channel, by_hash[hashed]] = int(author_id)
        return found

    async def add_many(self, authors: Sequence[Author]) -> list[Author]:
        if not authors:
            return []
        if self._s.get_bind().dialect.name == "sqlite":
            rows = [author_row(author) for author in authors]
            with raced("authors"):
                ids = await insert_numbered(self._s, _AUTHORS, AUTHOR_COLUMNS, rows)
        else:
            ids = await self._add_returning(authors)
        identities = [
            identity_row(author_id, identity)
            for author_id, author in zip(ids, authors, strict=True)
            for identity in author.identities
        ]
        if identities:
            with raced("author identities"):
                await insert_rows(self._s, _IDENTITIES, IDENTITY_COLUMNS, identities)
        return [replace(a, id=i) for a, i in zip(authors, ids, strict=True)]

    async def _add_returning(self, authors: Sequence[Author]) -> list[int]:
        """PostgreSQL: the ids are drawn from the table's own sequence first, then the rows
        go in with them (one unnest INSERT). Authors have no unique column to tell returned
        rows apart by, and reading every row back (its sealed name opened again) cost more
        than storing it."""
        connection = await self._s.connection()
        drawn = await connection.exec_driver_sql(
            driver_sql(connection.dialect, _NEXT_AUTHOR_IDS), (len(authors),)
        )
        ids = [int(new_id) for (new_id,) in drawn.all()]
        rows = [(i, *author_row(a)) for i, a in zip(ids, authors, strict=True)]
        with raced("authors"):
            await insert_rows(self._s, _AUTHORS, ("id", *AUTHOR_COLUMNS), rows)
        return ids

    async def standing(
        self, author_ids: Sequence[int], since: datetime
    ) -> dict[int, AuthorStanding]:
        connection = await self._s.connection()
        dialect = connection.dialect
        (moment,) = database_form([(since,)], processors(dialect, _MENTIONS, ("received_at",)))
        decode = result_processor(dialect, _AUTHORS, "labels")
        labelled: dict[Any, frozenset[AuthorLabel]] = {}  # a handful of distinct label sets
        found: dict[int, AuthorStanding] = {}
        fixed = (Sentiment.NEGATIVE.value, *moment)
        rows = await rows_in(self._s, _STANDING, fixed, sorted(set(author_ids)))
        for author_id, labels, neg, neu, pos, recent, most in rows:
            key = labels if isinstance(labels, str) else tuple(labels or ())
            if key not in labelled:
                values = decode(labels) if decode and isinstance(labels, str) else labels
                labelled[key] = frozenset(AuthorLabel(label) for label in values or ())
            found[int(author_id)] = AuthorStanding(
                labelled[key], int(neg), int(neu), int(pos), int(recent or 0), int(most or 0)
            )
        return found

    async def tally_many(self, tallies: Sequence[AuthorTally]) -> None:
        connection = await self._s.connection()
        dialect = connection.dialect
        # In id order: two batches counting the same authors lock their rows in one order
        # and queue, where any other order can deadlock them on PostgreSQL.
        counted = sorted(
            (t for t in tallies if t.negative or t.neutral or t.positive or t.seen_at),
            key=lambda t: t.author_id,
        )
        if counted:
            sql = (
                "UPDATE authors SET negative_count = negative_count + ?, "
                "neutral_count = neutral_count + ?, positive_count = positive_count + ?, "
                # Never backwards: a concurrent writer may have seen the author later.
                "last_seen_at = CASE WHEN last_seen_at IS NULL OR last_seen_at < ? THEN ? "
                "ELSE last_seen_at END WHERE id = ?"
            )
            columns = (
                "negative_count",
                "neutral_count",
                "positive_count",
                "last_seen_at",
                "last_seen_at",
                "id",
            )
            rows = [
                (t.negative, t.neutral, t.positive, t.seen_at, t.seen_at, t.author_id)
                for t in counted
            ]
            with raced("authors"):
                await connection.exec_driver_sql(
                    driver_sql(dialect, sql),
                    database_form(rows, processors(dialect, _AUTHORS, columns)),
                )
        relabelled = [t for t in tallies if t.labels is not None]
        if relabelled:
            await self._s.execute(
                update(_AUTHORS)
                .where(_AUTHORS.c.id == bindparam("b_id"))
                .values(labels=bindparam("b_labels", type_=_AUTHORS.c.labels.type)),
                [
                    {"b_id": t.author_id, "b_labels": sorted(x.value for x in t.labels or ())}
                    for t in relabelled
                ],
            )
        identities = [
            identity_row(t.author_id, identity) for t in tallies for identity in t.identities
        ]
        if identities:
            with raced("author identities"):
                await insert_rows(self._s, _IDENTITIES, IDENTITY_COLUMNS, identities)

    async def _author(self, row: AuthorRow) -> Author:
        identities = await self._s.scalars(
            select(AuthorIdentityRow)
            .where(AuthorIdentityRow.author_id == row.id)
            .order_by(AuthorIdentityRow.id)
        )
        return author_from_row(row, tuple(identity_from_row(i) for i in identities))


_NEXT_AUTHOR_IDS = (
    f"SELECT nextval(pg_get_serial_sequence('{_AUTHORS.name}', 'id')) FROM generate_series(1, ?)"
)


_OWNERS = (
    f"SELECT external_id_hash, author_id FROM {_IDENTITIES.name} "
    "WHERE channel = ? AND external_id_hash IN ({keys})"
)

# What automatic labels are computed from: the card, and one pass over its mentions
# (author_id leads an index). Grouped by the primary key, the card's columns may be selected.
_STANDING = (
    "SELECT a.id, a.labels, a.negative_count, a.neutral_count, a.positive_count, "
    "sum(CASE WHEN m.sentiment = ? AND m.received_at >= ? THEN 1 ELSE 0 END), max(m.reach) "
    f"FROM {_AUTHORS.name} a LEFT JOIN {_MENTIONS.name} m ON m.author_id = a.id "
    "WHERE a.id IN ({keys}) GROUP BY a.id"
)
