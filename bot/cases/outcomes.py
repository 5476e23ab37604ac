"""What a press comes to: the case as it now stands with its events, or a refusal.

The state machine (bot/cases/lifecycle.py) refuses what a case and a person allow; the case
service adds what only the store and the config know: no such case, nowhere to publish, a
press from a chat the case is not worked in. A refusal for rights, a stale card or draft, a
press from the wrong chat, or a press on a case that does not exist leaves a DENIED event
(`audited`): somebody tried something they may not do, or acted on what they no longer saw.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from bot.cases.lifecycle import DomainError, NoRight, NotYourTier, StaleCard
from bot.model import Action, Case, Event, EventKind
from bot.ports import UnitOfWork
from bot.staff.rights import Actor

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ActResult:
    case: Case | None
    events: tuple[Event, ...] = ()
    error: DomainError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class UnknownCase(DomainError):
    code = "unknown_case"


class WrongChat(DomainError):
    """A press or a command about a case from a chat that is neither the case's department
    chat nor the coordination chat: nothing of the case may show there."""

    code = "wrong_chat"


class NotPublishable(DomainError):
    """The bot cannot post at this mention's source: a person posts and marks it published."""

    code = "not_publishable"


def audited(error: DomainError) -> bool:
    """Whether a refusal goes into the audit trail (the rest are ordinary mistakes of input
    or state that the person is simply told about)."""
    # A review at a tier the person holds no role for is a missing right, like NoRight.
    return isinstance(error, NoRight | NotYourTier | StaleCard | WrongChat | UnknownCase)


async def audit_refusal(
    uow: UnitOfWork,
    case: Case | None,
    actor: Actor,
    action: Action | str,
    now: datetime,
    reason: str,
) -> None:
    """A DENIED event on the case (or on none), inside the caller's transaction. `action`: an
    Action, or what else was pressed ("menu": a card's main buttons asked for again)."""
    state = case.state if case else None
    # What was pressed may be anything a forged button carried: bounded like the name.
    action_name = (action.value if isinstance(action, Action) else action)[:64]
    payload = {
        "action": action_name,
        "reason": reason,
        "staff": actor.is_staff,
        "name": actor.name[:128],
    }
    await uow.events.append(
        [
            Event(
                case.id if case else None,
                now,
                actor.id,
                EventKind.DENIED,
                state,
                state,
                payload,
            )
        ]
    )
    log.warning(
        "refused %s by %s on case %s: %s",
        action_name,
        actor.id,
        case.id if case else "?",
        reason,
    )
