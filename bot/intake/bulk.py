"""Many mentions at once: imports and API batches.

The single path (CaseService.intake) costs a transaction and about ten statements per mention.
Here a batch is classified and routed in memory (history is not routed: it opens no case), its
authors are resolved and written with a few statements, its mentions go in with one
multi-row INSERT, and the cases they open or join with a few more (bot/cases/grouping.py, the
one place that groups related mentions for both paths), all in one transaction.

Routing needs the author's labels (rules on author_labels, official authors): the batch is
routed before the transaction, and again inside it for the mentions of authors whose stored
cards have labels, as the single path routes with the card it reads.

The result is the one the single path gives: one author card per person (identities linked by
e-mail or phone merge cards), counts and last-seen moved on, labels from the playbook's
thresholds, (source, external_id) stored once.

single_mentions puts single mentions that arrive at the same moment (the HTTP API's one-mention
requests, a web form in a storm) through here together, each caller answered on its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from bot.cases.authors import merge_cards
from bot.cases.grouping import CaseOpening, IntakeResult
from bot.cases.service import CaseService
from bot.clock import Clock
from bot.group_commit import GroupCommit
from bot.intake.intake import MentionIntake
from bot.model import (
    MAX_MENTION_TEXT,
    SYSTEM_ACTOR,
    Author,
    AuthorLabel,
    Case,
    Identity,
    Mention,
    Sentiment,
)
from bot.ports import (
    AuthorStanding,
    AuthorTally,
    ConcurrentUpdate,
    Offload,
    UnitOfWork,
    UnitOfWorkFactory,
    in_thread,
)
from bot.settings.routing_rules import AuthorLabelsConfig

# A batch that lost a race to another writer is run again from its reads; this many times.
ATTEMPTS = 5

_DUPLICATE = IntakeResult(None, None, duplicate=True)
_AUTOMATIC = frozenset({AuthorLabel.SYSTEMATIC_CRITIC, AuthorLabel.OPINION_LEADER})


@dataclass(frozen=True, slots=True)
class BulkResult:
    # One per mention, in order; duplicates carry no mention. History (open_cases=False)
    # carries the mentions as given, without the ids they were stored under.
    results: list[IntakeResult]
    unopened: int = 0  # negative mentions stored as history, without a case

    @property
    def stored(self) -> int:
        return sum(1 for r in self.results if not r.duplicate)

    @property
    def duplicates(self) -> int:
        return sum(1 for r in self.results if r.duplicate)

    @property
    def cases(self) -> int:
        return sum(1 for r in self.results if r.case is not None)


def automatic_labels(
    standing: AuthorStanding, rules: AuthorLabelsConfig, added: Sequence[int] = (0, 0, 0)
) -> frozenset[AuthorLabel]:
    """The labels an author card gets from the thresholds, as bot/cases/authors.py gives them;
    `added` are the negative, neutral and positive mentions not yet in the counts."""
    labels = set(standing.labels) - _AUTOMATIC
    if standing.negative_since >= rules.critic_negative_count:
        labels.add(AuthorLabel.SYSTEMATIC_CRITIC)
    positive = standing.positive_count + added[2]
    total = standing.negative_count + standing.neutral_count + standing.positive_count + sum(added)
    if (
        total
        and positive / total >= rules.leader_positive_share
        and standing.max_reach >= rules.leader_min_reach
    ):
        labels.add(AuthorLabel.OPINION_LEADER)
    return frozenset(labels)


class BulkIntake:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        intake: MentionIntake,
        cases: CaseService,
        clock: Clock,
        labels: AuthorLabelsConfig,
        observe: Callable[[Mention, IntakeResult], None] | None = None,
        offload: Offload = in_thread,
    ) -> None:
        self._offload = offload
        self._uow = uow_factory
        self._intake = intake
        self._cases = cases
        self._clock = clock
        self._labels = labels
        self._observe = observe  # metrics, as MentionIntake's

    async def receive_many(
        self, mentions: Sequence[Mention], *, open_cases: bool = True
    ) -> BulkResult:
        """Store a batch. With `open_cases` (live intake) each mention is routed and those
        that need an answer open or join cases, as MentionIntake.receive does. Without it
        the batch is history: stored and counted on the authors' cards, never routed (routing
        costs more than storing; it would only add the rules' codes), no case, no card."""
        # Classifying and routing is pure CPU (~25 ms for a 20,000-character mention): off the
        # event loop, or a big batch stalls /healthz, the outbox and the scheduler for seconds.
        judged = await self._offload(partial(self._judge, mentions, open_cases))
        results, prepared, planned = judged.results, judged.prepared, judged.planned
        stored, cases = await self._store(planned, open_cases)
        for entry in planned:
            mention = entry.mention
            key = (mention.source, mention.external_id)
            got = stored.get(key)
            if got is None:
                results[entry.index] = _DUPLICATE
            else:  # history is only counted: its mentions are not copied to carry their ids
                results[entry.index] = IntakeResult(
                    got.mention() if open_cases else mention, cases.get(key)
                )

        final = [r if r is not None else _DUPLICATE for r in results]
        if self._observe is not None:
            for mention, result in zip(prepared, final, strict=True):
                self._observe(mention, result)
        return BulkResult(final, judged.unopened)

    def _judge(self, mentions: Sequence[Mention], open_cases: bool) -> _Judged:
        """Classify and route a batch (no I/O: it runs in the injected pool)."""
        judged = _Judged([None] * len(mentions))
        seen: set[tuple[str, str]] = set()
        for i, mention in enumerate(mentions):
            mention = self._intake.prepare(mention)  # the classifier, if the source gave none
            judged.prepared.append(mention)
            key = (mention.source, mention.external_id)
            if key in seen:
                judged.results[i] = _DUPLICATE
                continue
            seen.add(key)
            if not open_cases:
                mention = self._intake.official(mention)  # official sources and accounts
                judged.unopened += mention.sentiment is Sentiment.NEGATIVE
                judged.planned.append(_Planned(i, mention, mention.codes, None))
                continue
            # Routed here, out of the transaction; again inside it for authors with labels.
            mention, opening = self._intake.plan(mention)
            judged.planned.append(_Planned(i, mention, mention.codes, opening))
        # Similar-text features of those that open or join cases, here in the thread.
        self._cases.prepare_grouping(
            [p.mention.text for p in judged.planned if p.opening and not p.opening.drill]
        )
        return judged

    async def _store(
        self, planned: Sequence[_Planned], open_cases: bool
    ) -> tuple[dict[tuple[str, str], _Stored], dict[tuple[str, str], Case]]:
        """Store the batch and open or join the cases it needs, in one transaction."""
        if not planned:
            return {}, {}
        for attempt in range(1, ATTEMPTS + 1):
            now = self._clock.now()
            try:
                async with self._uow() as uow:
                    stored, final = await self._store_once(uow, planned, now, open_cases)
                    pairs = [
                        (stored[key].mention(), entry.opening)
                        for entry in final
                        if entry.opening is not None
                        and (key := (entry.mention.source, entry.mention.external_id)) in stored
                    ]
                    opened = await self._cases.open_many(uow, pairs, now)
                    await uow.commit()
                break
            except ConcurrentUpdate:
                if attempt == ATTEMPTS:
                    raise
        if opened:
            self._cases.wake_outbox()
        joined = [(m, c) for (m, _), c in zip(pairs, opened, strict=True)]
        await self._cases.resume_for_authors(joined)
        return stored, {(m.source, m.external_id): c for m, c in joined}

    async def _store_once(
        self, uow: UnitOfWork, planned: Sequence[_Planned], now: datetime, open_cases: bool
    ) -> tuple[dict[tuple[str, str], _Stored], list[_Planned]]:
        await uow.mentions.reserve()
        by_source: dict[str, list[str]] = defaultdict(list)
        for entry in planned:
            by_source[entry.mention.source].append(entry.mention.external_id)
        known = {
            (source, external_id)
            for source, ids in by_source.items()
            for external_id in await uow.mentions.known(source, ids)
        }
        fresh = [e for e in planned if (e.mention.source, e.mention.external_id) not in known]
        if not fresh:
            return {}, []
        people = await _People.resolve(uow, [e.mention for e in fresh], now)
        fresh = await self._replan(uow, people, fresh, open_cases)
        people.tally([e.mention for e in fresh])
        created = await uow.authors.add_many(people.new_authors(now, self._labels))
        author_ids = people.author_ids(created)
        # Copies only where something changes: an import stores mentions as they came.
        rows = [
            e.mention
            if e.codes == e.mention.codes and len(e.mention.text) <= MAX_MENTION_TEXT
            else replace(e.mention, codes=e.codes, text=e.mention.text[:MAX_MENTION_TEXT])
            for e in fresh
        ]
        ids = await uow.mentions.add_many(rows, author_ids)
        standing = await uow.authors.standing(people.existing(), now - self._labels.critic_window)
        await uow.authors.tally_many(people.tallies(standing, now, self._labels))
        stored = {
            (m.source, m.external_id): _Stored(m, new_id, author_id)
            for m, new_id, author_id in zip(rows, ids, author_ids, strict=True)
        }
        return stored, fresh

    async def _replan(
        self, uow: UnitOfWork, people: _People, fresh: list[_Planned], open_cases: bool
    ) -> list[_Planned]:
        """Decide again, with their labels, the mentions of authors whose cards have labels
        (rules on author_labels, official authors). Few authors have any: the rest keep the
        decision made out of the transaction."""
        owners = people.stored_authors()
        # Labels only: a card's name would be decrypted for nothing.
        labels_of = await uow.authors.labels_of([a for a in owners if a is not None])
        if not any(labels_of.values()):
            return fresh
        replanned = []
        for entry, owner in zip(fresh, owners, strict=True):
            labels = labels_of.get(owner) if owner is not None else None
            if not labels:
                replanned.append(entry)
                continue
            if open_cases:
                mention, opening = self._intake.plan(entry.mention, labels)
                replanned.append(_Planned(entry.index, mention, mention.codes, opening))
            else:  # history opens no case: only official information changes
                mention = self._intake.official(entry.mention, labels)
                replanned.append(_Planned(entry.index, mention, entry.codes, None))
        return replanned


