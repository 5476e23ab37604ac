"""Deadlines as the case service sees them: the one that matters now, and what the service
asks of the SLA clock.

The SLA clock (bot/sla/) watches cases, so it sits above them: the case service never imports
it. It gets an `SlaPlanner` instead (bot.sla.engine.SlaEngine fits), injected by
handlers/app.py, and re-plans a changed case's timers with `arm_cases` in its own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from bot.model import Action, Case
from bot.ports import UnitOfWork

if TYPE_CHECKING:  # the timers' shape only: the case service plans none itself
    from bot.sla.timers import Timer

DEFAULT_FOLLOW_UP = timedelta(days=2)  # a case without a policy still gets its follow-up


class TimerChanges(Protocol):
    """Which pending timers of a case to drop and which to add."""

    @property
    def drop(self) -> Sequence[int]: ...
    @property
    def add(self) -> Sequence[Timer]: ...


class SlaPlanner(Protocol):
    """What the case service needs of the SLA clock."""

    def plan(
        self,
        case: Case,
        now: datetime,
        pending: Sequence[Timer] = (),
        action: Action | None = None,
    ) -> TimerChanges: ...

    def resumed(self, waiting: Case, resumed: Case, now: datetime) -> Case: ...

    def reopened(self, case: Case, now: datetime) -> Case: ...

    def reprioritised(self, case: Case, now: datetime) -> Case: ...

    def follow_up_after(self, case: Case) -> timedelta: ...


def current_deadline(case: Case) -> tuple[str, datetime] | None:
    """The citizen-facing deadline that matters now, by kind: the first reply until the
    author was first contacted (bot.cases.lifecycle.reaches_author), then the approved answer,
    then resolution. None for a closed case or without a policy."""
    if not case.state.is_open:
        return None
    if case.first_touched_at is None:
        kind, due = "first_touch", case.first_touch_due_at
    elif case.approved_at is None:
        kind, due = "answer", case.answer_due_at
    else:
        kind, due = "resolution", case.resolution_due_at
    return (kind, due) if due is not None else None


def running_deadlines(case: Case) -> list[tuple[str, datetime]]:
    """Every deadline the clock watches now: the optional reaction (internal: nobody has
    taken the case yet) beside the current citizen-facing one. Each has its own reminders,
    breach and escalation chain."""
    running: list[tuple[str, datetime]] = []
    if case.state.is_open and case.reacted_at is None and case.reaction_due_at is not None:
        running.append(("reaction", case.reaction_due_at))
    current = current_deadline(case)
    if current is not None:
        running.append(current)
    return running


async def arm_cases(
    uow: UnitOfWork,
    planner: SlaPlanner,
    cases: Sequence[Case],
    now: datetime,
    action: Action | None = None,
) -> datetime | None:
    """Re-plan the timers of cases that opened or changed, inside the caller's transaction:
    one read of their pending timers, one delete, one bulk insert per chunk. Returns the
    earliest due moment added, for the scheduler."""
    ids = [c.id for c in cases if c.id is not None]
    if not ids:
        return None
    pending = await uow.timers.pending_for(ids)
    drop: list[int] = []
    add: list[Timer] = []
    for case in cases:
        if case.id is None:
            continue
        plan = planner.plan(case, now, pending.get(case.id, ()), action)
        drop += plan.drop
        add += plan.add
    await uow.timers.delete(drop)
    await uow.timers.add_many(add)
    return min((t.due_at for t in add), default=None)
