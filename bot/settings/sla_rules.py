"""sla.yaml: working calendars, reminders and the SLA policies, and the iCal holiday files
the calendars may name.

bot/sla/calendar.py does the arithmetic on working time; playbook.py loads the file.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from bot.model import Priority
from bot.settings.errors import Problem
from bot.settings.fields import (
    MINUTES_PER_DAY,
    Day,
    DayHours,
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
    "PriorityPolicies",
    "Reminder",
    "SlaConfig",
    "SlaPolicy",
    "WorkCalendar",
    "build_calendars",
    "parse_ical_dates",
]

ALWAYS_OPEN = "24x7"  # the built-in calendar: every minute counts


class CalendarSpec(StrictModel):
    timezone: TimeZoneName | None = None  # None: org's
    hours: dict[Weekday, DayHours] = Field(default_factory=dict)  # a missing day is a day off
    holidays: tuple[Day, ...] = ()
    holidays_ical: str | None = None  # an .ics file next to sla.yaml, all-day VEVENTs


class WorkCalendar(StrictModel):
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
    first_touch: PositiveDuration = timedelta(minutes=60)  # a first human reply in the thread
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
        text = read_text(file)
    except YamlError as exc:
        problems.extend(exc.problems)
        return set()
    except OSError as exc:
        problems.append((file, "", f"cannot read: {exc.strerror or exc}"))
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
