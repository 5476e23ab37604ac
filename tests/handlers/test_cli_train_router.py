"""`otklik model train-router`: cross-validates, writes a model the bot loads, says what to set."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from bot.intake.router import DepartmentRouter
from handlers.cli import app
from tests.bot.intake.test_router import CORPUS, write_corpus
from tests.doubles.support import ROOT
from tests.handlers.test_cli import example_copy


def test_train_router_writes_a_loadable_model_and_prints_the_threshold(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    out = tmp_path / "models" / "router.npz"

    result = CliRunner().invoke(
        app, ["model", "train-router", "--corpus", str(corpus), "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert "learned.min_confidence" in result.output
    assert "learned.overrule_confidence" in result.output
    router = DepartmentRouter.load(out)
    assert set(router.departments) == set(CORPUS)
    assert router.metadata["corpus"] == "corpus.jsonl"
    assert router.route_text(CORPUS["housing"][0]).department == "housing"


def test_train_router_without_a_corpus_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "none.jsonl"
    result = CliRunner().invoke(app, ["model", "train-router", "--corpus", str(missing)])
    assert result.exit_code == 2
    assert "No corpus" in result.output


def test_check_config_names_a_damaged_router_model(tmp_path: Path) -> None:
    playbook = tmp_path / "playbook"
    shutil.copytree(ROOT / "playbooks" / "default", playbook)
    (playbook / "models" / "router.npz").write_bytes(b"damaged")
    config = example_copy(tmp_path, (f"path: {ROOT}/playbooks/default", f"path: {playbook}"))

    result = CliRunner().invoke(app, ["check-config", "-c", str(config)], env={})

    assert result.exit_code == 2
    assert "cannot read the model" in " ".join(result.output.split())
