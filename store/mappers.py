"""Row mappers, all in one place: stored rows into the core's dataclasses (`*_from_row`, and
the digest and export records), and the core's dataclasses into column values: a dict for a
statement (`*_values`), a tuple in `*_COLUMNS` order for store.driver's bulk paths (`*_row`).

The bulk paths map thousands of rows a transaction: the mappers do no work per row beyond
what the fields themselves need.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Row

from bot.crisis.thresholds import Crisis, CrisisEvent, CrisisEventKind
from bot.messages.outbox import OutboxItem, OutboxOp, OutboxStatus
from bot.messages.views import as_view
from bot.model import (
    Approval,
    ApproverRole,
    Attachment,
    AttachmentKind,
    Author,
    AuthorLabel,
    Case,
    CaseState,
    Draft,
    DraftKind,
    DraftStatus,
    DrillRun,
    Event,
    Identity,
    IgnoreReason,
    Mention,
    Outcome,
    Priority,
    Sentiment,
    SentimentSource,
)
from bot.reports.export import ExportAuthor, ExportCase
from bot.reports.figures import AuthorSeen, CrisisSpan
from bot.settings.crisis_rules import ThresholdScope
from bot.sla.timers import Timer, TimerKind
from store.audit import REDACTED, AuditRecord
from store.models import (
    AuthorIdentityRow,
    AuthorRow,
    CaseRow,
    CrisisRow,
    DraftRow,
    DrillRunRow,
    EventRow,
    MentionRow,
    OutboxRow,
)

# --- cases and drafts ------------------------------------------------------------------------

# The columns a case keeps as they are; the rest are enums and codes (case_values).
CASE_FIELDS = (
    "department",
    "source",
    "drill",
    "drill_run_id",
    "assignee",
    "escalation_level",
    "sla_policy",
    "reaction_due_at",
    "first_touch_due_at",
    "answer_due_at",
    "resolution_due_at",
    "reacted_at",
    "first_touched_at",
    "approved_at",
    "published_at",
    "published_url",
    "closed_at",
    "follow_up_due_at",
    "waiting_since",
    "mention_count",
    "similar_count",
    "people_count",
    "last_mention_at",
    "answer_targets",
    "answers_delivered",
    "hand_due",
    "hand_published",
    "hand_marked_upto",
    "route_confidence",
    "version",
    "created_at",
)


def case_values(case: Case) -> dict[str, Any]:
    values = {name: getattr(case, name) for name in CASE_FIELDS}
    values.update(
        state=case.state.value,
        priority=case.priority.value,
        outcome=case.outcome.value if case.outcome else None,
        ignore_reason=case.ignore_reason.value if case.ignore_reason else None,
        codes=list(case.codes),
        sources=list(case.sources),
    )
    return values


# case_row's values, in this order (every column of cases but the id).
CASE_COLUMNS = (*CASE_FIELDS, "state", "priority", "outcome", "ignore_reason", "codes", "sources")


def case_row(case: Case) -> tuple[Any, ...]:
    """CASE_COLUMNS' values (case_values as a row); JSON lists as tuples for insert_rows'
    cache."""
    values = case_values(case)
    values.update(codes=tuple(case.codes), sources=tuple(case.sources))
    return tuple(values[name] for name in CASE_COLUMNS)


def case_from_row(row: CaseRow | Row[Any], drafts: Sequence[Draft]) -> Case:
    return Case(
        id=row.id,
        state=CaseState(row.state),
        priority=Priority(row.priority),
        outcome=Outcome(row.outcome) if row.outcome else None,
        ignore_reason=IgnoreReason(row.ignore_reason) if row.ignore_reason else None,
        codes=tuple(row.codes or ()),
        sources=tuple(row.sources or ()),
        drafts=tuple(drafts),
        **{name: getattr(row, name) for name in CASE_FIELDS},
    )


def draft_values(draft: Draft) -> dict[str, Any]:
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
        "kind": draft.kind.value,
        "published_at": draft.published_at,
        "published_by_bot": draft.published_by_bot,
        "tiers": [tier.value for tier in draft.tiers],
        "approvals": [
            {"tier": a.tier, "reviewer": a.reviewer, "at": a.at.isoformat()}
            for a in draft.approvals
        ],
    }


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def draft_from_row(row: DraftRow) -> Draft:
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
        kind=DraftKind(row.kind),
        published_at=row.published_at,
        published_by_bot=row.published_by_bot,
        tiers=tuple(ApproverRole(tier) for tier in row.tiers or ("department",)),
        approvals=tuple(
            Approval(int(a["tier"]), str(a["reviewer"]), _utc(datetime.fromisoformat(a["at"])))
            for a in row.approvals or ()
        ),
    )


# --- mentions --------------------------------------------------------------------------------

MENTION_COLUMNS = (
    "source",
    "personal",  # external_id, url, text, story_id, reply_to_url: one encrypted record
    "author_id",
    "identity_channel",
    "language",
    "published_at",
    "received_at",
    "sentiment",
    "sentiment_source",
    "sentiment_score",
    "reach",
    "codes",
    "case_id",
    "attachments",
    # Blind indexes: bound with the plain values, which their column type hashes.
    "external_id_hash",
    "url_hash",
    "story_hash",
    "reply_to_url_hash",
    "identity_hash",
)

# Enum values by member: a dict look-up costs a fraction of the `.value` property.
_VALUES: dict[Sentiment | SentimentSource, str] = {
    **{s: s.value for s in Sentiment},
    **{s: s.value for s in SentimentSource},
}


def mention_row(mention: Mention, author_id: int) -> tuple[Any, ...]:
    """MENTION_COLUMNS' values of a classified mention (intake has set its sentiment)."""
    return (
        mention.source,
        (mention.external_id, mention.url, mention.text, mention.story_id, mention.reply_to_url),
        author_id,
        mention.author.channel,
        mention.language,
        mention.published_at,
        mention.received_at,
        _VALUES[mention.sentiment or Sentiment.NEUTRAL],
        _VALUES[mention.sentiment_source],
        mention.sentiment_score,
        mention.reach,
        mention.codes,  # a tuple: hashable for insert_rows' cache; JSON makes it a list
        mention.case_id,
        attachment_dicts(mention.attachments),
        mention.external_id,
        mention.url,
        mention.story_id,
        mention.reply_to_url,
        mention.author.external_id,
    )


