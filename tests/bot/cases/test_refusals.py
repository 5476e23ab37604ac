"""Refusals: rights, four eyes, ownership, state, stale cards, inputs; and `check`, the one
place of those guards, agreeing with `transition` for every action, state and person."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

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
    available_actions,
    check,
    transition,
)
from bot.model import (
    MAX_DRAFT_TEXT,
    MAX_NOTE,
    MAX_URL,
    Action,
    Case,
    CaseState,
    IgnoreReason,
    Outcome,
)
from bot.staff.rights import Actor
from tests.bot.cases.stories import (
    ADMIN,
    ALLOWED_STATES,
    APPR,
    BOSS,
    DUTY,
    EXPECTED_MAY,
    HOUSING,
    LEAD,
    MULTI,
    OMNI,
    OPEN_STATES,
    RIGHTS_ACTORS,
    SPEC,
    SPEC2,
    STRANGER,
    T0,
    TAPPR,
    TSPEC,
    URL,
    VALID_FIELDS,
    A,
    S,
    Story,
    same_refusal,
    state_for,
    story_in,
)

# ---------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(
    ("action", "fields"),
    [(A.APPROVE, {}), (A.REJECT, {"note": "no"}), (A.REQUEST_CHANGES, {"note": "me to me"})],
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
    case = story_in(state_for(action)).case
    if action is A.AUTHOR_REPLIED:
        case = replace(case, waiting_since=T0)
    assert (action in available_actions(case, actor)) is expected
    if not expected:
        s = story_in(state_for(action))
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


def _cases_to_check() -> list[Case]:
    """Every state, with and without a wait for the author, a follow-up, a draft of one's own."""
    cases = [story_in(state).case for state in CaseState]
    cases += [replace(c, waiting_since=T0) for c in cases if c.state in OPEN_STATES]
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
                        assert same_refusal(refusal, error), (where, refusal, error)
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
        assert refusal is not None and same_refusal(refusal, error), (action, actor.id, refusal)
    assert check(taken, ActionRequest(A.DRAFT), SPEC) is None


def test_four_eyes_refuses_the_prompt_as_it_refuses_the_action() -> None:
    """Asking for the note of "request changes" on one's own draft is refused by the very
    guard that refuses the action itself."""
    s = Story()
    s.do(A.DRAFT, MULTI, text="My own answer")
    prompt = check(s.case, ActionRequest(A.REQUEST_CHANGES), MULTI)
    assert isinstance(prompt, SelfReview) and prompt.params == {"version": 1}
    action = s.refuse(A.REQUEST_CHANGES, MULTI, SelfReview, note="me to me")
    assert same_refusal(prompt, action)
    assert check(s.case, ActionRequest(A.REQUEST_CHANGES), APPR) is None  # somebody else may
