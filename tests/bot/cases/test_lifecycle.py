"""The case state machine: every action along its happy path."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.cases.lifecycle import (
    InvalidInput,
    InvalidTransition,
    MissingInput,
    NoRight,
    NotAssignee,
    SelfReview,
    available_actions,
)
from bot.model import (
    CaseState,
    DraftStatus,
    IgnoreReason,
    Outcome,
)
from bot.staff.rights import Actor
from tests.bot.cases.stories import (
    ADMIN,
    APPR,
    BOSS,
    DUTY,
    EXPECTED_AVAILABLE,
    HOUSING,
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
    story_in,
    summary,
)

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
    assert available_actions(t.case) == [
        A.ESCALATE,
        A.CLOSE,
        A.WAIT_FOR_AUTHOR,
        A.FOLLOW_UP,
        A.CORRECT,
        A.SET_CODE,
        A.SET_PRIORITY,
        A.ASSIGN,
    ]

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
    assert s.case.reacted_at == T0 + timedelta(minutes=5)  # the take
    assert s.case.first_touched_at == T0 + timedelta(minutes=20)  # the publish


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


def test_reject_needs_a_reason() -> None:
    s = story_in(S.AWAITING_APPROVAL)
    with pytest.raises(MissingInput) as refused:
        s.do(A.REJECT, APPR, note="   ")
    assert refused.value.params == {"field": "note"}
    t = s.do(A.REJECT, APPR, note="Facts are wrong")
    assert t.case.state is S.TAKEN
    assert summary(t.events) == [
        ("reject", "appr", S.AWAITING_APPROVAL, S.TAKEN, {"version": 1, "note": "Facts are wrong"})
    ]


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


@pytest.mark.parametrize("text", ["", "  ", "\u202a", "\u200f\u200d\ufeff", "\u0333\n"])
def test_a_draft_needs_visible_text(text: str) -> None:
    # Found by tests/handlers/test_hostile_render.py: a draft of a direction mark alone was
    # accepted, and its public reply was an empty message Telegram refused.
    s = story_in(S.TAKEN)
    err = s.refuse(A.DRAFT, SPEC, MissingInput, text=text)
    assert err.params == {"field": "text"}


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
