"""The organisation's own sentiment model, learned from what staff corrected.

"Не негатив" on a card and "Это негатив" (/negative) store the mention's sentiment with staff
provenance (bot/cases/corrections.py); the store lists them (MentionRepository.corrections).
`retrain_organisation` turns them into training examples, keeps a part aside that training
never sees, retrains the shipped corpus plus the rest (training.retrain), and compares the new
model with the one in use on that held-out part. The new model is written beside the shipped
one only when it does better there: a tie keeps the model in use.

It is CPU-heavy and synchronous: `otklik model retrain` calls it directly, the scheduled job
(handlers/jobs/model.py) in a child process, so a RetrainRequest carries only plain data.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from bot.intake.sentiment.analyser import SentimentClassifier
from bot.intake.sentiment.lexicon import load_lexicon
from bot.intake.sentiment.model import Band, Outcome, SentimentModel, load_organisation_model
from bot.intake.sentiment.training import (
    CORRECTION_WEIGHT,
    Example,
    Params,
    load_corpus,
    retrain,
)
from bot.model import Sentiment
from bot.ports import SentimentCorrection

__all__ = [
    "HELD_OUT_SHARE",
    "MIN_CORRECTIONS",
    "MIN_HELD_OUT",
    "REFIT_BAND",
    "SINCE_EVER",
    "RetrainDecision",
    "RetrainRequest",
    "Retraining",
    "corrections_as_examples",
    "held_out_score",
    "retrain_and_judge",
    "retrain_organisation",
    "split_held_out",
]

# Chosen by `otklik model simulate-feedback` (simulation.py) on the training corpus: fitting
# the band again at retraining lost recall on two batches and gained 0.001 on three (noise).
# (True would also need intake to use the organisation model's own band, not the playbook's.)
REFIT_BAND = False
MIN_CORRECTIONS = 20  # fewer distinct corrected texts teach nothing a held-out part can show
HELD_OUT_SHARE = 0.25
MIN_HELD_OUT = 5
# Which part a text falls in depends on the text alone: as corrections accumulate, a text
# held out once stays held out, so a previous organisation model was not trained on it.
_SPLIT_KEY = "otklik-held-out"
SINCE_EVER = datetime(1970, 1, 1, tzinfo=UTC)


class RetrainDecision(StrEnum):
    TOO_FEW = "too_few"  # not enough corrections: the model in use stays
    KEPT = "kept"  # the new model did not do better on the held-out corrections
    ADOPTED = "adopted"  # the new model did better: written to the organisation's file


@dataclass(frozen=True, slots=True)
class RetrainRequest:
    corrections: tuple[SentimentCorrection, ...]
    corpus: Path  # the shipped training corpus
    shipped_model: Path | None  # None: the lexicon alone decides without an organisation model
    organisation_model: Path  # read when present, written when the new model wins
    lexicon: Path  # the lexicon directory the running bot uses
    band: Band  # the playbook's: both models are judged by it, the new one keeps it


@dataclass(frozen=True, slots=True)
class Retraining:
    """What a retraining did, for the command line and the log."""

    decision: RetrainDecision
    corrections: int  # distinct corrected texts
    training: int = 0
    held_out: int = 0
    current: str = "shipped"  # the model in use: "shipped" or "organisation"
    current_score: float | None = None  # balanced accuracy on the held-out corrections
    new_score: float | None = None
    path: Path | None = None  # the organisation model file (written only when adopted)

    def summary(self) -> str:
        if self.decision is RetrainDecision.TOO_FEW:
            return (
                f"{self.corrections} staff correction(s), at least {MIN_CORRECTIONS} are needed: "
                f"the {self.current} model stays in use"
            )
        scores = (
            f"on {self.held_out} held-out correction(s) the new model scores "
            f"{self.new_score:.3f}, the {self.current} model {self.current_score:.3f}"
        )
        if self.decision is RetrainDecision.ADOPTED:
            return (
                f"trained on {self.training} correction(s); {scores}: the new model is "
                "used from now on" + ("" if self.path is None else f" ({self.path})")
            )
        return (
            f"trained on {self.training} correction(s); {scores}: "
            f"the {self.current} model stays in use"
        )


def corrections_as_examples(corrections: Sequence[SentimentCorrection]) -> list[Example]:
    """One example per distinct text (a repost corrected twice is one lesson); the latest
    correction of a text wins. Negative, or not negative whatever staff set instead."""
    latest: dict[str, Example] = {}
    for correction in sorted(corrections, key=lambda c: (c.at, c.mention_id)):
        text = correction.text.strip()
        if text:
            negative = correction.sentiment is Sentiment.NEGATIVE
            latest[text] = Example(text, negative, correction.language)
    return list(latest.values())


def _order(example: Example) -> str:
    return hashlib.sha256(f"{_SPLIT_KEY}:{example.text}".encode()).hexdigest()


def split_held_out(examples: Sequence[Example]) -> tuple[list[Example], list[Example]]:
    """(training, held out): about HELD_OUT_SHARE of each class, at least MIN_HELD_OUT in
    all, chosen by a fixed hash of the text (seeded, stable as corrections grow)."""
    ordered = sorted(examples, key=_order)
    held: list[Example] = []
    for negative in (True, False):
        theirs = [e for e in ordered if e.negative is negative]
        held += theirs[: math.ceil(len(theirs) * HELD_OUT_SHARE)]
    for example in ordered:
        if len(held) >= MIN_HELD_OUT:
            break
        if example not in held:
            held.append(example)
    chosen = {e.text for e in held}
    return [e for e in ordered if e.text not in chosen], sorted(held, key=_order)


def held_out_score(
    model: SentimentModel | None,
    lexicon: SentimentClassifier,
    band: Band,
    held_out: Sequence[Example],
) -> float:
    """Balanced accuracy of "negative" (a case) against what staff said: the mean of the
    share of negatives called negative and of the rest not called negative, over the classes
    present. Without a model, the lexicon's verdict."""
    right: dict[bool, list[bool]] = {True: [], False: []}
    for example in held_out:
        verdict = lexicon.classify(example.text, example.language)
        if model is None:
            negative = verdict.sentiment is Sentiment.NEGATIVE
        else:
            negative = model.judge(example.text, verdict, band).outcome is Outcome.NEGATIVE
        right[example.negative].append(negative is example.negative)
    shares = [sum(marks) / len(marks) for marks in right.values() if marks]
    return sum(shares) / len(shares) if shares else 0.0


