"""Crisis mode, the pure part: which windows to count, what the limits are, and what the
counts mean for the crises already open.

A threshold is "crossed" when the negative mentions in its sliding window reach its limit: an
absolute `count`, or `ratio` × the baseline (the average of the same window at the same time
of day on each of the previous `baseline_days` days), and never less than `min_count`. A
crisis closes once the count has stayed below the limit for the whole `cool_down`; a rise
back to the limit meanwhile starts the cool-down over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.settings.crisis_rules import CrisisThreshold, ThresholdScope

__all__ = [
    "CountWindow",
    "Crisis",
    "CrisisChange",
    "CrisisEvent",
    "CrisisEventKind",
    "Reading",
    "WindowCounts",
    "decide",
    "is_settled",
    "limit_of",
    "read",
    "windows_for",
]

DAY = timedelta(days=1)
# A higher peak is always stored, but it becomes a timeline event (and a card edit) only when
# it is this much above the last one announced: a storm counted every few seconds would
# otherwise edit the card and grow the timeline on every count.
PEAK_STEP = 1.1
# The baseline ("this window on previous days") moves in these steps, not with every second.
BASELINE_STEP = timedelta(minutes=5)


class CrisisEventKind(StrEnum):
    OPENED = "opened"
    PEAK = "peak"  # the count in the window reached a new high
    BELOW = "below"  # fell under the limit: the cool-down starts
    ABOVE = "above"  # back at the limit during the cool-down: it starts over
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class CrisisEvent:
    at: datetime
    kind: CrisisEventKind
    count: int


@dataclass(frozen=True, slots=True)
class Crisis:
    threshold_id: str
    scope: ThresholdScope
    key: str | None
    opened_at: datetime
    count_at_open: int
    limit: float  # the limit crossed at opening
    peak_count: int
    peak_at: datetime
    below_since: datetime | None = None
    closed_at: datetime | None = None
    drill: bool = False
    timeline: tuple[CrisisEvent, ...] = ()
    id: int | None = None
    drill_run_id: int | None = None  # a drill's crisis: counts nowhere, no threshold opened it

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def version(self) -> int:
        """Grows with every change; message keys use it so a re-run posts nothing twice."""
        return len(self.timeline)


@dataclass(frozen=True, slots=True)
class CountWindow:
    """[start, end) in UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """Negative mentions in one window: in all, per department of their case, per code
    (casefolded)."""

    total: int = 0
    by_department: Mapping[str, int] = field(default_factory=dict)
    by_code: Mapping[str, int] = field(default_factory=dict)

    def of(self, scope: ThresholdScope, key: str | None) -> int:
        if scope is ThresholdScope.ALL:
            return self.total
        if scope is ThresholdScope.DEPARTMENT:
            return self.by_department.get(key or "", 0)
        return self.by_code.get((key or "").casefold(), 0)


@dataclass(frozen=True, slots=True)
class Reading:
    """One threshold now: the count in its window and the limit it is compared with."""

    threshold: CrisisThreshold
    count: int
    limit: float
    baseline: float | None = None  # ratio thresholds: the average of the previous days

    @property
    def crossed(self) -> bool:
        return self.count >= self.limit


@dataclass(frozen=True, slots=True)
class CrisisChange:
    before: Crisis | None  # None: it opens now
    after: Crisis
    events: tuple[CrisisEvent, ...]  # empty: only the stored peak grew (no message)

    @property
    def opened(self) -> bool:
        return self.before is None

    @property
    def closed(self) -> bool:
        return self.before is not None and self.after.closed_at is not None


def windows_for(threshold: CrisisThreshold, now: datetime) -> list[CountWindow]:
    """The current window first, then the same window on each baseline day (ratio only).

    Baseline windows end on a BASELINE_STEP boundary: they lie in the past, so their counts do
    not change and an evaluation every few seconds can reuse them (is_settled)."""
    windows = [CountWindow(now - threshold.window, now)]
    anchor = now - timedelta(seconds=now.timestamp() % BASELINE_STEP.total_seconds())
    for day in range(1, (threshold.baseline_days or 0) + 1):
        end = anchor - day * DAY
        windows.append(CountWindow(end - threshold.window, end))
    return windows


