"""Grouping: which mentions open a case and which join one already open.

A mention joins the open case of the same story, then of the same thread, then of the same
author about the same department lately (the playbook's `grouping`); otherwise it opens its
own. The single path (CaseService.intake) and batches (bot/intake/bulk.py) both open cases
here, inside the caller's transaction, so they group alike.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.cases import publication, similarity
from bot.cases.cards import Cards
from bot.messages.outbox import OutboxItem
from bot.model import SYSTEM_ACTOR, Case, CaseState, Event, EventKind, Mention, Priority
from bot.ports import ConcurrentUpdate, RelatedCases, UnitOfWork
from bot.settings.routing_rules import GroupingConfig

# Told of every case a transaction opened or grew (the SLA engine arms its timers).
CasesChanged = Callable[[UnitOfWork, Sequence[Case], datetime], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CaseOpening:
    """What the router decided for a mention that needs an answer."""

    department: str
    priority: Priority = Priority.NORMAL
    sla_policy: str | None = None
    first_touch_due_at: datetime | None = None
    answer_due_at: datetime | None = None
    resolution_due_at: datetime | None = None
    reaction_due_at: datetime | None = None  # only when the policy sets a reaction deadline
    codes: tuple[str, ...] = ()
    drill: bool = False
    drill_run_id: int | None = None
    route_confidence: float | None = None  # the learned router chose the department


@dataclass(frozen=True, slots=True)
class IntakeResult:
    mention: Mention | None  # None when it was a duplicate
    case: Case | None  # the case opened for it, if any
    duplicate: bool = False


class CaseOpener:
    """Opens cases for stored mentions, or joins them to related open cases, with their cards
    and events."""

    def __init__(self, rules: GroupingConfig, cards: Cards, cases_changed: CasesChanged) -> None:
        self._rules = rules
        self._cards = cards
        self._cases_changed = cases_changed

    def prepare(self, texts: Sequence[str]) -> None:
        """Compute what grouping will compare of these texts, off the event loop (the caller
        runs it in a worker thread); open_many then finds it ready."""
        if self._rules.similar_within is not None:
            for text in texts:
                similarity.signature(text)

    async def open_many(
        self, uow: UnitOfWork, openings: Sequence[tuple[Mention, CaseOpening]], now: datetime
    ) -> list[Case]:
        """Open a case for each stored mention, or join it to the open case it belongs to, in
        order and inside the caller's transaction: the one place that groups related mentions
        (single intake and batches). Returns each mention's case as the batch leaves it."""
        since = now - self._rules.same_author_within
        related = await uow.links.related_open_cases(
            story_ids={m.story_id for m, _ in openings if m.story_id},
            thread_urls={m.reply_to_url for m, _ in openings if m.reply_to_url},
            authors={(m.author_id, o.department) for m, o in openings if m.author_id},
            since=since,
        )
        groups = _Grouping(related)
        alike = await _Similar.load(uow, self._rules, openings, now)
        fresh: list[_NewCase] = []
        targets: list[_NewCase | int] = []
        by_text: list[bool] = []
        for i, (mention, opening) in enumerate(openings):
            # A drill case gathers nothing and joins nothing: each drill mention is a case.
            target = None
            textual = False
            if not opening.drill:
                target = groups.find(mention, opening.department)
                if target is None:
                    target = alike.find(i, opening.department)
                    textual = target is not None
            if target is None:
                target = _NewCase(mention, opening)
                fresh.append(target)
            elif isinstance(target, _NewCase):
                target.joined.append(mention)
                target.similar += textual
            targets.append(target)
            by_text.append(textual)
            if isinstance(target, int):
                groups.remember(mention, opening.department, target)
                alike.remember(i, opening.department, target)
            elif not target.opening.drill:  # as in the store, drill cases gather nothing
                groups.remember(mention, target.opening.department, target)
                alike.remember(i, target.opening.department, target)

        joined_ids = sorted({t for t in targets if isinstance(t, int)})
        stored = await uow.cases.lock_for_joining(joined_ids)
        if any(i not in stored or not stored[i].state.is_open for i in joined_ids):
            # Closed (or gone) since related_open_cases read it: decide again (the callers
            # retry on ConcurrentUpdate), so no mention joins a closed case.
            raise ConcurrentUpdate("a related case closed while mentions joined it")
        known = await uow.links.authors_in_cases(
            joined_ids,
            {
                m.author_id
                for (m, _), t in zip(openings, targets, strict=True)
                if isinstance(t, int) and m.author_id is not None
            },
        )
        grown: dict[int, Case] = {}
        # A published case's answer is owed to whoever joins it (bot/cases/publication.py).
        answered: list[tuple[int, Mention]] = []
        for (mention, _), target, textual in zip(openings, targets, by_text, strict=True):
            if isinstance(target, int):
                case = grown.get(target, stored[target])
                # Each person is answered once: a second comment, letter or edit of someone
                # the case already holds is covered by the answer they get.
                new_person = (target, mention.author_id) not in known
                case = _grow(case, mention, textual, known)
                if publication.answers_joiners(case) and new_person:
                    answerable = self._cards.publishable(mention)
                    case = publication.joined(case, answerable)
                    if answerable:
                        answered.append((target, mention))
                grown[target] = case
        grown = {i: replace(c, version=stored[i].version + 1) for i, c in grown.items()}
        await uow.cases.record_joined(list(grown.values()))
        opened = await uow.cases.add_many([n.case(now) for n in fresh])
        for new, case in zip(fresh, opened, strict=True):
            new.stored = case

        attach: list[tuple[int, int]] = []
        events: list[Event] = []
        result: list[Case] = []
        for (mention, _), target in zip(openings, targets, strict=True):
            case_or_none = target.stored if isinstance(target, _NewCase) else grown[target]
            assert case_or_none is not None
            case = case_or_none
            assert case.id is not None and mention.id is not None
            attach.append((mention.id, case.id))
            result.append(case)
            if isinstance(target, _NewCase) and target.mention is mention:
                events.append(_created(case, mention, now))
            else:
                events.append(_mention_added(case, mention, now))
        await uow.mentions.attach_many(attach)
        await uow.events.append(events)
        await alike.store(uow, [(m, c) for (m, _), c in zip(openings, result, strict=True)], now)

        # Cards: a new case is posted once with the batch's count; a grown one edited once.
        firsts = await uow.mentions.first_of_cases(list(grown))
        firsts.update({n.stored.id: n.mention for n in fresh if n.stored and n.stored.id})
        authors = await uow.authors.cards_of(
            sorted({m.author_id for m in firsts.values() if m.author_id})
        )
        items: list[OutboxItem] = []
        for case in [*(n.stored for n in fresh if n.stored), *grown.values()]:
            assert case.id is not None
            first = firsts[case.id]
            author = authors.get(first.author_id or 0)
            if case.id in grown:
                items += self._cards.to_edit(case, first, author, now)
            else:
                items += self._cards.to_post(case, first, author, now)
        for case_id, mention in answered:
            reply = self._cards.joiner_reply(grown[case_id], firsts[case_id], mention, now)
            items += [reply] if reply is not None else []
        await uow.outbox.enqueue_many(items)  # a few statements, not one per card
        await self._cases_changed(uow, [*opened, *grown.values()], now)
        final = {c.id: c for c in [*opened, *grown.values()]}
        return [final[c.id] for c in result]


