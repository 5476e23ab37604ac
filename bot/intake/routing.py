"""Routing: which department owns a mention, how urgent it is, which codes its case gets.

The rules are data (routing.yaml, read by bot.settings.routing_rules); this module applies
them to a mention's text, source, codes, author labels and language. Next: bot/intake/intake.py
acts on the decision.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache

from bot.intake.features import extract
from bot.intake.router import DepartmentRouter
from bot.model import AuthorLabel, Priority
from bot.settings.playbook import Playbook
from bot.settings.routing_rules import WORD_RE, RoutingConfig, RoutingRule

__all__ = [
    "Condition",
    "RouteBasis",
    "RouteDecision",
    "RuleCheck",
    "Stemmer",
    "alarm_words",
    "check_rules",
    "consult_router",
    "normalise_word",
    "route",
]

Stemmer = Callable[[str], str]  # word (already case-folded) -> stem; applied to text and keywords


def normalise_word(word: str) -> str:
    """Case-fold and treat ё as е: people write both."""
    return word.casefold().replace("ё", "е")


def _no_stem(word: str) -> str:
    # Until a lemmatiser is plugged in, keywords are written as stems ("отоплен") and match
    # any word they begin.
    return word


@lru_cache(maxsize=8192)
def _phrase(keyword: str, stem: Stemmer) -> tuple[str, ...]:
    return tuple(stem(normalise_word(w)) for w in WORD_RE.findall(keyword))


# Every mention repeats the common words: a look-up costs far less than lemmatising.
@lru_cache(maxsize=65_536)
def _stemmed(word: str, stem: Stemmer) -> tuple[str, tuple[str, ...]]:
    """A word as written -> its stem, and every beginning of the stem."""
    token = stem(normalise_word(word))
    return token, tuple(token[:n] for n in range(1, len(token) + 1))


# Inside a phrase, parts this short match whole words only: as prefixes, "в" and "с" would
# begin half the words of Russian ("в суд" must not match "вот судя").
_WHOLE_WORD_MAX = 2


class _Words:
    """The words of a text, indexed so a prefix look-up is a binary search."""

    def __init__(self, words: list[str], stem: Stemmer) -> None:
        """`words`: the text's words as written (WORD_RE)."""
        stemmed = [_stemmed(word, stem) for word in words]
        self.tokens = [token for token, _ in stemmed]
        self._sorted = sorted(set(self.tokens))
        # Every beginning of every word: most keywords begin none, and a set look-up says so
        # before any search (routing tries a few hundred keywords per mention).
        self.beginnings: set[str] = set().union(*(prefixes for _, prefixes in stemmed))
        self._where: dict[str, list[int]] | None = None

    @property
    def _positions(self) -> dict[str, list[int]]:
        """Where each word stands; only phrases and short parts need it, so on demand."""
        if self._where is None:
            self._where = {}
            for i, token in enumerate(self.tokens):
                self._where.setdefault(token, []).append(i)
        return self._where

    def _starting_with(self, prefix: str) -> Iterator[str]:
        i = bisect.bisect_left(self._sorted, prefix)
        while i < len(self._sorted) and self._sorted[i].startswith(prefix):
            yield self._sorted[i]
            i += 1

    def has(self, phrase: Sequence[str]) -> bool:
        """Consecutive words beginning with the phrase's parts, in order."""
        if not phrase or phrase[0] not in self.beginnings:
            return False
        first, rest = phrase[0], phrase[1:]
        if not rest:
            return next(self._starting_with(first), None) is not None
        whole = [len(part) <= _WHOLE_WORD_MAX for part in phrase]
        firsts: Iterable[str] = (
            ([first] if first in self._positions else [])
            if whole[0]
            else self._starting_with(first)
        )
        for token in firsts:
            for pos in self._positions[token]:
                following = self.tokens[pos + 1 : pos + 1 + len(rest)]
                if len(following) == len(rest) and all(
                    word == part if exact else word.startswith(part)
                    for word, part, exact in zip(following, rest, whole[1:], strict=True)
                ):
                    return True
        return False

    def has_parts(self, phrase: Sequence[str]) -> bool:
        """Every part of the phrase begins some word (whole words for the short parts), in
        any order or place: a phrase that is almost there."""
        return bool(phrase) and all(
            (part in self._positions)
            if len(part) <= _WHOLE_WORD_MAX
            else next(self._starting_with(part), None) is not None
            for part in phrase
        )


