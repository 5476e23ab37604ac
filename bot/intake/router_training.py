"""Training the department router (bot/intake/router.py) from a labelled corpus.

The corpus is the project's triage corpus (playbooks/default/corpus/triage_train.jsonl): one
JSON object a line with at least `text` and `department`; every mention counts, negative or
not, since the words that say which department a subject belongs to do not depend on tone.
Staff reroutes (a case moved to another department) are added with more weight by `retrain`.

scikit-learn and numpy are needed here only: they are imported inside the functions, so the
running bot, which only loads the model, never imports them. Cross-validation holds out one
author batch of the corpus at a time, as the sentiment model's does. Everything is
deterministic: fixed folds, a fixed seed and a solver without randomness.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.intake.corpus import feature_matrix
from bot.intake.corpus import read_corpus as read_rows
from bot.intake.features import DIMENSION, extract
from bot.intake.router import FORMAT, DepartmentRouter, RouterChoice
from bot.intake.routing import Stemmer, route
from bot.model import Action
from bot.settings.playbook import Playbook

if TYPE_CHECKING:
    from bot.ports import UnitOfWorkFactory

__all__ = [
    "C_GRID",
    "OVERRULE_GRID",
    "REROUTE_WEIGHT",
    "THRESHOLD_GRID",
    "CrossValidation",
    "Example",
    "RuleRouter",
    "cross_validate",
    "fit",
    "read_corpus",
    "reroutes",
    "retrain",
    "rules_of",
    "save",
    "train",
]

SEED = 0
FOLDS = 5
C_GRID = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)  # inverse L2 strength, chosen by CV
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(0, 20))  # min_confidence candidates
# overrule_confidence candidates: a rule gives way only to a router this sure of another
# department. From 0.30: with six departments, a router below that is hardly sure of anything.
OVERRULE_GRID = (*(round(0.3 + 0.05 * i, 2) for i in range(0, 14)), 0.97, 0.99)
REROUTE_WEIGHT = 3.0  # a reroute is a person's decision about this organisation's own mentions

# (text, source, language) -> the department a routing rule gives, None when no rule claims it
RuleRouter = Callable[[str, str, str | None], str | None]


def rules_of(playbook: Playbook, stem: Stemmer | None = None) -> RuleRouter:
    """The playbook's rules as cross-validation needs them: the department a rule gives, None
    where the router would be asked (no rule, or a catch-all in `learned.overrides`)."""
    overrides = set(playbook.routing.learned.overrides)

    def claimed(text: str, source: str, language: str | None) -> str | None:
        decision = route(playbook, text, source, (), (), language, stem=stem)
        return None if decision.rule_id in (None, *overrides) else decision.department

    return claimed


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    department: str
    weight: float = 1.0
    negative: bool = True  # the corpus label; routing accuracy is measured on negatives
    source: str = ""
    language: str | None = None
    batch: int | None = None  # the corpus author's batch; None: in every training part


def read_corpus(path: Path) -> list[Example]:
    """The corpus's rows as routing examples; every row must name its department."""
    examples = []
    for number, row in enumerate(read_rows(path), 1):
        if not row.department:
            raise ValueError(f"{path}: row {number}: a line needs text and department")
        examples.append(
            Example(
                text=row.text,
                department=row.department,
                negative=row.negative,
                source=row.source,
                language=row.language,
                batch=row.batch,
            )
        )
    return examples


def fit(
    examples: Sequence[Example], c: float = 10.0, metadata: dict[str, Any] | None = None
) -> DepartmentRouter:
    """A multinomial logistic regression over the examples' features."""
    from array import array

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    departments = sorted({e.department for e in examples})
    if len(departments) < 2:
        raise ValueError("a router needs examples of at least two departments")
    matrix = feature_matrix(extract(e.text) for e in examples)
    # Only the features the corpus has: the solver's work shrinks fourfold, the rest stay 0.
    used = np.unique(matrix.indices)
    model = LogisticRegression(C=c, max_iter=2000, random_state=SEED)
    # One thread: deterministic, and on a shared machine far faster than contended BLAS.
    with threadpool_limits(limits=1):
        model.fit(
            matrix[:, used],
            [e.department for e in examples],
            sample_weight=[e.weight for e in examples],
        )
    assert list(model.classes_) == departments
    coef = np.asarray(model.coef_, dtype=np.float32)
    intercept = [float(b) for b in model.intercept_]
    if len(departments) == 2:  # scikit-learn keeps one row for two classes: make it two
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = [-intercept[0] / 2, intercept[0] / 2]
    weights = np.zeros((len(departments), DIMENSION), dtype=np.float32)
    weights[:, used] = coef
    biases = intercept
    columns = tuple(array("f", row.tobytes()) for row in weights)
    meta = {"format": FORMAT, "c": c, "examples": len(examples), **(metadata or {})}
    return DepartmentRouter(tuple(departments), columns, tuple(biases), meta)


