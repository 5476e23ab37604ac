"""The case state machine: happy paths, refusals, bookkeeping and a property-based random walk."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.cases.lifecycle import (
    ActionRequest,
    DomainError,
    InvalidInput,
    InvalidTransition,
    MissingInput,
    NoRight,
    NotAssignee,
    SelfReview,
    StaleCard,
    Transition,
    available_actions,
    check,
    invariant_violations,
    transition,
)
from bot.cases.rights import Actor
from bot.model import (
    MAX_DRAFT_TEXT,
    MAX_NOTE,
    MAX_URL,
    Action,
    Case,
    CaseState,
    DeptRole,
    DraftStatus,
    Event,
    GlobalRole,
    IgnoreReason,
    Outcome,
    Priority,
    WaitReason,
)

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
    S.PUBLISHED: [A.ESCALATE, A.CLOSE, A.FOLLOW_UP_DONE, A.FOLLOW_UP_LATER, A.WAIT_FOR_AUTHOR],
    S.CLOSED: [A.REOPEN],
    S.IGNORED: [A.REOPEN],
}
_OPEN_STATES = frozenset(set(CaseState) - {S.CLOSED, S.IGNORED})
# Actions a case's fields gate besides its state (a follow-up asked for, waiting for the
# author): the table above shows them only where the canonical case has that field.
ALLOWED_STATES: dict[Action, frozenset[CaseState]] = {
    action: frozenset(s for s, actions in EXPECTED_AVAILABLE.items() if action in actions)
    for action in Action
} | {
    A.FOLLOW_UP_DONE: _OPEN_STATES,
    A.FOLLOW_UP_LATER: _OPEN_STATES,
    A.AUTHOR_REPLIED: _OPEN_STATES,
}

# Who may do what to a housing case (hand-written rights matrix).
RIGHTS_ACTORS = (SPEC, APPR, LEAD, DUTY, BOSS, ADMIN, STRANGER, TSPEC)
_ALL_DEPT = {"spec", "appr", "lead"}
EXPECTED_MAY: dict[Action, set[str]] = {
    A.TAKE: _ALL_DEPT,
    A.RELEASE: _ALL_DEPT,
    A.DRAFT: _ALL_DEPT,
    A.USE_TEMPLATE: _ALL_DEPT,
    A.APPROVE: {"appr", "lead"},
    A.REQUEST_CHANGES: {"appr", "lead"},
    A.REJECT: {"appr", "lead"},
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
}


def _state_for(action: Action) -> CaseState:
    """A state from which the action is allowed (the first one in the table)."""
    if action is A.AUTHOR_REPLIED:  # offered only while waiting: see the rights matrix
        return S.TAKEN
    return next(s for s in EXPECTED_AVAILABLE if action in EXPECTED_AVAILABLE[s])


# ---------------------------------------------------------------------------------------------
# Happy paths


def test_take_draft_approve_publish_close() -> None:
    s = Story()

    t = s.do(A.TAKE, SPEC)
    assert (t.case.state, t.case.assignee) == (S.TAKEN, "spec")
    assert summary(t.events) == [("take", "spec", S.NEW, S.TAKEN, {})]

    t = s.do(A.DRAFT, SPEC, text="  We are sorry, fixing it today.  ")
    draft = t.case.latest_draft
    assert t.case.state is S.AWAITING_APPROVAL
    assert draft is not None
    assert (draft.version, draft.text, draft.author, draft.status) == (
        1,
        "We are sorry, fixing it today.",
        "spec",
        DraftStatus.PENDING,
    )
    assert draft.created_at == s.now and draft.template_id is None and not draft.pre_approved
    assert summary(t.events) == [
        ("draft", "spec", S.TAKEN, S.AWAITING_APPROVAL, {"version": 1, "pre_approved": False})
    ]

    approve_time = s.now + timedelta(minutes=5)
    t = s.do(A.APPROVE, APPR)
    draft = t.case.latest_draft
    assert t.case.state is S.APPROVED
    assert draft is not None and draft.status is DraftStatus.APPROVED
    assert (draft.reviewer, draft.reviewed_at, draft.note) == ("appr", approve_time, None)
    assert t.case.approved_at == approve_time
    assert t.case.approved_draft == draft
    assert summary(t.events) == [
        ("approve", "appr", S.AWAITING_APPROVAL, S.APPROVED, {"version": 1})
    ]

    t = s.do(A.PUBLISH, SPEC, url=URL)
    assert t.case.state is S.PUBLISHED
    assert (t.case.published_at, t.case.published_url) == (s.now, URL)
    assert t.case.follow_up_due_at is None
    assert summary(t.events) == [
        ("publish", "spec", S.APPROVED, S.PUBLISHED, {"version": 1, "url": URL})
    ]
    # No follow-up was asked for.
    assert available_actions(t.case) == [A.ESCALATE, A.CLOSE, A.WAIT_FOR_AUTHOR]

    t = s.do(A.CLOSE, SPEC, outcome=Outcome.ANSWERED)
    assert t.case.state is S.CLOSED
    assert (t.case.outcome, t.case.closed_at, t.case.ignore_reason) == (
        Outcome.ANSWERED,
        s.now,
        None,
    )
    assert summary(t.events) == [("close", "spec", S.PUBLISHED, S.CLOSED, {"outcome": "answered"})]

    assert s.case.version == 5
    assert s.case.assignee == "spec"
    assert [e.kind for e in s.log] == ["take", "draft", "approve", "publish", "close"]
    assert s.case.first_touched_at == T0 + timedelta(minutes=5)


def test_pre_approved_template_is_published_in_two_steps() -> None:
    s = Story()
    s.do(A.TAKE, SPEC)
    t = s.do(
        A.USE_TEMPLATE, SPEC, text="Standard apology", template_id="apology", pre_approved=True
    )
    draft = t.case.latest_draft
    assert t.case.state is S.APPROVED
    assert draft is not None
    assert (draft.status, draft.template_id, draft.pre_approved, draft.reviewer) == (
        DraftStatus.APPROVED,
        "apology",
        True,
        None,
    )
    assert t.case.approved_at == s.now
    assert summary(t.events) == [
        (
            "use_template",
            "spec",
            S.TAKEN,
            S.APPROVED,
            {"version": 1, "template_id": "apology", "pre_approved": True},
        )
    ]
    t = s.do(A.MARK_PUBLISHED, SPEC, url=URL)
    assert t.case.state is S.PUBLISHED
    assert summary(t.events) == [
        ("mark_published", "spec", S.APPROVED, S.PUBLISHED, {"version": 1, "url": URL})
    ]
    assert s.case.version == 3  # take, then two steps from a taken case to published
    assert [e.kind for e in s.log] == ["take", "use_template", "mark_published"]


def test_template_not_pre_approved_awaits_approval() -> None:
    s = story_in(S.TAKEN)
    t = s.do(A.USE_TEMPLATE, SPEC, text="Standard apology", template_id="apology")
    draft = t.case.latest_draft
    assert t.case.state is S.AWAITING_APPROVAL
    assert draft is not None
    assert (draft.status, draft.template_id, draft.pre_approved) == (
        DraftStatus.PENDING,
        "apology",
        False,
    )
    assert t.case.approved_at is None
    assert summary(t.events) == [
        (
            "use_template",
            "spec",
            S.TAKEN,
            S.AWAITING_APPROVAL,
            {"version": 1, "template_id": "apology", "pre_approved": False},
        )
    ]


def test_pre_approved_flag_is_ignored_on_a_plain_draft() -> None:
    s = story_in(S.TAKEN)
    t = s.do(A.DRAFT, SPEC, text="Mine", pre_approved=True, template_id="apology")
    draft = t.case.latest_draft
    assert t.case.state is S.AWAITING_APPROVAL
    assert draft is not None
    assert (draft.status, draft.pre_approved, draft.template_id) == (
        DraftStatus.PENDING,
        False,
        None,
    )


def test_request_changes_then_second_version_then_follow_up_resolves() -> None:
    s = story_in(S.AWAITING_APPROVAL)

    t = s.do(A.REQUEST_CHANGES, APPR, note="  Too dry  ")
    first = t.case.latest_draft
    assert t.case.state is S.CHANGES_REQUESTED
    assert first is not None
    assert (first.status, first.reviewer, first.note) == (
        DraftStatus.CHANGES_REQUESTED,
        "appr",
        "Too dry",
    )
    assert summary(t.events) == [
        (
            "request_changes",
            "appr",
            S.AWAITING_APPROVAL,
            S.CHANGES_REQUESTED,
            {"version": 1, "note": "Too dry"},
        )
    ]

    t = s.do(A.DRAFT, SPEC, text="Warmer answer")
    assert t.case.state is S.AWAITING_APPROVAL
    assert [(d.version, d.status) for d in t.case.drafts] == [
        (1, DraftStatus.CHANGES_REQUESTED),
        (2, DraftStatus.PENDING),
    ]
    assert summary(t.events) == [
        (
            "draft",
            "spec",
            S.CHANGES_REQUESTED,
            S.AWAITING_APPROVAL,
            {"version": 2, "pre_approved": False},
        )
    ]

    t = s.do(A.APPROVE, APPR, note="Good")
    assert t.case.state is S.APPROVED
    assert t.case.approved_draft is not None and t.case.approved_draft.version == 2
    assert summary(t.events) == [
        ("approve", "appr", S.AWAITING_APPROVAL, S.APPROVED, {"version": 2, "note": "Good"})
    ]

    follow_up = s.now + timedelta(days=2)
    t = s.do(A.MARK_PUBLISHED, SPEC, url=URL, follow_up_at=follow_up)
    assert t.case.state is S.PUBLISHED
    assert (t.case.published_url, t.case.follow_up_due_at) == (URL, follow_up)
    assert summary(t.events) == [
        ("mark_published", "spec", S.APPROVED, S.PUBLISHED, {"version": 2, "url": URL})
    ]
    assert available_actions(t.case) == EXPECTED_AVAILABLE[S.PUBLISHED]

    t = s.do(A.FOLLOW_UP_DONE, SPEC2)
    assert t.case.state is S.CLOSED
    assert (t.case.outcome, t.case.closed_at, t.case.follow_up_due_at) == (
        Outcome.RESOLVED,
        s.now,
        None,
    )
    assert summary(t.events) == [
        ("follow_up_done", "spec2", S.PUBLISHED, S.CLOSED, {"outcome": "resolved"})
    ]
    assert s.case.version == 7


def test_reject_returns_to_taken() -> None:
    s = story_in(S.AWAITING_APPROVAL)
    t = s.do(A.REJECT, LEAD, note="Not our competence")
    draft = t.case.latest_draft
    assert (t.case.state, t.case.assignee) == (S.TAKEN, "spec")
    assert draft is not None
    assert (draft.status, draft.reviewer, draft.note) == (
        DraftStatus.REJECTED,
        "lead",
        "Not our competence",
    )
    assert t.case.approved_at is None
    assert summary(t.events) == [
        (
            "reject",
            "lead",
            S.AWAITING_APPROVAL,
            S.TAKEN,
            {"version": 1, "note": "Not our competence"},
        )
    ]


def test_reject_without_note_is_allowed() -> None:
    s = story_in(S.AWAITING_APPROVAL)
    t = s.do(A.REJECT, APPR)
    assert t.case.state is S.TAKEN
    assert summary(t.events) == [("reject", "appr", S.AWAITING_APPROVAL, S.TAKEN, {"version": 1})]


def test_new_draft_while_awaiting_approval_supersedes_the_pending_one() -> None:
    s = story_in(S.AWAITING_APPROVAL)
    t = s.do(A.DRAFT, SPEC, text="Better wording")
    assert t.case.state is S.AWAITING_APPROVAL
    assert [(d.version, d.status) for d in t.case.drafts] == [
        (1, DraftStatus.SUPERSEDED),
        (2, DraftStatus.PENDING),
    ]
    assert t.case.drafts[0].text == "Draft one"  # history is kept, only the status changes
    assert summary(t.events) == [
        (
            "draft",
            "spec",
            S.AWAITING_APPROVAL,
            S.AWAITING_APPROVAL,
            {"version": 2, "pre_approved": False},
        )
    ]
    t = s.do(A.APPROVE, APPR)
    assert t.case.approved_draft is not None and t.case.approved_draft.version == 2


def test_new_draft_after_approval_needs_approval_again() -> None:
    s = story_in(S.APPROVED)
    approved_at = s.case.approved_at
    t = s.do(A.DRAFT, SPEC, text="Amended")
    assert t.case.state is S.AWAITING_APPROVAL
    assert [d.status for d in t.case.drafts] == [DraftStatus.APPROVED, DraftStatus.PENDING]
    assert t.case.approved_at == approved_at


def test_draft_on_a_new_case_takes_it_implicitly() -> None:
    s = Story()
    t = s.do(A.DRAFT, SPEC2, text="Quick answer")
    assert (t.case.state, t.case.assignee) == (S.AWAITING_APPROVAL, "spec2")
    assert summary(t.events) == [
        ("take", "spec2", S.NEW, S.TAKEN, {}),
        ("draft", "spec2", S.TAKEN, S.AWAITING_APPROVAL, {"version": 1, "pre_approved": False}),
    ]
    assert t.case.version == 1  # one transition, two events


def test_template_on_a_new_case_takes_it_implicitly() -> None:
    s = Story()
    t = s.do(A.USE_TEMPLATE, SPEC, text="T", template_id="apology", pre_approved=True)
    assert (t.case.state, t.case.assignee) == (S.APPROVED, "spec")
    assert [(e.kind, e.from_state, e.to_state) for e in t.events] == [
        ("take", S.NEW, S.TAKEN),
        ("use_template", S.TAKEN, S.APPROVED),
    ]


@pytest.mark.parametrize("state", [S.TAKEN, S.CHANGES_REQUESTED])
def test_lead_takes_over_a_case_from_someone_else(state: CaseState) -> None:
    s = story_in(state)
    t = s.do(A.TAKE, LEAD)
    assert (t.case.state, t.case.assignee) == (state, "lead")
    assert summary(t.events) == [("take", "lead", state, state, {"previous": "spec"})]


@pytest.mark.parametrize("state", [S.TAKEN, S.CHANGES_REQUESTED])
def test_plain_specialist_cannot_take_over(state: CaseState) -> None:
    s = story_in(state)
    err = s.refuse(A.TAKE, SPEC2, NotAssignee)
    assert err.params == {"assignee": "spec"}
    assert err.code == "not_assignee"
    s.refuse(A.TAKE, APPR, NotAssignee)


def test_taking_your_own_case_again_is_invalid() -> None:
    s = story_in(S.TAKEN)
    s.refuse(A.TAKE, SPEC, InvalidTransition)
    s.do(A.TAKE, LEAD)
    s.refuse(A.TAKE, LEAD, InvalidTransition)


@pytest.mark.parametrize("state", [S.TAKEN, S.CHANGES_REQUESTED])
@pytest.mark.parametrize("actor", [SPEC, LEAD], ids=["owner", "lead"])
def test_release_by_owner_or_lead(state: CaseState, actor: Actor) -> None:
    s = story_in(state)
    drafts = s.case.drafts
    t = s.do(A.RELEASE, actor)
    assert (t.case.state, t.case.assignee) == (S.NEW, None)
    assert t.case.drafts == drafts
    assert summary(t.events) == [("release", actor.id, state, S.NEW, {"previous": "spec"})]


@pytest.mark.parametrize("actor", [SPEC2, APPR], ids=["specialist", "approver"])
def test_release_refused_to_others(actor: Actor) -> None:
    s = story_in(S.TAKEN)
    s.refuse(A.RELEASE, actor, NotAssignee)


def test_drafting_on_someone_elses_case() -> None:
    s = story_in(S.TAKEN)
    s.refuse(A.DRAFT, SPEC2, NotAssignee, text="Let me")
    s.refuse(A.USE_TEMPLATE, SPEC2, NotAssignee, text="Let me", template_id="t")
    t = s.do(A.DRAFT, LEAD, text="Lead writes")  # a lead may write on anyone's case
    assert t.case.assignee == "spec"
    assert t.case.latest_draft is not None and t.case.latest_draft.author == "lead"
    s.refuse(A.APPROVE, LEAD, SelfReview)
    s.do(A.APPROVE, APPR)


@pytest.mark.parametrize("actor", [DUTY, BOSS, SPEC2, LEAD], ids=lambda a: a.id)
def test_escalate_increments_level_and_keeps_state(actor: Actor) -> None:
    s = story_in(S.AWAITING_APPROVAL)
    before = s.case
    t = s.do(A.ESCALATE, actor, note="Journalists asking")
    assert t.case.state is S.AWAITING_APPROVAL
    assert t.case.escalation_level == 1
    assert replace(t.case, escalation_level=0, version=before.version) == before
    assert summary(t.events) == [
        (
            "escalate",
            actor.id,
            S.AWAITING_APPROVAL,
            S.AWAITING_APPROVAL,
            {"level": 1, "reason": "Journalists asking"},
        )
    ]
    t = s.do(A.ESCALATE, actor)
    assert t.case.escalation_level == 2
    assert summary(t.events)[0][4] == {"level": 2}


def test_escalate_on_a_published_case() -> None:
    s = story_in(S.PUBLISHED)
    t = s.do(A.ESCALATE, DUTY)
    assert t.case.state is S.PUBLISHED and t.case.escalation_level == 1


@pytest.mark.parametrize("actor", [STRANGER, TSPEC, ADMIN], ids=lambda a: a.id)
def test_escalate_refused_without_rights(actor: Actor) -> None:
    s = story_in(S.NEW)
    err = s.refuse(A.ESCALATE, actor, NoRight)
    assert err.params == {"action": "escalate", "department": HOUSING}
    assert err.code == "no_right"


def test_reroute_moves_department_and_retires_pending_draft() -> None:
    s = story_in(S.AWAITING_APPROVAL)
    t = s.do(A.REROUTE, DUTY, department=" transport ")
    assert t.case.department == TRANSPORT
    assert (t.case.state, t.case.assignee) == (S.NEW, None)
    assert [d.status for d in t.case.drafts] == [DraftStatus.SUPERSEDED]
    assert summary(t.events) == [
        (
            "reroute",
            "duty",
            S.AWAITING_APPROVAL,
            S.NEW,
            {"source": HOUSING, "target": TRANSPORT},
        )
    ]
    # The case now belongs to transport: housing staff lose it, transport staff get it.
    s.refuse(A.TAKE, SPEC, NoRight)
    t = s.do(A.TAKE, TSPEC)
    assert (t.case.state, t.case.assignee) == (S.TAKEN, "tspec")


@pytest.mark.parametrize("state", [S.NEW, S.TAKEN, S.CHANGES_REQUESTED, S.APPROVED])
def test_reroute_from_every_allowed_state(state: CaseState) -> None:
    s = story_in(state)
    drafts = s.case.drafts
    t = s.do(A.REROUTE, SPEC, department=TRANSPORT)
    assert (t.case.department, t.case.state, t.case.assignee) == (TRANSPORT, S.NEW, None)
    assert t.case.drafts == drafts  # nothing pending: nothing retired


@pytest.mark.parametrize("target", [HOUSING, " housing "])
def test_reroute_to_same_department_is_invalid(target: str) -> None:
    s = story_in(S.TAKEN)
    err = s.refuse(A.REROUTE, SPEC, InvalidInput, department=target)
    assert err.params["field"] == "department"


@pytest.mark.parametrize("target", [None, "", "   "])
def test_reroute_needs_a_department(target: str | None) -> None:
    s = story_in(S.TAKEN)
    err = s.refuse(A.REROUTE, SPEC, MissingInput, department=target)
    assert err.params == {"field": "department"}


@pytest.mark.parametrize("reason", list(IgnoreReason))
def test_ignore_with_each_reason(reason: IgnoreReason) -> None:
    s = story_in(S.AWAITING_APPROVAL)
    t = s.do(A.IGNORE, DUTY, reason=reason)
    assert t.case.state is S.IGNORED
    assert (t.case.ignore_reason, t.case.outcome, t.case.closed_at) == (reason, None, s.now)
    assert [d.status for d in t.case.drafts] == [DraftStatus.SUPERSEDED]
    assert summary(t.events) == [
        ("ignore", "duty", S.AWAITING_APPROVAL, S.IGNORED, {"reason": reason.value})
    ]
    assert available_actions(t.case) == [A.REOPEN]


@pytest.mark.parametrize("outcome", list(Outcome))
def test_close_with_outcome(outcome: Outcome) -> None:
    s = story_in(S.PUBLISHED)
    assert s.case.follow_up_due_at is not None
    t = s.do(A.CLOSE, SPEC2, outcome=outcome)
    assert t.case.state is S.CLOSED
    assert (t.case.outcome, t.case.ignore_reason, t.case.closed_at) == (outcome, None, s.now)
    assert t.case.follow_up_due_at is None
    assert summary(t.events) == [
        ("close", "spec2", S.PUBLISHED, S.CLOSED, {"outcome": outcome.value})
    ]


def test_close_an_untouched_case_by_duty() -> None:
    s = Story()
    t = s.do(A.CLOSE, DUTY, outcome=Outcome.NO_ACTION)
    assert t.case.state is S.CLOSED and t.case.assignee is None


@pytest.mark.parametrize("terminal", [S.CLOSED, S.IGNORED])
@pytest.mark.parametrize("actor", [APPR, LEAD, DUTY], ids=lambda a: a.id)
def test_reopen(terminal: CaseState, actor: Actor) -> None:
    s = story_in(terminal)
    t = s.do(A.REOPEN, actor, note="Author wrote again")
    c = t.case
    assert (c.state, c.assignee, c.outcome, c.ignore_reason, c.closed_at, c.follow_up_due_at) == (
        S.NEW,
        None,
        None,
        None,
        None,
        None,
    )
    assert summary(t.events) == [
        ("reopen", actor.id, terminal, S.NEW, {"note": "Author wrote again"})
    ]
    s.do(A.TAKE, SPEC2)  # and the case can be worked again


def test_reopen_of_a_published_case_then_published_again() -> None:
    s = story_in(S.PUBLISHED)
    s.do(A.CLOSE, SPEC, outcome=Outcome.ANSWERED)
    s.do(A.REOPEN, APPR)
    s.do(A.DRAFT, SPEC2, text="Update")
    s.do(A.APPROVE, LEAD)
    t = s.do(A.PUBLISH, SPEC2, url="https://vk.com/wall-1_3")
    assert (t.case.state, t.case.published_url, t.case.published_at) == (
        S.PUBLISHED,
        "https://vk.com/wall-1_3",
        s.now,
    )
    assert [d.status for d in t.case.drafts] == [DraftStatus.APPROVED, DraftStatus.APPROVED]


def test_publish_without_url_keeps_previous_url() -> None:
    s = story_in(S.APPROVED)
    t = s.do(A.PUBLISH, SPEC)
    assert t.case.published_url is None
    assert summary(t.events) == [("publish", "spec", S.APPROVED, S.PUBLISHED, {"version": 1})]


# ---------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(
    ("action", "fields"),
    [(A.APPROVE, {}), (A.REJECT, {}), (A.REQUEST_CHANGES, {"note": "me to me"})],
    ids=["approve", "reject", "request_changes"],
)
@pytest.mark.parametrize("author", [APPR, LEAD, MULTI], ids=lambda a: a.id)
def test_four_eyes(action: Action, fields: dict[str, Any], author: Actor) -> None:
    s = Story()
    s.do(A.DRAFT, author, text="My own answer")
    err = s.refuse(action, author, SelfReview, **fields)
    assert err.params == {"version": 1}
    assert err.code == "self_review"
    s.do(action, APPR if author is not APPR else LEAD, **fields)  # somebody else may


def test_four_eyes_applies_to_the_latest_author_only() -> None:
    s = Story()
    s.do(A.DRAFT, SPEC, text="v1")
    s.do(A.REQUEST_CHANGES, APPR, note="shorter")
    s.do(A.DRAFT, LEAD, text="v2 by the lead")
    s.refuse(A.APPROVE, LEAD, SelfReview)
    t = s.do(A.APPROVE, APPR)  # reviewed v1, but did not write v2: allowed
    assert t.case.latest_draft is not None and t.case.latest_draft.reviewer == "appr"


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("actor", RIGHTS_ACTORS, ids=lambda a: a.id)
def test_rights_matrix(action: Action, actor: Actor) -> None:
    expected = actor.id in EXPECTED_MAY[action]
    assert actor.may(action, HOUSING) is expected
    case = story_in(_state_for(action)).case
    if action is A.AUTHOR_REPLIED:
        case = replace(case, waiting_since=T0)
    assert (action in available_actions(case, actor)) is expected
    if not expected:
        s = story_in(_state_for(action))
        err = s.refuse(action, actor, NoRight, **VALID_FIELDS[action])
        assert err.params == {"action": action.value, "department": HOUSING}


def test_no_right_examples() -> None:
    s = story_in(S.NEW)
    s.refuse(A.TAKE, STRANGER, NoRight)
    s.refuse(A.TAKE, TSPEC, NoRight)  # specialist of another department
    s.refuse(A.IGNORE, BOSS, NoRight, reason=IgnoreReason.SPAM)
    s = story_in(S.AWAITING_APPROVAL)
    s.refuse(A.APPROVE, SPEC2, NoRight)  # a specialist is no approver
    s.refuse(A.APPROVE, TAPPR, NoRight)  # an approver of another department neither
    s.refuse(A.APPROVE, DUTY, NoRight)
    s = story_in(S.CLOSED)
    s.refuse(A.REOPEN, SPEC, NoRight)


def test_no_right_is_checked_before_state_and_version() -> None:
    s = story_in(S.CLOSED)
    s.refuse(A.TAKE, STRANGER, NoRight, expected_version=99)


def test_stale_is_checked_before_state() -> None:
    s = story_in(S.CLOSED)
    s.refuse(A.TAKE, SPEC, StaleCard, expected_version=0)


_WRONG_STATE_CASES = [
    (action, state)
    for action in Action
    for state in CaseState
    if state not in ALLOWED_STATES[action]
]


@pytest.mark.parametrize(
    ("action", "state"), _WRONG_STATE_CASES, ids=[f"{a}-{s}" for a, s in _WRONG_STATE_CASES]
)
def test_invalid_state(action: Action, state: CaseState) -> None:
    s = story_in(state)
    err = s.refuse(action, OMNI, InvalidTransition, **VALID_FIELDS[action])
    assert err.params == {"action": action.value, "state": state.value}
    assert err.code == "invalid_state"


def test_follow_up_done_without_a_follow_up_is_invalid() -> None:
    s = story_in(S.APPROVED)
    s.do(A.PUBLISH, SPEC, url=URL)
    s.refuse(A.FOLLOW_UP_DONE, SPEC, InvalidTransition)


@pytest.mark.parametrize("offset", [-1, 1, 7])
def test_stale_expected_version(offset: int) -> None:
    s = story_in(S.AWAITING_APPROVAL)
    current = s.case.version
    err = s.refuse(A.APPROVE, APPR, StaleCard, expected_version=current + offset)
    assert err.params == {"expected": current + offset, "actual": current}
    assert err.code == "stale"
    t = s.do(A.APPROVE, APPR, expected_version=current)
    assert t.case.version == current + 1
    # The card that was just pressed is now stale itself.
    s.refuse(A.PUBLISH, SPEC, StaleCard, expected_version=current)


def test_double_press_is_stale() -> None:
    s = story_in(S.NEW)
    card = s.case.version
    s.do(A.TAKE, SPEC, expected_version=card)
    s.refuse(A.TAKE, SPEC2, StaleCard, expected_version=card)


@pytest.mark.parametrize(
    ("state", "action", "actor", "fields", "missing"),
    [
        (S.TAKEN, A.DRAFT, SPEC, {"text": None}, "text"),
        (S.TAKEN, A.DRAFT, SPEC, {"text": ""}, "text"),
        (S.TAKEN, A.DRAFT, SPEC, {"text": " \n\t "}, "text"),
        (S.NEW, A.DRAFT, SPEC, {}, "text"),
        (S.TAKEN, A.USE_TEMPLATE, SPEC, {"text": "T"}, "template_id"),
        (S.TAKEN, A.USE_TEMPLATE, SPEC, {"text": "T", "template_id": ""}, "template_id"),
        (S.NEW, A.USE_TEMPLATE, SPEC, {"text": "T", "pre_approved": True}, "template_id"),
        (S.TAKEN, A.USE_TEMPLATE, SPEC, {"template_id": "apology"}, "text"),
        (S.AWAITING_APPROVAL, A.REQUEST_CHANGES, APPR, {}, "note"),
        (S.AWAITING_APPROVAL, A.REQUEST_CHANGES, APPR, {"note": "   "}, "note"),
        (S.TAKEN, A.IGNORE, SPEC, {}, "reason"),
        (S.NEW, A.IGNORE, DUTY, {"note": "spam"}, "reason"),
        (S.TAKEN, A.CLOSE, SPEC, {}, "outcome"),
        (S.PUBLISHED, A.CLOSE, DUTY, {}, "outcome"),
        (S.TAKEN, A.REROUTE, SPEC, {}, "department"),
    ],
)
def test_missing_input(
    state: CaseState, action: Action, actor: Actor, fields: dict[str, Any], missing: str
) -> None:
    s = story_in(state)
    err = s.refuse(action, actor, MissingInput, **fields)
    assert err.params == {"field": missing}
    assert err.code == "missing_input"


@pytest.mark.parametrize(
    ("state", "action", "actor", "fields", "field"),
    [
        (S.TAKEN, A.DRAFT, SPEC, {"text": "x" * (MAX_DRAFT_TEXT + 1)}, "text"),
        (S.NEW, A.DRAFT, SPEC, {"text": "x" * (MAX_DRAFT_TEXT + 1)}, "text"),
        (
            S.TAKEN,
            A.USE_TEMPLATE,
            SPEC,
            {"text": "x" * (MAX_DRAFT_TEXT + 1), "template_id": "t"},
            "text",
        ),
        (
            S.AWAITING_APPROVAL,
            A.REQUEST_CHANGES,
            APPR,
            {"note": "n" * (MAX_NOTE + 1)},
            "note",
        ),
        (S.AWAITING_APPROVAL, A.REJECT, APPR, {"note": "n" * (MAX_NOTE + 1)}, "note"),
        (S.NEW, A.ESCALATE, DUTY, {"note": "n" * (MAX_NOTE + 1)}, "note"),
        (S.APPROVED, A.PUBLISH, SPEC, {"url": "https://e.org/" + "a" * MAX_URL}, "url"),
        (S.APPROVED, A.MARK_PUBLISHED, SPEC, {"url": "ftp://example.org/post"}, "url"),
        (S.APPROVED, A.MARK_PUBLISHED, SPEC, {"url": "javascript:alert(1)"}, "url"),
        (S.APPROVED, A.MARK_PUBLISHED, SPEC, {"url": "vk.com/wall-1_2"}, "url"),
        (S.APPROVED, A.PUBLISH, SPEC, {"url": ""}, "url"),
    ],
)
def test_invalid_input(
    state: CaseState, action: Action, actor: Actor, fields: dict[str, Any], field: str
) -> None:
    s = story_in(state)
    err = s.refuse(action, actor, InvalidInput, **fields)
    assert err.params["field"] == field
    assert err.code == "invalid_input"


def test_inputs_at_the_limit_are_accepted() -> None:
    s = story_in(S.TAKEN)
    s.do(A.DRAFT, SPEC, text="x" * MAX_DRAFT_TEXT)
    s.do(A.REQUEST_CHANGES, APPR, note="n" * MAX_NOTE)
    s.do(A.DRAFT, SPEC, text="y")
    s.do(A.APPROVE, APPR)
    url = "https://e.org/" + "a" * (MAX_URL - len("https://e.org/"))
    assert len(url) == MAX_URL
    t = s.do(A.PUBLISH, SPEC, url=url)
    assert t.case.published_url == url


def test_refusal_does_not_mutate_anything_in_a_deep_case() -> None:
    s = story_in(S.PUBLISHED)
    s.refuse(A.DRAFT, SPEC, InvalidTransition, text="again")
    s.refuse(A.CLOSE, STRANGER, NoRight, outcome=Outcome.ANSWERED)
    s.refuse(A.CLOSE, SPEC, MissingInput)
    s.refuse(A.CLOSE, SPEC, StaleCard, outcome=Outcome.ANSWERED, expected_version=0)


# ---------------------------------------------------------------------------------------------
# check: the guards of transition, once, for prompts and menus as for the actions themselves


def _same(a: DomainError, b: DomainError) -> bool:
    return type(a) is type(b) and a.params == b.params


def _cases_to_check() -> list[Case]:
    """Every state, with and without a wait for the author, a follow-up, a draft of one's own."""
    cases = [story_in(state).case for state in CaseState]
    cases += [replace(c, waiting_since=T0) for c in cases if c.state in _OPEN_STATES]
    cases.append(replace(story_in(S.PUBLISHED).case, follow_up_due_at=None))
    for writer in (MULTI, LEAD, OMNI):  # each may also review: only four eyes says no
        s = Story()
        s.do(A.DRAFT, writer, text="My own answer")
        cases.append(s.case)
    s = story_in(S.TAKEN)
    s.do(A.TAKE, LEAD)  # owned by a lead: others may not write, other leads may take over
    cases.append(s.case)
    return cases


