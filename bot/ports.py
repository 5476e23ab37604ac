"""What the core needs from storage. store/ implements these with SQL; the core never sees SQL.

Repositories never commit: the service opens a unit of work, does its reads and writes,
and commits once, so a state change and the messages it causes land together or not at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TypeVar

from bot.model import (
    Author,
    AuthorLabel,
    Case,
    ClusterCount,
    DrillRun,
    Event,
    Identity,
    Mention,
    SeenChat,
    Sentiment,
    TrendWindows,
)

# The unit of work names every capability's records, so it would import every layer above it
# (pyproject.toml's import-linter layers): it names them for the type checker only, and at
# run time this module depends on the model alone.
if TYPE_CHECKING:
    from bot.crisis.checklist import ChecklistTick
    from bot.crisis.thresholds import CountWindow, Crisis, WindowCounts
    from bot.messages.outbox import (
        CardBacklog,
        OutboxItem,
        OutboxStatus,
        PackChange,
        WaitingWork,
    )
    from bot.messages.views import View
    from bot.reports.export import ExportAuthor, ExportCase
    from bot.reports.figures import Period, ReportRepository
    from bot.settings.crisis_rules import ThresholdScope
    from bot.sla.timers import Timer


_Result = TypeVar("_Result")


class Offload(Protocol):
    """Runs CPU-bound work (classifying and routing a batch) away from the event loop, so
    /healthz, the outbox, polling and the scheduler keep running meanwhile. The composition
    root injects its pool; `asyncio.to_thread` is the default."""

    def __call__(self, work: Callable[[], _Result], /) -> Awaitable[_Result]: ...


def in_thread(work: Callable[[], _Result], /) -> Awaitable[_Result]:
    """The default Offload: the event loop's default thread pool."""
    return asyncio.to_thread(work)


@dataclass(frozen=True, slots=True)
class DepartmentStatus:
    department: str
    open: int
    overdue: int
    at_risk: int
    oldest_new_at: datetime | None


class ConcurrentUpdate(Exception):
    """The case changed between load and save (another press won the race)."""


@dataclass(frozen=True, slots=True)
class AuthorStanding:
    """What an author's automatic labels are computed from."""

    labels: frozenset[AuthorLabel]
    negative_count: int
    neutral_count: int
    positive_count: int
    negative_since: int  # negative mentions received since the moment asked about
    max_reach: int


@dataclass(frozen=True, slots=True)
class AuthorTally:
    """What a batch of mentions adds to a stored author."""

    author_id: int
    negative: int = 0
    neutral: int = 0
    positive: int = 0
    seen_at: datetime | None = None  # last_seen_at becomes at least this
    identities: tuple[Identity, ...] = ()  # identities the author did not have yet
    labels: frozenset[AuthorLabel] | None = None  # None: unchanged


@dataclass(frozen=True, slots=True)
class SentimentCorrection:
    """A mention whose sentiment staff set: a training example for the organisation's model."""

    mention_id: int
    text: str
    language: str | None
    sentiment: Sentiment
    department: str | None  # of the mention's case; None: it has none
    by: str  # staff id
    at: datetime


class CaseRepository(Protocol):
    async def add(self, case: Case) -> Case: ...
    async def add_many(self, cases: Sequence[Case]) -> list[Case]:
        """New cases without drafts, in one statement; returned with their ids, in order."""
        ...

    async def get(self, case_id: int) -> Case | None: ...
    async def get_many(self, case_ids: Sequence[int]) -> dict[int, Case]: ...
    async def lock_for_joining(self, case_ids: Sequence[int]) -> dict[int, Case]:
        """get_many for cases mentions are about to join: each row is locked until commit (in
        id order, where the database locks rows), so record_joined finds the version read."""
        ...

    async def record_joined(self, cases: Sequence[Case]) -> None:
        """Store the grown mention_count and version of cases that related mentions joined;
        raises ConcurrentUpdate if one changed since version - 1."""
        ...

    async def save(self, case: Case, expected_version: int) -> None:
        """Write the case if its stored version is still `expected_version`, else raise
        ConcurrentUpdate. All but `answers_delivered` (record_answers_delivered)."""
        ...

    async def record_answers_delivered(self, case_id: int, delivered: int) -> None:
        """How many of the case's public replies were delivered: shown on its card; no new
        version, so no button goes stale for it."""
        ...

    async def list_open(self, department: str | None = None) -> list[Case]: ...
    async def open_without_card(self, department: str, transport: str, chat: str) -> list[Case]:
        """Open cases of the department with no card delivered or queued in that chat."""
        ...

    async def status(self, now: datetime, soon: datetime) -> list[DepartmentStatus]:
        """Open cases per department: overdue now, due before `soon`, oldest still new."""
        ...