class _Text:
    """A text's words as written and, with a lemmatiser, as lemmas. A keyword matches when it
    begins a word as written ("отоплен" → "отопления") or when its lemma begins a word's
    lemma ("пришёл" → "пришли": both "прийти"), so stems and whole words both work."""

    def __init__(self, text: str, stem: Stemmer | None) -> None:
        self._stem = stem
        written = WORD_RE.findall(text)
        self._raw = _Words(written, _no_stem)
        self._lemmas = _Words(written, stem) if stem is not None else None

    @property
    def raw_beginnings(self) -> set[str]:
        return self._raw.beginnings

    @property
    def lemma_beginnings(self) -> set[str] | None:
        return self._lemmas.beginnings if self._lemmas is not None else None

    def has_phrases(self, phrases: _Phrases) -> bool:
        """Whether the text has any of the keywords, worked out beforehand (_phrases, with
        this text's stem): a keyword's words in order, as written or as lemmas."""
        lemmas = self._lemmas
        # Most rules share no first word with a text: one set operation in C says so.
        if phrases.raw_firsts.isdisjoint(self._raw.beginnings) and (
            lemmas is None or phrases.lemma_firsts.isdisjoint(lemmas.beginnings)
        ):
            return False
        for raw, lemma in phrases.pairs:
            if self._raw.has(raw) or (lemmas is not None and lemma and lemmas.has(lemma)):
                return True
        return False

    def found(self, keywords: tuple[str, ...]) -> tuple[str, ...]:
        """The keywords the text has, as has_phrases matches them (for explanations)."""
        phrases = _phrases(keywords, self._stem)
        lemmas = self._lemmas
        return tuple(
            k
            for k, (raw, lemma) in zip(keywords, phrases.pairs, strict=True)
            if self._raw.has(raw) or (lemmas is not None and lemma and lemmas.has(lemma))
        )

    def scattered(self, keywords: tuple[str, ...]) -> tuple[str, ...]:
        """Phrases of two or more words whose every word is in the text, but not together
        in order ("горяч вод" in "вода не горячая"): what an editor may have meant."""
        phrases = _phrases(keywords, self._stem)
        lemmas = self._lemmas
        return tuple(
            k
            for k, (raw, lemma) in zip(keywords, phrases.pairs, strict=True)
            if len(raw) > 1
            and (
                self._raw.has_parts(raw)
                or (lemmas is not None and bool(lemma) and lemmas.has_parts(lemma))
            )
        )


@dataclass(frozen=True, slots=True)
class _Phrases:
    pairs: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]  # (as written, as lemmas)
    raw_firsts: frozenset[str]
    lemma_firsts: frozenset[str]


@lru_cache(maxsize=1024)
def _phrases(keywords: tuple[str, ...], stem: Stemmer | None) -> _Phrases:
    """A rule's keywords as written and as lemmas, worked out once per rule, not per mention."""
    pairs = tuple(
        (_phrase(k, _no_stem), _phrase(k, stem) if stem is not None else ()) for k in keywords
    )
    return _Phrases(
        pairs,
        frozenset(raw[0] for raw, _ in pairs if raw),
        frozenset(lemma[0] for _, lemma in pairs if lemma),
    )


class RouteBasis(StrEnum):
    """How the department was decided."""

    RULE = "rule"  # a routing rule claimed the mention
    LEARNED = "learned"  # no rule did; the learned router was sure enough
    DEFAULT = "default"  # neither: the playbook's default department (coordination)
    CITIZEN = "citizen"  # no rule did; the author chose it (the web form's department)