CHECK_ACTORS = (SPEC, SPEC2, APPR, LEAD, DUTY, BOSS, ADMIN, STRANGER, TSPEC, TAPPR, MULTI, OMNI)


@pytest.mark.parametrize("action", list(Action))
def test_check_and_transition_agree(action: Action) -> None:
    """For every state and person: check refuses exactly what transition refuses, with the
    same error; only a request without its input (a prompt's) passes check and then lacks it."""
    for case in _cases_to_check():
        fields = VALID_FIELDS[action]
        requests = [
            (ActionRequest(action, **fields), False),
            (ActionRequest(action, expected_version=case.version, **fields), False),
            (ActionRequest(action, expected_version=case.version + 1, **fields), False),
            (ActionRequest(action), True),  # a prompt's request: the text is not written yet
        ]
        for actor in CHECK_ACTORS:
            for request, bare in requests:
                where = (case.state, case.waiting_since, actor.id, request)
                refusal = check(case, request, actor)
                try:
                    transition(case, request, actor, T0 + timedelta(hours=1))
                except DomainError as error:
                    if refusal is None:
                        assert bare and isinstance(error, MissingInput), (where, error)
                    else:
                        assert _same(refusal, error), (where, refusal, error)
                else:
                    assert refusal is None, (where, refusal)


