"""The case state machine: one pure function from (case, request, actor, now) to a new case.

Every transport and every scheduled job goes through `transition`; nothing else changes a
case's state. A refusal is a DomainError whose `code` names a user-facing message. `check`
holds every guard once: `transition` runs it first, and so does the case service before it
asks a person for a draft, a note or a choice (bot/cases/prompts.py).

Follow-ups and corrections reuse the answer's cycle instead of a second state machine. Once a
reply went public (PUBLISHED), or the talk moved to private messages (a follow-up is due),
FOLLOW_UP or CORRECT writes a new draft of that kind (Draft.kind): the case goes
AWAITING_APPROVAL → APPROVED (the same APPROVE, four eyes) → PUBLISHED again, and what went
public before stays on its draft (Draft.published_at). Later versions written after changes
were requested keep the kind. A rejected follow-up or correction returns the case to
PUBLISHED when something is public already. Publishing a follow-up closes the follow-up: no
more asking for the result (follow_up_due_at cleared) and no more waiting for the author; the
case stays PUBLISHED, open for a correction, until someone closes it with its outcome.
Publishing a correction replaces the text of the latest public reply: the bot edits its own
reply where it posted one, else it is posted as a new reply that says it corrects the first
(bot/cases/cards.py).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot.cases.codes import dimension_of, toggle
from bot.model import (
    MAX_DRAFT_TEXT,
    MAX_NAME,
    MAX_NOTE,
    MAX_URL,
    OWNED_STATES,
    SINGLE_TIER,
    TERMINAL_STATES,
    Action,
    Approval,
    ApproverRole,
    Case,
    CaseState,
    DeptRole,
    Draft,
    DraftKind,
    DraftStatus,
    Event,
    IgnoreReason,
    Outcome,
    Priority,
    WaitReason,
)
from bot.staff.rights import Actor, may_review_at

S = CaseState
_OPEN = frozenset(set(CaseState) - TERMINAL_STATES)

# Where each action may start. Extra conditions (ownership, four eyes) are in _GUARDS below.
ALLOWED_FROM: dict[Action, frozenset[CaseState]] = {
    Action.TAKE: frozenset({S.NEW, S.TAKEN, S.CHANGES_REQUESTED}),
    Action.RELEASE: frozenset({S.TAKEN, S.CHANGES_REQUESTED}),
    Action.DRAFT: frozenset({S.NEW, S.TAKEN, S.CHANGES_REQUESTED, S.AWAITING_APPROVAL, S.APPROVED}),
    Action.USE_TEMPLATE: frozenset(
        {S.NEW, S.TAKEN, S.CHANGES_REQUESTED, S.AWAITING_APPROVAL, S.APPROVED}
    ),
    Action.APPROVE: frozenset({S.AWAITING_APPROVAL}),
    Action.REQUEST_CHANGES: frozenset({S.AWAITING_APPROVAL}),
    Action.REJECT: frozenset({S.AWAITING_APPROVAL}),
    Action.PUBLISH: frozenset({S.APPROVED}),
    # From PUBLISHED: the mentions of a cluster the bot cannot answer were answered by hand
    # (_hand_due guards it; bot/cases/publication.py).
    Action.MARK_PUBLISHED: frozenset({S.APPROVED, S.PUBLISHED}),
    Action.ESCALATE: frozenset(set(CaseState) - TERMINAL_STATES),
    Action.REROUTE: frozenset(
        {S.NEW, S.TAKEN, S.CHANGES_REQUESTED, S.AWAITING_APPROVAL, S.APPROVED}
    ),
    Action.IGNORE: frozenset(
        {S.NEW, S.TAKEN, S.CHANGES_REQUESTED, S.AWAITING_APPROVAL, S.APPROVED}
    ),
    Action.CLOSE: frozenset(set(CaseState) - TERMINAL_STATES),
    Action.REOPEN: TERMINAL_STATES,
    # A follow-up is set on publishing or when the talk moved to private messages.
    Action.FOLLOW_UP_DONE: _OPEN,
    Action.FOLLOW_UP_LATER: _OPEN,
    # Waiting needs an owner: somebody asked the author something.
    Action.WAIT_FOR_AUTHOR: frozenset(
        {S.TAKEN, S.CHANGES_REQUESTED, S.AWAITING_APPROVAL, S.APPROVED, S.PUBLISHED}
    ),
    Action.AUTHOR_REPLIED: _OPEN,
    # After a public reply, or once the talk moved to private messages (_may_follow_up).
    Action.FOLLOW_UP: frozenset({S.TAKEN, S.CHANGES_REQUESTED, S.APPROVED, S.PUBLISHED}),
    Action.CORRECT: frozenset({S.PUBLISHED}),
    # Coding, priority and assignment: at any moment of an open case.
    Action.SET_CODE: _OPEN,
    Action.SET_PRIORITY: _OPEN,
    Action.ASSIGN: _OPEN,
}


class DomainError(Exception):
    """A refused action. `code` selects the message template; `params` fill it."""

    code = "error"

    def __init__(self, **params: Any) -> None:
        self.params = params
        super().__init__(f"{self.code}: {params}")


class InvalidTransition(DomainError):
    code = "invalid_state"


class NoRight(DomainError):
    code = "no_right"


class SelfReview(DomainError):
    """Four-eyes: whoever wrote a draft may not approve, reject or send it back."""

    code = "self_review"


class NotYourTier(DomainError):
    """Rights per tier: the draft waits for another tier's approvers than this person."""

    code = "wrong_tier"


