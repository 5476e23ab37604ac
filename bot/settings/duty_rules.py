"""The duty rota as the config states it: a weekly rota, and date ranges that override it.
Who is on duty at a moment is bot/staff/duty.py's to say.

Times are the organisation's wall-clock time, so a handover at "mon 09:00" stays at 09:00
across a daylight-saving change.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, Self

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from bot.settings.fields import Day, StrictModel, Weekday, impossible_date, shown

__all__ = [
    "WEEK",
    "DutyConfig",
    "DutyOverride",
    "DutyRota",
    "Handover",
    "check_duty_staff",
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
    raise ValueError(f"expected a time like '09:00', got {shown(value)}")


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
                impossible_date(text)
                or "expected a local date or time like '2026-12-30' or '2026-12-30 09:00', "
                f"got {value!r}"
            ) from None
    else:
        raise ValueError(f"expected a date or time like '2026-12-30 09:00', got {shown(value)}")
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
