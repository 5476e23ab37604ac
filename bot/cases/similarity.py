"""Near-duplicate mentions: which texts tell the same complaint.

A text becomes a set of features: words folded to Latin letters (Cyrillic transliterated,
Polish spelled as it sounds, so "вода"/"woda" and "Мицкевича"/"Mickiewicza" meet), cut to a
stem of STEM letters, without function words; and its numbers (routes, houses) kept whole.
Two texts are similar when the share of the shorter one's features that the other has too
(the overlap coefficient) reaches the threshold, they share at least MIN_SHARED features, and
neither names a different street or a different number of the same thing (route 42 is not
route 43, house 5 is not house 7; waiting 40 minutes is no conflict with route 42). Not the
Jaccard index: people who report the same thing each add their own words (where they waited,
what it cost them, what they think of it), and those extras sank the Jaccard of two hundred
wordings of "the 42 did not come" to 0.16 on average, two hundred cases for one story; what
the shorter text says, the other one says too. Candidates are found by MinHash bands (BANDS
bands of ROWS hashes) and by the numbers a text names (a route, a house: anchors that
wordings keep), which the store keeps per mention as keyed hashes, so the look-up survives a
restart though texts are encrypted; only candidates are compared in full.

Honest limits: across languages only what survives translation joins, that is numbers, names
and shared roots (autobus/автобус, woda/вода, tramwaj/трамвай); words translated by meaning
("przystanek"/"остановка") do not meet, so a ru and a pl wording join only when enough of
those carry over.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

STEM = 4  # letters kept of a word: endings of ru and pl inflection differ after them
BANDS = 12
ROWS = 2  # a pair at Jaccard 0.4 shares a band with p = 1 - (1 - 0.4**2)**12 ≈ 0.88
PER_BAND = 8  # newest mentions per band compared with a new one (stored and in a batch)
MAX_ANCHORS = 3  # numbers looked up per text: a list of figures is not a route each
MIN_SHARED = 3  # two words in common ("улица Горная") are a place or a phrase, not a story
MIN_TOPIC = 1  # a word in common about what happened, besides where and when
MIN_FEATURES = 5  # shorter texts ("третий день нет отопления") do not say where: never joined

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_TRANSLIT = str.maketrans(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh",
        "з": "z", "и": "i", "й": "j", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o",
        "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "h", "ц": "c",
        "ч": "ch", "ш": "sh", "щ": "sh", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "ju",
        "я": "ja", "і": "i", "ї": "ji", "є": "je", "ą": "on", "ć": "ch", "ę": "en", "ł": "l",
        "ń": "n", "ó": "u", "ś": "sh", "ź": "zh", "ż": "zh",
    }
)  # fmt: skip
# Polish spelling to the sounds the transliteration above writes; order matters.
_POLISH = (
    ("ch", "h"),
    ("rz", "zh"),
    ("sz", "sh"),
    ("cz", "ch"),
    ("w", "v"),
    ("ie", "e"),
    ("au", "av"),
)
# Function words, and greetings and courtesies: they open complaints about anything.
_STOP = frozenset(
    """
    и в во на не ни но а что как это так уже еще ещё все всё вот же ли бы да нет у к ко с со
    из за по о об от до для при мы вы они он она оно я мне нас вас их его ее её там тут
    снова опять очень просто когда где кто
    i w we na nie ale a co jak to tak juz już jeszcze wszystko jest sa są by tak nas was ich
    jego jej tam tu znowu znów bardzo kiedy gdzie kto z ze do od dla przy po o u sie się
    the a an and or but not no is are was were be been it this that to of in on at for with
    from by as we you they he she i me my our again very still already when where who
    здравствуйте добрый доброе день утро вечер люди администрация пожалуйста спасибо
    dzień dobry witam ludzie proszę hi hello please thanks
    """.split()  # noqa: SIM905 (a word list reads better as text)
)


def _latin(word: str) -> str:
    word = word.casefold()
    for spelling, sound in _POLISH:
        word = word.replace(spelling, sound)
    word = word.translate(_TRANSLIT)
    return re.sub(r"(.)\1+", r"\1", word)  # "троллейбус" = "trolejbus"


# Words after which a street's name comes (ru, pl), and before which (en: "Mira street").
_STREET_BEFORE = frozenset(
    """
    улица улицы улице улицу улицей ул проспект проспекта проспекте переулок переулке бульвар
    бульваре шоссе площадь площади набережная набережной
    ulica ulicy ulicę ulice ul aleja alei alejach plac placu osiedle osiedlu
    """.split()  # noqa: SIM905
)
_STREET_AFTER = frozenset(("street", "st", "avenue", "ave", "road", "rd", "lane", "square"))
# Words that say which building and since when: shared by whatever happened there and then,
# so they count as features but not as what went wrong (Features.topic).
_WHERE_AND_WHEN = frozenset(
    """
    дом дома доме домом д кв квартира квартиры квартире подъезд подъезде подъезда корпус
    dom domu domie budynek budynku mieszkanie mieszkaniu klatka klatce
    house building flat apartment entrance block
    день дня дней дни неделю недели неделя неделе месяц месяца час часа часов минут сутки
    сегодня вчера утром вечером ночью третий третью третьи второй вторую четвёртый пятый
    dni dzień tydzień tygodnia tygodnie godzinę godziny godzin minut dzisiaj wczoraj trzeci
    day days week weeks hour hours minutes today yesterday third second
    """.split()  # noqa: SIM905
)


def _typed_in_a_hurry(words: frozenset[str]) -> frozenset[str]:
    """The words and their commonest typos (a letter dropped, doubled or swapped with the
    next), for words of five letters or more: "уилце" and "уллице" still name a street."""
    variants = set(words)
    for word in words:
        if len(word) < 5:
            continue
        for i in range(len(word)):
            variants.add(word[:i] + word[i + 1 :])
            variants.add(word[:i] + word[i] + word[i:])
            if i + 1 < len(word):
                variants.add(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
    return frozenset(variants)


_STREET_BEFORE_TYPED = _typed_in_a_hurry(_STREET_BEFORE)
_STREET_AFTER_TYPED = _typed_in_a_hurry(_STREET_AFTER)


@dataclass(frozen=True, slots=True)
class Features:
    words: frozenset[str]
    numbers: frozenset[str]
    # What a number counts: the words next to it ("автобус 42": avto). Two texts whose numbers
    # count the same thing and differ are about different things (route 42, route 43); "дом
    # 5" and "ждём 40 минут" are not.
    number_roles: frozenset[str] = frozenset()
    places: frozenset[str] = frozenset()  # streets named after "улица", "ulica", before "street"
    # What the text says went wrong: its words without places and names. Two texts about one
    # street and house share the place whatever happened there; they must share this too.
    topic: frozenset[str] = frozenset()
    # The streets and names it says (Садовой, Ленина, Mickiewicza): two texts that each name
    # places or names and share none are about different places.
    where: frozenset[str] = frozenset()
    all: frozenset[str] = field(init=False, compare=False)  # words and "#"-numbers

    def __post_init__(self) -> None:
        object.__setattr__(self, "all", self.words | {"#" + n for n in self.numbers})

    @property
    def usable(self) -> bool:
        return len(self.all) >= MIN_FEATURES


def _stem(folded: str) -> str | None:
    """A word's feature, or None for function words and one- and two-letter words."""
    if folded in _STOP or len(folded) < 3:
        return None
    latin = _latin(folded)
    return latin[:STEM] if latin and latin not in _STOP else None


