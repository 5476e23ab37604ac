"""Playbooks: the rules an administrator edits, as data: routing, SLA, reply templates,
escalation chains and crisis thresholds.

A playbook is a directory of YAML files validated once at start-up. Every mistake is reported
as `file: field.path: message`, all at once, so the administrator fixes the files in one pass;
a bad playbook stops the bot rather than misrouting cases at three in the morning.
"""

from __future__ import annotations

import bisect
import difflib
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    model_validator,
)

from bot.model import Action, AuthorLabel, Priority
from bot.settings.yamlfile import StrictLoader
from playbooks import PLAYBOOKS_DIR

__all__ = [
    "ALWAYS_OPEN",
    "DEFAULT_PLAYBOOK_DIR",
    "LOCALES",
    "PLAYBOOK_FILES",
    "REPLY_VARIABLES",
    "CalendarSpec",
    "ChecklistOwner",
    "CrisisConfig",
    "CrisisStep",
    "CrisisThreshold",
    "Duration",
    "EscalationChain",
    "EscalationConfig",
    "EscalationStep",
    "LocalizedText",
    "Match",
    "NotifyTarget",
    "Playbook",
    "PlaybookError",
    "PositiveDuration",
    "PriorityPolicies",
    "Problem",
    "Reminder",
    "ReplyTemplate",
    "RouteDecision",
    "RoutingConfig",
    "RoutingDefault",
    "RoutingRule",
    "SlaConfig",
    "SlaPolicy",
    "Stemmer",
    "TemplateKind",
    "TemplatesConfig",
    "ThresholdScope",
    "TimeRange",
    "Weekday",
    "WorkCalendar",
    "YamlError",
    "format_duration",
    "load_playbook",
    "normalise_word",
    "parse_duration",
    "parse_ical_dates",
    "read_yaml",
    "route",
]

PLAYBOOK_FILES = ("routing.yaml", "sla.yaml", "templates.yaml", "escalation.yaml", "crisis.yaml")
# bot/ and playbooks/ are installed side by side, in a checkout and in a wheel alike.
DEFAULT_PLAYBOOK_DIR = PLAYBOOKS_DIR / "default"
ALWAYS_OPEN = "24x7"  # the built-in calendar: every minute counts
LOCALES = ("ru", "en")

# Variables a reply template may use; all are plain text, replies are not HTML.
REPLY_VARIABLES: dict[str, str] = {
    "author_name": "the author's display name, may be empty",
    "department_name": "the owning department's name from the config",
    "case_id": "the case number",
    "org_name": "the organisation's name from the config",
    "mention_url": "link to the mention, may be none",
}

Problem = tuple[Path, str, str]  # (file, field path, message)


