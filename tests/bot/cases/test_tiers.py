"""Approval tiers: one approval per tier, four eyes at every step, rights per tier, a
request for changes or a rejection at any tier back to the author, and templates that skip
the chain only where the policy lets them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.cases.cards import approval_chain, reached_coordination
from bot.cases.lifecycle import (
    MissingInput,
    NoRight,
    NotYourTier,
    ReviewedTwice,
    SelfReview,
    invariant_violations,
)
from bot.model import Action as A
from bot.model import Approval, ApproverRole, DeptRole, DraftStatus, GlobalRole, Priority
from bot.model import CaseState as S
from bot.settings.approval_rules import ApprovalConfig
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, load_playbook
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from tests.bot.cases.stories import APPR, BOSS, HOUSING, LEAD, SPEC, T0, Story, summary
from tests.doubles.support import make_config

D, PRESS, TOP = ApproverRole.DEPARTMENT, ApproverRole.PRESS_SECRETARY, ApproverRole.LEADERSHIP
HIGH = (D, PRESS)
CRITICAL = (D, PRESS, TOP)

SECRETARY = Actor("press", "Press", global_roles=frozenset({GlobalRole.PRESS_SECRETARY}))
# Approver in housing and press secretary: may review at either tier, never at both.
BOTH = Actor(
    "both",
    "Both",
    {HOUSING: frozenset({DeptRole.APPROVER})},
    frozenset({GlobalRole.PRESS_SECRETARY}),
)


def drafted(tiers: tuple[ApproverRole, ...] = HIGH, author: Actor = SPEC) -> Story:
    s = Story()
    s.do(A.DRAFT, author, text="We are fixing it", tiers=tiers)
    return s


def test_a_draft_collects_one_approval_per_tier_then_is_approved() -> None:
    s = drafted(CRITICAL)
    t = s.do(A.APPROVE, APPR)
    draft = t.case.latest_draft
    assert draft is not None
    assert (t.case.state, draft.status, draft.current_tier) == (
        S.AWAITING_APPROVAL,
        DraftStatus.PENDING,
        1,
    )
    assert draft.approvals == (Approval(0, "appr", s.now),)
    assert t.case.approved_at is None
    assert summary(t.events) == [
        (
            "approve",
            "appr",
            S.AWAITING_APPROVAL,
            S.AWAITING_APPROVAL,
            {"version": 1, "tier": 1, "tier_name": "department"},
        )
    ]
    s.do(A.APPROVE, SECRETARY)
    t = s.do(A.APPROVE, BOSS)
    draft = t.case.latest_draft
    assert draft is not None
    assert (t.case.state, draft.status, draft.reviewer) == (
        S.APPROVED,
        DraftStatus.APPROVED,
        "boss",
    )
    assert [(a.tier, a.reviewer) for a in draft.approvals] == [
        (0, "appr"),
        (1, "press"),
        (2, "boss"),
    ]
    assert t.case.approved_at == s.now
    assert summary(t.events)[0][4] == {"version": 1, "tier": 3, "tier_name": "leadership"}


def test_the_chain_is_named_on_the_draft_event() -> None:
    s = Story()
    t = s.do(A.DRAFT, SPEC, text="Answer", tiers=HIGH)
    assert t.events[-1].payload == {
        "version": 1,
        "pre_approved": False,
        "tiers": ["department", "press_secretary"],
    }


def test_four_eyes_at_every_tier() -> None:
    s = drafted(HIGH, author=LEAD)
    s.refuse(A.APPROVE, LEAD, SelfReview)  # the author never, at any tier
    s.do(A.APPROVE, BOTH)
    s.refuse(A.APPROVE, LEAD, SelfReview)
    err = s.refuse(A.APPROVE, BOTH, ReviewedTwice)  # one person, one tier
    assert err.params == {"version": 1, "tier": 2}
    s.refuse(A.REQUEST_CHANGES, BOTH, ReviewedTwice, note="after all")
    s.do(A.APPROVE, SECRETARY)
    assert s.case.state is S.APPROVED


def test_rights_are_checked_per_tier() -> None:
    s = drafted(HIGH)
    # A press secretary cannot approve at the department's tier, nor leadership at either.
    err = s.refuse(A.APPROVE, SECRETARY, NotYourTier)
    assert err.params == {"version": 1, "tier": 1, "role": "department"}
    s.refuse(A.REJECT, SECRETARY, NotYourTier, note="no")
    s.refuse(A.APPROVE, BOSS, NotYourTier)
    s.do(A.APPROVE, APPR)
    # ...and the department's approver not at the press secretary's.
    s.refuse(A.APPROVE, LEAD, NotYourTier)
    s.refuse(A.APPROVE, BOSS, NotYourTier)


def test_a_one_tier_draft_is_not_for_leadership() -> None:
    s = drafted((D,))
    s.refuse(A.APPROVE, BOSS, NotYourTier)
    s.refuse(A.APPROVE, SECRETARY, NotYourTier)
    # Without any reviewer role: no right at all, as before tiers.
    s.refuse(A.APPROVE, Actor("x", "X", {HOUSING: frozenset({DeptRole.SPECIALIST})}), NoRight)


@pytest.mark.parametrize("action", [A.REQUEST_CHANGES, A.REJECT])
def test_sending_back_at_a_later_tier_returns_the_draft_to_its_author(action: A) -> None:
    s = drafted(HIGH)
    s.do(A.APPROVE, APPR)
    t = s.do(action, SECRETARY, note="Not in this wording")
    draft = t.case.latest_draft
    assert draft is not None
    expected = {
        A.REQUEST_CHANGES: (S.CHANGES_REQUESTED, DraftStatus.CHANGES_REQUESTED),
        A.REJECT: (S.TAKEN, DraftStatus.REJECTED),
    }[action]
    assert (t.case.state, draft.status) == expected
    assert (t.case.assignee, draft.reviewer, draft.note) == ("spec", "press", "Not in this wording")
    assert summary(t.events)[0][4] == {
        "version": 1,
        "note": "Not in this wording",
        "tier": 2,
        "tier_name": "press_secretary",
    }
    # The next version starts the chain again, from the department.
    s.do(A.DRAFT, SPEC, text="Better", tiers=HIGH)
    assert s.case.latest_draft is not None and s.case.latest_draft.approvals == ()
    s.refuse(A.APPROVE, SECRETARY, NotYourTier)


def test_reject_needs_a_reason_at_every_tier() -> None:
    s = drafted(HIGH)
    with pytest.raises(MissingInput):
        s.do(A.REJECT, APPR)
    s.do(A.APPROVE, APPR)
    with pytest.raises(MissingInput):
        s.do(A.REJECT, SECRETARY, note="  ")


@pytest.mark.parametrize(
    ("skips", "state", "status"),
    [(True, S.APPROVED, DraftStatus.APPROVED), (False, S.AWAITING_APPROVAL, DraftStatus.PENDING)],
)
def test_a_pre_approved_template_skips_the_chain_only_where_allowed(
    skips: bool, state: S, status: DraftStatus
) -> None:
    s = Story()
    t = s.do(
        A.USE_TEMPLATE,
        SPEC,
        text="We see your message",
        template_id="first",
        pre_approved=True,
        tiers=HIGH,
        template_skips=skips,
    )
    draft = t.case.latest_draft
    assert draft is not None
    assert (t.case.state, draft.status, draft.pre_approved) == (state, status, skips)
    if not skips:
        s.do(A.APPROVE, APPR)
        s.do(A.APPROVE, SECRETARY)
        assert s.case.state is S.APPROVED


def test_invariants_every_tier_approved_by_distinct_people() -> None:
    s = drafted(HIGH)
    s.do(A.APPROVE, APPR)
    s.do(A.APPROVE, SECRETARY)
    case = s.case
    draft = case.latest_draft
    assert draft is not None and invariant_violations(case) == []
    short = replace(draft, approvals=draft.approvals[:1])
    assert "draft 1 approved without every tier" in invariant_violations(
        replace(case, drafts=(short,))
    )
    twice = replace(draft, approvals=(draft.approvals[0], Approval(1, "appr", T0)))
    assert "draft 1 approved at two tiers by one person" in invariant_violations(
        replace(case, drafts=(twice,))
    )
    own = replace(draft, approvals=(draft.approvals[0], Approval(1, "spec", T0)))
    assert "draft 1 approved by its author" in invariant_violations(replace(case, drafts=(own,)))


def test_the_chain_as_the_draft_shows_it(tmp_path: Path) -> None:
    directory = Directory(make_config(tmp_path, "sqlite+aiosqlite:///:memory:"))
    s = drafted(HIGH)
    draft = s.case.latest_draft
    assert draft is not None
    assert [(step["tier"], step["state"]) for step in approval_chain(draft, directory)] == [
        ("department", "current"),
        ("press_secretary", "waiting"),
    ]
    assert not reached_coordination(draft)
    s.do(A.APPROVE, APPR)
    draft = s.case.latest_draft
    assert draft is not None
    steps = approval_chain(draft, directory)
    assert [(step["tier"], step["state"]) for step in steps] == [
        ("department", "done"),
        ("press_secretary", "current"),
    ]
    assert steps[0]["by"] == "Вера Петрова"  # the approver, by name
    assert reached_coordination(draft)
    s.do(A.REJECT, SECRETARY, note="No")
    draft = s.case.latest_draft
    assert draft is not None
    assert [step["state"] for step in approval_chain(draft, directory)] == ["done", "stopped"]
    assert approval_chain(drafted((D,)).case.drafts[0], directory) == []


def test_the_policy_first_matching_rule_wins() -> None:
    policy = load_playbook(DEFAULT_PLAYBOOK_DIR).approval
    assert policy.chain_for(HOUSING, Priority.NORMAL).tiers == (D,)
    assert policy.chain_for(HOUSING, Priority.NORMAL).template_skips
    assert policy.chain_for(HOUSING, Priority.HIGH).tiers == HIGH
    assert policy.chain_for(HOUSING, Priority.HIGH).template_skips  # a holding reply
    assert not policy.chain_for(HOUSING, Priority.CRITICAL).template_skips
    assert policy.chain_for(HOUSING, Priority.CRITICAL).tiers == CRITICAL
    custom = ApprovalConfig.model_validate(
        {
            "rules": [
                {
                    "id": "gas",
                    "match": {"codes": ["Gas"], "departments": HOUSING},
                    "tiers": [D, TOP],
                },
                {"id": "all-high", "match": {"priorities": "high"}, "tiers": [D, PRESS]},
            ]
        }
    )
    assert custom.chain_for(HOUSING, Priority.HIGH, ["gas"]).tiers == (D, TOP)
    assert custom.chain_for("transport", Priority.HIGH, ["gas"]).tiers == HIGH
    assert custom.chain_for(HOUSING, Priority.LOW, ["water"]).tiers == (D,)
