"""Bookkeeping of a case (version, reaction, first reply, approval time), the actions it
offers, and the invariant checker itself."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.cases.lifecycle import (
    ActionRequest,
    NoRight,
    available_actions,
    invariant_violations,
    transition,
)
from bot.model import (
    Action,
    Case,
    CaseState,
    IgnoreReason,
    Outcome,
    WaitReason,
)
from bot.staff.rights import Actor
from tests.bot.cases.stories import (
    ADMIN,
    APPR,
    BOSS,
    CODING,
    DUTY,
    EXPECTED_AVAILABLE,
    LEAD,
    SPEC,
    SPEC2,
    STRANGER,
    T0,
    TRANSPORT,
    TSPEC,
    URL,
    A,
    S,
    Story,
    new_case,
    story_in,
)

# ---------------------------------------------------------------------------------------------
# Bookkeeping: version, reaction, first reply, approval time


def test_version_increments_by_one_per_transition() -> None:
    s = Story()
    steps: list[tuple[Action, Actor, dict[str, Any]]] = [
        (A.ESCALATE, DUTY, {}),
        (A.TAKE, SPEC, {}),
        (A.DRAFT, SPEC, {"text": "v1"}),  # two events, one version
        (A.DRAFT, SPEC, {"text": "v2"}),
        (A.REJECT, APPR, {"note": "off topic"}),
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


def test_reacted_at_is_set_once_and_not_by_escalation() -> None:
    s = Story()
    s.do(A.ESCALATE, DUTY)
    assert s.case.reacted_at is None
    s.do(A.ESCALATE, LEAD)
    assert s.case.reacted_at is None
    s.refuse(A.TAKE, STRANGER, NoRight)
    assert s.case.reacted_at is None
    s.do(A.TAKE, SPEC)
    reacted = s.now
    assert s.case.reacted_at == reacted
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
        assert s.case.reacted_at == reacted
        # None of these reached the author: the first reply is still owed.
        assert s.case.first_touched_at is None


@pytest.mark.parametrize(
    ("action", "actor", "fields"),
    [
        (A.TAKE, SPEC, {}),
        (A.DRAFT, SPEC, {"text": "t"}),
        (A.USE_TEMPLATE, SPEC, {"text": "t", "template_id": "x", "pre_approved": True}),
        (A.REROUTE, DUTY, {"department": TRANSPORT}),
        (A.IGNORE, DUTY, {"reason": IgnoreReason.NOT_NEGATIVE}),
        (A.CLOSE, DUTY, {"outcome": Outcome.NO_ACTION}),
    ],
    ids=lambda v: getattr(v, "value", None) or getattr(v, "id", None) or "fields",
)
def test_any_non_escalate_action_is_a_reaction_but_no_first_reply(
    action: Action, actor: Actor, fields: dict[str, Any]
) -> None:
    s = Story()
    t = s.do(action, actor, **fields)
    assert t.case.reacted_at == s.now
    assert t.case.first_touched_at is None


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        (A.PUBLISH, {}),
        (A.MARK_PUBLISHED, {"url": URL}),
        (A.WAIT_FOR_AUTHOR, {"wait_reason": WaitReason.MOVED_TO_PRIVATE}),
        (A.CLOSE, {"outcome": Outcome.ANSWERED}),
        (A.CLOSE, {"outcome": Outcome.MOVED_TO_PRIVATE}),
    ],
    ids=lambda v: getattr(v, "value", None) or "fields",
)
def test_what_the_author_sees_is_the_first_reply(action: Action, fields: dict[str, Any]) -> None:
    s = story_in(S.APPROVED)
    assert s.case.reacted_at is not None and s.case.first_touched_at is None
    s.do(action, SPEC, **fields)
    assert s.case.first_touched_at == s.now
    first = s.now
    s.do(A.REOPEN if s.case.state in (S.CLOSED, S.IGNORED) else A.ESCALATE, DUTY)
    assert s.case.first_touched_at == first  # set once


def test_asking_the_author_for_details_is_a_first_reply() -> None:
    # The question was written to the author: they saw somebody answer.
    s = story_in(S.TAKEN)
    s.do(A.WAIT_FOR_AUTHOR, SPEC, wait_reason=WaitReason.DETAILS_REQUESTED)
    assert s.case.first_touched_at == s.now


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
    assert available_actions(case) == [
        A.ESCALATE,
        A.CLOSE,
        A.WAIT_FOR_AUTHOR,
        A.FOLLOW_UP,
        A.CORRECT,
        *CODING,
    ]


@pytest.mark.parametrize(
    ("state", "actor", "expected"),
    [
        (S.NEW, STRANGER, []),
        (S.NEW, TSPEC, []),
        (S.NEW, ADMIN, []),
        (S.NEW, BOSS, [A.ESCALATE]),
        (S.NEW, DUTY, [A.ESCALATE, A.REROUTE, A.IGNORE, A.CLOSE, A.SET_PRIORITY]),
        (S.NEW, SPEC, EXPECTED_AVAILABLE[S.NEW][:-2]),  # no priority, no assignment
        (
            S.AWAITING_APPROVAL,
            SPEC,
            [
                A.DRAFT,
                A.USE_TEMPLATE,
                A.ESCALATE,
                A.REROUTE,
                A.IGNORE,
                A.CLOSE,
                A.WAIT_FOR_AUTHOR,
                A.SET_CODE,
            ],
        ),
        (S.AWAITING_APPROVAL, APPR, EXPECTED_AVAILABLE[S.AWAITING_APPROVAL][:-2]),
        (S.AWAITING_APPROVAL, LEAD, EXPECTED_AVAILABLE[S.AWAITING_APPROVAL]),
        (S.AWAITING_APPROVAL, DUTY, [A.ESCALATE, A.REROUTE, A.IGNORE, A.CLOSE, A.SET_PRIORITY]),
        (S.APPROVED, SPEC2, EXPECTED_AVAILABLE[S.APPROVED][:-2]),
        (S.PUBLISHED, SPEC, EXPECTED_AVAILABLE[S.PUBLISHED][:-2]),
        (S.PUBLISHED, DUTY, [A.ESCALATE, A.CLOSE, A.SET_PRIORITY]),
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
    assert available_actions(rerouted, TSPEC) == EXPECTED_AVAILABLE[S.NEW][:-2]


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