class PlaybookError(Exception):
    """The playbook cannot be used. `problems` lists every (file, field path, message)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(
            f"{file}: {field}: {message}" if field else f"{file}: {message}"
            for file, field, message in self.problems
        )


# --- YAML -----------------------------------------------------------------------------------


class YamlError(Exception):
    """A YAML file that cannot be read; the message carries the line and column."""


def read_yaml(path: Path) -> Any:
    """Parse one YAML file; raises YamlError (with line and column) or OSError."""
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.load(text, Loader=StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        problem = exc.problem or exc.context or "syntax error"
        if mark is None:
            raise YamlError(f"invalid YAML: {problem}") from exc
        raise YamlError(
            f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
        ) from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"invalid YAML: {exc}") from exc


# --- reusable field types -------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DURATION_RE = re.compile(r"(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")
_MAX_DURATION = timedelta(days=366)  # anything longer is a typo, not an SLA


def parse_duration(value: object) -> timedelta:
    """'45m', '4h', '1h30m', '3d', '90s' -> timedelta. Units in the order d, h, m, s."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        # Bare numbers are ambiguous (seconds? minutes?), so they are refused.
        raise ValueError(
            f"expected a duration like '45m', '4h', '1h30m', '3d' or '90s', got {value!r}"
        )
    match = _DURATION_RE.fullmatch(value.strip().replace(" ", ""))
    if not value.strip() or match is None or not any(match.groupdict().values()):
        raise ValueError(
            f"invalid duration {value!r}: use whole numbers with units d, h, m, s in that "
            "order, like '45m', '1h30m' or '3d'"
        )
    parts = {unit: int(amount or 0) for unit, amount in match.groupdict().items()}
    if any(amount > 10_000_000 for amount in parts.values()):
        raise ValueError(f"duration {value!r} is longer than {_MAX_DURATION.days} days")
    result = timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])
    if result > _MAX_DURATION:
        raise ValueError(f"duration {value!r} is longer than {_MAX_DURATION.days} days")
    return result


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration: timedelta(minutes=90) -> '1h30m'."""
    seconds = int(value.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    text = "".join(
        f"{amount}{unit}"
        for amount, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s"))
        if amount
    )
    return sign + (text or "0m")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


def _check_id(value: str) -> str:
    if not _ID_RE.match(value):
        raise ValueError(
            f"invalid name {value!r}: use 1-32 lowercase Latin letters, digits, '_' or '-'"
        )
    return value


def _strip_nonempty(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


# Ids end up in callback data (64 bytes in Telegram), hence short and ASCII.
Id = Annotated[str, AfterValidator(_check_id)]
Text = Annotated[str, AfterValidator(_strip_nonempty)]

_WORD_RE = re.compile(r"\w+")


def _check_keyword(value: str) -> str:
    value = value.strip()
    if not _WORD_RE.search(value):
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


def _parse_date(value: object) -> object:
    # pydantic would read a bare integer as a Unix timestamp; a holiday is always a date.
    if isinstance(value, datetime) or not isinstance(value, date | str):
        raise ValueError(f"expected a date like 2026-01-01, got {value!r}")
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"expected a date like 2026-01-01, got {value!r}") from None
    return value


Day = Annotated[date, BeforeValidator(_parse_date)]


class LocalizedText(_Model):
    ru: Text
    en: Text

    def get(self, locale: str) -> str:
        if locale not in LOCALES:
            raise KeyError(f"unknown locale {locale!r}; playbooks carry {', '.join(LOCALES)}")
        return str(getattr(self, locale))


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @classmethod
    def of(cls, day: date) -> Weekday:
        return _WEEKDAYS[day.weekday()]


_WEEKDAYS = tuple(Weekday)
_TIME_RANGE_RE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_MINUTES_PER_DAY = 24 * 60


class TimeRange(_Model):
    """A span within one day, [start, end), in minutes after midnight. Written '09:00-13:00';
    the end may be '24:00'."""

    start: int = Field(ge=0, le=_MINUTES_PER_DAY)
    end: int = Field(ge=0, le=_MINUTES_PER_DAY)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        if isinstance(value, dict | TimeRange):
            return value  # constructed in code: TimeRange(start=540, end=780)
        hint = "expected a time range like '09:00-13:00'"
        if not isinstance(value, str):
            # YAML 1.1 reads an unquoted 13:45 as the number 825 (base 60).
            raise ValueError(f"{hint} in quotes, got {value!r}")
        match = _TIME_RANGE_RE.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"{hint}, got {value!r}")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"{value!r} is not a valid time of day")
        return {"start": h1 * 60 + m1, "end": h2 * 60 + m2}

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end <= self.start:
            raise ValueError(f"{self} ends before it starts (ranges cannot cross midnight)")
        return self

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"

    def contains(self, moment: time) -> bool:
        minute = moment.hour * 60 + moment.minute
        return self.start <= minute < self.end


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _no_overlap(ranges: tuple[TimeRange, ...]) -> tuple[TimeRange, ...]:
    ordered = tuple(sorted(ranges, key=lambda r: r.start))
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:
            raise ValueError(f"time ranges {before} and {after} overlap")
    return ordered


DayHours = Annotated[tuple[TimeRange, ...], AfterValidator(_no_overlap)]


# --- routing.yaml ---------------------------------------------------------------------------


class Match(_Model):
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


class RoutingRule(_Model):
    id: Id
    department: Id
    priority: Priority | None = None  # None: the default priority
    sla_policy: Id | None = None  # None: by_department / by_priority in sla.yaml
    codes: tuple[Text, ...] = ()  # added to the case
    match: Match


class RoutingDefault(_Model):
    """Where a mention no rule claims goes: normally the coordination centre."""

    department: Id
    priority: Priority = Priority.NORMAL
    sla_policy: Id | None = None


class GroupingConfig(_Model):
    """When a new mention joins an open case instead of opening its own."""

    # The same author about the same subject (department) within this time.
    same_author_within: PositiveDuration = timedelta(hours=12)


class AuthorLabelsConfig(_Model):
    """Thresholds of the labels an author card shows."""

    critic_negative_count: Annotated[int, Field(ge=1)] = 5  # negative mentions …
    critic_window: PositiveDuration = timedelta(days=30)  # … within this time
    leader_min_reach: Annotated[int, Field(ge=1)] = 10_000  # audience of one mention
    leader_positive_share: Annotated[float, Field(gt=0, le=1)] = 0.6  # mostly positive


class RoutingConfig(_Model):
    grouping: GroupingConfig = GroupingConfig()
    author_labels: AuthorLabelsConfig = AuthorLabelsConfig()
    rules: tuple[RoutingRule, ...] = ()  # first match wins
    default: RoutingDefault
    # Words that make a case even when the sentiment is not negative, and raise its priority.
    urgent_words: tuple[Keyword, ...] = ()
    urgent_priority: Priority = Priority.HIGH
    critical_words: tuple[Keyword, ...] = ()  # like urgent_words, but straight to critical


# --- sla.yaml -------------------------------------------------------------------------------


def _check_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use names like 'Europe/Moscow')") from None
    return value


class CalendarSpec(_Model):
    timezone: Annotated[str | None, AfterValidator(_check_timezone)] = None  # None: org's
    hours: dict[Weekday, DayHours] = Field(default_factory=dict)  # a missing day is a day off
    holidays: tuple[Day, ...] = ()
    holidays_ical: str | None = None  # an .ics file next to sla.yaml, all-day VEVENTs


class WorkCalendar(_Model):
    """A calendar ready for SLA arithmetic: listed and iCal holidays merged."""

    name: str
    timezone: str | None = None  # None: the organisation's time zone from the config
    hours: dict[Weekday, tuple[TimeRange, ...]] = Field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    always_open: bool = False

    def zone(self, default: ZoneInfo) -> ZoneInfo:
        return ZoneInfo(self.timezone) if self.timezone else default

    def hours_on(self, day: date) -> tuple[TimeRange, ...]:
        """Open spans of a local date, in order; empty on days off and holidays."""
        if self.always_open:
            return (_WHOLE_DAY,)
        if day in self.holidays:
            return ()
        return self.hours.get(Weekday.of(day), ())

    def is_open(self, moment: datetime, default: ZoneInfo) -> bool:
        local = moment.astimezone(self.zone(default))
        return any(r.contains(local.time()) for r in self.hours_on(local.date()))


_WHOLE_DAY = TimeRange(start=0, end=_MINUTES_PER_DAY)
_ALWAYS_OPEN_CALENDAR = WorkCalendar(name=ALWAYS_OPEN, always_open=True)


class Reminder(_Model):
    """When to remind about a coming deadline: a share of the allowed time ('80%') or an
    offset before the deadline ('-15m')."""

    fraction: float | None = Field(default=None, gt=0, lt=1)
    before: PositiveDuration | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        if isinstance(value, dict | Reminder):
            return value
        hint = "expected a share of the time like '80%' or an offset before the deadline, '-15m'"
        if not isinstance(value, str):
            raise ValueError(f"{hint}, got {value!r}")
        text = value.strip()
        if text.endswith("%"):
            try:
                percent = float(text[:-1])
            except ValueError:
                raise ValueError(f"{hint}, got {value!r}") from None
            if not 0 < percent < 100:
                raise ValueError(f"{value!r}: a reminder must come between 0% and 100%")
            return {"fraction": percent / 100}
        if text.startswith("-"):
            return {"before": text[1:]}
        raise ValueError(f"{hint}, got {value!r}")

    @model_validator(mode="after")
    def _one_kind(self) -> Reminder:
        if (self.fraction is None) == (self.before is None):
            raise ValueError("give either fraction or before")
        return self

    def elapsed(self, allowed: timedelta) -> timedelta | None:
        """How long after the clock starts the reminder fires; None if it would fire at once."""
        if self.fraction is not None:
            at = allowed * self.fraction
        else:
            assert self.before is not None
            at = allowed - self.before
        return at if at > timedelta(0) else None

    def __str__(self) -> str:
        if self.fraction is not None:
            return f"{self.fraction * 100:g}%"
        assert self.before is not None
        return f"-{format_duration(self.before)}"


class SlaPolicy(_Model):
    """Deadlines count working time on `calendar`: '4h' on a working calendar means four
    open hours, so a mention at 17:30 on Friday is due on Monday."""

    calendar: Id
    first_touch: PositiveDuration = timedelta(minutes=60)  # a first human reply in the thread
    answer: PositiveDuration  # a full answer published
    resolution: PositiveDuration  # the problem solved and the result shown
    reminders: tuple[Reminder, ...] = ()
    escalation_chain: Id | None = None  # None: breaches are shown, nobody is chased
    pause_while_waiting_for_author: bool = True
    # After "moved to private" (and "still open"): when to ask to show the result in public.
    follow_up_after: PositiveDuration = timedelta(days=2)


class PriorityPolicies(_Model):
    critical: Id
    high: Id
    normal: Id
    low: Id

    def get(self, priority: Priority) -> str:
        return str(getattr(self, priority.value))


class SlaConfig(_Model):
    calendars: dict[Id, CalendarSpec] = Field(default_factory=dict)
    policies: dict[Id, SlaPolicy] = Field(min_length=1)
    by_priority: PriorityPolicies
    by_department: dict[Id, dict[Priority, Id]] = Field(default_factory=dict)


# --- templates.yaml -------------------------------------------------------------------------


class TemplateKind(StrEnum):
    FIRST_TOUCH = "first_touch"  # calm the thread, ask for details in private
    MOVE_TO_PRIVATE = "move_to_private"  # "we wrote to you in private"
    FOLLOW_UP = "follow_up"  # come back to the thread: "was the problem solved?"
    REFUTATION = "refutation"
    APOLOGY = "apology"
    HOLDING_STATEMENT = "holding_statement"  # the first word in a crisis
    THANKS = "thanks"


class ReplyTemplate(_Model):
    """A reply a specialist can start from. `text` is Jinja2 over REPLY_VARIABLES."""

    id: Id
    kind: TemplateKind
    pre_approved: bool = False  # may be published without a second pair of eyes
    departments: tuple[Id, ...] = ()  # empty: every department
    title: LocalizedText  # the button / picker label
    text: LocalizedText
    follow_up_after: PositiveDuration | None = None  # when the bot asks to show the result

    def render(
        self,
        locale: str,
        *,
        author_name: str,
        department_name: str,
        case_id: int,
        org_name: str,
        mention_url: str | None = None,
    ) -> str:
        """The reply text, plain (social networks get no HTML)."""
        return (
            _compile_reply(self.text.get(locale))
            .render(
                author_name=author_name,
                department_name=department_name,
                case_id=case_id,
                org_name=org_name,
                mention_url=mention_url,
            )
            .strip()
        )


class TemplatesConfig(_Model):
    templates: tuple[ReplyTemplate, ...] = Field(min_length=1)


# Administrators write these templates: sandboxed, and strict about unknown variables.
_REPLY_ENV = SandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
)


@lru_cache(maxsize=512)
def _compile_reply(source: str) -> Template:
    # from_string compiles anew on every call; a template is rendered for every case.
    return _REPLY_ENV.from_string(source)


# --- escalation.yaml ------------------------------------------------------------------------


class NotifyTarget(StrEnum):
    DEPARTMENT_LEAD = "department_lead"
    DUTY = "duty"
    LEADERSHIP = "leadership"
    COORDINATION = "coordination"


def _one_or_many(value: object) -> object:
    return (value,) if isinstance(value, str) else value


class EscalationStep(_Model):
    level: int = Field(ge=1, le=20)
    notify: Annotated[tuple[NotifyTarget, ...], BeforeValidator(_one_or_many)] = Field(min_length=1)
    after: Duration = timedelta(0)  # wait after the breach (step 1) or the previous step
    repeat_every: PositiveDuration | None = None
    max_repeats: int = Field(default=0, ge=0, le=100)
    window: TimeRange | None = None  # notify only inside these hours (org time); else wait

    @model_validator(mode="after")
    def _repeats(self) -> EscalationStep:
        if (self.repeat_every is None) != (self.max_repeats == 0):
            raise ValueError("set repeat_every and max_repeats together (or neither)")
        return self


_DEFAULT_STOP_ON = (Action.TAKE, Action.DRAFT, Action.APPROVE, Action.PUBLISH)


class EscalationChain(_Model):
    steps: tuple[EscalationStep, ...] = Field(min_length=1)
    stop_on: tuple[Action, ...] = _DEFAULT_STOP_ON  # any of these actions ends the chase


class EscalationConfig(_Model):
    chains: dict[Id, EscalationChain] = Field(min_length=1)


# --- crisis.yaml ----------------------------------------------------------------------------


class ThresholdScope(StrEnum):
    DEPARTMENT = "department"
    CODE = "code"
    ALL = "all"


class CrisisThreshold(_Model):
    """Negative mentions in a sliding `window` that make a crisis: an absolute `count`, or
    `ratio` times the average for such a window over the last `baseline_days`."""

    id: Id
    scope: ThresholdScope
    key: Text | None = None  # department id or code; none for scope "all"
    window: PositiveDuration
    count: int | None = Field(default=None, ge=1)
    ratio: float | None = Field(default=None, gt=0)
    baseline_days: int | None = Field(default=None, ge=1, le=90)
    min_count: int | None = Field(default=None, ge=1)  # no alarm on 2 mentions instead of 1

    @model_validator(mode="after")
    def _consistent(self) -> CrisisThreshold:
        if (self.count is None) == (self.ratio is None):
            raise ValueError("give exactly one of count or ratio")
        if self.ratio is not None and (self.baseline_days is None or self.min_count is None):
            raise ValueError("ratio needs baseline_days and min_count")
        if self.count is not None and (self.baseline_days or self.min_count):
            raise ValueError("baseline_days and min_count only go with ratio")
        if self.scope is ThresholdScope.ALL and self.key is not None:
            raise ValueError("scope 'all' takes no key")
        if self.scope is not ThresholdScope.ALL and self.key is None:
            raise ValueError(f"scope {self.scope.value!r} needs a key")
        return self


class ChecklistOwner(StrEnum):
    DUTY = "duty"
    LEADERSHIP = "leadership"
    DEPARTMENT_LEAD = "department_lead"
    PRESS = "press"


class CrisisStep(_Model):
    step: LocalizedText
    owner: ChecklistOwner
    within: PositiveDuration | None = None  # due this long after the crisis is declared


class CrisisConfig(_Model):
    thresholds: tuple[CrisisThreshold, ...] = Field(min_length=1)
    cool_down: PositiveDuration  # below the limit this long without a break closes a crisis
    checklist: tuple[CrisisStep, ...] = Field(min_length=1)
    holding_statement_template: Id
    pause_scheduled_posts: bool = True


# --- the playbook ---------------------------------------------------------------------------


class Playbook(_Model):
    path: Path
    routing: RoutingConfig
    sla: SlaConfig
    templates: tuple[ReplyTemplate, ...]
    escalation: EscalationConfig
    crisis: CrisisConfig
    calendars: dict[str, WorkCalendar]  # including the built-in "24x7"

    def file(self, name: str) -> Path:
        return self.path / name

    @cached_property
    def _templates_by_id(self) -> dict[str, ReplyTemplate]:
        return {t.id: t for t in self.templates}

    def template(self, template_id: str) -> ReplyTemplate:
        try:
            return self._templates_by_id[template_id]
        except KeyError:
            raise KeyError(f"no reply template {template_id!r}") from None

    def templates_for(
        self, department: str, kind: TemplateKind | None = None
    ) -> list[ReplyTemplate]:
        """Templates offered in a department, in file order."""
        return [
            t
            for t in self.templates
            if (not t.departments or department in t.departments)
            and (kind is None or t.kind is kind)
        ]

    def sla_policy(self, name: str) -> SlaPolicy:
        try:
            return self.sla.policies[name]
        except KeyError:
            raise KeyError(f"no SLA policy {name!r}") from None

    def sla_policy_for(
        self, department: str, priority: Priority, override: str | None = None
    ) -> tuple[str, SlaPolicy]:
        """The policy for a case: a routing rule's override, then by_department, then
        by_priority."""
        name = (
            override
            or self.sla.by_department.get(department, {}).get(priority)
            or self.sla.by_priority.get(priority)
        )
        return name, self.sla_policy(name)

    def calendar(self, name: str) -> WorkCalendar:
        try:
            return self.calendars[name]
        except KeyError:
            raise KeyError(f"no calendar {name!r}") from None

    def chain(self, name: str) -> EscalationChain:
        try:
            return self.escalation.chains[name]
        except KeyError:
            raise KeyError(f"no escalation chain {name!r}") from None

    def department_refs(self) -> Iterator[tuple[str, Path, str]]:
        """Every department the playbook names, with where: (department, file, field path)."""
        routing, sla = self.file("routing.yaml"), self.file("sla.yaml")
        for i, rule in enumerate(self.routing.rules):
            yield rule.department, routing, f"rules[{i}].department"
        yield self.routing.default.department, routing, "default.department"
        for dept in self.sla.by_department:
            yield dept, sla, f"by_department.{dept}"
        for i, template in enumerate(self.templates):
            for j, dept in enumerate(template.departments):
                yield dept, self.file("templates.yaml"), f"templates[{i}].departments[{j}]"
        for i, threshold in enumerate(self.crisis.thresholds):
            if threshold.scope is ThresholdScope.DEPARTMENT and threshold.key is not None:
                yield threshold.key, self.file("crisis.yaml"), f"thresholds[{i}].key"

    def check_departments(self, department_ids: set[str] | frozenset[str]) -> list[Problem]:
        """Problems for departments the playbook names but the config does not define."""
        problems: list[Problem] = []
        for dept, file, field in self.department_refs():
            if dept not in department_ids:
                message = f"unknown department {dept!r}"
                close = difflib.get_close_matches(dept, sorted(department_ids), n=1)
                if close:
                    message += f" (did you mean {close[0]!r}?)"
                elif department_ids:
                    message += f" (configured: {', '.join(sorted(department_ids))})"
                problems.append((file, field, message))
        return problems

    def summary(self) -> dict[str, int]:
        return {
            "rules": len(self.routing.rules),
            "urgent_words": len(self.routing.urgent_words) + len(self.routing.critical_words),
            "calendars": len(self.calendars),
            "policies": len(self.sla.policies),
            "templates": len(self.templates),
            "pre_approved_templates": sum(t.pre_approved for t in self.templates),
            "chains": len(self.escalation.chains),
            "thresholds": len(self.crisis.thresholds),
            "checklist_steps": len(self.crisis.checklist),
        }


# --- routing --------------------------------------------------------------------------------

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
    return tuple(stem(normalise_word(w)) for w in _WORD_RE.findall(keyword))


# Inside a phrase, parts this short match whole words only: as prefixes, "в" and "с" would
# begin half the words of Russian ("в суд" must not match "вот судя").
_WHOLE_WORD_MAX = 2


class _Words:
    """The words of a text, indexed so a prefix look-up is a binary search."""

    def __init__(self, text: str, stem: Stemmer) -> None:
        self.tokens = [stem(normalise_word(w)) for w in _WORD_RE.findall(text)]
        self._sorted = sorted(set(self.tokens))
        # Every beginning of every word: most keywords begin none, and a set look-up says so
        # before any search (routing tries a few hundred keywords per mention).
        self.beginnings = {t[:n] for t in self._sorted for n in range(1, len(t) + 1)}
        self._positions: dict[str, list[int]] = {}
        for i, token in enumerate(self.tokens):
            self._positions.setdefault(token, []).append(i)

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


class _Text:
    """A text's words as written and, with a lemmatiser, as lemmas. A keyword matches when it
    begins a word as written ("отоплен" → "отопления") or when its lemma begins a word's
    lemma ("пришёл" → "пришли": both "прийти"), so stems and whole words both work."""

    def __init__(self, text: str, stem: Stemmer | None) -> None:
        self._stem = stem
        self._raw = _Words(text, _no_stem)
        self._lemmas = _Words(text, stem) if stem is not None else None

    def has_any(self, keywords: tuple[str, ...]) -> bool:
        phrases = _phrases(keywords, self._stem)
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


@dataclass(frozen=True, slots=True)
class RouteDecision:
    rule_id: str | None  # None: no rule matched, the default applies
    department: str
    priority: Priority
    sla_policy: str | None  # a rule's override; None: Playbook.sla_policy_for decides
    codes: tuple[str, ...]  # the mention's codes followed by the rule's, without repeats
    urgent: bool = False  # an urgent or critical word: make a case whatever the sentiment


def _source_matches(source: str, wanted: Iterable[str]) -> bool:
    return any(source == w or source.startswith(w + ":") for w in wanted)


def _rule_matches(
    match: Match,
    text: str,
    words: _Text,
    source: str,
    codes: set[str],
    labels: set[AuthorLabel],
    language: str | None,
) -> bool:
    if match.is_empty:
        return False
    if match.sources and not _source_matches(source, match.sources):
        return False
    if match.codes and not codes & {c.casefold() for c in match.codes}:
        return False
    if match.author_labels and not labels & set(match.author_labels):
        return False
    if match.languages:
        primary = (language or "").split("-")[0].casefold()
        if primary not in {lang.casefold() for lang in match.languages}:
            return False
    if match.keywords or match.regex:
        # Within the text criteria, any keyword or any pattern is enough.
        found = words.has_any(match.keywords) or any(p.search(text) for p in match.patterns)
        if not found:
            return False
    return True


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
    stemmer or lemmatiser; without one, keywords match word prefixes.
    """
    codes = tuple(codes)
    words = _Text(text, stem)
    folded_codes = {c.casefold() for c in codes}
    labels = set(author_labels)
    config = playbook.routing
    rule = next(
        (
            r
            for r in config.rules
            if _rule_matches(r.match, text, words, source, folded_codes, labels, language)
        ),
        None,
    )
    department = rule.department if rule else config.default.department
    priority = (rule.priority if rule else None) or config.default.priority
    sla_policy = rule.sla_policy if rule else config.default.sla_policy
    critical = words.has_any(config.critical_words)
    urgent = critical or words.has_any(config.urgent_words)
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
    )


