"""Repositories: domain objects in, domain objects out. They flush but never commit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    false,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy import case as sql_case
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat.outbox import UNDELIVERED, OutboxItem, OutboxOp, OutboxStatus
from bot.model import (
    TERMINAL_STATES,
    Author,
    AuthorLabel,
    Case,
    CaseState,
    Draft,
    DraftStatus,
    Event,
    Identity,
    IgnoreReason,
    Mention,
    Outcome,
    Priority,
    Sentiment,
    SentimentSource,
)
from bot.ports import AuthorStanding, AuthorTally, ConcurrentUpdate, DepartmentStatus
from store.driver import (
    database_form,
    driver_sql,
    fetch,
    in_list,
    insert_rows,
    processors,
    result_processor,
)
from store.models import (
    AuthorIdentityRow,
    AuthorRow,
    CaseRow,
    DraftRow,
    EventRow,
    KeyValueRow,
    MentionRow,
    MessageRefRow,
    OutboxRow,
)
from store.outbox_bulk import enqueue_many


def _as_utc(value: Any) -> datetime:
    """Aggregates bypass the column type: SQLite hands back text, PostgreSQL a datetime."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _insert(session: AsyncSession, table: Any) -> Any:
    """INSERT that can say ON CONFLICT DO NOTHING on both backends."""
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


# --- cases -----------------------------------------------------------------------------------

_CASE_FIELDS = (
    "department",
    "source",
    "drill",
    "assignee",
    "escalation_level",
    "sla_policy",
    "first_touch_due_at",
    "answer_due_at",
    "resolution_due_at",
    "first_touched_at",
    "approved_at",
    "published_at",
    "published_url",
    "closed_at",
    "follow_up_due_at",
    "waiting_since",
    "mention_count",
    "version",
    "created_at",
)


def _case_values(case: Case) -> dict[str, Any]:
    values = {name: getattr(case, name) for name in _CASE_FIELDS}
    values.update(
        state=case.state.value,
        priority=case.priority.value,
        outcome=case.outcome.value if case.outcome else None,
        ignore_reason=case.ignore_reason.value if case.ignore_reason else None,
        codes=list(case.codes),
    )
    return values


def _draft_values(draft: Draft) -> dict[str, Any]:
    return {
        "version": draft.version,
        "text": draft.text,
        "author": draft.author,
        "created_at": draft.created_at,
        "status": draft.status.value,
        "template_id": draft.template_id,
        "pre_approved": draft.pre_approved,
        "reviewer": draft.reviewer,
        "reviewed_at": draft.reviewed_at,
        "note": draft.note,
    }


def _draft_from_row(row: DraftRow) -> Draft:
    return Draft(
        version=row.version,
        text=row.text,
        author=row.author,
        created_at=row.created_at,
        status=DraftStatus(row.status),
        template_id=row.template_id,
        pre_approved=row.pre_approved,
        reviewer=row.reviewer,
        reviewed_at=row.reviewed_at,
        note=row.note,
    )


def _case_from_row(row: CaseRow | Row[Any], drafts: Sequence[Draft]) -> Case:
    return Case(
        id=row.id,
        state=CaseState(row.state),
        priority=Priority(row.priority),
        outcome=Outcome(row.outcome) if row.outcome else None,
        ignore_reason=IgnoreReason(row.ignore_reason) if row.ignore_reason else None,
        codes=tuple(row.codes or ()),
        drafts=tuple(drafts),
        **{name: getattr(row, name) for name in _CASE_FIELDS},
    )


class SqlCaseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, case: Case) -> Case:
        row = CaseRow(**_case_values(case))
        self._s.add(row)
        await self._s.flush()
        for draft in case.drafts:
            self._s.add(DraftRow(case_id=row.id, **_draft_values(draft)))
        await self._s.flush()
        return _case_from_row(row, case.drafts)

    async def add_many(self, cases: Sequence[Case]) -> list[Case]:
        if not cases:
            return []
        if any(case.drafts for case in cases):
            raise ValueError("add_many takes new cases, without drafts")
        statement = insert(CaseRow).returning(CaseRow.id, sort_by_parameter_order=True)
        ids = (await self._s.execute(statement, [_case_values(c) for c in cases])).scalars()
        return [replace(case, id=int(new_id)) for case, new_id in zip(cases, ids, strict=True)]

    async def get_many(self, case_ids: Sequence[int]) -> dict[int, Case]:
        if not case_ids:
            return {}
        table = cast(Table, CaseRow.__table__)
        rows: list[Row[Any]] = []
        for start in range(0, len(case_ids), 500):
            chunk = case_ids[start : start + 500]
            # Plain rows, not ORM objects: cheaper, and nothing is changed through the session.
            rows += (await self._s.execute(select(table).where(table.c.id.in_(chunk)))).all()
        drafts = await self._drafts_of([row.id for row in rows])
        return {row.id: _case_from_row(row, drafts[row.id]) for row in rows}

    async def record_joined(self, cases: Sequence[Case]) -> None:
        if not cases:
            return
        table = cast(Table, CaseRow.__table__)
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.version == bindparam("b_before"))
            .values(mention_count=bindparam("b_count"), version=bindparam("b_version"))
        )
        params = [
            {
                "b_id": c.id,
                "b_before": c.version - 1,
                "b_count": c.mention_count,
                "b_version": c.version,
            }
            for c in cases
        ]
        result = await self._s.execute(statement, params)
        if result.rowcount != len(cases):  # type: ignore[attr-defined]
            raise ConcurrentUpdate("a related case changed while mentions joined it")

    async def get(self, case_id: int) -> Case | None:
        row = await self._s.get(CaseRow, case_id, populate_existing=True)
        if row is None:
            return None
        drafts = await self._drafts_of([case_id])
        return _case_from_row(row, drafts[case_id])

    async def save(self, case: Case, expected_version: int) -> None:
        assert case.id is not None
        values = _case_values(case)
        result = await self._s.execute(
            update(CaseRow)
            .where(CaseRow.id == case.id, CaseRow.version == expected_version)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentUpdate(f"case {case.id} changed since version {expected_version}")
        stored = {
            row.version: row
            for row in (
                await self._s.scalars(select(DraftRow).where(DraftRow.case_id == case.id))
            ).all()
        }
        for draft in case.drafts:
            row = stored.get(draft.version)
            if row is None:
                self._s.add(DraftRow(case_id=case.id, **_draft_values(draft)))
            else:
                for key, value in _draft_values(draft).items():
                    setattr(row, key, value)
        await self._s.flush()

    async def list_open(self, department: str | None = None) -> list[Case]:
        query = select(CaseRow).where(CaseRow.state.not_in([s.value for s in TERMINAL_STATES]))
        if department is not None:
            query = query.where(CaseRow.department == department)
        rows = (await self._s.scalars(query.order_by(CaseRow.id))).all()
        drafts = await self._drafts_of([row.id for row in rows])
        return [_case_from_row(row, drafts[row.id]) for row in rows]

    async def open_without_card(self, department: str, transport: str, chat: str) -> list[Case]:
        """Open cases of a department whose card is neither delivered to this chat nor
        waiting in the outbox: one anti-join on the refs' and the outbox's indexes."""
        ref = literal("card:") + sql_cast(CaseRow.id, String) + literal(":") + CaseRow.department
        delivered = select(MessageRefRow.ref_key).where(
            MessageRefRow.transport == transport,
            MessageRefRow.chat == chat,
            MessageRefRow.ref_key == ref,
        )
        waiting = select(OutboxRow.id).where(
            OutboxRow.transport == transport,
            OutboxRow.chat == chat,
            OutboxRow.ref_key == ref,
            OutboxRow.status.in_([s.value for s in UNDELIVERED]),
            OutboxRow.op == OutboxOp.POST.value,
        )
        query = select(CaseRow).where(
            CaseRow.department == department,
            CaseRow.state.not_in([s.value for s in TERMINAL_STATES]),
            ~delivered.exists(),
            ~waiting.exists(),
        )
        rows = (await self._s.scalars(query.order_by(CaseRow.id))).all()
        drafts = await self._drafts_of([row.id for row in rows])
        return [_case_from_row(row, drafts[row.id]) for row in rows]

    async def status(self, now: datetime, soon: datetime) -> list[DepartmentStatus]:
        # The deadline that matters now: first touch until touched, then the approved answer,
        # then resolution.
        due = sql_case(
            (CaseRow.first_touched_at.is_(None), CaseRow.first_touch_due_at),
            (CaseRow.approved_at.is_(None), CaseRow.answer_due_at),
            else_=CaseRow.resolution_due_at,
        )
        rows = await self._s.execute(
            select(
                CaseRow.department,
                func.count(),
                func.sum(sql_case((due < now, 1), else_=0)),
                func.sum(sql_case((and_(due >= now, due < soon), 1), else_=0)),
                func.min(sql_case((CaseRow.state == CaseState.NEW.value, CaseRow.created_at))),
            )
            .where(CaseRow.state.not_in([s.value for s in TERMINAL_STATES]))
            .group_by(CaseRow.department)
        )
        return [
            DepartmentStatus(
                dept,
                int(total),
                int(overdue or 0),
                int(at_risk or 0),
                _as_utc(oldest) if oldest is not None else None,
            )
            for dept, total, overdue, at_risk, oldest in rows.all()
        ]

    async def _drafts_of(self, case_ids: Sequence[int]) -> dict[int, list[Draft]]:
        by_case: dict[int, list[Draft]] = defaultdict(list)
        for start in range(0, len(case_ids), 500):
            chunk = case_ids[start : start + 500]
            rows = await self._s.scalars(
                select(DraftRow)
                .where(DraftRow.case_id.in_(chunk))
                .order_by(DraftRow.case_id, DraftRow.version)
            )
            for row in rows:
                by_case[row.case_id].append(_draft_from_row(row))
        return by_case


# --- mentions --------------------------------------------------------------------------------


def _mention_from_row(row: MentionRow) -> Mention:
    return Mention(
        id=row.id,
        source=row.source,
        external_id=row.external_id,
        text=row.text,
        author=Identity(row.identity_channel, row.identity_external_id, row.identity_name),
        received_at=row.received_at,
        published_at=row.published_at,
        url=row.url,
        language=row.language,
        sentiment=Sentiment(row.sentiment),
        sentiment_source=SentimentSource(row.sentiment_source),
        sentiment_score=row.sentiment_score,
        reach=row.reach,
        codes=tuple(row.codes or ()),
        story_id=row.story_id,
        reply_to_url=row.reply_to_url,
        author_id=row.author_id,
        case_id=row.case_id,
    )


class SqlMentionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, mention: Mention) -> Mention | None:
        if mention.author_id is None:
            raise ValueError("a mention is stored after its author")
        values = {
            "source": mention.source,
            "external_id": mention.external_id,
            "url": mention.url,
            "author_id": mention.author_id,
            "identity_channel": mention.author.channel,
            "identity_external_id": mention.author.external_id,
            "identity_name": mention.author.display_name,
            "text": mention.text,
            "language": mention.language,
            "published_at": mention.published_at,
            "received_at": mention.received_at,
            "sentiment": (mention.sentiment or Sentiment.NEUTRAL).value,
            "sentiment_source": mention.sentiment_source.value,
            "sentiment_score": mention.sentiment_score,
            "reach": mention.reach,
            "codes": list(mention.codes),
            "story_id": mention.story_id,
            "reply_to_url": mention.reply_to_url,
            "case_id": mention.case_id,
        }
        statement = (
            _insert(self._s, MentionRow)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["source", "external_id"])
            .returning(MentionRow.id)
        )
        new_id = (await self._s.execute(statement)).scalar_one_or_none()
        if new_id is None:
            return None
        return Mention(**{**_mention_fields(mention), "id": new_id})

    async def get_by_external(self, source: str, external_id: str) -> Mention | None:
        row = await self._s.scalar(
            select(MentionRow).where(
                MentionRow.source == source, MentionRow.external_id == external_id
            )
        )
        return _mention_from_row(row) if row else None

    async def for_case(self, case_id: int) -> list[Mention]:
        rows = await self._s.scalars(
            select(MentionRow).where(MentionRow.case_id == case_id).order_by(MentionRow.id)
        )
        return [_mention_from_row(row) for row in rows]

    async def attach_many(self, pairs: Sequence[tuple[int, int]]) -> None:
        if not pairs:
            return
        statement = (
            update(_MENTIONS)
            .where(_MENTIONS.c.id == bindparam("b_id"))
            .values(case_id=bindparam("b_case"))
        )
        await self._s.execute(statement, [{"b_id": m, "b_case": c} for m, c in pairs])

    async def first_of_cases(self, case_ids: Sequence[int]) -> dict[int, Mention]:
        found: dict[int, Mention] = {}
        for chunk in _chunks(sorted(case_ids)):
            firsts = (
                select(func.min(MentionRow.id))
                .where(MentionRow.case_id.in_(chunk))
                .group_by(MentionRow.case_id)
            )
            for row in await self._s.scalars(select(MentionRow).where(MentionRow.id.in_(firsts))):
                assert row.case_id is not None
                found[row.case_id] = _mention_from_row(row)
        return found

    async def reserve(self) -> None:
        if self._s.get_bind().dialect.name == "sqlite":
            # A write that changes nothing still takes SQLite's write lock until commit: the
            # batch's reads then stay true, instead of its writes failing on a stale snapshot.
            await self._s.execute(update(_MENTIONS).where(false()).values(id=_MENTIONS.c.id))

    async def known(self, source: str, external_ids: Sequence[str]) -> set[str]:
        rows = await _rows_in(self._s, _KNOWN, (source,), sorted(set(external_ids)))
        return {external_id for (external_id,) in rows}

    async def add_many(self, mentions: Sequence[Mention], author_ids: Sequence[int]) -> list[int]:
        if not mentions:
            return []
        rows = [_mention_row(m, a) for m, a in zip(mentions, author_ids, strict=True)]
        if self._s.get_bind().dialect.name == "sqlite":
            with _raced("mentions"):
                return await _insert_numbered(self._s, _MENTIONS, _MENTION_COLUMNS, rows)
        with _raced("mentions"):
            await insert_rows(self._s, _MENTIONS, _MENTION_COLUMNS, rows)
        # Elsewhere ids come from a sequence other writers share: look them up.
        by_source: dict[str, list[str]] = defaultdict(list)
        for mention in mentions:
            by_source[mention.source].append(mention.external_id)
        ids: dict[tuple[str, str], int] = {}
        for source, external_ids in by_source.items():
            found = await _rows_in(self._s, _NUMBERED, (source,), external_ids)
            ids.update(((source, external_id), int(new_id)) for external_id, new_id in found)
        return [ids[m.source, m.external_id] for m in mentions]


