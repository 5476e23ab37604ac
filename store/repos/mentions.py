"""Mentions: one at a time for a single intake, in bulk for a batch or an import."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from bot.model import Mention, Sentiment, SentimentSource
from bot.ports import SentimentCorrection
from store import crypto
from store.driver import (
    chunks,
    conflict_insert,
    driver_sql,
    insert_numbered,
    insert_returning,
    one_of,
    raced,
    rows_in,
)
from store.mappers import MENTION_COLUMNS, mention_from_row, mention_row, mention_values
from store.models import MENTION_PERSONAL, CaseRow, MentionRow

# The Core table for the bulk statements: plain executemany, without the ORM's per-row work.
_MENTIONS = cast(Table, MentionRow.__table__)

_TEXT = MENTION_PERSONAL.index("text")  # in a mention's sealed record

# External ids are encrypted: both look them up by their keyed hashes (store/crypto.py).
_KNOWN = (
    f"SELECT external_id_hash FROM {_MENTIONS.name} "
    "WHERE source = ? AND external_id_hash IN ({keys})"
)
_ATTACH = (
    f"UPDATE {_MENTIONS.name} SET case_id = v.case_id "
    "FROM unnest(CAST(? AS BIGINT[]), CAST(? AS BIGINT[])) AS v(id, case_id) "
    f"WHERE {_MENTIONS.name}.id = v.id"
)


class SqlMentionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, mention: Mention) -> Mention | None:
        if mention.author_id is None:
            raise ValueError("a mention is stored after its author")
        statement = (
            conflict_insert(self._s, MentionRow)
            .values(**mention_values(mention, mention.author_id))
            .on_conflict_do_nothing(index_elements=["source", "external_id_hash"])
            .returning(MentionRow.id)
        )
        new_id = (await self._s.execute(statement)).scalar_one_or_none()
        if new_id is None:
            return None
        return replace(mention, id=new_id)

    async def get_by_external(self, source: str, external_id: str) -> Mention | None:
        row = await self._s.scalar(
            select(MentionRow).where(
                MentionRow.source == source, MentionRow.external_id_hash == external_id
            )
        )
        return mention_from_row(row) if row else None

    async def for_case(self, case_id: int) -> list[Mention]:
        rows = await self._s.scalars(
            select(MentionRow).where(MentionRow.case_id == case_id).order_by(MentionRow.id)
        )
        return [mention_from_row(row) for row in rows]

    async def attach_many(self, pairs: Sequence[tuple[int, int]]) -> None:
        if not pairs:
            return
        if self._s.get_bind().dialect.name == "postgresql":
            # One statement the server runs once, not once a mention.
            ids, cases = zip(*pairs, strict=True)
            connection = await self._s.connection()
            sql = driver_sql(connection.dialect, _ATTACH)
            await connection.exec_driver_sql(sql, (list(ids), list(cases)))
            return
        statement = (
            update(_MENTIONS)
            .where(_MENTIONS.c.id == bindparam("b_id"))
            .values(case_id=bindparam("b_case"))
        )
        await self._s.execute(statement, [{"b_id": m, "b_case": c} for m, c in pairs])

    async def first_of_cases(self, case_ids: Sequence[int]) -> dict[int, Mention]:
        found: dict[int, Mention] = {}
        for chunk in chunks(sorted(case_ids)):
            firsts = (
                select(func.min(MentionRow.id))
                .where(one_of(self._s, MentionRow.case_id, chunk))
                .group_by(MentionRow.case_id)
            )
            for row in await self._s.scalars(select(MentionRow).where(MentionRow.id.in_(firsts))):
                assert row.case_id is not None
                found[row.case_id] = mention_from_row(row)
        return found

    async def get(self, mention_id: int) -> Mention | None:
        row = await self._s.get(MentionRow, mention_id, populate_existing=True)
        return mention_from_row(row) if row else None

    async def find_by_url(self, url: str) -> Mention | None:
        row = await self._s.scalar(
            select(MentionRow).where(MentionRow.url_hash == url).order_by(MentionRow.id).limit(1)
        )
        return mention_from_row(row) if row else None

    async def correct_sentiment(
        self, mention_ids: Sequence[int], sentiment: Sentiment, by: str, at: datetime
    ) -> None:
        for chunk in chunks(sorted(set(mention_ids))):
            await self._s.execute(
                update(MentionRow)
                .where(MentionRow.id.in_(chunk))
                .values(
                    sentiment=sentiment.value,
                    sentiment_source=SentimentSource.STAFF.value,
                    sentiment_by=by,
                    sentiment_at=at,
                )
                .execution_options(synchronize_session=False)
            )

    async def corrections(self, since: datetime) -> list[SentimentCorrection]:
        rows = await self._s.execute(
            select(
                MentionRow.id,
                MentionRow.personal,
                MentionRow.language,
                MentionRow.sentiment,
                CaseRow.department,
                MentionRow.sentiment_by,
                MentionRow.sentiment_at,
            )
            .outerjoin(CaseRow, CaseRow.id == MentionRow.case_id)
            .where(
                MentionRow.sentiment_source == SentimentSource.STAFF.value,
                MentionRow.sentiment_at >= since,
            )
            .order_by(MentionRow.sentiment_at, MentionRow.id)
        )
        return [
            SentimentCorrection(
                mention_id=mention_id,
                text=personal[_TEXT],
                language=language,
                sentiment=Sentiment(sentiment),
                department=department,
                by=by or "",
                at=at,
            )
            for mention_id, personal, language, sentiment, department, by, at in rows
        ]

    async def undecided(
        self, skip_sources: Collection[str], limit: int
    ) -> tuple[list[Mention], int]:
        waiting: list[ColumnElement[bool]] = [
            MentionRow.sentiment == Sentiment.UNCERTAIN.value,
            MentionRow.case_id.is_(None),
            MentionRow.sentiment_source != SentimentSource.STAFF.value,
        ]
        if skip_sources:
            waiting.append(MentionRow.source.not_in(sorted(skip_sources)))
        rows = await self._s.scalars(
            select(MentionRow).where(*waiting).order_by(MentionRow.id.desc()).limit(limit)
        )
        total = await self._s.scalar(select(func.count()).select_from(MentionRow).where(*waiting))
        return [mention_from_row(row) for row in rows], int(total or 0)

    async def reserve(self) -> None:
        if self._s.get_bind().dialect.name == "sqlite":
            # A write that changes nothing still takes SQLite's write lock until commit: the
            # batch's reads then stay true, instead of its writes failing on a stale snapshot.
            await self._s.execute(update(_MENTIONS).where(false()).values(id=_MENTIONS.c.id))

    async def known(self, source: str, external_ids: Sequence[str]) -> set[str]:
        by_hash = _by_hash(external_ids)
        rows = await rows_in(self._s, _KNOWN, (source,), sorted(by_hash))
        return {by_hash[hashed] for (hashed,) in rows}

    async def add_many(self, mentions: Sequence[Mention], author_ids: Sequence[int]) -> list[int]:
        if not mentions:
            return []
        rows = [mention_row(m, a) for m, a in zip(mentions, author_ids, strict=True)]
        if self._s.get_bind().dialect.name == "sqlite":
            with raced("mentions"):
                return await insert_numbered(self._s, _MENTIONS, MENTION_COLUMNS, rows)
        # On PostgreSQL ids come from a sequence other writers share: the insert returns them,
        # with the row's (source, external id hash) to tell which is whose.
        with raced("mentions"):
            found = await insert_returning(
                self._s, _MENTIONS, MENTION_COLUMNS, rows, ("source", "external_id_hash", "id")
            )
        by_hash = _by_hash([m.external_id for m in mentions])
        ids = {(source, by_hash[hashed]): int(new_id) for source, hashed, new_id in found}
        return [ids[m.source, m.external_id] for m in mentions]


def _by_hash(values: Sequence[str]) -> dict[str, str]:
    """Each value by its keyed hash, for raw look-ups (they bypass the column types)."""
    distinct = list(set(values))
    return dict(zip(crypto.keyring().blind_many(distinct), distinct, strict=True))
