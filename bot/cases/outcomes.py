"""What a press comes to: the case as it now stands with its events, or a refusal.

The state machine (bot/cases/lifecycle.py) refuses what a case and a person allow; the case
service adds what only the store and the config know: no such case, nowhere to publish.
A refusal for rights, or a press on a case that does not exist, leaves a DENIED event:
somebody tried something they may not do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from bot.cases.lifecycle import DomainError
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


class NotPublishable(DomainError):
    """The bot cannot post at this mention's source: a person posts and marks it published."""

    code = "not_publishable"


async def audit_refusal(
    uow: UnitOfWork,
    case: Case | None,
    actor: Actor,
    action: Action,
    now: datetime,
    reason: str,
) -> None:
    """A DENIED event on the case (or on none), inside the caller's transaction."""
    state = case.state if case else None
    payload = {
        "action": action.value,
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
        action.value,
        actor.id,
        case.id if case else "?",
        reason,
    )