class MentionRepository(Protocol):
    async def add(self, mention: Mention) -> Mention | None:
        """Store a new mention; None when (source, external_id) is already stored."""
        ...

    async def get_by_external(self, source: str, external_id: str) -> Mention | None: ...
    async def for_case(self, case_id: int) -> list[Mention]: ...
    async def attach_many(self, pairs: Sequence[tuple[int, int]]) -> None:
        """(mention id, case id) pairs."""
        ...

    async def first_of_cases(self, case_ids: Sequence[int]) -> dict[int, Mention]: ...
    async def get(self, mention_id: int) -> Mention | None: ...
    async def find_by_url(self, url: str) -> Mention | None:
        """The first mention stored with this URL."""
        ...

    async def correct_sentiment(
        self, mention_ids: Sequence[int], sentiment: Sentiment, by: str, at: datetime
    ) -> None:
        """Staff set these mentions' sentiment (SentimentSource.STAFF), recording who and when."""
        ...

    async def corrections(self, since: datetime) -> list[SentimentCorrection]:
        """Mentions whose sentiment staff set since `since`, oldest correction first."""
        ...

    async def undecided(
        self, skip_sources: Collection[str], limit: int
    ) -> tuple[list[Mention], int]:
        """The triage list: UNCERTAIN mentions with no case that staff have not decided, from
        any source but `skip_sources`; the newest `limit` of them and how many there are."""
        ...

    # Bulk intake (imports, API batches): a batch costs a handful of statements.
    async def reserve(self) -> None:
        """Hold the write lock from now until commit where the database has one lock for
        all writers (SQLite), so a batch's reads stay true until it writes."""
        ...

    async def known(self, source: str, external_ids: Sequence[str]) -> set[str]:
        """Which of these external ids of one source are already stored."""
        ...

    async def add_many(self, mentions: Sequence[Mention], author_ids: Sequence[int]) -> list[int]:
        """Store new mentions (keys distinct, not stored yet) on these authors' cards in one
        go; their ids in order. A key another writer stored meanwhile raises ConcurrentUpdate."""
        ...