def test_check_covers_every_guard() -> None:
    """Each kind of refusal the guards give is reached by check alone, before any input."""
    own = Story()
    own.do(A.DRAFT, APPR, text="My own answer")
    taken = story_in(S.TAKEN).case
    published = replace(story_in(S.PUBLISHED).case, follow_up_due_at=None)
    waiting = replace(taken, waiting_since=T0)
    expected: list[tuple[Case, Action, Actor, DomainError]] = [
        (taken, A.DRAFT, STRANGER, NoRight(action="draft", department=HOUSING)),
        (taken, A.REOPEN, OMNI, InvalidTransition(action="reopen", state="taken")),
        (taken, A.TAKE, SPEC, InvalidTransition(action="take", state="taken")),
        (taken, A.TAKE, SPEC2, NotAssignee(assignee="spec")),
        (taken, A.RELEASE, SPEC2, NotAssignee(assignee="spec")),
        (taken, A.DRAFT, SPEC2, NotAssignee(assignee="spec")),
        (own.case, A.REQUEST_CHANGES, APPR, SelfReview(version=1)),
        (own.case, A.REJECT, APPR, SelfReview(version=1)),
        (
            published,
            A.FOLLOW_UP_LATER,
            SPEC,
            InvalidTransition(action="follow_up_later", state="published"),
        ),
        (
            waiting,
            A.WAIT_FOR_AUTHOR,
            SPEC,
            InvalidTransition(action="wait_for_author", state="taken"),
        ),
        (taken, A.AUTHOR_REPLIED, SPEC, InvalidTransition(action="author_replied", state="taken")),
    ]
    for case, action, actor, error in expected:
        refusal = check(case, ActionRequest(action), actor)
        assert refusal is not None and _same(refusal, error), (action, actor.id, refusal)
    assert check(taken, ActionRequest(A.DRAFT), SPEC) is None


