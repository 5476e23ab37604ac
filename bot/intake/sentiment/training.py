"""Training the sentiment model (model.py) from a labelled corpus: `otklik model train`.

The corpus is JSON lines with at least `text` and `label` (negative | not_negative);
playbooks/default/corpus/triage_train.jsonl is the one the project ships. Hyper-parameters
(the regularisation C and which lexicon signals join the n-grams) and the band are chosen by
stratified cross-validation on the training corpus alone; the final model is then fitted on
all of it. Deterministic: fixed seeds, a single-threaded solver.

scikit-learn is imported inside the functions: the running bot never imports it unless it
retrains. Staff corrections (retrain) weigh more than the corpus: someone looked at them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.intake import features
from bot.intake.corpus import DEFAULT_CORPUS, feature_matrix
from bot.intake.corpus import read_corpus as read_rows
from bot.intake.sentiment.analyser import SentimentClassifier
from bot.intake.sentiment.model import SIGNAL_KINDS, Band, SentimentModel, lexicon_signals

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = [
    "CORRECTION_WEIGHT",
    "DEFAULT_CORPUS",
    "Example",
    "Params",
    "TrainingReport",
    "choose_band",
    "cross_validate",
    "load_corpus",
    "retrain",
    "train",
]

# bot/ and playbooks/ sit side by side in a checkout and in a wheel alike.
SEED = 14
FOLDS = 5
CORRECTION_WEIGHT = 3.0  # a correction by staff counts as three corpus examples
# What cross-validation chooses among (see tune()).
C_GRID = (4.0, 16.0, 32.0, 64.0, 128.0, 256.0)
SIGNAL_GRID: tuple[tuple[str, ...], ...] = (
    (),
    ("verdict", "bucket"),
    ("verdict", "bucket", "kinds"),
    SIGNAL_KINDS,
)
# What the band must give, on out-of-fold probabilities (issue 14's targets).
MIN_RECALL = 0.85
MIN_PRECISION = 0.80
MIN_REACH = 0.95  # negatives that are negative or uncertain
MAX_TRIAGE_SHARE = 0.15  # non-negatives that are uncertain


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    negative: bool
    language: str | None = None
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Params:
    """Chosen by cross-validation (`otklik model train --tune`) on the shipped corpus."""

    c: float = 128.0
    signals: tuple[str, ...] = ("verdict", "bucket")


@dataclass(slots=True)
class TrainingReport:
    """What cross-validation found: the log loss and AUC of every candidate, the choice."""

    params: Params
    band: Band
    candidates: list[dict[str, Any]] = field(default_factory=list)
    at_band: dict[str, float] = field(default_factory=dict)


def load_corpus(path: Path) -> list[Example]:
    return [Example(row.text, row.negative, row.language) for row in read_rows(path)]


def _matrix(
    examples: Sequence[Example], lexicon: SentimentClassifier, signals: tuple[str, ...]
) -> csr_matrix:
    return feature_matrix(
        features.extract(e.text, lexicon_signals(lexicon.classify(e.text, e.language), signals))
        for e in examples
    )


def _fit(matrix: csr_matrix, labels: Sequence[bool], weights: Sequence[float], c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(
        C=c, class_weight="balanced", solver="liblinear", max_iter=1000, random_state=SEED
    )
    model.fit(matrix, labels, sample_weight=list(weights))
    return model


def _out_of_fold(
    matrix: csr_matrix, examples: Sequence[Example], c: float, folds: int = FOLDS
) -> list[float]:
    from sklearn.model_selection import StratifiedKFold

    labels = [e.negative for e in examples]
    weights = [e.weight for e in examples]
    p = [0.0] * len(examples)
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED)
    for train_rows, test_rows in split.split(list(range(len(examples))), labels):
        fitted = _fit(
            matrix[train_rows],
            [labels[i] for i in train_rows],
            [weights[i] for i in train_rows],
            c,
        )
        for row, value in zip(
            test_rows, fitted.predict_proba(matrix[test_rows])[:, 1], strict=True
        ):
            p[int(row)] = float(value)
    return p


def band_figures(p: Sequence[float], labels: Sequence[bool], band: Band) -> dict[str, float]:
    """Precision and recall of the negative outcome, reach (negative or uncertain among
    negatives), triage share (uncertain among non-negatives)."""
    negatives = sum(labels) or 1
    others = (len(labels) - sum(labels)) or 1
    flagged = [x >= band.negative_from for x in p]
    caught = sum(f and y for f, y in zip(flagged, labels, strict=True))
    reached = sum(x >= band.uncertain_from and y for x, y in zip(p, labels, strict=True))
    uncertain = sum(
        band.uncertain_from <= x < band.negative_from and not y
        for x, y in zip(p, labels, strict=True)
    )
    return {
        "precision": caught / (sum(flagged) or 1),
        "recall": caught / negatives,
        "reach": reached / negatives,
        "triage_share": uncertain / others,
    }


def choose_band(p: Sequence[float], labels: Sequence[bool]) -> Band:
    """negative_from: the best F1 among thresholds with recall >= 0.85 and precision >= 0.80
    (the best F1 overall when none has both). uncertain_from: the highest threshold below it
    that still brings 95 % of negatives to a person, unless that puts more than 15 % of the
    rest on the triage list; then as low as the 15 % allow."""
    grid = [round(0.05 + 0.01 * i, 2) for i in range(91)]  # 0.05 .. 0.95
    scored = []
    for t in grid:
        f = band_figures(p, labels, Band(t, t))
        f1 = 2 * f["precision"] * f["recall"] / ((f["precision"] + f["recall"]) or 1)
        meets = f["recall"] >= MIN_RECALL and f["precision"] >= MIN_PRECISION
        scored.append((meets, f1, t))
    _, _, negative_from = max(scored)
    uncertain_from = negative_from
    for t in reversed([t for t in grid if t <= negative_from]):
        f = band_figures(p, labels, Band(negative_from, t))
        if f["triage_share"] > MAX_TRIAGE_SHARE:
            break
        uncertain_from = t
        if f["reach"] >= MIN_REACH:
            break
    return Band(negative_from, uncertain_from)


def _log_loss(p: Sequence[float], labels: Sequence[bool]) -> float:
    import math

    eps = 1e-6
    return -sum(
        math.log(max(eps, x if y else 1.0 - x)) for x, y in zip(p, labels, strict=True)
    ) / len(p)


def _auc(p: Sequence[float], labels: Sequence[bool]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, p))


def cross_validate(
    examples: Sequence[Example],
    lexicon: SentimentClassifier,
    c_grid: Iterable[float] = C_GRID,
    signal_grid: Iterable[tuple[str, ...]] = SIGNAL_GRID,
) -> TrainingReport:
    """Choose C and the lexicon signals by out-of-fold log loss, then the band from the
    chosen candidate's out-of-fold probabilities."""
    labels = [e.negative for e in examples]
    best: tuple[float, Params, list[float]] | None = None
    candidates: list[dict[str, Any]] = []
    for signals in signal_grid:
        matrix = _matrix(examples, lexicon, signals)
        for c in c_grid:
            p = _out_of_fold(matrix, examples, c)
            loss = _log_loss(p, labels)
            candidates.append(
                {
                    "c": c,
                    "signals": list(signals),
                    "log_loss": round(loss, 4),
                    "auc": round(_auc(p, labels), 4),
                }
            )
            if best is None or loss < best[0]:
                best = (loss, Params(c, signals), p)
    assert best is not None, "an empty grid"
    _, params, p = best
    band = choose_band(p, labels)
    report = TrainingReport(params, band, candidates)
    report.at_band = {k: round(v, 4) for k, v in band_figures(p, labels, band).items()}
    return report