def save(router: DepartmentRouter, path: Path) -> None:
    """Write the model as an .npz: weights DIMENSION × departments (float32, mostly zeros,
    so compressed small), biases, department ids and the metadata as JSON bytes."""
    import numpy as np

    weights = np.stack(
        [np.frombuffer(column.tobytes(), dtype=np.float32) for column in router.weights], axis=1
    )
    metadata = json.dumps(dict(router.metadata), ensure_ascii=False, sort_keys=True).encode()
    arrays = {
        "weights": weights,
        "biases": np.asarray(router.biases, dtype=np.float32),
        "departments": np.asarray(router.departments, dtype="<U32"),
        "metadata": np.frombuffer(metadata, dtype=np.uint8),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # As numpy.savez_compressed writes it, but with fixed dates in the zip: the same model
    # gives the same bytes, so a retrain on an unchanged corpus changes nothing in git.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, values in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, values, allow_pickle=False)
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, buffer.getvalue())


@dataclass(frozen=True, slots=True)
class CrossValidation:
    """Out-of-fold figures on the training corpus: how each C routes, and with the best C,
    how rules + router route negative mentions at each min_confidence."""

    accuracy_by_c: dict[float, float]  # the router alone, every mention
    best_c: float
    routing_by_threshold: dict[float, float]  # rules first, then router >= t, on negatives
    best_threshold: float
    rules_only: float  # rules, else the default department, on negatives
    rule_claimed: float  # share of negatives some rule claims
    rule_accuracy: float  # how often the rule's department is right, on those
    router_only: float  # the router alone (no rules, no threshold), on negatives
    # With the best min_confidence, routing of negatives when a router at least this sure of
    # another department overrules a rule; None: never (rules always win).
    routing_by_overrule: dict[float | None, float]
    best_overrule: float | None
    # The same per language (the corpus's `language`), each threshold and None.
    routing_by_language: dict[str, dict[float | None, float]]


def _folds(examples: Sequence[Example]) -> list[tuple[list[int], list[int]]]:
    """Each author batch held out in turn when the corpus names two or more (an
    organisation's mentions are by an author the router never read), else stratified
    5-fold by department."""
    batches = sorted({e.batch or 0 for e in examples})
    if len(batches) >= 2 and 0 not in batches:  # every row is held out once
        return [
            (
                [n for n, e in enumerate(examples) if e.batch != b],
                [n for n, e in enumerate(examples) if e.batch == b],
            )
            for b in batches
        ]
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED)
    labels = [e.department for e in examples]
    return [(list(a), list(b)) for a, b in splitter.split(labels, labels)]


def _out_of_fold(examples: Sequence[Example], c: float) -> list[RouterChoice]:
    choices: list[RouterChoice | None] = [None] * len(examples)
    for train_rows, test_rows in _folds(examples):
        router = fit([examples[i] for i in train_rows], c)
        for i in test_rows:
            choices[i] = router.choose(extract(examples[i].text), explain=False)
    return [c for c in choices if c is not None]