def is_settled(window: CountWindow, now: datetime) -> bool:
    """A window that ended a day or more ago: mentions arrive now, never in the past."""
    return window.end <= now - DAY


def limit_of(threshold: CrisisThreshold, baseline: float | None) -> float:
    if threshold.count is not None:
        return float(threshold.count)
    assert threshold.ratio is not None and threshold.min_count is not None
    return max(threshold.ratio * (baseline or 0.0), float(threshold.min_count))


def read(
    thresholds: Iterable[CrisisThreshold],
    counts: Mapping[CountWindow, WindowCounts],
    now: datetime,
) -> list[Reading]:
    """Readings for every threshold from the counts of the windows windows_for asked for."""
    readings = []
    for threshold in thresholds:
        current, *previous = windows_for(threshold, now)
        count = counts[current].of(threshold.scope, threshold.key)
        baseline = None
        if previous:
            days = [counts[w].of(threshold.scope, threshold.key) for w in previous]
            baseline = sum(days) / len(days)
        readings.append(Reading(threshold, count, limit_of(threshold, baseline), baseline))
    return readings


def decide(
    readings: Sequence[Reading],
    open_crises: Sequence[Crisis],
    now: datetime,
    cool_down: timedelta,
) -> list[CrisisChange]:
    """What changes: crises that open, peaks that grow, cool-downs that start or start over,
    crises that close. Unchanged crises are left out."""
    # A drill's crisis is no reading of a threshold: it neither blocks nor merges with one.
    by_threshold = {c.threshold_id: c for c in open_crises if c.is_open and not c.drill}
    changes: list[CrisisChange] = []
    for reading in readings:
        threshold = reading.threshold
        crisis = by_threshold.pop(threshold.id, None)
        if crisis is None:
            if reading.crossed:
                opened = CrisisEvent(now, CrisisEventKind.OPENED, reading.count)
                new = Crisis(
                    threshold_id=threshold.id,
                    scope=threshold.scope,
                    key=threshold.key,
                    opened_at=now,
                    count_at_open=reading.count,
                    limit=reading.limit,
                    peak_count=reading.count,
                    peak_at=now,
                    timeline=(opened,),
                )
                changes.append(CrisisChange(None, new, (opened,)))
            continue
        change = _follow(crisis, reading, now, cool_down)
        if change is not None:
            changes.append(change)
    # A threshold removed from the playbook ends its crisis: nothing measures it any more.
    for crisis in by_threshold.values():
        closed = CrisisEvent(now, CrisisEventKind.CLOSED, crisis.peak_count)
        after = replace(crisis, closed_at=now, timeline=(*crisis.timeline, closed))
        changes.append(CrisisChange(crisis, after, (closed,)))
    return changes


def _follow(
    crisis: Crisis, reading: Reading, now: datetime, cool_down: timedelta
) -> CrisisChange | None:
    events: list[CrisisEvent] = []
    after = crisis
    if reading.count > crisis.peak_count:
        after = replace(after, peak_count=reading.count, peak_at=now)
        if reading.count >= _announced_peak(crisis) * PEAK_STEP:
            events.append(CrisisEvent(now, CrisisEventKind.PEAK, reading.count))
    if reading.crossed:
        if after.below_since is not None:
            after = replace(after, below_since=None)
            events.append(CrisisEvent(now, CrisisEventKind.ABOVE, reading.count))
    elif after.below_since is None:
        after = replace(after, below_since=now)
        events.append(CrisisEvent(now, CrisisEventKind.BELOW, reading.count))
    elif now - after.below_since >= cool_down:
        after = replace(after, closed_at=now)
        events.append(CrisisEvent(now, CrisisEventKind.CLOSED, reading.count))
    if after == crisis:
        return None
    return CrisisChange(crisis, replace(after, timeline=(*after.timeline, *events)), tuple(events))


def _announced_peak(crisis: Crisis) -> int:
    peaks = [
        e.count for e in crisis.timeline if e.kind in (CrisisEventKind.OPENED, CrisisEventKind.PEAK)
    ]
    return max(peaks, default=crisis.count_at_open)
