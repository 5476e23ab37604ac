"""The world the lifecycle tests share: people, a case driven through its life, tables of
what each state offers and who may do what (written by hand, independent of lifecycle)."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.cases.lifecycle import (
    ActionRequest,
    DomainError,
    Transition,
    invariant_violations,
    transition,
)
from bot.model import (
    Action,
    Case,
    CaseState,
    DeptRole,
    Event,
    GlobalRole,
    IgnoreReason,
    Outcome,
    Priority,
    WaitReason,
)
from bot.staff.rights import Actor

A = Action
S = CaseState

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
HOUSING = "housing"
TRANSPORT = "transport"
URL = "https://vk.com/wall-1_2"


def new_case(**overrides: Any) -> Case:
    case = Case(
        id=1,
        department=HOUSING,
        state=S.NEW,
        priority=Priority.NORMAL,
        created_at=T0,
        source="vk",
    )
    return replace(case, **overrides)


def _roles(*roles: DeptRole) -> frozenset[DeptRole]:
    return frozenset(roles)


SPEC = Actor("spec", "Specialist", {HOUSING: _roles(DeptRole.SPECIALIST)})
SPEC2 = Actor("spec2", "Second specialist", {HOUSING: _roles(DeptRole.SPECIALIST)})
APPR = Actor("appr", "Approver", {HOUSING: _roles(DeptRole.APPROVER)})
LEAD = Actor("lead", "Lead", {HOUSING: _roles(DeptRole.LEAD)})
DUTY = Actor("duty", "Duty officer", global_roles=frozenset({GlobalRole.DUTY}))
BOSS = Actor("boss", "Leadership", global_roles=frozenset({GlobalRole.LEADERSHIP}))
ADMIN = Actor("admin", "Admin", global_roles=frozenset({GlobalRole.ADMIN}))
STRANGER = Actor.stranger("tg:999")
TSPEC = Actor("tspec", "Transport specialist", {TRANSPORT: _roles(DeptRole.SPECIALIST)})
TAPPR = Actor("tappr", "Transport approver", {TRANSPORT: _roles(DeptRole.APPROVER)})
# One person with several hats: may both write and approve in housing, leads transport.
MULTI = Actor(
    "multi",
    "Many hats",
    {HOUSING: _roles(DeptRole.SPECIALIST, DeptRole.APPROVER), TRANSPORT: _roles(DeptRole.LEAD)},
)
# Has every right in housing: used where the test is about states, not rights.
OMNI = Actor("omni", "Lead on duty", {HOUSING: _roles(DeptRole.LEAD)}, frozenset({GlobalRole.DUTY}))


# ---------------------------------------------------------------------------------------------
# Helpers


def summary(events: tuple[Event, ...] | list[Event]) -> list[tuple[Any, ...]]:
    return [(e.kind, e.actor, e.from_state, e.to_state, e.payload) for e in events]


class Story:
    """Drives one case through transitions, keeping a clock and the full event log."""

    def __init__(self, case: Case | None = None) -> None:
        self.case = case or new_case()
        self.log: list[Event] = []
        self.now = T0

    def do(self, action: Action, actor: Actor, **fields: Any) -> Transition:
        self.now += timedelta(minutes=5)
        before = self.case
        result = transition(before, ActionRequest(action, **fields), actor, self.now)
        assert result.case.version == before.version + 1
        assert invariant_violations(result.case) == []
        assert result.events, "a successful transition always leaves a trace"
        for event in result.events:
            assert event.at == self.now
            assert event.case_id == before.id
            assert event.actor == actor.id
        self.case = result.case
        self.log.extend(result.events)
        return result

    def refuse(
        self, action: Action, actor: Actor, error: type[DomainError], **fields: Any
    ) -> DomainError:
        before = copy.deepcopy(self.case)
        with pytest.raises(DomainError) as info:
            transition(
                self.case, ActionRequest(action, **fields), actor, self.now + timedelta(minutes=1)
            )
        assert type(info.value) is error, f"expected {error.__name__}, got {info.value!r}"
        assert self.case == before, "a refusal must leave the case untouched"
        return info.value


def story_in(state: CaseState) -> Story:
    """A case brought into `state` by the canonical path (spec writes, appr reviews)."""
    s = Story()
    if state is S.NEW:
        return s
    if state is S.IGNORED:
        s.do(A.IGNORE, SPEC, reason=IgnoreReason.SPAM)
        return s
    s.do(A.TAKE, SPEC)
    if state is S.TAKEN:
        return s
    if state is S.CLOSED:
        s.do(A.CLOSE, SPEC, outcome=Outcome.ANSWERED)
        return s
    s.do(A.DRAFT, SPEC, text="Draft one")
    if state is S.AWAITING_APPROVAL:
        return s
    if state is S.CHANGES_REQUESTED:
        s.do(A.REQUEST_CHANGES, APPR, note="Softer, please")
        return s
    s.do(A.APPROVE, APPR)
    if state is S.APPROVED:
        return s
    s.do(A.MARK_PUBLISHED, SPEC, url=URL, follow_up_at=T0 + timedelta(days=3))
    assert state is S.PUBLISHED
    return s


# Everything each action needs, valid: so the only reason to refuse is the one under test.
VALID_FIELDS: dict[Action, dict[str, Any]] = {
    A.TAKE: {},
    A.RELEASE: {},
    A.DRAFT: {"text": "An answer"},
    A.USE_TEMPLATE: {"text": "Template answer", "template_id": "apology"},
    A.APPROVE: {},
    A.REQUEST_CHANGES: {"note": "Fix the tone"},
    A.REJECT: {"note": "Wrong facts"},
    A.PUBLISH: {"url": URL},
    A.MARK_PUBLISHED: {"url": URL},
    A.ESCALATE: {"note": "Goes viral"},
    A.REROUTE: {"department": TRANSPORT},
    A.IGNORE: {"reason": IgnoreReason.SPAM},
    A.CLOSE: {"outcome": Outcome.ANSWERED},
    A.REOPEN: {"note": "Author came back"},
    A.FOLLOW_UP_DONE: {},
    A.FOLLOW_UP_LATER: {"follow_up_at": T0 + timedelta(days=2)},
    A.WAIT_FOR_AUTHOR: {"wait_reason": WaitReason.DETAILS_REQUESTED},
    A.AUTHOR_REPLIED: {},
    A.SET_CODE: {"code": "topic:heating"},
    A.SET_PRIORITY: {"priority": Priority.HIGH},
    A.ASSIGN: {"assignee": "spec2"},
    A.FOLLOW_UP: {"text": "The roof is fixed"},
    A.CORRECT: {"text": "The corrected answer"},
}

# What the state alone offers (written out by hand, independent of lifecycle.ALLOWED_FROM).
# PUBLISHED is listed with a follow-up pending.
EXPECTED_AVAILABLE: dict[CaseState, list[Action]] = {
    S.NEW: [A.TAKE, A.DRAFT, A.USE_TEMPLATE, A.ESCALATE, A.REROUTE, A.IGNORE, A.CLOSE],
    S.TAKEN: [
        A.TAKE,
        A.RELEASE,
        A.DRAFT,
        A.USE_TEMPLATE,
        A.ESCALATE,
        A.REROUTE,
        A.IGNORE,
        A.CLOSE,
        A.WAIT_FOR_AUTHOR,
    ],
    S.AWAITING_APPROVAL: [
        A.DRAFT,
        A.USE_TEMPLATE,
        A.APPROVE,
        A.REQUEST_CHANGES,
        A.REJECT,
        A.ESCALATE,
        A.REROUTE,
        A.IGNORE,
        A.CLOSE,
        A.WAIT_FOR_AUTHOR,
    ],
    S.CHANGES_REQUESTED: [
        A.TAKE,
        A.RELEASE,
        A.DRAFT,
        A.USE_TEMPLATE,
        A.ESCALATE,
        A.REROUTE,
        A.IGNORE,
        A.CLOSE,
        A.WAIT_FOR_AUTHOR,
    ],
    S.APPROVED: [
        A.DRAFT,
        A.USE_TEMPLATE,
        A.PUBLISH,
        A.MARK_PUBLISHED,
        A.ESCALATE,
        A.REROUTE,
        A.IGNORE,
        A.CLOSE,
        A.WAIT_FOR_AUTHOR,
    ],
    S.PUBLISHED: [
        A.ESCALATE,
        A.CLOSE,
        A.FOLLOW_UP_DONE,
        A.FOLLOW_UP_LATER,
        A.WAIT_FOR_AUTHOR,
        A.FOLLOW_UP,
        A.CORRECT,
    ],
    S.CLOSED: [A.REOPEN],
    S.IGNORED: [A.REOPEN],
}
OPEN_STATES = frozenset(set(CaseState) - {S.CLOSED, S.IGNORED})
# Coding, priority and assignment: at any moment of an open case, after the rest.
CODING = [A.SET_CODE, A.SET_PRIORITY, A.ASSIGN]
for _state in OPEN_STATES:
    EXPECTED_AVAILABLE[_state] = [*EXPECTED_AVAILABLE[_state], *CODING]
# Actions a case's fields gate besides its state (a follow-up asked for, waiting for the
# author): the table above shows them only where the canonical case has that field.
ALLOWED_STATES: dict[Action, frozenset[CaseState]] = {
    action: frozenset(s for s, actions in EXPECTED_AVAILABLE.items() if action in actions)
    for action in Action
} | {
    A.FOLLOW_UP_DONE: OPEN_STATES,
    A.FOLLOW_UP_LATER: OPEN_STATES,
    A.AUTHOR_REPLIED: OPEN_STATES,
    # Also before anything is public, once the talk moved to private messages.
    A.FOLLOW_UP: frozenset({S.TAKEN, S.CHANGES_REQUESTED, S.APPROVED, S.PUBLISHED}),
}

# Who may do what to a housing case (hand-written rights matrix).
RIGHTS_ACTORS = (SPEC, APPR, LEAD, DUTY, BOSS, ADMIN, STRANGER, TSPEC)
_ALL_DEPT = {"spec", "appr", "lead"}
EXPECTED_MAY: dict[Action, set[str]] = {
    A.TAKE: _ALL_DEPT,
    A.RELEASE: _ALL_DEPT,
    A.DRAFT: _ALL_DEPT,
    A.USE_TEMPLATE: _ALL_DEPT,
    # Leadership and press secretaries review at their tiers of a chain (which tier is the
    # lifecycle's check: test_tiers.py).
    A.APPROVE: {"appr", "lead", "boss"},
    A.REQUEST_CHANGES: {"appr", "lead", "boss"},
    A.REJECT: {"appr", "lead", "boss"},
    A.PUBLISH: _ALL_DEPT,
    A.MARK_PUBLISHED: _ALL_DEPT,
    A.ESCALATE: _ALL_DEPT | {"duty", "boss"},
    A.REROUTE: _ALL_DEPT | {"duty"},
    A.IGNORE: _ALL_DEPT | {"duty"},
    A.CLOSE: _ALL_DEPT | {"duty"},
    A.REOPEN: {"appr", "lead", "duty"},
    A.FOLLOW_UP_DONE: _ALL_DEPT,
    A.FOLLOW_UP_LATER: _ALL_DEPT,
    A.WAIT_FOR_AUTHOR: _ALL_DEPT,
    A.AUTHOR_REPLIED: _ALL_DEPT,
    A.SET_CODE: _ALL_DEPT,
    A.SET_PRIORITY: {"lead", "duty"},
    A.ASSIGN: {"lead"},
    A.FOLLOW_UP: _ALL_DEPT,
    A.CORRECT: _ALL_DEPT,
}


def state_for(action: Action) -> CaseState:
    """A state from which the action is allowed (the first one in the table)."""
    if action is A.AUTHOR_REPLIED:  # offered only while waiting: see the rights matrix
        return S.TAKEN
    return next(s for s in EXPECTED_AVAILABLE if action in EXPECTED_AVAILABLE[s])


def same_refusal(a: DomainError, b: DomainError) -> bool:
    return type(a) is type(b) and a.params == b.params