def mention_values(mention: Mention, author_id: int) -> dict[str, Any]:
    values = dict(zip(MENTION_COLUMNS, mention_row(mention, author_id), strict=True))
    values["codes"] = list(mention.codes)
    values["personal"] = list(values["personal"])
    return values


def attachment_dicts(attachments: Sequence[Attachment]) -> list[dict[str, Any]] | None:
    """Attachments as the mentions.attachments JSON; None when there are none."""
    if not attachments:
        return None
    return [
        {
            "kind": a.kind.value,
            "ref": a.ref,
            "name": a.name,
            "mime": a.mime,
            "size": a.size,
            "caption": a.caption,
        }
        for a in attachments
    ]


def attachments_of(stored: Sequence[Mapping[str, Any]] | None) -> tuple[Attachment, ...]:
    return tuple(
        Attachment(
            kind=AttachmentKind(item["kind"]),
            ref=item["ref"],
            name=item.get("name") or "",
            mime=item.get("mime") or "",
            size=item.get("size"),
            caption=item.get("caption") or "",
        )
        for item in stored or ()
    )


def mention_identity(row: MentionRow) -> Identity:
    """The identity a mention came through; once the author is erased, only its channel."""
    found = row.identity
    if found is None:
        return Identity(row.identity_channel, REDACTED, "")
    return Identity(found.channel, found.external_id, found.display_name, found.profile_url)


def mention_from_row(row: MentionRow) -> Mention:
    external_id, url, text, story_id, reply_to_url = row.personal
    return Mention(
        id=row.id,
        source=row.source,
        external_id=external_id,
        text=text,
        author=mention_identity(row),
        received_at=row.received_at,
        published_at=row.published_at,
        url=url,
        language=row.language,
        sentiment=Sentiment(row.sentiment),
        sentiment_source=SentimentSource(row.sentiment_source),
        sentiment_score=row.sentiment_score,
        reach=row.reach,
        codes=tuple(row.codes or ()),
        story_id=story_id,
        reply_to_url=reply_to_url,
        attachments=attachments_of(row.attachments),
        author_id=row.author_id,
        case_id=row.case_id,
    )


# --- authors ---------------------------------------------------------------------------------

# An author's own columns, in the order of author_row; bulk-inserted authors are told apart
# by them (see SqlAuthorRepository.add_many).
AUTHOR_COLUMNS = (
    "display_name",
    "labels",
    "negative_count",
    "neutral_count",
    "positive_count",
    "first_seen_at",
    "last_seen_at",
)
IDENTITY_COLUMNS = (
    "author_id",
    "channel",
    "external_id",
    "display_name",
    "profile_url",
    "external_id_hash",  # bound with the plain id, hashed by its column type
)


