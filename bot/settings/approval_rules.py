"""approval.yaml: who approves a draft, tier after tier, by department, priority and code.

The first rule whose `match` fits the case gives its chain; `default` holds the rest. The
case service asks `ApprovalConfig.chain_for` when a draft is submitted and the chain is fixed
on the draft (bot/cases/lifecycle.py checks each tier). The file is optional: without it
every draft has one tier, the department's approver, and pre-approved templates skip it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from bot.model import SINGLE_TIER, ApproverRole, Priority
from bot.settings.fields import Id, StrictModel

__all__ = ["APPROVAL_FILE", "ApprovalConfig", "ApprovalRule", "Chain", "ChainMatch"]

APPROVAL_FILE = "approval.yaml"


def _one_or_many(value: object) -> object:
    return (value,) if isinstance(value, str) else value


class ChainMatch(StrictModel):
    """Every criterion given must hold; within one, any listed value will do."""

    departments: Annotated[tuple[Id, ...], BeforeValidator(_one_or_many)] = ()
    priorities: Annotated[tuple[Priority, ...], BeforeValidator(_one_or_many)] = ()
    codes: Annotated[tuple[str, ...], BeforeValidator(_one_or_many)] = ()  # any of the case's

    @property
    def is_empty(self) -> bool:
        return not (self.departments or self.priorities or self.codes)

    def fits(self, department: str, priority: Priority, codes: Iterable[str]) -> bool:
        if self.departments and department not in self.departments:
            return False
        if self.priorities and priority not in self.priorities:
            return False
        if self.codes:
            wanted = {c.casefold() for c in self.codes}
            return any(c.casefold() in wanted for c in codes)
        return True


class Chain(StrictModel):
    """Ordered tiers, each a role that approves at that step, and whether a template the
    playbook marks pre_approved is published without them."""

    tiers: Annotated[tuple[ApproverRole, ...], BeforeValidator(_one_or_many)] = Field(
        min_length=1, max_length=5
    )
    template_skips: bool = True

    @model_validator(mode="after")
    def _distinct(self) -> Chain:
        if len(set(self.tiers)) != len(self.tiers):
            raise ValueError("a role appears twice in tiers: each tier needs another person")
        return self


class ApprovalRule(Chain):
    id: Id
    match: ChainMatch


class ApprovalConfig(StrictModel):
    rules: tuple[ApprovalRule, ...] = ()
    default: Chain = Chain(tiers=SINGLE_TIER)

    def chain_for(self, department: str, priority: Priority, codes: Iterable[str] = ()) -> Chain:
        """The first rule that fits the case, else the default."""
        codes = tuple(codes)
        for rule in self.rules:
            if rule.match.fits(department, priority, codes):
                return rule
        return self.default
