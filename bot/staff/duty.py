"""Who is on duty at a moment, from the rota and overrides in the config
(bot/settings/duty_rules.py).

Everything is reckoned in the organisation's wall-clock time, so a handover at "mon 09:00"
stays at 09:00 across a daylight-saving change; only the result is turned back into UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.settings.duty_rules import WEEK, DutyConfig

__all__ = ["DutyShift", "who_is_on_duty"]


@dataclass(frozen=True, slots=True)
class DutyShift:
    """Staff ids on duty at a moment, and until when (UTC; None: no end is known)."""

    staff: tuple[str, ...]
    until: datetime | None


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