def author_row(author: Author) -> tuple[Any, ...]:
    """AUTHOR_COLUMNS' values; labels a tuple for insert_rows' cache."""
    return (
        author.display_name,
        tuple(sorted(label.value for label in author.labels)),
        author.negative_count,
        author.neutral_count,
        author.positive_count,
        author.first_seen_at,
        author.last_seen_at,
    )


def author_values(author: Author) -> dict[str, Any]:
    return {
        "display_name": author.display_name,
        "labels": sorted(label.value for label in author.labels),
        "negative_count": author.negative_count,
        "neutral_count": author.neutral_count,
        "positive_count": author.positive_count,
        "first_seen_at": author.first_seen_at,
        "last_seen_at": author.last_seen_at,
    }


def identity_row(author_id: int, identity: Identity) -> tuple[Any, ...]:
    """IDENTITY_COLUMNS' values."""
    return (
        author_id,
        identity.channel,
        identity.external_id,
        identity.display_name,
        identity.profile_url,
        identity.external_id,
    )


def identity_values(author_id: int, identity: Identity) -> dict[str, Any]:
    return dict(zip(IDENTITY_COLUMNS, identity_row(author_id, identity), strict=True))


def author_from_row(row: AuthorRow, identities: tuple[Identity, ...] = ()) -> Author:
    return Author(
        id=row.id,
        display_name=row.display_name,
        identities=identities,
        labels=frozenset(AuthorLabel(label) for label in row.labels or ()),
        negative_count=row.negative_count,
        neutral_count=row.neutral_count,
        positive_count=row.positive_count,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
    )


def identity_from_row(row: AuthorIdentityRow) -> Identity:
    return Identity(row.channel, row.external_id, row.display_name, row.profile_url)


# --- events ----------------------------------------------------------------------------------

EVENT_COLUMNS = ("case_id", "at", "actor", "kind", "from_state", "to_state", "payload")