def test_four_eyes_refuses_the_prompt_as_it_refuses_the_action() -> None:
    """Asking for the note of "request changes" on one's own draft is refused by the very
    guard that refuses the action itself."""
    s = Story()
    s.do(A.DRAFT, MULTI, text="My own answer")
    prompt = check(s.case, ActionRequest(A.REQUEST_CHANGES), MULTI)
    assert isinstance(prompt, SelfReview) and prompt.params == {"version": 1}
    action = s.refuse(A.REQUEST_CHANGES, MULTI, SelfReview, note="me to me")
    assert _same(prompt, action)
    assert check(s.case, ActionRequest(A.REQUEST_CHANGES), APPR) is None  # somebody else may


# ---------------------------------------------------------------------------------------------
# Bookkeeping: version, first touch, approval time


def test_version_increments_by_one_per_transition() -> None:
    s = Story()
    steps: list[tuple[Action, Actor, dict[str, Any]]] = [
        (A.ESCALATE, DUTY, {}),
        (A.TAKE, SPEC, {}),
        (A.DRAFT, SPEC, {"text": "v1"}),  # two events, one version
        (A.DRAFT, SPEC, {"text": "v2"}),
        (A.REJECT, APPR, {}),
        (A.DRAFT, SPEC, {"text": "v3"}),
        (A.APPROVE, APPR, {}),
        (A.PUBLISH, SPEC, {}),
        (A.CLOSE, SPEC, {"outcome": Outcome.ANSWERED}),
        (A.REOPEN, DUTY, {}),
    ]
    for n, (action, actor, fields) in enumerate(steps, start=1):
        s.refuse(A.TAKE, STRANGER, NoRight)  # refusals do not count
        t = s.do(action, actor, expected_version=n - 1, **fields)
        assert t.case.version == n


