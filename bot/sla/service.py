"""The SLA clock that acts: fires due timers (reminders, breaches, escalation notices,
follow-ups) and writes what they cause in the same transaction as marking them fired.

A timer fires exactly once: it is picked, marked fired, and its messages, events, card edits
and the chain's next timer are committed together; a crash before the commit leaves it
pending for the next run, after it leaves nothing to repeat. Timers missed while the bot was
down are simply due at start. The scheduler glue (handlers/jobs/sla.py) calls `fire_due` when
`next_due` comes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from bot.cases.cards import card_view
from bot.cases.codes import CodeBook
from bot.cases.deadlines import arm_cases
from bot.cases.replies import origin_of
from bot.clock import Clock
from bot.messages.outbox import Destination, OutboxItem, OutboxOp
from bot.messages.views import View, card_ref, format_time, notice_view
from bot.model import (
    SYSTEM_ACTOR,
    Author,
    Case,
    DeptRole,
    Event,
    EventKind,
    GlobalRole,
    Mention,
)
from bot.ports import ConcurrentUpdate, UnitOfWorkFactory
from bot.settings.escalation_rules import NotifyTarget
from bot.sla.engine import SlaEngine
from bot.sla.timers import Timer, TimerKind
from bot.staff.directory import Directory

log = logging.getLogger(__name__)

# Timers per transaction: big enough that 10,000 due at once cost a few commits, small enough
# that one transaction never holds the database for long.
FIRE_CHUNK = 500
# Reminders and escalations go out before ordinary card traffic of the same priority.
SLA_URGENCY_BONUS = 1
# Cases whose timers a migration could not plan (it has no playbook): a JSON list of ids.
# Migration 0014 writes it for open cases that were only taken, now waiting for a first reply.
REPLAN_KEY = "sla.replan"


@dataclass
class _Firing:
    """What one chunk does to one case."""

    case: Case
    stored_version: int
    changed: bool = False
    reminder: str | None = None  # the latest reminder point shown on the card
    touched: bool = False  # the card is edited


class SlaService:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        directory: Directory,
        engine: SlaEngine,
        tz: ZoneInfo,
        on_outbox: Callable[[], None] = lambda: None,
        leadership: Sequence[Destination] = (),
        codes: CodeBook | None = None,
    ) -> None:
        self._codes = codes  # the card's codes and «Коды ▸», as the case service draws them
        self._uow = uow_factory
        self._clock = clock
        self._directory = directory
        self._engine = engine
        self._tz = tz
        self._on_outbox = on_outbox
        self._leadership = tuple(leadership)  # chats leadership reads (digest recipients)

    @property
    def engine(self) -> SlaEngine:
        return self._engine

    async def next_due(self) -> datetime | None:
        async with self._uow() as uow:
            return await uow.timers.next_due()

    async def replan_marked(self, limit: int = FIRE_CHUNK) -> int:
        """At start, before firing: plan the timers of the cases a migration marked (their
        deadlines changed meaning), `limit` per transaction. Returns how many were planned."""
        async with self._uow() as uow:
            marked = await uow.kv.get(REPLAN_KEY)
        ids = [int(i) for i in json.loads(marked)] if marked else []
        now = self._clock.now()
        for start in range(0, len(ids), limit):
            async with self._uow() as uow:
                cases = await uow.cases.get_many(ids[start : start + limit])
                await arm_cases(uow, self._engine, list(cases.values()), now)
                await uow.commit()
        if marked:
            async with self._uow() as uow:
                await uow.kv.set(REPLAN_KEY, "[]")
                await uow.commit()
            log.info("SLA: timers re-planned for %d case(s) after an upgrade", len(ids))
        return len(ids)

    async def fire_due(self, limit: int = FIRE_CHUNK) -> int:
        """Fire every timer due by now, `limit` per transaction. Returns how many fired.

        The notices go first; the cards they concern are redrawn after the burst, in their
        own transactions: 10,000 reminders due at one moment are not held back by 10,000
        card renders. A crash in between costs a card its reminder line until its next edit,
        never a notice."""
        fired = 0
        cards: dict[int, str | None] = {}  # case id -> the latest reminder point, if any
        while True:
            # Until nothing is due: a breach plans the chain's first notice, which may be due
            # at once (after: 0m), and a long downtime leaves whole chains due.
            count = await self._fire_chunk(self._clock.now(), limit, cards)
            fired += count
            if count == 0:
                break
        if fired:
            self._on_outbox()
        ids = sorted(cards)
        for start in range(0, len(ids), limit):
            chunk = {i: cards[i] for i in ids[start : start + limit]}
            await self._redraw_cards(chunk, self._clock.now())
        if cards:
            self._on_outbox()
        return fired

    async def _redraw_cards(self, reminders: dict[int, str | None], now: datetime) -> None:
        await _until_no_lost_race(lambda: self._redraw_once(reminders, now))

    async def _redraw_once(self, reminders: dict[int, str | None], now: datetime) -> None:
        async with self._uow() as uow:
            cases = await uow.cases.get_many(sorted(reminders))
            mentions = await uow.mentions.first_of_cases(sorted(cases))
            authors = await uow.authors.cards_of(
                sorted({m.author_id for m in mentions.values() if m.author_id})
            )
            items: list[OutboxItem] = []
            for case_id, case in cases.items():
                mention = mentions.get(case_id)
                if mention is None or not case.state.is_open:
                    continue
                author = authors.get(mention.author_id or 0)
                items += self._card_edit(case, reminders[case_id], mention, author, now)
            await uow.outbox.enqueue_many(items)
            await uow.commit()

    async def _fire_chunk(self, now: datetime, limit: int, cards: dict[int, str | None]) -> int:
        return await _until_no_lost_race(lambda: self._fire_once(now, limit, cards))

    async def _fire_once(self, now: datetime, limit: int, cards: dict[int, str | None]) -> int:
        async with self._uow() as uow:
            timers = await uow.timers.due(now, limit)
            if not timers:
                return 0
            case_ids = sorted({t.case_id for t in timers})
            cases = await uow.timers.cases_of(case_ids)  # drafts are for the card redraw
            firings = {i: _Firing(c, c.version) for i, c in cases.items()}
            items: list[OutboxItem] = []
            events: list[Event] = []
            follow: list[Timer] = []
            for timer in timers:  # earliest first: a chain's order holds within a chunk
                firing = firings.get(timer.case_id)
                if firing is None or not self._engine.still_current(firing.case, timer):
                    continue
                items += self._fire(timer, firing, events, follow, now)
            for firing in firings.values():
                if firing.changed:
                    firing.case = replace(firing.case, version=firing.stored_version + 1)
                    await uow.cases.save(firing.case, expected_version=firing.stored_version)
            await uow.timers.mark_fired([t.id for t in timers if t.id is not None], now)
            await uow.timers.add_many(follow)
            await uow.events.append(events)
            await uow.outbox.enqueue_many(items)
            await uow.commit()
        for case_id, firing in firings.items():
            if firing.touched:
                cards[case_id] = firing.reminder or cards.get(case_id)
        return len(timers)

    # --- one timer -------------------------------------------------------------------------

    def _fire(
        self,
        timer: Timer,
        firing: _Firing,
        events: list[Event],
        follow: list[Timer],
        now: datetime,
    ) -> list[OutboxItem]:
        case = firing.case
        assert case.id is not None
        firing.touched = True
        card = card_ref(case.id, case.department)
        key = f"sla:{timer.key}"
        kind = str(timer.payload.get("deadline", ""))

        def event(event_kind: str, **payload: Any) -> None:
            events.append(
                Event(case.id, now, SYSTEM_ACTOR, event_kind, case.state, case.state, payload)
            )

        if timer.kind is TimerKind.REMINDER:
            point = str(timer.payload.get("point", ""))
            firing.reminder = point
            event(EventKind.REMINDED, deadline=kind, point=point, due=timer.payload.get("due"))
            deadline = format_time(datetime.fromisoformat(str(timer.payload["due"])), self._tz)
            view = notice_view("sla.reminder", case_id=case.id, kind=kind, deadline=deadline)
            return self._under_card(case, view, key, card, now)
        if timer.kind is TimerKind.BREACH:
            event(EventKind.REMINDED, deadline=kind, point="breach", due=timer.payload.get("due"))
            first = self._engine.first_escalation(case, timer)
            if first is not None:
                follow.append(first)
            view = notice_view("sla.breached", case_id=case.id, kind=kind)
            return self._under_card(case, view, key, card, now)
        if timer.kind is TimerKind.FOLLOW_UP:
            event(EventKind.FOLLOW_UP_ASKED, due=timer.due_at.isoformat())
            view = notice_view("follow_up.ask", case_id=case.id)
            return self._under_card(case, view, key, card, now)
        return self._escalate(timer, firing, event, follow, now)

    def _escalate(
        self,
        timer: Timer,
        firing: _Firing,
        event: Callable[..., None],
        follow: list[Timer],
        now: datetime,
    ) -> list[OutboxItem]:
        case = firing.case
        assert case.id is not None
        level, repeat = int(timer.payload["level"]), int(timer.payload["repeat"])
        if level > case.escalation_level:
            firing.case = case = replace(case, escalation_level=level)
            firing.changed = True
        event(EventKind.ESCALATED, level=level, repeat=repeat, auto=True)
        after = self._engine.next_escalation(case, timer)
        if after is not None:
            follow.append(after)
        step = self._engine.step(case, level)
        targets = step.notify if step is not None else (NotifyTarget.DEPARTMENT_LEAD,)
        # One notice per chat, naming everyone it is meant for there; in the department's
        # own chat it is a reply under the card.
        chats: dict[Destination, list[str]] = {}
        for target in targets:
            if target is NotifyTarget.DEPARTMENT_LEAD:
                leads = self._directory.with_department_role(case.department, DeptRole.LEAD)
                names = [m.name for m in leads]
                places = self._directory.destinations(case.department)
            elif target is NotifyTarget.DUTY:
                names = self._directory.on_duty(now)
                places = self._directory.destinations(self._directory.coordination)
            elif target is NotifyTarget.LEADERSHIP:
                names = [m.name for m in self._directory.with_role(GlobalRole.LEADERSHIP)]
                places = [
                    *self._directory.destinations(self._directory.coordination),
                    *(d for d in self._leadership if d.transport in self._directory.transports),
                ]
            else:
                names, places = [], self._directory.destinations(self._directory.coordination)
            for place in places:
                chats.setdefault(place, []).extend(names)
        params = {
            "case_id": case.id,
            "level": level,
            "department_name": self._directory.department_name(case.department),
            "kind": str(timer.payload.get("deadline", "")),
        }
        key = f"sla:{timer.key}"
        assert case.id is not None
        card = card_ref(case.id, case.department)
        items: list[OutboxItem] = []
        department_chats = set(self._directory.destinations(case.department))
        for place, names in chats.items():
            view = notice_view("escalation.auto", who=_names(names), **params)
            reply_to = card if place in department_chats else None
            op = OutboxOp.REPLY if reply_to else OutboxOp.POST
            items.append(
                place.about(
                    case,
                    op,
                    view,
                    key,
                    now,
                    ref=None,
                    reply_to=reply_to,
                    urgency_bonus=SLA_URGENCY_BONUS,
                )
            )
        return items

    # --- messages --------------------------------------------------------------------------

    def _under_card(
        self, case: Case, view: View, key: str, card: str, now: datetime
    ) -> list[OutboxItem]:
        return [
            dest.about(
                case,
                OutboxOp.REPLY,
                view,
                key,
                now,
                ref=None,
                reply_to=card,
                urgency_bonus=SLA_URGENCY_BONUS,
            )
            for dest in self._directory.destinations(case.department)
        ]

    def _card_edit(
        self,
        case: Case,
        reminder: str | None,
        mention: Mention,
        author: Author | None,
        now: datetime,
    ) -> list[OutboxItem]:
        assert case.id is not None
        origin = origin_of(mention, self._directory.discussion_chats)
        publishable = origin is not None and origin.transport in self._directory.transports
        view = card_view(
            case,
            mention,
            author,
            self._directory,
            self._tz,
            publishable=publishable,
            now=now,
            sla_reminder=reminder,
            codes=self._codes,
        )
        ref = card_ref(case.id, case.department)
        key = f"{ref}:edit:{case.version}:sla:{int(now.timestamp() * 1000)}"
        return [
            dest.about(
                case, OutboxOp.EDIT, view, key, now, ref=ref, urgency_bonus=SLA_URGENCY_BONUS
            )
            for dest in self._directory.destinations(case.department)
        ]


def _names(names: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(names))


_T = TypeVar("_T")
LOST_RACE_ATTEMPTS = 3


async def _until_no_lost_race(attempt: Callable[[], Awaitable[_T]]) -> _T:
    """Runs `attempt` again when it loses a race (ConcurrentUpdate: a person or another
    instance changed the same rows, the transaction was rolled back), so it reads them anew."""
    for left in range(LOST_RACE_ATTEMPTS - 1, -1, -1):
        try:
            return await attempt()
        except ConcurrentUpdate:
            if left == 0:
                raise
    raise AssertionError("unreachable")
