"""`otklik model train-router`: cross-validates, writes a model the bot loads, says what to set."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bot.intake.router import DepartmentRouter
from handlers.cli import app
from tests.bot.intake.test_router import CORPUS, write_corpus


def test_train_router_writes_a_loadable_model_and_prints_the_threshold(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    out = tmp_path / "models" / "router.npz"

    result = CliRunner().invoke(
        app, ["model", "train-router", "--corpus", str(corpus), "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert "learned.min_confidence" in result.output
    router = DepartmentRouter.load(out)
    assert set(router.departments) == set(CORPUS)
    assert router.metadata["corpus"] == "corpus.jsonl"
    assert router.route_text(CORPUS["housing"][0]).department == "housing"


def test_train_router_without_a_corpus_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "none.jsonl"
    result = CliRunner().invoke(app, ["model", "train-router", "--corpus", str(missing)])
    assert result.exit_code == 2
    assert "No corpus" in result.output
