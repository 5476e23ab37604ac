"""What the learned models see of a mention: hashed character and word n-grams.

Both learned models (sentiment, bot/intake/sentiment/model.py, and the department router,
bot/intake/router.py) read the same features, so one pass over a text serves both. Hashing
keeps the models' size fixed whatever the vocabulary and needs no dictionary at run time:
a feature is crc32 of its n-gram, folded into `HASH_BITS` bits. The n-grams themselves are
kept beside their indexes, so a decision can be explained in words ("«опять»", "«не при»").

Pure Python and zlib (C): a mention of a few hundred characters takes tens of microseconds.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
import zlib
from collections import Counter
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
    norm = normalise(text)
    tokens = words(norm)
    counts: Counter[str] = Counter()
    counts.update("w:" + w for w in tokens)
    counts.update(f"b:{a} {b}" for a, b in itertools.pairwise(tokens))
    for token in tokens:
        padded = f" {token} "
        for n in CHAR_NGRAMS:
            if len(padded) >= n:
                counts.update("c:" + padded[i : i + n] for i in range(len(padded) - n + 1))
    counts.update("x:" + signal for signal in extra)
    return _hashed(counts)


def _hashed(counts: Counter[str]) -> Features:
    by_index: dict[int, float] = {}
    names: dict[int, str] = {}
    for name, count in counts.items():
        index = zlib.crc32(name.encode()) & _MASK
        by_index[index] = by_index.get(index, 0.0) + 1.0 + math.log(count)
        names.setdefault(index, name)
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