def retrain_organisation(request: RetrainRequest) -> Retraining:
    """Retrain from the corrections; write the organisation model only when it wins."""
    organisation = load_organisation_model(request.organisation_model)
    shipped = None if request.shipped_model is None else SentimentModel.load(request.shipped_model)
    current, current_name = (
        (organisation, "organisation") if organisation is not None else (shipped, "shipped")
    )
    examples = corrections_as_examples(request.corrections)
    if len(examples) < MIN_CORRECTIONS:  # before the lexicon and corpus are read
        return Retraining(RetrainDecision.TOO_FEW, len(examples), current=current_name)
    lexicon = SentimentClassifier(load_lexicon(request.lexicon))
    # The shipped model's hyper-parameters were chosen by cross-validation on the corpus.
    params = Params() if shipped is None else Params(_c(shipped, Params().c), shipped.signals)
    result, new = retrain_and_judge(
        load_corpus(request.corpus),
        examples,
        lexicon,
        current,
        current_name,
        params,
        request.band,
        refit_band=REFIT_BAND,
    )
    if new is not None:
        _save_atomically(new, request.organisation_model)
        return replace(result, path=request.organisation_model)
    return result


def retrain_and_judge(
    corpus: Sequence[Example],
    examples: Sequence[Example],
    lexicon: SentimentClassifier,
    current: SentimentModel | None,
    current_name: str,
    params: Params,
    band: Band,
    weight: float = CORRECTION_WEIGHT,
    refit_band: bool = False,
) -> tuple[Retraining, SentimentModel | None]:
    """What retrain_organisation decides, without files. Too few corrections change
    nothing. Otherwise a part of them is held out, the corpus plus the rest retrained, and
    both models judged on the part held out, each by the band it would be used with: the
    current one by `band`, the new one by `band` too or, with `refit_band`, by the band
    fitted again on its own training data. The new model comes back only when it wins.
    bench/triage.py and simulation.py call this too: they simulate what production does."""
    if len(examples) < MIN_CORRECTIONS:
        return Retraining(RetrainDecision.TOO_FEW, len(examples), current=current_name), None
    training, held_out = split_held_out(examples)
    new = retrain(corpus, training, lexicon, params, None if refit_band else band, weight)
    current_score = held_out_score(current, lexicon, band, held_out)
    new_score = held_out_score(new, lexicon, new.band, held_out)
    wins = new_score > current_score
    result = Retraining(
        RetrainDecision.ADOPTED if wins else RetrainDecision.KEPT,
        len(examples),
        len(training),
        len(held_out),
        current_name,
        round(current_score, 4),
        round(new_score, 4),
    )
    if not wins:
        return result, None
    new.metadata.update(
        {
            "organisation": True,
            "corrections": len(training),
            "held_out": len(held_out),
            "held_out_score": {"new": result.new_score, current_name: result.current_score},
        }
    )
    return result, new


def _c(model: SentimentModel, default: float) -> float:
    value = model.metadata.get("c")
    return float(value) if isinstance(value, int | float) else default


def _save_atomically(model: SentimentModel, path: Path) -> None:
    """A reader (the bot starting) sees the old file or the new one, never half of one."""
    partial = path.with_name(path.name + ".partial")
    model.save(partial)
    os.replace(partial, path)
