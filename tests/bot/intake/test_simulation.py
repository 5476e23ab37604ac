"""The in-corpus feedback simulation: each author batch held out in turn stands for an
organisation; staff correct the base model's mistakes on its live traffic; production's own
retraining decides; figures come from the same author's later traffic."""

from __future__ import annotations

import pytest

from bot.intake.sentiment.analyser import SentimentClassifier
from bot.intake.sentiment.learning import MIN_CORRECTIONS
from bot.intake.sentiment.simulation import Policy, choose_policy, simulate_feedback
from bot.intake.sentiment.training import Example, Params
from tests.bot.intake.test_sentiment_model import COMPLAINTS, OTHERS, lexicon

__all__ = ["lexicon"]  # the module-scoped fixture, shared


def batches() -> list[Example]:
    return [
        Example(f"{text} ({batch}.{n})", text in COMPLAINTS, batch=batch)
        for batch in (1, 2)
        for n in range(3)
        for text in [*COMPLAINTS, *OTHERS]
    ]


def test_every_author_batch_is_held_out_and_judged_on_its_later_traffic(
    lexicon: SentimentClassifier,
) -> None:
    policies = [Policy(1.0, False), Policy(3.0, False)]
    results = simulate_feedback(batches(), lexicon, Params(c=4.0), policies)

    assert [r.policy for r in results] == policies
    for result in results:
        assert set(result.by_batch) == {1, 2}
        # each batch's later traffic: 70 % of its 48 lines
        assert result.before.negatives + result.before.others == pytest.approx(2 * 48 * 0.7, abs=2)
        for found in result.by_batch.values():
            corrections = found["corrections"]
            assert isinstance(corrections, int)
            # production's own decision, its minimum included: a few mistakes teach nothing
            if corrections < MIN_CORRECTIONS:
                assert found["decision"] == "too_few"
                assert found["before"] == found["after"]
    assert choose_policy(results) in results


def test_a_corpus_of_one_author_cannot_be_simulated(lexicon: SentimentClassifier) -> None:
    one = [Example(e.text, e.negative, batch=1) for e in batches()]
    with pytest.raises(ValueError, match="two or more author batches"):
        simulate_feedback(one, lexicon, Params(c=4.0), [Policy(1.0, False)])
