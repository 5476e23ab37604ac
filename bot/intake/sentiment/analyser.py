"""Sentiment of a mention from lexicons and a few rules, for Russian, English and Polish.

Not a language model: a press office needs to know why the bot called a mention negative,
and to fix it by editing a YAML file. Every result carries its reasons.

A text is cut into words and emoji; each word meets lexicon entries by its lemma. Entries
add their weights; negators ("не", "not", "nie") flip the next weighted word, intensifiers
multiply it, "expected" words ("работать", "вода") count only when negated ("не работает",
"нет воды"), sarcasm markers and quoted praise turn positive words negative, and bursts of
"?!" or text in capitals amplify the negative part. score <= -threshold is negative.
The lexicons themselves are read and checked by lexicon.py.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from bot.intake.lemmas import (
    Lemmatiser,
    detect_language,
    fold,
    iter_tokens,
    primary_language,
)
from bot.intake.sentiment.lexicon import Entry, LanguageLexicon, Lexicon, normalise_emoji
from bot.model import MAX_MENTION_TEXT, Sentiment

__all__ = ["SentimentClassifier", "SentimentResult"]

_MAX_REASONS = 20
_KEYS_CACHE_LIMIT = 100_000
_EMOJI_REPEATS = 2  # a row of ten 😡 counts as two


@dataclass(frozen=True, slots=True)
class SentimentResult:
    sentiment: Sentiment
    score: float  # sum of weights: <= -threshold negative, >= +threshold positive
    language: str
    reasons: tuple[str, ...] = field(default=())


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
    """Classifies one text at a time; its only state is a cache of words seen, safe to share."""

    def __init__(self, lexicon: Lexicon, lemmatiser: Lemmatiser | None = None) -> None:
        self._lexicon = lexicon
        self._lemmatiser = lemmatiser or Lemmatiser()
        # A word's folded form and lookup keys, per language: words repeat from text to text.
        self._keys: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}

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

    def _word_keys(self, raw: str, language: str) -> tuple[str, tuple[str, ...]]:
        folded = fold(raw)
        lemmas = self._lemmatiser.lemmas(folded, language)
        known = (folded, tuple(dict.fromkeys(("=" + folded, *lemmas, folded))))
        if len(self._keys) >= _KEYS_CACHE_LIMIT:
            self._keys.clear()  # bounded on a stream of unseen words
        self._keys[raw, language] = known
        return known

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
                tokens.append(_Token(normalise_emoji(raw), (), sentence, False, True, quoted))
                continue
            known = self._keys.get((raw, language))
            if known is None:
                known = self._word_keys(raw, language)
            folded, keys = known
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
        keys = token.keys  # isdisjoint: the test runs in C, once per word of every text
        if not self.lex.negators.keys().isdisjoint(keys):
            return "negator"
        if not self.lex.modifiers.keys().isdisjoint(keys):
            return "modifier"
        if not self.lex.contrast.isdisjoint(keys):
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
