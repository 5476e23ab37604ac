"""Sentiment of a mention from lexicons and a few rules, for Russian, English and Polish.

Not a language model: a press office needs to know why the bot called a mention negative,
and to fix it by editing a YAML file. Every result carries its reasons.

A text is cut into words and emoji; each word meets lexicon entries by its lemma. Entries
add their weights; negators ("не", "not", "nie") flip the next weighted word, intensifiers
multiply it, "expected" words ("работать", "вода") count only when negated ("не работает",
"нет воды"), sarcasm markers and quoted praise turn positive words negative, and bursts of
"?!" or text in capitals amplify the negative part. score <= -threshold is negative.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from bot.intake.lemmas import (
    LANGUAGES,
    Language,
    Lemmatiser,
    detect_language,
    fold,
    is_emoji,
    iter_tokens,
    primary_language,
)
from bot.model import MAX_MENTION_TEXT, Sentiment
from bot.settings.config import Config
from bot.settings.yamlfile import StrictLoader
from playbooks import PLAYBOOKS_DIR

__all__ = [
    "DEFAULT_LEXICON_DIR",
    "EMOJI_FILE",
    "Entry",
    "LanguageLexicon",
    "Lexicon",
    "LexiconError",
    "Rules",
    "SentimentClassifier",
    "SentimentResult",
    "load_lexicon",
]

# bot/ and playbooks/ sit side by side in a checkout and in a wheel alike.
DEFAULT_LEXICON_DIR = PLAYBOOKS_DIR / "default" / "lexicon"
EMOJI_FILE = "emoji.yaml"
_MAX_WEIGHT = 10.0
_MAX_REASONS = 20
_EMOJI_REPEATS = 2  # a row of ten 😡 counts as two

EntryKind = Literal["negative", "positive", "expected", "neutral", "sarcasm"]
Problem = tuple[Path, str, str]  # (file, key path, message)


class LexiconError(Exception):
    """The lexicon cannot be used. `problems` lists every (file, key, message)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(
            f"{file}: {key}: {message}" if key else f"{file}: {message}"
            for file, key, message in self.problems
        )


@dataclass(frozen=True, slots=True)
class Rules:
    """Numbers of the built-in rules; each language file may override them."""

    negation_window: int = 3
    negated_positive: float = 1.0
    negated_negative: float = 0.5
    contrast_before: float = 0.5
    burst: float = 1.5
    burst_weight: float = 0.5
    caps: float = 1.5
    caps_weight: float = 0.5
    quoted_positive: float = 1.0


# (min, max) of each rule; negation_window is a whole number of words.
_RULE_RANGES: dict[str, tuple[float, float]] = {
    "negation_window": (1, 10),
    "negated_positive": (0, 5),
    "negated_negative": (0, 5),
    "contrast_before": (0, 1),
    "burst": (1, 5),
    "burst_weight": (0, 5),
    "caps": (1, 5),
    "caps_weight": (0, 5),
    "quoted_positive": (0, 5),
}


@dataclass(frozen=True, slots=True)
class Entry:
    """A word or phrase of a lexicon.

    Each of `tokens` is the set of lemmas one word may have, or {"=form"} for an exact word
    form. `weight` counts when the entry stands alone, `negated` when a negator reaches it;
    both are signed.
    """

    tokens: tuple[frozenset[str], ...]
    weight: float
    negated: float
    kind: EntryKind
    text: str  # as written in the file, for reasons
    shielded: bool = False  # starts with a negator ("не работает"): no second negation


@dataclass(frozen=True, slots=True)
class LanguageLexicon:
    language: Language
    threshold: float
    rules: Rules
    entries: Mapping[str, tuple[Entry, ...]]  # by first token, longest first
    negators: Mapping[str, int]  # word -> how many following words it reaches
    negators_after: frozenset[str]
    modifiers: Mapping[str, float]  # intensifiers (> 1) and diminishers (< 1)
    contrast: frozenset[str]

    @property
    def size(self) -> int:
        return sum(len(group) for group in self.entries.values())


