"""The periods a digest covers, in local time: today so far, and the last two whole weeks.

Pure date arithmetic in the organisation's (or the digest's) time zone, DST-safe. Next:
bot/reports/evening.py reads and shapes the evening digest for such a period.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.reports.figures import Period


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first moment of a local day (DST-safe: a day may have 23 or 25 hours)."""
    return datetime.combine(day, time(), tzinfo=tz)


def day_so_far(now: datetime, tz: ZoneInfo) -> Period:
    """Today in the given time zone, from local midnight to now."""
    return Period(local_midnight(now.astimezone(tz).date(), tz), now)


def weeks(now: datetime, tz: ZoneInfo) -> tuple[Period, Period]:
    """The seven whole local days before today, and the seven before those."""
    today = now.astimezone(tz).date()
    this = Period(local_midnight(today - timedelta(days=7), tz), local_midnight(today, tz))
    previous = Period(local_midnight(today - timedelta(days=14), tz), this.start)
    return this, previous
