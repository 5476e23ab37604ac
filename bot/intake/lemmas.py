"""Words, lemmas and language guesses for Russian, English and Polish.

Russian goes through pymorphy3's dictionary; English and Polish get a light suffix stemmer:
enough to make "delays"/"delayed" or "działa"/"działają" meet one lexicon entry, not a
linguistic analysis. Everything here is cached and total: any string in, a string out.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pymorphy3 import MorphAnalyzer

__all__ = [
    "LANGUAGES",
    "TOKEN_RE",
    "Language",
    "Lemmatiser",
    "detect_language",
    "fold",
    "is_emoji",
    "iter_tokens",
    "primary_language",
    "words",
]

Language = Literal["ru", "en", "pl"]
LANGUAGES: tuple[Language, ...] = ("ru", "en", "pl")

# A word: letters of any script, joined by inner hyphens or apostrophes ("из-за", "don't").
_WORD = r"[^\W\d_]+(?:[-'’][^\W\d_]+)*"
# Emoji with their variation selector, skin tone and ZWJ sequences (🤦‍♂️ is one token).
_EMOJI_BASE = r"[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u2300-\u23FF]"
_EMOJI_MOD = r"[\uFE0F\U0001F3FB-\U0001F3FF]*"
_EMOJI = rf"{_EMOJI_BASE}{_EMOJI_MOD}(?:\u200D{_EMOJI_BASE}{_EMOJI_MOD})*"
TOKEN_RE = re.compile(rf"(?P<emoji>{_EMOJI})|(?P<word>{_WORD})")
_EMOJI_RE = re.compile(_EMOJI)


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_CYRILLIC_RE = re.compile(r"[\u0400-\u04FF]")
_LATIN_RE = re.compile(r"[A-Za-z\u00C0-\u024F]")
_POLISH_LETTERS = frozenset("ąćęłńóśźż")
# Frequent words of one language and not the other; "i", "a", "to", "no" are in both.
_POLISH_STOPWORDS = _wordset(
    "w z na nie się że jest są jak ale czy dla od już jeszcze bardzo tak przez ten ta co "
    "kiedy gdzie dlaczego proszę dzień dobry mamy nas nam oraz lub też po był była było "
    "tylko może być bo jeśli tego tej ich jego nic nikt brak ma mnie mi pan pani"
)
_ENGLISH_STOPWORDS = _wordset(
    "the and is are of in on for it this that not was were with be have has you we our my "
    "why when where please thank thanks there their they what who will would been from at "
    "by an your its since still again very"
)
_POLISH_CLUSTERS_RE = re.compile(r"sz|cz|rz|dz|prz|wy|ow[aey]|[bcdfghjklmnprstwz]y\b")
_ENGLISH_CLUSTERS_RE = re.compile(r"th|sh|wh|ck|ing\b|ee|ea|oo|ou|tion|\bthe\b")

# pymorphy3 sees garbage as unknown words and guesses; past this length it is not a word.
_MAX_WORD = 64


def iter_tokens(text: str) -> Iterator[re.Match[str]]:
    """Word and emoji matches with their offsets; the `emoji` group is set for emoji."""
    return TOKEN_RE.finditer(text)


def words(text: str) -> list[str]:
    """Words (letters of any script, inner hyphens and apostrophes) and emoji, in order.

    Case is kept: callers that care about shouting need it. Text is NFC-normalised first so
    a decomposed "й" stays one letter.
    """
    return [m.group() for m in iter_tokens(unicodedata.normalize("NFC", text))]


def is_emoji(token: str) -> bool:
    return _EMOJI_RE.fullmatch(token) is not None


def primary_language(language: str | None) -> Language | None:
    """'ru-RU' -> 'ru'; None or a language without a lemmatiser -> None."""
    if not language:
        return None
    primary = language.strip().split("-")[0].split("_")[0].casefold()
    return primary if primary in LANGUAGES else None


def detect_language(text: str, default: Language = "ru") -> Language:
    """Russian, English or Polish by script, Polish letters and frequent words.

    Text without letters (emoji only, numbers) gets `default`.
    """
    cyrillic = len(_CYRILLIC_RE.findall(text))
    latin = len(_LATIN_RE.findall(text))
    if cyrillic == 0 and latin == 0:
        return default
    if cyrillic >= latin:
        return "ru"
    folded = text.casefold()
    if any(ch in _POLISH_LETTERS for ch in folded):
        return "pl"
    tokens = re.findall(r"[a-z']+", folded)
    polish = sum(t in _POLISH_STOPWORDS for t in tokens)
    english = sum(t in _ENGLISH_STOPWORDS for t in tokens)
    if polish != english:
        return "pl" if polish > english else "en"
    # Short texts without function words ("Brak wody"): letter clusters decide.
    polish_clusters = len(_POLISH_CLUSTERS_RE.findall(folded))
    english_clusters = len(_ENGLISH_CLUSTERS_RE.findall(folded))
    return "pl" if polish_clusters > english_clusters else "en"


def fold(word: str) -> str:
    """Case-fold; ё = е, as routing does (people write both); ’ = '."""
    return word.casefold().replace("ё", "е").replace("’", "'")


# --- Russian --------------------------------------------------------------------------------

_analyser: MorphAnalyzer | None = None
_analyser_lock = threading.Lock()