# Single mentions that arrive within this long of each other are stored in one transaction;
# so are those that arrive while the group before them commits. A few ms: a lone mention
# hardly waits, and a burst of web-form posts shares one transaction instead of queueing.
GROUP_WINDOW_S = 0.003
GROUP_LIMIT = 500  # mentions per group; more wait for the next one


def single_mentions(
    bulk: BulkIntake, window_s: float = GROUP_WINDOW_S, limit: int = GROUP_LIMIT
) -> GroupCommit[Mention, IntakeResult]:
    """Group commit of single mentions (the HTTP API's one-mention requests).

    Each single mention stored on its own costs a transaction of about ten statements, and on
    SQLite one transaction at a time: in a storm, requests queued for minutes behind each
    other. Here the mentions that arrive together go through BulkIntake as one batch, and each
    caller gets its own result (accepted with its case, or a duplicate, also of another
    mention of the same group) only once that transaction has committed; GroupFailed when
    the group failed as a whole (nothing of it stored)."""

    async def store(mentions: list[Mention]) -> Sequence[IntakeResult]:
        return (await bulk.receive_many(mentions)).results

    return GroupCommit(store, window_s=window_s, limit=limit, what="mentions")


@dataclass(frozen=True, slots=True)
class _Planned:
    """A mention of a batch as intake decided it: codes to store, the case it needs."""

    index: int  # in the batch
    mention: Mention
    codes: tuple[str, ...]
    opening: CaseOpening | None


