"""What both learned models train on: the labelled corpus and its features as a sparse matrix.

The sentiment model (bot/intake/sentiment/training.py) reads a row's label, the router
(bot/intake/router_training.py) its department; both read the same file the same way.
Training only: scipy is imported when a matrix is built, never by the running bot.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.intake.features import DIMENSION, Features
from playbooks import PLAYBOOKS_DIR

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

DEFAULT_CORPUS = PLAYBOOKS_DIR / "default" / "corpus" / "triage_train.jsonl"
LABELS = ("negative", "not_negative")


@dataclass(frozen=True, slots=True)
class CorpusRow:
    text: str
    negative: bool
    department: str = ""  # "" where the row names none (the router refuses such rows)
    language: str | None = None
    source: str = ""


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
            rows.append(
                CorpusRow(
                    text=row["text"],
                    negative=label == "negative",
                    department=row.get("department") or "",
                    language=row.get("language"),
                    source=row.get("source") or "",
                )
            )
    return rows


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
