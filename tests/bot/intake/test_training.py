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


def test_the_band_keeps_the_widest_margin_from_every_target() -> None:
    # 100 negatives spread over 0.05..0.99 and 100 others mostly low: a made-up held-out pool.
    negatives = [0.05 + 0.0094 * n for n in range(100)]
    others = [0.004 * n for n in range(90)] + [0.4 + 0.05 * n for n in range(10)]
    p = negatives + others
    labels = [True] * 100 + [False] * 100

    band = choose_band(p, labels)

    best = band_margin(band_figures(p, labels, band))
    for negative_from in (0.2, 0.3, 0.4, 0.5):
        for uncertain_from in (0.05, 0.1, 0.15, 0.2):
            other = band_figures(p, labels, Band(negative_from, uncertain_from))
            assert band_margin(other) <= best
    # The triage budget is a target like the others: a share over it is a margin short.
    assert band_margin({"precision": 1, "recall": 1, "reach": 1, "triage_share": 0.2}) < 0
    assert MAX_TRIAGE_SHARE == 0.15


def test_the_band_is_fitted_to_the_hardest_held_out_author() -> None:
    # Author 1's complaints score lower than author 2's: a band fitted to the pool would
    # leave author 1 short; the chosen one keeps the worse of the two farthest from a target.
    easy = [0.5 + 0.005 * n for n in range(100)] + [0.002 * n for n in range(100)]
    hard = [0.15 + 0.0075 * n for n in range(100)] + [0.003 * n for n in range(100)]
    labels = ([True] * 100 + [False] * 100) * 2
    authors = [2] * 200 + [1] * 200
    p = easy + hard

    band = choose_band(p, labels, authors)

    def worst(b: Band) -> float:
        return min(
            band_margin(band_figures(p[i : i + 200], labels[i : i + 200], b)) for i in (0, 200)
        )

    for negative_from in (0.2, 0.3, 0.4, 0.5, 0.6):
        for uncertain_from in (0.05, 0.1, 0.15, 0.2):
            assert worst(Band(negative_from, uncertain_from)) <= worst(band)
    pooled = choose_band(p, labels)
    assert worst(pooled) <= worst(band)


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
