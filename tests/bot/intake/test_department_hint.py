"""The department a citizen chose on the web form weighs like a routing rule (with_hint)."""

from __future__ import annotations

from bot.intake.intake import with_hint
from bot.intake.routing import RouteBasis, RouteDecision
from bot.model import Priority


def decision(basis: RouteBasis, department: str = "coordination") -> RouteDecision:
    return RouteDecision(
        rule_id="heating" if basis is RouteBasis.RULE else None,
        department=department,
        priority=Priority.NORMAL,
        sla_policy="coordination" if basis is RouteBasis.DEFAULT else None,
        codes=(),
        basis=basis,
    )


def test_the_choice_beats_the_default_and_takes_the_departments_own_sla() -> None:
    chosen = with_hint(decision(RouteBasis.DEFAULT), "social")
    assert (chosen.department, chosen.basis, chosen.sla_policy) == (
        "social",
        RouteBasis.CITIZEN,
        None,
    )


def test_a_rule_of_the_playbook_claims_the_mention_before_the_choice() -> None:
    ruled = decision(RouteBasis.RULE, "housing")
    assert with_hint(ruled, "social") == ruled