def features(text: str) -> Features:
    opening = text[:4000]  # the opening says it
    found = list(_TOKEN.finditer(opening))
    tokens = [m.group().casefold() for m in found]
    stems = [None if t.isdigit() else _stem(t) for t in tokens]
    words: set[str] = set()
    numbers: set[str] = set()
    roles: set[str] = set()
    places: set[str] = set()
    names: set[str] = set()
    generic: set[str] = set()  # the building, the time
    for i, token in enumerate(tokens):
        if token.isdigit():
            numbers.add(token.lstrip("0") or "0")
            roles.update(_neighbours(stems, i))
            continue
        stem = stems[i]
        before, after = token in _STREET_BEFORE_TYPED, token in _STREET_AFTER_TYPED
        if stem is not None and not before and not after:
            words.add(stem)  # "улица" says nothing: any address has it; its name does
            if token in _WHERE_AND_WHEN:
                generic.add(stem)
            elif _named(opening, found[i]):
                names.add(stem)
        if before and i + 1 < len(tokens) and stems[i + 1]:
            places.add(stems[i + 1] or "")
        if after and i > 0 and stems[i - 1]:
            places.add(stems[i - 1] or "")
    topic = frozenset(words - places - names - generic)
    where = frozenset(places | names)
    return Features(
        frozenset(words), frozenset(numbers), frozenset(roles), frozenset(places), topic, where
    )


