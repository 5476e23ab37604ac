"""The production calendar of one year: which days are closed, which weekend days work and
which days are shortened, for a calendar of sla.yaml.

Public holidays, days off moved by decree and working Saturdays come from the `holidays`
package (its data is maintained upstream; upgrading the package brings new decrees). On top:
- Russia, a year the package has no decree for yet: a holiday falling on a Saturday or Sunday
  moves the day off to the next working day (Labour Code art. 112 part 2; 1-8 January
  excepted, the government moves those by decree);
- Russia, every year: the working day right before a non-working holiday is one hour shorter
  (Labour Code art. 95). The package has no shortened days, so they are computed here;
- the playbook's own days (regional holidays, working days, shortened days) win over both.

The package is read once per process, in a child (holiday_table.py, see load_countries), into
a table of dates per country and year. A YearPlan is built from it once per calendar and year
(bot/settings/sla_rules.py keeps it), so the SLA walk (bot/sla/calendar.py) only looks dates up
in dicts.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.settings.fields import TimeRange, Weekday

if TYPE_CHECKING:
    from bot.settings.sla_rules import WorkCalendar

__all__ = [
    "CalendarDay",
    "CountryTable",
    "DayKind",
    "HolidaysUnavailable",
    "YearPlan",
    "country_table",
    "covers",
    "load_countries",
    "plan_year",
    "year_listing",
]

# Countries whose days off are moved by a yearly decree: the package knows a year only once
# that decree is in it. Elsewhere holidays follow fixed rules the package computes for any year.
_YEARLY_DECREE = frozenset({"RU"})
RU_PRE_HOLIDAY_CUT = timedelta(hours=1)  # Labour Code art. 95
_NEW_YEAR_HOLIDAYS = 8  # 1-8 January (art. 112 part 1)
_RU_FIXED = ((2, 23), (3, 8), (5, 1), (5, 9), (6, 12), (11, 4))  # art. 112 part 1, besides January
_SATURDAY = 5
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class YearPlan:
    """Exceptions to a calendar's weekly hours in one year; a date not in `hours` keeps them."""

    year: int
    closed: dict[date, str] = field(default_factory=dict)  # non-working day -> why (a name)
    working: dict[date, str] = field(default_factory=dict)  # day off made working -> why
    short: dict[date, timedelta] = field(default_factory=dict)  # shortened day -> by how much
    hours: dict[date, tuple[TimeRange, ...]] = field(default_factory=dict)  # () when closed


@dataclass(frozen=True, slots=True)
class CountryYear:
    """What the package says about one year of a country."""

    names: dict[str, dict[date, str]]  # language ("ru", "en_US"; "": the package's) -> days off
    weekend_workdays: frozenset[date] = frozenset()
    decree: bool = False  # the year's decree on moved days off is in the package
    swaps: tuple[tuple[date, date], ...] = ()  # (day off, the day it was moved from)

    def closed(self, language: str | None) -> dict[date, str]:
        for key in (language, "ru", "en_US", ""):
            if key is not None and key in self.names:
                return self.names[key]
        return {}


@dataclass(frozen=True, slots=True)
class CountryTable:
    start_year: int
    end_year: int
    years: dict[int, CountryYear]

    def year(self, year: int) -> CountryYear:
        return self.years.get(year) or CountryYear({})


