"""Sentiment lexicons: the words, weights and rules an administrator edits, per language.

{ru,en,pl}.yaml and emoji.yaml in the playbook's `lexicon/` directory (or the shipped
default) are read and checked once; every mistake is reported as `file: key.path: message`.
Next: analyser.py scores a text against the loaded Lexicon.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from bot.intake.lemmas import LANGUAGES, Language, Lemmatiser, fold, is_emoji
from bot.settings.config import Config
from bot.settings.errors import Problem, SettingsError, closest
from bot.settings.yamlfile import StrictLoader, YamlError, read_yaml
from playbooks import PLAYBOOKS_DIR

__all__ = [
    "DEFAULT_LEXICON_DIR",
    "EMOJI_FILE",
    "Entry",
    "LanguageLexicon",
    "Lexicon",
    "LexiconError",
    "Rules",
    "lexicon_dir",
    "load_lexicon",
    "normalise_emoji",
]

# bot/ and playbooks/ sit side by side in a checkout and in a wheel alike.
DEFAULT_LEXICON_DIR = PLAYBOOKS_DIR / "default" / "lexicon"
EMOJI_FILE = "emoji.yaml"
_MAX_WEIGHT = 10.0

EntryKind = Literal["negative", "positive", "expected", "neutral", "sarcasm"]


class LexiconError(SettingsError):
    """The lexicon cannot be used; `problems` lists every (file, key path, message)."""


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


# --- loading --------------------------------------------------------------------------------


class _LexiconLoader(StrictLoader):
    """Also reads yes/no/on/off as words: the English negator `no` must not become False."""


_LexiconLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read(path: Path, check: _Checker) -> tuple[bool, Any]:
    """(read, data): the file's content, or False after reporting why it cannot be read."""
    try:
        return True, read_yaml(path, _LexiconLoader)
    except YamlError as exc:
        check.problems.extend(exc.problems)
    except (OSError, UnicodeDecodeError) as exc:
        check.fail("", str(exc))
    return False, None


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


def normalise_emoji(token: str) -> str:
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
                close = closest(str(key), known)
                hint = f"; did you mean {close!r}?" if close else f"; known: {', '.join(known)}"
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
    read, data = _read(path, check)
    if not read:
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
    read, data = _read(path, check)
    if not read:
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
            norm = normalise_emoji(symbol.strip())
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


def lexicon_dir(config: Config) -> Path:
    """The playbook's own lexicon when it has one, else the shipped default."""
    own = config.playbooks.path / "lexicon"
    return own if own.is_dir() else DEFAULT_LEXICON_DIR