def event_rows(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    """EVENT_COLUMNS' values of each event (the SLA clock appends hundreds at once)."""
    return [
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


def event_from_row(row: EventRow) -> Event:
    return Event(
        id=row.id,
        case_id=row.case_id,
        at=row.at,
        actor=row.actor,
        kind=row.kind,
        from_state=CaseState(row.from_state) if row.from_state else None,
        to_state=CaseState(row.to_state) if row.to_state else None,
        payload=dict(row.payload or {}),
    )


def audit_record_from_row(row: EventRow) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        case_id=row.case_id,
        at=row.at,
        actor=row.actor,
        kind=row.kind,
        from_state=row.from_state,
        to_state=row.to_state,
        payload=dict(row.payload or {}),
        prev_hash=row.prev_hash,
        hash=row.hash,
        seal=row.seal,
        nonce=row.nonce,
        redacted_by=row.redacted_by,
    )


# --- outbox ----------------------------------------------------------------------------------

# What a new item stores: it starts pending, never tried.
OUTBOX_COLUMNS = (
    "idempotency_key",
    "transport",
    "chat",
    "thread",
    "op",
    "ref_key",
    "reply_to_key",
    "payload",
    "case_id",
    "urgency",
    "status",
    "attempts",
    "created_at",
    "next_attempt_at",
)


def outbox_row(item: OutboxItem) -> tuple[Any, ...]:
    """OUTBOX_COLUMNS' values of a new item."""
    return (
        item.idempotency_key,
        item.transport,
        item.chat,
        item.thread,
        item.op.value,
        item.ref_key,
        item.reply_to_key,
        item.payload,
        item.case_id,
        item.urgency,
        OutboxStatus.PENDING.value,
        0,
        item.created_at,
        item.next_attempt_at or item.created_at,
    )


def outbox_values(item: OutboxItem) -> dict[str, Any]:
    return dict(zip(OUTBOX_COLUMNS, outbox_row(item), strict=True))


def outbox_from_row(row: OutboxRow | Row[Any]) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        transport=row.transport,
        chat=row.chat,
        thread=row.thread,
        op=OutboxOp(row.op),
        payload=as_view(row.payload or {}),
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


# --- timers ----------------------------------------------------------------------------------


def timer_values(timers: Sequence[Timer]) -> list[dict[str, Any]]:
    """The column values of each timer (arming thousands of cases at once)."""
    return [
        {
            "case_id": t.case_id,
            "kind": t.kind.value,
            "due_at": t.due_at,
            "payload": t.payload,
            "key": t.key,
            "fired_at": t.fired_at,
        }
        for t in timers
    ]


def timer_from_row(row: Any) -> Timer:
    """`row`: a Core row or a named tuple of the timers' columns."""
    return Timer(
        case_id=row.case_id,
        kind=TimerKind(row.kind),
        due_at=row.due_at,
        key=row.key,
        payload=dict(row.payload or {}),
        id=row.id,
        fired_at=row.fired_at,
    )


# --- crises ----------------------------------------------------------------------------------


def crisis_event_json(event: CrisisEvent) -> dict[str, Any]:
    return {
        "at": event.at.astimezone(UTC).isoformat(),
        "event": event.kind.value,
        "count": event.count,
    }


def crisis_event(data: dict[str, Any]) -> CrisisEvent:
    return CrisisEvent(
        at=datetime.fromisoformat(str(data["at"])).astimezone(UTC),
        kind=CrisisEventKind(data["event"]),
        count=int(data["count"]),
    )


def crisis_from_row(row: CrisisRow) -> Crisis:
    return Crisis(
        id=row.id,
        threshold_id=row.threshold_id,
        scope=ThresholdScope(row.scope),
        key=row.key,
        opened_at=row.opened_at,
        count_at_open=row.count_at_open,
        limit=row.limit,
        peak_count=row.peak_count,
        peak_at=row.peak_at,
        below_since=row.below_since,
        closed_at=row.closed_at,
        drill=row.drill,
        drill_run_id=row.drill_run_id,
        timeline=tuple(crisis_event(e) for e in row.timeline or ()),
    )


def fill_crisis_row(row: CrisisRow, crisis: Crisis) -> None:
    row.threshold_id = crisis.threshold_id
    row.scope = crisis.scope.value
    row.key = crisis.key
    row.opened_at = crisis.opened_at
    row.count_at_open = crisis.count_at_open
    row.limit = crisis.limit
    row.peak_count = crisis.peak_count
    row.peak_at = crisis.peak_at
    row.below_since = crisis.below_since
    row.closed_at = crisis.closed_at
    row.drill = crisis.drill
    row.drill_run_id = crisis.drill_run_id
    row.timeline = [crisis_event_json(e) for e in crisis.timeline]


# --- reports and exports ---------------------------------------------------------------------


def crisis_span(row: CrisisRow) -> CrisisSpan:
    return CrisisSpan(
        row.id,
        row.threshold_id,
        row.scope,
        row.key,
        row.opened_at,
        row.count_at_open,
        row.limit,
        row.peak_count,
        row.peak_at,
        row.below_since,
        row.closed_at,
        tuple(row.timeline or ()),
    )


_KNOWN_LABELS = frozenset(label.value for label in AuthorLabel)


def author_seen(id_: int, name: str, labels: Any, mentions: Any, negative: Any) -> AuthorSeen:
    """An author's card and counts for a digest; labels this version does not know are
    left out."""
    return AuthorSeen(
        int(id_),
        name,
        frozenset(AuthorLabel(x) for x in (labels or ()) if x in _KNOWN_LABELS),
        int(mentions or 0),
        int(negative or 0),
    )


def export_case(row: CaseRow, author_id: int | None) -> ExportCase:
    return ExportCase(
        id=row.id,
        department=row.department,
        priority=row.priority,
        source=row.source,
        codes=tuple(str(code) for code in row.codes or ()),
        state=row.state,
        outcome=row.outcome,
        ignore_reason=row.ignore_reason,
        escalation_level=row.escalation_level,
        drill=row.drill,
        author_id=author_id,
        created_at=row.created_at,
        first_touched_at=row.first_touched_at,
        approved_at=row.approved_at,
        published_at=row.published_at,
        closed_at=row.closed_at,
        first_touch_due_at=row.first_touch_due_at,
        answer_due_at=row.answer_due_at,
        assignee=row.assignee,
    )


def export_author(row: AuthorRow, identities: tuple[str, ...]) -> ExportAuthor:
    return ExportAuthor(
        id=row.id,
        name=row.display_name,
        identities=identities,
        labels=tuple(sorted(str(label) for label in row.labels or ())),
        negative_count=row.negative_count,
        neutral_count=row.neutral_count,
        positive_count=row.positive_count,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
    )


def drill_run_from_row(row: DrillRunRow) -> DrillRun:
    return DrillRun(
        id=row.id,
        scenario=row.scenario,
        started_at=row.started_at,
        started_by=row.started_by,
        hour_in_minutes=row.hour_in_minutes,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
        injected=row.injected,
    )