class HolidaysUnavailable(Exception):
    """The package could not be read, or does not know a country or subdivision; `field`
    says which key of the calendar is at fault ("" when the package itself failed)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


_SCRIPT = Path(__file__).with_name("holiday_table.py")
_CHILD_TIMEOUT_S = 120
_Key = tuple[str, str | None, bool]  # country, subdivision, with the holidays' names
# Each country's table or why there is none; filled once per process.
_TABLES: dict[_Key, CountryTable | HolidaysUnavailable] = {}


def load_countries(keys: Iterable[tuple[str, str | None]], *, named: bool = False) -> None:
    """Read the package for these countries, in one child process, unless read before.

    A child, because importing any country imports all of them (about 10 MB the bot would
    keep); the child's tables are a few hundred dates a country, without names unless `named`
    (only `otklik calendar` shows them). Runs at playbook load, before the event loop starts.
    """
    missing = sorted({key for key in keys if (*key, named) not in _TABLES}, key=str)
    if not missing:
        return
    argv = [sys.executable, "-I", str(_SCRIPT), json.dumps(missing), *(["names"] * named)]
    try:
        # Our own script; the arguments are JSON, no shell.
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=_CHILD_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise HolidaysUnavailable(f"cannot read the holidays package: {last}")
        tables = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        failure = HolidaysUnavailable(f"cannot read the holidays package: {exc}")
        for country, subdivision in missing:
            _TABLES[(country, subdivision, named)] = failure
        return
    except HolidaysUnavailable as failure:
        for country, subdivision in missing:
            _TABLES[(country, subdivision, named)] = failure
        return
    for country, subdivision in missing:
        data = tables[f"{country}|{subdivision or ''}"]
        _TABLES[(country, subdivision, named)] = (
            HolidaysUnavailable(data["error"], data["field"]) if "error" in data else _table(data)
        )


def _table(data: dict[str, Any]) -> CountryTable:
    years: dict[int, CountryYear] = {}
    for year, item in data["years"].items():
        swaps = []
        for entry in item["swaps"]:
            to_month, to_day, from_month, from_day, *from_year = entry
            with contextlib.suppress(ValueError):  # a shape not met yet: no shortened day
                swaps.append(
                    (
                        date(int(year), to_month, to_day),
                        date(from_year[0] if from_year else int(year), from_month, from_day),
                    )
                )
        years[int(year)] = CountryYear(
            names={
                language: {date.fromisoformat(d): name for d, name in days.items()}
                for language, days in item["names"].items()
            },
            weekend_workdays=frozenset(map(date.fromisoformat, item["weekend_workdays"])),
            decree=item["decree"],
            swaps=tuple(swaps),
        )
    return CountryTable(data["start"], data["end"], years)


def country_table(country: str, subdivision: str | None, named: bool = False) -> CountryTable:
    """The package's table for a country; raises HolidaysUnavailable."""
    load_countries([(country, subdivision)], named=named)
    table = _TABLES[(country, subdivision, named)]
    if isinstance(table, HolidaysUnavailable):
        raise table
    return table


def covers(calendar: WorkCalendar, year: int) -> bool:
    """Whether the calendar knows `year`: the year is confirmed in the playbook; or the
    package has the country's year (for Russia: with its decree on transfers); or, without a
    country, the playbook lists holidays of that year."""
    if calendar.always_open or year in calendar.confirmed_years:
        return True
    if calendar.country is None:
        return any(day.year == year for day in calendar.holidays)
    table = country_table(calendar.country, calendar.subdivision)
    if year not in table.years:
        return False
    return calendar.country not in _YEARLY_DECREE or table.year(year).decree


def plan_year(calendar: WorkCalendar, year: int, language: str | None = None) -> YearPlan:
    english = language is not None and not language.startswith("ru")
    plan = YearPlan(year)
    country = calendar.country
    named = language is not None
    known = country_table(country, calendar.subdivision, named).year(year) if country else None
    if known is not None:
        plan.closed.update(known.closed(language))
        label = "working day (moved by decree)" if english else "рабочий день (перенос)"
        plan.working.update((day, label) for day in known.weekend_workdays)
        if country == "RU" and not known.decree:
            _art_112_transfers(plan, english)
    for day, name in calendar.holidays.items():
        if day.year == year:
            plan.closed[day] = name or ("holiday (sla.yaml)" if english else "праздник (sla.yaml)")
            plan.working.pop(day, None)
    listed = "working day (sla.yaml)" if english else "рабочий день (sla.yaml)"
    for day in calendar.working_days:
        if day.year == year:
            plan.working[day] = listed
            plan.closed.pop(day, None)
    for day in plan.closed:
        plan.hours[day] = ()
    for day in plan.working:
        plan.hours[day] = calendar.working_days.get(day) or _default_hours(calendar, day)
    if country == "RU":
        non_working_holidays = set(_ru_holidays(year))
        for holiday in non_working_holidays:
            eve = holiday - _DAY
            if eve.year == year and _works(calendar, plan, eve):
                plan.short[eve] = RU_PRE_HOLIDAY_CUT
        # A working Saturday standing in for a holiday's eve (moved off by decree) is that
        # eve: shorter too, as the Ministry of Labour reads art. 95 (20 Feb 2021, 1 Nov 2025).
        for day_off, worked in known.swaps if known is not None else ():
            if day_off + _DAY in non_working_holidays and worked in plan.working:
                plan.short[worked] = RU_PRE_HOLIDAY_CUT
    for day, cut in calendar.short_days.items():
        if day.year == year:
            plan.short[day] = cut
    for day, cut in list(plan.short.items()):
        ranges = _hours(calendar, plan, day)
        if not cut or not ranges:
            del plan.short[day]  # cancelled ("0m"), or nothing to shorten on a closed day
        else:
            plan.hours[day] = _shortened(ranges, cut)
    return plan