def cross_validate(
    examples: Sequence[Example],
    rules: RuleRouter,
    default_department: str,
    c_grid: Sequence[float] = C_GRID,
    thresholds: Sequence[float] = THRESHOLD_GRID,
    overrules: Sequence[float] = OVERRULE_GRID,
) -> CrossValidation:
    """Choose C by the router's own out-of-fold accuracy, then min_confidence by the
    accuracy of the whole decision (rules first) on negative mentions, then with that
    min_confidence the overrule_confidence (or never). Ties go to the smaller C and the
    higher threshold (never above all): the simpler model, the more cautious router."""
    accuracy: dict[float, float] = {}
    oof: dict[float, list[RouterChoice]] = {}
    for c in c_grid:
        oof[c] = _out_of_fold(examples, c)
        hits = sum(ch.department == e.department for ch, e in zip(oof[c], examples, strict=True))
        accuracy[c] = hits / len(examples)
    best_c = max(c_grid, key=lambda c: (round(accuracy[c], 6), -c))
    negatives = [i for i, e in enumerate(examples) if e.negative]
    claimed = {
        i: rules(examples[i].text, examples[i].source, examples[i].language) for i in negatives
    }

    def routed(
        threshold: float | None, overrule: float | None = None, rows: Sequence[int] = negatives
    ) -> float:
        hits = 0
        for i in rows:
            department = claimed[i]
            choice = oof[best_c][i]
            if department is None:
                use = threshold is not None and choice.confidence >= threshold
                department = choice.department if use else default_department
            elif overrule is not None and choice.confidence >= overrule:
                department = choice.department
            hits += department == examples[i].department
        return hits / len(rows) if rows else 0.0

    by_threshold = {t: routed(t) for t in thresholds}
    by_rule = {
        i: department == examples[i].department
        for i, department in claimed.items()
        if department is not None
    }
    best_threshold = max(thresholds, key=lambda t: (round(by_threshold[t], 6), t))
    candidates: list[float | None] = [*overrules, None]
    by_overrule = {o: routed(best_threshold, o) for o in candidates}
    best_overrule = max(
        candidates, key=lambda o: (round(by_overrule[o], 6), 2.0 if o is None else o)
    )
    languages = sorted({examples[i].language or "?" for i in negatives})
    by_language = {
        language: {
            o: routed(
                best_threshold,
                o,
                [i for i in negatives if (examples[i].language or "?") == language],
            )
            for o in candidates
        }
        for language in languages
    }
    return CrossValidation(
        accuracy_by_c=accuracy,
        best_c=best_c,
        routing_by_threshold=by_threshold,
        best_threshold=best_threshold,
        rules_only=routed(None),
        rule_claimed=len(by_rule) / max(len(negatives), 1),
        rule_accuracy=sum(by_rule.values()) / max(len(by_rule), 1),
        router_only=sum(oof[best_c][i].department == examples[i].department for i in negatives)
        / max(len(negatives), 1),
        routing_by_overrule=by_overrule,
        best_overrule=best_overrule,
        routing_by_language=by_language,
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def train(
    corpus: Path, rules: RuleRouter, default_department: str
) -> tuple[DepartmentRouter, CrossValidation]:
    """Cross-validate on the corpus, then fit on all of it with the chosen C."""
    examples = read_corpus(corpus)
    cv = cross_validate(examples, rules, default_department)
    metadata = {
        "corpus": corpus.name,
        "corpus_sha256": _digest(corpus),
        "cv_accuracy": round(cv.accuracy_by_c[cv.best_c], 4),
        "cv_routing_negatives": round(cv.routing_by_threshold[cv.best_threshold], 4),
        "cv_min_confidence": cv.best_threshold,
        "cv_overrule_confidence": cv.best_overrule,
        "cv_routing_negatives_overrule": round(cv.routing_by_overrule[cv.best_overrule], 4),
    }
    return fit(examples, cv.best_c, metadata), cv


def retrain(
    corpus: Sequence[Example],
    reroutes: Iterable[tuple[str, str]],
    c: float = 100.0,
    weight: float = REROUTE_WEIGHT,
) -> DepartmentRouter:
    """The router again, with staff reroutes — (a mention's text, the department staff moved
    its case to) — added to the corpus with more weight. `c`: the shipped model's (its
    metadata "c"), chosen by cross-validation; re-validating per organisation costs minutes."""
    taught = [Example(text, department, weight=weight) for text, department in reroutes]
    return fit([*corpus, *taught], c, {"reroutes": len(taught)})


async def reroutes(
    uow_factory: UnitOfWorkFactory, since: datetime | None = None
) -> list[tuple[str, str]]:
    """What staff taught by rerouting: (the case's first mention's text, the department the
    case went to), one per case, its last reroute winning. For `retrain`."""
    async with uow_factory() as uow:
        events = await uow.events.of_kind(Action.REROUTE.value, since)
        targets = {e.case_id: str(e.payload["target"]) for e in events if e.case_id is not None}
        firsts = await uow.mentions.first_of_cases(sorted(targets))
    return [(firsts[case].text, target) for case, target in targets.items() if case in firsts]