class AuthorRepository(Protocol):
    async def get(self, author_id: int) -> Author | None: ...
    async def find_by_identity(self, identity: Identity) -> Author | None: ...
    async def cards_of(self, author_ids: Sequence[int]) -> dict[int, Author]:
        """Authors as a case card shows them: names, labels and counts, no identities."""
        ...

    async def labels_of(self, author_ids: Sequence[int]) -> dict[int, frozenset[AuthorLabel]]:
        """The labels on these authors' cards (those with none included): what routing reads,
        without the names a card would decrypt."""
        ...

    async def add(self, author: Author) -> Author: ...
    async def save(self, author: Author) -> None: ...

    # Bulk intake. An identity taken by a concurrent writer raises ConcurrentUpdate: the
    # caller rolls back and runs the batch again.
    async def owners(self, identities: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The author owning each known (channel, external id)."""
        ...

    async def add_many(self, authors: Sequence[Author]) -> list[Author]:
        """Store new authors with their identities; in input order, with ids."""
        ...

    async def standing(
        self, author_ids: Sequence[int], since: datetime
    ) -> dict[int, AuthorStanding]: ...

    async def tally_many(self, tallies: Sequence[AuthorTally]) -> None:
        """Add counts, move last_seen_at forward, add identities, set changed labels."""
        ...


class EventRepository(Protocol):
    async def append(self, events: Sequence[Event]) -> None: ...
    async def record(self, event: Event) -> int:
        """Append one event at once; its id (an erasure names it in what it redacts)."""
        ...

    async def erasures_of(self, kind: str, key: str, value: object) -> list[Event]:
        """Events of `kind` whose payload holds `key` = `value`, oldest first."""
        ...

    async def for_case(self, case_id: int) -> list[Event]: ...
    async def of_kind(self, kind: str, since: datetime | None = None) -> list[Event]:
        """Every event of one kind (e.g. reroute), oldest first."""
        ...


class OutboxRepository(Protocol):
    async def enqueue(self, items: Sequence[OutboxItem]) -> int:
        """Queue messages; an item whose idempotency key is known is skipped. A newer edit of
        the same message supersedes an older undelivered one. Returns how many were queued."""
        ...

    async def enqueue_many(self, items: Sequence[OutboxItem]) -> int:
        """What enqueue does, in a few statements for batches of hundreds."""
        ...

    async def due_heads(self, now: datetime, limit: int) -> list[OutboxItem]:
        """The oldest undelivered item of each (transport, chat) queue, if it is due."""
        ...

    async def claim(
        self,
        item_id: int,
        now: datetime,
        owner: str | None = None,
        lease_until: datetime | None = None,
    ) -> bool:
        """pending -> sending, only if still pending (another worker may have taken it)."""
        ...

    async def claim_heads(
        self, heads: Sequence[OutboxItem], owner: str, now: datetime, lease_until: datetime
    ) -> set[int]:
        """Claim these chat heads for `owner` until `lease_until`, skipping items another
        transaction holds and chats where another owner's claim is live (one sender per
        chat across instances). Returns the ids claimed."""
        ...

    async def renew_claims(
        self, item_ids: Collection[int], owner: str, lease_until: datetime
    ) -> int:
        """Extend `owner`'s claims that are still `sending`; returns how many."""
        ...

    # The outcome of a send. With `owner`, written only while the claim is still the
    # owner's (or requeued and not claimed again): a stalled instance leaves alone what
    # another took over.
    async def mark_delivered(
        self, item_id: int, now: datetime, external_ref: str | None, owner: str | None = None
    ) -> None: ...

    async def mark_delivered_many(
        self, delivered: Sequence[tuple[int, str | None]], now: datetime, owner: str | None = None
    ) -> None:
        """mark_delivered of several items, each with its external ref, in one statement."""
        ...

    async def mark_retry(
        self, item_id: int, next_attempt_at: datetime, error: str, owner: str | None = None
    ) -> None: ...

    async def mark_failed(
        self, item_id: int, now: datetime, error: str, owner: str | None = None
    ) -> None: ...
    async def requeue_in_flight(
        self, keep: Collection[int] = (), expired_at: datetime | None = None
    ) -> int:
        """Items left `sending` go back to pending, except the ids in `keep` (still in the
        worker's hands): all of them (after a crash, the store held by one process), or with
        `expired_at` only those whose lease ran out by then (no live owner). Returns the
        count."""
        ...

    async def get(self, item_id: int) -> OutboxItem | None: ...
    async def depth(self) -> int: ...
    async def backlog(self, transport: str) -> dict[str, int]:
        """Undelivered items per chat of one transport."""
        ...

    async def shown_queues(self, transport: str) -> dict[str, datetime]:
        """Chats showing a queue message (its latest item is not a removal), with when that
        item was queued: what a new leader takes over."""
        ...

    async def card_backlog(self, transport: str, chat: str, limit: int) -> CardBacklog:
        """The cases whose card has not reached a chat yet (waiting or in hand): the first
        `limit` largest clusters first (mentions in the case), then most urgent, then oldest;
        all of them counted with their mentions; and the cards already there whose redraw
        with more mentions still waits, with the mentions it adds."""
        ...

    async def waiting_work(
        self, transport: str, chat: str, urgency: int, now: datetime, limit: int
    ) -> list[WaitingWork]:
        """The chat's oldest `limit` due card posts, card edits, pack posts and pack edits that
        count more at this urgency, each with the mentions it would newly show (a card: its
        case's mentions not on the chat's latest version of it; a pack: its cases' mentions; a
        pack's edit: the counts gone onto it since it was drawn, one each) and since when."""
        ...

    async def waiting_packs(
        self, transport: str, chat: str, thread: str | None
    ) -> list[OutboxItem]:
        """Pack posts of the chat (and forum topic) that wait for their slot, oldest first."""
        ...

    async def hold_waiting(self, item_id: int) -> bool:
        """Hold a waiting item for this transaction (no claim takes it meanwhile); False if it
        is not waiting any more."""
        ...

    async def repack_many(self, packs: Sequence[tuple[int, View, int]]) -> None:
        """Held waiting packs' new lines and urgency (delivery.py _top_up), each (item id,
        payload, urgency), in one statement."""
        ...

    async def packable_cards(
        self, transport: str, chat: str, max_mentions: int, limit: int
    ) -> list[OutboxItem]:
        """Waiting (not in hand) posts of first cards in a chat that a pack card may stand
        for: new cases of at most `max_mentions` mentions, neither critical nor drills, with
        nothing else of
        theirs waiting in the chat and no card in it; most urgent first, then oldest."""
        ...

    async def mark_packed(self, item_ids: Sequence[int], pack_ref: str) -> list[int]:
        """pending -> packed for those still pending; returns their ids."""
        ...

    async def mark_packed_many(
        self, groups: Sequence[tuple[Sequence[int], str]]
    ) -> list[list[int]]:
        """mark_packed of each group (its item ids, its pack's ref) at once; the ids packed
        of each group, sorted."""
        ...

    async def packed_card(self, transport: str, chat: str, ref_key: str) -> OutboxItem | None:
        """The card's post that went out as a line of a pack (its external_ref names the
        pack), or None."""
        ...

    async def packed_card_edits(self, transport: str, chat: str, limit: int) -> list[OutboxItem]:
        """The chat's oldest `limit` waiting card edits, never tried, of cases whose card went
        out on a pack (delivery.py _onto_pack looks at each)."""
        ...

    async def onto_pack(self, item_id: int, pack_ref: str, now: datetime) -> bool:
        """A waiting card edit goes onto the pack its card is packed on: pending -> packed,
        the pack's line shows it from its next redraw. False if it is not waiting any more."""
        ...

    async def pack_changes(self, transport: str, since: datetime | None) -> list[PackChange]:
        """Packs with a case whose card was queued again (posted, edited) since `since`."""
        ...

    async def unpack_lost(self, transport: str) -> int:
        """Packed card posts whose pack is neither in its chat nor waiting (refused for good)
        go back to pending. Returns the count."""
        ...

    async def replies_of(self, case_id: int, ref_key: str) -> dict[str, OutboxStatus]:
        """The status of each of the case's REPLY items whose ref_key is `ref_key` or starts
        with `ref_key:` (the public answer under each mention of a cluster), by ref_key."""
        ...