_KNOWN = "SELECT external_id FROM {mentions} WHERE source = ? AND external_id IN ({keys})"
_NUMBERED = "SELECT external_id, id FROM {mentions} WHERE source = ? AND external_id IN ({keys})"


def _mention_fields(mention: Mention) -> dict[str, Any]:
    return {name: getattr(mention, name) for name in Mention.__dataclass_fields__}


_MENTION_COLUMNS = (
    "source",
    "external_id",
    "url",
    "author_id",
    "identity_channel",
    "identity_external_id",
    "identity_name",
    "text",
    "language",
    "published_at",
    "received_at",
    "sentiment",
    "sentiment_source",
    "sentiment_score",
    "reach",
    "codes",
    "story_id",
    "reply_to_url",
    "case_id",
)


# Enum values by member: a dict look-up costs a fraction of the `.value` property.
_VALUES: dict[Sentiment | SentimentSource, str] = {
    **{s: s.value for s in Sentiment},
    **{s: s.value for s in SentimentSource},
}


def _mention_row(mention: Mention, author_id: int) -> tuple[Any, ...]:
    return (
        mention.source,
        mention.external_id,
        mention.url,
        author_id,
        mention.author.channel,
        mention.author.external_id,
        mention.author.display_name,
        mention.text,
        mention.language,
        mention.published_at,
        mention.received_at,
        _VALUES[mention.sentiment or Sentiment.NEUTRAL],  # intake has classified it
        _VALUES[mention.sentiment_source],
        mention.sentiment_score,
        mention.reach,
        mention.codes,  # a tuple: hashable for insert_rows' cache; JSON makes it a list
        mention.story_id,
        mention.reply_to_url,
        mention.case_id,
    )


