"""crisis.yaml: the thresholds that declare a crisis and the checklist that follows.

bot/crisis/thresholds.py counts against them; playbook.py loads the file.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from bot.settings.fields import Id, LocalizedText, PositiveDuration, StrictModel, Text

__all__ = [
    "ChecklistOwner",
    "CrisisConfig",
    "CrisisStep",
    "CrisisThreshold",
    "ThresholdScope",
]


class ThresholdScope(StrEnum):
    DEPARTMENT = "department"
    CODE = "code"
    ALL = "all"


class CrisisThreshold(StrictModel):
    """Negative mentions in a sliding `window` that make a crisis: an absolute `count`, or
    `ratio` times the average for such a window over the last `baseline_days`."""

    id: Id
    scope: ThresholdScope
    key: Text | None = None  # department id or code; none for scope "all"
    window: PositiveDuration
    count: int | None = Field(default=None, ge=1)
    ratio: float | None = Field(default=None, gt=0)
    baseline_days: int | None = Field(default=None, ge=1, le=90)
    min_count: int | None = Field(default=None, ge=1)  # no alarm on 2 mentions instead of 1

    @model_validator(mode="after")
    def _consistent(self) -> CrisisThreshold:
        if (self.count is None) == (self.ratio is None):
            raise ValueError("give exactly one of count or ratio")
        if self.ratio is not None and (self.baseline_days is None or self.min_count is None):
            raise ValueError("ratio needs baseline_days and min_count")
        if self.count is not None and (self.baseline_days or self.min_count):
            raise ValueError("baseline_days and min_count only go with ratio")
        if self.scope is ThresholdScope.ALL and self.key is not None:
            raise ValueError("scope 'all' takes no key")
        if self.scope is not ThresholdScope.ALL and self.key is None:
            raise ValueError(f"scope {self.scope.value!r} needs a key")
        return self


class ChecklistOwner(StrEnum):
    DUTY = "duty"
    LEADERSHIP = "leadership"
    DEPARTMENT_LEAD = "department_lead"
    PRESS = "press"


class CrisisStep(StrictModel):
    step: LocalizedText
    owner: ChecklistOwner
    within: PositiveDuration | None = None  # due this long after the crisis is declared


class CrisisConfig(StrictModel):
    thresholds: tuple[CrisisThreshold, ...] = Field(min_length=1)
    cool_down: PositiveDuration  # below the limit this long without a break closes a crisis
    checklist: tuple[CrisisStep, ...] = Field(min_length=1)
    holding_statement_template: Id
    pause_scheduled_posts: bool = True