class MessageRefRepository(Protocol):
    """Maps our logical message keys ("card:42:housing") to a transport's message ids."""

    async def get(self, transport: str, chat: str, ref_key: str) -> str | None: ...
    async def put(self, transport: str, chat: str, ref_key: str, external_id: str) -> None: ...
    async def put_many(self, refs: Sequence[tuple[str, str, str, str]]) -> None:
        """put of several (transport, chat, ref_key, external_id); the last of a key wins."""
        ...

    async def find(self, transport: str, chat: str, external_id: str) -> str | None:
        """The ref_key of a message we sent, from the transport's id (a reply to a card)."""
        ...


class ExportRepository(Protocol):
    """Cases of a period and their authors for `otklik report`, read in chunks, never all
    at once. Both read the same cases: created in [period.start, period.end)."""

    def cases(self, period: Period, chunk: int = 1000) -> AsyncIterator[list[ExportCase]]:
        """By case id."""
        ...

    def authors(self, period: Period, chunk: int = 1000) -> AsyncIterator[list[ExportAuthor]]:
        """The authors of those cases' first mentions, by author id."""
        ...


class BlobRepository(Protocol):
    """Binary content the outbox sends (digest charts), addressed by its sha256."""

    async def put(self, content: bytes, mimetype: str, now: datetime) -> str:
        """Store the content unless already stored; its sha256 (hex), the key for get()."""
        ...

    async def get(self, sha256: str) -> bytes | None: ...
    async def prune(self, before: datetime) -> int:
        """Delete pictures stored before `before` that no undelivered outbox item refers to;
        how many were deleted."""
        ...


class DrillRunRepository(Protocol):
    """Crisis drill runs (bot/drills)."""

    async def add(self, run: DrillRun) -> DrillRun: ...
    async def get(self, run_id: int) -> DrillRun | None: ...
    async def running(self) -> list[DrillRun]: ...
    async def previous(self, run: DrillRun) -> DrillRun | None: ...
    async def injected(self, run_id: int, count: int) -> None: ...
    async def end(self, run: DrillRun) -> bool: ...
    async def cases_of(self, run_id: int) -> list[Case]: ...


@dataclass(frozen=True, slots=True)
class SlotScope:
    """One of a messenger's flood limits as a sliding window: at most `limit` sends in any
    `span_s` seconds under `key` (a chat, a group, the whole bot). `usable` is how many of
    them this send may count on: fewer than `limit` when some are kept for urgent messages."""

    key: str
    limit: int
    span_s: float
    usable: int

    def __post_init__(self) -> None:
        if not 0 < self.usable <= self.limit or not self.span_s > 0:
            raise ValueError(f"a slot scope needs 0 < usable <= limit and a span: {self}")


