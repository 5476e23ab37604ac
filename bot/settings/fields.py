"""Field types the settings models share: a strict base model, ids, text in every locale,
durations, dates, time zones, weekdays and hours of the day.

Every settings file is validated through these, so a duration or a date reads and fails the
same way in config.yaml, the playbook and the duty rota.
"""

from __future__ import annotations

import calendar
import itertools
import re
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

__all__ = [
    "LOCALES",
    "MINUTES_PER_DAY",
    "Day",
    "DayHours",
    "Duration",
    "Id",
    "Locale",
    "LocalizedText",
    "OneOrMoreLocales",
    "PositiveDuration",
    "StrictModel",
    "Text",
    "TimeRange",
    "TimeZoneName",
    "Weekday",
    "check_timezone",
    "format_duration",
    "impossible_date",
    "parse_date",
    "parse_duration",
    "shown",
]

Locale = Literal["ru", "en"]
LOCALES: tuple[Locale, ...] = get_args(Locale)  # every playbook text and message file has each


class StrictModel(BaseModel):
    """Unknown keys are typos, not extensions; settings never change once read."""

    # inf and nan are what YAML makes of `.inf` and `1e999`: never a meant limit.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def shown(value: object, limit: int = 40) -> str:
    """A value as the administrator wrote it, short enough for one line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, int) and value.bit_length() > 64:
        return "a number too long to show"  # repr may not even be allowed (4300 digits)
    text = repr(value.isoformat() if isinstance(value, date | time) else value)
    return text if len(text) <= limit else f"{text[: limit - 6]}…{text[-5:]}"


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name like 'Europe/Moscow')"
        ) from None
    return value


TimeZoneName = Annotated[str, AfterValidator(check_timezone)]


_DURATION_RE = re.compile(r"(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")
_MAX_DURATION = timedelta(days=366)  # anything longer is a typo, not an SLA


def parse_duration(value: object) -> timedelta:
    """'45m', '4h', '1h30m', '3d', '90s' -> timedelta. Units in the order d, h, m, s."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        # Bare numbers are ambiguous (seconds? minutes?), so they are refused.
        raise ValueError(
            f"expected a duration like '45m', '4h', '1h30m', '3d' or '90s', got {shown(value)}"
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


_DATE_SHAPE_RE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2}))?")


def impossible_date(text: str) -> str | None:
    """Why a date written in the right shape does not exist: '2026-02-30 is not a date
    (February has 28 days in 2026)'; None when the shape is wrong or the date exists."""
    match = _DATE_SHAPE_RE.match(text.strip())
    if match is None:
        return None
    year, month, day = (int(g) for g in match.groups()[:3])
    written = match.group(0)
    if not 1 <= month <= 12:
        return f"{written} is not a date (there is no month {month})"
    days = calendar.monthrange(year, month)[1] if year >= 1 else 31
    if not 1 <= day <= days:
        return f"{written} is not a date ({calendar.month_name[month]} has {days} days in {year})"
    if match.group(4) is not None and (int(match.group(4)) > 23 or int(match.group(5)) > 59):
        return f"{written} is not a time of day (hours go to 23, minutes to 59)"
    return None


def parse_date(value: object) -> object:
    """A calendar date, ISO-written; pydantic alone would read a bare integer as a Unix
    timestamp and a date-time as its date."""
    if isinstance(value, datetime) or not isinstance(value, date | str):
        raise ValueError(f"expected a date like 2026-01-01, got {shown(value)}")
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            reason = impossible_date(value)
            raise ValueError(reason or f"expected a date like 2026-01-01, got {value!r}") from None
    return value


Day = Annotated[date, BeforeValidator(parse_date)]


class LocalizedText(StrictModel):
    ru: Text
    en: Text

    def get(self, locale: str) -> str:
        if locale not in LOCALES:
            raise KeyError(f"unknown locale {locale!r}; playbooks carry {', '.join(LOCALES)}")
        return str(getattr(self, locale))


class OneOrMoreLocales(StrictModel):
    """Text an administrator writes for the locale(s) the bot speaks: `locale: ru` needs no
    English. At least one is required here; the configured locale's is checked against the
    config (Playbook.check_locale), so check-config names what is missing."""

    ru: Text | None = None
    en: Text | None = None

    @model_validator(mode="after")
    def _one_at_least(self) -> OneOrMoreLocales:
        if self.ru is None and self.en is None:
            raise ValueError(f"needs a text in at least one locale: {', '.join(LOCALES)}")
        return self

    def has(self, locale: str) -> bool:
        return getattr(self, locale, None) is not None

    def get(self, locale: str) -> str:
        """The text in `locale`; another locale's only if that one is missing (check-config
        reports it, so a running bot never meets this)."""
        if locale not in LOCALES:
            raise KeyError(f"unknown locale {locale!r}; playbooks carry {', '.join(LOCALES)}")
        value = getattr(self, locale) or next(
            getattr(self, other) for other in LOCALES if getattr(self, other)
        )
        return str(value)

    def given(self) -> tuple[str, ...]:
        return tuple(locale for locale in LOCALES if self.has(locale))


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
MINUTES_PER_DAY = 24 * 60


class TimeRange(StrictModel):
    """A span within one day, [start, end), in minutes after midnight. Written '09:00-13:00';
    the end may be '24:00'."""

    start: int = Field(ge=0, le=MINUTES_PER_DAY)
    end: int = Field(ge=0, le=MINUTES_PER_DAY)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        if isinstance(value, dict | TimeRange):
            return value  # constructed in code: TimeRange(start=540, end=780)
        hint = "expected a time range like '09:00-13:00'"
        if not isinstance(value, str):
            # YAML 1.1 reads an unquoted 13:45 as the number 825 (base 60).
            raise ValueError(f"{hint} in quotes, got {shown(value)}")
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


def _ranges_listed(value: object) -> object:
    if isinstance(value, str):
        # `wed: "09:00-18:00"` is the likeliest slip; say how to write it.
        raise ValueError(f"write the hours as a list, even one range: [{value!r}]")
    return value


DayHours = Annotated[
    tuple[TimeRange, ...], BeforeValidator(_ranges_listed), AfterValidator(_no_overlap)
]
