"""What both learned models train on: the labelled corpus and its features as a sparse matrix.

The sentiment model (bot/intake/sentiment/training.py) reads a row's label, the router
(bot/intake/router_training.py) its department; both read the same file the same way. A row's
`batch` names the author who wrote it (one author per batch): cross-validation holds out a
whole batch at a time, so the figures say how the models do on an author they never read.
Training only: scipy is imported when a matrix is built, never by the running bot.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.intake.features import DIMENSION, Features
from playbooks import PLAYBOOKS_DIR

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

DEFAULT_CORPUS = PLAYBOOKS_DIR / "default" / "corpus" / "triage_train.jsonl"
LABELS = ("negative", "not_negative")
# The shipped corpus's fields, in this order (its README defines them); `batch` came last.
FIELDS = ("id", "language", "text", "label", "department", "source", "author", "traits", "batch")
ALLOWED: dict[str, tuple[str, ...]] = {
    "language": ("ru", "en", "pl"),
    "label": LABELS,
    "department": ("housing", "transport", "health", "education", "social", "coordination"),
    "source": (
        "telegram_comment",
        "vk_comment",
        "monitoring",
        "email",
        "web_form",
        "direct_message",
    ),
    "author": ("citizen", "official", "media"),
}
TRAITS = (
    "sarcasm",
    "bare_fact",
    "question",
    "suggestion",
    "official",
    "slang",
    "typos",
    "no_punctuation",
    "threat_to_sue",
    "praise",
    "emoji",
    "mixed",
    "long",
    "short",
    "intensified_positive",
    "thanks",
)


@dataclass(frozen=True, slots=True)
class CorpusRow:
    text: str
    negative: bool
    department: str = ""  # "" where the row names none (the router refuses such rows)
    language: str | None = None
    source: str = ""
    batch: int | None = None  # the author's batch; None: unknown (no cross-author figures)


def read_corpus(path: Path) -> list[CorpusRow]:
    """Every row of a JSON Lines corpus; a row without text or with another label stops it."""
    rows: list[CorpusRow] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            label = row.get("label")
            if label not in LABELS:
                raise ValueError(f"{path}:{number}: label {label!r} is not negative|not_negative")
            if not row.get("text"):
                raise ValueError(f"{path}:{number}: a line needs text")
            batch = row.get("batch")
            if batch is not None and (not isinstance(batch, int) or batch < 1):
                raise ValueError(f"{path}:{number}: batch {batch!r} is not a positive integer")
            rows.append(
                CorpusRow(
                    text=row["text"],
                    negative=label == "negative",
                    department=row.get("department") or "",
                    language=row.get("language"),
                    source=row.get("source") or "",
                    batch=batch,
                )
            )
    return rows


def corpus_problems(path: Path) -> list[str]:
    """What is wrong with a corpus file by the shipped corpus's rules: exactly FIELDS in
    order, allowed values only, unique ids and texts (whitespace and case ignored), batches
    in file order. An empty list: it is sound."""
    problems: list[str] = []
    ids: dict[str, int] = {}
    texts: dict[str, int] = {}
    last_batch = 0
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            where = f"line {number}"
            try:
                row: Any = json.loads(line)
            except json.JSONDecodeError as error:
                problems.append(f"{where}: not JSON ({error})")
                continue
            if not isinstance(row, dict) or tuple(row) != FIELDS:
                keys = list(row) if isinstance(row, dict) else row
                problems.append(f"{where}: fields {keys}, expected {list(FIELDS)}")
                continue
            for name, allowed in ALLOWED.items():
                if row[name] not in allowed:
                    problems.append(f"{where}: {name} {row[name]!r} not in {allowed}")
            traits = row["traits"]
            if not isinstance(traits, list) or not set(traits) <= set(TRAITS):
                problems.append(f"{where}: traits {traits!r}")
            text = row["text"]
            if not isinstance(text, str) or not text.strip():
                problems.append(f"{where}: no text")
                continue
            batch = row["batch"]
            if not isinstance(batch, int) or batch < last_batch or batch < 1:
                problems.append(f"{where}: batch {batch!r} after batch {last_batch}")
            else:
                last_batch = batch
            if not str(row["id"]).startswith(f"tr-{row['language']}-"):
                problems.append(f"{where}: id {row['id']!r} does not name its language")
            if row["id"] in ids:
                problems.append(f"{where}: id {row['id']} repeats line {ids[row['id']]}")
            ids.setdefault(row["id"], number)
            key = " ".join(text.lower().split())
            if key in texts:
                problems.append(f"{where}: the text of line {texts[key]} again")
            texts.setdefault(key, number)
    return problems


def feature_matrix(found: Iterable[Features]) -> csr_matrix:
    """One sparse row per text's features, DIMENSION columns wide."""
    from scipy.sparse import csr_matrix

    data: list[float] = []
    columns: list[int] = []
    pointers = [0]
    for features in found:
        data.extend(features.values)
        columns.extend(features.indexes)
        pointers.append(len(data))
    return csr_matrix((data, columns, pointers), shape=(len(pointers) - 1, DIMENSION))
