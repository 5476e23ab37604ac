"""Domain entities. Plain frozen dataclasses: the store maps them, transports render them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

# Bounds on untrusted input, defined once and enforced where data enters the core.
MAX_MENTION_TEXT = 20_000
MAX_DRAFT_TEXT = 4_000
MAX_NOTE = 1_000
MAX_URL = 2_048
MAX_NAME = 256
MAX_ATTACHMENTS = 10  # per mention; more are dropped where they enter
MAX_MIME = 128
MAX_CAPTION = 1_024
MAX_ATTACHMENT_BYTES = 2**53  # a size beyond this is no file (JSON's exact integers)
# How an attachment is fetched: a web link (API sources), a Matrix media uri, or a Telegram
# file id ("telegram:<file_id>", usable only by the bot that received it).
ATTACHMENT_SCHEMES = frozenset({"http", "https", "mxc", "telegram", "email"})
TELEGRAM_FILE = "telegram:"
# "email:<part number>": a file inside a letter, listed by name and size and not kept: the
# letter stays in the organisation's mailbox (handlers/email).
EMAIL_PART = "email:"


class CaseState(StrEnum):
    NEW = "new"  # card posted, nobody has taken it
    TAKEN = "taken"  # a specialist owns it, no draft awaiting review
    AWAITING_APPROVAL = "awaiting_approval"  # latest draft waits for an approver
    CHANGES_REQUESTED = "changes_requested"  # approver sent the draft back with a note
    APPROVED = "approved"  # an approved answer is ready to publish
    PUBLISHED = "published"  # the answer is out; follow-up may be pending
    CLOSED = "closed"  # done, with an outcome
    IGNORED = "ignored"  # not worth an answer, with a reason

    @property
    def is_open(self) -> bool:
        return self not in TERMINAL_STATES


TERMINAL_STATES = frozenset({CaseState.CLOSED, CaseState.IGNORED})
# States in which somebody owns the case.
OWNED_STATES = frozenset(
    {
        CaseState.TAKEN,
        CaseState.AWAITING_APPROVAL,
        CaseState.CHANGES_REQUESTED,
        CaseState.APPROVED,
        CaseState.PUBLISHED,
    }
)


class Action(StrEnum):
    """Everything a person can do to a case. Every transport maps its buttons to these."""

    TAKE = "take"
    RELEASE = "release"
    DRAFT = "draft"
    USE_TEMPLATE = "use_template"
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"
    REJECT = "reject"
    PUBLISH = "publish"  # the bot posts the approved answer at the source
    MARK_PUBLISHED = "mark_published"  # a person posted it by hand
    ESCALATE = "escalate"
    REROUTE = "reroute"
    IGNORE = "ignore"
    CLOSE = "close"
    REOPEN = "reopen"
    FOLLOW_UP_DONE = "follow_up_done"
    FOLLOW_UP_LATER = "follow_up_later"  # the result is not there yet: ask again later
    WAIT_FOR_AUTHOR = "wait_for_author"  # the SLA clock pauses until the author answers
    AUTHOR_REPLIED = "author_replied"  # the clock resumes
    # After a public reply or a move to private messages: a new draft that adds to the answer
    # (shows the result) or corrects it, reviewed and published like the answer itself.
    FOLLOW_UP = "follow_up"
    CORRECT = "correct"
    SET_CODE = "set_code"  # a code of the playbook's codes.yaml set or removed (toggled)
    SET_PRIORITY = "set_priority"  # raised or lowered by the lead or the duty officer
    ASSIGN = "assign"  # the lead gives the case to a named colleague of the department


class IgnoreReason(StrEnum):
    NOT_NEGATIVE = "not_negative"
    SPAM = "spam"
    DO_NOT_ENGAGE = "do_not_engage"
    DUPLICATE = "duplicate"


class WaitReason(StrEnum):
    MOVED_TO_PRIVATE = "moved_to_private"  # the talk went on in private messages
    DETAILS_REQUESTED = "details_requested"  # the author was asked for details


class Outcome(StrEnum):
    RESOLVED = "resolved"  # the problem was solved and the author was told
    ANSWERED = "answered"  # an answer was given; nothing more to do
    MOVED_TO_PRIVATE = "moved_to_private"  # continued in private, result not shown publicly
    REFUTED = "refuted"  # false claim refuted publicly
    NO_ACTION = "no_action"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Higher is more urgent; used to order queues."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.CRITICAL: 3}


class Sentiment(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"
    UNCERTAIN = "uncertain"  # the model could not tell: a person decides; counts as neutral


class SentimentSource(StrEnum):
    SOURCE = "source"  # the monitoring service said so
    CLASSIFIER = "classifier"  # Otklik's own classifier
    RULE = "rule"  # a playbook rule forced it
    STAFF = "staff"  # corrected by a person ("not negative")


class DraftStatus(StrEnum):
    PENDING = "pending"
    CHANGES_REQUESTED = "changes_requested"
    REJECTED = "rejected"
    APPROVED = "approved"
    SUPERSEDED = "superseded"  # a newer version replaced it before review


class DraftKind(StrEnum):
    """What a draft is to the public thread (bot/cases/lifecycle.py has the cycle)."""

    ANSWER = "answer"  # the answer (or a first reply)
    FOLLOW_UP = "follow_up"  # comes back to the thread: the result promised, more to say
    CORRECTION = "correction"  # replaces the text of the latest published reply


class AuthorLabel(StrEnum):
    SYSTEMATIC_CRITIC = "systematic_critic"
    OPINION_LEADER = "opinion_leader"
    DO_NOT_ENGAGE = "do_not_engage"
    # Speaks for the organisation or an authority: its mentions are information, never a
    # complaint, unless staff say otherwise (bot/intake/official.py).
    OFFICIAL = "official"


class DeptRole(StrEnum):
    SPECIALIST = "specialist"
    APPROVER = "approver"
    LEAD = "lead"


class GlobalRole(StrEnum):
    DUTY = "duty"
    LEADERSHIP = "leadership"
    ADMIN = "admin"
    # Approves drafts at the press secretary's tier of an approval chain (approval.yaml).
    PRESS_SECRETARY = "press_secretary"


class ApproverRole(StrEnum):
    """Who approves at one tier of a draft's approval chain (playbooks/*/approval.yaml)."""

    DEPARTMENT = "department"  # the case department's approver or lead
    PRESS_SECRETARY = "press_secretary"  # staff with global_roles: [press_secretary]
    LEADERSHIP = "leadership"  # staff with global_roles: [leadership]