@dataclass(frozen=True, slots=True)
class Lexicon:
    languages: Mapping[str, LanguageLexicon]
    emoji: Mapping[str, float]  # normalised emoji -> signed weight
    emoticons: tuple[tuple[str, float], ...]  # ":(" -> signed weight
    directory: Path | None = None

    @property
    def default_language(self) -> str:
        return "ru" if "ru" in self.languages else next(iter(self.languages))


@dataclass(frozen=True, slots=True)
class SentimentResult:
    sentiment: Sentiment
    score: float  # sum of weights: <= -threshold negative, >= +threshold positive
    language: str
    reasons: tuple[str, ...] = field(default=())


# --- loading --------------------------------------------------------------------------------


class _LexiconLoader(StrictLoader):
    """Also reads yes/no/on/off as words: the English negator `no` must not become False."""


_LexiconLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.load(text, Loader=_LexiconLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        problem = exc.problem or exc.context or "syntax error"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"invalid YAML{where}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {exc}") from exc


_LANGUAGE_KEYS = (
    "threshold",
    "rules",
    "negators",
    "negators_after",
    "intensifiers",
    "diminishers",
    "contrast",
    "negative",
    "positive",
    "expected",
    "neutral",
    "sarcasm",
)
_EMOJI_KEYS = ("negative", "positive", "emoticons")
_WORD_RE = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_Words = tuple[frozenset[str], ...]  # an entry: the lemmas each of its words may have
_EMOJI_NOISE_RE = re.compile("[\ufe0f\U0001f3fb-\U0001f3ff]")


def _normalise_emoji(token: str) -> str:
    return _EMOJI_NOISE_RE.sub("", token)