# Core tables for the bulk statements: plain executemany, without the ORM's per-row work.
_MENTIONS = cast(Table, MentionRow.__table__)
_AUTHORS = cast(Table, AuthorRow.__table__)
_IDENTITIES = cast(Table, AuthorIdentityRow.__table__)

_IDENTITY_COLUMNS = ("author_id", "channel", "external_id", "display_name", "profile_url")

# Well under every backend's limit of bound parameters per statement.
_CHUNK = 500


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def _raced(what: str) -> Iterator[None]:
    """A bulk write that lost a race (a key another writer stored since our reads, or SQLite's
    stale-snapshot refusal) becomes ConcurrentUpdate: the caller runs the batch again."""
    try:
        yield
    except IntegrityError as error:
        raise ConcurrentUpdate(f"{what}: {error.orig}") from error
    except OperationalError as error:
        if "locked" not in str(error.orig):
            raise
        raise ConcurrentUpdate(f"{what}: {error.orig}") from error


async def _insert_numbered(
    session: AsyncSession, table: Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> list[int]:
    """insert_rows on SQLite, and the new rows' ids in order without reading the rows back.

    A row inserted without an id gets the table's largest id + 1, and from its first insert
    the transaction holds SQLite's only write lock: the batch takes the next len(rows) ids.
    Anything else (another writer between the look at the largest id and the insert, or a
    table whose ids ran out, where SQLite picks free ids at random) shows as a gap: the
    caller runs the batch again."""
    connection = await session.connection()
    largest = f"SELECT max(id) FROM {connection.dialect.identifier_preparer.quote(table.name)}"
    before = (await connection.exec_driver_sql(largest)).scalar() or 0
    await insert_rows(session, table, columns, rows)
    after = (await connection.exec_driver_sql(largest)).scalar()
    if after != before + len(rows):
        raise ConcurrentUpdate(f"{table.name}: ids {before}..{after} for {len(rows)} new rows")
    return list(range(before + 1, after + 1))


_TABLE_NAMES = {
    "mentions": _MENTIONS.name,
    "authors": _AUTHORS.name,
    "identities": _IDENTITIES.name,
}


async def _rows_in(
    session: AsyncSession, template: str, fixed: Sequence[Any], keys: Sequence[Any]
) -> list[Row[Any]]:
    """Rows of `template` for `keys`, _CHUNK keys a statement. In the template `?` stands
    for each of the `fixed` parameters (in database form), `{keys}` for the list of keys, and
    `{mentions}`, `{authors}`, `{identities}` for those tables."""
    found: list[Row[Any]] = []
    for chunk in _chunks(keys):
        sql = template.format(keys=in_list(len(chunk)), **_TABLE_NAMES)
        found += await fetch(session, sql, (*fixed, *chunk))
    return found


# --- authors ---------------------------------------------------------------------------------


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
                AuthorIdentityRow.external_id == identity.external_id,
            )
        )
        return await self._author(row) if row else None

    async def cards_of(self, author_ids: Sequence[int]) -> dict[int, Author]:
        found: dict[int, Author] = {}
        for chunk in _chunks(sorted(set(author_ids))):
            for row in await self._s.scalars(
                select(AuthorRow)
                .where(AuthorRow.id.in_(chunk))
                .execution_options(populate_existing=True)
            ):
                found[row.id] = Author(
                    id=row.id,
                    display_name=row.display_name,
                    labels=frozenset(AuthorLabel(label) for label in row.labels or ()),
                    negative_count=row.negative_count,
                    neutral_count=row.neutral_count,
                    positive_count=row.positive_count,
                    first_seen_at=row.first_seen_at,
                    last_seen_at=row.last_seen_at,
                )
        return found

    async def add(self, author: Author) -> Author:
        row = AuthorRow(**self._values(author))
        self._s.add(row)
        await self._s.flush()
        for identity in author.identities:
            self._s.add(self._identity_row(row.id, identity))
        await self._flush_identities()
        return await self._author(row)

    async def save(self, author: Author) -> None:
        assert author.id is not None
        await self._s.execute(
            update(AuthorRow).where(AuthorRow.id == author.id).values(**self._values(author))
        )
        known = {
            (r.channel, r.external_id)
            for r in await self._s.scalars(
                select(AuthorIdentityRow).where(AuthorIdentityRow.author_id == author.id)
            )
        }
        for identity in author.identities:
            if (identity.channel, identity.external_id) not in known:
                self._s.add(self._identity_row(author.id, identity))
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
        # One channel at a time: (channel, external_id) is the unique index.
        for channel, external_ids in by_channel.items():
            for external_id, author_id in await _rows_in(
                self._s, _OWNERS, (channel,), sorted(external_ids)
            ):
                found[channel, external_id] = int(author_id)
        return found

    async def add_many(self, authors: Sequence[Author]) -> list[Author]:
        if not authors:
            return []
        if self._s.get_bind().dialect.name == "sqlite":
            rows = [self._key(author) for author in authors]
            with _raced("authors"):
                ids = await _insert_numbered(self._s, _AUTHORS, _AUTHOR_KEY, rows)
        else:
            ids = await self._add_returning(authors)
        identities = [
            self._identity_tuple(author_id, identity)
            for author_id, author in zip(ids, authors, strict=True)
            for identity in author.identities
        ]
        if identities:
            with _raced("author identities"):
                await insert_rows(self._s, _IDENTITIES, _IDENTITY_COLUMNS, identities)
        return [replace(a, id=i) for a, i in zip(authors, ids, strict=True)]

    async def _add_returning(self, authors: Sequence[Author]) -> list[int]:
        table = _AUTHORS
        columns = [table.c[name] for name in _AUTHOR_KEY]
        values = [self._values(author) for author in authors]
        with _raced("authors"):
            rows = (
                await self._s.execute(insert(table).returning(table.c.id, *columns), values)
            ).all()
        # RETURNING order is not guaranteed, and rows are told apart only by their values:
        # authors with equal values are interchangeable, so any of their ids fits each.
        pool: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for new_id, *stored in rows:
            pool[_author_key(stored)].append(int(new_id))
        return [pool[_author_key([v[name] for name in _AUTHOR_KEY])].pop() for v in values]

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
        rows = await _rows_in(self._s, _STANDING, fixed, sorted(set(author_ids)))
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
        counted = [t for t in tallies if t.negative or t.neutral or t.positive or t.seen_at]
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
            self._identity_tuple(t.author_id, identity)
            for t in tallies
            for identity in t.identities
        ]
        if identities:
            with _raced("author identities"):
                await insert_rows(self._s, _IDENTITIES, _IDENTITY_COLUMNS, identities)

    @staticmethod
    def _identity_tuple(author_id: int, identity: Identity) -> tuple[Any, ...]:
        return (
            author_id,
            identity.channel,
            identity.external_id,
            identity.display_name,
            identity.profile_url,
        )

    @staticmethod
    def _key(author: Author) -> tuple[Any, ...]:
        """An author's _AUTHOR_KEY columns; labels a tuple for _database_form's cache."""
        return (
            author.display_name,
            tuple(sorted(label.value for label in author.labels)),
            author.negative_count,
            author.neutral_count,
            author.positive_count,
            author.first_seen_at,
            author.last_seen_at,
        )

    @staticmethod
    def _values(author: Author) -> dict[str, Any]:
        return {
            "display_name": author.display_name,
            "labels": sorted(label.value for label in author.labels),
            "negative_count": author.negative_count,
            "neutral_count": author.neutral_count,
            "positive_count": author.positive_count,
            "first_seen_at": author.first_seen_at,
            "last_seen_at": author.last_seen_at,
        }

    @staticmethod
    def _identity_row(author_id: int, identity: Identity) -> AuthorIdentityRow:
        return AuthorIdentityRow(
            author_id=author_id,
            channel=identity.channel,
            external_id=identity.external_id,
            display_name=identity.display_name,
            profile_url=identity.profile_url,
        )

    async def _author(self, row: AuthorRow) -> Author:
        identities = await self._s.scalars(
            select(AuthorIdentityRow)
            .where(AuthorIdentityRow.author_id == row.id)
            .order_by(AuthorIdentityRow.id)
        )
        return Author(
            id=row.id,
            display_name=row.display_name,
            identities=tuple(
                Identity(i.channel, i.external_id, i.display_name, i.profile_url)
                for i in identities
            ),
            labels=frozenset(AuthorLabel(label) for label in row.labels or ()),
            negative_count=row.negative_count,
            neutral_count=row.neutral_count,
            positive_count=row.positive_count,
            first_seen_at=row.first_seen_at,
            last_seen_at=row.last_seen_at,
        )


