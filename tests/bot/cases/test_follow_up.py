"""Follow-up answers and corrections: a new draft after a reply went public (or the talk moved
to private messages), through the same review, published into the same thread."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bot.cases.cards import bot_reply_of, card_actions
from bot.cases.lifecycle import InvalidTransition, NotAssignee, SelfReview, available_actions
from bot.model import DraftKind, DraftStatus, Outcome, WaitReason
from tests.bot.cases.stories import (
    APPR,
    LEAD,
    SPEC,
    SPEC2,
    T0,
    URL,
    A,
    S,
    Story,
    story_in,
    summary,
)


def _moved_to_private() -> Story:
    s = Story()
    s.do(A.TAKE, SPEC)
    s.do(
        A.WAIT_FOR_AUTHOR,
        SPEC,
        wait_reason=WaitReason.MOVED_TO_PRIVATE,
        follow_up_at=T0 + timedelta(days=2),
    )
    return s


def test_moved_to_private_takes_a_follow_up_that_shows_the_result() -> None:
    s = _moved_to_private()
    told = s.case.first_touched_at
    assert told is not None  # writing to the author in private was the first reply
    assert A.FOLLOW_UP in available_actions(s.case)
    assert A.CORRECT not in available_actions(s.case)  # nothing public to correct

    t = s.do(A.FOLLOW_UP, LEAD, text="  The roof was repaired on 3 May.  ")
    follow_up = t.case.latest_draft
    assert follow_up is not None
    assert (follow_up.kind, follow_up.status, follow_up.text) == (
        DraftKind.FOLLOW_UP,
        DraftStatus.PENDING,
        "The roof was repaired on 3 May.",
    )
    assert t.case.state is S.AWAITING_APPROVAL
    assert summary(t.events) == [
        (
            "follow_up",
            "lead",
            S.TAKEN,
            S.AWAITING_APPROVAL,
            {"version": 1, "pre_approved": False, "draft_kind": "follow_up"},
        )
    ]
    s.refuse(A.APPROVE, LEAD, SelfReview)  # four eyes, as for the answer
    s.do(A.APPROVE, APPR)
    t = s.do(A.MARK_PUBLISHED, SPEC, url=URL)
    case = t.case
    assert case.state is S.PUBLISHED
    # The loop is closed: nobody is asked for the result again, the wait is over.
    assert (case.follow_up_due_at, case.waiting_since) == (None, None)
    assert case.first_touched_at == told  # not the first contact: the deadline was met before
    assert case.published_at == s.now
    published = case.published_draft
    assert published is not None and published.kind is DraftKind.FOLLOW_UP
    assert (published.published_at, published.published_by_bot) == (s.now, False)
    assert summary(t.events)[0][4] == {"version": 1, "url": URL, "draft_kind": "follow_up"}
    # Still open: the published follow-up can be corrected, then the case closed.
    assert A.CORRECT in available_actions(case)
    assert A.FOLLOW_UP_DONE not in available_actions(case)


def test_a_follow_up_that_is_the_first_public_contact_meets_the_first_reply() -> None:
    s = Story()
    s.do(A.TAKE, SPEC)
    # A follow-up was asked for without a word to the author yet (FOLLOW_UP_LATER's field).
    s.case = replace(s.case, follow_up_due_at=T0 + timedelta(days=1))
    s.do(A.FOLLOW_UP, SPEC, text="Fixed")
    s.do(A.APPROVE, APPR)
    t = s.do(A.PUBLISH, SPEC)
    assert t.case.first_touched_at == s.now
    assert t.case.published_draft is not None and t.case.published_draft.published_by_bot


def test_after_publishing_a_follow_up_goes_round_the_same_review() -> None:
    s = story_in(S.PUBLISHED)
    answer = s.case.published_draft
    assert answer is not None and answer.kind is DraftKind.ANSWER
    s.refuse(A.FOLLOW_UP, SPEC2, NotAssignee, text="Not mine")  # the owner or a lead writes
    s.do(A.FOLLOW_UP, SPEC, text="v2")
    s.do(A.REQUEST_CHANGES, APPR, note="Say when")
    # A new version written after changes were asked for stays a follow-up.
    t = s.do(A.DRAFT, SPEC, text="v3: repaired on 3 May")
    assert t.case.latest_draft is not None and t.case.latest_draft.kind is DraftKind.FOLLOW_UP
    assert t.case.published_draft == answer  # the card still shows what is public
    t = s.do(A.REJECT, LEAD, note="Not yet")
    assert t.case.state is S.PUBLISHED  # turned down: what is public stays so
    assert t.case.published_draft == answer
    assert t.case.follow_up_due_at is not None  # the result is still owed


def test_a_template_is_not_pre_approved_as_a_follow_up() -> None:
    s = story_in(S.PUBLISHED)
    s.do(A.FOLLOW_UP, SPEC, text="v2")
    s.do(A.REQUEST_CHANGES, APPR, note="Use the template")
    t = s.do(A.USE_TEMPLATE, SPEC, text="Template", template_id="thanks", pre_approved=True)
    latest = t.case.latest_draft
    assert latest is not None
    assert (latest.kind, latest.status, latest.pre_approved) == (
        DraftKind.FOLLOW_UP,
        DraftStatus.PENDING,
        False,
    )
    assert t.case.state is S.AWAITING_APPROVAL


def test_a_correction_needs_something_public() -> None:
    s = story_in(S.TAKEN)
    s.refuse(A.CORRECT, SPEC, InvalidTransition, text="Nothing to correct")
    s = story_in(S.APPROVED)
    s.refuse(A.CORRECT, SPEC, InvalidTransition, text="Not public yet")
    # Taken, nothing public, no move to private: no follow-up either.
    s = story_in(S.TAKEN)
    assert A.FOLLOW_UP not in available_actions(s.case)
    s.refuse(A.FOLLOW_UP, SPEC, InvalidTransition, text="Too early")


def test_a_correction_replaces_the_published_text() -> None:
    s = Story()
    s.do(A.DRAFT, SPEC, text="Answer")
    s.do(A.APPROVE, APPR)
    s.do(A.PUBLISH, SPEC)
    t = s.do(A.CORRECT, SPEC, text="Answer, corrected")
    assert t.case.state is S.AWAITING_APPROVAL
    assert t.case.latest_draft is not None
    assert t.case.latest_draft.kind is DraftKind.CORRECTION
    s.do(A.APPROVE, APPR)
    follow_up = s.case.follow_up_due_at
    t = s.do(A.PUBLISH, SPEC)
    assert t.case.state is S.PUBLISHED
    assert t.case.follow_up_due_at == follow_up  # a correction shows no result
    assert t.case.published_draft is not None
    assert t.case.published_draft.text == "Answer, corrected"
    # The card offers both again, and the close that ends it.
    assert {A.FOLLOW_UP, A.CORRECT, A.CLOSE} <= set(card_actions(t.case, publishable=True))
    s.do(A.CLOSE, SPEC, outcome=Outcome.RESOLVED)


def test_the_bots_reply_a_correction_edits() -> None:
    s = Story()
    s.do(A.DRAFT, SPEC, text="Answer")
    s.do(A.APPROVE, APPR)
    assert bot_reply_of(s.case) is None
    s.do(A.PUBLISH, SPEC)  # v1: the bot's reply
    assert bot_reply_of(s.case) == 1
    s.do(A.CORRECT, SPEC, text="Answer, corrected")
    s.do(A.APPROVE, APPR)
    s.do(A.PUBLISH, SPEC)  # v2 edited v1's reply
    assert bot_reply_of(s.case) == 1
    s.do(A.FOLLOW_UP, SPEC, text="Result")
    s.do(A.APPROVE, APPR)
    s.do(A.PUBLISH, SPEC)  # v3: a new reply
    assert bot_reply_of(s.case) == 3
    s.do(A.CORRECT, SPEC, text="Result, corrected")
    s.do(A.APPROVE, APPR)
    s.do(A.PUBLISH, SPEC)
    assert bot_reply_of(s.case) == 3  # the latest reply was edited


def test_an_answer_published_by_hand_leaves_no_reply_to_edit() -> None:
    s = story_in(S.PUBLISHED)  # marked published by hand
    assert bot_reply_of(s.case) is None
    s.do(A.CORRECT, SPEC, text="Corrected")
    s.do(A.APPROVE, APPR)
    s.do(A.PUBLISH, SPEC)  # the bot could post it: a new reply, saying it corrects
    assert bot_reply_of(s.case) == 2