class ReviewedTwice(DomainError):
    """Four eyes at every step: one person reviews one tier of a draft, never two."""

    code = "reviewed_twice"


class NotAssignee(DomainError):
    code = "not_assignee"


class MissingInput(DomainError):
    code = "missing_input"


class InvalidInput(DomainError):
    code = "invalid_input"


class StaleCard(DomainError):
    """The button belonged to an older version of the card."""

    code = "stale"


class StaleDraft(StaleCard):
    """A review button (or reaction) under a draft version that is no longer the one under
    review: the author wrote another meanwhile. Approving it would approve a text the reviewer
    never read."""

    code = "stale_draft"


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """An action with what it needs. Transports fill only the fields their action uses."""

    action: Action
    text: str | None = None  # DRAFT, USE_TEMPLATE, FOLLOW_UP, CORRECT
    template_id: str | None = None  # USE_TEMPLATE
    pre_approved: bool = False  # USE_TEMPLATE: the playbook marks the template approved
    # DRAFT, USE_TEMPLATE: the approval chain the policy gives the case now (fixed on the
    # draft), and whether a pre-approved template may skip it (bot/settings/approval_rules.py).
    tiers: tuple[ApproverRole, ...] = SINGLE_TIER
    template_skips: bool = True
    note: str | None = None  # REQUEST_CHANGES, REJECT (both required), ESCALATE, REOPEN
    reason: IgnoreReason | None = None  # IGNORE
    outcome: Outcome | None = None  # CLOSE
    department: str | None = None  # REROUTE target
    url: str | None = None  # PUBLISH, MARK_PUBLISHED: the public link
    # MARK_PUBLISHED: the newest mention of the case now, which the mark covers (the service
    # fills it in; a mention that joins later waits for the next mark).
    by_hand_upto: int | None = None
    # PUBLISH, MARK_PUBLISHED, FOLLOW_UP_LATER, WAIT_FOR_AUTHOR (moved to private): when to ask
    # for the result
    follow_up_at: datetime | None = None
    wait_reason: WaitReason | None = None  # WAIT_FOR_AUTHOR
    expected_version: int | None = None  # the card version the button was pressed on
    draft_version: int | None = None  # review actions: the draft version the press was under
    code: str | None = None  # SET_CODE: "<dimension>:<code>" from the playbook's codes.yaml
    code_multiple: bool = False  # SET_CODE: the playbook lets the dimension hold several
    priority: Priority | None = None  # SET_PRIORITY: the new priority
    assignee: str | None = None  # ASSIGN: the colleague's staff id


@dataclass(frozen=True, slots=True)
class Transition:
    case: Case
    events: tuple[Event, ...]


def transition(case: Case, request: ActionRequest, actor: Actor, now: datetime) -> Transition:
    """Apply one action. Returns the new case and its events, or raises DomainError."""
    refusal = check(case, request, actor)
    if refusal is not None:
        raise refusal
    action = request.action
    handler = _HANDLERS[action]
    new_case, events = handler(case, request, actor, now)
    # Escalating is no reaction, nor is coding or a new priority; the author's reply is not
    # staff's.
    if new_case.reacted_at is None and action not in _NO_REACTION:
        new_case = replace(new_case, reacted_at=now)
    if new_case.first_touched_at is None and reaches_author(request):
        new_case = replace(new_case, first_touched_at=now)
    new_case = replace(new_case, version=case.version + 1)
    violations = invariant_violations(new_case)
    if violations:  # a bug in this module, never a user error
        raise AssertionError(f"{action.value} broke invariants: {violations}")
    return Transition(new_case, tuple(events))


