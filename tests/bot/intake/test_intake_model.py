"""Intake with the sentiment model: a negative mention opens a case, an uncertain one is
stored as uncertain, counted as neutral on its author's card, and opens none."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.intake.intake import MentionIntake
from bot.intake.lemmas import Lemmatiser
from bot.intake.sentiment.analyser import SentimentClassifier
from bot.intake.sentiment.lexicon import DEFAULT_LEXICON_DIR, load_lexicon
from bot.intake.sentiment.model import (
    DEFAULT_MODEL_FILE,
    Band,
    ModelClassifier,
    SentimentModel,
    load_model_classifier,
)
from bot.model import (
    MAX_ATTACHMENTS,
    Attachment,
    AttachmentKind,
    Sentiment,
    SentimentSource,
)
from bot.settings.playbook import load_playbook
from bot.sla.calendar import Deadlines
from bot.staff.directory import Directory
from store.db import Database
from tests.doubles.support import make_config, make_mention

COMPLAINT = "Третий день нет горячей воды в доме, управляющая компания не берёт трубку"
QUIET = "Подскажите, в какие часы работает приёмная по субботам"


def build(
    directory: Path, database: Database, clock: FrozenClock, band: Band | None
) -> MentionIntake:
    config = make_config(directory, database.url)
    playbook = load_playbook(config.playbooks.path)
    cases = CaseService(
        database.uow,
        clock,
        Directory(config, frozenset({"telegram"})),
        config.tz,
        coordination="coordination",
        policy=playbook.routing,
    )

    def plan(*_: Any) -> tuple[str, Deadlines]:
        now = clock.now()
        due = Deadlines(now + timedelta(hours=1), now + timedelta(hours=4), now + timedelta(1))
        return "standard", due

    lexicon = SentimentClassifier(load_lexicon(DEFAULT_LEXICON_DIR), Lemmatiser())
    model = (
        ModelClassifier(SentimentModel.load(DEFAULT_MODEL_FILE), lexicon, band)
        if band is not None
        else load_model_classifier(playbook, lexicon)
    )
    return MentionIntake(cases, playbook, clock, plan, classifier=lexicon, model=model)


def p_of(text: str) -> float:
    lexicon = SentimentClassifier(load_lexicon(DEFAULT_LEXICON_DIR), Lemmatiser())
    return ModelClassifier(SentimentModel.load(DEFAULT_MODEL_FILE), lexicon).judge(text).p_negative


async def test_an_uncertain_mention_is_stored_as_uncertain_and_opens_no_case(
    tmp_path: Path, database: Database, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.intake.intake")
    p = p_of(QUIET)
    intake = build(tmp_path, database, clock, Band(min(1.0, p + 0.01), max(0.0, p - 0.01)))
    mention = replace(make_mention("u1", clock.now(), QUIET), sentiment=None)
    result = await intake.receive(mention)
    assert result.case is None and result.mention is not None
    assert result.mention.sentiment is Sentiment.UNCERTAIN
    assert result.mention.sentiment_source is SentimentSource.CLASSIFIER
    assert result.mention.sentiment_score == round(p, 4)
    assert f"uncertain mention vk:u1 p={p:.2f}" in caplog.text  # for the triage list to come
    async with database.uow() as uow:
        stored = await uow.mentions.get_by_external("vk", "u1")
        assert stored is not None and stored.sentiment is Sentiment.UNCERTAIN
        author = await uow.authors.get(stored.author_id or 0)
        assert author is not None
        assert (author.negative_count, author.neutral_count) == (0, 1)  # neutral until decided


async def test_a_negative_mention_opens_a_case_with_the_playbooks_band(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    intake = build(tmp_path, database, clock, None)  # the shipped model, routing.yaml's band
    mention = replace(make_mention("n1", clock.now(), COMPLAINT), sentiment=None)
    result = await intake.receive(mention)
    assert result.mention is not None and result.mention.sentiment is Sentiment.NEGATIVE
    assert result.case is not None and result.case.department == "housing"
    assert result.mention.sentiment_score is not None and result.mention.sentiment_score > 0.5


async def test_intake_drops_attachments_beyond_the_bounds_whatever_the_adapter_did(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    intake = build(tmp_path, database, clock, None)
    good = [
        Attachment(AttachmentKind.DOCUMENT, f"https://cdn.example.org/{n}.pdf", f"{n}.pdf")
        for n in range(MAX_ATTACHMENTS + 3)
    ]
    hostile = Attachment(AttachmentKind.PHOTO, "javascript:alert(1)", "x.jpg")
    mention = replace(make_mention("many", clock.now(), COMPLAINT), attachments=(hostile, *good))
    result = await intake.receive(mention)
    assert result.mention is not None
    async with database.reader() as uow:
        stored = await uow.mentions.get_by_external("vk", "many")
    assert stored is not None and stored.attachments == tuple(good[:MAX_ATTACHMENTS])
