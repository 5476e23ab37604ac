"""Crisis mode as a service: count, decide (bot/crisis/thresholds.py), store and announce, in
one unit of work. A scheduler job calls `evaluate` every half minute, and intake nudges it
when negative mentions arrive (handlers/jobs/crisis.py), so a crisis opens within seconds.

On opening, a crisis card goes to the coordination chat on every transport: the checklist with
owners and due times, the holding statement, "pause scheduled posts". It is edited in place
when the peak grows, when the cool-down starts or starts over, and when the crisis closes.
Leadership's chats (the digest recipients, as for SLA escalations) get a short notice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.crisis.thresholds import (
    CountWindow,
    Crisis,
    CrisisChange,
    WindowCounts,
    decide,
    is_settled,
    read,
    windows_for,
)
from bot.messages.outbox import Destination, OutboxItem, OutboxOp
from bot.messages.views import View, format_time, notice_view, page_view
from bot.model import DeptRole, GlobalRole
from bot.ports import UnitOfWorkFactory
from bot.settings.crisis_rules import ChecklistOwner, CrisisConfig, ThresholdScope
from bot.settings.fields import LOCALES, format_duration
from bot.settings.playbook import Playbook
from bot.staff.directory import Directory

log = logging.getLogger(__name__)

CRISIS_TEMPLATE = "crisis.html.j2"
# Ahead of cards and answers to commands: a crisis card must not wait behind a backlog.
CRISIS_URGENCY = 20


def crisis_ref(crisis_id: int) -> str:
    """The logical key of a crisis card (one per chat it is posted to)."""
    return f"crisis:{crisis_id}"


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
    ) -> None:
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
                        items += self._messages(change, now)
                if changes:
                    await uow.outbox.enqueue(items)
                    await uow.commit()
        if items:
            self._on_outbox()
        return applied

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
        return crisis.key

    def card(self, crisis: Crisis) -> View:
        """The crisis card: a page rendered from crisis.html.j2 in each transport's locale.
        Localised playbook text (steps, holding statement) travels in every locale."""
        threshold = next((t for t in self.config.thresholds if t.id == crisis.threshold_id), None)
        opened = crisis.opened_at
        checklist = [
            {
                "step": {locale: step.step.get(locale) for locale in LOCALES},
                "owner": step.owner.value,
                "who": self._owner_names(step.owner, crisis),
                "due": format_time(opened + step.within, self._tz) if step.within else None,
            }
            for step in self.config.checklist
        ]
        return page_view(
            CRISIS_TEMPLATE,
            {
                "crisis": {
                    "id": crisis.id,
                    "threshold": crisis.threshold_id,
                    "scope": crisis.scope.value,
                    "subject": self.subject(crisis),
                    "window": format_duration(threshold.window) if threshold else None,
                    "limit": _number(crisis.limit),
                    "count_at_open": crisis.count_at_open,
                    "peak_count": crisis.peak_count,
                    "peak_at": format_time(crisis.peak_at, self._tz),
                    "opened_at": format_time(opened, self._tz),
                    "below_since": format_time(crisis.below_since, self._tz),
                    "closed_at": format_time(crisis.closed_at, self._tz),
                    "cool_down": format_duration(self.config.cool_down),
                },
                "checklist": checklist,
                "holding_statement": self._holding_statement(crisis),
                "pause_scheduled_posts": self.config.pause_scheduled_posts,
            },
        )

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

    def _messages(self, change: CrisisChange, now: datetime) -> list[OutboxItem]:
        crisis = change.after
        assert crisis.id is not None
        ref = crisis_ref(crisis.id)
        view = self.card(crisis)
        coordination = self._directory.destinations(self._directory.coordination)
        if change.opened:
            items = [
                self._item(dest, OutboxOp.POST, view, f"{ref}:post", ref, now)
                for dest in coordination
            ]
            threshold = next(t for t in self.config.thresholds if t.id == crisis.threshold_id)
            notice = notice_view(
                "crisis.opened",
                subject=self.subject(crisis),
                count=crisis.count_at_open,
                window=format_duration(threshold.window),
                limit=_number(crisis.limit),
            )
            items += [
                self._item(dest, OutboxOp.POST, notice, f"{ref}:leadership", f"{ref}:lead", now)
                for dest in self._leadership_chats(coordination)
            ]
            return items
        key = f"{ref}:edit:{crisis.version}"
        return [self._item(dest, OutboxOp.EDIT, view, key, ref, now) for dest in coordination]

    @staticmethod
    def _item(
        dest: Destination, op: OutboxOp, view: View, key: str, ref: str, now: datetime
    ) -> OutboxItem:
        return dest.message(op, view, key, now, ref=ref, urgency=CRISIS_URGENCY)


def _number(value: float) -> int | float:
    """12.0 -> 12, 13.5 -> 13.5: limits read as people write them."""
    return int(value) if value == int(value) else round(value, 1)
