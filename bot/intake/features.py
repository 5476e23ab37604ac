"""What the learned models see of a mention: hashed character and word n-grams.

Both learned models (sentiment, bot/intake/sentiment/model.py, and the department router,
bot/intake/router.py) read the same features, so one pass over a text serves both. Hashing
keeps the models' size fixed whatever the vocabulary and needs no dictionary at run time:
a feature is crc32 of its n-gram, folded into `HASH_BITS` bits. The n-grams themselves are
kept beside their indexes, so a decision can be explained in words ("«опять»", "«не при»").

Pure Python and zlib (C), with the n-grams of each word and the index of each n-gram cached:
a mention of a few hundred characters takes tens of microseconds.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
import zlib
from dataclasses import dataclass

HASH_BITS = 18
DIMENSION = 1 << HASH_BITS
_MASK = DIMENSION - 1
CHAR_NGRAMS = (3, 4, 5)
MAX_CHARS = 2_000  # the opening of a long text carries its tone; the rest only costs time

_WORD_RE = re.compile(r"[^\W\d_]+|\d+", re.UNICODE)
_REPEAT_RE = re.compile(r"(.)\1{2,}")  # "оооочень" and "!!!!!" count as two


@dataclass(frozen=True, slots=True)
class Features:
    """A text's features: parallel tuples of hashed index, weight and the n-gram itself."""

    indexes: tuple[int, ...]
    values: tuple[float, ...]
    names: tuple[str, ...]


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
    """
    tokens = words(normalise(text))
    counts: dict[str, int] = {}
    seen = counts.get
    for name in ["w:" + w for w in tokens]:
        counts[name] = seen(name, 0) + 1
    for name in [f"b:{a} {b}" for a, b in itertools.pairwise(tokens)]:
        counts[name] = seen(name, 0) + 1
    for token in tokens:
        grams = _GRAMS.get(token)
        if grams is None:
            grams = _char_grams(token)
        for name in grams:
            counts[name] = seen(name, 0) + 1
    for signal in extra:
        name = "x:" + signal
        counts[name] = seen(name, 0) + 1
    return _hashed(counts)


# Caches: words and n-grams repeat from text to text, so each is cut and hashed once. They
# are emptied when full, which keeps memory bounded on a stream of unseen words.
_CACHE_LIMIT = 200_000
_GRAMS: dict[str, tuple[str, ...]] = {}
_INDEXES: dict[str, int] = {}


def _char_grams(token: str) -> tuple[str, ...]:
    padded = f" {token} "
    grams = tuple(
        "c:" + padded[i : i + n]
        for n in CHAR_NGRAMS
        if len(padded) >= n
        for i in range(len(padded) - n + 1)
    )
    if len(_GRAMS) >= _CACHE_LIMIT:
        _GRAMS.clear()
    _GRAMS[token] = grams
    return grams


def _index(name: str) -> int:
    index = zlib.crc32(name.encode()) & _MASK
    if len(_INDEXES) >= _CACHE_LIMIT:
        _INDEXES.clear()
    _INDEXES[name] = index
    return index


def _hashed(counts: dict[str, int]) -> Features:
    by_index: dict[int, float] = {}
    names: dict[int, str] = {}
    known = _INDEXES.get
    log = math.log
    for name, count in counts.items():
        index = known(name)
        if index is None:
            index = _index(name)
        weight = 1.0 + log(count) if count > 1 else 1.0
        if index in by_index:
            by_index[index] += weight
        else:
            by_index[index] = weight
            names[index] = name
    norm = math.sqrt(sum(v * v for v in by_index.values())) or 1.0
    indexes = tuple(by_index)
    return Features(
        indexes, tuple(by_index[i] / norm for i in indexes), tuple(names[i] for i in indexes)
    )


def readable(name: str) -> str:
    """A feature's name as staff read it in an explanation: «word», «two words», «fragm»."""
    kind, _, body = name.partition(":")
    if kind == "x":
        return body
    return f"«{body.strip()}»"