class SendSlotsUnavailable(Exception):
    """The shared record of sends could not be asked (the database is down or too slow): the
    send waits and asks again, it never goes out unlimited."""


class SendSlots(Protocol):
    """Slots for sends shared by every instance of the bot, so that together they keep a
    messenger's limits (store/send_slots.py on PostgreSQL; a single process needs none)."""

    async def reserve(self, scopes: Sequence[SlotScope]) -> float:
        """Counts one send in every scope, or in none: 0.0 when granted, otherwise the seconds
        until the fullest scope has room (ask again then). Raises SendSlotsUnavailable."""
        ...


class KeyValueRepository(Protocol):
    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RelatedCases:
    by_story: dict[str, int]
    by_thread: dict[str, int]  # a reply_to_url → the case of the thread under it
    by_author: dict[tuple[int, str], int]  # (author id, department) → case


@dataclass(frozen=True, slots=True)
class SimilarCandidate:
    """A stored mention of an open case sharing a text band with a new mention."""

    mention_id: int
    case_id: int
    department: str
    band: str
    text: str
    # The case's mentions when read: a mention similar to several cases joins the largest.
    case_size: int = 1


class LinkRepository(Protocol):
    """Related mentions into one case; one author across channels."""

    async def related_open_cases(
        self,
        *,
        story_ids: set[str],
        thread_urls: set[str],
        authors: set[tuple[int, str]],
        since: datetime,
    ) -> RelatedCases:
        """Open, non-drill cases that mentions with these links belong to, newest first: by
        the source's story id; by a reply under the same post (a mention whose reply_to_url
        or url is the URL); by the same author in a department since `since`."""
        ...

    async def similar_open(
        self, bands: set[tuple[str, str]], since: datetime, per_band: int
    ) -> list[SimilarCandidate]:
        """Mentions of open, non-drill cases received since `since` that have any of these
        (department, band) text bands, the newest `per_band` of each band; texts decrypted,
        for the caller to compare."""
        ...

    async def add_bands(
        self, rows: Sequence[tuple[int, str, str, datetime]], prune_before: datetime
    ) -> None:
        """Keep (mention id, department, band, received at); drop bands older than
        `prune_before`, which no look-up reads any more."""
        ...

    async def move_bands(self, case_id: int, department: str) -> None:
        """A rerouted case's mentions are looked up in its new department from now on."""
        ...

    async def authors_in_cases(
        self, case_ids: Sequence[int], author_ids: set[int]
    ) -> set[tuple[int, int]]:
        """(case, author) pairs among these where the author has a mention in the case."""
        ...

    async def negative_since(self, author_id: int, since: datetime) -> int: ...
    async def max_reach(self, author_id: int) -> int: ...
    async def authors_of(self, identities: list[tuple[str, str]]) -> list[int]: ...
    async def merge_authors(self, keep: int, gone: int) -> None: ...


class CrisisRepository(Protocol):
    """Crises and the sliding-window counts of negative mentions they are judged by."""

    async def window_counts(self, windows: Sequence[CountWindow]) -> list[WindowCounts]:
        """Negative mentions received in each window (drills left out), in input order."""
        ...

    async def clusters(
        self,
        since: datetime,
        trend: TrendWindows,
        *,
        scope: ThresholdScope = ...,
        key: str | None = ...,
        negative_only: bool = ...,
        limit: int = ...,
    ) -> list[ClusterCount]:
        """Cases that several mentions received in [since, trend.end) joined, in the scope
        (a department, a code, all), largest first, with people and trend counts (drill cases
        left out; negative mentions only unless told)."""
        ...

    async def open(self) -> list[Crisis]:
        """Open real crises, oldest first; drills' crises are not among them."""
        ...

    async def of_drill(self, run_id: int) -> Crisis | None: ...
    async def get(self, crisis_id: int) -> Crisis | None: ...
    async def add(self, crisis: Crisis) -> Crisis: ...
    async def save(self, crisis: Crisis) -> None: ...
    async def between(self, since: datetime, until: datetime) -> list[Crisis]:
        """Real crises open at any moment of [since, until), oldest first (for digests)."""
        ...

    async def checklist_events(
        self, crisis_ids: Sequence[int], since: datetime
    ) -> list[ChecklistTick]:
        """The checklist ticks and unticks of these crises (none older than `since`), in the
        order they were recorded (bot/crisis/checklist.py)."""
        ...


