"""Queries that link things: related mentions into one case, one author across channels."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.model import TERMINAL_STATES, Sentiment
from store.models import AuthorIdentityRow, AuthorRow, CaseRow, MentionRow

_OPEN = [s.value for s in TERMINAL_STATES]


class SqlLinkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def related_open_case(
        self,
        *,
        story_id: str | None,
        thread_urls: tuple[str, ...],
        author_id: int | None,
        department: str,
        since: datetime,
    ) -> int | None:
        """An open case this mention belongs to: the same story id from the source, a reply
        under the same post or URL, or the same author about the same subject lately."""
        # One indexed look-up per kind of link, cheapest first; OR across them would scan.
        lookups = []
        if story_id:
            lookups.append(MentionRow.story_id == story_id)
        if thread_urls:
            lookups.append(MentionRow.reply_to_url.in_(thread_urls))
            lookups.append(MentionRow.url.in_(thread_urls))
        if author_id is not None:
            lookups.append(
                (MentionRow.author_id == author_id)
                & (MentionRow.received_at >= since)
                & (CaseRow.department == department)
            )
        for condition in lookups:
            found = await self._s.scalar(
                select(CaseRow.id)
                .join(MentionRow, MentionRow.case_id == CaseRow.id)
                .where(condition, CaseRow.state.not_in(_OPEN), CaseRow.drill.is_(False))
                .order_by(CaseRow.id.desc())
                .limit(1)
            )
            if found is not None:
                return int(found)
        return None

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
                        (AuthorIdentityRow.channel == c) & (AuthorIdentityRow.external_id == e)
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
