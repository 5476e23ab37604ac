"""The learned sentiment model: training separates, the file round-trips, verdicts explain
themselves, the band gives three outcomes, and the shipped model knows obvious cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.intake.lemmas import Lemmatiser
from bot.intake.sentiment.analyser import SentimentClassifier
from bot.intake.sentiment.lexicon import DEFAULT_LEXICON_DIR, load_lexicon
from bot.intake.sentiment.model import (
    DEFAULT_MODEL_FILE,
    Band,
    ModelClassifier,
    Outcome,
    SentimentModel,
)
from bot.intake.sentiment.training import Example, Params, retrain, train
from bot.model import Sentiment

COMPLAINTS = [
    "Опять сломался лифт, сколько можно ждать ремонта",
    "Третий день нет горячей воды, никто не отвечает",
    "Автобус опять не пришёл, стоим на морозе",
    "Мусор не вывозят уже неделю, крысы бегают",
    "Снова прорвало трубу, управляющая компания молчит",
    "The bus never came again, waited an hour in the rain",
    "Still no heating in our flat, nobody answers the phone",
    "Rubbish has not been collected for two weeks again",
]
OTHERS = [
    "Спасибо за новую детскую площадку, дети счастливы",
    "Отличная работа дворников, всё чисто и красиво",
    "Благодарим за быстрый ремонт дороги",
    "Концерт в парке был замечательный, спасибо организаторам",
    "Расписание автобусов на праздники опубликовано на сайте",
    "Thank you for the new playground, the kids love it",
    "Great job fixing the road so quickly, thanks",
    "The library opens at nine on Saturday",
]


@pytest.fixture(scope="module")
def lexicon() -> SentimentClassifier:
    return SentimentClassifier(load_lexicon(DEFAULT_LEXICON_DIR), Lemmatiser())


def corpus() -> list[Example]:
    return [Example(t, True) for t in COMPLAINTS] + [Example(t, False) for t in OTHERS]


@pytest.fixture(scope="module")
def small_model(lexicon: SentimentClassifier) -> SentimentModel:
    return train(corpus(), lexicon, Params(c=10.0), band=Band(0.6, 0.4))


def test_training_on_a_small_corpus_separates_it(
    small_model: SentimentModel, lexicon: SentimentClassifier
) -> None:
    for text in COMPLAINTS:
        assert small_model.judge(text, lexicon.classify(text)).p_negative > 0.5, text
    for text in OTHERS:
        assert small_model.judge(text, lexicon.classify(text)).p_negative < 0.5, text
    assert small_model.metadata["corpus_size"] == len(COMPLAINTS) + len(OTHERS)


def test_a_saved_model_loads_with_identical_probabilities(
    small_model: SentimentModel, lexicon: SentimentClassifier, tmp_path: Path
) -> None:
    path = tmp_path / "sentiment.npz"
    small_model.save(path)
    loaded = SentimentModel.load(path)
    assert loaded.band == small_model.band and loaded.signals == small_model.signals
    assert loaded.trained_at is not None
    for text in [*COMPLAINTS, *OTHERS, "Совсем новый текст про лифт"]:
        result = lexicon.classify(text)
        # float32 on disk: the same to well within the band's resolution
        assert loaded.judge(text, result).p_negative == pytest.approx(
            small_model.judge(text, result).p_negative, abs=1e-5
        )


def test_an_explanation_names_ngrams_of_the_text(
    small_model: SentimentModel, lexicon: SentimentClassifier
) -> None:
    text = "Опять сломался лифт, никто не отвечает"
    result = lexicon.classify(text)
    verdict = small_model.judge(text, result, explain=True)
    assert verdict.outcome is Outcome.NEGATIVE and verdict.signals
    folded = text.lower()
    cues = " ".join(result.reasons)  # a lexicon cue is named as its entry: «отвечать»
    for signal in verdict.signals:
        assert signal.startswith("«") and signal.endswith("»"), signal
        assert signal.strip("«»").strip() in folded or signal in cues, signal
    assert any(signal.strip("«»").strip() in folded for signal in verdict.signals)
    assert small_model.judge(text, lexicon.classify(text)).signals == ()  # only when asked


def test_the_band_gives_three_outcomes() -> None:
    band = Band(negative_from=0.6, uncertain_from=0.35)
    assert band.outcome(0.9) is Outcome.NEGATIVE
    assert band.outcome(0.6) is Outcome.NEGATIVE
    assert band.outcome(0.5) is Outcome.UNCERTAIN
    assert band.outcome(0.35) is Outcome.UNCERTAIN
    assert band.outcome(0.2) is Outcome.NOT_NEGATIVE


def test_the_band_moves_a_text_between_outcomes(
    small_model: SentimentModel, lexicon: SentimentClassifier
) -> None:
    text = COMPLAINTS[0]
    result = lexicon.classify(text)
    p = small_model.judge(text, result).p_negative
    assert small_model.judge(text, result, Band(p, p)).outcome is Outcome.NEGATIVE
    uncertain = small_model.judge(text, result, Band(p + 1e-3, p - 1e-3))
    assert uncertain.outcome is Outcome.UNCERTAIN
    assert uncertain.sentiment is Sentiment.UNCERTAIN
    assert small_model.judge(text, result, Band(1.0, 1.0)).sentiment is Sentiment.NEUTRAL


def test_corrections_teach_the_model(lexicon: SentimentClassifier) -> None:
    text = "Ну просто бомба, а не новый сквер"  # slang praise the small corpus has not seen
    corrected = retrain(corpus(), [Example(text, False)], lexicon, Params(c=10.0), Band(0.6, 0.4))
    before = train(corpus(), lexicon, Params(c=10.0), Band(0.6, 0.4))
    result = lexicon.classify(text)
    assert corrected.judge(text, result).p_negative < before.judge(text, result).p_negative
    assert corrected.metadata["corrections"] == 1


def test_the_shipped_model_loads_and_knows_obvious_cases(lexicon: SentimentClassifier) -> None:
    model = ModelClassifier(SentimentModel.load(DEFAULT_MODEL_FILE), lexicon)
    assert model.model.metadata["corpus_size"] > 1000
    for text in (
        "Уже неделю нет горячей воды, управляющая компания не отвечает на звонки",
        "Third week with no bin collection on our street, nobody answers",
    ):
        assert model.judge(text).outcome is Outcome.NEGATIVE, text
    for text in (
        "Большое спасибо за отремонтированную дорогу, ездить стало приятно",
        "Thank you so much for the lovely new park, the children adore it",
    ):
        assert model.judge(text).outcome is Outcome.NOT_NEGATIVE, text


def test_otklik_model_train_writes_a_model_that_loads(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from handlers.cli import app

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(
            json.dumps({"text": t, "label": "negative" if t in COMPLAINTS else "not_negative"})
            + "\n"
            for t in [*COMPLAINTS, *OTHERS] * 2  # five folds need a few of each
        ),
        encoding="utf-8",
    )
    out = tmp_path / "model.npz"
    result = CliRunner().invoke(app, ["model", "train", "--corpus", str(corpus), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "negative_from" in result.output
    model = SentimentModel.load(out)
    assert model.metadata["corpus_size"] == 2 * (len(COMPLAINTS) + len(OTHERS))