@dataclass(frozen=True, slots=True)
class RouteDecision:
    rule_id: str | None  # None: no rule matched
    department: str
    priority: Priority
    sla_policy: str | None  # a rule's override; None: Playbook.sla_policy_for decides
    codes: tuple[str, ...]  # the mention's codes followed by the rule's, without repeats
    urgent: bool = False  # an urgent or critical word: make a case whatever the sentiment
    basis: RouteBasis = RouteBasis.DEFAULT
    confidence: float | None = None  # the learned router's, when it was asked
    signals: tuple[str, ...] = ()  # what made the router choose, readable n-grams


def _source_matches(source: str, wanted: Iterable[str]) -> bool:
    return any(source == w or source.startswith(w + ":") for w in wanted)


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    """A rule's match as route checks it, its sets and keyword phrases worked out once per
    playbook (and stem), not once per rule per mention."""

    rule: RoutingRule
    empty: bool
    sources: tuple[str, ...]
    codes: frozenset[str]  # case-folded
    labels: frozenset[AuthorLabel]
    languages: frozenset[str]  # case-folded
    text: bool  # keywords or regex
    phrases: _Phrases
    patterns: tuple[re.Pattern[str], ...]

    @classmethod
    def of(cls, rule: RoutingRule, stem: Stemmer | None) -> _CompiledRule:
        match = rule.match
        return cls(
            rule,
            match.is_empty,
            tuple(match.sources),
            frozenset(c.casefold() for c in match.codes),
            frozenset(match.author_labels),
            frozenset(lang.casefold() for lang in match.languages),
            bool(match.keywords or match.regex),
            _phrases(match.keywords, stem),
            match.patterns,
        )

    def matches(
        self,
        text: str,
        words: _Text,
        source: str,
        codes: set[str],
        labels: set[AuthorLabel],
        primary: str,  # the language's primary subtag, case-folded
    ) -> bool:
        if self.empty:
            return False
        if self.sources and not _source_matches(source, self.sources):
            return False
        if self.codes and self.codes.isdisjoint(codes):
            return False
        if self.labels and self.labels.isdisjoint(labels):
            return False
        if self.languages and primary not in self.languages:
            return False
        if self.text:
            # Within the text criteria, any keyword or any pattern is enough.
            found = words.has_phrases(self.phrases) or any(p.search(text) for p in self.patterns)
            if not found:
                return False
        return True


@dataclass(frozen=True, slots=True)
class _RuleBook:
    rules: tuple[_CompiledRule, ...]
    critical: _Phrases
    urgent: _Phrases
    # Rules whose text criterion no text can fail without a look (regex, or none), and,
    # by the first word of each keyword phrase (as written, as lemmas), the rest: a text
    # whose words begin none of a rule's first words cannot match it.
    always: frozenset[int]
    by_raw: dict[str, frozenset[int]]
    by_lemma: dict[str, frozenset[int]]

    @classmethod
    def of(cls, config: RoutingConfig, stem: Stemmer | None) -> _RuleBook:
        rules = tuple(_CompiledRule.of(rule, stem) for rule in config.rules)
        always = {i for i, r in enumerate(rules) if not r.empty and (r.patterns or not r.text)}
        by_raw: dict[str, set[int]] = {}
        by_lemma: dict[str, set[int]] = {}
        for i, r in enumerate(rules):
            if r.empty or i in always:
                continue
            for first in r.phrases.raw_firsts:
                by_raw.setdefault(first, set()).add(i)
            for first in r.phrases.lemma_firsts:
                by_lemma.setdefault(first, set()).add(i)
        return cls(
            rules,
            _phrases(config.critical_words, stem),
            _phrases(config.urgent_words, stem),
            frozenset(always),
            {k: frozenset(v) for k, v in by_raw.items()},
            {k: frozenset(v) for k, v in by_lemma.items()},
        )

    def candidates(self, words: _Text) -> list[_CompiledRule]:
        """The rules that may match the text, in the playbook's order."""
        picked = set(self.always)
        for first in words.raw_beginnings.intersection(self.by_raw):
            picked |= self.by_raw[first]
        lemmas = words.lemma_beginnings
        if lemmas is not None:
            for first in lemmas.intersection(self.by_lemma):
                picked |= self.by_lemma[first]
        return [self.rules[i] for i in sorted(picked)]