def _grow(case: Case, mention: Mention, textual: bool, known: set[tuple[int, int]]) -> Case:
    """The case with one more mention: its count, its people, its spread."""
    assert case.id is not None
    people = case.people_count
    if mention.author_id is not None and (case.id, mention.author_id) not in known:
        known.add((case.id, mention.author_id))
        people += 1
    last = case.last_mention_at
    return replace(
        case,
        mention_count=case.mention_count + 1,
        similar_count=case.similar_count + textual,
        people_count=people,
        last_mention_at=mention.received_at if last is None else max(last, mention.received_at),
        sources=tuple(dict.fromkeys((*case.sources, mention.source))),
    )


def _created(case: Case, mention: Mention, now: datetime) -> Event:
    assert case.id is not None
    payload = {
        "mention_id": mention.id,
        "department": case.department,
        "priority": case.priority.value,
        "drill": case.drill,
    }
    return Event(case.id, now, SYSTEM_ACTOR, EventKind.CREATED, None, case.state, payload)


def _mention_added(case: Case, mention: Mention, now: datetime) -> Event:
    assert case.id is not None
    payload = {"mention_id": mention.id, "source": mention.source}
    return Event(
        case.id, now, SYSTEM_ACTOR, EventKind.MENTION_ADDED, case.state, case.state, payload
    )