# --- loading --------------------------------------------------------------------------------

_FILE_MODELS: dict[str, type[BaseModel]] = {
    "routing.yaml": RoutingConfig,
    "sla.yaml": SlaConfig,
    "templates.yaml": TemplatesConfig,
    "escalation.yaml": EscalationConfig,
    "crisis.yaml": CrisisConfig,
}


def _loc_path(loc: Iterable[str | int]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated and `X | None` down to the type that holds the keys."""
    while True:
        args = get_args(annotation)
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = args[0]
        elif args and type(None) in args and len(args) == 2:
            annotation = next(a for a in args if a is not type(None))
        else:
            return annotation


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class an error location points into, to list the keys it accepts."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        origin = get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        elif origin in (tuple, list, frozenset, set):
            current = get_args(current)[0]
        elif origin is dict:
            current = get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _convert(root: type[BaseModel], error: Any) -> tuple[str, str]:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        message = f"unknown key {key!r}"
        model = _model_at(root, loc[:-1])
        if model is not None:
            allowed = list(model.model_fields)
            close = difflib.get_close_matches(key, allowed, n=1)
            message += f" (did you mean {close[0]!r}?)" if close else ""
            message += f"; allowed: {', '.join(allowed)}"
        return _loc_path(loc), message
    if loc and loc[-1] == "[key]":
        return _loc_path(loc[:-1]), f"invalid key: {error['msg']}"
    if kind == "missing":
        return _loc_path(loc), "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = error.get("input")
    if isinstance(value, str | int | float | bool) and repr(value) not in message:
        message += f" (got {value!r})"
    return _loc_path(loc), message


def _load_file(file: Path, model: type[BaseModel], problems: list[Problem]) -> BaseModel | None:
    if not file.is_file():
        problems.append((file, "", "file is missing"))
        return None
    try:
        data = read_yaml(file)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append((file, "", f"cannot read: {exc}"))
        return None
    except YamlError as exc:
        problems.append((file, "", str(exc)))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append((file, "", f"expected a mapping at the top, got {type(data).__name__}"))
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            field, message = _convert(model, error)
            problems.append((file, field, message))
        return None


def load_playbook(path: Path) -> Playbook:
    """Read and check a playbook directory; raises PlaybookError listing every problem."""
    path = Path(path)
    if not path.is_dir():
        raise PlaybookError([(path, "", "playbook directory not found")])
    problems: list[Problem] = []
    loaded = {
        name: _load_file(path / name, model, problems) for name, model in _FILE_MODELS.items()
    }
    if problems:
        raise PlaybookError(problems)
    routing = loaded["routing.yaml"]
    sla = loaded["sla.yaml"]
    templates = loaded["templates.yaml"]
    escalation = loaded["escalation.yaml"]
    crisis = loaded["crisis.yaml"]
    assert isinstance(routing, RoutingConfig) and isinstance(sla, SlaConfig)
    assert isinstance(templates, TemplatesConfig) and isinstance(escalation, EscalationConfig)
    assert isinstance(crisis, CrisisConfig)

    calendars = _build_calendars(path, sla, problems)
    _check_routing(path / "routing.yaml", routing, sla, problems)
    _check_sla(path / "sla.yaml", sla, escalation, problems)
    _check_templates(path / "templates.yaml", templates, problems)
    _check_escalation(path / "escalation.yaml", escalation, problems)
    _check_crisis(path / "crisis.yaml", crisis, templates, problems)
    if problems:
        raise PlaybookError(problems)
    return Playbook(
        path=path,
        routing=routing,
        sla=sla,
        templates=templates.templates,
        escalation=escalation,
        crisis=crisis,
        calendars=calendars,
    )


# --- cross-file checks ----------------------------------------------------------------------


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    known = sorted(known)
    message = f"unknown {kind} {name!r}"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"{message} (did you mean {close[0]!r}?)"
    return f"{message} (defined: {', '.join(known)})" if known else message


def _duplicates(ids: Sequence[str]) -> Iterator[tuple[int, str, int]]:
    """(index, id, index of the first occurrence) for every repeated id."""
    first: dict[str, int] = {}
    for i, item in enumerate(ids):
        if item in first:
            yield i, item, first[item]
        else:
            first[item] = i


def _check_routing(
    file: Path, routing: RoutingConfig, sla: SlaConfig, problems: list[Problem]
) -> None:
    for i, rule_id, first in _duplicates([r.id for r in routing.rules]):
        problems.append(
            (file, f"rules[{i}].id", f"duplicate rule id {rule_id!r} (also rules[{first}])")
        )
    for i, rule in enumerate(routing.rules):
        if rule.match.is_empty:
            problems.append(
                (
                    file,
                    f"rules[{i}].match",
                    "a rule needs at least one criterion (it would catch everything)",
                )
            )
        if rule.sla_policy and rule.sla_policy not in sla.policies:
            message = _unknown("SLA policy", rule.sla_policy, sla.policies) + " in sla.yaml"
            problems.append((file, f"rules[{i}].sla_policy", message))
    if routing.default.sla_policy and routing.default.sla_policy not in sla.policies:
        problems.append(
            (
                file,
                "default.sla_policy",
                _unknown("SLA policy", routing.default.sla_policy, sla.policies) + " in sla.yaml",
            )
        )


def _check_sla(
    file: Path, sla: SlaConfig, escalation: EscalationConfig, problems: list[Problem]
) -> None:
    calendars = {*sla.calendars, ALWAYS_OPEN}
    if ALWAYS_OPEN in sla.calendars:
        problems.append(
            (
                file,
                f"calendars.{ALWAYS_OPEN}",
                f"{ALWAYS_OPEN!r} is built in and cannot be redefined",
            )
        )
    for name, policy in sla.policies.items():
        at = f"policies.{name}"
        if policy.calendar not in calendars:
            message = _unknown("calendar", policy.calendar, calendars)
            problems.append((file, f"{at}.calendar", message))
        if policy.escalation_chain and policy.escalation_chain not in escalation.chains:
            problems.append(
                (
                    file,
                    f"{at}.escalation_chain",
                    _unknown("escalation chain", policy.escalation_chain, escalation.chains)
                    + " in escalation.yaml",
                )
            )
        if policy.answer < policy.first_touch:
            problems.append((file, f"{at}.answer", "is shorter than first_touch"))
        if policy.resolution < policy.answer:
            problems.append((file, f"{at}.resolution", "is shorter than answer"))
    for priority in Priority:
        name = sla.by_priority.get(priority)
        if name not in sla.policies:
            problems.append(
                (file, f"by_priority.{priority.value}", _unknown("SLA policy", name, sla.policies))
            )
    for dept, overrides in sla.by_department.items():
        for priority, name in overrides.items():
            if name not in sla.policies:
                problems.append(
                    (
                        file,
                        f"by_department.{dept}.{priority.value}",
                        _unknown("SLA policy", name, sla.policies),
                    )
                )


_REPLY_GLOBALS = frozenset(_REPLY_ENV.globals)


def _check_templates(file: Path, config: TemplatesConfig, problems: list[Problem]) -> None:
    for i, template_id, first in _duplicates([t.id for t in config.templates]):
        problems.append(
            (
                file,
                f"templates[{i}].id",
                f"duplicate template id {template_id!r} (also templates[{first}])",
            )
        )
    for i, template in enumerate(config.templates):
        for locale in LOCALES:
            field = f"templates[{i}].text.{locale}"
            try:
                ast = _REPLY_ENV.parse(template.text.get(locale))
            except TemplateSyntaxError as exc:
                problems.append(
                    (file, field, f"template syntax error at line {exc.lineno}: {exc.message}")
                )
                continue
            unknown = meta.find_undeclared_variables(ast) - REPLY_VARIABLES.keys() - _REPLY_GLOBALS
            if unknown:
                problems.append(
                    (
                        file,
                        field,
                        f"unknown variable(s) {', '.join(sorted(unknown))}; "
                        f"available: {', '.join(REPLY_VARIABLES)}",
                    )
                )


def _check_escalation(file: Path, config: EscalationConfig, problems: list[Problem]) -> None:
    for name, chain in config.chains.items():
        for i, step in enumerate(chain.steps):
            if step.level != i + 1:
                problems.append(
                    (
                        file,
                        f"chains.{name}.steps[{i}].level",
                        f"expected level {i + 1}: levels go 1, 2, 3… in step order",
                    )
                )


def _check_crisis(
    file: Path, crisis: CrisisConfig, templates: TemplatesConfig, problems: list[Problem]
) -> None:
    for i, threshold_id, first in _duplicates([t.id for t in crisis.thresholds]):
        problems.append(
            (
                file,
                f"thresholds[{i}].id",
                f"duplicate threshold id {threshold_id!r} (also thresholds[{first}])",
            )
        )
    by_id = {t.id: t for t in templates.templates}
    template = by_id.get(crisis.holding_statement_template)
    if template is None:
        problems.append(
            (
                file,
                "holding_statement_template",
                _unknown("template", crisis.holding_statement_template, by_id)
                + " in templates.yaml",
            )
        )
    elif template.kind is not TemplateKind.HOLDING_STATEMENT:
        problems.append(
            (
                file,
                "holding_statement_template",
                f"template {template.id!r} is of kind {template.kind.value!r}, "
                "expected 'holding_statement'",
            )
        )


# --- calendars and iCal ---------------------------------------------------------------------


def _build_calendars(
    playbook_dir: Path, sla: SlaConfig, problems: list[Problem]
) -> dict[str, WorkCalendar]:
    calendars = {ALWAYS_OPEN: _ALWAYS_OPEN_CALENDAR}
    for name, spec in sla.calendars.items():
        holidays = set(spec.holidays)
        if spec.holidays_ical:
            holidays |= _ical_holidays(
                playbook_dir, spec.holidays_ical, f"calendars.{name}.holidays_ical", problems
            )
        calendars[name] = WorkCalendar(
            name=name, timezone=spec.timezone, hours=spec.hours, holidays=frozenset(holidays)
        )
    return calendars


def _ical_holidays(playbook_dir: Path, name: str, field: str, problems: list[Problem]) -> set[date]:
    sla_file = playbook_dir / "sla.yaml"
    file = playbook_dir / name
    try:
        # The administrator names a file next to the playbook, not anywhere on the server.
        file.resolve().relative_to(playbook_dir.resolve())
    except ValueError:
        problems.append((sla_file, field, f"{name!r} must be a file inside the playbook directory"))
        return set()
    if not file.is_file():
        problems.append((sla_file, field, f"file {name!r} not found next to sla.yaml"))
        return set()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append((file, "", f"cannot read: {exc}"))
        return set()
    days, ical_problems = parse_ical_dates(text)
    problems.extend((file, where, message) for where, message in ical_problems)
    return days


_ICAL_DATE_RE = re.compile(r"(\d{4})(\d{2})(\d{2})")


def parse_ical_dates(text: str) -> tuple[set[date], list[tuple[str, str]]]:
    """All-day dates of the VEVENTs in an iCalendar text, and (field, message) problems.

    Only what holiday calendars need: DTSTART;VALUE=DATE with an optional exclusive DTEND.
    Recurrence rules are refused rather than half-understood.
    """
    lines: list[str] = []
    for raw in text.splitlines():
        raw = raw.lstrip("\ufeff") if not lines else raw
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]  # RFC 5545 line folding
        elif raw.strip():
            lines.append(raw.strip())
    problems: list[tuple[str, str]] = []
    if not lines or lines[0].upper() != "BEGIN:VCALENDAR":
        return set(), [("", "not an iCalendar file (expected BEGIN:VCALENDAR)")]
    days: set[date] = set()
    index = -1
    event: dict[str, tuple[str, str]] | None = None
    for line in lines:
        upper = line.upper()
        if upper == "BEGIN:VEVENT":
            index += 1
            event = {}
        elif upper == "END:VEVENT" and event is not None:
            days |= _event_days(event, f"VEVENT[{index}]", problems)
            event = None
        elif event is not None and ":" in line:
            head, value = line.split(":", 1)
            prop, _, params = head.partition(";")
            event[prop.upper()] = (params.upper(), value.strip())
    return days, problems


def _event_days(
    event: dict[str, tuple[str, str]], where: str, problems: list[tuple[str, str]]
) -> set[date]:
    if "RRULE" in event or "RDATE" in event:
        problems.append((f"{where}.RRULE", "recurring events are not supported: list each date"))
        return set()
    start = _ical_date(event.get("DTSTART"), f"{where}.DTSTART", problems)
    if start is None:
        return set()
    end = start + timedelta(days=1)
    if "DTEND" in event:
        end_value = _ical_date(event["DTEND"], f"{where}.DTEND", problems)
        if end_value is None:
            return set()
        if not start < end_value <= start + timedelta(days=366):
            problems.append((f"{where}.DTEND", "must come after DTSTART, within a year"))
            return set()
        end = end_value
    return {start + timedelta(days=n) for n in range((end - start).days)}


def _ical_date(
    prop: tuple[str, str] | None, where: str, problems: list[tuple[str, str]]
) -> date | None:
    if prop is None:
        problems.append((where, "missing"))
        return None
    params, value = prop
    match = _ICAL_DATE_RE.fullmatch(value)
    if "VALUE=DATE" not in params.split(";") or match is None:
        problems.append((where, f"expected an all-day date (;VALUE=DATE:20260101), got {value!r}"))
        return None
    try:
        return date(*(int(g) for g in match.groups()))
    except ValueError:
        problems.append((where, f"{value!r} is not a valid date"))
        return None
