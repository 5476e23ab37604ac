"""The training corpus: the shipped file is sound and names its authors' batches; the check
finds what the corpus README forbids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.intake.corpus import DEFAULT_CORPUS, FIELDS, corpus_problems, read_corpus


def line(n: int, text: str, batch: int = 1, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"tr-ru-{n:04d}",
        "language": "ru",
        "text": text,
        "label": "negative",
        "department": "housing",
        "source": "vk_comment",
        "author": "citizen",
        "traits": ["bare_fact"],
        "batch": batch,
    }
    row.update(changes)
    return row


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_the_shipped_corpus_is_sound_and_every_line_names_its_batch() -> None:
    assert corpus_problems(DEFAULT_CORPUS) == []
    rows = read_corpus(DEFAULT_CORPUS)
    batches = [r.batch for r in rows]
    assert None not in batches
    assert len(set(batches)) >= 2  # two authors at least: cross-author validation holds
    assert batches == sorted(batches)  # appended in order, as the README's id ranges say


def test_the_check_names_each_problem(tmp_path: Path) -> None:
    missing = line(5, "Нет света в подъезде")
    del missing["batch"]
    corpus = write(
        tmp_path / "corpus.jsonl",
        [
            line(1, "Третий день нет воды", batch=2),
            line(1, "Лифт стоит неделю", batch=2),  # the id again
            line(3, "  третий день   НЕТ воды", batch=2),  # the text again
            line(4, "Мусор не вывозят", batch=1),  # an earlier batch after a later one
            missing,
            line(6, "Яма на дороге", batch=2, department="roads"),
            line(7, "Спасибо", traits=["grateful"], batch=2),
        ],
    )
    problems = corpus_problems(corpus)
    assert [p.split(":")[0] for p in problems] == [f"line {n}" for n in (2, 3, 4, 5, 6, 7)]
    assert "repeats line 1" in problems[0]
    assert "the text of line 1 again" in problems[1]
    assert "batch 1 after batch 2" in problems[2]
    assert str(list(FIELDS)) in problems[3]
    assert "department 'roads'" in problems[4]
    assert "traits ['grateful']" in problems[5]


def test_a_corpus_without_batches_still_reads(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"text": "Опять нет воды", "label": "negative"}) + "\n", encoding="utf-8"
    )
    assert [r.batch for r in read_corpus(corpus)] == [None]
