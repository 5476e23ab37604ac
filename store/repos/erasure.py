"""Erasure: one author's personal data (`otklik authors forget`, /forget), or what the retention
policy says is kept too long, removed from every table that holds it.

In steps, so the audit stub can come between them: `plan_*` reads and decides every change
(nothing written, so the stub can say how many rows of each kind go), `apply` writes them,
the service records the stub event, and `redact_events` rewrites earlier events on the
stub's order (the only UPDATE of `events` the triggers allow, store/audit.py). Recording the
stub locks the audit chain until the commit, so it comes last. Erasure removes the data
itself; it never relies on encryption at rest.

Where personal data lives and what erasure leaves there:
- authors.display_name, and the author's identities (rows deleted);
- mentions: text, url and reply_to_url (re-sealed in the row's encrypted record), the keyed
  hashes of the identity and links, attachments (file names, captions, references: the files
  themselves are never kept) (the row stays, so counts and the dedup key (source,
  external_id) still work);
- cases.published_url when it names them; drafts that quote them (every draft of a case only
  they wrote); outbox payloads (sent or not) and errors that hold any of their values;
- blobs referenced only by outbox items that held their data;
- events: the personal part (actor, payload) of events that hold any of their values.
There is no separate search index: the look-up indexes on mentions live in the same rows.
Columns are listed once in PERSONAL_COLUMNS and written through their SQLAlchemy types, so
a column type that encrypts gets the erased value encrypted like any other.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Table, bindparam, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.model import TERMINAL_STATES
from bot.ports import ErasureCounts, ErasurePlan
from store.audit import REDACTED
from store.driver import chunks
from store.models import (
    MENTION_PERSONAL,
    AuthorIdentityRow,
    AuthorRow,
    BlobRow,
    CaseRow,
    DraftRow,
    EventRow,
    KeyValueRow,
    MentionBandRow,
    MentionRow,
    OutboxRow,
)
from store.repos.events import SqlEventRepository

# Every column that holds a citizen's personal data, and what erasure leaves in it.
PERSONAL_COLUMNS: dict[str, dict[str, Any]] = {
    "authors": {"display_name": REDACTED, "labels": []},
    "mentions": {
        # The keyed hash of the identity it came through (the identity itself lives in
        # author_identities, erased with the author).
        "identity_hash": None,
        # The links' keyed hashes too (store/crypto.py): a hash of a link is still personal.
        "url_hash": None,
        "reply_to_url_hash": None,
        # File names, captions and the references that fetch the files.
        "attachments": None,
    },
    "drafts": {"text": REDACTED, "note": None},
}
# And inside a mention's sealed record (MentionRow.personal, re-sealed without them); the
# external and story ids stay, so dedup and counts still work.
PERSONAL_IN_MENTIONS: dict[str, Any] = {"text": REDACTED, "url": None, "reply_to_url": None}
_TEXT = MENTION_PERSONAL.index("text")
_ERASED_AT = {MENTION_PERSONAL.index(name): value for name, value in PERSONAL_IN_MENTIONS.items()}
MIN_NEEDLE = 3  # shorter values (initials) identify nobody and would match everywhere
MIN_TEXT_NEEDLE = 12  # a whole text shorter than this is matched only as a whole value
QUOTE_WORDS = 6  # this many words in a row from their text make a quote
SCAN_PAGE = 2_000
_Scanned = TypeVar("_Scanned", OutboxRow, EventRow)
_WORDS = re.compile(r"\w+")
_KV_CASES = "retention:cases"  # "closed_at iso|id" of the last case retention erased
_KV_MENTIONS = "retention:mentions"  # "received_at iso|id" of the last caseless mention

_AUTHORS = cast(Table, AuthorRow.__table__)
_MENTIONS = cast(Table, MentionRow.__table__)
_DRAFTS = cast(Table, DraftRow.__table__)
_OUTBOX = cast(Table, OutboxRow.__table__)


class PersonalValues:
    """Recognises someone's values inside other text: their names, identities and URLs
    anywhere (case-insensitive), their texts whole or quoted (QUOTE_WORDS words in a row)."""

    def __init__(self, values: Iterable[str | None], texts: Iterable[str | None]) -> None:
        needles = {v.strip().casefold() for v in values if v and v != REDACTED}
        self._shingles: set[tuple[str, ...]] = set()
        self._whole: set[str] = set()
        for text in texts:
            if not text or text == REDACTED:
                continue
            folded = text.strip().casefold()
            words = _WORDS.findall(folded)
            self._shingles |= {
                tuple(words[i : i + QUOTE_WORDS]) for i in range(len(words) - QUOTE_WORDS + 1)
            }
            if len(folded) >= MIN_TEXT_NEEDLE:
                needles.add(folded)
            else:
                self._whole.add(folded)
        self._needles = sorted((n for n in needles if len(n) >= MIN_NEEDLE), key=len)

    def __bool__(self) -> bool:
        return bool(self._needles or self._shingles or self._whole)

    def found_in(self, text: str) -> bool:
        if text == REDACTED:
            return False
        folded = text.casefold()
        if folded.strip() in self._whole or any(n in folded for n in self._needles):
            return True
        if self._shingles:
            words = _WORDS.findall(folded)
            for i in range(len(words) - QUOTE_WORDS + 1):
                if tuple(words[i : i + QUOTE_WORDS]) in self._shingles:
                    return True
        return False

    def scrub(self, value: Any) -> tuple[Any, bool]:
        """`value` (JSON) with every string that holds their data replaced; changed?"""
        if isinstance(value, str):
            return (REDACTED, True) if self.found_in(value) else (value, False)
        if isinstance(value, dict):
            changed = False
            result: dict[Any, Any] = {}
            for key, item in value.items():
                result[key], hit = self.scrub(item)
                changed |= hit
            return result, changed
        if isinstance(value, list):
            pairs = [self.scrub(item) for item in value]
            return [v for v, _ in pairs], any(hit for _, hit in pairs)
        return value, False


@dataclass
class SqlErasurePlan:
    counts: ErasureCounts = field(default_factory=ErasureCounts)
    case_ids: list[int] = field(default_factory=list)
    author_ids: list[int] = field(default_factory=list)  # cards to empty
    identity_ids: list[int] = field(default_factory=list)
    mention_ids: list[int] = field(default_factory=list)
    mention_records: list[list[Any]] = field(default_factory=list)  # erased, by mention_ids
    published_urls: list[int] = field(default_factory=list)  # cases whose URL goes
    draft_ids: list[int] = field(default_factory=list)
    outbox: dict[int, tuple[dict[str, Any], str | None]] = field(default_factory=dict)
    blob_ids: list[int] = field(default_factory=list)
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    watermarks: dict[str, str] = field(default_factory=dict)  # kv after a retention batch

    @property
    def empty(self) -> bool:
        return self.counts == ErasureCounts() and not self.watermarks


class SqlErasureRepository:
    def __init__(self, session: AsyncSession, events: SqlEventRepository) -> None:
        self._s = session
        self._events = events  # the unit of work's: its pending events join the chain first

    # --- planning ----------------------------------------------------------------------------

    async def plan_author(self, author_id: int) -> SqlErasurePlan:
        author = await self._s.get(AuthorRow, author_id, populate_existing=True)
        if author is None:
            return SqlErasurePlan()
        identities = list(
            await self._s.scalars(
                select(AuthorIdentityRow).where(AuthorIdentityRow.author_id == author_id)
            )
        )
        mentions = list(
            await self._s.scalars(
                select(MentionRow)
                .where(MentionRow.author_id == author_id)
                .execution_options(populate_existing=True)
            )
        )
        values: list[str | None] = [author.display_name]
        for identity in identities:
            values += [identity.external_id, identity.display_name, identity.profile_url]
        plan = SqlErasurePlan()
        if author.display_name != REDACTED or author.labels:
            plan.author_ids.append(author_id)
        plan.identity_ids = [i.id for i in identities]
        await self._plan_mentions(plan, mentions, values)
        return plan

    async def plan_retention(self, cutoff: datetime, limit: int) -> SqlErasurePlan:
        plan = SqlErasurePlan()
        after = await self._watermark(_KV_CASES)
        closed = select(CaseRow.id, CaseRow.closed_at).where(
            CaseRow.state.in_([s.value for s in TERMINAL_STATES]),
            CaseRow.closed_at.is_not(None),
            CaseRow.closed_at < cutoff,
        )
        if after is not None:
            moment, last_id = after
            closed = closed.where(
                or_(
                    CaseRow.closed_at > moment,
                    (CaseRow.closed_at == moment) & (CaseRow.id > last_id),
                )
            )
        cases = (
            await self._s.execute(closed.order_by(CaseRow.closed_at, CaseRow.id).limit(limit))
        ).all()
        if cases:
            plan.watermarks[_KV_CASES] = _mark(cases[-1].closed_at, cases[-1].id)
        case_ids = [int(c.id) for c in cases]
        mentions = await self._mentions_of_cases(case_ids)

        after = await self._watermark(_KV_MENTIONS)
        caseless = select(MentionRow).where(
            MentionRow.case_id.is_(None), MentionRow.received_at < cutoff
        )
        if after is not None:
            moment, last_id = after
            caseless = caseless.where(
                or_(
                    MentionRow.received_at > moment,
                    (MentionRow.received_at == moment) & (MentionRow.id > last_id),
                )
            )
        loose = list(
            await self._s.scalars(
                caseless.order_by(MentionRow.received_at, MentionRow.id)
                .limit(limit)
                .execution_options(populate_existing=True)
            )
        )
        if loose:
            plan.watermarks[_KV_MENTIONS] = _mark(loose[-1].received_at, loose[-1].id)
        mentions += loose

        # An author whose every mention is now erased is forgotten with them.
        erased_now = {m.id for m in mentions}
        values: list[str | None] = []
        for author_id in sorted({m.author_id for m in mentions}):
            others = await self._s.scalars(
                select(MentionRow.personal).where(
                    MentionRow.author_id == author_id, MentionRow.id.not_in(erased_now)
                )
            )
            if any(record[_TEXT] != REDACTED for record in others):
                continue
            author = await self._s.get(AuthorRow, author_id, populate_existing=True)
            if author is None or author.display_name == REDACTED:
                continue
            plan.author_ids.append(author_id)
            values.append(author.display_name)
            for identity in await self._s.scalars(
                select(AuthorIdentityRow).where(AuthorIdentityRow.author_id == author_id)
            ):
                plan.identity_ids.append(identity.id)
                values += [identity.external_id, identity.display_name, identity.profile_url]
        await self._plan_mentions(
            plan, mentions, values, every_draft_of=set(case_ids), before=cutoff
        )
        plan.case_ids = sorted(set(plan.case_ids) | set(case_ids))
        return plan

    async def _plan_mentions(
        self,
        plan: SqlErasurePlan,
        mentions: Sequence[MentionRow],
        values: list[str | None],
        every_draft_of: set[int] | None = None,
        before: datetime | None = None,
    ) -> None:
        """Everything that holds the values of these mentions (and `values`) besides them.
        `every_draft_of`: cases whose drafts all go; otherwise the drafts of a case only
        these authors wrote, and drafts that quote them. `before` (retention): items and
        events without a case are looked at from the first of these mentions to then only."""
        texts: list[str | None] = []
        for mention in mentions:
            # Not reply_to_url: the post replied to is usually the organisation's own, and
            # would match every message about it.
            values.append(mention.url)
            # A card lists file names and posts photos by reference: both are looked for.
            # Names as texts: a short one ("1.jpg") is matched only as a whole value.
            for attachment in mention.attachments or ():
                values.append(attachment.get("ref"))
                texts += [attachment.get("name"), attachment.get("caption")]
            if mention.identity is not None:
                values += [mention.identity.external_id, mention.identity.display_name]
            texts.append(mention.text)
            if _holds_data(mention):
                plan.mention_ids.append(mention.id)
                plan.mention_records.append(_erased_record(mention.personal))
        match = PersonalValues(values, texts)
        case_ids = sorted({m.case_id for m in mentions if m.case_id is not None})
        plan.case_ids = case_ids
        authors = {m.author_id for m in mentions}
        sole = every_draft_of or set()
        if every_draft_of is None:
            writers: dict[int, set[int]] = defaultdict(set)
            for chunk in chunks(case_ids):
                for case_id, author_id in await self._s.execute(
                    select(MentionRow.case_id, MentionRow.author_id).where(
                        MentionRow.case_id.in_(chunk)
                    )
                ):
                    writers[int(case_id)].add(int(author_id))
            sole = {c for c, who in writers.items() if who <= authors}
        for chunk in chunks(case_ids):
            for case in await self._s.scalars(
                select(CaseRow)
                .where(CaseRow.id.in_(chunk))
                .execution_options(populate_existing=True)
            ):
                if case.published_url and match.found_in(case.published_url):
                    plan.published_urls.append(case.id)
            for draft in await self._s.scalars(
                select(DraftRow)
                .where(DraftRow.case_id.in_(chunk))
                .execution_options(populate_existing=True)
            ):
                if draft.text == REDACTED and draft.note is None:
                    continue
                quoted = match.found_in(draft.text) or bool(
                    draft.note and match.found_in(draft.note)
                )
                if draft.case_id in sole or quoted:
                    plan.draft_ids.append(draft.id)
        # Retention: what has no case and was made while these mentions were about.
        window = None
        if before is not None and mentions:
            window = (min(m.received_at for m in mentions), before)
        if match:
            await self._plan_outbox(plan, match, case_ids, window)
            await self._plan_events(plan, match, case_ids, window)
        plan.counts = ErasureCounts(
            authors=len(plan.author_ids),
            identities=len(plan.identity_ids),
            mentions=len(plan.mention_ids),
            cases=len(plan.published_urls),
            drafts=len(plan.draft_ids),
            outbox=len(plan.outbox),
            blobs=len(plan.blob_ids),
            events=len(plan.events),
        )

    async def _plan_outbox(
        self,
        plan: SqlErasurePlan,
        match: PersonalValues,
        case_ids: list[int],
        window: tuple[datetime, datetime] | None,
    ) -> None:
        scope = _of_cases(OutboxRow.case_id, OutboxRow.created_at, case_ids, window)
        blobs: set[str] = set()
        async for rows in self._pages(OutboxRow, scope):
            for row in rows:
                payload, changed = match.scrub(row.payload or {})
                error = row.last_error
                if error and match.found_in(error):
                    error, changed = REDACTED, True
                if changed:
                    plan.outbox[row.id] = (payload, error)
                    blob = (row.payload or {}).get("blob")
                    if isinstance(blob, str):
                        blobs.add(blob)
        if blobs:
            still_needed = {
                payload.get("blob")
                for item_id, payload in (
                    await self._s.execute(
                        select(OutboxRow.id, OutboxRow.payload).where(OutboxRow.op == "photo")
                    )
                ).all()
                if item_id not in plan.outbox and isinstance(payload, dict)
            }
            plan.blob_ids = [
                int(blob_id)
                for blob_id in await self._s.scalars(
                    select(BlobRow.id).where(BlobRow.sha256.in_(blobs - still_needed))
                )
            ]

    async def _plan_events(
        self,
        plan: SqlErasurePlan,
        match: PersonalValues,
        case_ids: list[int],
        window: tuple[datetime, datetime] | None,
    ) -> None:
        # Events of their cases, and those about no case (a stranger's refused press, merges).
        scope = _of_cases(EventRow.case_id, EventRow.at, case_ids, window)
        await self._events.flush()
        async for rows in self._pages(EventRow, scope):
            for row in rows:
                actor, actor_hit = match.scrub(row.actor)
                payload, payload_hit = match.scrub(row.payload or {})
                if actor_hit or payload_hit:
                    plan.events.append((row.id, actor, payload))

    # --- applying ----------------------------------------------------------------------------

    async def apply(self, plan: ErasurePlan) -> None:
        assert isinstance(plan, SqlErasurePlan)
        connection = await self._s.connection()
        if connection.dialect.name == "sqlite":
            # Freed space is zeroed, so the old values do not linger in the file's free pages.
            await connection.exec_driver_sql("PRAGMA secure_delete = ON")
        for chunk in chunks(plan.mention_ids):
            await self._s.execute(
                update(_MENTIONS)
                .where(_MENTIONS.c.id.in_(chunk))
                .values(**PERSONAL_COLUMNS["mentions"])
            )
            # Bands are hashes of the text: they go with it.
            await self._s.execute(
                delete(MentionBandRow).where(MentionBandRow.mention_id.in_(chunk))
            )
        if plan.mention_ids:
            await self._s.execute(
                update(_MENTIONS)
                .where(_MENTIONS.c.id == bindparam("b_id"))
                .values(personal=bindparam("b_personal", type_=_MENTIONS.c.personal.type)),
                [
                    {"b_id": mention_id, "b_personal": record}
                    for mention_id, record in zip(
                        plan.mention_ids, plan.mention_records, strict=True
                    )
                ],
            )
        for chunk in chunks(plan.author_ids):
            await self._s.execute(
                update(_AUTHORS)
                .where(_AUTHORS.c.id.in_(chunk))
                .values(**PERSONAL_COLUMNS["authors"])
            )
        for chunk in chunks(plan.identity_ids):
            await self._s.execute(delete(AuthorIdentityRow).where(AuthorIdentityRow.id.in_(chunk)))
        for chunk in chunks(plan.published_urls):
            await self._s.execute(
                update(CaseRow).where(CaseRow.id.in_(chunk)).values(published_url=None)
            )
        for chunk in chunks(plan.draft_ids):
            await self._s.execute(
                update(_DRAFTS).where(_DRAFTS.c.id.in_(chunk)).values(**PERSONAL_COLUMNS["drafts"])
            )
        if plan.outbox:
            await self._s.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id == bindparam("b_id"))
                .values(
                    payload=bindparam("b_payload", type_=_OUTBOX.c.payload.type),
                    last_error=bindparam("b_error"),
                ),
                [
                    {"b_id": item_id, "b_payload": payload, "b_error": error}
                    for item_id, (payload, error) in plan.outbox.items()
                ],
            )
        for chunk in chunks(plan.blob_ids):
            await self._s.execute(delete(BlobRow).where(BlobRow.id.in_(chunk)))
        for key, value in plan.watermarks.items():
            await self._s.merge(KeyValueRow(key=key, value=value))
        await self._s.flush()

    async def redact_events(self, plan: ErasurePlan, by_event: int) -> None:
        assert isinstance(plan, SqlErasurePlan)
        await self._events.redact(plan.events, by_event)

    async def reclaim(self) -> None:
        engine = cast(Any, self._s.bind)
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            if connection.dialect.name == "sqlite":
                await autocommit.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                return
            for table in (
                "mentions",
                "authors",
                "author_identities",
                "drafts",
                "outbox",
                "events",
                "blobs",
                "cases",
            ):
                await autocommit.exec_driver_sql(f"VACUUM {table}")

    # --- helpers -----------------------------------------------------------------------------

    async def _pages(
        self, model: type[_Scanned], scope: ColumnElement[bool]
    ) -> AsyncIterator[list[_Scanned]]:
        """The rows in `scope` in id order, SCAN_PAGE at a time, fresh from the database."""
        after = 0
        while True:
            rows = list(
                await self._s.scalars(
                    select(model)
                    .where(scope, model.id > after)
                    .order_by(model.id)
                    .limit(SCAN_PAGE)
                    .execution_options(populate_existing=True)
                )
            )
            if not rows:
                return
            after = rows[-1].id
            yield rows

    async def _mentions_of_cases(self, case_ids: Sequence[int]) -> list[MentionRow]:
        found: list[MentionRow] = []
        for chunk in chunks(case_ids):
            found += await self._s.scalars(
                select(MentionRow)
                .where(MentionRow.case_id.in_(chunk))
                .execution_options(populate_existing=True)
            )
        return found

    async def _watermark(self, key: str) -> tuple[datetime, int] | None:
        row = await self._s.get(KeyValueRow, key, populate_existing=True)
        if row is None:
            return None
        moment, _, last_id = row.value.partition("|")
        return datetime.fromisoformat(moment), int(last_id)


def _of_cases(
    case_id: Any, moment: Any, case_ids: list[int], window: tuple[datetime, datetime] | None
) -> ColumnElement[bool]:
    """Rows of these cases, and rows of no case (within `window` when given)."""
    caseless: ColumnElement[bool] = case_id.is_(None)
    if window is not None:
        caseless = caseless & moment.between(*window)
    return or_(case_id.in_(case_ids), caseless) if case_ids else caseless


def _mark(moment: datetime, row_id: int) -> str:
    return f"{moment.astimezone(UTC).isoformat()}|{row_id}"


def _holds_data(mention: MentionRow) -> bool:
    blank = PERSONAL_COLUMNS["mentions"]
    if any(getattr(mention, column) != value for column, value in blank.items()):
        return True
    return _erased_record(mention.personal) != list(mention.personal)


def _erased_record(record: Sequence[Any]) -> list[Any]:
    """A mention's sealed record with PERSONAL_IN_MENTIONS' values in place of theirs."""
    return [_ERASED_AT.get(at, value) for at, value in enumerate(record)]