_ORDER = itertools.count()


@dataclass(eq=False, slots=True)
class _NewCase:
    """A case a batch opens: its first mention, and the batch's mentions that join it."""

    mention: Mention
    opening: CaseOpening
    joined: list[Mention] = field(default_factory=list)
    similar: int = 0  # of the joined, how many by their text
    stored: Case | None = None
    order: int = field(default_factory=lambda: next(_ORDER))  # later opened, newer

    def case(self, now: datetime) -> Case:
        opening = self.opening
        everyone = [self.mention, *self.joined]
        return Case(
            id=None,
            department=opening.department,
            state=CaseState.NEW,
            priority=opening.priority,
            created_at=now,
            source=self.mention.source,
            drill=opening.drill,
            drill_run_id=opening.drill_run_id,
            sla_policy=opening.sla_policy,
            reaction_due_at=opening.reaction_due_at,
            first_touch_due_at=opening.first_touch_due_at,
            answer_due_at=opening.answer_due_at,
            resolution_due_at=opening.resolution_due_at,
            codes=tuple(dict.fromkeys((*opening.codes, *self.mention.codes))),
            mention_count=1 + len(self.joined),
            similar_count=self.similar,
            people_count=len({m.author_id or -i for i, m in enumerate(everyone)}),
            last_mention_at=max(m.received_at for m in everyone),
            sources=tuple(dict.fromkeys(m.source for m in everyone)),
            route_confidence=opening.route_confidence,
        )


class _Grouping:
    """Which case a mention joins: stored open cases first found by the store, then the cases
    this batch opens or joins (newer, so they win, as the single path's newest-first look-up
    would choose them). Kinds of link in the single path's order: story, thread, author."""

    def __init__(self, stored: RelatedCases) -> None:
        self._story: dict[str, _NewCase | int] = dict(stored.by_story)
        self._thread: dict[str, _NewCase | int] = dict(stored.by_thread)
        self._author: dict[tuple[int, str], _NewCase | int] = dict(stored.by_author)

    def find(self, mention: Mention, department: str) -> _NewCase | int | None:
        if mention.story_id and mention.story_id in self._story:
            return self._story[mention.story_id]
        if mention.reply_to_url and mention.reply_to_url in self._thread:
            return self._thread[mention.reply_to_url]
        if mention.author_id:
            return self._author.get((mention.author_id, department))
        return None

    def remember(self, mention: Mention, department: str, case: _NewCase | int) -> None:
        if mention.story_id:
            self._story[mention.story_id] = case
        for url in (mention.reply_to_url, mention.url):
            if url:
                self._thread[url] = case
        if mention.author_id:
            self._author[mention.author_id, department] = case


