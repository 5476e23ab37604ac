"""escalation.yaml: who is chased, when and how often, after an SLA breach.

bot/sla/engine.py walks the chains; playbook.py loads the file.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from bot.model import Action
from bot.settings.fields import Duration, Id, PositiveDuration, StrictModel, TimeRange

__all__ = ["EscalationChain", "EscalationConfig", "EscalationStep", "NotifyTarget"]


class NotifyTarget(StrEnum):
    DEPARTMENT_LEAD = "department_lead"
    DUTY = "duty"
    LEADERSHIP = "leadership"
    COORDINATION = "coordination"


def _one_or_many(value: object) -> object:
    return (value,) if isinstance(value, str) else value


class EscalationStep(StrictModel):
    level: int = Field(ge=1, le=20)
    notify: Annotated[tuple[NotifyTarget, ...], BeforeValidator(_one_or_many)] = Field(min_length=1)
    after: Duration = timedelta(0)  # wait after the breach (step 1) or the previous step
    repeat_every: PositiveDuration | None = None
    max_repeats: int = Field(default=0, ge=0, le=100)
    window: TimeRange | None = None  # notify only inside these hours (org time); else wait

    @model_validator(mode="after")
    def _repeats(self) -> EscalationStep:
        if (self.repeat_every is None) != (self.max_repeats == 0):
            raise ValueError("set repeat_every and max_repeats together (or neither)")
        return self


_DEFAULT_STOP_ON = (Action.TAKE, Action.DRAFT, Action.APPROVE, Action.PUBLISH)


class EscalationChain(StrictModel):
    steps: tuple[EscalationStep, ...] = Field(min_length=1)
    stop_on: tuple[Action, ...] = _DEFAULT_STOP_ON  # any of these actions ends the chase


class EscalationConfig(StrictModel):
    chains: dict[Id, EscalationChain] = Field(min_length=1)
