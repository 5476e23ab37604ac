"""How figures read in a digest line, shared by the evening digest and the weekly report.

Percentages rounded the way people round them, durations as H:MM, clock times, names cut to a
phone's width, counts rolled up by department or source, SLA pooled over departments. Pure
functions of figures (bot/reports/figures.py); nothing here reads or sends. Next:
bot/reports/digest.py, the service that reads the figures and queues the digests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.reports.figures import AuthorSeen, CaseCounts, ResponseTimes, SlaCounts
from bot.staff.directory import Directory

MAX_CODES = 5  # complaint codes shown in either report (the weekly reads twice as many)
MAX_SHOWN_NAME = 40  # characters of an author's or department's name in a digest line

CASE_COUNTS = ("new", "answered", "overdue", "open", "not_negative")


class Names:
    """Department names as a digest line shows them: short, with a placeholder for none."""

    def __init__(self, directory: Directory, no_department: str = "—") -> None:
        self._directory = directory
        self._none = no_department

    def department(self, dept: str | None) -> str:
        if not dept:
            return self._none
        return short(self._directory.department_name(dept))


def short(name: str) -> str:
    return name if len(name) <= MAX_SHOWN_NAME else name[: MAX_SHOWN_NAME - 1] + "…"


def pool(rows: Iterable[SlaCounts]) -> SlaCounts:
    """SLA counts of all departments together."""
    rows = list(rows)
    return SlaCounts(
        "*",
        first_touch_due=sum(r.first_touch_due for r in rows),
        first_touch_met=sum(r.first_touch_met for r in rows),
        answer_due=sum(r.answer_due for r in rows),
        answer_met=sum(r.answer_met for r in rows),
        reaction_due=sum(r.reaction_due for r in rows),
        reaction_met=sum(r.reaction_met for r in rows),
    )


def overall(times: Iterable[ResponseTimes]) -> ResponseTimes:
    """The response times over all departments (the row without a department)."""
    return next((t for t in times if t.department is None), ResponseTimes(None))


def rollup(
    counts: Iterable[CaseCounts], key: Callable[[CaseCounts], str]
) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for row in counts:
        slot = out.setdefault(key(row), dict.fromkeys(CASE_COUNTS, 0))
        for name in CASE_COUNTS:
            slot[name] += int(getattr(row, name))
    return out


def person(author: AuthorSeen) -> dict[str, Any]:
    return {
        "id": author.id,
        "name": short(author.display_name),
        "mentions": author.mentions,
        "negative": author.negative,
        "labels": sorted(label.value for label in author.labels),
    }


def percent(share: float | None) -> int | None:
    # Rounded half up, the way people round a percentage.
    return None if share is None else int(share * 100 + 0.5)


def duration(seconds: float | None) -> str | None:
    """H:MM for a column of figures, rounded down to the minute; None when there is nothing
    to measure. A duration in a sentence is said in words: bot.messages.texts.spell_duration
    (`|duration` in templates)."""
    if seconds is None:
        return None
    minutes = int(seconds // 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def hm(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%H:%M")