class _Similar:
    """Which case a mention joins by its text: of the cases holding a mention whose text is
    similar enough (bot/cases/similarity.py), in the same department, within the window, the
    largest, then the newest. Largest, because a storm opens several cases of one story at
    once (wordings that each meet only some others); joining the newest fed them all, each
    with its own card and count edits, where joining the largest lets one grow and the rest
    stop. Stored mentions are found by their text bands; the batch's own by the same bands
    here."""

    def __init__(
        self,
        rules: GroupingConfig,
        found: list[similarity.Features | None],
        bands: list[list[str]],
    ) -> None:
        self._rules = rules
        self._found = found
        self._bands = bands
        # (department, band) → the newest few (features, case), newest last: in a storm a
        # band is shared by thousands, and comparing with the newest few finds their case.
        self._index: dict[tuple[str, str], deque[tuple[similarity.Features, _NewCase | int]]] = {}
        self._stored_sizes: dict[int, int] = {}  # stored cases' mentions, this batch's too

    @classmethod
    async def load(
        cls,
        uow: UnitOfWork,
        rules: GroupingConfig,
        openings: Sequence[tuple[Mention, CaseOpening]],
        now: datetime,
    ) -> _Similar:
        if rules.similar_within is None:
            return cls(rules, [None] * len(openings), [[] for _ in openings])
        found: list[similarity.Features | None] = []
        bands: list[list[str]] = []
        for mention, opening in openings:
            if opening.drill:
                found.append(None)
                bands.append([])
            else:
                mine, its_bands = similarity.signature(mention.text)
                found.append(mine)
                bands.append(list(its_bands))
        alike = cls(rules, found, bands)
        wanted = {(o.department, b) for (_, o), bs in zip(openings, bands, strict=True) for b in bs}
        stored = await uow.links.similar_open(
            wanted, now - rules.similar_within, similarity.PER_BAND
        )
        texts: dict[int, similarity.Features] = {}
        for candidate in sorted(stored, key=lambda c: c.case_id):  # newest case last
            theirs = texts.get(candidate.mention_id)
            if theirs is None:
                theirs = texts[candidate.mention_id] = similarity.signature(candidate.text)[0]
            alike._add((candidate.department, candidate.band), theirs, candidate.case_id)
            alike._stored_sizes[candidate.case_id] = candidate.case_size
        return alike

    def find(self, index: int, department: str) -> _NewCase | int | None:
        one = self._found[index]
        if one is None:
            return None
        threshold = self._rules.similar_threshold
        best: tuple[tuple[int, int], _NewCase | int] | None = None
        for band in self._bands[index]:
            for other, case in reversed(self._index.get((department, band), ())):
                if similarity.similarity(one, other) >= threshold:
                    rank = (self._size(case), _rank(case))
                    if best is None or rank > best[0]:
                        best = (rank, case)
                    break  # the newest similar one of this band
        return None if best is None else best[1]

    def _size(self, case: _NewCase | int) -> int:
        if isinstance(case, _NewCase):
            return 1 + len(case.joined)
        return self._stored_sizes.get(case, 1)

    def remember(self, index: int, department: str, case: _NewCase | int) -> None:
        if isinstance(case, int):  # one more mention joined it (a new case counts its own)
            self._stored_sizes[case] = self._stored_sizes.get(case, 1) + 1
        one = self._found[index]
        if one is None:
            return
        for band in self._bands[index]:
            self._add((department, band), one, case)

    def _add(self, key: tuple[str, str], one: similarity.Features, case: _NewCase | int) -> None:
        found = self._index.get(key)
        if found is None:
            found = self._index[key] = deque(maxlen=similarity.PER_BAND)
        found.append((one, case))

    async def store(
        self, uow: UnitOfWork, placed: Sequence[tuple[Mention, Case]], now: datetime
    ) -> None:
        if self._rules.similar_within is None:
            return
        rows: list[tuple[int, str, str, datetime]] = []
        for (mention, case), bands in zip(placed, self._bands, strict=True):
            if case.drill or mention.id is None:
                continue
            rows += [(mention.id, case.department, band, mention.received_at) for band in bands]
        await uow.links.add_bands(rows, now - self._rules.similar_within)


def _rank(case: _NewCase | int) -> int:
    """The batch's own cases are newer than stored ones; among stored, the higher id."""
    return (1 << 62) + case.order if isinstance(case, _NewCase) else case
