"""sla.yaml: working calendars, reminders and the SLA policies, and the iCal holiday files
the calendars may name.

A calendar's public holidays, days off moved by decree and working Saturdays come from the
`holidays` package for its `country`; the playbook adds regional holidays, working days and
shortened days. bot/settings/production.py turns them into one year's plan; bot/sla/calendar.py
does the arithmetic on working time; playbook.py loads the file.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

from bot.model import Priority
from bot.settings import production
from bot.settings.errors import Problem
from bot.settings.fields import (
    MINUTES_PER_DAY,
    Day,
    DayHours,
    Duration,
    Id,
    PositiveDuration,
    StrictModel,
    TimeRange,
    TimeZoneName,
    Weekday,
    format_duration,
    shown,
)
from bot.settings.yamlfile import YamlError, read_text

__all__ = [
    "ALWAYS_OPEN",
    "CalendarSpec",
    "ListedDay",
    "PriorityPolicies",
    "Reminder",
    "ShortDay",
    "SlaConfig",
    "SlaPolicy",
    "WorkCalendar",
    "WorkingDay",
    "build_calendars",
    "parse_ical_dates",
]

ALWAYS_OPEN = "24x7"  # the built-in calendar: every minute counts


def _date_only(value: object) -> object:
    """A bare date stands for {date: ...}: short lists stay short."""
    return value if isinstance(value, dict | BaseModel) else {"date": value}


class ListedDay(StrictModel):
    """A non-working day the playbook adds (a regional holiday): `2026-09-14` or
    `{date: 2026-09-14, name: День области}`."""

    date: Day
    name: str | None = None

    _scalar = model_validator(mode="before")(_date_only)


class WorkingDay(StrictModel):
    """A day off made a working day (a Saturday moved by decree). `hours` default to that
    weekday's own hours, or else those of the first weekday the calendar opens."""

    date: Day
    name: str | None = None
    hours: DayHours | None = None

    _scalar = model_validator(mode="before")(_date_only)


class ShortDay(StrictModel):
    """A shortened day: it closes `shorter_by` early. `0m` cancels a computed one."""

    date: Day
    shorter_by: Duration = timedelta(hours=1)

    _scalar = model_validator(mode="before")(_date_only)

    @model_validator(mode="after")
    def _whole_minutes(self) -> ShortDay:
        if self.shorter_by < timedelta(0) or self.shorter_by.total_seconds() % 60:
            raise ValueError("shorter_by must be whole minutes, not negative, e.g. '1h' or '30m'")
        return self


class CalendarSpec(StrictModel):
    timezone: TimeZoneName | None = None  # None: org's
    hours: dict[Weekday, DayHours] = Field(default_factory=dict)  # a missing day is a day off
    # The production calendar of a country from the `holidays` package: RU, PL, ...
    country: str | None = None
    subdivision: str | None = None  # a region code the package knows for the country
    holidays: tuple[ListedDay, ...] = ()  # regional and other extra non-working days
    holidays_ical: str | None = None  # an .ics file next to sla.yaml, all-day VEVENTs
    working_days: tuple[WorkingDay, ...] = ()
    short_days: tuple[ShortDay, ...] = ()
    # Years whose calendar was checked by hand (e.g. a decree the package lacks was listed
    # above): no warning that the calendar runs out for them.
    confirmed_years: tuple[Annotated[int, Field(ge=1900, le=2200)], ...] = ()

    @field_validator("country")
    @classmethod
    def _country_code(cls, value: str | None) -> str | None:
        # Whether the package knows it is checked at build time (build_calendars).
        return value.strip().upper() if value is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> CalendarSpec:
        if self.subdivision is not None and self.country is None:
            raise ValueError("subdivision needs a country")
        for field, days in (
            ("holidays", [d.date for d in self.holidays]),
            ("working_days", [d.date for d in self.working_days]),
            ("short_days", [d.date for d in self.short_days]),
        ):
            seen: set[date] = set()
            for day in days:
                if day in seen:
                    raise ValueError(f"{field}: {day} is listed twice")
                seen.add(day)
        both = {d.date for d in self.holidays} & {d.date for d in self.working_days}
        if both:
            raise ValueError(
                f"{', '.join(map(str, sorted(both)))}: listed both in holidays and working_days"
            )
        return self


