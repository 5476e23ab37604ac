"""SQLAlchemy tables. The only module (with its migrations) that defines the schema."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql import ClauseElement, operators
from sqlalchemy.sql.operators import OperatorType

from store import crypto
from store.audit import trigger_statements


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use the injected clock")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- personal data: encrypted values and the keyed hashes they are looked up by (store/crypto.py)

# An encrypted value never equals another encryption of the same text: comparing one in SQL
# is a mistake that would find nothing, so it fails loudly. Compare the column's blind index.
_COMPARISONS = frozenset(
    {
        operators.eq,
        operators.ne,
        operators.lt,
        operators.le,
        operators.gt,
        operators.ge,
        operators.in_op,
        operators.not_in_op,
        operators.like_op,
        operators.ilike_op,
        operators.startswith_op,
        operators.endswith_op,
        operators.contains_op,
    }
)


ColumnProcessor = Callable[[Sequence[Any]], list[Any]]


class BulkBound:
    """A type whose values store.driver's bulk writes convert a whole column at a time."""

    def bind_column(self) -> ColumnProcessor:
        raise NotImplementedError


def _present_only(convert: ColumnProcessor, absent: Callable[[Any], bool]) -> ColumnProcessor:
    """`convert` of a column's present values, the absent ones (None, "") kept as they are."""

    def column(values: Sequence[Any]) -> list[Any]:
        present = [value for value in values if not absent(value)]
        if len(present) == len(values):
            return convert(present)
        converted = iter(convert(present))
        return [value if absent(value) else next(converted) for value in values]

    return column


def _is_none(value: Any) -> bool:
    return value is None


def _is_empty(value: Any) -> bool:
    return not value


class EncryptedText(BulkBound, TypeDecorator[str]):
    """Text encrypted with the process's current data key; read with whichever key it names."""

    impl = Text
    cache_ok = True

    class comparator_factory(Text.Comparator[str]):
        def operate(self, op: OperatorType, *other: Any, **kwargs: Any) -> Any:
            # SQLAlchemy compares columns with columns internally; a value is the mistake.
            if op in _COMPARISONS and not all(isinstance(o, ClauseElement) for o in other):
                raise TypeError("an encrypted column cannot be compared: use its blind index")
            return super().operate(op, *other, **kwargs)

    def bind_processor(self, dialect: Dialect) -> Any:
        def seal(value: str | None) -> str | None:
            # "" stays "": emptiness is no secret, and default values cost nothing.
            return crypto.keyring().encrypt(value) if value else value

        return seal

    def bind_column(self) -> ColumnProcessor:
        # Each value under a nonce of its own, however often it repeats in the column.
        return _present_only(lambda values: crypto.keyring().encrypt_many(values), _is_empty)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        def unseal(value: str | None) -> str | None:
            return crypto.keyring().decrypt(value) if value else value

        return unseal


class EncryptedJSON(BulkBound, TypeDecorator[Any]):
    """A JSON document (outbox payloads, a mention's personal values) encrypted as one text."""

    impl = Text
    cache_ok = True
    comparator_factory = EncryptedText.comparator_factory

    def bind_processor(self, dialect: Dialect) -> Any:
        def seal(value: Any) -> str | None:
            if value is None:
                return None
            text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
            return crypto.keyring().encrypt(text)

        return seal

    def bind_column(self) -> ColumnProcessor:
        def seal(values: Sequence[Any]) -> list[str]:
            dump, option = orjson.dumps, orjson.OPT_NON_STR_KEYS
            return crypto.keyring().encrypt_many([dump(v, option=option).decode() for v in values])

        return _present_only(seal, _is_none)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        def unseal(value: str | None) -> Any:
            return None if value is None else orjson.loads(crypto.keyring().decrypt(value))

        return unseal


class EncryptedBytes(TypeDecorator[bytes]):
    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        return None if value is None else crypto.keyring().encrypt_bytes(bytes(value))

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> bytes | None:
        return None if value is None else crypto.keyring().decrypt_bytes(bytes(value))


class BlindIndex(BulkBound, TypeDecorator[str]):
    """The keyed hash of a personal value, for equality look-ups and unique constraints. Bound
    values are the plain values: `column == value` and `column.in_(values)` hash them."""

    impl = String(64)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        def blind(value: str | None) -> str | None:
            return None if value is None else crypto.keyring().blind(value)

        return blind

    def bind_column(self) -> ColumnProcessor:
        return _present_only(lambda values: crypto.keyring().blind_many(values), _is_none)


