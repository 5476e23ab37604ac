"""Quality and speed of the lexicon sentiment classifier on the labelled evaluation set.

The question a press office asks is "does this mention need an answer?", so the figures are
precision, recall and F1 of the negative class, overall and per language, plus a confusion
matrix over all three labels, throughput, and a few misclassified examples to read. The last
line is one JSON object starting with {"precision", "recall"}.

    .venv/bin/python bench/sentiment.py [--data bench/data/sentiment_eval.jsonl]
                                        [--lexicon playbooks/default/lexicon] [--errors 12]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from bot.intake.sentiment.analyser import SentimentClassifier, SentimentResult  # noqa: E402
from bot.intake.sentiment.lexicon import DEFAULT_LEXICON_DIR, load_lexicon  # noqa: E402

DEFAULT_DATA = ROOT / "bench" / "data" / "sentiment_eval.jsonl"
LABELS = ("negative", "neutral", "positive")
_THROUGHPUT_ROUNDS = 20  # enough repetitions to time warm caches, not the first parse


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    language: str
    label: str


@dataclass(frozen=True, slots=True)
class Scores:
    precision: float
    recall: float
    f1: float
    support: int


def read_examples(path: Path) -> list[Example]:
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("label") not in LABELS:
            raise SystemExit(f"{path}:{number}: label must be one of {LABELS}")
        examples.append(Example(row["text"], row["language"], row["label"]))
    return examples


def negative_scores(pairs: list[tuple[str, str]]) -> Scores:
    """(gold, predicted) pairs -> precision, recall and F1 of the negative class."""
    tp = sum(g == p == "negative" for g, p in pairs)
    fp = sum(g != "negative" and p == "negative" for g, p in pairs)
    fn = sum(g == "negative" and p != "negative" for g, p in pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, tp + fn)


def evaluate(
    classifier: SentimentClassifier, examples: list[Example]
) -> list[tuple[Example, SentimentResult]]:
    return [(ex, classifier.classify(ex.text, ex.language)) for ex in examples]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--lexicon", type=Path, default=DEFAULT_LEXICON_DIR)
    parser.add_argument("--errors", type=int, default=12, help="examples of errors to print")
    args = parser.parse_args()

    started = time.perf_counter()
    classifier = SentimentClassifier(load_lexicon(args.lexicon))
    load_s = time.perf_counter() - started
    examples = read_examples(args.data)
    results = evaluate(classifier, examples)
    pairs = [(ex.label, res.sentiment.value) for ex, res in results]

    overall = negative_scores(pairs)
    accuracy = sum(g == p for g, p in pairs) / len(pairs)
    print(f"{len(examples)} mentions from {args.data}, lexicon loaded in {load_s:.2f} s")
    print()
    print("negative class    precision  recall     F1  support")
    rows = [("all", overall)]
    by_language: dict[str, Scores] = {}
    for language in sorted({ex.language for ex in examples}):
        lang_pairs = [
            (g, p) for (g, p), ex in zip(pairs, examples, strict=True) if ex.language == language
        ]
        by_language[language] = negative_scores(lang_pairs)
        rows.append((language, by_language[language]))
    for name, s in rows:
        print(f"  {name:<14} {s.precision:>10.3f} {s.recall:>7.3f} {s.f1:>6.3f} {s.support:>8}")
    print(f"  accuracy over three labels: {accuracy:.3f}")

    print()
    print("confusion (rows: gold, columns: predicted)")
    confusion = Counter(pairs)
    print("  " + " " * 10 + "".join(f"{p:>10}" for p in LABELS))
    for gold in LABELS:
        print(f"  {gold:<10}" + "".join(f"{confusion[(gold, p)]:>10}" for p in LABELS))

    texts = [(ex.text, ex.language) for ex in examples]
    started = time.perf_counter()
    for _ in range(_THROUGHPUT_ROUNDS):
        for text, language in texts:
            classifier.classify(text, language)
    elapsed = time.perf_counter() - started
    throughput = len(texts) * _THROUGHPUT_ROUNDS / elapsed
    print()
    print(f"throughput: {throughput:,.0f} mentions/s (warm caches, one thread)")

    errors = [(ex, res) for ex, res in results if ex.label != res.sentiment.value]
    if errors and args.errors:
        print()
        print(f"{len(errors)} errors; the first {min(args.errors, len(errors))}:")
        # Errors on the negative class first: they are the ones that cost an answer.
        errors.sort(key=lambda e: (e[0].label != "negative", e[1].sentiment.value != "negative"))
        for ex, res in errors[: args.errors]:
            print(
                f"  [{ex.language}] gold {ex.label}, got {res.sentiment.value} "
                f"({res.score:+.2f}): {ex.text[:110]}"
            )
            if res.reasons:
                print(f"       {'; '.join(res.reasons[:5])}")

    summary = {
        "precision": round(overall.precision, 4),
        "recall": round(overall.recall, 4),
        "f1": round(overall.f1, 4),
        "accuracy": round(accuracy, 4),
        "mentions": len(examples),
        "throughput_per_s": round(throughput),
        "by_language": {
            lang: {
                "precision": round(s.precision, 4),
                "recall": round(s.recall, 4),
                "f1": round(s.f1, 4),
                "support": s.support,
            }
            for lang, s in by_language.items()
        },
    }
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
