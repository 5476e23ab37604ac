"""Triage on the evaluation set: which mentions become cases, which wait for a person, and
whether the cases reach the right department, through the real intake path.

The shipped config.example.yaml and default playbook build the App; each evaluation mention
(with no sentiment, as the organisation's own comments arrive) goes through
MentionIntake.prepare (the sentiment model and its band) and .decide (routing, urgent words).
Negative outcome = a case. Per language and overall: negative precision and recall, the
uncertain share (all mentions), reach_person (gold negatives that become a case or wait as
uncertain), triage_share_non_negative (gold non-negatives that wait as uncertain),
routing_acc (gold negatives with a case, routed to the gold department), classifications per
second on one core, model load time. Then the staff-feedback simulation, as staff work: the
training corpus is split (seeded, stratified by label) into a base part (70 %) and "live
traffic" (30 %); a base model trained on the base part judges the live traffic with the
playbook's band; staff correct what it got wrong (a gold negative left uncertain or not
negative: "Это негатив" / /negative; a gold non-negative made a case: "Не негатив"), up to
100 of those mistakes (a seeded draw when there are more); then
learning.retrain_and_judge, the function `otklik model retrain` and the nightly job use (same
correction weight and band policy, a quarter of the corrections held out, the new model used
only when it beats the base model there). Precision, recall and reach_person on the
evaluation set with the base model and with the model production would then use. For
comparison, the older variant: 100 random corpus examples held out and added back as
corrections, through the same gate. Nothing here is chosen by looking at the figures.

This is the only code that reads bench/data/triage/eval.jsonl: nothing is tuned on it.

    .venv/bin/python bench/triage.py [--data bench/data/triage/eval.jsonl] [--rounds 5]

The last line is one JSON object: {"precision", "recall", "reach_person", "routing_acc",
"per_s", ...}.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

from bench.common import example_config, free_port  # noqa: E402
from bot.clock import FrozenClock  # noqa: E402
from bot.intake.intake import MentionIntake  # noqa: E402
from bot.intake.lemmas import Lemmatiser  # noqa: E402
from bot.intake.sentiment.analyser import SentimentClassifier  # noqa: E402
from bot.intake.sentiment.learning import REFIT_BAND, retrain_and_judge  # noqa: E402
from bot.intake.sentiment.model import (  # noqa: E402
    Band,
    ModelClassifier,
    SentimentModel,
    model_file,
)
from bot.intake.sentiment.simulation import split_pool, staff_mistakes  # noqa: E402
from bot.intake.sentiment.training import (  # noqa: E402
    CORRECTION_WEIGHT,
    DEFAULT_CORPUS,
    Example,
    Params,
    load_corpus,
    train,
)
from bot.model import Identity, Mention, Sentiment  # noqa: E402
from bot.settings.playbook import load_playbook  # noqa: E402
from handlers.app import App  # noqa: E402

DEFAULT_DATA = ROOT / "bench" / "data" / "triage" / "eval.jsonl"
FEEDBACK_SIZE = 100
FEEDBACK_SEED = 14
LIVE_SHARE = 0.3  # of the training corpus, judged by the base model as live traffic
# Monitoring sources name the channel; the evaluation set names the kind of item.
_SOURCES = {"telegram_comment": "telegram", "vk_comment": "vk"}


@dataclass(frozen=True, slots=True)
class Item:
    mention: Mention
    language: str
    negative: bool
    department: str


@dataclass(frozen=True, slots=True)
class Outcome:
    case: bool
    uncertain: bool
    department: str | None


def read_items(path: Path) -> list[Item]:
    received = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        source = _SOURCES.get(row["source"], row["source"])
        mention = Mention(
            source=source,
            external_id=row["id"],
            text=row["text"],
            author=Identity(source, f"{row['author']}-{row['id']}", row["author"]),
            received_at=received,
            language=row["language"],
        )
        items.append(Item(mention, row["language"], row["label"] == "negative", row["department"]))
    return items


def run_intake(intake: MentionIntake, items: Sequence[Item]) -> list[Outcome]:
    outcomes = []
    for item in items:
        mention = intake.prepare(item.mention)
        _, opening = intake.decide(mention)
        outcomes.append(
            Outcome(
                opening is not None,
                mention.sentiment is Sentiment.UNCERTAIN,
                opening.department if opening is not None else None,
            )
        )
    return outcomes


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def figures(items: Sequence[Item], outcomes: Sequence[Outcome]) -> dict[str, Any]:
    pairs = list(zip(items, outcomes, strict=True))
    negatives = [o for i, o in pairs if i.negative]
    others = [o for i, o in pairs if not i.negative]
    cases = sum(o.case for o in outcomes)
    caught = sum(o.case for o in negatives)
    routed = [(i, o) for i, o in pairs if i.negative and o.case]
    return {
        "n": len(items),
        "precision": _share(caught, cases),
        "recall": _share(caught, len(negatives)),
        "uncertain_share": _share(sum(o.uncertain for o in outcomes), len(outcomes)),
        "reach_person": _share(sum(o.case or o.uncertain for o in negatives), len(negatives)),
        "triage_share_non_negative": _share(sum(o.uncertain for o in others), len(others)),
        "routing_acc": _share(sum(o.department == i.department for i, o in routed), len(routed)),
    }


def by_language(items: Sequence[Item], outcomes: Sequence[Outcome]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for language in sorted({i.language for i in items}):
        chosen = [(i, o) for i, o in zip(items, outcomes, strict=True) if i.language == language]
        found[language] = figures([i for i, _ in chosen], [o for _, o in chosen])
    return found


def speed(intake: MentionIntake, items: Sequence[Item], rounds: int) -> float:
    """Classifications per second of one core (prepare: lexicon, features, model), the best
    round. CPU time of this process: other work on a shared machine does not count."""
    best = 0.0
    for _ in range(rounds):
        started = time.process_time()
        for item in items:
            intake.prepare(item.mention)
        best = max(best, len(items) / (time.process_time() - started))
    return round(best)


def with_model(
    app: App, classifier: SentimentClassifier, model: SentimentModel, band: Band | None = None
) -> MentionIntake:
    """MentionIntake as App builds it, with another model and the playbook's band (or the
    band a retrained organisation model brings)."""
    triage = app.playbook.routing.triage
    return MentionIntake(
        app.cases,
        app.playbook,
        app.clock,
        app._plan_deadlines,
        classifier=classifier,
        lemmatiser=Lemmatiser(),
        model=ModelClassifier(
            model, classifier, band or Band(triage.negative_from, triage.uncertain_from)
        ),
    )


def _before_after(
    app: App,
    items: Sequence[Item],
    classifier: SentimentClassifier,
    before: SentimentModel,
    after: SentimentModel | None,
) -> dict[str, Any]:
    """`after`: the model production would use after retraining (None: the one before)."""
    keys = ("precision", "recall", "reach_person", "triage_share_non_negative")
    result = {}
    for name, model, band in (
        ("before", before, None),
        ("after", after or before, after.band if after is not None and REFIT_BAND else None),
    ):
        found = figures(items, run_intake(with_model(app, classifier, model, band), items))
        result[name] = {k: found[k] for k in keys}
    return result


def _production_retrain(
    base_part: Sequence[Example],
    corrections: Sequence[Example],
    classifier: SentimentClassifier,
    base: SentimentModel,
    params: Params,
    band: Band,
) -> tuple[str, SentimentModel | None]:
    """As `otklik model retrain` and the nightly job: a quarter of the corrections held out,
    the new model used only when it beats the one in use there (learning.retrain_and_judge)."""
    taught = [Example(e.text, e.negative, e.language) for e in corrections]
    decision, new = retrain_and_judge(
        base_part, taught, classifier, base, "base", params, band, refit_band=REFIT_BAND
    )
    return decision.summary(), new


def feedback(app: App, items: Sequence[Item], shipped: SentimentModel) -> dict[str, Any]:
    intake = app.intake
    assert intake.model is not None, "the shipped playbook has a model"
    classifier = intake.model.lexicon
    band = intake.model.band  # the playbook's
    pool = load_corpus(DEFAULT_CORPUS)
    params = Params(float(shipped.metadata.get("c", Params().c)), shipped.signals)

    base_part, live = split_pool(pool, LIVE_SHARE, FEEDBACK_SEED)
    base = train(base_part, classifier, params, band=band)
    judge = with_model(app, classifier, base).model
    assert judge is not None
    verdicts = [judge.judge(e.text, e.language) for e in live]
    mistakes = len(staff_mistakes(live, verdicts, len(live), FEEDBACK_SEED))
    corrections = staff_mistakes(live, verdicts, FEEDBACK_SIZE, FEEDBACK_SEED)
    decided, after = _production_retrain(base_part, corrections, classifier, base, params, band)
    result = _before_after(app, items, classifier, base, after)
    result["corrections"] = len(corrections)
    result["decision"] = decided
    result["method"] = (
        f"base model on {len(base_part)} of {len(pool)} training examples (stratified, seed "
        f"{FEEDBACK_SEED}); it judged the other {len(live)} as live traffic and got {mistakes} "
        f"wrong; {len(corrections)} of those mistakes corrected with their gold label"
        + (f" (all of them: fewer than {FEEDBACK_SIZE})" if mistakes < FEEDBACK_SIZE else "")
        + f"; retrained as production does (weight {CORRECTION_WEIGHT:g}, band "
        + ("fitted again" if REFIT_BAND else "kept")
        + f", adoption gate): {decided}"
    )

    # The older variant, for comparison: random corpus examples held out, then added back.
    drawn = set(random.Random(FEEDBACK_SEED).sample(range(len(pool)), FEEDBACK_SIZE))
    held_in = [e for n, e in enumerate(pool) if n not in drawn]
    random_base = train(held_in, classifier, params, band=band)
    random_decided, random_after = _production_retrain(
        held_in,
        [e for n, e in enumerate(pool) if n in drawn],
        classifier,
        random_base,
        params,
        band,
    )
    result["random_draw"] = {
        **_before_after(app, items, classifier, random_base, random_after),
        "corrections": FEEDBACK_SIZE,
        "decision": random_decided,
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        config = example_config(Path(scratch), free_port(), "bench-token")
        playbook = load_playbook(config.playbooks.path)
        app = App(config, playbook, FrozenClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC)))
        path = model_file(playbook)
        assert path is not None and app.intake.model is not None, "no sentiment model shipped"
        started = time.perf_counter()
        shipped = SentimentModel.load(path)
        load_s = round(time.perf_counter() - started, 3)

        items = read_items(args.data)
        outcomes = run_intake(app.intake, items)
        overall = figures(items, outcomes)
        languages = by_language(items, outcomes)
        per_s = speed(app.intake, items, args.rounds)
        simulated = feedback(app, items, shipped)

    print(
        f"model {path.relative_to(ROOT)}: {shipped.metadata.get('corpus_size')} examples, "
        f"band {playbook.routing.triage.negative_from}/{playbook.routing.triage.uncertain_from}, "
        f"load {load_s:.3f} s, {per_s} classifications/s"
    )
    for name, found in (("all", overall), *languages.items()):
        print(
            f"{name:>3}  n={found['n']:<4} precision {found['precision']:.3f}  "
            f"recall {found['recall']:.3f}  uncertain {found['uncertain_share']:.3f}  "
            f"reach_person {found['reach_person']:.3f}  "
            f"triage_non_neg {found['triage_share_non_negative']:.3f}  "
            f"routing {found['routing_acc']:.3f}"
        )
    for name, found in (
        (f"feedback, staff fix mistakes ({simulated['corrections']} corrections)", simulated),
        (f"feedback, random draw ({FEEDBACK_SIZE} corrections)", simulated["random_draw"]),
    ):
        before, after = found["before"], found["after"]
        print(
            f"{name}: precision {before['precision']:.3f} -> {after['precision']:.3f}, "
            f"recall {before['recall']:.3f} -> {after['recall']:.3f}, "
            f"reach_person {before['reach_person']:.3f} -> {after['reach_person']:.3f}"
        )
    print(f"  {simulated['method']}")
    print(f"  random draw: {simulated['random_draw']['decision']}")
    summary: dict[str, Any] = {
        "precision": overall["precision"],
        "recall": overall["recall"],
        "reach_person": overall["reach_person"],
        "routing_acc": overall["routing_acc"],
        "per_s": per_s,
        "uncertain_share": overall["uncertain_share"],
        "triage_share_non_negative": overall["triage_share_non_negative"],
        "load_s": load_s,
        "n": overall["n"],
        "by_language": languages,
        "feedback": simulated,
    }
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
