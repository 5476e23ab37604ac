"""What digests and reports are computed from: aggregate figures the database returns.

store/queries/reports.py computes every figure with aggregate SQL (GROUP BY, window functions
for the percentiles) so a digest over a million mentions reads a few hundred rows, never all
of them. The definitions below are the ones the README states; drill cases never count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.model import AuthorLabel, Outcome

# A case is "answered" when its answer went out: published, or closed with an outcome that
# is an answer given some other way. Closing with no_action is not an answer.
ANSWERED_OUTCOMES = frozenset(o for o in Outcome if o is not Outcome.NO_ACTION)


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end): UTC-aware moments, usually local midnights of the organisation."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class CaseCounts:
    """Cases of one department and source. new, answered, not_negative count what happened in
    the period; open and overdue are the state at `now`."""

    department: str
    source: str
    new: int = 0
    answered: int = 0
    not_negative: int = 0
    open: int = 0
    overdue: int = 0


@dataclass(frozen=True, slots=True)
class SlaCounts:
    """Deadlines of one department that fell due in the period (before now), and how many were
    kept. A first-reply deadline is kept when the author was first contacted by then (a reply
    published, or written in private; taking the case is no reply), or the case was closed or
    ignored by then; an answer deadline when an answer was approved, or the case was closed or
    ignored, by then. The reaction (somebody took the case) is internal: counted apart, only
    for cases whose policy sets a reaction deadline, and not in `compliance`."""

    department: str
    first_touch_due: int = 0
    first_touch_met: int = 0
    answer_due: int = 0
    answer_met: int = 0
    reaction_due: int = 0
    reaction_met: int = 0

    @property
    def due(self) -> int:
        return self.first_touch_due + self.answer_due

    @property
    def met(self) -> int:
        return self.first_touch_met + self.answer_met

    @property
    def compliance(self) -> float | None:
        """Share of the deadlines kept, both kinds pooled; None when nothing fell due."""
        return self.met / self.due if self.due else None


@dataclass(frozen=True, slots=True)
class Durations:
    """Nearest-rank median and 90th percentile, in seconds, of `count` durations."""

    count: int = 0
    median_s: float | None = None
    p90_s: float | None = None


@dataclass(frozen=True, slots=True)
class ResponseTimes:
    """Time from a case's creation to its first reply (cases first replied to in the period) and
    to its approved answer (cases approved in the period). department None: all of them."""

    department: str | None
    first_touch: Durations = Durations()
    answer: Durations = Durations()


@dataclass(frozen=True, slots=True)
class HourCount:
    """Negative mentions of a department in one hour; hour 0 starts at the period's start.
    department None: mentions that belong to no case."""

    department: str | None
    hour: int
    count: int


@dataclass(frozen=True, slots=True)
class CodeCount:
    code: str
    cases: int


@dataclass(frozen=True, slots=True)
class CrisisSpan:
    id: int
    threshold_id: str
    scope: str
    key: str | None
    opened_at: datetime
    count_at_open: int
    limit: float
    peak_count: int
    peak_at: datetime
    below_since: datetime | None
    closed_at: datetime | None
    # [{"at": ISO time, "event": opened|peak|below|above|closed, "count": n}], oldest first
    timeline: tuple[dict[str, Any], ...] = ()
    # When each checklist item that is done now was ticked, earliest first (an item unticked
    # later is not done: bot/crisis/checklist.py).
    checklist_done_at: tuple[datetime, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthorSeen:
    """An author with mentions in the period: `mentions` all of them, `negative` the negative."""

    id: int
    display_name: str
    labels: frozenset[AuthorLabel]
    mentions: int
    negative: int


@dataclass(frozen=True, slots=True)
class OpenCase:
    id: int
    department: str
    source: str
    state: str
    priority: str
    created_at: datetime
    codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Correction:
    """A case ignored as "not negative": who said so and when."""

    case_id: int
    department: str
    source: str
    at: datetime
    actor: str | None


class ReportRepository(Protocol):
    """Aggregate reads for digests and exports. Every method is one or two aggregate queries;
    none loads rows in proportion to the data."""

    async def case_counts(self, period: Period, now: datetime) -> list[CaseCounts]:
        """Per (department, source), only pairs with something to count."""
        ...

    async def sla(self, period: Period, now: datetime) -> list[SlaCounts]:
        """Per department with a deadline due in [start, min(end, now))."""
        ...

    async def response_times(self, period: Period) -> list[ResponseTimes]:
        """Per department, then one row with department None for all departments."""
        ...

    async def negative_by_hour(self, period: Period) -> list[HourCount]: ...

    async def negative_mentions(self, period: Period) -> int: ...

    async def top_codes(self, period: Period, limit: int) -> list[CodeCount]:
        """Codes of the cases opened in the period, most frequent first."""
        ...

    async def crises(self, period: Period) -> list[CrisisSpan]:
        """Crises open at any moment of the period, oldest first."""
        ...

    async def labelled_authors(
        self, period: Period, labels: Sequence[AuthorLabel], limit: int
    ) -> list[AuthorSeen]:
        """Authors carrying any of `labels` with mentions in the period, most active first."""
        ...

    async def recurring_authors(
        self, period: Period, min_negative: int, limit: int
    ) -> list[AuthorSeen]:
        """Authors with at least `min_negative` negative mentions in the period."""
        ...

    async def oldest_open(self, limit: int) -> list[OpenCase]: ...

    async def not_negative(self, period: Period, limit: int) -> list[Correction]:
        """Cases ignored as not negative in the period, latest first."""
        ...
