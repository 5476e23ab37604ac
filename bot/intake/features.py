"""What the learned models see of a mention: hashed character and word n-grams.

Both learned models (sentiment, bot/intake/sentiment/model.py, and the department router,
bot/intake/router.py) read the same features, so one pass over a text serves both. Hashing
keeps the models' size fixed whatever the vocabulary and needs no dictionary at run time:
a feature is crc32 of its n-gram, folded into `HASH_BITS` bits. The n-grams themselves can
be named again from a text's words, so a decision can be explained ("«опять»", "«не при»").

Pure Python and zlib (C), with the n-grams of each word and the index of each n-gram cached:
a mention of a few hundred characters takes tens of microseconds.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass

HASH_BITS = 18
DIMENSION = 1 << HASH_BITS
_MASK = DIMENSION - 1
# Chosen by cross-validation on the sentiment corpus: (3, 4, 5) fitted worse and ran slower.
CHAR_NGRAMS = (4, 5)
MAX_CHARS = 2_000  # the opening of a long text carries its tone; the rest only costs time

_WORD_RE = re.compile(r"[^\W\d_]+|\d+", re.UNICODE)
_REPEAT_RE = re.compile(r"(.)\1{2,}")  # "оооочень" and "!!!!!" count as two


@dataclass(frozen=True, slots=True)
class Features:
    """A text's features: parallel tuples of hashed index and weight. The n-grams themselves
    (`names`, for explanations) are worked out again from the words only when asked."""

    indexes: tuple[int, ...]
    values: tuple[float, ...]
    tokens: tuple[str, ...] = ()  # the normalised words
    extra: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The n-gram behind each index, parallel to `indexes` (the first one of the text
        when two share an index)."""
        named: dict[int, str] = {}
        for name in _names(self.tokens, self.extra):
            named.setdefault(_index_of(name), name)
        return tuple(named.get(i, "?") for i in self.indexes)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text[:MAX_CHARS]).lower().replace("ё", "е")
    return _REPEAT_RE.sub(r"\1\1", text)


def words(text: str) -> list[str]:
    """Words of a normalised text; numbers become one token so "12" and "47" look alike."""
    return ["0" if w.isdigit() else w for w in _WORD_RE.findall(text)]


def extract(text: str, extra: tuple[str, ...] = ()) -> Features:
    """Features of one text. `extra` adds named signals (e.g. the lexicon's cues) as tokens.

    Word unigrams and bigrams ("w:", "b:"), character n-grams inside word boundaries ("c:"),
    each counted, log-scaled and L2-normalised so a long text weighs no more than a short one.
    N-grams that share an index are counted together (the hashing trick).
    """
    tokens = words(normalise(text))
    found = [_index_of("w:" + w) for w in tokens]
    found += [_index_of(f"b:{a} {b}") for a, b in itertools.pairwise(tokens)]
    cached = _GRAMS.get
    for token in tokens:
        grams = cached(token)
        found += grams if grams is not None else _char_grams(token)
    found += [_index_of("x:" + signal) for signal in extra]
    counts = Counter(found)  # counted in C, in order of first occurrence
    log = math.log
    values = [1.0 + log(count) if count > 1 else 1.0 for count in counts.values()]
    scale = 1.0 / (math.sqrt(sum(map(operator.mul, values, values))) or 1.0)
    return Features(tuple(counts), tuple([v * scale for v in values]), tuple(tokens), extra)


def _names(tokens: tuple[str, ...], extra: tuple[str, ...]) -> list[str]:
    """Every n-gram of a text in extract's order."""
    names = ["w:" + w for w in tokens]
    names += [f"b:{a} {b}" for a, b in itertools.pairwise(tokens)]
    for token in tokens:
        names += _char_names(token)
    names += ["x:" + signal for signal in extra]
    return names


# Caches: words and n-grams repeat from text to text, so each word is cut and each n-gram
# hashed once. They are emptied when full, which keeps memory bounded on unseen words.
_CACHE_LIMIT = 200_000
_GRAMS: dict[str, tuple[int, ...]] = {}  # a word: the indexes of its character n-grams
_INDEXES: dict[str, int] = {}


def _char_names(token: str) -> list[str]:
    padded = f" {token} "
    return [
        "c:" + padded[i : i + n]
        for n in CHAR_NGRAMS
        if len(padded) >= n
        for i in range(len(padded) - n + 1)
    ]


def _char_grams(token: str) -> tuple[int, ...]:
    grams = tuple(_index_of(name) for name in _char_names(token))
    if len(_GRAMS) >= _CACHE_LIMIT:
        _GRAMS.clear()
    _GRAMS[token] = grams
    return grams


def _index_of(name: str) -> int:
    index = _INDEXES.get(name)
    if index is None:
        index = zlib.crc32(name.encode()) & _MASK
        if len(_INDEXES) >= _CACHE_LIMIT:
            _INDEXES.clear()
        _INDEXES[name] = index
    return index


def readable(name: str) -> str:
    """A feature's name as staff read it in an explanation: «word», «two words», «fragm»."""
    kind, _, body = name.partition(":")
    if kind == "x":
        return body
    return f"«{body.strip()}»"