def _morph() -> MorphAnalyzer:
    # Building the analyser loads the dictionaries: do it once, on first use.
    global _analyser
    if _analyser is None:
        with _analyser_lock:
            if _analyser is None:
                from pymorphy3 import MorphAnalyzer

                _analyser = MorphAnalyzer()
    return _analyser


@lru_cache(maxsize=200_000)
def _ru_lemmas(word: str) -> tuple[str, ...]:
    """Distinct normal forms, most likely first: "ямы" is both "ям" and "яма"."""
    forms: dict[str, None] = {}
    for parse in _morph().parse(word):
        forms.setdefault(fold(parse.normal_form), None)
    return tuple(forms) or (word,)


# --- English and Polish: light suffix stripping ---------------------------------------------

_EN_RULES: tuple[tuple[str, str], ...] = (
    ("sses", "ss"),
    ("ies", "y"),
    ("ied", "y"),
    ("edly", ""),
    ("ably", "abl"),  # "terribly" meets "terrible" at "terribl"
    ("ibly", "ibl"),
    ("ing", ""),
    ("ed", ""),
    ("ly", ""),
    ("es", ""),
    ("s", ""),
)
_EN_KEEP_S = ("ss", "us", "is")  # "glass", "bus", "crisis" are not plurals
_EN_NO_UNDOUBLE = frozenset("lsz")  # "called" -> "call", not "cal"


@lru_cache(maxsize=50_000)
def _en_stem(word: str) -> str:
    if len(word) <= 3 or "'" in word:
        return word
    stem = word
    for suffix, replacement in _EN_RULES:
        if not word.endswith(suffix):
            continue
        if suffix == "s" and word.endswith(_EN_KEEP_S):
            break
        candidate = word[: -len(suffix)] + replacement
        # "reply" is not "rep"+"ly", "thing" is not "th"+"ing".
        if len(candidate) >= (4 if suffix == "ly" else 3):
            stem = candidate
            if suffix in ("ing", "ed") and (
                len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in _EN_NO_UNDOUBLE
            ):
                stem = stem[:-1]  # "stopped" -> "stop"
        break
    # A final silent e goes, so "close", "closed", "closes" and "closing" meet at "clos".
    if len(stem) > 3 and stem.endswith("e") and not stem.endswith("ee"):
        stem = stem[:-1]
    return stem


# Nouns and adjectives, then verbs; tried longest first. Single letters need the shortest
# stem guard below.
_PL_SUFFIXES: tuple[str, ...] = tuple(
    sorted(
        _wordset(
            "ami ach owi ów om em ie iu ia ii ego emu ej ych ymi ym ich imi im iego iemu "
            "ość ości ością ościach "
            "ają ała ało ały ali ał am asz amy acie uje ują ujesz ujemy ujecie ował owała owało "
            "owali owały ować ać ić yć eć ił iła iło ili iły ią isz imy icie emy ecie esz "
            "a e i o u y ę ą"
        ),
        key=len,
        reverse=True,
    )
)


@lru_cache(maxsize=50_000)
def _pl_stem(word: str) -> str:
    for suffix in _PL_SUFFIXES:
        # Longer endings need a longer stem: "działa" is "dział"+"a", not "dzi"+"ała".
        if word.endswith(suffix) and len(word) - len(suffix) >= (3 if len(suffix) == 1 else 4):
            return word[: -len(suffix)]
    return word


# --- the public face ------------------------------------------------------------------------


def _is_word(word: str) -> bool:
    return 0 < len(word) <= _MAX_WORD and all(ch.isalpha() or ch in "-'" for ch in word)


def _language_of_word(word: str, language: Language | None) -> Language:
    if _CYRILLIC_RE.search(word):
        return "ru"  # a Cyrillic word is Russian whatever the text's language
    if language in ("en", "pl"):
        return language
    return "pl" if any(ch in _POLISH_LETTERS for ch in word) else "en"


class Lemmatiser:
    """Lemmas for lexicon matching and keyword routing. Cheap to create; caches are shared.

    `lemma` fits `bot.intake.routing.Stemmer` (one argument, any string) and is safe on anything:
    emoji, digits, empty strings and mixed scripts come back case-folded and unchanged.
    """

    def lemma(self, word: str, language: str | None = None) -> str:
        return self.lemmas(word, language)[0]

    def lemmas(self, word: str, language: str | None = None) -> tuple[str, ...]:
        """Every plausible lemma, likeliest first (Russian is ambiguous: "стали")."""
        folded = fold(word)
        if not _is_word(folded):
            return (folded,)
        lang = _language_of_word(folded, primary_language(language))
        if lang == "ru":
            if _LATIN_RE.search(folded):
                return (folded,)  # mixed scripts: a typo or a code, not a dictionary word
            return _ru_lemmas(folded)
        return (_en_stem(folded) if lang == "en" else _pl_stem(folded),)

    def entry_lemmas(self, word: str, language: str | None = None) -> tuple[str, ...]:
        """What a lexicon entry written as `word` matches: all its lemmas, the word first
        when it is a lemma itself. "переполненный" also stands for "переполнить", since
        "переполнены" has only that lemma."""
        lemmas = self.lemmas(word, language)
        folded = fold(word)
        return lemmas if folded not in lemmas else (folded, *(x for x in lemmas if x != folded))

    def words(self, text: str) -> list[str]:
        return words(text)

    def detect_language(self, text: str, default: Language = "ru") -> Language:
        return detect_language(text, default)
