"""Queries that link things: related mentions into one case, one author across channels."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    Integer,
    Select,
    Table,
    bindparam,
    delete,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bot.model import TERMINAL_STATES, Sentiment
from bot.ports import RelatedCases, SimilarCandidate
from store import crypto
from store.driver import chunks, insert_rows, one_of
from store.models import (
    MENTION_PERSONAL,
    AuthorIdentityRow,
    AuthorRow,
    CaseRow,
    MentionBandRow,
    MentionRow,
)

_CLOSED = [s.value for s in TERMINAL_STATES]
_TEXT_AT = MENTION_PERSONAL.index("text")
_BANDS = cast(Table, MentionBandRow.__table__)
_BAND_COLUMNS = ("mention_id", "department", "band_hash", "received_at")


class SqlLinkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def related_open_cases(
        self,
        *,
        story_ids: set[str],
        thread_urls: set[str],
        authors: set[tuple[int, str]],
        since: datetime,
    ) -> RelatedCases:
        """Open, non-drill cases that mentions with these links belong to, newest first."""
        # One indexed look-up per kind of link; an OR across them would scan.
        newest = func.max(CaseRow.id)
        joined = (
            select()
            .select_from(CaseRow)
            .join(MentionRow, MentionRow.case_id == CaseRow.id)
            .where(CaseRow.state.not_in(_CLOSED), CaseRow.drill.is_(False))
        )
        # Links are encrypted: matched by their keyed hashes, which the rows give back.
        blind = crypto.keyring().blind
        stories = {blind(story): story for story in story_ids}
        by_story: dict[str, int] = {}
        for chunk in chunks(sorted(story_ids)):
            rows = await self._s.execute(
                joined.add_columns(MentionRow.story_hash, newest)
                .where(one_of(self._s, MentionRow.story_hash, chunk))
                .group_by(MentionRow.story_hash)
            )
            by_story.update((stories[hashed], int(case_id)) for hashed, case_id in rows)
        threads = {blind(url): url for url in thread_urls}
        by_thread: dict[str, int] = {}
        for column in (MentionRow.reply_to_url_hash, MentionRow.url_hash):
            for chunk in chunks(sorted(thread_urls)):
                rows = await self._s.execute(
                    joined.add_columns(column, newest)
                    .where(one_of(self._s, column, chunk))
                    .group_by(column)
                )
                for hashed, case_id in rows:
                    key = threads[hashed]
                    by_thread[key] = max(by_thread.get(key, 0), int(case_id))
        by_author: dict[tuple[int, str], int] = {}
        author_ids = sorted({author_id for author_id, _ in authors})
        for ids in chunks(author_ids):
            rows = await self._s.execute(
                joined.add_columns(MentionRow.author_id, CaseRow.department, newest)
                .where(one_of(self._s, MentionRow.author_id, ids), MentionRow.received_at >= since)
                .group_by(MentionRow.author_id, CaseRow.department)
            )
            for author_id, department, case_id in rows:
                if (author_id, department) in authors:
                    by_author[author_id, department] = int(case_id)
        return RelatedCases(by_story, by_thread, by_author)

    async def similar_open(
        self, bands: set[tuple[str, str]], since: datetime, per_band: int
    ) -> list[SimilarCandidate]:
        if not bands:
            return []
        blind = crypto.keyring().blind
        plain = {(department, blind(band)): band for department, band in bands}
        found: list[SimilarCandidate] = []
        seen: set[tuple[int, str]] = set()
        postgres = self._s.get_bind().dialect.name == "postgresql"
        for department in sorted({d for d, _ in bands}):
            wanted = sorted(b for d, b in bands if d == department)
            for chunk in chunks(wanted):
                values = {"department": department, "since": since, "per_band": per_band}
                if postgres:
                    rows = await self._s.execute(_newest_per_band(), {**values, "bands": chunk})
                else:
                    rows = await self._s.execute(_ranked_per_band(self._s, chunk), values)
                for hashed, mention_id, case_id, personal, size in rows:
                    text = personal[_TEXT_AT]
                    band = plain.get((department, hashed))
                    if band is None or (int(mention_id), band) in seen:
                        continue
                    seen.add((int(mention_id), band))
                    found.append(
                        SimilarCandidate(
                            int(mention_id), int(case_id), department, band, text, int(size)
                        )
                    )
        return found

    async def add_bands(
        self, rows: Sequence[tuple[int, str, str, datetime]], prune_before: datetime
    ) -> None:
        await self._s.execute(
            delete(MentionBandRow).where(MentionBandRow.received_at < prune_before)
        )
        # Straight to the driver: a batch gives thousands of bands, each hashed (one call for
        # the column) and none needing the ORM.
        await insert_rows(self._s, _BANDS, _BAND_COLUMNS, rows)

    async def move_bands(self, case_id: int, department: str) -> None:
        mentions = select(MentionRow.id).where(MentionRow.case_id == case_id)
        await self._s.execute(
            update(MentionBandRow)
            .where(MentionBandRow.mention_id.in_(mentions))
            .values(department=department)
        )

    async def authors_in_cases(
        self, case_ids: Sequence[int], author_ids: set[int]
    ) -> set[tuple[int, int]]:
        found: set[tuple[int, int]] = set()
        if not case_ids or not author_ids:
            return found
        for authors in chunks(sorted(author_ids)):
            for cases in chunks(sorted(case_ids)):
                rows = await self._s.execute(
                    select(MentionRow.case_id, MentionRow.author_id)
                    .where(
                        one_of(self._s, MentionRow.author_id, authors),
                        one_of(self._s, MentionRow.case_id, cases),
                    )
                    .distinct()
                )
                found.update((int(c), int(a)) for c, a in rows)
        return found

    async def negative_since(self, author_id: int, since: datetime) -> int:
        count = await self._s.scalar(
            select(func.count())
            .select_from(MentionRow)
            .where(
                MentionRow.author_id == author_id,
                MentionRow.sentiment == Sentiment.NEGATIVE.value,
                MentionRow.received_at >= since,
            )
        )
        return int(count or 0)

    async def max_reach(self, author_id: int) -> int:
        value = await self._s.scalar(
            select(func.max(MentionRow.reach)).where(MentionRow.author_id == author_id)
        )
        return int(value or 0)

    async def authors_of(self, identities: list[tuple[str, str]]) -> list[int]:
        """Distinct authors owning any of these (channel, external id) identities."""
        if not identities:
            return []
        rows = await self._s.scalars(
            select(AuthorIdentityRow.author_id)
            .where(
                or_(
                    *(
                        (AuthorIdentityRow.channel == c) & (AuthorIdentityRow.external_id_hash == e)
                        for c, e in identities
                    )
                )
            )
            .distinct()
            .order_by(AuthorIdentityRow.author_id)
        )
        return [int(a) for a in rows]

    async def merge_authors(self, keep: int, gone: int) -> None:
        """Everything of `gone` becomes `keep`'s; the counts add up; `gone` disappears."""
        kept = await self._s.get(AuthorRow, keep, populate_existing=True)
        other = await self._s.get(AuthorRow, gone, populate_existing=True)
        if kept is None or other is None or keep == gone:
            return
        await self._s.execute(
            update(AuthorIdentityRow)
            .where(AuthorIdentityRow.author_id == gone)
            .values(author_id=keep)
        )
        await self._s.execute(
            update(MentionRow).where(MentionRow.author_id == gone).values(author_id=keep)
        )
        kept.negative_count += other.negative_count
        kept.neutral_count += other.neutral_count
        kept.positive_count += other.positive_count
        firsts = [d for d in (kept.first_seen_at, other.first_seen_at) if d is not None]
        lasts = [d for d in (kept.last_seen_at, other.last_seen_at) if d is not None]
        kept.first_seen_at = min(firsts) if firsts else None
        kept.last_seen_at = max(lasts) if lasts else None
        kept.labels = sorted(set(kept.labels or ()) | set(other.labels or ()))
        await self._s.flush()
        await self._s.execute(delete(AuthorRow).where(AuthorRow.id == gone))
        await self._s.flush()


