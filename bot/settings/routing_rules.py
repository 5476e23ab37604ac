"""routing.yaml: the rules that send a mention to a department, as data.

bot/intake/routing.py applies them to a mention; playbook.py loads the file.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cached_property
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from bot.model import AuthorLabel, Priority
from bot.settings.fields import Id, OneOrMoreLocales, PositiveDuration, StrictModel, Text

__all__ = [
    "REGEX_FLAGS",
    "WORD_RE",
    "AuthorLabelsConfig",
    "GroupingConfig",
    "Keyword",
    "LearnedRouting",
    "Match",
    "Regex",
    "RoutingConfig",
    "RoutingDefault",
    "RoutingRule",
]

WORD_RE = re.compile(r"\w+")


def _check_keyword(value: str) -> str:
    value = value.strip()
    if not WORD_RE.search(value):
        raise ValueError(f"keyword {value!r} contains no letters or digits")
    return value


REGEX_FLAGS = re.IGNORECASE  # `(?-i:...)` in a pattern makes a part case-sensitive again


def _check_regex(value: str) -> str:
    try:
        re.compile(value, REGEX_FLAGS)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from exc
    return value


Keyword = Annotated[str, AfterValidator(_check_keyword)]
Regex = Annotated[str, AfterValidator(_check_regex)]


class Match(StrictModel):
    """A rule matches when every non-empty criterion matches; within keywords and regex,
    any one entry is enough."""

    keywords: tuple[Keyword, ...] = ()  # word prefixes, case-insensitive; "горяч вод" = a phrase
    regex: tuple[Regex, ...] = ()  # Python regular expressions, case-insensitive
    sources: tuple[Text, ...] = ()  # "vk" also matches "vk:press"
    codes: tuple[Text, ...] = ()  # any of these codes on the mention, case-insensitive
    author_labels: tuple[AuthorLabel, ...] = ()
    languages: tuple[Text, ...] = ()  # "ru", "en", "pl"

    @property
    def is_empty(self) -> bool:
        return not (
            self.keywords
            or self.regex
            or self.sources
            or self.codes
            or self.author_labels
            or self.languages
        )

    @cached_property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        return tuple(re.compile(p, REGEX_FLAGS) for p in self.regex)


class RoutingRule(StrictModel):
    id: Id
    department: Id
    priority: Priority | None = None  # None: the default priority
    sla_policy: Id | None = None  # None: by_department / by_priority in sla.yaml
    codes: tuple[Text, ...] = ()  # added to the case
    match: Match


class RoutingDefault(StrictModel):
    """Where a mention no rule claims goes: normally the coordination centre."""

    department: Id
    priority: Priority = Priority.NORMAL
    sla_policy: Id | None = None


class LearnedRouting(StrictModel):
    """The learned router (bot/intake/router.py) for mentions no rule claims: it may send one
    to a department instead of the default when it is at least this sure."""

    enabled: bool = True
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.5
    # Catch-all rules (e.g. "English and Polish to coordination") that claim a mention for
    # want of a subject: the router may still send their mentions to a department.
    overrides: tuple[Id, ...] = ()
    # A rule's keywords can be wrong ("отоплен" sends a school's heating to housing): a router
    # at least this sure of another department overrules the rule. None: rules always win.
    overrule_confidence: Annotated[float, Field(ge=0, le=1)] | None = None


class GroupingConfig(StrictModel):
    """When a new mention joins an open case instead of opening its own."""

    # The same author about the same subject (department) within this time.
    same_author_within: PositiveDuration = timedelta(hours=12)
    # Near-identical texts (bot/cases/similarity.py) in one department within this time join
    # one case; None: texts never join.
    similar_within: PositiveDuration | None = None
    # Share of the shorter text's word stems and numbers found in the other (the overlap
    # coefficient) from which they are "the same"; 0.4 joins rewordings of one complaint and
    # keeps apart different problems of one street.
    similar_threshold: Annotated[float, Field(gt=0, le=1)] = 0.4


class AuthorLabelsConfig(StrictModel):
    """Thresholds of the labels an author card shows."""

    critic_negative_count: Annotated[int, Field(ge=1)] = 5  # negative mentions …
    critic_window: PositiveDuration = timedelta(days=30)  # … within this time
    leader_min_reach: Annotated[int, Field(ge=1)] = 10_000  # audience of one mention
    leader_positive_share: Annotated[float, Field(gt=0, le=1)] = 0.6  # mostly positive


Probability = Annotated[float, Field(ge=0, le=1)]


class TriageConfig(StrictModel):
    """The sentiment model's band: p_negative >= negative_from makes a case, >= uncertain_from
    puts the mention before a person, anything lower is not negative."""

    negative_from: Probability = 0.41
    uncertain_from: Probability = 0.19
    # The model file, relative to the playbook directory; None: the playbook's
    # models/sentiment.npz, else the shipped one. No file: the lexicon alone decides.
    model: Text | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TriageConfig:
        if self.uncertain_from > self.negative_from:
            raise ValueError("uncertain_from must not be above negative_from")
        return self


class RoutingConfig(StrictModel):
    grouping: GroupingConfig = GroupingConfig()
    author_labels: AuthorLabelsConfig = AuthorLabelsConfig()
    triage: TriageConfig = TriageConfig()
    rules: tuple[RoutingRule, ...] = ()  # first match wins
    default: RoutingDefault
    learned: LearnedRouting = LearnedRouting()  # between the rules and the default
    # Words that make a case even when the sentiment is not negative, and raise its priority.
    urgent_words: tuple[Keyword, ...] = ()
    urgent_priority: Priority = Priority.HIGH
    critical_words: tuple[Keyword, ...] = ()  # like urgent_words, but straight to critical
    # What digests, reports and crisis notices call a code: heating → «Отопление».
    code_titles: dict[Text, OneOrMoreLocales] = {}

    @model_validator(mode="after")
    def _overrides_name_rules(self) -> RoutingConfig:
        known = {rule.id for rule in self.rules}
        unknown = [rule_id for rule_id in self.learned.overrides if rule_id not in known]
        if unknown:
            raise ValueError(f"learned.overrides names no rule: {', '.join(unknown)}")
        return self
