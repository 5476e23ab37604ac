"""A scenario (bot/settings/drill_scenarios.py) as a timeline: every synthetic mention with its
moment in drill time, and which of them are due at a real moment. Pure; service.py plays it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.settings.drill_scenarios import BurstShape, DrillBurst, DrillScenario


@dataclass(frozen=True, slots=True)
class PlannedMention:
    index: int  # position in the timeline: the mention's idempotency key within a run
    at: timedelta  # drill time since the start
    storyline: str
    number: int  # 1-based, within its storyline
    department: str
    source: str
    text: str


def burst_offsets(burst: DrillBurst) -> list[timedelta]:
    """Drill-time offsets of a burst's mentions, to the second. The first comes at `at`;
    the rest spread over `over` evenly, ramping up (sparse first) or as a spike (dense first)."""
    offsets = []
    for i in range(burst.count):
        fraction = i / burst.count
        if burst.shape is BurstShape.RAMP:
            fraction = fraction**0.5
        elif burst.shape is BurstShape.SPIKE:
            fraction = fraction**2
        seconds = round(burst.over.total_seconds() * fraction)
        offsets.append(burst.at + timedelta(seconds=seconds))
    return offsets


def timeline(scenario: DrillScenario, locale: str) -> list[PlannedMention]:
    """Every mention of the scenario in the order they come (ties: storyline order)."""
    planned: list[tuple[timedelta, int, str, int, str, str, str]] = []
    for order, storyline in enumerate(scenario.storylines):
        texts = storyline.texts.get(locale)
        offsets = sorted(o for burst in storyline.bursts for o in burst_offsets(burst))
        for number, at in enumerate(offsets, start=1):
            text = texts[(number - 1) % len(texts)].replace("{n}", str(number))
            planned.append(
                (at, order, storyline.id, number, storyline.department, storyline.source, text)
            )
    planned.sort(key=lambda p: (p[0], p[1], p[3]))
    return [
        PlannedMention(i, at, story, number, dept, source, text)
        for i, (at, _, story, number, dept, source, text) in enumerate(planned)
    ]


def real_offset(at: timedelta, hour_in_minutes: float) -> timedelta:
    """Real time after the start at which a moment of drill time comes."""
    return at * (hour_in_minutes / 60.0)


def due_count(
    planned: list[PlannedMention], hour_in_minutes: float, started_at: datetime, now: datetime
) -> int:
    """How many of the timeline's mentions are due by `now` (the timeline is in order)."""
    count = 0
    for mention in planned:
        if started_at + real_offset(mention.at, hour_in_minutes) > now:
            break
        count += 1
    return count
