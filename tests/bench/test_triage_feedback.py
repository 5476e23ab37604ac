"""The staff-feedback simulation in bench/triage.py: which live mentions staff correct."""

from __future__ import annotations

from bench.triage import split_pool, staff_mistakes
from bot.intake.sentiment.analyser import SentimentResult
from bot.intake.sentiment.model import Outcome, Verdict
from bot.intake.sentiment.training import Example
from bot.model import Sentiment


def _verdict(outcome: Outcome) -> Verdict:
    return Verdict(outcome, 0.5, (), SentimentResult(Sentiment.NEUTRAL, 0.0, "ru"))


def test_staff_correct_missed_negatives_and_false_cases_only() -> None:
    live = [
        Example("missed, left uncertain", True),
        Example("missed altogether", True),
        Example("caught", True),
        Example("praise made a case", False),
        Example("praise waits on the list", False),
        Example("praise let through", False),
    ]
    verdicts = [
        _verdict(o)
        for o in (
            Outcome.UNCERTAIN,
            Outcome.NOT_NEGATIVE,
            Outcome.NEGATIVE,
            Outcome.NEGATIVE,
            Outcome.UNCERTAIN,
            Outcome.NOT_NEGATIVE,
        )
    ]

    corrections = staff_mistakes(live, verdicts, limit=100, seed=1)

    assert [e.text for e in corrections] == [
        "missed, left uncertain",
        "missed altogether",
        "praise made a case",
    ]
    assert [e.negative for e in corrections] == [True, True, False]


def test_staff_mistakes_capped_by_a_seeded_draw() -> None:
    live = [Example(f"missed {n}", True) for n in range(10)]
    verdicts = [_verdict(Outcome.NOT_NEGATIVE)] * 10

    first = staff_mistakes(live, verdicts, limit=4, seed=7)

    assert len(first) == 4
    assert first == staff_mistakes(live, verdicts, limit=4, seed=7)
    assert [live.index(e) for e in first] == sorted(live.index(e) for e in first)


def test_split_pool_is_stratified_and_disjoint() -> None:
    pool = [Example(f"n{n}", True) for n in range(10)] + [
        Example(f"p{n}", False) for n in range(30)
    ]

    base, live = split_pool(pool, 0.3, seed=14)

    assert sum(e.negative for e in live) == 3 and sum(not e.negative for e in live) == 9
    assert len(base) == 28 and not {e.text for e in base} & {e.text for e in live}