_NO_REACTION = frozenset(
    {Action.ESCALATE, Action.AUTHOR_REPLIED, Action.SET_CODE, Action.SET_PRIORITY}
)

# Closing with these outcomes says the author was told (in public or in private).
_TOLD = frozenset({Outcome.RESOLVED, Outcome.ANSWERED, Outcome.MOVED_TO_PRIVATE, Outcome.REFUTED})


def reaches_author(request: ActionRequest) -> bool:
    """Whether the action is a contact the author sees, which meets the first-reply deadline:
    a reply published (a first-reply template or the answer), the result shown, waiting for
    the author (the talk moved to private messages, or the author was asked for details: both
    are written to them), or a close saying the author was told. Taking a case, drafting and
    approving are internal. The events carry the same facts, so migration 0014 finds the same
    moment in a case's history (keep the two in step)."""
    action = request.action
    if action in (
        Action.PUBLISH,
        Action.MARK_PUBLISHED,
        Action.FOLLOW_UP_DONE,
        Action.WAIT_FOR_AUTHOR,
    ):
        return True
    if action is Action.CLOSE:
        return request.outcome in _TOLD
    return False


def check(case: Case, request: ActionRequest, actor: Actor) -> DomainError | None:
    """The refusal `transition` would raise for this request before changing anything, or None.

    One order, one place: rights, card and draft version, state, the bounds of what the request
    carries, then the action's own guard (ownership, four eyes, a follow-up or a wait to act
    on). What the request lacks is not checked here: a prompt is checked before its text
    exists, so a draft's text, a note or an outcome is the handler's to demand.
    """
    action = request.action
    if not actor.may(action, case.department):
        return NoRight(action=action.value, department=case.department)
    if request.expected_version is not None and request.expected_version != case.version:
        return StaleCard(expected=request.expected_version, actual=case.version)
    if request.draft_version is not None:
        latest = case.latest_draft
        if latest is None or latest.version != request.draft_version:
            actual = latest.version if latest else None
            return StaleDraft(expected=request.draft_version, actual=actual)
    if case.state not in ALLOWED_FROM[action]:
        return InvalidTransition(action=action.value, state=case.state.value)
    out_of_bounds = _out_of_bounds(request)
    if out_of_bounds is not None:
        return out_of_bounds
    guard = _GUARDS.get(action)
    return guard(case, request, actor) if guard else None


def _out_of_bounds(request: ActionRequest) -> InvalidInput | None:
    """Fields too long or malformed; absent fields pass."""
    for name, value, limit in (
        ("text", request.text, MAX_DRAFT_TEXT),
        ("note", request.note, MAX_NOTE),
        ("url", request.url, MAX_URL),
        ("department", request.department, MAX_NAME),
        ("template_id", request.template_id, MAX_NAME),
        ("code", request.code, MAX_NAME),
        ("assignee", request.assignee, MAX_NAME),
    ):
        if value is not None and len(value) > limit:
            return InvalidInput(field=name, limit=limit)
    if request.url is not None and not request.url.startswith(("https://", "http://")):
        return InvalidInput(field="url", limit=MAX_URL)
    if request.follow_up_at is not None and request.follow_up_at.tzinfo is None:
        return InvalidInput(field="follow_up_at", limit=None)
    return None


# --- guards: what an action needs of the case and the person besides rights and state ---

Guard = Callable[[Case, ActionRequest, Actor], DomainError | None]


def _is_owner_or_lead(case: Case, actor: Actor) -> bool:
    return case.assignee == actor.id or actor.has(DeptRole.LEAD, case.department)


def _may_take(case: Case, req: ActionRequest, actor: Actor) -> DomainError | None:
    if case.state is S.NEW:
        return None
    if case.assignee == actor.id:
        return InvalidTransition(action=req.action.value, state=case.state.value)
    if not actor.has(DeptRole.LEAD, case.department):  # only a lead takes a case over
        return NotAssignee(assignee=case.assignee)
    return None


def _owner_or_lead(case: Case, req: ActionRequest, actor: Actor) -> DomainError | None:
    return None if _is_owner_or_lead(case, actor) else NotAssignee(assignee=case.assignee)


def _may_write(case: Case, req: ActionRequest, actor: Actor) -> DomainError | None:
    if case.state is S.NEW:  # writing an answer to a new case takes it
        return None
    return _owner_or_lead(case, req, actor)