# Playbooks are immutable once read: their rules, compiled, per (rules, stem). Checked by
# identity, so a reloaded playbook compiles anew; a few playbooks at most live at once.
_BOOKS: dict[tuple[int, Stemmer | None], tuple[RoutingConfig, _RuleBook]] = {}
_BOOKS_KEPT = 16


def _rule_book(config: RoutingConfig, stem: Stemmer | None) -> _RuleBook:
    key = (id(config), stem)
    found = _BOOKS.get(key)
    if found is not None and found[0] is config:
        return found[1]
    book = _RuleBook.of(config, stem)
    if len(_BOOKS) >= _BOOKS_KEPT:
        _BOOKS.clear()
    _BOOKS[key] = (config, book)
    return book


@dataclass(frozen=True, slots=True)
class Condition:
    """One non-empty criterion of a rule's match, checked against a mention."""

    name: str  # "keywords" (keywords and regex together), "sources", "codes", ...
    met: bool
    found: tuple[str, ...] = ()  # what satisfied it: keywords, patterns, codes, labels
    near: tuple[str, ...] = ()  # keyword phrases whose words are all there, apart


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """A rule against a mention. `matched`: every criterion met (the first such rule in
    order decides; later ones are shadowed). `almost`: exactly one criterion failed and
    either another one was met, or the failing one is the keywords with a phrase whose
    words are all in the text but apart. A rule with a single criterion that fails is
    neither: it has nothing to do with the mention."""

    rule_id: str
    department: str
    conditions: tuple[Condition, ...]

    @property
    def matched(self) -> bool:
        return bool(self.conditions) and all(c.met for c in self.conditions)

    @property
    def almost(self) -> bool:
        failed = [c for c in self.conditions if not c.met]
        if len(failed) != 1:
            return False
        return len(self.conditions) > 1 or bool(failed[0].near)


def check_rules(
    playbook: Playbook,
    text: str,
    source: str,
    codes: Iterable[str] = (),
    author_labels: Iterable[AuthorLabel] = (),
    language: str | None = None,
    *,
    stem: Stemmer | None = None,
) -> list[RuleCheck]:
    """Every rule, criterion by criterion, as `route` would match it: for a dry run of the
    playbook (`otklik route`). Slower than `route`, which stops at the first match."""
    words = _Text(text, stem)
    folded_codes = {c.casefold() for c in codes}
    labels = set(author_labels)
    primary = (language or "").split("-")[0].casefold()
    checks = []
    for rule in playbook.routing.rules:
        match = rule.match
        conditions: list[Condition] = []
        if match.sources:
            hit = tuple(w for w in match.sources if _source_matches(source, [w]))
            conditions.append(Condition("sources", bool(hit), hit))
        if match.codes:
            hit = tuple(c for c in match.codes if c.casefold() in folded_codes)
            conditions.append(Condition("codes", bool(hit), hit))
        if match.author_labels:
            hit = tuple(str(a) for a in match.author_labels if a in labels)
            conditions.append(Condition("author_labels", bool(hit), hit))
        if match.languages:
            hit = tuple(x for x in match.languages if x.casefold() == primary)
            conditions.append(Condition("languages", bool(hit), hit))
        if match.keywords or match.regex:
            hit = words.found(match.keywords) + tuple(
                p.pattern for p in match.patterns if p.search(text)
            )
            near = () if hit else words.scattered(match.keywords)
            conditions.append(Condition("keywords", bool(hit), hit, near))
        checks.append(RuleCheck(rule.id, rule.department, tuple(conditions)))
    return checks