def _ru_holidays(year: int) -> list[date]:
    """Non-working holidays of art. 112 part 1 whose eve falls in `year` (hence next 1 Jan)."""
    days = [date(year, 1, n) for n in range(1, _NEW_YEAR_HOLIDAYS + 1)]
    days += [date(year, month, day) for month, day in _RU_FIXED]
    return [*days, date(year + 1, 1, 1)]


def _art_112_transfers(plan: YearPlan, english: bool) -> None:
    """A holiday on a Saturday or Sunday moves the day off to the next working day; the
    January ones wait for the decree (it moves two of them anywhere in the year)."""
    year = plan.year
    if set(plan.closed) - set(_ru_holidays(year)):
        return  # the package moved days itself (a newer version may): trust it, not twice
    for month, day in _RU_FIXED:
        holiday = date(year, month, day)
        if holiday.weekday() < _SATURDAY:
            continue
        moved = holiday + _DAY
        while moved.weekday() >= _SATURDAY or moved in plan.closed:
            moved += _DAY
        shown = holiday.strftime("%d.%m.%Y")
        plan.closed[moved] = (
            f"day off moved from {shown} (Labour Code art. 112)"
            if english
            else f"выходной перенесён с {shown} (ТК РФ ст. 112)"
        )


def _default_hours(calendar: WorkCalendar, day: date) -> tuple[TimeRange, ...]:
    own = calendar.hours.get(Weekday.of(day), ())
    return own or next((h for h in calendar.hours.values() if h), ())


def _hours(calendar: WorkCalendar, plan: YearPlan, day: date) -> tuple[TimeRange, ...]:
    exception = plan.hours.get(day)
    return calendar.hours.get(Weekday.of(day), ()) if exception is None else exception


def _works(calendar: WorkCalendar, plan: YearPlan, day: date) -> bool:
    return bool(_hours(calendar, plan, day))


def _shortened(ranges: tuple[TimeRange, ...], cut: timedelta) -> tuple[TimeRange, ...]:
    """The ranges closing `cut` earlier: taken off the end, across a break if need be."""
    left = int(cut.total_seconds()) // 60
    kept: list[TimeRange] = []
    for span in reversed(ranges):
        length = span.end - span.start
        if left >= length:
            left -= length
            continue
        kept.append(TimeRange(start=span.start, end=span.end - left) if left else span)
        left = 0
    return tuple(reversed(kept))


class DayKind(StrEnum):
    NON_WORKING = "non_working"
    WORKING = "working"  # a weekend day made working
    SHORT = "short"  # a shortened working day


@dataclass(frozen=True, slots=True)
class CalendarDay:
    """One line of `otklik calendar`."""

    day: date
    kind: DayKind
    why: str  # "weekend", a holiday's name, why a day is moved
    hours: tuple[TimeRange, ...] = ()
    shorter_by: timedelta | None = None


def year_listing(calendar: WorkCalendar, year: int, language: str | None) -> list[CalendarDay]:
    """The year's non-working days (weekends by the weekly hours included), working weekend
    days and shortened days, in date order."""
    plan = calendar.year(year, language)
    weekend = "weekend" if language is None or not language.startswith("ru") else "выходной"
    days: list[CalendarDay] = []
    day, end = date(year, 1, 1), date(year + 1, 1, 1)
    while day < end:
        hours = calendar.hours_on(day)
        if not hours:
            days.append(CalendarDay(day, DayKind.NON_WORKING, plan.closed.get(day, weekend)))
        elif day in plan.working:
            days.append(CalendarDay(day, DayKind.WORKING, plan.working[day], hours))
        if hours and day in plan.short:
            why = "shortened" if weekend == "weekend" else "сокращённый"
            days.append(CalendarDay(day, DayKind.SHORT, why, hours, plan.short[day]))
        day += _DAY
    return days