def _four_eyes(case: Case, req: ActionRequest, actor: Actor) -> DomainError | None:
    """At every tier: not the draft's author, not who reviewed an earlier tier, and only a
    holder of this tier's role."""
    draft = case.latest_draft
    if draft is None:
        return None
    if draft.author == actor.id:
        return SelfReview(version=draft.version)
    tier = draft.current_tier
    if tier is None:
        return None
    if any(a.reviewer == actor.id for a in draft.approvals):
        return ReviewedTwice(version=draft.version, tier=tier + 1)
    role = draft.tiers[tier]
    if not may_review_at(actor, role, case.department):
        return NotYourTier(version=draft.version, tier=tier + 1, role=role.value)
    return None


def _follow_up_asked(case: Case, req: ActionRequest, actor: Actor) -> DomainError | None:
    if case.follow_up_due_at is None:
        return InvalidTransition(action=req.action.value, state=case.state.value)
    return None


def _not_waiting(case: Case, req: ActionRequest, actor: Actor) -> DomainError | None:
    if case.waiting_since is not None:
        return InvalidTransition(action=req.action.value, state=case.state.value)
    return None


def _waiting(case: Case, req: ActionRequest, actor: Actor) -> DomainError | None:
    if case.waiting_since is None:
        return InvalidTransition(action=req.action.value, state=case.state.value)
    return None


def _may_follow_up(case: Case, req: ActionRequest, actor: Actor) -> DomainError | None:
    """Something went public, or the talk moved to private and the result is still owed."""
    if case.state is not S.PUBLISHED and case.follow_up_due_at is None:
        return InvalidTransition(action=req.action.value, state=case.state.value)
    return _owner_or_lead(case, req, actor)


def _may_correct(case: Case, req: ActionRequest, actor: Actor) -> DomainError | None:
    if case.published_draft is None:  # published by a release that did not record it
        return InvalidTransition(action=req.action.value, state=case.state.value)
    return _owner_or_lead(case, req, actor)


def _may_code(case: Case, req: ActionRequest, actor: Actor) -> DomainError | None:
    if case.assignee is None:  # nobody owns it: the department's staff code it
        return None
    return _owner_or_lead(case, req, actor)


def _hand_due(case: Case, req: ActionRequest, actor: Actor) -> DomainError | None:
    """Once published, marking by hand is for mentions only a person can answer: while
    some wait for it."""
    if case.state is S.PUBLISHED and case.hand_due <= 0:
        return InvalidTransition(action=req.action.value, state=case.state.value)
    return None


_GUARDS: dict[Action, Guard] = {
    Action.TAKE: _may_take,
    Action.RELEASE: _owner_or_lead,
    Action.DRAFT: _may_write,
    Action.USE_TEMPLATE: _may_write,
    Action.APPROVE: _four_eyes,
    Action.REQUEST_CHANGES: _four_eyes,
    Action.REJECT: _four_eyes,
    Action.FOLLOW_UP_DONE: _follow_up_asked,
    Action.FOLLOW_UP_LATER: _follow_up_asked,
    Action.WAIT_FOR_AUTHOR: _not_waiting,
    Action.AUTHOR_REPLIED: _waiting,
    Action.FOLLOW_UP: _may_follow_up,
    Action.CORRECT: _may_correct,
    Action.SET_CODE: _may_code,
    Action.MARK_PUBLISHED: _hand_due,
}


def _event(
    case: Case, actor: Actor, now: datetime, kind: str, to_state: CaseState, **payload: Any
) -> Event:
    clean = {k: v for k, v in payload.items() if v is not None}
    return Event(case.id, now, actor.id, kind, case.state, to_state, clean)


def _retire_pending(drafts: tuple[Draft, ...]) -> tuple[Draft, ...]:
    """A pending draft that nobody reviewed is superseded when the case moves on without it."""
    return tuple(
        replace(d, status=DraftStatus.SUPERSEDED) if d.status is DraftStatus.PENDING else d
        for d in drafts
    )


# --- handlers: `check` has passed; each demands what its request must carry, then applies it ---

Handled = tuple[Case, list[Event]]


