"""The crisis card's checklist as something people tick: who may, and what the ticks add up to.

The event contract (drill reports and digests read it; keep it stable):

- kind   EventKind.CHECKLIST_DONE ("checklist_done") when an item is ticked,
         EventKind.CHECKLIST_UNDONE ("checklist_undone") when it is unticked again;
- case_id None (a crisis is no case), from_state and to_state None;
- actor  the staff id of the person who pressed, `at` the injected clock's time;
- payload {"crisis": <crisis id>, "step": <index>, "step_text": <text>}: `step` is the 0-based
         index into crisis.yaml's `checklist` (the card shows it as step + 1), `step_text` the
         item's text in the organisation's locale when it was ticked, so a later playbook edit
         does not change what the history says was done.

An item's state is the last of its events: done by that actor at that time, or not done.
Unticking is allowed (a mis-tap must be correctable), but only by whoever ticked it or the
duty officer or an administrator, and it is itself an event: nothing is ever erased.
Read the ticks back with CrisisService.checklist (or uow.crises.checklist_events).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bot.model import DeptRole, Event, EventKind, GlobalRole
from bot.staff.rights import Actor

__all__ = [
    "CHECKLIST_KINDS",
    "ChecklistTick",
    "checklist_event",
    "checklist_state",
    "may_tick",
    "may_untick",
    "tick_of",
]

CHECKLIST_KINDS = (EventKind.CHECKLIST_DONE.value, EventKind.CHECKLIST_UNDONE.value)
# Global roles that may tick any item: the crisis plan is theirs to run.
_TICKERS = frozenset({GlobalRole.DUTY, GlobalRole.LEADERSHIP, GlobalRole.ADMIN})
# ...and that may untick an item somebody else ticked.
_UNTICKERS = frozenset({GlobalRole.DUTY, GlobalRole.ADMIN})


@dataclass(frozen=True, slots=True)
class ChecklistTick:
    """One checklist event of a crisis, read back."""

    crisis_id: int
    step: int  # 0-based index into the playbook's checklist
    step_text: str
    done: bool  # False: an untick
    actor: str  # staff id
    at: datetime


def checklist_event(
    crisis_id: int, step: int, step_text: str, done: bool, actor: str, at: datetime
) -> Event:
    kind = EventKind.CHECKLIST_DONE if done else EventKind.CHECKLIST_UNDONE
    payload = {"crisis": crisis_id, "step": step, "step_text": step_text}
    return Event(None, at, actor, kind, None, None, payload)


def tick_of(event: Event) -> ChecklistTick | None:
    """The tick an event records; None for any other event or a payload that does not fit."""
    if event.kind not in CHECKLIST_KINDS:
        return None
    crisis, step = event.payload.get("crisis"), event.payload.get("step")
    if not isinstance(crisis, int) or not isinstance(step, int):
        return None
    return ChecklistTick(
        crisis,
        step,
        str(event.payload.get("step_text") or ""),
        event.kind == EventKind.CHECKLIST_DONE,
        event.actor,
        event.at,
    )


def checklist_state(ticks: Iterable[ChecklistTick]) -> dict[int, ChecklistTick]:
    """The items done now, by step: the last event of each step wins (give them oldest first)."""
    state: dict[int, ChecklistTick] = {}
    for tick in ticks:
        if tick.done:
            state[tick.step] = tick
        else:
            state.pop(tick.step, None)
    return state


def may_tick(actor: Actor, coordination: str, crisis_department: str | None) -> bool:
    """Staff of the coordination centre (any role in its department), the duty officer,
    leadership and administrators; for a department's crisis, that department's lead too
    (the checklist gives them the official post). Nobody else, whoever sees the card."""
    if not actor.is_staff:
        return False
    if actor.global_roles & _TICKERS or actor.roles_in(coordination):
        return True
    return crisis_department is not None and actor.has(DeptRole.LEAD, crisis_department)


def may_untick(actor: Actor, done: ChecklistTick) -> bool:
    """Whoever ticked it, the duty officer and administrators."""
    return actor.is_staff and (actor.id == done.actor or bool(actor.global_roles & _UNTICKERS))
