"""Property: random walks by random people never break a case, and every refusal is the one
`check` predicts."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import datetime, timedelta
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
    NotYourTier,
    ReviewedTwice,
    SelfReview,
    StaleCard,
    available_actions,
    check,
    invariant_violations,
    reaches_author,
    transition,
)
from bot.model import (
    MAX_DRAFT_TEXT,
    MAX_NOTE,
    MAX_URL,
    SINGLE_TIER,
    Action,
    Approval,
    ApproverRole,
    Case,
    CaseState,
    DeptRole,
    DraftKind,
    DraftStatus,
    Event,
    GlobalRole,
    IgnoreReason,
    Outcome,
    WaitReason,
)
from bot.staff.rights import Actor, may_review_at
from tests.bot.cases.stories import (
    ADMIN,
    ALLOWED_STATES,
    APPR,
    BOSS,
    DUTY,
    HOUSING,
    LEAD,
    MULTI,
    OMNI,
    SPEC,
    SPEC2,
    STRANGER,
    T0,
    TAPPR,
    TRANSPORT,
    TSPEC,
    URL,
    A,
    S,
    new_case,
    same_refusal,
)

# ---------------------------------------------------------------------------------------------
# Property: random walks by random people never break the case


PRESS = Actor("press", "Press secretary", global_roles=frozenset({GlobalRole.PRESS_SECRETARY}))
WALK_ACTORS = (
    SPEC,
    SPEC2,
    APPR,
    LEAD,
    DUTY,
    BOSS,
    ADMIN,
    STRANGER,
    TSPEC,
    TAPPR,
    MULTI,
    OMNI,
    PRESS,
)
# Approval chains a draft may be given (approval.yaml decides in the service).
CHAINS = (
    SINGLE_TIER,
    (ApproverRole.DEPARTMENT, ApproverRole.PRESS_SECRETARY),
    (ApproverRole.DEPARTMENT, ApproverRole.PRESS_SECRETARY, ApproverRole.LEADERSHIP),
)
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
    elif clean and action in REVIEWS and latest is not None and latest.current_tier is not None:
        # Mostly someone who reviews at the tier the draft stands at, so chains get walked.
        tier = latest.tiers[latest.current_tier]
        fit = [a for a in WALK_ACTORS if may_review_at(a, tier, case.department)]
        actor = draw(st.sampled_from(fit or list(WALK_ACTORS)))
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
        tiers=draw(st.sampled_from(CHAINS)),
        template_skips=draw(st.booleans()),
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
            error,
            InvalidTransition
            | SelfReview
            | NotYourTier
            | ReviewedTwice
            | NotAssignee
            | MissingInput
            | InvalidInput,
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
    if prev.reacted_at is not None:
        assert new.reacted_at == prev.reacted_at
    elif action in (A.ESCALATE, A.AUTHOR_REPLIED):
        assert new.reacted_at is None
    else:
        assert new.reacted_at == now
    if prev.first_touched_at is not None:
        assert new.first_touched_at == prev.first_touched_at
    else:
        assert new.first_touched_at == (now if reaches_author(req) else None)
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
        if old.published_at is not None:  # what went public stays as it went
            assert kept == old
        elif old.status is not DraftStatus.PENDING:  # a pending draft is re-stamped, and
            # the approved one that goes public gets the moment, and who posted it
            published = (kept.published_at, kept.published_by_bot)
            assert replace(kept, published_at=None, published_by_bot=False) == old
            if kept.published_at is not None:
                assert published[0] == now and action in (A.PUBLISH, A.MARK_PUBLISHED)

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
    elif action in (A.DRAFT, A.USE_TEMPLATE, A.FOLLOW_UP, A.CORRECT):
        assert len(new.drafts) == len(prev.drafts) + 1
        assert latest is not None and latest.author == actor.id
        assert req.text is not None and latest.text == req.text.strip() != ""
        kind = {A.FOLLOW_UP: DraftKind.FOLLOW_UP, A.CORRECT: DraftKind.CORRECTION}.get(action)
        if kind is not None:
            assert latest.kind is kind
        if action is A.CORRECT:
            assert prev.published_draft is not None
        pre = (
            action is A.USE_TEMPLATE
            and req.pre_approved
            and req.template_skips
            and latest.kind is DraftKind.ANSWER
        )
        assert latest.tiers == req.tiers and latest.approvals == ()
        assert new.state is (S.APPROVED if pre else S.AWAITING_APPROVAL)
        assert latest.status is (DraftStatus.APPROVED if pre else DraftStatus.PENDING)
        if action is A.USE_TEMPLATE:
            assert latest.template_id == req.template_id and req.template_id
        if prev.state is not S.NEW:
            assert prev.assignee == actor.id or actor.has(DeptRole.LEAD, prev.department)
    elif action in REVIEWS:
        assert len(new.drafts) == len(prev.drafts)
        reviewed = prev.latest_draft
        assert reviewed is not None and latest is not None and reviewed.current_tier is not None
        tier = reviewed.current_tier
        # Rights per tier, four eyes at every step.
        assert may_review_at(actor, reviewed.tiers[tier], prev.department)
        assert actor.id != reviewed.author
        assert actor.id not in {a.reviewer for a in reviewed.approvals}
        if action is A.APPROVE:
            assert latest.approvals == (*reviewed.approvals, Approval(tier, actor.id, now))
        if action is A.APPROVE and tier + 1 < len(reviewed.tiers):  # the next tier is asked
            assert (latest.status, new.state, latest.reviewer) == (
                DraftStatus.PENDING,
                S.AWAITING_APPROVAL,
                None,
            )
            return
        assert latest.reviewer == actor.id != latest.author
        assert latest.reviewed_at == now
        status, state = {
            A.APPROVE: (DraftStatus.APPROVED, S.APPROVED),
            A.REQUEST_CHANGES: (DraftStatus.CHANGES_REQUESTED, S.CHANGES_REQUESTED),
            A.REJECT: (
                DraftStatus.REJECTED,
                S.PUBLISHED if prev.published_draft is not None else S.TAKEN,
            ),
        }[action]
        assert (latest.status, new.state) == (status, state)
        assert new.assignee == prev.assignee
    elif (
        action in (A.PUBLISH, A.MARK_PUBLISHED)
        and new.published_draft is not None
        and (new.published_draft.kind is not DraftKind.ANSWER)
    ):
        follow_up = new.published_draft.kind is DraftKind.FOLLOW_UP
        assert new.published_draft.published_at == now
        assert (new.state, new.published_at) == (S.PUBLISHED, prev.published_at or now)
        assert new.follow_up_due_at == (None if follow_up else prev.follow_up_due_at)
        assert new.waiting_since == (None if follow_up else prev.waiting_since)
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


# 300 walks of up to 60 steps: ~35 s on an idle core, and a loaded CI machine is slower.
@pytest.mark.timeout(300)
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
                assert same_refusal(refusal, error), (refusal, error)
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