def _named(text: str, token: re.Match[str]) -> bool:
    """A capitalised word inside a sentence: a name (a street, a district, a firm), which
    says where or who, not what went wrong."""
    if not token.group()[0].isupper() or token.group().isupper():
        return False
    before = text[: token.start()].rstrip()
    return bool(before) and before[-1] not in '.!?:;\n"«(—-'


def _neighbours(stems: Sequence[str | None], at: int) -> Iterable[str]:
    """The nearest word on each side of a number, over one short word ("42-й автобус")."""
    for step in (-1, 1):
        for reach in (1, 2):
            j = at + step * reach
            if not 0 <= j < len(stems):
                break
            if stems[j] is not None:
                yield stems[j] or ""
                break


@functools.lru_cache(maxsize=4096)
def signature(text: str) -> tuple[Features, tuple[str, ...]]:
    """Features and bands of a text, remembered: bulk intake computes them in its worker
    thread (bot/intake/bulk.py), so grouping, on the event loop, finds them ready."""
    found = features(text)
    return found, tuple(bands(found))


def similarity(a: Features, b: Features) -> float:
    """The overlap coefficient of the features (shared / the smaller set's size); 0 when both
    name numbers that count the same thing and share none, or name streets and share none."""
    if a.numbers and b.numbers and not (a.numbers & b.numbers) and a.number_roles & b.number_roles:
        return 0.0
    if a.where and b.where and not (a.where & b.where):
        return 0.0
    left, right = a.all, b.all
    shared = len(left & right)
    if shared < MIN_SHARED or len(a.topic & b.topic) < MIN_TOPIC:
        return 0.0
    return shared / min(len(left), len(right))


def _seed(name: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest())


# Multiply-shift hashing modulo 2**64 (numpy wraps): one odd multiplier and an offset each.
_A = np.array([_seed(b"a%d" % i) | 1 for i in range(BANDS * ROWS)], dtype=np.uint64)
_B = np.array([_seed(b"b%d" % i) for i in range(BANDS * ROWS)], dtype=np.uint64)


def bands(found: Features) -> list[str]:
    """The MinHash bands of these features and one band per number it names (MAX_ANCHORS at
    most), as plain strings (the store keys and hashes them); none for texts too short to join.
    MinHash finds texts alike as a whole; a number finds the wordings of one route or house
    that share little else, which the overlap coefficient may still join."""
    if not found.usable:
        return []
    values = np.array([_seed(f.encode()) for f in found.all], dtype=np.uint64)
    mins = ((values[:, None] * _A + _B) >> np.uint64(32)).min(axis=0).tolist()
    minhash = [
        f"{band}:" + ".".join(str(m) for m in mins[band * ROWS : (band + 1) * ROWS])
        for band in range(BANDS)
    ]
    return minhash + [f"#{number}" for number in sorted(found.numbers)[:MAX_ANCHORS]]


def representative(texts: Sequence[Features]) -> int:
    """Index of the most central text (highest summed similarity to the others)."""
    best, score = 0, -1.0
    for i, one in enumerate(texts):
        total = sum(similarity(one, other) for j, other in enumerate(texts) if j != i)
        if total > score:
            best, score = i, total
    return best


def any_similar(found: Features, others: Iterable[Features], threshold: float) -> bool:
    return any(similarity(found, other) >= threshold for other in others)
