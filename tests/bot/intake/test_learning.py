"""The organisation's model learns from staff corrections: which corrections count, how a
part is held out, and that a new model is kept only when it does better there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.intake.sentiment.learning import (
    MIN_CORRECTIONS,
    MIN_HELD_OUT,
    RetrainDecision,
    RetrainRequest,
    corrections_as_examples,
    retrain_organisation,
    split_held_out,
)
from bot.intake.sentiment.lexicon import DEFAULT_LEXICON_DIR
from bot.intake.sentiment.model import DEFAULT_MODEL_FILE, Band, SentimentModel
from bot.intake.sentiment.training import DEFAULT_CORPUS, Example
from bot.model import Sentiment
from bot.ports import SentimentCorrection

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
STREETS = (
    "Ленина",
    "Мира",
    "Гагарина",
    "Садовой",
    "Победы",
    "Школьной",
    "Лесной",
    "Советской",
    "Новой",
    "Речной",
    "Полевой",
    "Заречной",
    "Молодёжной",
    "Южной",
    "Северной",
    "Парковой",
)
# Routine notices the shipped model takes for complaints ("опять", "стоит"): staff of this
# organisation press "Не негатив" on every one of them.
ROUTINE = (
    "На улице {street}, {n} опять провели плановый осмотр подвала",
    "Во дворе на улице {street}, дом {n}, опять стоит синий контейнер",
)
# Texts the shipped model already judges as staff do.
AGREED = (
    ("Автобус №{n} опять не пришёл, час стоим на остановке на улице {street}, безобразие", True),
    ("Спасибо за новый сквер на улице {street}, дом {n}, очень красиво!", False),
)


def correction(n: int, text: str, negative: bool) -> SentimentCorrection:
    sentiment = Sentiment.NEGATIVE if negative else Sentiment.NEUTRAL
    return SentimentCorrection(n, text, "ru", sentiment, None, "spec", T0 + timedelta(minutes=n))


def routine_corrections() -> list[tuple[str, bool]]:
    return [
        (template.format(street=street, n=n), False)
        for n, street in enumerate(STREETS, 3)
        for template in ROUTINE
    ]


def agreed_corrections() -> list[tuple[str, bool]]:
    return [
        (template.format(street=street, n=n), negative)
        for n, street in enumerate(STREETS, 3)
        for template, negative in AGREED
    ]


def request(texts: list[tuple[str, bool]], organisation: Path) -> RetrainRequest:
    return RetrainRequest(
        corrections=tuple(correction(n, t, neg) for n, (t, neg) in enumerate(texts, 1)),
        corpus=DEFAULT_CORPUS,
        shipped_model=DEFAULT_MODEL_FILE,
        organisation_model=organisation,
        lexicon=DEFAULT_LEXICON_DIR,
        band=Band(0.41, 0.19),
    )


def test_a_text_corrected_twice_is_one_example_with_the_latest_word() -> None:
    examples = corrections_as_examples(
        [
            correction(2, "Опять нет воды", False),
            correction(1, "Опять нет воды", True),
            correction(3, "  ", True),  # nothing to learn from
            correction(4, "Ужасно рад", False),
        ]
    )
    assert examples == [Example("Опять нет воды", False, "ru"), Example("Ужасно рад", False, "ru")]


def test_the_held_out_part_takes_each_class_and_stays_put_as_corrections_grow() -> None:
    examples = [Example(f"жалоба {n}", True) for n in range(30)]
    examples += [Example(f"не жалоба {n}", False) for n in range(10)]
    training, held = split_held_out(examples)
    assert len(held) == 8 + 3  # a quarter of each class, rounded up
    assert {e.negative for e in held} == {True, False}
    assert {e.text for e in training}.isdisjoint(e.text for e in held)
    assert len(training) + len(held) == len(examples)
    assert split_held_out(list(reversed(examples))) == (training, held)  # seeded, not by order

    few = [Example(f"жалоба {n}", True) for n in range(8)]
    assert len(split_held_out(few)[1]) == MIN_HELD_OUT

    grown = examples + [Example(f"новая жалоба {n}", True) for n in range(4)]
    held_again = {e.text for e in split_held_out(grown)[1]}
    assert len(held_again & {e.text for e in held}) >= len(held) - 1


def test_too_few_corrections_keep_the_shipped_model(tmp_path: Path) -> None:
    organisation = tmp_path / "sentiment.org.npz"
    texts = routine_corrections()[: MIN_CORRECTIONS - 1]
    result = retrain_organisation(request(texts, organisation))
    assert result.decision is RetrainDecision.TOO_FEW
    assert (result.corrections, result.current) == (MIN_CORRECTIONS - 1, "shipped")
    assert "at least 20" in result.summary()
    assert not organisation.exists()


def test_a_model_no_better_on_held_out_corrections_is_not_kept(tmp_path: Path) -> None:
    organisation = tmp_path / "sentiment.org.npz"
    result = retrain_organisation(request(agreed_corrections(), organisation))
    assert result.decision is RetrainDecision.KEPT
    assert result.current_score == 1.0  # the shipped model was right already: a tie at best
    assert "the shipped model stays in use" in result.summary()
    assert not organisation.exists()


def test_a_model_that_learned_what_the_shipped_one_gets_wrong_is_kept(tmp_path: Path) -> None:
    organisation = tmp_path / "models" / "sentiment.org.npz"
    texts = routine_corrections() + agreed_corrections()
    result = retrain_organisation(request(texts, organisation))
    assert result.decision is RetrainDecision.ADOPTED, result
    assert result.new_score is not None and result.current_score is not None
    assert result.new_score > result.current_score
    assert result.path == organisation
    assert (result.training + result.held_out, result.corrections) == (len(texts), len(texts))

    model = SentimentModel.load(organisation)
    assert model.metadata["organisation"] is True
    assert model.metadata["corrections"] == result.training
    assert model.metadata["held_out"] == result.held_out
    assert model.metadata["held_out_score"] == {
        "new": result.new_score,
        "shipped": result.current_score,
    }
    assert model.trained_at is not None
    assert model.band == Band(0.41, 0.19)
    assert [p.name for p in organisation.parent.iterdir()] == [organisation.name]

    # Next time the organisation's model is the one to beat; it was right already.
    again = retrain_organisation(request(texts, organisation))
    assert (again.decision, again.current) == (RetrainDecision.KEPT, "organisation")
    assert SentimentModel.load(organisation).trained_at == model.trained_at
