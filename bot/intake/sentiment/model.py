"""The learned sentiment model: is a mention negative, and how sure is it?

A logistic regression over the hashed n-grams of bot/intake/features.py plus the lexicon
classifier's signals (its verdict, a bucket of its score, the kinds and cues it found), trained
by training.py from the corpus the project ships. Here it only scores: pure Python over a list
of weights, no scikit-learn, so the running bot loads it in milliseconds.

p_negative falls into one of three outcomes by the playbook's band (routing.yaml, `triage:`):
negative (a case), uncertain (for a person to look at), not negative. Each verdict names its
strongest signals, so a card can say why the bot thinks a mention is a complaint.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import numpy as np

from bot.intake import features
from bot.intake.sentiment.analyser import SentimentClassifier, SentimentResult
from bot.model import Sentiment
from bot.settings.playbook import Playbook
from playbooks import PLAYBOOKS_DIR

__all__ = [
    "DEFAULT_MODEL_FILE",
    "FORMAT_VERSION",
    "SIGNAL_KINDS",
    "Band",
    "ModelClassifier",
    "Outcome",
    "SentimentModel",
    "Verdict",
    "lexicon_signals",
    "load_model_classifier",
    "load_organisation_model",
    "model_file",
    "playbook_band",
]

_log = logging.getLogger(__name__)

# bot/ and playbooks/ sit side by side in a checkout and in a wheel alike.
DEFAULT_MODEL_FILE = PLAYBOOKS_DIR / "default" / "models" / "sentiment.npz"

FORMAT_VERSION = 1
# The lexicon's signals a model may use, named in its metadata: its verdict, a bucket of its
# score, the kinds of its reasons (sarcasm, negated, emoji...), the cues themselves.
SIGNAL_KINDS = ("verdict", "bucket", "kinds", "cues")
_SCORE_BUCKETS = ((-2.0, "≤-2"), (-1.0, "-2…-1"), (-0.01, "-1…0"), (0.01, "0"), (1.0, "0…1"))
_MAX_SIGNALS = 4


class Outcome(StrEnum):
    NEGATIVE = "negative"  # a case
    UNCERTAIN = "uncertain"  # a person decides (the triage list)
    NOT_NEGATIVE = "not_negative"


@dataclass(frozen=True, slots=True)
class Band:
    """p_negative >= negative_from: negative; >= uncertain_from: uncertain; else not."""

    negative_from: float
    uncertain_from: float

    def outcome(self, p_negative: float) -> Outcome:
        if p_negative >= self.negative_from:
            return Outcome.NEGATIVE
        if p_negative >= self.uncertain_from:
            return Outcome.UNCERTAIN
        return Outcome.NOT_NEGATIVE


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    p_negative: float
    signals: tuple[str, ...]  # readable, strongest first: «опять», «не работает»
    lexicon: SentimentResult
    found: features.Features | None = field(default=None, repr=False, compare=False)

    @property
    def sentiment(self) -> Sentiment:
        """As a mention stores it; a not-negative mention keeps the lexicon's praise."""
        if self.outcome is Outcome.NEGATIVE:
            return Sentiment.NEGATIVE
        if self.outcome is Outcome.UNCERTAIN:
            return Sentiment.UNCERTAIN
        if self.lexicon.sentiment is Sentiment.POSITIVE:
            return Sentiment.POSITIVE
        return Sentiment.NEUTRAL


def _bucket(score: float) -> str:
    for upper, name in _SCORE_BUCKETS:
        if score <= upper:
            return name
    return "0…1" if score < 2.0 else "≥2"


def lexicon_signals(result: SentimentResult, kinds: Iterable[str]) -> tuple[str, ...]:
    """The lexicon classifier's result as named signals, features.extract's `extra`."""
    wanted = set(kinds)
    signals: list[str] = []
    if "verdict" in wanted:
        signals.append(f"lexicon: {result.sentiment.value}")
    if "bucket" in wanted:
        signals.append(f"lexicon score {_bucket(result.score)}")
    for reason in result.reasons:
        kind = reason.split(" ", 1)[0]
        if "kinds" in wanted:
            signals.append(f"lexicon {kind}")
        if "cues" in wanted and "«" in reason:
            cue = reason[reason.index("«") : reason.index("»") + 1]
            signals.append(f"{kind} {cue}")
    return tuple(signals)


def _worth_reading(name: str) -> bool:
    """Not the lexicon's verdict, score or kinds of reasons, nor a lone short word or number
    ("на", "0"): they explain nothing to a reader."""
    if name.startswith("x:lexicon"):
        return False
    return not (name.startswith("w:") and len(name) < 5)


def _overlap(one: str, other: str) -> bool:
    """«третий» adds nothing after «третий день», nor «рыли» after «крыли»."""
    a, b = one.strip("«»").strip(), other.strip("«»").strip()
    return a in b or b in a


def _readable(name: str) -> str:
    if name.startswith("x:") and "«" in name:
        return name[name.index("«") :]  # a lexicon cue: the words, as an n-gram reads
    return features.readable(name)