def hash_of(column: str) -> Any:
    """A blind index column's default: its plain column's value, which its type hashes. An
    insert that names only the plain value (the ORM, a test) gets the hash with it."""

    def plain(context: Any) -> Any:
        return context.get_current_parameters().get(column)

    return plain


def hash_of_personal(field: str) -> Any:
    """hash_of for a value inside a mention's sealed record (MENTION_PERSONAL)."""
    at = MENTION_PERSONAL.index(field)

    def plain(context: Any) -> Any:
        record = context.get_current_parameters().get("personal")
        return None if record is None else record[at]

    return plain


# A mention's personal values, in the order of its sealed record (mentions.personal): one
# encryption a mention instead of one a value (migration 0020). Their keyed hashes stay
# columns of their own, for look-ups.
MENTION_PERSONAL = ("external_id", "url", "text", "story_id", "reply_to_url")


# Stable constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite autoincrements only INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(AsyncAttrs, DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class AuthorRow(Base):
    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    display_name: Mapped[str] = mapped_column(EncryptedText)
    labels: Mapped[list[Any]] = mapped_column(default=list)
    negative_count: Mapped[int] = mapped_column(default=0)
    neutral_count: Mapped[int] = mapped_column(default=0)
    positive_count: Mapped[int] = mapped_column(default=0)
    first_seen_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]


class AuthorIdentityRow(Base):
    __tablename__ = "author_identities"
    # An identity is found by its keyed hash; the value itself is encrypted.
    __table_args__ = (
        UniqueConstraint("channel", "external_id_hash", name="uq_identity_channel_hash"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(EncryptedText)
    external_id_hash: Mapped[str] = mapped_column(BlindIndex, default=hash_of("external_id"))
    display_name: Mapped[str] = mapped_column(EncryptedText, default="")
    profile_url: Mapped[str | None] = mapped_column(EncryptedText)


class CaseRow(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_department_state", "department", "state"),
        Index("ix_cases_state_created", "state", "created_at"),
        # Digests read one period of one of these moments (store/queries/reports.py).
        Index("ix_cases_created", "created_at"),
        Index("ix_cases_first_touch_due", "first_touch_due_at"),
        Index("ix_cases_answer_due", "answer_due_at"),
        Index("ix_cases_first_touched", "first_touched_at"),
        Index("ix_cases_approved", "approved_at"),
        Index("ix_cases_published", "published_at"),
        Index("ix_cases_closed", "closed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    department: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32))
    priority: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(64))
    drill: Mapped[bool] = mapped_column(Boolean, default=False)
    drill_run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("drill_runs.id"), index=True)
    assignee: Mapped[str | None] = mapped_column(String(128))
    escalation_level: Mapped[int] = mapped_column(default=0)
    sla_policy: Mapped[str | None] = mapped_column(String(64))
    reaction_due_at: Mapped[datetime | None]  # optional, internal (sla.yaml `reaction`)
    first_touch_due_at: Mapped[datetime | None]
    answer_due_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]
    reacted_at: Mapped[datetime | None]  # the first press by staff
    first_touched_at: Mapped[datetime | None]  # the first reply the author saw (0014)
    approved_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    # Our answer's address, under the citizen's own post on some networks.
    published_url: Mapped[str | None] = mapped_column(EncryptedText)
    closed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(32))
    ignore_reason: Mapped[str | None] = mapped_column(String(32))
    follow_up_due_at: Mapped[datetime | None]
    waiting_since: Mapped[datetime | None]
    codes: Mapped[list[Any]] = mapped_column(default=list)
    mention_count: Mapped[int] = mapped_column(default=1)
    similar_count: Mapped[int] = mapped_column(default=0)
    people_count: Mapped[int] = mapped_column(default=1)
    last_mention_at: Mapped[datetime | None]
    sources: Mapped[list[Any]] = mapped_column(default=list)
    # A cluster's answer as it goes out (0022, bot/cases/publication.py).
    answer_targets: Mapped[int] = mapped_column(default=0)
    answers_delivered: Mapped[int] = mapped_column(default=0)
    hand_due: Mapped[int] = mapped_column(default=0)
    hand_published: Mapped[int] = mapped_column(default=0)
    hand_marked_upto: Mapped[int] = mapped_column(BigInteger, default=0)
    route_confidence: Mapped[float | None] = mapped_column(Float)
    version: Mapped[int] = mapped_column(default=0)