def _band_mentions() -> Select[Any]:
    """The mentions of a band in open cases of the department (see similar_open)."""
    return (
        select(
            MentionBandRow.band_hash,
            MentionRow.id,
            MentionRow.case_id,
            MentionRow.personal,  # the text is in the sealed record
            CaseRow.mention_count,
        )
        .join(MentionRow, MentionRow.id == MentionBandRow.mention_id)
        .join(CaseRow, CaseRow.id == MentionRow.case_id)
        .where(
            MentionBandRow.department == bindparam("department"),
            MentionBandRow.received_at >= bindparam("since"),
            CaseRow.state.not_in(_CLOSED),
            CaseRow.drill.is_(False),
            CaseRow.department == bindparam("department"),
        )
    )


@functools.cache
def _newest_per_band() -> Select[Any]:
    """PostgreSQL: for each band, walk ix_mention_bands_newest back from its newest row and
    stop at `per_band`. A storm's bands are shared by thousands of mentions: ranking all of
    them and keeping three (as on SQLite) read, joined and sorted every one, 50 ms a batch
    at ten thousand rows and more with each mention."""
    wanted = (
        func.unnest(bindparam("bands", type_=ARRAY(MentionBandRow.band_hash.type)))
        .table_valued("band_hash")
        .render_derived()
        .alias("wanted")
    )
    newest = (
        _band_mentions()
        .where(MentionBandRow.band_hash == wanted.c.band_hash)
        .order_by(MentionBandRow.id.desc())
        .limit(bindparam("per_band", type_=Integer))
        .lateral("newest")
    )
    return select(*newest.c).select_from(wanted).join(newest, true())


def _ranked_per_band(session: AsyncSession, bands: Sequence[str]) -> Select[Any]:
    """SQLite (no LATERAL): every row of the bands ranked, the newest `per_band` of each kept;
    in its own process the rows cost no round trips."""
    newest = func.row_number().over(
        partition_by=MentionBandRow.band_hash, order_by=MentionBandRow.id.desc()
    )
    ranked = (
        _band_mentions()
        .add_columns(newest.label("n"))
        .where(one_of(session, MentionBandRow.band_hash, bands))
        .subquery()
    )
    return select(*[c for c in ranked.c if c.name != "n"]).where(
        ranked.c.n <= bindparam("per_band", type_=Integer)
    )