def test_first_touched_at_is_set_once_and_not_by_escalation() -> None:
    s = Story()
    s.do(A.ESCALATE, DUTY)
    assert s.case.first_touched_at is None
    s.do(A.ESCALATE, LEAD)
    assert s.case.first_touched_at is None
    s.refuse(A.TAKE, STRANGER, NoRight)
    assert s.case.first_touched_at is None
    s.do(A.TAKE, SPEC)
    touched = s.now
    assert s.case.first_touched_at == touched
    for action, actor, fields in [
        (A.RELEASE, SPEC, {}),
        (A.DRAFT, SPEC2, {"text": "t"}),
        (A.ESCALATE, DUTY, {}),
        (A.APPROVE, APPR, {}),
        (A.IGNORE, DUTY, {"reason": IgnoreReason.DUPLICATE}),
        (A.REOPEN, DUTY, {}),
        (A.TAKE, SPEC, {}),
    ]:
        s.do(action, actor, **fields)
        assert s.case.first_touched_at == touched


@pytest.mark.parametrize(
    ("action", "actor", "fields"),
    [
        (A.TAKE, SPEC, {}),
        (A.DRAFT, SPEC, {"text": "t"}),
        (A.REROUTE, DUTY, {"department": TRANSPORT}),
        (A.IGNORE, DUTY, {"reason": IgnoreReason.NOT_NEGATIVE}),
        (A.CLOSE, DUTY, {"outcome": Outcome.NO_ACTION}),
    ],
    ids=lambda v: getattr(v, "value", None) or getattr(v, "id", None) or "fields",
)
def test_any_non_escalate_action_is_a_first_touch(
    action: Action, actor: Actor, fields: dict[str, Any]
) -> None:
    s = Story()
    t = s.do(action, actor, **fields)
    assert t.case.first_touched_at == s.now


