"""Who may do what. Checked on the server for every press, whatever a transport showed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.model import Action, ApproverRole, DeptRole, GlobalRole

_ANY_DEPT_ROLE = frozenset(DeptRole)
_REVIEWERS = frozenset({DeptRole.APPROVER, DeptRole.LEAD})
_LEADS = frozenset({DeptRole.LEAD})
# Reviewers at the global tiers of an approval chain: which tier each may review at is the
# lifecycle's check (may_review_at), since it depends on where the draft stands.
_TIER_REVIEWERS = frozenset({GlobalRole.PRESS_SECRETARY, GlobalRole.LEADERSHIP})
_TIER_ROLE = {
    ApproverRole.PRESS_SECRETARY: GlobalRole.PRESS_SECRETARY,
    ApproverRole.LEADERSHIP: GlobalRole.LEADERSHIP,
}


@dataclass(frozen=True, slots=True)
class Right:
    dept_roles: frozenset[DeptRole]  # roles in the case's own department
    global_roles: frozenset[GlobalRole] = frozenset()


RIGHTS: Mapping[Action, Right] = {
    Action.TAKE: Right(_ANY_DEPT_ROLE),
    Action.RELEASE: Right(_ANY_DEPT_ROLE),
    Action.DRAFT: Right(_ANY_DEPT_ROLE),
    Action.USE_TEMPLATE: Right(_ANY_DEPT_ROLE),
    Action.APPROVE: Right(_REVIEWERS, _TIER_REVIEWERS),
    Action.REQUEST_CHANGES: Right(_REVIEWERS, _TIER_REVIEWERS),
    Action.REJECT: Right(_REVIEWERS, _TIER_REVIEWERS),
    Action.PUBLISH: Right(_ANY_DEPT_ROLE),
    Action.MARK_PUBLISHED: Right(_ANY_DEPT_ROLE),
    Action.ESCALATE: Right(_ANY_DEPT_ROLE, frozenset({GlobalRole.DUTY, GlobalRole.LEADERSHIP})),
    Action.REROUTE: Right(_ANY_DEPT_ROLE, frozenset({GlobalRole.DUTY})),
    Action.IGNORE: Right(_ANY_DEPT_ROLE, frozenset({GlobalRole.DUTY})),
    Action.CLOSE: Right(_ANY_DEPT_ROLE, frozenset({GlobalRole.DUTY})),
    Action.REOPEN: Right(_REVIEWERS, frozenset({GlobalRole.DUTY})),
    Action.FOLLOW_UP_DONE: Right(_ANY_DEPT_ROLE),
    Action.FOLLOW_UP_LATER: Right(_ANY_DEPT_ROLE),
    Action.WAIT_FOR_AUTHOR: Right(_ANY_DEPT_ROLE),
    Action.AUTHOR_REPLIED: Right(_ANY_DEPT_ROLE),
    Action.SET_CODE: Right(_ANY_DEPT_ROLE),  # while unowned; then the owner or the lead
    Action.SET_PRIORITY: Right(_LEADS, frozenset({GlobalRole.DUTY})),
    Action.ASSIGN: Right(_LEADS),
    Action.FOLLOW_UP: Right(_ANY_DEPT_ROLE),
    Action.CORRECT: Right(_ANY_DEPT_ROLE),
}


@dataclass(frozen=True, slots=True)
class Actor:
    """A person acting on a case, with the roles the config gives them."""

    id: str  # staff id from the config; for strangers, "tg:<id>" or the Matrix user id
    name: str
    dept_roles: Mapping[str, frozenset[DeptRole]] = field(default_factory=dict)
    global_roles: frozenset[GlobalRole] = frozenset()
    is_staff: bool = True

    @classmethod
    def stranger(cls, external_id: str, name: str = "") -> Actor:
        return cls(id=external_id, name=name or external_id, is_staff=False)

    def roles_in(self, department: str) -> frozenset[DeptRole]:
        return self.dept_roles.get(department, frozenset())

    def has(self, role: DeptRole, department: str) -> bool:
        return role in self.roles_in(department)

    def may(self, action: Action, department: str) -> bool:
        right = RIGHTS[action]
        return bool(right.dept_roles & self.roles_in(department)) or bool(
            right.global_roles & self.global_roles
        )

    @property
    def departments(self) -> frozenset[str]:
        return frozenset(d for d, roles in self.dept_roles.items() if roles)


def may_review_at(actor: Actor, tier: ApproverRole, department: str) -> bool:
    """Whether a person reviews at this tier of a draft in the department: the department's
    approver or lead at its tier, the global role's holders at theirs, nobody elsewhere."""
    if tier is ApproverRole.DEPARTMENT:
        return bool(_REVIEWERS & actor.roles_in(department))
    return _TIER_ROLE[tier] in actor.global_roles


# Who may tell Otklik it was wrong about a mention's sentiment outside a card (/negative).
_SENTIMENT_CORRECTORS = frozenset({GlobalRole.DUTY, GlobalRole.ADMIN})


def may_correct_sentiment(actor: Actor) -> bool:
    """Department staff, the duty officer and administrators."""
    return actor.is_staff and bool(actor.departments or actor.global_roles & _SENTIMENT_CORRECTORS)


# Who may read across departments (/status of all, /case of any case): the duty officer,
# leadership and administrators. Everyone else reads their own departments.
CROSS_DEPARTMENT_ROLES = frozenset({GlobalRole.DUTY, GlobalRole.LEADERSHIP, GlobalRole.ADMIN})


def sees_every_department(actor: Actor, in_coordination_chat: str | None = None) -> bool:
    """The duty officer, leadership and administrators, anywhere; and in the coordination
    chat (`in_coordination_chat`: the coordination department's id), the coordination
    centre's own staff, through whom every case no rule claims, or "not ours", passes."""
    if not actor.is_staff:
        return False
    if actor.global_roles & CROSS_DEPARTMENT_ROLES:
        return True
    return in_coordination_chat is not None and bool(actor.roles_in(in_coordination_chat))


def may_see(actor: Actor, department: str, in_coordination_chat: str | None = None) -> bool:
    """Whether a person may read a department's cases outside its own chat."""
    return actor.is_staff and (
        bool(actor.roles_in(department)) or sees_every_department(actor, in_coordination_chat)
    )


def may_look_at(actor: Actor, department: str) -> bool:
    """Whether a person may do anything at all on a case of the department: the right a
    card's buttons (its main buttons asked for again) need."""
    return any(actor.may(action, department) for action in RIGHTS)


def may_erase(actor: Actor) -> bool:
    """Erasing a person's data (/forget) is irreversible: administrators only."""
    return actor.is_staff and GlobalRole.ADMIN in actor.global_roles


_DRILL_RUNNERS = frozenset({GlobalRole.DUTY, GlobalRole.ADMIN})


def may_run_drill(actor: Actor) -> bool:
    """/drill start and stop: the duty officer and administrators."""
    return actor.is_staff and bool(_DRILL_RUNNERS & actor.global_roles)
