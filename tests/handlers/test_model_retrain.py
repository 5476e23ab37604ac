"""The organisation's model end to end: staff corrections in the database, `otklik model
retrain`, the bot loading the organisation's file at start, the scheduled job swapping a
winning model into the running intake."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.clock import FrozenClock
from bot.intake.sentiment.learning import RetrainDecision
from bot.intake.sentiment.model import DEFAULT_MODEL_FILE, SentimentModel
from bot.model import Author, Identity, Mention, Sentiment, SentimentSource
from bot.settings.config import Config, load_config
from bot.settings.playbook import load_playbook
from handlers.app import App
from handlers.cli import app as cli
from store.db import Database
from tests.bot.intake.test_learning import T0, agreed_corrections, routine_corrections
from tests.handlers.test_cli import example_copy

runner = CliRunner()
ROUTINE_NOTICE = "На улице Вокзальной, 41 опять провели плановый осмотр подвала"
RESIDENT = Identity("vk", "id1", "Житель")


async def seed_corrections(url: str, texts: list[tuple[str, bool]]) -> None:
    """Mentions the classifier judged, then corrected by staff ("Не негатив", /negative)."""
    database = Database(url)
    try:
        await database.upgrade()
        async with database.uow() as uow:
            author = await uow.authors.add(Author(None, "Житель", (RESIDENT,), first_seen_at=T0))
            for n, (text, negative) in enumerate(texts):
                mention = await uow.mentions.add(
                    Mention(
                        source="vk",
                        external_id=f"wall-1_{n}",
                        text=text,
                        author=RESIDENT,
                        author_id=author.id,
                        received_at=T0,
                        language="ru",
                        sentiment=Sentiment.NEUTRAL if negative else Sentiment.NEGATIVE,
                        sentiment_source=SentimentSource.CLASSIFIER,
                    )
                )
                assert mention is not None and mention.id is not None
                await uow.mentions.correct_sentiment(
                    [mention.id],
                    Sentiment.NEGATIVE if negative else Sentiment.NEUTRAL,
                    "morozova",
                    T0 + timedelta(minutes=n),
                )
            await uow.commit()
    finally:
        await database.dispose()


def configured(tmp_path: Path, texts: list[tuple[str, bool]]) -> Config:
    config = load_config(example_copy(tmp_path), env={})
    asyncio.run(seed_corrections(config.database.url, texts))
    return config


def retrain(config_dir: Path) -> str:
    result = runner.invoke(cli, ["model", "retrain", "-c", str(config_dir / "config.yaml")])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # rich wraps long lines


def test_retrain_with_too_few_corrections_says_so_and_writes_nothing(tmp_path: Path) -> None:
    config = configured(tmp_path, routine_corrections()[:5])
    output = retrain(tmp_path)
    assert "5 staff correction(s), at least 20 are needed" in output
    assert "the shipped model stays in use" in output
    assert config.model.path == tmp_path / "data" / "models" / "sentiment.org.npz"
    assert not config.model.path.exists()


def test_retrain_keeps_the_shipped_model_when_the_new_one_does_no_better(tmp_path: Path) -> None:
    config = configured(tmp_path, agreed_corrections())
    output = retrain(tmp_path)
    assert "the shipped model stays in use" in output
    assert not config.model.path.exists()


def test_retrain_writes_a_winning_model_and_the_bot_starts_with_it(
    tmp_path: Path, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    config = configured(tmp_path, routine_corrections() + agreed_corrections())
    output = retrain(tmp_path)
    assert "the new model is used from now on" in output
    assert SentimentModel.load(config.model.path).metadata["organisation"] is True

    with caplog.at_level(logging.INFO, logger="bot.intake.sentiment.model"):
        otklik = App(config, load_playbook(config.playbooks.path), clock=clock)
    in_use = otklik.intake.model
    assert in_use is not None and in_use.model.path == config.model.path
    assert "the organisation's own" in caplog.text
    prepared = otklik.intake.prepare(Mention("vk", "n", ROUTINE_NOTICE, RESIDENT, received_at=T0))
    assert prepared.sentiment is not Sentiment.NEGATIVE

    assert "the organisation model stays in use" in retrain(tmp_path)  # nothing new to learn

    summary = runner.invoke(cli, ["check-config", "-c", str(tmp_path / "config.yaml")], env={})
    assert summary.exit_code == 0, summary.output
    assert "Sentiment model: the organisation's own" in " ".join(summary.output.split())


def test_an_unreadable_organisation_model_leaves_the_shipped_one_in_use(
    tmp_path: Path, clock: FrozenClock
) -> None:
    config = load_config(example_copy(tmp_path), env={})
    config.model.path.parent.mkdir(parents=True)
    config.model.path.write_bytes(b"not a model")
    otklik = App(config, load_playbook(config.playbooks.path), clock=clock)
    in_use = otklik.intake.model
    assert in_use is not None and in_use.model.path == DEFAULT_MODEL_FILE


async def test_the_scheduled_retraining_swaps_a_winning_model_into_intake(
    tmp_path: Path, clock: FrozenClock
) -> None:
    config = load_config(example_copy(tmp_path), env={})
    await seed_corrections(config.database.url, routine_corrections() + agreed_corrections())
    otklik = App(config, load_playbook(config.playbooks.path), clock=clock)
    notice = Mention("vk", "n", ROUTINE_NOTICE, RESIDENT, received_at=T0)
    assert otklik.intake.prepare(notice).sentiment is Sentiment.NEGATIVE  # the shipped model
    try:
        result = await otklik.model_jobs.run()  # in a child process
        assert result is not None and result.decision is RetrainDecision.ADOPTED
        in_use = otklik.intake.model
        assert in_use is not None and in_use.model.path == config.model.path
        assert otklik.intake.prepare(notice).sentiment is not Sentiment.NEGATIVE

        again = await otklik.model_jobs.run()
        assert again is not None and again.decision is RetrainDecision.KEPT
        assert otklik.intake.model is in_use  # the same model: nothing swapped
    finally:
        await otklik.model_jobs.stop()
        await otklik.database.dispose()


def test_the_retraining_is_scheduled_from_the_config(tmp_path: Path, clock: FrozenClock) -> None:
    config = load_config(example_copy(tmp_path), env={})
    otklik = App(config, load_playbook(config.playbooks.path), clock=clock)
    otklik.model_jobs.schedule(otklik.scheduler)
    job = otklik.scheduler.get_job("sentiment-retrain")
    assert job is not None and "hour='3'" in str(job.trigger) and "minute='30'" in str(job.trigger)

    off = example_copy(tmp_path, ('retrain_cron: "30 3 * * *"', "retrain_cron:"))
    quiet = App(load_config(off, env={}), load_playbook(config.playbooks.path), clock=clock)
    quiet.model_jobs.schedule(quiet.scheduler)
    assert quiet.scheduler.get_job("sentiment-retrain") is None


async def test_a_failed_retraining_leaves_the_bot_with_its_model(
    tmp_path: Path, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(example_copy(tmp_path), env={})
    otklik = App(config, load_playbook(config.playbooks.path), clock=clock)
    in_use = otklik.intake.model
    try:
        with caplog.at_level(logging.ERROR):
            assert await otklik.model_jobs.run() is None  # no tables yet: the read fails
    finally:
        await otklik.database.dispose()
    assert otklik.intake.model is in_use
    assert "sentiment model retraining failed" in caplog.text