def test_approved_at_is_set_once() -> None:
    s = story_in(S.APPROVED)
    approved_at = s.case.approved_at
    assert approved_at is not None
    s.do(A.DRAFT, SPEC, text="amended")
    assert s.case.approved_at == approved_at
    s.do(A.APPROVE, LEAD)
    assert s.case.approved_at == approved_at
    s.do(A.USE_TEMPLATE, SPEC, text="tpl", template_id="x", pre_approved=True)
    assert s.case.approved_at == approved_at
    s.do(A.CLOSE, SPEC, outcome=Outcome.ANSWERED)
    s.do(A.REOPEN, DUTY)
    s.do(A.DRAFT, SPEC, text="after reopen")
    s.do(A.APPROVE, APPR)
    assert s.case.approved_at == approved_at


def test_input_objects_are_frozen() -> None:
    case = new_case()
    with pytest.raises(AttributeError):
        case.state = S.CLOSED  # type: ignore[misc]
    request = ActionRequest(A.TAKE)
    with pytest.raises(AttributeError):
        request.action = A.CLOSE  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# available_actions


@pytest.mark.parametrize("state", list(CaseState))
def test_available_actions_per_state(state: CaseState) -> None:
    case = story_in(state).case
    assert available_actions(case) == EXPECTED_AVAILABLE[state]


def test_available_actions_published_without_follow_up() -> None:
    case = replace(story_in(S.PUBLISHED).case, follow_up_due_at=None)
    assert available_actions(case) == [A.ESCALATE, A.CLOSE, A.WAIT_FOR_AUTHOR]


@pytest.mark.parametrize(
    ("state", "actor", "expected"),
    [
        (S.NEW, STRANGER, []),
        (S.NEW, TSPEC, []),
        (S.NEW, ADMIN, []),
        (S.NEW, BOSS, [A.ESCALATE]),
        (S.NEW, DUTY, [A.ESCALATE, A.REROUTE, A.IGNORE, A.CLOSE]),
        (S.NEW, SPEC, EXPECTED_AVAILABLE[S.NEW]),
        (
            S.AWAITING_APPROVAL,
            SPEC,
            [A.DRAFT, A.USE_TEMPLATE, A.ESCALATE, A.REROUTE, A.IGNORE, A.CLOSE, A.WAIT_FOR_AUTHOR],
        ),
        (S.AWAITING_APPROVAL, APPR, EXPECTED_AVAILABLE[S.AWAITING_APPROVAL]),
        (S.AWAITING_APPROVAL, LEAD, EXPECTED_AVAILABLE[S.AWAITING_APPROVAL]),
        (S.AWAITING_APPROVAL, DUTY, [A.ESCALATE, A.REROUTE, A.IGNORE, A.CLOSE]),
        (S.APPROVED, SPEC2, EXPECTED_AVAILABLE[S.APPROVED]),
        (S.PUBLISHED, SPEC, EXPECTED_AVAILABLE[S.PUBLISHED]),
        (S.PUBLISHED, DUTY, [A.ESCALATE, A.CLOSE]),
        (S.PUBLISHED, BOSS, [A.ESCALATE]),
        (S.CLOSED, SPEC, []),
        (S.CLOSED, APPR, [A.REOPEN]),
        (S.IGNORED, DUTY, [A.REOPEN]),
        (S.IGNORED, BOSS, []),
    ],
    ids=lambda v: getattr(v, "value", None) or getattr(v, "id", None) or "expected",
)
def test_available_actions_narrowed_by_actor(
    state: CaseState, actor: Actor, expected: list[Action]
) -> None:
    assert available_actions(story_in(state).case, actor) == expected


