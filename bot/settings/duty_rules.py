"""Who is on duty: a weekly rota with explicit date ranges that override it.

Everything is reckoned in the organisation's wall-clock time, so a handover at "mon 09:00"
stays at 09:00 across a daylight-saving change; only the result is turned back into UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Self
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from bot.settings.fields import Day, StrictModel, Weekday

__all__ = [
    "DutyConfig",
    "DutyOverride",
    "DutyRota",
    "DutyShift",
    "Handover",
    "check_duty_staff",
    "who_is_on_duty",
]

WEEK = timedelta(days=7)
_HHMM_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_WEEKDAY_INDEX = {day: i for i, day in enumerate(Weekday)}


def _parse_hhmm(value: object) -> object:
    if isinstance(value, str):
        match = _HHMM_RE.match(value.strip())
        if match is None or int(match[1]) > 23 or int(match[2]) > 59:
            raise ValueError(f"expected a time like '09:00', got {value!r}")
        return time(int(match[1]), int(match[2]))
    # YAML 1.1 reads an unquoted 09:00 as the sexagesimal number 540.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)
    if isinstance(value, time):
        return value
    raise ValueError(f"expected a time like '09:00', got {value!r}")


def _parse_local(value: object) -> object:
    """A local date or date-time in the organisation's zone, kept as written (naive)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return value
    elif isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"expected a local date or time like '2026-12-30' or '2026-12-30 09:00', "
                f"got {value!r}"
            ) from None
    else:
        raise ValueError(f"expected a date or time like '2026-12-30 09:00', got {value!r}")
    if moment.tzinfo is not None:
        raise ValueError(
            f"{value!r}: write local time without an offset (the config's timezone applies)"
        )
    return moment


_Time = Annotated[time, BeforeValidator(_parse_hhmm)]
_Local = Annotated[datetime | date, BeforeValidator(_parse_local)]


class Handover(StrictModel):
    weekday: Weekday = Weekday.MON
    time: _Time = time(9, 0)


class DutyRota(StrictModel):
    """Staff take a week each, in order, handing over at `handover`; the first handover at
    or after `start` begins the first person's week."""

    staff: list[str] = Field(min_length=1)
    start: Day
    handover: Handover = Field(default_factory=Handover)

    def first_handover(self) -> datetime:
        """Local (naive) moment of the first handover."""
        ahead = (_WEEKDAY_INDEX[self.handover.weekday] - self.start.weekday()) % 7
        return datetime.combine(self.start + timedelta(days=ahead), self.handover.time)


class DutyOverride(StrictModel):
    """Someone on duty from `from` until `to`, whatever the rota says. A bare date in `from`
    starts at midnight; a bare date in `to` includes that whole day."""

    model_config = ConfigDict(populate_by_name=True)  # merged with StrictModel's

    staff: str
    start: _Local = Field(alias="from")
    end: _Local = Field(alias="to")

    @property
    def starts(self) -> datetime:
        if isinstance(self.start, datetime):
            return self.start
        return datetime.combine(self.start, time(0, 0))

    @property
    def ends(self) -> datetime:
        if isinstance(self.end, datetime):
            return self.end
        return datetime.combine(self.end + timedelta(days=1), time(0, 0))

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.ends <= self.starts:
            raise ValueError("'to' must come after 'from'")
        return self


class DutyConfig(StrictModel):
    rota: DutyRota | None = None
    overrides: list[DutyOverride] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DutyShift:
    """Staff ids on duty at a moment, and until when (UTC; None: no end is known)."""

    staff: tuple[str, ...]
    until: datetime | None


def check_duty_staff(duty: DutyConfig, staff_ids: set[str]) -> list[tuple[str, str]]:
    """(path under `duty`, message) for every staff id the staff list does not have."""
    problems: list[tuple[str, str]] = []
    known = ", ".join(sorted(staff_ids)) or "none defined"
    if duty.rota is not None:
        for i, staff_id in enumerate(duty.rota.staff):
            if staff_id not in staff_ids:
                problems.append((f"rota.staff[{i}]", f"unknown staff id {staff_id!r} ({known})"))
    for i, override in enumerate(duty.overrides):
        if override.staff not in staff_ids:
            problems.append(
                (f"overrides[{i}].staff", f"unknown staff id {override.staff!r} ({known})")
            )
    return problems


def _utc(local: datetime, tz: ZoneInfo) -> datetime:
    return local.replace(tzinfo=tz).astimezone(ZoneInfo("UTC"))


def who_is_on_duty(duty: DutyConfig, tz: ZoneInfo, at: datetime) -> DutyShift:
    """Overrides covering `at` win over the rota. An empty shift means the config names
    nobody for this moment (the caller falls back to the duty role)."""
    local = at.astimezone(tz).replace(tzinfo=None)
    covering = [o for o in duty.overrides if o.starts <= local < o.ends]
    if covering:
        names = tuple(dict.fromkeys(o.staff for o in covering))
        return DutyShift(names, _utc(min(o.ends for o in covering), tz))
    # Without an override the shift lasts until the next handover or the next override.
    upcoming = [o.starts for o in duty.overrides if o.starts > local]
    if duty.rota is None:
        return DutyShift((), _utc(min(upcoming), tz) if upcoming else None)
    first = duty.rota.first_handover()
    # Whole local weeks since the first handover; before it, the rota wraps backwards.
    weeks = (local - first) // WEEK
    person = duty.rota.staff[weeks % len(duty.rota.staff)]
    upcoming.append(first + (weeks + 1) * WEEK)
    return DutyShift((person,), _utc(min(upcoming), tz))