class TimerRow(Base):
    """One SLA moment of one case: a reminder, a breach, an escalation step or a follow-up.
    Pending while fired_at is null; `key` makes re-planning insert nothing twice."""

    __tablename__ = "timers"
    __table_args__ = (
        Index("ix_timers_pending", "fired_at", "due_at"),
        Index("ix_timers_case", "case_id", "fired_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]
    key: Mapped[str] = mapped_column(String(255), unique=True)
    fired_at: Mapped[datetime | None]


class MentionRow(Base):
    __tablename__ = "mentions"
    __table_args__ = (
        # External ids, addresses and story ids can name a person (VK's wall<user>_<post>):
        # they are encrypted, and deduplicated and grouped by their keyed hashes.
        UniqueConstraint("source", "external_id_hash", name="uq_mention_source_hash"),
        # Author standing (labels) reads only this index: store/repos/authors.py, _STANDING.
        Index("ix_mentions_author_received", "author_id", "received_at", "sentiment", "reach"),
        # Grouping looks related mentions up by these on every intake.
        Index("ix_mentions_story", "story_hash"),
        Index("ix_mentions_reply_to_url", "reply_to_url_hash"),
        Index("ix_mentions_url", "url_hash"),
        # Crisis mode counts negative mentions per sliding window (store/repos/crises.py).
        Index("ix_mentions_negative_window", "sentiment", "received_at", "case_id"),
        # Staff corrections since a moment: the examples a retraining learns from.
        Index("ix_mentions_sentiment_at", "sentiment_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    # [external_id, url, text, story_id, reply_to_url] (MENTION_PERSONAL), encrypted as one
    # record; read through the properties below.
    personal: Mapped[list[Any]] = mapped_column(EncryptedJSON)
    external_id_hash: Mapped[str] = mapped_column(
        BlindIndex, default=hash_of_personal("external_id")
    )
    url_hash: Mapped[str | None] = mapped_column(BlindIndex, default=hash_of_personal("url"))
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    # The identity it came through, by its keyed hash: the identity's id and name are kept
    # once, in author_identities, not again in every mention (None once erased).
    identity_channel: Mapped[str] = mapped_column(String(64))
    identity_hash: Mapped[str | None] = mapped_column(BlindIndex)
    identity: Mapped[AuthorIdentityRow | None] = relationship(
        primaryjoin="and_(foreign(MentionRow.identity_channel) == AuthorIdentityRow.channel, "
        "foreign(MentionRow.identity_hash) == AuthorIdentityRow.external_id_hash)",
        viewonly=True,
        lazy="joined",
        uselist=False,
    )
    language: Mapped[str | None] = mapped_column(String(8))
    published_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(index=True)
    sentiment: Mapped[str] = mapped_column(String(16))
    sentiment_source: Mapped[str] = mapped_column(String(16))
    sentiment_score: Mapped[float | None] = mapped_column(Float)
    # Who corrected the sentiment, and when: set only by staff ("Не негатив", /negative).
    sentiment_by: Mapped[str | None] = mapped_column(String(128))
    sentiment_at: Mapped[datetime | None]
    reach: Mapped[int] = mapped_column(BigInteger, default=0)
    codes: Mapped[list[Any]] = mapped_column(default=list)
    story_hash: Mapped[str | None] = mapped_column(BlindIndex, default=hash_of_personal("story_id"))
    reply_to_url_hash: Mapped[str | None] = mapped_column(
        BlindIndex, default=hash_of_personal("reply_to_url")
    )
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    # Photos and files that came with it (store/mappers.py attachment_dicts); None: none.
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(EncryptedJSON)

    def __init__(self, **values: Any) -> None:
        # The personal values may be given one by one, as columns are: sealed as the record.
        if "personal" not in values:
            values["personal"] = [values.pop(name, None) for name in MENTION_PERSONAL]
        super().__init__(**values)

    @property
    def external_id(self) -> str:
        return cast(str, self.personal[0])

    @property
    def url(self) -> str | None:
        return cast(str | None, self.personal[1])

    @property
    def text(self) -> str:
        return cast(str, self.personal[2])

    @property
    def story_id(self) -> str | None:
        return cast(str | None, self.personal[3])

    @property
    def reply_to_url(self) -> str | None:
        return cast(str | None, self.personal[4])


class DraftRow(Base):
    __tablename__ = "drafts"
    __table_args__ = (UniqueConstraint("case_id", "version", name="uq_draft_case_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    version: Mapped[int]
    text: Mapped[str] = mapped_column(EncryptedText)
    author: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(32))
    template_id: Mapped[str | None] = mapped_column(String(64))
    pre_approved: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewer: Mapped[str | None] = mapped_column(String(128))
    reviewed_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(EncryptedText)
    # DraftKind value (migration 0018): an answer, a follow-up or a correction.
    kind: Mapped[str] = mapped_column(String(16), default="answer")
    published_at: Mapped[datetime | None]
    published_by_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    # The approval chain fixed at submission (ApproverRole values) and its approvals so far,
    # [{"tier": 0, "reviewer": "appr", "at": "<ISO time>"}]: staff ids, no personal data.
    tiers: Mapped[list[Any]] = mapped_column(default=lambda: ["department"])
    approvals: Mapped[list[Any]] = mapped_column(default=list)


class EventRow(Base):
    """Append-only, hash-chained (store/audit.py): the database refuses UPDATE and DELETE
    (triggers, migration 0010) except erasure's redaction of the personal part of a row."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_case", "case_id", "id"),
        # One successor per event: two writers can never both extend the same head.
        UniqueConstraint("prev_hash", name="uq_events_prev_hash"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Nullable: a refused press on an unknown case is audited too.
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    seal: Mapped[str] = mapped_column(String(64))  # sha256(nonce, actor and payload)
    nonce: Mapped[str | None] = mapped_column(String(32))  # None once redacted
    redacted_by: Mapped[int | None] = mapped_column(BigInteger)  # the erasure event's id


@event.listens_for(EventRow.__table__, "after_create")
def _append_only(table: Table, connection: Connection, **_: Any) -> None:
    # Migrations create the triggers (0010); this gives them to Base.metadata.create_all too.
    for statement in trigger_statements(connection.dialect.name):
        connection.exec_driver_sql(statement)


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_queue", "status", "transport", "chat", "urgency", "id"),
        Index("ix_outbox_target", "transport", "chat", "ref_key", "status"),
        # Erasure finds the messages about a person's cases (store/repos/erasure.py).
        Index("ix_outbox_case", "case_id"),
        # Claims by lease: recovery's expired ones, the claim's live ones (repos/outbox.py).
        Index("ix_outbox_lease", "status", "lease_until"),
        # Each chat's head, a probe a chat on PostgreSQL (repos/outbox.py due_heads): only
        # undelivered rows, in the order a chat's queue goes. SQLite ranks in process.
        Index(
            "ix_outbox_heads",
            "transport",
            "chat",
            text("urgency DESC"),
            "id",
            postgresql_where=text("status IN ('pending', 'sending')"),
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    transport: Mapped[str] = mapped_column(String(16))
    chat: Mapped[str] = mapped_column(String(255))
    thread: Mapped[str | None] = mapped_column(String(255))
    op: Mapped[str] = mapped_column(String(16))
    ref_key: Mapped[str | None] = mapped_column(String(255))
    reply_to_key: Mapped[str | None] = mapped_column(String(255))
    # Cards and replies quote citizens' names and texts.
    payload: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    urgency: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    external_ref: Mapped[str | None] = mapped_column(String(255))
    # The instance sending the item (config instance.name) and until when its claim holds;
    # both NULL unless `sending`.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]


class MessageRefRow(Base):
    __tablename__ = "message_refs"
    __table_args__ = (Index("ix_message_refs_external", "transport", "chat", "external_id"),)

    transport: Mapped[str] = mapped_column(String(16), primary_key=True)
    chat: Mapped[str] = mapped_column(String(255), primary_key=True)
    ref_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255))


class KeyValueRow(Base):
    """Small state that must survive restarts (Matrix sync token, last digest sent, …)."""

    __tablename__ = "kv"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class BlobRow(Base):
    """Pictures the outbox sends (digest charts), content-addressed: an outbox item refers to
    one by sha256, so the row stays the single source of truth and a resend after a crash
    finds the same bytes."""

    __tablename__ = "blobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    mimetype: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    content: Mapped[bytes] = mapped_column(EncryptedBytes)
    created_at: Mapped[datetime]


class CrisisRow(Base):
    """One crisis: a playbook threshold crossed, until the rate stays below it for the
    cool-down. The digest reads its timeline from here."""

    __tablename__ = "crises"
    __table_args__ = (
        Index("ix_crises_opened", "opened_at"),
        Index("ix_crises_closed", "closed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    threshold_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))  # department | code | all
    key: Mapped[str | None] = mapped_column(String(64))  # department id or code; None for all
    opened_at: Mapped[datetime]
    count_at_open: Mapped[int]  # negative mentions in the window when it opened
    limit: Mapped[float]  # the count it crossed (absolute, or ratio × baseline)
    peak_count: Mapped[int]
    peak_at: Mapped[datetime]
    below_since: Mapped[datetime | None]  # the rate fell under the limit at; None while above
    closed_at: Mapped[datetime | None]
    drill: Mapped[bool] = mapped_column(Boolean, default=False)
    # The drill run that opened it: a drill crisis counts nowhere and closes with its drill.
    drill_run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("drill_runs.id"), index=True)
    # [{"at": ISO time, "event": opened|peak|below|above|closed, "count": n}], oldest first
    timeline: Mapped[list[Any]] = mapped_column(default=list)


class DrillRunRow(Base):
    """One run of a crisis drill scenario; its cases point here (cases.drill_run_id)."""

    __tablename__ = "drill_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scenario: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    started_by: Mapped[str] = mapped_column(String(128))
    ended_by: Mapped[str | None] = mapped_column(String(128))
    hour_in_minutes: Mapped[float] = mapped_column(Float)
    injected: Mapped[int] = mapped_column(default=0)


class SeenChatRow(Base):
    """A group, supergroup, channel or room the bot has had an update from (`otklik chats`).
    Never a private chat: its id is a person's."""

    __tablename__ = "seen_chats"
    __table_args__ = (UniqueConstraint("transport", "chat", name="uq_seen_chats_transport_chat"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transport: Mapped[str] = mapped_column(String(16))
    chat: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(255), default="")
    kind: Mapped[str] = mapped_column(String(16))  # group, supergroup, channel, room
    # Forum topics seen: {"5": "Обращения"}; a name is "" until a message names it.
    topics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]


class MentionBandRow(Base):
    """A MinHash band of a mention's text (bot/cases/similarity.py), by its keyed hash: how
    grouping finds similar mentions of a department though texts are encrypted. Kept only
    within the grouping window; erased with the mention's data."""

    __tablename__ = "mention_bands"
    __table_args__ = (
        # Ends with the id: a band's newest rows are read from its end (repos/links.py).
        Index("ix_mention_bands_newest", "department", "band_hash", "id"),
        Index("ix_mention_bands_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    mention_id: Mapped[int] = mapped_column(ForeignKey("mentions.id", ondelete="CASCADE"))
    department: Mapped[str] = mapped_column(String(32))
    band_hash: Mapped[str] = mapped_column(BlindIndex)
    received_at: Mapped[datetime]


class VkEventRow(Base):
    """A Callback API event from the VK community page (handlers/vk/callback.py), stored
    before VK is told "ok" and taken in after: `event_id` is unique, so VK's retries of the
    same event act once. The event object is sealed while it waits and dropped once it has
    become a mention (`body` None); the row stays as the retry guard."""

    __tablename__ = "vk_events"
    __table_args__ = (Index("ix_vk_events_waiting", "done_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    group_id: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    body: Mapped[Any | None] = mapped_column(EncryptedJSON)
    received_at: Mapped[datetime]
    done_at: Mapped[datetime | None]


class TelegramUpdateRow(Base):
    """A Telegram update, by the bot's id and the update's id, claimed before it is handled
    (handlers/telegram/once.py): Telegram delivers a webhook update again after a non-2xx
    answer or a timeout, maybe to another instance, and a new polling leader may fetch again
    what the old one handled; it must act once. `state` is "processing" from the claim until
    handled, then "done"; `claimed_at` is renewed while in hand, so a "processing" row older
    than the reclaim time is one whose instance died, and may be claimed again. Rows go after
    a few days (Telegram keeps an update for at most 24 hours)."""

    __tablename__ = "telegram_updates"
    __table_args__ = (Index("ix_telegram_updates_claimed_at", "claimed_at"),)

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(16))
    instance: Mapped[str] = mapped_column(String(64))  # who claimed it (config instance.name)
    claimed_at: Mapped[datetime]
    done_at: Mapped[datetime | None]


# The send times of a send slot scope: an array on PostgreSQL; SQLite (one process, never
# asked) keeps the table only so that both backends have the same schema.
SendTimes = ARRAY(DateTime(timezone=True)).with_variant(JSON(), "sqlite")


class SendSlotRow(Base):
    """One flood-limit window shared by the bot's instances (store/send_slots.py): the latest
    sends in a scope (a chat, a group, the whole bot), oldest first, at most its limit."""

    __tablename__ = "send_slots"

    scope: Mapped[str] = mapped_column(String(128), primary_key=True)
    sent: Mapped[list[datetime]] = mapped_column(SendTimes)