class WorkCalendar(StrictModel):
    """A calendar ready for SLA arithmetic: the country's production calendar, listed and
    iCal holidays, working and shortened days merged, one year at a time."""

    name: str
    timezone: str | None = None  # None: the organisation's time zone from the config
    hours: dict[Weekday, tuple[TimeRange, ...]] = Field(default_factory=dict)
    always_open: bool = False
    country: str | None = None
    subdivision: str | None = None
    holidays: dict[date, str] = Field(default_factory=dict)  # listed and iCal, with names
    working_days: dict[date, tuple[TimeRange, ...] | None] = Field(default_factory=dict)
    short_days: dict[date, timedelta] = Field(default_factory=dict)
    confirmed_years: frozenset[int] = frozenset()
    # Built on first use of a year and kept: the SLA walk asks for a day many times a second.
    _years: dict[int, production.YearPlan] = PrivateAttr(default_factory=dict)

    @field_validator("holidays", mode="before")
    @classmethod
    def _unnamed(cls, value: object) -> object:
        # Code and tests may give plain dates.
        return dict.fromkeys(value, "") if isinstance(value, set | frozenset | list) else value

    def zone(self, default: ZoneInfo) -> ZoneInfo:
        return ZoneInfo(self.timezone) if self.timezone else default

    def year(self, year: int, language: str | None = None) -> production.YearPlan:
        """The year's non-working, working and shortened days; names in `language` (the
        package's language codes: ru, en_US, pl), or else in the country's own."""
        if language is not None:
            return production.plan_year(self, year, language)
        plan = self._years.get(year)
        if plan is None:
            plan = self._years[year] = production.plan_year(self, year)
        return plan

    def covers(self, year: int) -> bool:
        """Whether the calendar knows `year`: see production.covers."""
        return production.covers(self, year)

    def hours_on(self, day: date) -> tuple[TimeRange, ...]:
        """Open spans of a local date, in order; empty on days off and holidays."""
        if self.always_open:
            return (_WHOLE_DAY,)
        exception = self.year(day.year).hours.get(day)
        return self.hours.get(Weekday.of(day), ()) if exception is None else exception

    def is_open(self, moment: datetime, default: ZoneInfo) -> bool:
        local = moment.astimezone(self.zone(default))
        return any(r.contains(local.time()) for r in self.hours_on(local.date()))


_WHOLE_DAY = TimeRange(start=0, end=MINUTES_PER_DAY)
_ALWAYS_OPEN_CALENDAR = WorkCalendar(name=ALWAYS_OPEN, always_open=True)


class Reminder(StrictModel):
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
            raise ValueError(f"{hint}, got {shown(value)}")
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


class SlaPolicy(StrictModel):
    """Deadlines count working time on `calendar`: '4h' on a working calendar means four
    open hours, so a mention at 17:30 on Friday is due on Monday."""

    calendar: Id
    # Optional, internal: somebody takes the case (Take, a draft). None: no such deadline.
    reaction: PositiveDuration | None = None
    # The first reply the author sees: published in the thread or written in private.
    first_touch: PositiveDuration = timedelta(minutes=60)
    answer: PositiveDuration  # a full answer published
    resolution: PositiveDuration  # the problem solved and the result shown
    reminders: tuple[Reminder, ...] = ()
    escalation_chain: Id | None = None  # None: breaches are shown, nobody is chased
    pause_while_waiting_for_author: bool = True
    # After "moved to private" (and "still open"): when to ask to show the result in public.
    follow_up_after: PositiveDuration = timedelta(days=2)


class PriorityPolicies(StrictModel):
    critical: Id
    high: Id
    normal: Id
    low: Id

    def get(self, priority: Priority) -> str:
        return str(getattr(self, priority.value))


class SlaConfig(StrictModel):
    calendars: dict[Id, CalendarSpec] = Field(default_factory=dict)
    policies: dict[Id, SlaPolicy] = Field(min_length=1)
    by_priority: PriorityPolicies
    by_department: dict[Id, dict[Priority, Id]] = Field(default_factory=dict)