class SentimentModel:
    """Weights over features.DIMENSION hashed features, a bias, the band it was tuned for."""

    def __init__(
        self,
        weights: Sequence[float],
        bias: float,
        band: Band,
        signals: tuple[str, ...],
        metadata: dict[str, object],
    ) -> None:
        if len(weights) != features.DIMENSION:
            raise ValueError(f"{len(weights)} weights, expected {features.DIMENSION}")
        self._weights = list(weights)  # a list indexes fastest from pure Python
        self.bias = bias
        self.band = band
        self.signals = signals
        self.metadata = metadata
        self.path: Path | None = None  # the file it was loaded from

    # --- file --------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> SentimentModel:
        with np.load(path, allow_pickle=False) as data:
            metadata = json.loads(str(data["metadata"]))
            if metadata.get("format") != FORMAT_VERSION:
                raise ValueError(f"{path}: model format {metadata.get('format')!r} unknown")
            band = Band(*(float(x) for x in data["band"]))
            model = cls(
                data["weights"].astype(np.float64).tolist(),
                float(data["bias"]),
                band,
                tuple(metadata["signals"]),
                metadata,
            )
        model.path = path
        return model

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {**self.metadata, "format": FORMAT_VERSION, "signals": list(self.signals)}
        with path.open("wb") as file:  # a path without ".npz" stays as given
            np.savez_compressed(
                file,
                weights=np.asarray(self._weights, dtype=np.float32),
                bias=np.float32(self.bias),
                band=np.asarray([self.band.negative_from, self.band.uncertain_from]),
                metadata=np.asarray(json.dumps(metadata, ensure_ascii=False)),
            )

    @property
    def trained_at(self) -> datetime | None:
        value = self.metadata.get("trained_at")
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    # --- scoring -----------------------------------------------------------------------

    def extract(self, text: str, lexicon: SentimentResult) -> features.Features:
        return features.extract(text, lexicon_signals(lexicon, self.signals))

    def p_negative(self, found: features.Features) -> float:
        # map() keeps the loop over a few hundred features in C.
        z = self.bias + sum(
            map(operator.mul, map(self._weights.__getitem__, found.indexes), found.values)
        )
        if z < -30.0:
            return 0.0
        return 1.0 / (1.0 + math.exp(-z))

    def strongest(self, found: features.Features, limit: int = _MAX_SIGNALS) -> tuple[str, ...]:
        """The features that push hardest towards negative: words, phrases and lexicon cues
        first (staff read them); character fragments only when nothing else pushes."""
        weights = self._weights
        pushes = sorted(
            (
                (weights[index] * value, name)
                for index, value, name in zip(found.indexes, found.values, found.names, strict=True)
                if weights[index] > 0 and _worth_reading(name)
            ),
            reverse=True,
        )
        readable: list[str] = []
        for prefer_words in (True, False):
            for _, name in pushes:
                if prefer_words == name.startswith("c:"):
                    continue
                text = _readable(name)
                if not any(_overlap(text, chosen) for chosen in readable):
                    readable.append(text)
                if len(readable) >= limit:
                    return tuple(readable)
        return tuple(readable)

    def judge(
        self,
        text: str,
        lexicon: SentimentResult,
        band: Band | None = None,
        *,
        explain: bool = False,
    ) -> Verdict:
        """The verdict on one text, given the lexicon classifier's result on it. With
        `explain`, a negative or uncertain verdict names its strongest signals (this costs
        as much again as the verdict: /case asks, intake does not)."""
        found = self.extract(text, lexicon)
        p = self.p_negative(found)
        outcome = (band or self.band).outcome(p)
        explained = explain and outcome is not Outcome.NOT_NEGATIVE
        return Verdict(outcome, p, self.strongest(found) if explained else (), lexicon, found)


class ModelClassifier:
    """The lexicon classifier and the model together: what intake asks for one text."""

    def __init__(
        self, model: SentimentModel, lexicon: SentimentClassifier, band: Band | None = None
    ) -> None:
        self.model = model
        self.lexicon = lexicon
        self.band = band or model.band

    def signals(self, verdict: Verdict) -> tuple[str, ...]:
        """A verdict's strongest signals, from the features it was reached with."""
        if verdict.signals or verdict.found is None:
            return verdict.signals
        return self.model.strongest(verdict.found)

    def judge(self, text: str, language: str | None = None, *, explain: bool = False) -> Verdict:
        return self.model.judge(
            text, self.lexicon.classify(text, language), self.band, explain=explain
        )


def model_file(playbook: Playbook) -> Path | None:
    """The playbook's `triage.model`, else its models/sentiment.npz, else the shipped model;
    None when there is no file at all (the lexicon alone decides)."""
    named = playbook.routing.triage.model
    for path in (
        playbook.path / named if named else None,
        playbook.path / "models" / "sentiment.npz",
        DEFAULT_MODEL_FILE,
    ):
        if path is not None and path.is_file():
            return path
    return None


def playbook_band(playbook: Playbook) -> Band:
    triage = playbook.routing.triage
    return Band(triage.negative_from, triage.uncertain_from)


def load_organisation_model(path: Path) -> SentimentModel | None:
    """The organisation's own model (learning.py) when its file is there and readable."""
    if not path.is_file():
        return None
    try:
        return SentimentModel.load(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        _log.warning("organisation sentiment model %s cannot be read (%s): not used", path, error)
        return None


def load_model_classifier(
    playbook: Playbook, lexicon: SentimentClassifier, organisation: Path | None = None
) -> ModelClassifier | None:
    """The model and the playbook's band, as App and the importer build intake: the
    organisation's own model (config `model.path`) when there is one, else the playbook's."""
    model = load_organisation_model(organisation) if organisation is not None else None
    if model is None:
        path = model_file(playbook)
        if path is None:
            _log.info("no sentiment model file: the lexicon alone decides")
            return None
        model = SentimentModel.load(path)
    _log.info(
        "sentiment model: %s (%s, trained %s)",
        model.path,
        "the organisation's own"
        if organisation is not None and model.path == organisation
        else "shipped",
        model.metadata.get("trained_at", "?"),
    )
    return ModelClassifier(model, lexicon, playbook_band(playbook))
