"""Crisis mode as a service: count, decide (bot/crisis/thresholds.py), store and announce, in
one unit of work. A scheduler job calls `evaluate` every half minute, and intake nudges it
when negative mentions arrive (handlers/jobs/crisis.py), so a crisis opens within seconds.

On opening, a crisis card goes to the coordination chat on every transport: the storm's largest
clusters with their trend (bot/crisis/storm.py), the checklist with owners and due times, the
holding statement, "pause scheduled posts". It is edited in place when the peak grows, when
the cool-down starts or starts over, when the crisis closes, and when the clusters change (at
most every STORM_REFRESH: Telegram counts edits against the chat's 20 messages a minute).
Leadership's chats (the digest recipients, as for SLA escalations) get a short notice.

The checklist items are buttons (Telegram) and number reactions or "!done N" (Matrix): `tick`
records who did what and when as events (bot/crisis/checklist.py has the contract and the
rights) and redraws the card; `checklist` reads the ticks back for digests and drill reports.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.cases.lifecycle import DomainError, InvalidInput, NoRight, StaleCard
from bot.cases.outcomes import WrongChat
from bot.clock import Clock
from bot.crisis.checklist import (
    ChecklistTick,
    checklist_event,
    checklist_state,
    may_tick,
    may_untick,
)
from bot.crisis.storm import (
    STORM_REFRESH,
    TREND_WINDOW,
    ClusterLine,
    storm_lines,
)
from bot.crisis.thresholds import (
    CountWindow,
    Crisis,
    CrisisChange,
    CrisisEvent,
    CrisisEventKind,
    WindowCounts,
    decide,
    is_settled,
    read,
    windows_for,
)
from bot.messages.outbox import PRESSED_REDRAW_URGENCY, Destination, OutboxItem, OutboxOp
from bot.messages.views import (
    ChecklistButton,
    ChecklistControls,
    View,
    format_time,
    headline,
    notice_view,
    page_view,
)
from bot.model import DeptRole, Event, EventKind, GlobalRole, TrendWindows
from bot.ports import UnitOfWork, UnitOfWorkFactory
from bot.settings.crisis_rules import ChecklistOwner, CrisisConfig, ThresholdScope
from bot.settings.fields import LOCALES
from bot.settings.playbook import Playbook
from bot.staff.directory import Directory
from bot.staff.rights import Actor

log = logging.getLogger(__name__)

CRISIS_TEMPLATE = "crisis.html.j2"
# Ahead of cards and answers to commands: a crisis card must not wait behind a backlog.
CRISIS_URGENCY = 20
# A tick is a person's press: its redraw goes before the card's routine ones (counts, storm)
# and is not held back by their pacing in a backlogged chat.
TICK_URGENCY = PRESSED_REDRAW_URGENCY


# The threshold id a drill's crisis carries: no threshold opened it.
DRILL_THRESHOLD_PREFIX = "drill:"


def crisis_ref(crisis_id: int) -> str:
    """The logical key of a crisis card (one per chat it is posted to)."""
    return f"crisis:{crisis_id}"


# What the audit trail calls a checklist press (DENIED events' "action").
CHECKLIST_PRESS = "checklist"


class UnknownCrisis(DomainError):
    code = "unknown_crisis"


class ChecklistDoneAlready(DomainError):
    """{who, at}: somebody ticked it first; nothing changes."""

    code = "checklist_done_already"


class ChecklistNotDone(DomainError):
    """An untick of an item nobody has ticked (or somebody unticked first)."""

    code = "checklist_not_done"


class ChecklistNotYours(DomainError):
    """{who}: only whoever ticked it, the duty officer or an administrator unticks it."""

    code = "checklist_not_yours"


# Somebody tried what they may not, where they may not, or on what they no longer saw.
AUDITED_REFUSALS = (NoRight, ChecklistNotYours, StaleCard, WrongChat, UnknownCrisis)


@dataclass(frozen=True, slots=True)
class TickResult:
    """What a checklist press came to: the tick or untick recorded, or a refusal."""

    tick: ChecklistTick | None = None
    error: DomainError | None = None


def card_version(crisis: Crisis, ticks: Sequence[ChecklistTick]) -> int:
    """The crisis card's version: it grows with the timeline and with every tick or untick,
    so a button drawn before either is stale (as on a case card)."""
    return crisis.version + len(ticks)


class CrisisService:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        directory: Directory,
        playbook: Playbook,
        tz: ZoneInfo,
        organisation: str = "",
        on_outbox: Callable[[], None] = lambda: None,
        leadership: Sequence[Destination] = (),
        locale: str = "ru",
    ) -> None:
        self._locale = locale  # of the step text recorded with a tick
        # Chats leadership reads (the digest recipients, as for SLA escalations).
        self._leadership = tuple(leadership)
        self._uow = uow_factory
        self._clock = clock
        self._directory = directory
        self._playbook = playbook
        self._tz = tz
        self._organisation = organisation
        self._on_outbox = on_outbox
        # The job and an intake nudge may fire together; one evaluation at a time.
        self._lock = asyncio.Lock()
        self._settled: dict[CountWindow, WindowCounts] = {}
        # Per crisis: when each cluster was first drawn on its card (marks "new" for one
        # refresh), and when and what the storm summary was last drawn. Kept in memory: after
        # a restart the first drawing marks nothing new.
        self._storm_seen: dict[int, dict[int, datetime]] = {}
        self._storm_drawn: dict[int, tuple[datetime, list[ClusterLine]]] = {}

    @property
    def config(self) -> CrisisConfig:
        return self._playbook.crisis

    async def evaluate(self) -> list[CrisisChange]:
        """Count, decide, store and announce. Safe to call as often as wanted: with nothing
        changed it writes nothing."""
        async with self._lock:
            now = self._clock.now()
            thresholds = self.config.thresholds
            windows = list(dict.fromkeys(w for t in thresholds for w in windows_for(t, now)))
            # Past days' windows are counted once and kept while they are needed.
            settled = {w: self._settled[w] for w in windows if w in self._settled}
            missing = [w for w in windows if w not in settled]
            items: list[OutboxItem] = []
            applied: list[CrisisChange] = []
            async with self._uow() as uow:
                counted = await uow.crises.window_counts(missing)
                counts = {**settled, **dict(zip(missing, counted, strict=True))}
                self._settled = {w: c for w, c in counts.items() if is_settled(w, now)}
                readings = read(thresholds, counts, now)
                changes = decide(readings, await uow.crises.open(), now, self.config.cool_down)
                for change in changes:
                    if change.opened:
                        after = await uow.crises.add(change.after)
                        change = CrisisChange(None, after, change.events)
                        log.warning(
                            "crisis opened: %s, %d negative mentions (limit %.1f)",
                            after.threshold_id,
                            after.count_at_open,
                            after.limit,
                        )
                    else:
                        await uow.crises.save(change.after)
                        if change.closed:
                            log.warning("crisis closed: %s", change.after.threshold_id)
                    applied.append(change)
                    if change.events:
                        items += await self._messages(uow, change, now)
                    if change.closed and change.after.id is not None:
                        self._forget_storm(change.after.id)
                redrawn = {c.after.id for c in applied if c.events}
                for crisis in await uow.crises.open():
                    if crisis.id not in redrawn:
                        items += await self._storm_edits(uow, crisis, now)
                if changes or items:
                    await uow.outbox.enqueue(items)
                    await uow.commit()
        if items:
            self._on_outbox()
        return applied

    # --- drills ---

    async def open_drill(self, run_id: int, scenario: str) -> Crisis:
        """Drill run N's crisis: a card marked DRILL in the coordination chat with the
        checklist buttons, so staff rehearse it. It counts nowhere (no digest, no threshold,
        no /status), neither blocks nor merges with a real crisis, and tells leadership
        nothing. Once per run: a second call returns the crisis already opened."""
        async with self._lock:
            now = self._clock.now()
            async with self._uow() as uow:
                existing = await uow.crises.of_drill(run_id)
                if existing is not None:
                    return existing
                crisis = await uow.crises.add(
                    Crisis(
                        threshold_id=(DRILL_THRESHOLD_PREFIX + scenario)[:64],
                        scope=ThresholdScope.ALL,
                        key=None,
                        opened_at=now,
                        count_at_open=0,
                        limit=0.0,
                        peak_count=0,
                        peak_at=now,
                        drill=True,
                        drill_run_id=run_id,
                        timeline=(CrisisEvent(now, CrisisEventKind.OPENED, 0),),
                    )
                )
                assert crisis.id is not None
                ref = crisis_ref(crisis.id)
                view = self.card(crisis)
                await uow.outbox.enqueue(
                    [
                        self._item(dest, OutboxOp.POST, view, f"{ref}:post", ref, now)
                        for dest in self._directory.destinations(self._directory.coordination)
                    ]
                )
                await uow.commit()
        log.info("drill %s: crisis %s opened", run_id, crisis.id)
        self._on_outbox()
        return crisis

    async def close_drill(self, run_id: int) -> Crisis | None:
        """Close drill run N's crisis and redraw its card; None if it opened none or it is
        closed already."""
        async with self._lock:
            now = self._clock.now()
            async with self._uow() as uow:
                found = await uow.crises.of_drill(run_id)
                if found is None or found.id is None or not found.is_open:
                    return None
                closed = CrisisEvent(now, CrisisEventKind.CLOSED, found.peak_count)
                crisis = replace(found, closed_at=now, timeline=(*found.timeline, closed))
                await uow.crises.save(crisis)
                ticks = await uow.crises.checklist_events([found.id], crisis.opened_at)
                await uow.outbox.enqueue(await self._edits(uow, crisis, ticks, now))
                await uow.commit()
        self._on_outbox()
        return crisis

    async def open_crises(self) -> list[Crisis]:
        async with self._uow() as uow:
            return await uow.crises.open()

    async def crises_between(self, since: datetime, until: datetime) -> list[Crisis]:
        """Crises open at any time in [since, until), with their timelines (for digests)."""
        async with self._uow() as uow:
            return await uow.crises.between(since, until)

    async def status_lines(self) -> list[dict[str, Any]]:
        """Open crises as /status shows them, oldest first."""
        return [
            {
                "id": c.id,
                "threshold": c.threshold_id,
                "subject": self.subject(c),
                "opened_at": format_time(c.opened_at, self._tz),
                "peak_count": c.peak_count,
                "limit": _number(c.limit),
                "cooling_down": c.below_since is not None,
            }
            for c in await self.open_crises()
        ]

    # --- messages ---

    def subject(self, crisis: Crisis) -> str | None:
        """What the crisis is about, for people: a department's name, a code, or none (all)."""
        if crisis.scope is ThresholdScope.DEPARTMENT and crisis.key:
            return self._directory.department_name(crisis.key)
        return self._playbook.code_title(crisis.key, self._locale) if crisis.key else None

    def card(
        self,
        crisis: Crisis,
        ticks: Sequence[ChecklistTick] = (),
        storm: Sequence[ClusterLine] = (),
    ) -> View:
        """The crisis card: a page rendered from crisis.html.j2 in each transport's locale.
        Localised playbook text (steps, holding statement) travels in every locale. `ticks`:
        the checklist's events so far, oldest first; each item shows who did it and when, and
        is a button (a reaction in Matrix) drawn for this card version. `storm`: the largest
        clusters of the crisis's scope (bot/crisis/storm.py storm_lines)."""
        threshold = next((t for t in self.config.thresholds if t.id == crisis.threshold_id), None)
        opened = crisis.opened_at
        done = checklist_state(ticks)
        checklist = [
            {
                "step": {locale: step.step.get(locale) for locale in LOCALES},
                "owner": step.owner.value,
                "who": self._owner_names(step.owner, crisis),
                "due": format_time(opened + step.within, self._tz) if step.within else None,
                "done": (
                    {
                        "by": self._directory.name_of(done[index].actor),
                        "at": format_time(done[index].at, self._tz),
                    }
                    if index in done
                    else None
                ),
            }
            for index, step in enumerate(self.config.checklist)
        ]
        assert crisis.id is not None
        controls: ChecklistControls = {
            "crisis": crisis.id,
            "version": card_version(crisis, ticks),
            "steps": [
                ChecklistButton(
                    label={locale: step.step.get(locale) for locale in LOCALES},
                    done=index in done,
                )
                for index, step in enumerate(self.config.checklist)
            ],
        }
        return page_view(
            CRISIS_TEMPLATE,
            {
                "crisis": {
                    "id": crisis.id,
                    "threshold": crisis.threshold_id,
                    "scope": crisis.scope.value,
                    "subject": self.subject(crisis),
                    # seconds: the template says them in its locale (`|duration`)
                    "window": _seconds(threshold.window) if threshold else None,
                    "limit": _number(crisis.limit),
                    "count_at_open": crisis.count_at_open,
                    "peak_count": crisis.peak_count,
                    "peak_at": format_time(crisis.peak_at, self._tz),
                    "opened_at": format_time(opened, self._tz),
                    "below_since": format_time(crisis.below_since, self._tz),
                    "closed_at": format_time(crisis.closed_at, self._tz),
                    "cool_down": _seconds(self.config.cool_down),
                    "drill": crisis.drill,
                },
                "checklist": checklist,
                "holding_statement": self._holding_statement(crisis),
                # Nothing leaves a drill: it pauses no real publication.
                "pause_scheduled_posts": self.config.pause_scheduled_posts and not crisis.drill,
                "checklist_done": len(done),
                "storm": list(storm),
                # minutes: the trend compares the last this-many minutes with those before
                "trend_minutes": int(TREND_WINDOW.total_seconds() // 60),
            },
            controls,
        )

    # --- the checklist ---

    async def checklist(self, crisis_id: int) -> list[ChecklistTick]:
        """Checklist ticks of crisis N: every tick and untick, oldest first (fold them with
        bot.crisis.checklist.checklist_state for what is done now). For digests and drill
        reports."""
        async with self._uow() as uow:
            crisis = await uow.crises.get(crisis_id)
            if crisis is None:
                return []
            return await uow.crises.checklist_events([crisis_id], crisis.opened_at)

    async def tick(
        self,
        crisis_id: int,
        step: int,
        actor: Actor,
        *,
        done: bool,
        where: Destination | None = None,
        expected_version: int | None = None,
    ) -> TickResult:
        """Tick (done=True) or untick (done=False) checklist item `step` (0-based), as pressed
        in `where` on the card version `expected_version` (None: not known, e.g. a command).
        Refusals for rights, the wrong chat, a stale card
        or an unknown crisis are audited as DENIED events, as presses on case cards are."""
        async with self._lock:  # one change to a crisis card at a time, evaluations included
            now = self._clock.now()
            async with self._uow() as uow:
                result = await self._tick(
                    uow, crisis_id, step, actor, done, where, expected_version, now
                )
                error = result.error
                if error is not None:
                    if not isinstance(error, AUDITED_REFUSALS):
                        return result  # a mistake of input or state: said, not audited
                    await uow.events.append(
                        [_denied(crisis_id, step, actor, done, error.code, now)]
                    )
                    await uow.commit()
                    log.warning(
                        "refused checklist %s step %d by %s: %s",
                        crisis_id,
                        step,
                        actor.id,
                        error.code,
                    )
                    return result
                await uow.commit()
        self._on_outbox()
        return result

    async def _tick(
        self,
        uow: UnitOfWork,
        crisis_id: int,
        step: int,
        actor: Actor,
        done: bool,
        where: Destination | None,
        expected_version: int | None,
        now: datetime,
    ) -> TickResult:
        crisis = await uow.crises.get(crisis_id)
        if crisis is None:
            return TickResult(error=UnknownCrisis(crisis_id=crisis_id))
        coordination = self._directory.coordination
        if where is not None and not self._directory.in_chat_of(coordination, where):
            return TickResult(error=WrongChat())
        department = crisis.key if crisis.scope is ThresholdScope.DEPARTMENT else None
        if not may_tick(actor, coordination, department):
            return TickResult(error=NoRight(action=CHECKLIST_PRESS, department=coordination))
        ticks = await uow.crises.checklist_events([crisis_id], crisis.opened_at)
        version = card_version(crisis, ticks)
        if expected_version is not None and expected_version != version:
            return TickResult(error=StaleCard(expected=expected_version, actual=version))
        steps = self.config.checklist
        if not 0 <= step < len(steps):
            return TickResult(error=InvalidInput(field="step", limit=None))
        state = checklist_state(ticks)
        current = state.get(step)
        if done and current is not None:
            who = self._directory.name_of(current.actor)
            return TickResult(
                error=ChecklistDoneAlready(who=who, at=format_time(current.at, self._tz))
            )
        if not done and current is None:
            return TickResult(error=ChecklistNotDone(step=step + 1))
        if not done and current is not None and not may_untick(actor, current):
            return TickResult(error=ChecklistNotYours(who=self._directory.name_of(current.actor)))
        text = steps[step].step.get(self._locale)
        event = checklist_event(crisis_id, step, text, done, actor.id, now)
        await uow.events.append([event])
        tick = ChecklistTick(crisis_id, step, text, done, actor.id, now)
        ticks = [*ticks, tick]
        await uow.outbox.enqueue(await self._edits(uow, crisis, ticks, now, urgency=TICK_URGENCY))
        return TickResult(tick)

    def _holding_statement(self, crisis: Crisis) -> dict[str, str]:
        try:
            template = self._playbook.template(self.config.holding_statement_template)
        except KeyError:  # load_playbook checks it; a hand-built playbook may lack it
            return {}
        department = (
            crisis.key
            if crisis.scope is ThresholdScope.DEPARTMENT and crisis.key
            else self._directory.coordination
        )
        return {
            locale: template.render(
                locale,
                author_name="",
                department_name=self._directory.department_name(department),
                case_id=0,
                org_name=self._organisation,
            )
            for locale in LOCALES
        }

    def _owner_names(self, owner: ChecklistOwner, crisis: Crisis) -> str:
        if owner is ChecklistOwner.DUTY:
            names = self._directory.on_duty(crisis.opened_at)
        elif owner is ChecklistOwner.LEADERSHIP:
            names = [m.name for m in self._directory.with_role(GlobalRole.LEADERSHIP)]
        elif owner is ChecklistOwner.DEPARTMENT_LEAD:
            department = (
                crisis.key
                if crisis.scope is ThresholdScope.DEPARTMENT and crisis.key
                else self._directory.coordination
            )
            names = [
                m.name for m in self._directory.with_department_role(department, DeptRole.LEAD)
            ]
        else:
            names = []  # the press office is a team, not a person in the staff list
        return ", ".join(names)

    def _leadership_chats(self, coordination: Sequence[Destination]) -> list[Destination]:
        """Leadership's chats on running transports, except the coordination chat itself
        (it has the card)."""
        card_chats = {(d.transport, d.chat) for d in coordination}
        return [
            d
            for d in self._leadership
            if d.transport in self._directory.transports and (d.transport, d.chat) not in card_chats
        ]

    async def _messages(
        self, uow: UnitOfWork, change: CrisisChange, now: datetime
    ) -> list[OutboxItem]:
        crisis = change.after
        assert crisis.id is not None
        ref = crisis_ref(crisis.id)
        if not change.opened:
            ticks = await uow.crises.checklist_events([crisis.id], crisis.opened_at)
            return await self._edits(uow, crisis, ticks, now)
        view = self.card(crisis, storm=await self._storm(uow, crisis, now))
        coordination = self._directory.destinations(self._directory.coordination)
        items = [
            self._item(dest, OutboxOp.POST, view, f"{ref}:post", ref, now) for dest in coordination
        ]
        threshold = next(t for t in self.config.thresholds if t.id == crisis.threshold_id)
        notice = notice_view(
            "crisis.opened",
            subject=self.subject(crisis),
            count=crisis.count_at_open,
            window=_seconds(threshold.window),
            limit=_number(crisis.limit),
            coordination=self._directory.department_name(self._directory.coordination),
        )
        items += [
            self._item(dest, OutboxOp.POST, notice, f"{ref}:leadership", f"{ref}:lead", now)
            for dest in self._leadership_chats(coordination)
        ]
        return items

    async def _edits(
        self,
        uow: UnitOfWork,
        crisis: Crisis,
        ticks: Sequence[ChecklistTick],
        now: datetime,
        key: str | None = None,
        urgency: int = CRISIS_URGENCY,
    ) -> list[OutboxItem]:
        """The card edited in place in every coordination chat, with the storm as it is now.
        The key names the timeline and the ticks apart: an evaluation and a tick never share
        one (a storm redraw names its time: bot/crisis/service.py _storm_edits)."""
        assert crisis.id is not None
        ref = crisis_ref(crisis.id)
        view = self.card(crisis, ticks, await self._storm(uow, crisis, now))
        key = key or f"{ref}:edit:{crisis.version}:{len(ticks)}"
        coordination = self._directory.destinations(self._directory.coordination)
        return [
            self._item(dest, OutboxOp.EDIT, view, key, ref, now, urgency) for dest in coordination
        ]

    # --- the storm (bot/crisis/storm.py) ---

    async def _storm(self, uow: UnitOfWork, crisis: Crisis, now: datetime) -> list[ClusterLine]:
        """The clusters the card lists now, remembered as drawn. A drill counts nothing; a
        closed crisis keeps the storm of its last minutes (its window ends at closing)."""
        if crisis.drill or crisis.id is None:
            return []
        threshold = next((t for t in self.config.thresholds if t.id == crisis.threshold_id), None)
        end = min(now, crisis.closed_at) if crisis.closed_at else now
        trend = TrendWindows.ending(end, TREND_WINDOW)
        since = min(
            crisis.opened_at - (threshold.window if threshold else TREND_WINDOW),
            trend.previous_start,
        )
        clusters = await uow.crises.clusters(since, trend, scope=crisis.scope, key=crisis.key)
        seen = self._storm_seen.get(crisis.id)
        # Drawn for a whole refresh already: no longer new.
        known = None if seen is None else {c for c, at in seen.items() if now - at >= STORM_REFRESH}
        lines = storm_lines(clusters, known, self._directory.department_name)
        firsts = await uow.mentions.first_of_cases([line["case_id"] for line in lines])
        for line in lines:
            first = firsts.get(line["case_id"])
            line["story"] = headline(first.text) if first is not None else ""
        seen = dict(seen or {})
        for line in lines:
            seen.setdefault(line["case_id"], now)
        if known is None:  # the first drawing: what is there now is not news
            seen = {case_id: now - STORM_REFRESH for case_id in seen}
        self._storm_seen[crisis.id] = seen
        self._storm_drawn[crisis.id] = (now, lines)
        return lines

    async def _storm_edits(
        self, uow: UnitOfWork, crisis: Crisis, now: datetime
    ) -> list[OutboxItem]:
        """The card redrawn because its clusters moved: at most every STORM_REFRESH, and only
        when what it lists changed (an edit that changes nothing is a wasted message)."""
        assert crisis.id is not None
        drawn = self._storm_drawn.get(crisis.id)
        if drawn is not None and now - drawn[0] < STORM_REFRESH:
            return []
        before = drawn[1] if drawn is not None else None
        ticks = await uow.crises.checklist_events([crisis.id], crisis.opened_at)
        stamp = int(now.timestamp())
        key = f"{crisis_ref(crisis.id)}:storm:{crisis.version}:{len(ticks)}:{stamp}"
        items = await self._edits(uow, crisis, ticks, now, key)
        if before is not None and self._storm_drawn[crisis.id][1] == before:
            return []  # the same clusters, counts and trends: nothing to redraw
        return items

    def _forget_storm(self, crisis_id: int) -> None:
        self._storm_seen.pop(crisis_id, None)
        self._storm_drawn.pop(crisis_id, None)

    @staticmethod
    def _item(
        dest: Destination,
        op: OutboxOp,
        view: View,
        key: str,
        ref: str,
        now: datetime,
        urgency: int = CRISIS_URGENCY,
    ) -> OutboxItem:
        return dest.message(op, view, key, now, ref=ref, urgency=urgency)


def _number(value: float) -> int | float:
    """12.0 -> 12, 13.5 -> 13.5: limits read as people write them."""
    return int(value) if value == int(value) else round(value, 1)


def _denied(
    crisis_id: int, step: int, actor: Actor, done: bool, reason: str, now: datetime
) -> Event:
    """A refused checklist press in the audit trail: as audit_refusal writes one for a case
    card, with the crisis and the item instead of a case."""
    kind = EventKind.CHECKLIST_DONE if done else EventKind.CHECKLIST_UNDONE
    payload = {
        "action": kind.value,
        "reason": reason,
        "staff": actor.is_staff,
        "name": actor.name[:128],
        "crisis": crisis_id,
        "step": step,
    }
    return Event(None, now, actor.id, EventKind.DENIED, None, None, payload)


def _seconds(value: timedelta) -> int:
    return int(value.total_seconds())
