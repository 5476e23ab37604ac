"""How the sentiment model is validated: an author's batch is held out whole, staff
corrections never are, and the band is the one farthest from every target."""

from __future__ import annotations

from bot.intake.sentiment.analyser import SentimentClassifier
from bot.intake.sentiment.model import Band
from bot.intake.sentiment.training import (
    MAX_TRIAGE_SHARE,
    Example,
    band_figures,
    band_margin,
    choose_band,
    cross_validate,
    held_out_splits,
    split_method,
)
from tests.bot.intake.test_sentiment_model import COMPLAINTS, OTHERS, lexicon

__all__ = ["lexicon"]  # the module-scoped fixture, shared


def test_each_author_batch_is_held_out_whole_and_corrections_stay_in_training() -> None:
    examples = [Example(f"жалоба {n}", n % 2 == 0, batch=1 + n % 3) for n in range(12)]
    examples += [Example("исправлено сотрудником", False)]  # a correction: no batch
    splits = held_out_splits(examples)
    assert len(splits) == 3
    for training, held in splits:
        assert len({examples[n].batch for n in held}) == 1
        assert set(training).isdisjoint(held)
        assert 12 in training
    assert sorted(n for _, held in splits for n in held) == list(range(12))
    assert split_method(examples).startswith("cross-author")


def test_without_batches_it_is_stratified_five_fold() -> None:
    examples = [Example(f"текст {n}", n % 2 == 0) for n in range(20)]
    splits = held_out_splits(examples)
    assert len(splits) == 5
    assert sorted(n for _, held in splits for n in held) == list(range(20))
    assert split_method(examples).startswith("stratified")


def test_the_band_keeps_the_widest_margin_within_the_triage_cap() -> None:
    # 100 negatives spread over 0.05..0.99 and 100 others mostly low: a made-up held-out pool.
    negatives = [0.05 + 0.0094 * n for n in range(100)]
    others = [0.004 * n for n in range(90)] + [0.4 + 0.05 * n for n in range(10)]
    p = negatives + others
    labels = [True] * 100 + [False] * 100

    band = choose_band(p, labels)

    found = band_figures(p, labels, band)
    assert found["triage_share"] <= MAX_TRIAGE_SHARE
    best = band_margin(found)
    for negative_from in (0.2, 0.3, 0.4, 0.5):
        for uncertain_from in (0.05, 0.1, 0.15, 0.2):
            other = band_figures(p, labels, Band(negative_from, uncertain_from))
            if other["triage_share"] <= MAX_TRIAGE_SHARE:
                assert band_margin(other) <= best


def test_cross_validation_reports_each_held_out_author_and_the_same_author_figures(
    lexicon: SentimentClassifier,
) -> None:
    examples = [
        Example(f"{t} ({batch})", t in COMPLAINTS, batch=batch)
        for batch in (1, 2)
        for t in [*COMPLAINTS, *OTHERS]
    ]
    report = cross_validate(examples, lexicon, c_grid=(4.0, 16.0), signal_grid=((),))
    assert report.method.startswith("cross-author")
    assert [c["c"] for c in report.candidates] == [4.0, 16.0]
    assert set(report.by_batch) == {1, 2}
    assert (
        set(report.at_band)
        == set(report.same_author)
        == {
            "precision",
            "recall",
            "reach",
            "triage_share",
        }
    )
    assert report.band.uncertain_from <= report.band.negative_from