@dataclass(slots=True)
class _Judged:
    """A batch as classified and routed, before it is stored."""

    results: list[IntakeResult | None]  # duplicates within the batch are known already
    prepared: list[Mention] = field(default_factory=list)  # classified, one per mention
    planned: list[_Planned] = field(default_factory=list)
    unopened: int = 0


@dataclass(frozen=True, slots=True)
class _Stored:
    row: Mention  # as written, without its ids
    id: int
    author_id: int

    def mention(self) -> Mention:
        return replace(self.row, id=self.id, author_id=self.author_id)


_SENTIMENT_INDEX = {
    Sentiment.NEGATIVE: 0,
    Sentiment.NEUTRAL: 1,
    Sentiment.POSITIVE: 2,
    Sentiment.UNCERTAIN: 1,  # counted as neutral until a person decides
}


@dataclass
class _Person:
    """The mentions of one batch that belong to one author card."""

    author_id: int | None  # stored author, after merges; None: a new card, until written
    stored: bool = False  # the card existed before this batch
    identities: dict[tuple[str, str], Identity] = field(default_factory=dict)
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])  # negative, neutral, positive
    negative_recent: int = 0
    max_reach: int = 0
    first: Mention | None = None


class _People:
    """Who is behind each mention of a batch: identities that the source links (e-mail,
    phone) and identities already on a card join into one person; stored cards that turn out
    to be one person are merged as bot/cases/authors.py does (the oldest card stays)."""

    def __init__(self, mentions: Sequence[Mention], owned: set[tuple[str, str]]) -> None:
        self._mentions = mentions
        self._owned = owned
        self._persons: dict[Hashable, _Person] = {}
        self._roots: list[Hashable] = []  # the person of each mention

    @classmethod
    async def resolve(cls, uow: UnitOfWork, mentions: Sequence[Mention], now: datetime) -> _People:
        keys = {(i.channel, i.external_id) for m in mentions for i in (m.author, *m.linked)}
        owners = await uow.authors.owners(list(keys))
        people = cls(mentions, set(owners))
        if any(m.linked for m in mentions):
            await people._join(uow, owners, now)
        else:
            # One identity per mention: its card, or a new card per identity. No merges.
            for m in mentions:
                key = (m.author.channel, m.author.external_id)
                owner = owners.get(key)
                if owner is None:
                    people._roots.append(key)
                else:
                    people._roots.append(owner)
                    if owner not in people._persons:
                        people._persons[owner] = _Person(owner, stored=True)
        return people

    async def _join(
        self, uow: UnitOfWork, owners: dict[tuple[str, str], int], now: datetime
    ) -> None:
        """Union-find over identities and stored cards (int nodes)."""
        parent: dict[Hashable, Hashable] = {}

        def find(node: Hashable) -> Hashable:
            up = parent.setdefault(node, node)
            while up != node:
                higher = parent.setdefault(up, up)
                parent[node] = higher  # path halving
                node, up = up, higher
            return node

        def union(a: Hashable, b: Hashable) -> None:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[rb] = ra

        for m in self._mentions:
            first = (m.author.channel, m.author.external_id)
            for identity in m.linked:
                union(first, (identity.channel, identity.external_id))
        for key, author_id in owners.items():
            union(key, author_id)
        cards: dict[Hashable, set[int]] = defaultdict(set)
        for key, author_id in owners.items():
            cards[find(key)].add(author_id)
        for root, ids in cards.items():
            keep, *gone = sorted(ids)
            for other in gone:
                await merge_cards(uow, keep, other, SYSTEM_ACTOR, now, "linked identities")
            self._persons[root] = _Person(keep, stored=True)
        self._roots = [find((m.author.channel, m.author.external_id)) for m in self._mentions]

    def stored_authors(self) -> list[int | None]:
        """The stored card of each mention's author, in order; None: a new card."""
        persons = self._persons
        return [
            person.author_id if (person := persons.get(root)) is not None else None
            for root in self._roots
        ]

    def tally(self, mentions: Sequence[Mention]) -> None:
        """Count the mentions (as resolved, in the same order, as finally decided)."""
        self._mentions = mentions
        persons = self._persons
        for mention, root in zip(self._mentions, self._roots, strict=True):
            person = persons.get(root)
            if person is None:
                person = persons[root] = _Person(None)
            if person.first is None:
                person.first = mention
            identities = person.identities
            author = mention.author
            if (author.channel, author.external_id) not in identities:
                identities[author.channel, author.external_id] = author
            for identity in mention.linked:
                identities.setdefault((identity.channel, identity.external_id), identity)
            person.counts[_SENTIMENT_INDEX[mention.sentiment or Sentiment.NEUTRAL]] += 1
            if mention.sentiment is Sentiment.NEGATIVE:
                # Received now: within the critic window, as the single path counts it.
                person.negative_recent += 1
            if mention.reach > person.max_reach:
                person.max_reach = mention.reach

    def _new(self) -> list[_Person]:
        return [p for p in self._persons.values() if not p.stored]

    def new_authors(self, now: datetime, rules: AuthorLabelsConfig) -> list[Author]:
        authors = []
        for person in self._new():
            assert person.first is not None
            name = person.first.author
            negative, neutral, positive = person.counts
            standing = AuthorStanding(
                frozenset(), negative, neutral, positive, person.negative_recent, person.max_reach
            )
            authors.append(
                Author(
                    id=None,
                    display_name=name.display_name or name.external_id,
                    identities=tuple(person.identities.values()),
                    labels=automatic_labels(standing, rules),
                    negative_count=negative,
                    neutral_count=neutral,
                    positive_count=positive,
                    first_seen_at=now,
                    last_seen_at=now,
                )
            )
        return authors

    def author_ids(self, created: Sequence[Author]) -> list[int]:
        """The author id of each mention, in order, once new authors are stored."""
        for person, author in zip(self._new(), created, strict=True):
            person.author_id = author.id
        ids = []
        for root in self._roots:
            author_id = self._persons[root].author_id
            assert author_id is not None
            ids.append(author_id)
        return ids

    def existing(self) -> list[int]:
        """Stored authors the batch adds to (new ones were written complete)."""
        return [p.author_id for p in self._persons.values() if p.stored and p.author_id]

    def tallies(
        self, standing: dict[int, AuthorStanding], now: datetime, rules: AuthorLabelsConfig
    ) -> list[AuthorTally]:
        tallies = []
        for person in self._persons.values():
            if not person.stored or person.author_id is None:
                continue
            negative, neutral, positive = person.counts
            before = standing[person.author_id]
            labels = automatic_labels(before, rules, person.counts)
            tallies.append(
                AuthorTally(
                    person.author_id,
                    negative,
                    neutral,
                    positive,
                    seen_at=now,
                    identities=tuple(
                        i for key, i in person.identities.items() if key not in self._owned
                    ),
                    labels=labels if labels != before.labels else None,
                )
            )
        return tallies