def _take(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    to = S.TAKEN if case.state is S.NEW else case.state
    event = _event(case, actor, now, Action.TAKE, to, previous=case.assignee)
    return replace(case, state=to, assignee=actor.id), [event]


def _release(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    event = _event(case, actor, now, Action.RELEASE, S.NEW, previous=case.assignee)
    return replace(case, state=S.NEW, assignee=None), [event]


# Direction marks, zero-width joiners, controls, separators and lone combining marks: a
# draft of only these would be an empty public reply (Telegram drops several of them).
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"})


def _visible(ch: str) -> bool:
    return unicodedata.category(ch) not in _INVISIBLE


def _draft(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    text = (req.text or "").strip()
    if not any(_visible(ch) for ch in text):  # "\u202a" alone: Telegram posts nothing
        raise MissingInput(field="text")
    if req.action is Action.USE_TEMPLATE and not req.template_id:
        raise MissingInput(field="template_id")
    events: list[Event] = []
    if case.state is S.NEW:  # writing an answer to a new case takes it
        events.append(_event(case, actor, now, Action.TAKE, S.TAKEN, previous=None))
        case = replace(case, state=S.TAKEN, assignee=actor.id)

    kind = _kind_of_new_draft(case, req.action)
    # A pre-approved template skips the chain only where the policy lets it, and only as an
    # answer: as a follow-up or a correction it is reviewed like any text.
    pre_approved = (
        req.action is Action.USE_TEMPLATE
        and req.pre_approved
        and req.template_skips
        and kind is DraftKind.ANSWER
    )
    tiers = req.tiers or SINGLE_TIER
    draft = Draft(
        version=len(case.drafts) + 1,
        text=text,
        author=actor.id,
        created_at=now,
        status=DraftStatus.APPROVED if pre_approved else DraftStatus.PENDING,
        template_id=req.template_id if req.action is Action.USE_TEMPLATE else None,
        pre_approved=pre_approved,
        kind=kind,
        tiers=tiers,
    )
    to = S.APPROVED if pre_approved else S.AWAITING_APPROVAL
    events.append(
        _event(
            case,
            actor,
            now,
            req.action,
            to,
            version=draft.version,
            template_id=draft.template_id,
            pre_approved=pre_approved,
            draft_kind=None if kind is DraftKind.ANSWER else kind.value,
            # A chain of more than one tier is named; one tier is what every draft had.
            tiers=[t.value for t in tiers] if len(tiers) > 1 and not pre_approved else None,
        )
    )
    new_case = replace(
        case,
        state=to,
        drafts=(*_retire_pending(case.drafts), draft),
        approved_at=case.approved_at or (now if pre_approved else None),
    )
    return new_case, events


_KIND_OF_ACTION = {Action.FOLLOW_UP: DraftKind.FOLLOW_UP, Action.CORRECT: DraftKind.CORRECTION}


def _kind_of_new_draft(case: Case, action: Action) -> DraftKind:
    """FOLLOW_UP and CORRECT name the kind; a new version of a draft not yet public keeps its
    predecessor's (a follow-up sent back for changes is rewritten as a follow-up)."""
    if action in _KIND_OF_ACTION:
        return _KIND_OF_ACTION[action]
    latest = case.latest_draft
    in_review = case.state in (S.AWAITING_APPROVAL, S.CHANGES_REQUESTED, S.APPROVED)
    if latest is not None and in_review and latest.published_at is None:
        return latest.kind
    return DraftKind.ANSWER


def _review(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    """A review at the draft's current tier. Approving any tier but the last records the
    approval and leaves the draft pending for the next; sending back or rejecting at any
    tier ends the chain (the author's next version starts it again)."""
    draft = case.latest_draft
    assert draft is not None and draft.status is DraftStatus.PENDING
    tier = draft.current_tier
    assert tier is not None
    note = (req.note or "").strip() or None
    if req.action in (Action.REQUEST_CHANGES, Action.REJECT) and note is None:
        raise MissingInput(field="note")
    status, to = {
        Action.APPROVE: (DraftStatus.APPROVED, S.APPROVED),
        Action.REQUEST_CHANGES: (DraftStatus.CHANGES_REQUESTED, S.CHANGES_REQUESTED),
        Action.REJECT: (DraftStatus.REJECTED, S.TAKEN),
    }[req.action]
    if to is S.TAKEN and case.published_draft is not None:
        to = S.PUBLISHED  # a follow-up or correction turned down: what is public stays so
    approvals = draft.approvals
    if req.action is Action.APPROVE:
        approvals = (*approvals, Approval(tier, actor.id, now))
    if req.action is Action.APPROVE and len(approvals) < len(draft.tiers):
        # An earlier tier approved: the draft stays pending for the next one.
        to = S.AWAITING_APPROVAL
        reviewed = replace(draft, approvals=approvals)
    else:
        reviewed = replace(
            draft,
            status=status,
            reviewer=actor.id,
            reviewed_at=now,
            note=note,
            approvals=approvals,
        )
    event = _event(
        case,
        actor,
        now,
        req.action,
        to,
        version=draft.version,
        note=note,
        # Which step of a chain of more than one: its index from 1, and whose step it is.
        tier=tier + 1 if len(draft.tiers) > 1 else None,
        tier_name=draft.tiers[tier].value if len(draft.tiers) > 1 else None,
    )
    new_case = replace(
        case,
        state=to,
        drafts=(*case.drafts[:-1], reviewed),
        approved_at=case.approved_at or (now if to is S.APPROVED else None),
    )
    return new_case, [event]


def _publish(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    draft = case.approved_draft
    assert draft is not None
    answer = draft.kind is DraftKind.ANSWER
    public = replace(
        draft,
        published_at=now,
        # A drill's Publish posts nothing: there is no reply of the bot's to edit later.
        published_by_bot=req.action is Action.PUBLISH and not case.drill,
    )
    event = _event(
        case,
        actor,
        now,
        req.action,
        S.PUBLISHED,
        version=draft.version,
        url=req.url,
        # A drill's Publish posts nothing anywhere (bot/cases/cards.py announce).
        note="simulated" if case.drill and req.action is Action.PUBLISH else None,
        draft_kind=None if answer else draft.kind.value,
    )
    drafts = tuple(public if d.version == draft.version else d for d in case.drafts)
    if answer:
        new_case = replace(
            case,
            state=S.PUBLISHED,
            published_at=now,
            published_url=req.url or case.published_url,
            follow_up_due_at=req.follow_up_at,
            drafts=drafts,
        )
        return new_case, [event]
    follow_up = draft.kind is DraftKind.FOLLOW_UP
    new_case = replace(
        case,
        state=S.PUBLISHED,
        published_at=case.published_at or now,  # the first reply's moment stays the answer's
        published_url=case.published_url or req.url,
        # The result is shown: nobody is asked for it again, the talk in private is over.
        follow_up_due_at=None if follow_up else case.follow_up_due_at,
        waiting_since=None if follow_up else case.waiting_since,
        drafts=drafts,
    )
    return new_case, [event]


def _mark_published(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    """An approved answer a person posted by hand; or, on a published cluster, the mentions
    the bot cannot answer, answered by hand now (how many, up to which mention: audited)."""
    if case.state is not S.PUBLISHED:
        return _publish(case, req, actor, now)
    upto = max(case.hand_marked_upto, req.by_hand_upto or 0)
    event = _event(
        case, actor, now, Action.MARK_PUBLISHED, S.PUBLISHED, by_hand=case.hand_due, upto=upto
    )
    marked = replace(
        case,
        hand_published=case.hand_published + case.hand_due,
        hand_due=0,
        hand_marked_upto=upto,
    )
    return marked, [event]


def _escalate(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    level = case.escalation_level + 1
    reason = (req.note or "").strip() or None
    event = _event(case, actor, now, Action.ESCALATE, case.state, level=level, reason=reason)
    return replace(case, escalation_level=level), [event]


def _reroute(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    target = (req.department or "").strip()
    if not target:
        raise MissingInput(field="department")
    if target == case.department:
        raise InvalidInput(field="department", limit=None)
    event = _event(case, actor, now, Action.REROUTE, S.NEW, source=case.department, target=target)
    new_case = replace(
        case,
        department=target,
        state=S.NEW,
        assignee=None,
        drafts=_retire_pending(case.drafts),
        route_confidence=None,  # a person chose the department now, not the router
    )
    return new_case, [event]


def _ignore(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    if req.reason is None:
        raise MissingInput(field="reason")
    event = _event(case, actor, now, Action.IGNORE, S.IGNORED, reason=req.reason.value)
    new_case = replace(
        case,
        state=S.IGNORED,
        ignore_reason=req.reason,
        closed_at=now,
        follow_up_due_at=None,
        waiting_since=None,
        drafts=_retire_pending(case.drafts),
    )
    return new_case, [event]


def _close(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    if req.outcome is None:
        raise MissingInput(field="outcome")
    return _closed(case, actor, now, Action.CLOSE, req.outcome)


def _follow_up_done(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    return _closed(case, actor, now, Action.FOLLOW_UP_DONE, Outcome.RESOLVED)


def _follow_up_later(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    if req.follow_up_at is None:
        raise MissingInput(field="follow_up_at")
    at = req.follow_up_at.isoformat()
    event = _event(case, actor, now, Action.FOLLOW_UP_LATER, case.state, follow_up_at=at)
    return replace(case, follow_up_due_at=req.follow_up_at), [event]


def _wait_for_author(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    if req.wait_reason is None:
        raise MissingInput(field="reason")
    follow_up = case.follow_up_due_at
    if req.wait_reason is WaitReason.MOVED_TO_PRIVATE and req.follow_up_at is not None:
        follow_up = req.follow_up_at  # come back and show the result in public
    event = _event(
        case,
        actor,
        now,
        Action.WAIT_FOR_AUTHOR,
        case.state,
        reason=req.wait_reason.value,
        follow_up_at=(
            follow_up.isoformat() if follow_up and follow_up != case.follow_up_due_at else None
        ),
    )
    return replace(case, waiting_since=now, follow_up_due_at=follow_up), [event]


def _author_replied(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    assert case.waiting_since is not None
    since = case.waiting_since.isoformat()
    event = _event(case, actor, now, Action.AUTHOR_REPLIED, case.state, waiting_since=since)
    return replace(case, waiting_since=None), [event]


def _closed(case: Case, actor: Actor, now: datetime, kind: Action, outcome: Outcome) -> Handled:
    event = _event(case, actor, now, kind, S.CLOSED, outcome=outcome.value)
    new_case = replace(
        case,
        state=S.CLOSED,
        outcome=outcome,
        closed_at=now,
        follow_up_due_at=None,
        waiting_since=None,
        drafts=_retire_pending(case.drafts),
    )
    return new_case, [event]


def _reopen(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    event = _event(case, actor, now, Action.REOPEN, S.NEW, note=(req.note or "").strip() or None)
    new_case = replace(
        case,
        state=S.NEW,
        assignee=None,
        outcome=None,
        ignore_reason=None,
        closed_at=None,
        follow_up_due_at=None,
    )
    return new_case, [event]


def _set_code(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    code = (req.code or "").strip()
    if not code:
        raise MissingInput(field="code")
    if dimension_of(code) is None:
        raise InvalidInput(field="code", limit=None)
    toggled = toggle(case.codes, code, req.code_multiple)
    event = _event(
        case,
        actor,
        now,
        Action.SET_CODE,
        case.state,
        code=code,
        added=toggled.added,
        replaced=list(toggled.removed) or None,
    )
    return replace(case, codes=toggled.codes), [event]


def _set_priority(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    if req.priority is None:
        raise MissingInput(field="priority")
    if req.priority is case.priority:
        raise InvalidInput(field="priority", limit=None)
    event = _event(
        case,
        actor,
        now,
        Action.SET_PRIORITY,
        case.state,
        previous=case.priority.value,
        priority=req.priority.value,
    )
    return replace(case, priority=req.priority), [event]


def _assign(case: Case, req: ActionRequest, actor: Actor, now: datetime) -> Handled:
    """The colleague owns the case from now on; a new case is taken in their name. Whether
    they are staff of the department is the case service's to check (the config knows)."""
    target = (req.assignee or "").strip()
    if not target:
        raise MissingInput(field="assignee")
    if target == case.assignee:
        raise InvalidInput(field="assignee", limit=None)
    to = S.TAKEN if case.state is S.NEW else case.state
    event = _event(case, actor, now, Action.ASSIGN, to, previous=case.assignee, assignee=target)
    return replace(case, state=to, assignee=target), [event]


_HANDLERS = {
    Action.TAKE: _take,
    Action.RELEASE: _release,
    Action.DRAFT: _draft,
    Action.USE_TEMPLATE: _draft,
    Action.APPROVE: _review,
    Action.REQUEST_CHANGES: _review,
    Action.REJECT: _review,
    Action.PUBLISH: _publish,
    Action.MARK_PUBLISHED: _mark_published,
    Action.ESCALATE: _escalate,
    Action.REROUTE: _reroute,
    Action.IGNORE: _ignore,
    Action.CLOSE: _close,
    Action.REOPEN: _reopen,
    Action.FOLLOW_UP_DONE: _follow_up_done,
    Action.FOLLOW_UP_LATER: _follow_up_later,
    Action.WAIT_FOR_AUTHOR: _wait_for_author,
    Action.AUTHOR_REPLIED: _author_replied,
    Action.FOLLOW_UP: _draft,
    Action.CORRECT: _draft,
    Action.SET_CODE: _set_code,
    Action.SET_PRIORITY: _set_priority,
    Action.ASSIGN: _assign,
}
assert set(_HANDLERS) == set(Action) == set(ALLOWED_FROM)


def available_actions(case: Case, actor: Actor | None = None) -> list[Action]:
    """Actions the state allows, optionally narrowed to what this actor may do.

    Transports show buttons from this list with actor=None: buttons depend on the state
    only, never on who looks; rights are checked again when a button is pressed.
    """
    actions = [a for a in Action if case.state in ALLOWED_FROM[a]]
    hidden: set[Action] = set()
    if case.follow_up_due_at is None:
        hidden |= {Action.FOLLOW_UP_DONE, Action.FOLLOW_UP_LATER}
        if case.state is not S.PUBLISHED:
            hidden.add(Action.FOLLOW_UP)
    if case.published_draft is None:
        hidden.add(Action.CORRECT)
    if case.state is S.PUBLISHED and case.hand_due <= 0:
        hidden.add(Action.MARK_PUBLISHED)
    hidden.add(Action.WAIT_FOR_AUTHOR if case.waiting_since else Action.AUTHOR_REPLIED)
    actions = [a for a in actions if a not in hidden]
    if actor is not None:
        actions = [a for a in actions if actor.may(a, case.department)]
    return actions


def invariant_violations(case: Case) -> list[str]:
    """Everything that must hold for any case. Empty list means the case is valid."""
    problems: list[str] = []
    state = case.state
    latest = case.latest_draft
    pending = [d for d in case.drafts if d.status is DraftStatus.PENDING]

    if state is S.NEW and case.assignee is not None:
        problems.append("new case has an assignee")
    if state in OWNED_STATES and case.assignee is None:
        problems.append(f"{state} case has no assignee")
    if len(pending) > (1 if state is S.AWAITING_APPROVAL else 0):
        problems.append("pending draft outside review")
    if state is S.AWAITING_APPROVAL and (
        latest is None or latest.status is not DraftStatus.PENDING
    ):
        problems.append("awaiting approval without a pending latest draft")
    if state is S.CHANGES_REQUESTED and (
        latest is None or latest.status is not DraftStatus.CHANGES_REQUESTED
    ):
        problems.append("changes requested but latest draft is not sent back")
    if state in (S.APPROVED, S.PUBLISHED) and case.approved_draft is None:
        problems.append(f"{state} without an approved draft")
    if state is S.APPROVED and (latest is None or latest.status is not DraftStatus.APPROVED):
        problems.append("approved case whose latest draft is not approved")
    if state is S.PUBLISHED and case.published_at is None:
        problems.append("published without published_at")
    if state is S.CLOSED and (case.outcome is None or case.ignore_reason is not None):
        problems.append("closed needs an outcome and no ignore reason")
    if state is S.IGNORED and (case.ignore_reason is None or case.outcome is not None):
        problems.append("ignored needs a reason and no outcome")
    if state in TERMINAL_STATES and case.closed_at is None:
        problems.append("terminal without closed_at")
    if state not in TERMINAL_STATES and (
        case.closed_at is not None or case.outcome is not None or case.ignore_reason is not None
    ):
        problems.append("open case carries closing data")
    if case.follow_up_due_at is not None and state in TERMINAL_STATES:
        problems.append("follow-up on a closed case")
    if case.waiting_since is not None and state in TERMINAL_STATES:
        problems.append("closed case waiting for the author")
    if [d.version for d in case.drafts] != list(range(1, len(case.drafts) + 1)):
        problems.append("draft versions not 1..n")
    for d in case.drafts:
        second_person = d.reviewer not in (None, d.author)
        if d.status is DraftStatus.APPROVED and not d.pre_approved and not second_person:
            problems.append(f"draft {d.version} approved without a second person")
        problems += _chain_violations(d)
    published = [d for d in case.drafts if d.published_at is not None]
    if any(d.status is not DraftStatus.APPROVED for d in published):
        problems.append("a published draft that is not approved")
    if published and case.published_at is None:
        problems.append("a published draft on a case without published_at")
    if case.drafts and case.drafts[0].kind is DraftKind.CORRECTION:
        problems.append("a correction of nothing")
    if case.escalation_level < 0:
        problems.append("negative escalation level")
    return problems


def _chain_violations(draft: Draft) -> list[str]:
    """An approved draft has every tier's approval (unless a template skipped the chain);
    approvals come one per tier in order, each by a different person, never the author."""
    problems: list[str] = []
    v = draft.version
    if not draft.tiers:
        problems.append(f"draft {v} has no approval tier")
    if [a.tier for a in draft.approvals] != list(range(len(draft.approvals))):
        problems.append(f"draft {v} approvals not one per tier in order")
    if len(draft.approvals) > len(draft.tiers):
        problems.append(f"draft {v} has more approvals than tiers")
    reviewers = [a.reviewer for a in draft.approvals]
    if len(set(reviewers)) != len(reviewers):
        problems.append(f"draft {v} approved at two tiers by one person")
    if draft.author in reviewers:
        problems.append(f"draft {v} approved by its author")
    approved = draft.status is DraftStatus.APPROVED and not draft.pre_approved
    if approved and len(draft.approvals) != len(draft.tiers):
        problems.append(f"draft {v} approved without every tier")
    if draft.pre_approved and draft.approvals:
        problems.append(f"draft {v} skipped the chain yet has approvals")
    return problems