def test_available_actions_follow_the_department() -> None:
    case = story_in(S.TAKEN).case
    rerouted = transition(case, ActionRequest(A.REROUTE, department=TRANSPORT), DUTY, T0).case
    assert available_actions(rerouted, SPEC) == []
    assert available_actions(rerouted, TSPEC) == EXPECTED_AVAILABLE[S.NEW]


# ---------------------------------------------------------------------------------------------
# invariant_violations: the checker itself must catch broken cases


@pytest.mark.parametrize(
    "broken",
    [
        new_case(assignee="spec"),
        new_case(state=S.TAKEN),
        new_case(state=S.AWAITING_APPROVAL, assignee="spec"),
        new_case(state=S.CLOSED, closed_at=T0),
        new_case(state=S.IGNORED, ignore_reason=IgnoreReason.SPAM),
        new_case(outcome=Outcome.ANSWERED),
        new_case(state=S.CLOSED, closed_at=T0, outcome=Outcome.ANSWERED, follow_up_due_at=T0),
        new_case(state=S.CLOSED, closed_at=T0, outcome=Outcome.ANSWERED, waiting_since=T0),
        new_case(escalation_level=-1),
        new_case(state=S.PUBLISHED, assignee="spec"),
    ],
)
def test_invariant_checker_flags_broken_cases(broken: Case) -> None:
    assert invariant_violations(broken) != []


@pytest.mark.parametrize("state", list(CaseState))
def test_canonical_cases_are_valid(state: CaseState) -> None:
    assert invariant_violations(story_in(state).case) == []


# ---------------------------------------------------------------------------------------------
# Property: random walks by random people never break the case


WALK_ACTORS = (SPEC, SPEC2, APPR, LEAD, DUTY, BOSS, ADMIN, STRANGER, TSPEC, TAPPR, MULTI, OMNI)
ACTOR_BY_ID = {a.id: a for a in WALK_ACTORS}
REVIEWS = frozenset({A.APPROVE, A.REQUEST_CHANGES, A.REJECT})
DETOURS = frozenset({A.RELEASE, A.ESCALATE, A.REROUTE, A.IGNORE, A.CLOSE})
BIG_TEXT = "x" * (MAX_DRAFT_TEXT + 1)
BIG_NOTE = "n" * (MAX_NOTE + 1)
BIG_URL = "https://e.org/" + "a" * MAX_URL
# Valid values first (Hypothesis shrinks towards them) and repeated to bias towards progress.
TEXTS = ("Мы разберёмся", "Thanks, fixing it", "  padded  ", None, "", "   ", BIG_TEXT)
TEMPLATE_IDS = ("apology", "outage", None, "")
NOTES = (None, "Softer tone", "Softer tone", "", "   ", BIG_NOTE)
REASONS = (*IgnoreReason, None)
OUTCOMES = (*Outcome, None)
DEPARTMENTS = (TRANSPORT, HOUSING, "roads", " transport ", None, "", "  ")
URLS = (None, URL, "http://example.org/a", "ftp://example.org", "javascript:alert(1)", BIG_URL)
VERSION_MODES = ("none", "current", "none", "current", "stale")


def _is_bad_input(req: ActionRequest) -> bool:
    return (
        (req.text is not None and len(req.text) > MAX_DRAFT_TEXT)
        or (req.note is not None and len(req.note) > MAX_NOTE)
        or (
            req.url is not None
            and (len(req.url) > MAX_URL or not req.url.startswith(("https://", "http://")))
        )
    )


@st.composite
def _step(draw: st.DrawFn, case: Case) -> tuple[Action, Actor, ActionRequest, int]:
    """One press. Three in four are "clean" (someone with the right, sensible input) so walks
    get deep into the life of a case; the rest are fuzz: anybody, anything, stale cards."""
    clean = draw(st.integers(0, 3)) > 0
    offered = available_actions(case)
    forward = [a for a in offered if a not in DETOURS]
    pick = draw(st.integers(0, 5))
    if pick >= 3 and forward:  # mostly push the case forward, so walks reach publication
        action = draw(st.sampled_from(forward))
    elif pick >= 1:
        action = draw(st.sampled_from(offered))
    else:
        action = draw(st.sampled_from(list(Action)))

    latest = case.latest_draft
    entitled = [a for a in WALK_ACTORS if a.may(action, case.department)]
    if action in REVIEWS and latest is not None and draw(st.integers(0, 3)) == 0:
        actor = ACTOR_BY_ID[latest.author]  # four-eyes probe: the author reviews
    elif case.assignee is not None and action not in REVIEWS and draw(st.booleans()):
        actor = ACTOR_BY_ID[case.assignee]  # the owner acts
    elif clean and entitled:
        actor = draw(st.sampled_from(entitled))
    else:
        actor = draw(st.sampled_from(WALK_ACTORS))

    if clean:
        mode = draw(st.sampled_from(("none", "current")))
        targets = [d for d in (TRANSPORT, HOUSING, "roads") if d != case.department]
        fields: dict[str, Any] = {
            "text": draw(st.sampled_from(TEXTS[:3])),
            "template_id": draw(st.sampled_from(TEMPLATE_IDS[:2])),
            "note": draw(st.sampled_from(NOTES[1:3])),
            "reason": draw(st.sampled_from(list(IgnoreReason))),
            "outcome": draw(st.sampled_from(list(Outcome))),
            "department": draw(st.sampled_from(targets)),
            "url": draw(st.sampled_from(URLS[:3])),
            "wait_reason": draw(st.sampled_from(list(WaitReason))),
        }
    else:
        mode = draw(st.sampled_from(VERSION_MODES))
        fields = {
            "text": draw(st.sampled_from(TEXTS)),
            "template_id": draw(st.sampled_from(TEMPLATE_IDS)),
            "note": draw(st.sampled_from(NOTES)),
            "reason": draw(st.sampled_from(REASONS)),
            "outcome": draw(st.sampled_from(OUTCOMES)),
            "department": draw(st.sampled_from(DEPARTMENTS)),
            "url": draw(st.sampled_from(URLS)),
            "wait_reason": draw(st.sampled_from([*WaitReason, None])),
        }
    expected: int | None = {
        "none": None,
        "current": case.version,
        "stale": case.version + draw(st.sampled_from([-1, 1, 3])),
    }[mode]
    minutes = draw(st.integers(0, 180))
    follow_up = draw(st.sampled_from([None, timedelta(days=3), timedelta(hours=1)]))
    request = ActionRequest(
        action,
        pre_approved=draw(st.booleans()),
        follow_up_at=None if follow_up is None else T0 + follow_up,  # made relative to now later
        expected_version=expected,
        **fields,
    )
    return action, actor, request, minutes


def _check_refusal(error: DomainError, case: Case, actor: Actor, request: ActionRequest) -> None:
    """The checks run in a fixed order: rights, card version, state, then the handler's own."""
    action = request.action
    assert error.code != DomainError.code
    assert type(error) is not DomainError
    if not actor.may(action, case.department):
        assert isinstance(error, NoRight), error
    elif request.expected_version is not None and request.expected_version != case.version:
        assert isinstance(error, StaleCard), error
    elif case.state not in ALLOWED_STATES[action]:
        assert isinstance(error, InvalidTransition), error
    elif _is_bad_input(request):
        assert isinstance(error, InvalidInput), error
    else:
        assert isinstance(
            error, InvalidTransition | SelfReview | NotAssignee | MissingInput | InvalidInput
        ), error