class _Checker:
    """Collects problems of one file so the administrator sees them all at once."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems

    def fail(self, key: str, message: str) -> None:
        self.problems.append((self.path, key, message))

    def unknown_keys(self, data: Mapping[Any, Any], known: Iterable[str], prefix: str) -> None:
        known = tuple(known)
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
                self.fail(f"{prefix}{key}", f"unknown key{hint}")

    def number(self, key: str, value: object, low: float, high: float) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            self.fail(key, f"expected a number, got {value!r}")
            return None
        if not low <= value <= high:
            self.fail(key, f"{value} is outside {low:g}..{high:g}")
            return None
        return float(value)

    def mapping(self, key: str, value: object) -> Mapping[Any, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping of entries, got {type(value).__name__}")
            return {}
        return value

    def word_list(self, key: str, value: object) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(key, f"expected a list, got {type(value).__name__}")
            return []
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail(f"{key}[{i}]", f"expected a word or phrase, got {item!r}")
            else:
                out.append(item)
        return out

    def phrase(self, key: str, text: object) -> tuple[str, ...] | None:
        """The words of an entry, or None after reporting why it is not one."""
        if not isinstance(text, str) or not text.strip():
            self.fail(key, f"an entry must be a word or phrase, got {text!r} (quote it)")
            return None
        parts = tuple(p.strip(",.;:!?\"'«»") for p in text.split())
        for part in parts:
            word = part.removeprefix("=")
            if not _WORD_RE.fullmatch(word):
                self.fail(key, f"{part!r} is not a word (letters, inner hyphens, apostrophes)")
                return None
        return parts


def _entry_word(lemmatiser: Lemmatiser, part: str, language: Language) -> frozenset[str]:
    if part.startswith("="):
        return frozenset({"=" + fold(part[1:])})  # an exact form is only case-folded
    return frozenset(lemmatiser.entry_lemmas(part, language))


def _load_language(
    path: Path, language: Language, lemmatiser: Lemmatiser, problems: list[Problem]
) -> LanguageLexicon | None:
    check = _Checker(path, problems)
    start = len(problems)
    try:
        data = _read(path)
    except (OSError, ValueError) as exc:
        check.fail("", str(exc))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        check.fail("", "expected a mapping with sections such as negative, positive, negators")
        return None
    check.unknown_keys(data, _LANGUAGE_KEYS, "")

    threshold = check.number("threshold", data.get("threshold", 1.0), 0.01, 100) or 1.0

    rule_values: dict[str, Any] = {}
    raw_rules = check.mapping("rules", data.get("rules"))
    check.unknown_keys(raw_rules, _RULE_RANGES, "rules.")
    for name, (low, high) in _RULE_RANGES.items():
        if name not in raw_rules:
            continue
        value = check.number(f"rules.{name}", raw_rules[name], low, high)
        if value is None:
            continue
        if name == "negation_window":
            if value != int(value):
                check.fail(f"rules.{name}", "expected a whole number of words")
                continue
            rule_values[name] = int(value)
        else:
            rule_values[name] = value
    rules = Rules(**rule_values)

    def single(section: str, text: object) -> frozenset[str]:
        parts = check.phrase(f"{section}.{text}", text)
        if parts is None:
            return frozenset()
        if len(parts) != 1:
            check.fail(f"{section}.{text}", "expected one word, not a phrase")
            return frozenset()
        return _entry_word(lemmatiser, parts[0], language)

    negators: dict[str, int] = {}
    raw_negators = data.get("negators")
    if isinstance(raw_negators, list):
        raw_negators = {word: rules.negation_window for word in raw_negators}
    for word, reach in check.mapping("negators", raw_negators).items():
        keys = single("negators", word)
        value = check.number(f"negators.{word}", reach, 1, 10)
        if value is not None:
            if value != int(value):
                check.fail(f"negators.{word}", "expected a whole number of words")
            negators.update(dict.fromkeys(keys, int(value)))

    negators_after: set[str] = set()
    for word in check.word_list("negators_after", data.get("negators_after")):
        keys = single("negators_after", word)
        if keys and not keys & negators.keys():
            check.fail(f"negators_after.{word}", "list it under negators too")
        negators_after.update(keys)

    modifiers: dict[str, float] = {}
    for section, low, high in (("intensifiers", 1.0, 5.0), ("diminishers", 0.0, 1.0)):
        for word, factor in check.mapping(section, data.get(section)).items():
            keys = single(section, word)
            value = check.number(f"{section}.{word}", factor, low, high)
            if value is not None:
                if value in (0.0, 1.0):
                    check.fail(f"{section}.{word}", f"{value:g} changes nothing; remove it")
                    continue
                modifiers.update(dict.fromkeys(keys, value))

    contrast: set[str] = set()
    for word in check.word_list("contrast", data.get("contrast")):
        contrast.update(single("contrast", word))

    # Weighted entries: (tokens) -> (kind, weight, text) per section.
    sections: dict[str, dict[_Words, tuple[float, str]]] = {}
    for section in ("negative", "positive", "expected", "sarcasm"):
        found: dict[_Words, tuple[float, str]] = {}
        for text, weight in check.mapping(section, data.get(section)).items():
            parts = check.phrase(f"{section}.{text}", text)
            value = check.number(f"{section}.{text}", weight, 0.0, _MAX_WEIGHT)
            if parts is None or value is None:
                continue
            if value == 0:
                check.fail(f"{section}.{text}", "a weight of 0 changes nothing; use neutral")
                continue
            tokens = tuple(_entry_word(lemmatiser, p, language) for p in parts)
            # Forms of one lemma ("хуже", "плохой") may both be listed: the heavier counts.
            if tokens not in found or found[tokens][0] < value:
                found[tokens] = (value, str(text))
        sections[section] = found
    neutral: dict[_Words, str] = {}
    for text in check.word_list("neutral", data.get("neutral")):
        parts = check.phrase(f"neutral.{text}", text)
        if parts is not None:
            neutral[tuple(_entry_word(lemmatiser, p, language) for p in parts)] = text

    for first, second in (("negative", "positive"), ("negative", "expected")):
        for tokens in sections[first].keys() & sections[second].keys():
            check.fail(
                f"{second}.{sections[second][tokens][1]}",
                f"also listed under {first} as {sections[first][tokens][1]!r}",
            )
    if len(problems) > start:
        return None

    entries: list[Entry] = []

    def shielded(tokens: _Words) -> bool:
        return not tokens[0].isdisjoint(negators)

    for tokens, (w, text) in sections["negative"].items():
        entries.append(
            Entry(tokens, -w, w * rules.negated_negative, "negative", text, shielded(tokens))
        )
    for tokens, (w, text) in sections["positive"].items():
        # A word both positive and expected: "помогли" is thanks, "не помогли" a complaint.
        expected = sections["expected"].get(tokens)
        negated = -expected[0] if expected else -w * rules.negated_positive
        entries.append(Entry(tokens, w, negated, "positive", text, shielded(tokens)))
    for tokens, (w, text) in sections["expected"].items():
        if tokens not in sections["positive"]:
            entries.append(Entry(tokens, 0.0, -w, "expected", text, shielded(tokens)))
    for tokens, (w, text) in sections["sarcasm"].items():
        entries.append(Entry(tokens, -w, -w, "sarcasm", text, True))
    for tokens, text in neutral.items():
        entries.append(Entry(tokens, 0.0, 0.0, "neutral", text, True))

    index: dict[str, list[Entry]] = {}
    for entry in entries:
        for first in entry.tokens[0]:
            index.setdefault(first, []).append(entry)
    return LanguageLexicon(
        language=language,
        threshold=threshold,
        rules=rules,
        entries={k: tuple(sorted(v, key=lambda e: -len(e.tokens))) for k, v in index.items()},
        negators=negators,
        negators_after=frozenset(negators_after),
        modifiers=modifiers,
        contrast=frozenset(contrast),
    )


def _load_emoji(
    path: Path, problems: list[Problem]
) -> tuple[dict[str, float], tuple[tuple[str, float], ...]]:
    check = _Checker(path, problems)
    try:
        data = _read(path)
    except (OSError, ValueError) as exc:
        check.fail("", str(exc))
        return {}, ()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        check.fail("", "expected a mapping with sections negative, positive, emoticons")
        return {}, ()
    check.unknown_keys(data, _EMOJI_KEYS, "")
    emoji: dict[str, float] = {}
    for section, sign in (("negative", -1.0), ("positive", 1.0)):
        for symbol, weight in check.mapping(section, data.get(section)).items():
            key = f"{section}.{symbol}"
            value = check.number(key, weight, 0.0, _MAX_WEIGHT)
            if not isinstance(symbol, str) or not is_emoji(symbol.strip()):
                check.fail(key, "expected one emoji; put plain-text smileys under emoticons")
                continue
            norm = _normalise_emoji(symbol.strip())
            if norm in emoji:
                check.fail(key, "listed twice (skin tones and variation selectors are ignored)")
            elif value is not None:
                emoji[norm] = sign * value
    emoticons: list[tuple[str, float]] = []
    raw = check.mapping("emoticons", data.get("emoticons"))
    check.unknown_keys(raw, ("negative", "positive"), "emoticons.")
    for section, sign in (("negative", -1.0), ("positive", 1.0)):
        for smiley, weight in check.mapping(f"emoticons.{section}", raw.get(section)).items():
            key = f"emoticons.{section}.{smiley}"
            value = check.number(key, weight, 0.0, _MAX_WEIGHT)
            if not isinstance(smiley, str) or not 1 < len(smiley) <= 10 or " " in smiley:
                check.fail(key, "expected a smiley of 2 to 10 characters without spaces")
            elif value is not None:
                emoticons.append((smiley, sign * value))
    return emoji, tuple(emoticons)


def load_lexicon(directory: Path = DEFAULT_LEXICON_DIR) -> Lexicon:
    """Read {ru,en,pl}.yaml and emoji.yaml from `directory`; raise LexiconError listing
    every problem. At least one language file is needed; emoji.yaml is required."""
    problems: list[Problem] = []
    lemmatiser = Lemmatiser()
    if not directory.is_dir():
        raise LexiconError([(directory, "", "lexicon directory not found")])
    known = {f"{lang}.yaml" for lang in LANGUAGES} | {EMOJI_FILE}
    for path in sorted(directory.glob("*.y*ml")):
        if path.name not in known:
            problems.append(
                (path, "", f"unknown lexicon file; expected {', '.join(sorted(known))}")
            )
    languages: dict[str, LanguageLexicon] = {}
    for lang in LANGUAGES:
        path = directory / f"{lang}.yaml"
        if path.exists():
            loaded = _load_language(path, lang, lemmatiser, problems)
            if loaded is not None:
                languages[lang] = loaded
    if not any((directory / f"{lang}.yaml").exists() for lang in LANGUAGES):
        problems.append((directory, "", "no language file (ru.yaml, en.yaml or pl.yaml)"))
    emoji_path = directory / EMOJI_FILE
    if emoji_path.exists():
        emoji, emoticons = _load_emoji(emoji_path, problems)
    else:
        problems.append((emoji_path, "", "file not found"))
        emoji, emoticons = {}, ()
    if problems:
        raise LexiconError(problems)
    return Lexicon(languages=languages, emoji=emoji, emoticons=emoticons, directory=directory)


# --- classifying ----------------------------------------------------------------------------

_SENTENCE_BREAK_RE = re.compile(r"[.!?;…\n]")
_PAUSE_RE = re.compile(r"[,:()—–]|\s-\s")
_QUOTE_RE = re.compile(r"«[^«»\n]{1,60}»|“[^“”\n]{1,60}”|„[^„“”\n]{1,60}[“”]|\"[^\"\n]{1,60}\"")
_BURST_RE = re.compile(r"[!?]{2,}")
_SHOUT_MIN_WORDS = 3
_SHORT_WORD = 3  # words this short do not use up a negator's reach
_MODIFIER_REACH = 2
_LETTER_RE = re.compile(r"[^\W\d_]")


def _has_letters(text: str) -> bool:
    return _LETTER_RE.search(text) is not None


@dataclass(slots=True)
class _Token:
    surface: str  # case-folded, ё = е
    keys: tuple[str, ...]  # "=surface", lemmas, surface: what an entry token may equal
    sentence: int
    caps: bool
    emoji: bool
    quoted: bool
    pause_before: bool = False  # a comma, colon or dash right before this token


@dataclass(slots=True)
class _Hit:
    weight: float
    reason: str
    flippable: bool = False  # a positive word that sarcasm may turn


def _fmt(weight: float) -> str:
    return f"{weight:+.2f}"


class SentimentClassifier:
    """Classifies one text at a time; stateless after construction, safe to share."""

    def __init__(self, lexicon: Lexicon, lemmatiser: Lemmatiser | None = None) -> None:
        self._lexicon = lexicon
        self._lemmatiser = lemmatiser or Lemmatiser()

    @property
    def lexicon(self) -> Lexicon:
        return self._lexicon

    def classify(self, text: str, language: str | None = None) -> SentimentResult:
        """`language` is a hint ("ru", "en-GB"); without a known one the text decides."""
        text = unicodedata.normalize("NFC", text[:MAX_MENTION_TEXT])
        lang: str = primary_language(language) or ""
        if lang not in self._lexicon.languages:
            lang = detect_language(text)
            if lang not in self._lexicon.languages or not _has_letters(text):
                lang = self._lexicon.default_language
        lex = self._lexicon.languages[lang]
        tokens = self._tokens(text, lang)
        score, reasons = _Scorer(lex, self._lexicon, tokens, text).run()
        if score <= -lex.threshold:
            sentiment = Sentiment.NEGATIVE
        elif score >= lex.threshold:
            sentiment = Sentiment.POSITIVE
        else:
            sentiment = Sentiment.NEUTRAL
        return SentimentResult(sentiment, round(score, 3), lang, tuple(reasons[:_MAX_REASONS]))

    def _tokens(self, text: str, language: str) -> list[_Token]:
        quotes = [(m.start(), m.end()) for m in _QUOTE_RE.finditer(text)]
        tokens: list[_Token] = []
        sentence = 0
        previous_end = 0
        for match in iter_tokens(text):
            if _SENTENCE_BREAK_RE.search(text, previous_end, match.start()):
                sentence += 1
            pause = _PAUSE_RE.search(text, previous_end, match.start()) is not None
            previous_end = match.end()
            raw = match.group()
            quoted = any(a < match.start() < b for a, b in quotes)
            if match.group("emoji"):
                tokens.append(_Token(_normalise_emoji(raw), (), sentence, False, True, quoted))
                continue
            folded = fold(raw)
            lemmas = self._lemmatiser.lemmas(folded, language)
            keys = tuple(dict.fromkeys(("=" + folded, *lemmas, folded)))
            caps = len(raw) >= 3 and raw.isupper()
            tokens.append(_Token(folded, keys, sentence, caps, False, quoted, pause))
        return tokens


class _Scorer:
    """One pass over the tokens of one text."""

    def __init__(
        self, lex: LanguageLexicon, lexicon: Lexicon, tokens: list[_Token], text: str
    ) -> None:
        self.lex = lex
        self.rules = lex.rules
        self.lexicon = lexicon
        self.tokens = tokens
        self.text = text
        self.hits: list[_Hit] = []
        self.sarcasm = False
        words = [t for t in tokens if not t.emoji and len(t.surface) >= 3]
        caps = sum(t.caps for t in words)
        self.shouting = caps >= _SHOUT_MIN_WORDS and caps * 2 >= len(words)
        # Reach is counted in words longer than three letters: in "не сказать, что мы
        # довольны" the negator reaches "довольны" over "что" and "мы".
        self.content = [0]
        for t in tokens:
            self.content.append(self.content[-1] + (len(t.surface) > _SHORT_WORD))
        # Pending state, reset at each sentence: (position, reach) of a negator, a modifier.
        self.negation: tuple[int, int] | None = None
        self.modifier = 1.0
        self.modified: tuple[int, int] | None = None
        self.unnegated: list[tuple[int, Entry]] = []  # expected words seen, for "воды нет"

    def run(self) -> tuple[float, list[str]]:
        emoji_seen: Counter[str] = Counter()
        sentence = 0
        i = 0
        while i < len(self.tokens):
            token = self.tokens[i]
            if token.sentence != sentence:
                sentence = token.sentence
                self._reset()
            if token.emoji:
                self._emoji(token, emoji_seen)
                i += 1
                continue
            entry = self._match(i)
            role = self._role(token)
            if entry is not None and (len(entry.tokens) > 1 or role is None):
                self._apply(entry, i)
                i += len(entry.tokens)
                continue
            if entry is not None:
                self._apply(entry, i, negatable=False)  # "невозможно": a word and a negator
            if role == "negator":
                self._negator(token, i)
            elif role == "modifier":
                factor = next(self.lex.modifiers[k] for k in token.keys if k in self.lex.modifiers)
                if not self._reaches(self.modified, i):
                    self.modifier = 1.0  # an earlier modifier found nothing to modify
                self.modifier *= factor
                self.modified = (i, _MODIFIER_REACH)
            elif role == "contrast":
                for hit in self.hits:
                    hit.weight *= self.rules.contrast_before
            i += 1
        self._emoticons()
        return self._total()

    def _reset(self) -> None:
        self.negation = None
        self.modifier = 1.0
        self.modified = None
        self.unnegated.clear()

    def _reaches(self, source: tuple[int, int] | None, i: int) -> bool:
        if source is None:
            return False
        position, reach = source
        return position < i and self.content[i] - self.content[position + 1] < reach

    def _role(self, token: _Token) -> str | None:
        keys = token.keys
        if any(k in self.lex.negators for k in keys):
            return "negator"
        if any(k in self.lex.modifiers for k in keys):
            return "modifier"
        if any(k in self.lex.contrast for k in keys):
            return "contrast"
        return None

    def _match(self, i: int) -> Entry | None:
        """The longest entry starting at token i."""
        best: Entry | None = None
        for key in self.tokens[i].keys:
            for entry in self.lex.entries.get(key, ()):
                size = len(entry.tokens)
                if best is not None and size <= len(best.tokens):
                    break  # sorted longest first
                following = self.tokens[i + 1 : i + size]
                if len(following) == size - 1 and all(
                    not part.isdisjoint(token.keys)
                    for part, token in zip(entry.tokens[1:], following, strict=True)
                ):
                    best = entry
                    break
        return best

    def _negator(self, token: _Token, i: int) -> None:
        reach = max(self.lex.negators.get(k, 0) for k in token.keys)
        if any(k in self.lex.negators_after for k in token.keys):
            # "воды нет": the negator follows what is missing.
            for j, (position, entry) in reversed(list(enumerate(self.unnegated))):
                if position >= i - reach:
                    del self.unnegated[j]
                    self._hit(entry, position, entry.negated, "negated")
                    return
        following = self.tokens[i + 1] if i + 1 < len(self.tokens) else None
        if following is not None and not following.pause_before:
            # "туалетов нет, а урны переполнены": a negator that ends its clause reaches on.
            self.negation = (i, reach)

    def _apply(self, entry: Entry, i: int, negatable: bool = True) -> None:
        negated = negatable and not entry.shielded and self._reaches(self.negation, i)
        if entry.kind == "neutral":
            self.negation = None  # "не подскажете": the negator belongs to the phrase
            return
        if entry.kind == "expected" and not negated:
            self.unnegated.append((i, entry))
            return
        weight = entry.negated if negated else entry.weight
        if entry.kind == "sarcasm":
            self.sarcasm = True
        kind = "negated" if negated else entry.kind
        self._hit(entry, i, weight, kind)

    def _hit(self, entry: Entry, i: int, weight: float, kind: str) -> None:
        span = self.tokens[i : i + len(entry.tokens)]
        notes = []
        if self._reaches(self.modified, i) and self.modifier != 1.0:
            weight *= self.modifier
            notes.append(f"x{self.modifier:g}")
        if not self.shouting and any(t.caps for t in span):
            weight *= self.rules.caps
            notes.append("caps")
        if weight > 0 and entry.kind == "positive" and kind != "negated" and span[0].quoted:
            weight = -weight * self.rules.quoted_positive
            kind = "quoted"
            self.sarcasm = True  # praise in quotes mocks: «заботу», "great" service
        note = f" ({', '.join(notes)})" if notes else ""
        self.hits.append(_Hit(weight, f"{kind} «{entry.text}»{note}", flippable=weight > 0))
        self.negation = None
        self.modifier = 1.0
        self.modified = None

    def _emoji(self, token: _Token, seen: Counter[str]) -> None:
        weight = self.lexicon.emoji.get(token.surface)
        if weight is None and "\u200d" in token.surface:
            weight = self.lexicon.emoji.get(token.surface.split("\u200d")[0])  # 🤦‍♂️ is 🤦
        if weight is None:
            return
        seen[token.surface] += 1
        if seen[token.surface] <= _EMOJI_REPEATS:
            self.hits.append(_Hit(weight, f"emoji {token.surface}", flippable=weight > 0))

    def _emoticons(self) -> None:
        for smiley, weight in self.lexicon.emoticons:
            if smiley in self.text:
                self.hits.append(_Hit(weight, f"emoticon {smiley}", flippable=weight > 0))

    def _total(self) -> tuple[float, list[str]]:
        rules = self.rules
        extra: list[str] = []
        if self.sarcasm:
            for hit in self.hits:
                if hit.flippable and hit.weight > 0:
                    hit.weight = -hit.weight
                    hit.reason += " (sarcasm)"
        negative = sum(h.weight for h in self.hits if h.weight < 0)
        positive = sum(h.weight for h in self.hits if h.weight > 0)
        bursts = _BURST_RE.findall(self.text)
        if bursts:
            boost = negative * (rules.burst - 1)
            indignant = min(sum("?" in b for b in bursts), 2)
            base = -rules.burst_weight * indignant
            if boost or base:
                negative += boost + base
                extra.append(f"burst {bursts[0]} {_fmt(boost + base)}")
        if self.shouting:
            boost = negative * (rules.caps - 1)
            base = -rules.caps_weight if positive <= 0 else 0.0
            if boost or base:
                negative += boost + base
                extra.append(f"shouting {_fmt(boost + base)}")
        reasons = [f"{hit.reason} {_fmt(hit.weight)}" for hit in self.hits if hit.weight]
        return negative + positive, reasons + extra


def lexicon_dir(config: Config) -> Path:
    """The playbook's own lexicon when it has one, else the shipped default."""
    own = config.playbooks.path / "lexicon"
    return own if own.is_dir() else DEFAULT_LEXICON_DIR