# The columns bulk-inserted authors are told apart by (see SqlAuthorRepository.add_many).
_AUTHOR_KEY = (
    "display_name",
    "labels",
    "negative_count",
    "neutral_count",
    "positive_count",
    "first_seen_at",
    "last_seen_at",
)


def _author_key(values: Sequence[Any]) -> tuple[Any, ...]:
    # JSON comes back as a list; datetimes come back in UTC and compare by instant.
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


_OWNERS = (
    "SELECT external_id, author_id FROM {identities} WHERE channel = ? AND external_id IN ({keys})"
)

# What automatic labels are computed from: the card, and one pass over its mentions
# (author_id leads an index). Grouped by the primary key, the card's columns may be selected.
_STANDING = (
    "SELECT a.id, a.labels, a.negative_count, a.neutral_count, a.positive_count, "
    "sum(CASE WHEN m.sentiment = ? AND m.received_at >= ? THEN 1 ELSE 0 END), max(m.reach) "
    "FROM {authors} a LEFT JOIN {mentions} m ON m.author_id = a.id "
    "WHERE a.id IN ({keys}) GROUP BY a.id"
)


# --- events ----------------------------------------------------------------------------------


_EVENTS = cast(Table, EventRow.__table__)
_EVENT_COLUMNS = ("case_id", "at", "actor", "kind", "from_state", "to_state", "payload")


class SqlEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def append(self, events: Sequence[Event]) -> None:
        if not events:
            return
        # Straight to the driver: the ORM's unit of work costs ~0.5 ms a row, Core's
        # parameter processing a tenth of that, and nobody needs the new rows' ids (the SLA
        # clock appends hundreds per transaction).
        rows = [
            (
                event.case_id,
                event.at,
                event.actor,
                str(event.kind),
                event.from_state.value if event.from_state else None,
                event.to_state.value if event.to_state else None,
                dict(event.payload),
            )
            for event in events
        ]
        await insert_rows(self._s, _EVENTS, _EVENT_COLUMNS, rows)

    async def for_case(self, case_id: int) -> list[Event]:
        rows = await self._s.scalars(
            select(EventRow).where(EventRow.case_id == case_id).order_by(EventRow.id)
        )
        return [
            Event(
                id=row.id,
                case_id=row.case_id,
                at=row.at,
                actor=row.actor,
                kind=row.kind,
                from_state=CaseState(row.from_state) if row.from_state else None,
                to_state=CaseState(row.to_state) if row.to_state else None,
                payload=dict(row.payload or {}),
            )
            for row in rows
        ]


# --- outbox ----------------------------------------------------------------------------------


def _outbox_from_row(row: OutboxRow) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        transport=row.transport,
        chat=row.chat,
        thread=row.thread,
        op=OutboxOp(row.op),
        payload=dict(row.payload or {}),
        idempotency_key=row.idempotency_key,
        ref_key=row.ref_key,
        reply_to_key=row.reply_to_key,
        case_id=row.case_id,
        urgency=row.urgency,
        created_at=row.created_at,
        status=OutboxStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        external_ref=row.external_ref,
    )