def _check_success(
    prev: Case,
    new: Case,
    events: tuple[Event, ...],
    actor: Actor,
    req: ActionRequest,
    now: datetime,
) -> None:
    action = req.action
    assert action in available_actions(prev, actor)
    assert not _is_bad_input(req)
    assert req.expected_version in (None, prev.version)

    # Events: a contiguous chain from the old state to the new one, all by this actor, now.
    assert len(events) >= 1
    assert events[0].from_state is prev.state
    assert events[-1].to_state is new.state
    assert events[-1].kind == action
    for a, b in pairwise(events):
        assert a.to_state is b.from_state
    for e in events:
        assert e.actor == actor.id
        assert e.at == now
        assert e.case_id == prev.id
        assert isinstance(e.from_state, CaseState) and isinstance(e.to_state, CaseState)
        assert None not in e.payload.values()
    if len(events) > 1:
        assert action in (A.DRAFT, A.USE_TEMPLATE) and prev.state is S.NEW
        assert [e.kind for e in events] == [A.TAKE, action]

    # What never changes.
    assert (new.id, new.created_at, new.source, new.priority) == (
        prev.id,
        prev.created_at,
        prev.source,
        prev.priority,
    )
    assert new.version == prev.version + 1
    assert new.escalation_level == prev.escalation_level + (action is A.ESCALATE)
    if action is not A.REROUTE:
        assert new.department == prev.department
    if prev.first_touched_at is not None:
        assert new.first_touched_at == prev.first_touched_at
    elif action in (A.ESCALATE, A.AUTHOR_REPLIED):
        assert new.first_touched_at is None
    else:
        assert new.first_touched_at == now
    if prev.approved_at is not None:
        assert new.approved_at == prev.approved_at
    # Drafts are append-only: earlier versions keep their text and author.
    assert len(new.drafts) >= len(prev.drafts)
    for old, kept in zip(prev.drafts, new.drafts, strict=False):
        assert (old.version, old.text, old.author, old.created_at, old.template_id) == (
            kept.version,
            kept.text,
            kept.author,
            kept.created_at,
            kept.template_id,
        )
        if old.status is not DraftStatus.PENDING:  # only a pending draft is ever re-stamped
            assert kept == old

    # What each action does.
    latest = new.latest_draft
    if action is A.TAKE:
        assert new.assignee == actor.id != prev.assignee
        assert new.state is (S.TAKEN if prev.state is S.NEW else prev.state)
        if prev.assignee is not None:
            assert actor.has(DeptRole.LEAD, prev.department)
    elif action is A.RELEASE:
        assert (new.state, new.assignee) == (S.NEW, None)
        assert prev.assignee == actor.id or actor.has(DeptRole.LEAD, prev.department)
    elif action in (A.DRAFT, A.USE_TEMPLATE):
        assert len(new.drafts) == len(prev.drafts) + 1
        assert latest is not None and latest.author == actor.id
        assert req.text is not None and latest.text == req.text.strip() != ""
        pre = action is A.USE_TEMPLATE and req.pre_approved
        assert new.state is (S.APPROVED if pre else S.AWAITING_APPROVAL)
        assert latest.status is (DraftStatus.APPROVED if pre else DraftStatus.PENDING)
        if action is A.USE_TEMPLATE:
            assert latest.template_id == req.template_id and req.template_id
        if prev.state is not S.NEW:
            assert prev.assignee == actor.id or actor.has(DeptRole.LEAD, prev.department)
    elif action in REVIEWS:
        assert len(new.drafts) == len(prev.drafts)
        assert latest is not None and latest.reviewer == actor.id != latest.author
        assert latest.reviewed_at == now
        status, state = {
            A.APPROVE: (DraftStatus.APPROVED, S.APPROVED),
            A.REQUEST_CHANGES: (DraftStatus.CHANGES_REQUESTED, S.CHANGES_REQUESTED),
            A.REJECT: (DraftStatus.REJECTED, S.TAKEN),
        }[action]
        assert (latest.status, new.state) == (status, state)
        assert new.assignee == prev.assignee
    elif action in (A.PUBLISH, A.MARK_PUBLISHED):
        assert (new.state, new.published_at, new.follow_up_due_at) == (
            S.PUBLISHED,
            now,
            req.follow_up_at,
        )
        assert new.published_url == (req.url or prev.published_url)
    elif action is A.ESCALATE:
        assert replace(new, escalation_level=prev.escalation_level, version=prev.version) == prev
    elif action is A.REROUTE:
        assert req.department is not None
        assert new.department == req.department.strip() != prev.department
        assert (new.state, new.assignee) == (S.NEW, None)
    elif action is A.IGNORE:
        assert (new.state, new.ignore_reason, new.closed_at) == (S.IGNORED, req.reason, now)
    elif action is A.CLOSE:
        assert (new.state, new.outcome, new.closed_at) == (S.CLOSED, req.outcome, now)
    elif action is A.FOLLOW_UP_DONE:
        assert prev.follow_up_due_at is not None
        assert (new.state, new.outcome) == (S.CLOSED, Outcome.RESOLVED)
    elif action is A.REOPEN:
        assert (new.state, new.assignee, new.closed_at) == (S.NEW, None, None)
    elif action is A.FOLLOW_UP_LATER:
        assert prev.follow_up_due_at is not None
        assert (new.state, new.follow_up_due_at) == (prev.state, req.follow_up_at)
    elif action is A.WAIT_FOR_AUTHOR:
        assert (prev.waiting_since, new.waiting_since, new.state) == (None, now, prev.state)
    elif action is A.AUTHOR_REPLIED:
        assert prev.waiting_since is not None
        assert (new.waiting_since, new.state) == (None, prev.state)
    else:  # pragma: no cover - every action is handled above
        raise AssertionError(action)


WALK_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@WALK_SETTINGS
@given(data=st.data(), length=st.integers(1, 60))
def test_random_walks_keep_the_case_valid(data: st.DataObject, length: int) -> None:
    case = new_case()
    log: list[Event] = []
    returned = 0
    successes = 0
    now = T0
    for _ in range(length):
        action, actor, request, minutes = data.draw(_step(case))
        now += timedelta(minutes=minutes)
        if request.follow_up_at is not None:  # keep the follow-up after `now`
            request = replace(request, follow_up_at=now + (request.follow_up_at - T0))
        snapshot = copy.deepcopy(case)
        refusal = check(case, request, actor)
        try:
            result = transition(case, request, actor, now)
        except DomainError as error:
            assert case == snapshot, f"{action} by {actor.id} changed the case on refusal"
            _check_refusal(error, case, actor, request)
            if refusal is None:  # only what the request carries is the handler's to refuse
                assert isinstance(error, MissingInput | InvalidInput), error
            else:
                assert _same(refusal, error), (refusal, error)
            continue
        assert refusal is None, refusal
        assert case == snapshot, "the input case must never change"
        _check_success(case, result.case, result.events, actor, request, now)
        size_before = len(log)
        log.extend(result.events)
        returned += len(result.events)
        successes += 1
        case = result.case
        assert len(log) == returned > size_before
        assert invariant_violations(case) == []
        assert isinstance(case.state, CaseState)
        assert case.version == successes

    assert invariant_violations(case) == []
    assert case.version == successes
    assert len(log) == returned
    # Never lose an event: the whole log chains from NEW to the current state.
    if log:
        assert log[0].from_state is S.NEW
        assert log[-1].to_state is case.state
        for a, b in pairwise(log):
            assert a.to_state is b.from_state
            assert a.at <= b.at
    else:
        assert case == new_case()