# --- calendars and iCal ---------------------------------------------------------------------


def build_calendars(
    playbook_dir: Path, sla: SlaConfig, problems: list[Problem]
) -> dict[str, WorkCalendar]:
    calendars = {ALWAYS_OPEN: _ALWAYS_OPEN_CALENDAR}
    production.load_countries(
        (spec.country, spec.subdivision) for spec in sla.calendars.values() if spec.country
    )
    for name, spec in sla.calendars.items():
        if spec.country is not None:
            try:
                production.country_table(spec.country, spec.subdivision)
            except production.HolidaysUnavailable as exc:
                field = f"calendars.{name}{'.' if exc.field else ''}{exc.field}"
                problems.append((playbook_dir / "sla.yaml", field, str(exc)))
                continue
        holidays = {d.date: d.name or "" for d in spec.holidays}
        if spec.holidays_ical:
            ical = _ical_holidays(
                playbook_dir, spec.holidays_ical, f"calendars.{name}.holidays_ical", problems
            )
            holidays = ical | holidays  # a name given in sla.yaml wins
        calendars[name] = WorkCalendar(
            name=name,
            timezone=spec.timezone,
            hours=spec.hours,
            country=spec.country,
            subdivision=spec.subdivision,
            holidays=holidays,
            working_days={d.date: d.hours for d in spec.working_days},
            short_days={d.date: d.shorter_by for d in spec.short_days},
            confirmed_years=frozenset(spec.confirmed_years),
        )
    return calendars


def _ical_holidays(
    playbook_dir: Path, name: str, field: str, problems: list[Problem]
) -> dict[date, str]:
    sla_file = playbook_dir / "sla.yaml"
    file = playbook_dir / name
    try:
        # The administrator names a file next to the playbook, not anywhere on the server.
        file.resolve().relative_to(playbook_dir.resolve())
    except ValueError:
        problems.append((sla_file, field, f"{name!r} must be a file inside the playbook directory"))
        return {}
    if not file.is_file():
        problems.append((sla_file, field, f"file {name!r} not found next to sla.yaml"))
        return {}
    try:
        text = read_text(file)
    except YamlError as exc:
        problems.extend(exc.problems)
        return {}
    except OSError as exc:
        problems.append((file, "", f"cannot read: {exc.strerror or exc}"))
        return {}
    days, ical_problems = parse_ical_days(text)
    problems.extend((file, where, message) for where, message in ical_problems)
    return days


_ICAL_DATE_RE = re.compile(r"(\d{4})(\d{2})(\d{2})")


def parse_ical_dates(text: str) -> tuple[set[date], list[tuple[str, str]]]:
    """All-day dates of the VEVENTs in an iCalendar text, and (field, message) problems."""
    days, problems = parse_ical_days(text)
    return set(days), problems


def parse_ical_days(text: str) -> tuple[dict[date, str], list[tuple[str, str]]]:
    """All-day dates of the VEVENTs in an iCalendar text with their SUMMARY, and
    (field, message) problems.

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
        return {}, [("", "not an iCalendar file (expected BEGIN:VCALENDAR)")]
    days: dict[date, str] = {}
    index = -1
    event: dict[str, tuple[str, str]] | None = None
    for line in lines:
        upper = line.upper()
        if upper == "BEGIN:VEVENT":
            index += 1
            event = {}
        elif upper == "END:VEVENT" and event is not None:
            summary = _unescape(event.get("SUMMARY", ("", ""))[1])
            days |= dict.fromkeys(_event_days(event, f"VEVENT[{index}]", problems), summary)
            event = None
        elif event is not None and ":" in line:
            head, value = line.split(":", 1)
            prop, _, params = head.partition(";")
            event[prop.upper()] = (params.upper(), value.strip())
    return days, problems


def _unescape(text: str) -> str:
    # RFC 5545 text escapes, enough for a holiday's name.
    return text.replace("\\n", " ").replace("\\,", ",").replace("\\;", ";").replace("\\\\", "\\")


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