# One tier, the department's approver: the chain of a draft no approval policy speaks for.
SINGLE_TIER = (ApproverRole.DEPARTMENT,)


@dataclass(frozen=True, slots=True)
class Identity:
    """One account of a person on one channel (VK id, Telegram id, e-mail address, …)."""

    channel: str
    external_id: str
    display_name: str = ""
    profile_url: str | None = None


@dataclass(frozen=True, slots=True)
class Author:
    id: int | None
    display_name: str
    identities: tuple[Identity, ...] = ()
    labels: frozenset[AuthorLabel] = frozenset()
    negative_count: int = 0
    neutral_count: int = 0
    positive_count: int = 0
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None

    @property
    def total_mentions(self) -> int:
        return self.negative_count + self.neutral_count + self.positive_count


class AttachmentKind(StrEnum):
    PHOTO = "photo"
    DOCUMENT = "document"
    VIDEO = "video"
    AUDIO = "audio"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file that came with a mention. Only its description and a reference are kept, never
    the file: the reference fetches it (a URL, an mxc:// uri, a Telegram file id). The name
    and caption are the citizen's words, personal data like the text."""

    kind: AttachmentKind
    ref: str
    name: str = ""
    mime: str = ""
    size: int | None = None  # bytes, when the source says
    caption: str = ""

    @property
    def scheme(self) -> str:
        return self.ref.split(":", 1)[0].lower() if ":" in self.ref else ""

    @property
    def telegram_file_id(self) -> str | None:
        return self.ref[len(TELEGRAM_FILE) :] if self.ref.startswith(TELEGRAM_FILE) else None

    @property
    def web_url(self) -> str | None:
        """The reference if anyone with the link can open it (http, https)."""
        return self.ref if self.scheme in ("http", "https") else None


def attachment_problem(attachment: Attachment) -> str | None:
    """What is wrong with an attachment from outside, or None: the bounds of every source."""
    if attachment.scheme not in ATTACHMENT_SCHEMES or len(attachment.ref) > MAX_URL:
        return (
            "ref must be an http, https, mxc, telegram or email reference of at most 2048 "
            "characters"
        )
    if attachment.scheme in ("http", "https", "mxc") and "://" not in attachment.ref:
        return "ref must be a whole URL"
    if len(attachment.name) > MAX_NAME or len(attachment.mime) > MAX_MIME:
        return f"name must be at most {MAX_NAME} characters, mime at most {MAX_MIME}"
    if len(attachment.caption) > MAX_CAPTION:
        return f"caption must be at most {MAX_CAPTION} characters"
    if attachment.size is not None and not 0 <= attachment.size <= MAX_ATTACHMENT_BYTES:
        return "size must be a number of bytes"
    return None


def bounded_attachments(attachments: Iterable[Attachment]) -> tuple[Attachment, ...]:
    """The first MAX_ATTACHMENTS acceptable attachments: what an adapter keeps of a message."""
    kept = [a for a in attachments if attachment_problem(a) is None]
    return tuple(kept[:MAX_ATTACHMENTS])


@dataclass(frozen=True, slots=True)
class Mention:
    source: str  # configured source name: "vk", "telegram:press", "rss:news", "email"
    external_id: str  # unique within the source; (source, external_id) is the idempotency key
    text: str
    author: Identity
    received_at: datetime
    published_at: datetime | None = None
    url: str | None = None
    language: str | None = None
    sentiment: Sentiment | None = None  # None: the source gave none; intake classifies
    sentiment_source: SentimentSource = SentimentSource.SOURCE
    sentiment_score: float | None = None
    reach: int = 0
    codes: tuple[str, ...] = ()  # topics and tags, the multi-parameter coding of the record
    story_id: str | None = None  # a source's own grouping of related items
    reply_to_url: str | None = None  # the post this comment sits under, for grouping
    # Other identities the source knows for the same person (e-mail, phone, linked profile):
    # authors sharing one are merged into one card.
    linked: tuple[Identity, ...] = ()
    attachments: tuple[Attachment, ...] = ()  # photos and files that came with it
    id: int | None = None
    author_id: int | None = None
    case_id: int | None = None
    # Set only by a crisis drill (bot/drills): the case it opens is a drill case of that run,
    # in the scenario's department. Not stored on the mention: its case says it.
    drill: DrillTag | None = None


@dataclass(frozen=True, slots=True)
class DrillTag:
    run_id: int
    department: str


@dataclass(frozen=True, slots=True)
class DrillRun:
    """One run of a drill scenario (playbooks/*/drills). `hour_in_minutes`: a drill hour
    passes in that many real minutes."""

    id: int | None
    scenario: str
    started_at: datetime
    started_by: str  # staff id, or "cli"
    hour_in_minutes: float
    ended_at: datetime | None = None
    ended_by: str | None = None
    injected: int = 0  # timeline mentions already handed to intake, in timeline order


@dataclass(frozen=True, slots=True)
class Approval:
    """One tier's approval of a draft: `tier` indexes the draft's `tiers`."""

    tier: int
    reviewer: str  # staff id
    at: datetime


@dataclass(frozen=True, slots=True)
class Draft:
    version: int
    text: str
    author: str  # staff id
    created_at: datetime
    status: DraftStatus = DraftStatus.PENDING
    template_id: str | None = None  # set when the text came from a playbook template
    pre_approved: bool = False
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    note: str | None = None  # the approver's request for changes or reason to reject
    kind: DraftKind = DraftKind.ANSWER
    published_at: datetime | None = None  # when this text went public (by the bot or by hand)
    published_by_bot: bool = False  # the bot posted it: its reply can be edited later
    # The approval chain, fixed when the draft was submitted (approval.yaml then), and the
    # approvals it has collected, one per tier in order.
    tiers: tuple[ApproverRole, ...] = SINGLE_TIER
    approvals: tuple[Approval, ...] = ()

    @property
    def current_tier(self) -> int | None:
        """The index of the tier whose approval the draft waits for; None unless pending."""
        if self.status is not DraftStatus.PENDING or len(self.approvals) >= len(self.tiers):
            return None
        return len(self.approvals)


@dataclass(frozen=True, slots=True)
class Case:
    id: int | None
    department: str
    state: CaseState
    priority: Priority
    created_at: datetime
    source: str
    drill: bool = False  # a training case: handled like any other, kept out of statistics
    drill_run_id: int | None = None  # the drill run that opened it (drill is then true)
    assignee: str | None = None
    escalation_level: int = 0
    sla_policy: str | None = None
    # Deadlines: the reaction (optional, internal: somebody took it), the first reply (the
    # first public contact with the citizen), the approved answer, resolution.
    reaction_due_at: datetime | None = None
    first_touch_due_at: datetime | None = None
    answer_due_at: datetime | None = None
    resolution_due_at: datetime | None = None
    reacted_at: datetime | None = None  # the first press by staff (Take, a draft, …)
    # The first reply: published (a first-reply template or the answer), or written to the
    # author in private (bot.cases.lifecycle.reaches_author). Taking or drafting is not one.
    first_touched_at: datetime | None = None
    approved_at: datetime | None = None
    published_at: datetime | None = None
    published_url: str | None = None
    closed_at: datetime | None = None
    outcome: Outcome | None = None
    ignore_reason: IgnoreReason | None = None
    follow_up_due_at: datetime | None = None
    waiting_since: datetime | None = None  # waiting for the author: the SLA clock pauses
    drafts: tuple[Draft, ...] = ()
    codes: tuple[str, ...] = ()
    mention_count: int = 1
    # Of those, joined because their text is like the case's (bot/cases/similarity.py); the
    # people who wrote them all, the newest one's time and their sources: the card's spread.
    similar_count: int = 0
    people_count: int = 1
    last_mention_at: datetime | None = None
    sources: tuple[str, ...] = ()
    # The answer of a case with several mentions, as it goes out (bot/cases/publication.py):
    # replies the bot queued under mentions it can answer and how many of them were delivered
    # (kept up to date by the delivery hook, coalesced), mentions nobody can answer but a
    # person (they wait for "mark published"), those a person marked, and the newest mention
    # id that mark covered. All count from the last publication of a new text.
    answer_targets: int = 0
    answers_delivered: int = 0
    hand_due: int = 0
    hand_published: int = 0
    hand_marked_upto: int = 0
    # The learned router's confidence when it chose the department (no rule claimed the
    # mention); None when a rule, the default or a person did. The card shows it.
    route_confidence: float | None = None
    version: int = 0  # bumped on every change: optimistic locking and stale-button detection

    @property
    def latest_draft(self) -> Draft | None:
        return self.drafts[-1] if self.drafts else None

    @property
    def approved_draft(self) -> Draft | None:
        for draft in reversed(self.drafts):
            if draft.status is DraftStatus.APPROVED:
                return draft
        return None

    @property
    def published_draft(self) -> Draft | None:
        """The latest draft that went public: what a correction corrects."""
        for draft in reversed(self.drafts):
            if draft.published_at is not None:
                return draft
        return None


SYSTEM_ACTOR = "system"


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a case's append-only history."""

    case_id: int | None
    at: datetime
    actor: str  # staff id, or SYSTEM_ACTOR
    kind: str  # an Action value, or one of EventKind
    from_state: CaseState | None
    to_state: CaseState | None
    payload: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


class EventKind(StrEnum):
    """Event kinds that are not an Action pressed by a person."""

    CREATED = "created"
    MENTION_ADDED = "mention_added"
    # Staff split a wrongly joined mention off into a case of its own (payload: mention_id,
    # to_case); the new case's CREATED names split_from.
    MENTION_SPLIT = "mention_split"
    DENIED = "denied"  # an attempt refused for lack of rights: the audit trail
    ESCALATED = "escalated"  # the SLA engine chased someone (payload: level, repeat, auto)
    REMINDED = "reminded"  # an SLA reminder or breach notice went out
    FOLLOW_UP_ASKED = "follow_up_asked"  # the bot asked to show the result
    MARKED_NEGATIVE = "marked_negative"  # staff opened it from a missed mention (/negative)
    AUTHOR_MERGED = "author_merged"  # two author cards became one (payload: keep, gone, why)
    # Erasure (bot/cases/erasure.py): who erased what and when, no personal data. Only events
    # of these kinds may redact earlier events (store/audit.py ERASURE_KINDS).
    AUTHOR_FORGOTTEN = "author_forgotten"
    RETENTION_ERASED = "retention_erased"
    # A crisis card's checklist item ticked or unticked (bot/crisis/checklist.py has the
    # payload contract). No case: case_id is None, the crisis id is in the payload.
    CHECKLIST_DONE = "checklist_done"
    CHECKLIST_UNDONE = "checklist_undone"


@dataclass(frozen=True, slots=True)
class SeenChat:
    """A group, supergroup, channel or room the bot has had an update from, for `otklik chats`.
    Never a private chat: its id is a person's id."""

    transport: str
    chat: str
    title: str
    kind: str  # group, supergroup, channel (Telegram); room (Matrix)
    topics: Mapping[str, str]  # forum topic id -> its name, "" when no message said it
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class ClusterCount:
    """One case's mentions in a period: how many, from how many people, and how they move.
    A cluster is a case that several mentions joined; the crisis card (bot/crisis/storm.py)
    and the digest (bot/reports/evening.py) show the largest (uow.crises.clusters)."""

    case_id: int
    department: str
    mentions: int  # received in the period
    people: int  # distinct authors of those
    first_at: datetime  # the first of them
    last_at: datetime
    recent: int  # received in the last trend window
    previous: int  # received in the trend window before it


@dataclass(frozen=True, slots=True)
class TrendWindows:
    """The two trend windows ending now: [previous_start, recent_start) and [recent_start, now)."""

    previous_start: datetime
    recent_start: datetime
    end: datetime

    @classmethod
    def ending(cls, now: datetime, width: timedelta) -> TrendWindows:
        return cls(now - 2 * width, now - width, now)