_UNDELIVERED = [s.value for s in UNDELIVERED]


class SqlOutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def enqueue_many(self, items: Sequence[OutboxItem]) -> int:
        """enqueue in a few statements for big batches (store/outbox_bulk.py)."""
        return await enqueue_many(self._s, items)

    async def enqueue(self, items: Sequence[OutboxItem]) -> int:
        queued = 0
        for item in items:
            if item.created_at is None:
                raise ValueError("outbox items carry their creation time")
            if item.op is OutboxOp.EDIT and item.ref_key and await self._coalesce(item):
                continue
            statement = (
                _insert(self._s, OutboxRow)
                .values(
                    idempotency_key=item.idempotency_key,
                    transport=item.transport,
                    chat=item.chat,
                    thread=item.thread,
                    op=item.op.value,
                    ref_key=item.ref_key,
                    reply_to_key=item.reply_to_key,
                    payload=item.payload,
                    case_id=item.case_id,
                    urgency=item.urgency,
                    status=OutboxStatus.PENDING.value,
                    attempts=0,
                    created_at=item.created_at,
                    next_attempt_at=item.next_attempt_at or item.created_at,
                )
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(OutboxRow.id)
            )
            if (await self._s.execute(statement)).scalar_one_or_none() is not None:
                queued += 1
        return queued

    async def _coalesce(self, edit: OutboxItem) -> bool:
        """Fold an edit into the waiting post or edit of the same message. True if folded."""
        same_message = (
            OutboxRow.transport == edit.transport,
            OutboxRow.chat == edit.chat,
            OutboxRow.ref_key == edit.ref_key,
            OutboxRow.status == OutboxStatus.PENDING.value,
        )
        # The message is not out yet: send the latest version instead of sending then editing.
        folded = await self._s.execute(
            update(OutboxRow)
            .where(*same_message, OutboxRow.op.in_((OutboxOp.POST.value, OutboxOp.REPLY.value)))
            .values(payload=edit.payload)
        )
        if folded.rowcount:  # type: ignore[attr-defined]
            return True
        # Only the newest edit of a message matters: drop older ones still waiting.
        await self._s.execute(
            update(OutboxRow)
            .where(*same_message, OutboxRow.op == OutboxOp.EDIT.value)
            .values(status=OutboxStatus.SUPERSEDED.value)
        )
        return False

    async def due_heads(self, now: datetime, limit: int) -> list[OutboxItem]:
        # Each chat's head: the most urgent undelivered item, oldest first among equals. A
        # head that is in flight or waiting for its retry time holds its whole chat.
        ranked = (
            select(
                OutboxRow.id,
                func.row_number()
                .over(
                    partition_by=(OutboxRow.transport, OutboxRow.chat),
                    order_by=(OutboxRow.urgency.desc(), OutboxRow.id),
                )
                .label("rank"),
            )
            .where(OutboxRow.status.in_(_UNDELIVERED))
            .subquery()
        )
        rows = await self._s.scalars(
            select(OutboxRow)
            .join(ranked, and_(ranked.c.id == OutboxRow.id, ranked.c.rank == 1))
            .where(
                OutboxRow.status == OutboxStatus.PENDING.value,
                OutboxRow.next_attempt_at <= now,
            )
            .order_by(OutboxRow.urgency.desc(), OutboxRow.id)
            .limit(limit)
        )
        return [_outbox_from_row(row) for row in rows]

    async def waiting_cards(self, transport: str, chat: str, limit: int) -> list[OutboxItem]:
        rows = await self._s.scalars(
            select(OutboxRow)
            .where(
                OutboxRow.transport == transport,
                OutboxRow.chat == chat,
                OutboxRow.status == OutboxStatus.PENDING.value,
                OutboxRow.op == OutboxOp.POST.value,
                OutboxRow.ref_key.startswith("card:"),
            )
            .order_by(OutboxRow.urgency.desc(), OutboxRow.id)
            .limit(limit)
        )
        return [_outbox_from_row(row) for row in rows]

    async def backlog(self, transport: str) -> dict[str, int]:
        """Undelivered items per chat of one transport."""
        rows = await self._s.execute(
            select(OutboxRow.chat, func.count())
            .where(OutboxRow.transport == transport, OutboxRow.status.in_(_UNDELIVERED))
            .group_by(OutboxRow.chat)
        )
        return {chat: int(count) for chat, count in rows.all()}

    async def claim(self, item_id: int, now: datetime) -> bool:
        result = await self._s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == item_id, OutboxRow.status == OutboxStatus.PENDING.value)
            .values(status=OutboxStatus.SENDING.value, attempts=OutboxRow.attempts + 1)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def mark_delivered(self, item_id: int, now: datetime, external_ref: str | None) -> None:
        await self._set(
            item_id,
            status=OutboxStatus.DELIVERED.value,
            delivered_at=now,
            external_ref=external_ref,
            last_error=None,
        )

    async def mark_retry(self, item_id: int, next_attempt_at: datetime, error: str) -> None:
        await self._set(
            item_id,
            status=OutboxStatus.PENDING.value,
            next_attempt_at=next_attempt_at,
            last_error=error,
        )

    async def mark_failed(self, item_id: int, now: datetime, error: str) -> None:
        await self._set(
            item_id, status=OutboxStatus.FAILED.value, delivered_at=now, last_error=error
        )

    async def requeue_in_flight(self) -> int:
        result = await self._s.execute(
            update(OutboxRow)
            .where(OutboxRow.status == OutboxStatus.SENDING.value)
            .values(status=OutboxStatus.PENDING.value)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def get(self, item_id: int) -> OutboxItem | None:
        row = await self._s.get(OutboxRow, item_id, populate_existing=True)
        return _outbox_from_row(row) if row else None

    async def depth(self) -> int:
        count = await self._s.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.status.in_(_UNDELIVERED))
        )
        return int(count or 0)

    async def _set(self, item_id: int, **values: Any) -> None:
        await self._s.execute(update(OutboxRow).where(OutboxRow.id == item_id).values(**values))


# --- message refs and small state ------------------------------------------------------------


class SqlMessageRefRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, transport: str, chat: str, ref_key: str) -> str | None:
        row = await self._s.get(MessageRefRow, (transport, chat, ref_key))
        return row.external_id if row else None

    async def put(self, transport: str, chat: str, ref_key: str, external_id: str) -> None:
        await self._s.merge(
            MessageRefRow(transport=transport, chat=chat, ref_key=ref_key, external_id=external_id)
        )
        await self._s.flush()

    async def find(self, transport: str, chat: str, external_id: str) -> str | None:
        return await self._s.scalar(
            select(MessageRefRow.ref_key).where(
                MessageRefRow.transport == transport,
                MessageRefRow.chat == chat,
                MessageRefRow.external_id == external_id,
            )
        )


class SqlKeyValueRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, key: str) -> str | None:
        row = await self._s.get(KeyValueRow, key, populate_existing=True)
        return row.value if row else None

    async def set(self, key: str, value: str) -> None:
        await self._s.merge(KeyValueRow(key=key, value=value))
        await self._s.flush()
