"""SLA timers as data: what the engine plans and the store keeps until it fires."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class TimerKind(StrEnum):
    REMINDER = "reminder"  # a share of the allowed time has passed, or little is left
    BREACH = "breach"  # the current deadline is missed; starts the escalation chain
    ESCALATION = "escalation"  # one notice of one escalation step (or one of its repeats)
    FOLLOW_UP = "follow_up"  # ask to come back to the public thread and show the result


@dataclass(frozen=True, slots=True)
class Timer:
    case_id: int
    kind: TimerKind
    due_at: datetime  # aware UTC
    key: str  # unique for ever: a fired timer's key is never planned again
    # deadline kind and due moment ("deadline", "due"), reminder point, escalation level…
    payload: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    fired_at: datetime | None = None