class TimerRepository(Protocol):
    """SLA timers. Pending until fired; keys are unique, so planning twice adds nothing."""

    async def pending_for(self, case_ids: Sequence[int]) -> dict[int, list[Timer]]: ...
    async def cases_of(self, case_ids: Sequence[int]) -> dict[int, Case]:
        """Cases without their drafts (saving one leaves its stored drafts as they are)."""
        ...

    async def add_many(self, timers: Sequence[Timer]) -> int:
        """Insert timers whose key is new; returns how many were inserted."""
        ...

    async def delete(self, timer_ids: Sequence[int]) -> None:
        """Drop pending timers (fired ones stay: their keys keep them from coming back)."""
        ...

    async def due(self, now: datetime, limit: int) -> list[Timer]:
        """Pending timers due by `now`, earliest first; on a store several instances share,
        held by this transaction and skipped by the others' until it ends."""
        ...

    async def mark_fired(self, timer_ids: Sequence[int], at: datetime) -> None: ...
    async def next_due(self) -> datetime | None:
        """The earliest pending due moment."""
        ...


@dataclass(frozen=True, slots=True)
class ErasureCounts:
    """What one erasure removed or rewrote: the audit stub's payload (no personal data)."""

    authors: int = 0  # cards emptied
    identities: int = 0  # deleted
    mentions: int = 0
    cases: int = 0  # case fields that held personal data
    drafts: int = 0
    outbox: int = 0  # items whose payload held personal data
    blobs: int = 0
    events: int = 0  # earlier events whose personal part was redacted

    def as_payload(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class ErasurePlan(Protocol):
    """What an erasure will do, found before its audit stub is written (the stub's id is
    what the redacted events point to, so it must come first)."""

    @property
    def counts(self) -> ErasureCounts: ...
    @property
    def case_ids(self) -> Sequence[int]:
        """Cases whose cards showed the erased data: they are redrawn."""
        ...

    @property
    def empty(self) -> bool: ...


class ErasureRepository(Protocol):
    """Erasing personal data everywhere it is stored (store/repos/erasure.py)."""

    async def plan_author(self, author_id: int) -> ErasurePlan: ...
    async def plan_retention(self, cutoff: datetime, limit: int) -> ErasurePlan:
        """The next `limit` closed cases closed before `cutoff`, and the mentions without a
        case received before it, that retention has not erased yet."""
        ...

    async def apply(self, plan: ErasurePlan) -> None:
        """Erase what the plan found, but for the events."""
        ...

    async def redact_events(self, plan: ErasurePlan, by_event: int) -> None:
        """Redact the events the plan found, on the order of event `by_event` (an erasure
        kind, recorded after `apply`: the audit chain stays locked only from there to the
        commit)."""
        ...

    async def reclaim(self) -> None:
        """After the commit: let the database forget the old values too (SQLite: checkpoint
        the write-ahead log; PostgreSQL: vacuum the tables touched)."""
        ...


class SeenChatRepository(Protocol):
    async def saw(self, chat: SeenChat) -> None:
        """Insert or update: last_seen moves on, topics and title merge in."""
        ...

    async def all(self) -> list[SeenChat]: ...


class UnitOfWork(Protocol):
    # Read-only members: an implementation may hold its own repository classes (protocol
    # attributes would be invariant), and no caller swaps a repository out.
    @property
    def cases(self) -> CaseRepository: ...
    @property
    def mentions(self) -> MentionRepository: ...
    @property
    def authors(self) -> AuthorRepository: ...
    @property
    def events(self) -> EventRepository: ...
    @property
    def outbox(self) -> OutboxRepository: ...
    @property
    def refs(self) -> MessageRefRepository: ...
    @property
    def kv(self) -> KeyValueRepository: ...
    @property
    def blobs(self) -> BlobRepository: ...
    @property
    def export(self) -> ExportRepository: ...
    @property
    def links(self) -> LinkRepository: ...
    @property
    def reports(self) -> ReportRepository: ...  # aggregate reads (bot/reports/figures.py)
    @property
    def crises(self) -> CrisisRepository: ...
    @property
    def timers(self) -> TimerRepository: ...
    @property
    def drills(self) -> DrillRunRepository: ...
    @property
    def erasure(self) -> ErasureRepository: ...
    @property
    def chats(self) -> SeenChatRepository: ...

    async def __aenter__(self) -> UnitOfWork: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Rolls back whatever was not committed."""
        ...

    async def commit(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]