def train(
    examples: Sequence[Example],
    lexicon: SentimentClassifier,
    params: Params | None = None,
    band: Band | None = None,
    note: dict[str, Any] | None = None,
) -> SentimentModel:
    """A model fitted on all the examples. Without `band`, the band is chosen from
    out-of-fold probabilities with these params."""
    params = params or Params()
    matrix = _matrix(examples, lexicon, params.signals)
    labels = [e.negative for e in examples]
    if band is None:
        band = choose_band(_out_of_fold(matrix, examples, params.c), labels)
    fitted = _fit(matrix, labels, [e.weight for e in examples], params.c)
    metadata: dict[str, object] = {
        "version": 1,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus_size": len(examples),
        "negatives": sum(labels),
        "c": params.c,
        **(note or {}),
    }
    return SentimentModel(
        fitted.coef_[0].tolist(), float(fitted.intercept_[0]), band, params.signals, metadata
    )


def retrain(
    corpus: Sequence[Example],
    corrections: Sequence[Example],
    lexicon: SentimentClassifier,
    params: Params | None = None,
    band: Band | None = None,
) -> SentimentModel:
    """The corpus plus staff corrections ("Не негатив", "Это негатив"), which weigh more.
    A correction of a corpus text replaces that example."""
    corrected = {e.text for e in corrections}
    examples = [e for e in corpus if e.text not in corrected]
    examples += [Example(e.text, e.negative, e.language, CORRECTION_WEIGHT) for e in corrections]
    return train(examples, lexicon, params, band, {"corrections": len(corrections)})