def alarm_words(
    playbook: Playbook, text: str, *, stem: Stemmer | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The playbook's critical and urgent words the text has, as `route` finds them."""
    words = _Text(text, stem)
    routing = playbook.routing
    return words.found(routing.critical_words), words.found(routing.urgent_words)


def _higher(a: Priority, b: Priority) -> Priority:
    return a if a.rank >= b.rank else b


def route(
    playbook: Playbook,
    text: str,
    source: str,
    codes: Iterable[str] = (),
    author_labels: Iterable[AuthorLabel] = (),
    language: str | None = None,
    *,
    stem: Stemmer | None = None,
) -> RouteDecision:
    """Which department owns a mention, how urgent it is, and which codes the case gets.

    Pure: the same playbook and input always give the same decision. `stem` plugs in a
    stemmer or lemmatiser; without one, keywords match word prefixes. A mention no rule
    claims goes to the default; `consult_router` may then send it elsewhere.
    """
    codes = tuple(codes)
    words = _Text(text, stem)
    folded_codes = {c.casefold() for c in codes}
    labels = set(author_labels)
    config = playbook.routing
    book = _rule_book(config, stem)
    primary = (language or "").split("-")[0].casefold()
    rule = None
    for compiled in book.candidates(words):
        if compiled.matches(text, words, source, folded_codes, labels, primary):
            rule = compiled.rule
            break
    department = rule.department if rule else config.default.department
    priority = (rule.priority if rule else None) or config.default.priority
    sla_policy = rule.sla_policy if rule else config.default.sla_policy
    critical = words.has_phrases(book.critical)
    urgent = critical or words.has_phrases(book.urgent)
    if critical:
        priority = Priority.CRITICAL
    elif urgent:
        priority = _higher(priority, config.urgent_priority)
    return RouteDecision(
        rule_id=rule.id if rule else None,
        department=department,
        priority=priority,
        sla_policy=sla_policy,
        codes=tuple(dict.fromkeys((*codes, *(rule.codes if rule else ())))),
        urgent=urgent,
        basis=RouteBasis.RULE if rule else RouteBasis.DEFAULT,
    )


def consult_router(
    playbook: Playbook,
    decision: RouteDecision,
    text: str,
    router: DepartmentRouter,
    *,
    explain: bool = True,
) -> RouteDecision:
    """Rules first, then the learned router: a mention no rule claimed (or only a catch-all
    rule listed in `learned.overrides`) goes to the department the router (restricted to the
    configured departments) names when it is at least `learned.min_confidence` sure;
    otherwise the decision stands. A rule's claim gives way only when the router names
    another department at least `learned.overrule_confidence` sure. The rule's codes and
    priority stay. Separate from `route` so intake asks the model only for mentions that
    open a case. Without `explain` the decision carries no signals (intake stores none:
    naming them costs more than the choice itself)."""
    settings = playbook.routing.learned
    if not settings.enabled:
        return decision
    unclaimed = decision.basis is RouteBasis.DEFAULT or decision.rule_id in settings.overrides
    if not unclaimed and settings.overrule_confidence is None:
        return decision
    choice = router.choose(extract(text), explain=explain)
    if unclaimed:
        sure = choice.confidence >= settings.min_confidence
    else:
        assert settings.overrule_confidence is not None
        sure = (
            choice.department != decision.department
            and choice.confidence >= settings.overrule_confidence
        )
        if not sure:  # the rule stands, and its card says nothing of the model
            return decision
    if not sure:
        return replace(decision, confidence=choice.confidence, signals=choice.signals)
    # The default's (or a catch-all's) SLA policy is the coordination centre's: the chosen
    # department's own (sla.yaml by_department) applies instead. An overruled rule's stays.
    moved = unclaimed and choice.department != decision.department
    return replace(
        decision,
        department=choice.department,
        sla_policy=None if moved else decision.sla_policy,
        basis=RouteBasis.LEARNED,
        confidence=choice.confidence,
        signals=choice.signals,
    )
