"""A storm in numbers: the clusters (cases that several mentions joined) of a crisis's scope,
with their size, their people and their trend, as the crisis card and the digest show them.

The store counts (uow.crises.clusters, store/repos/crises.py); this module decides what is
shown: the largest few, each with a trend (mentions in the last TREND_WINDOW against the one
before) and marked new when it was not on the card the last time it was drawn. The card is
redrawn by bot/crisis/service.py, at most every STORM_REFRESH.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import timedelta
from typing import TypedDict

from bot.messages.views import headline
from bot.model import ClusterCount

TREND_WINDOW = timedelta(minutes=15)
# Telegram counts edits against a group's 20 messages a minute: one redraw of the summary a
# minute at most (the crisis job runs every 30 s and on intake's nudges).
STORM_REFRESH = timedelta(seconds=60)
STORM_LISTED = 5  # the largest clusters on the card
NEW_LISTED = 3  # and up to this many new ones that are not among the largest yet
# A department's name on a cluster's line: eight lines of the longest names the config allows
# would push the checklist out of a 4096-character Telegram message.
DEPARTMENT_SHOWN = 40


class ClusterLine(TypedDict):
    """One cluster as a card or digest shows it (JSON-able, inside a page's context)."""

    case_id: int
    department: str  # its name
    story: str  # the case's first mention as one short line: what the cluster is about
    mentions: int
    people: int
    recent: int
    previous: int
    trend: str  # "up", "down" or "flat"
    new: bool


def trend_of(recent: int, previous: int) -> str:
    if recent > previous:
        return "up"
    if recent < previous:
        return "down"
    return "flat"


def largest(clusters: Sequence[ClusterCount]) -> list[ClusterCount]:
    """Largest first; among equals the one growing faster, then the older case."""
    return sorted(clusters, key=lambda c: (-c.mentions, -c.recent, c.case_id))


def storm_lines(
    clusters: Sequence[ClusterCount],
    shown_before: Collection[int] | None,
    department_name: Callable[[str], str],
    listed: int = STORM_LISTED,
    new_listed: int = NEW_LISTED,
) -> list[ClusterLine]:
    """The clusters a crisis card lists: the `listed` largest, then up to `new_listed` new
    ones not among them. New means not on the card when it was last drawn; `shown_before`
    None (the first drawing, or the first since a restart) marks nothing new."""
    ordered = largest(clusters)
    chosen = ordered[:listed]
    if shown_before is not None:
        chosen += [c for c in ordered[listed:] if c.case_id not in shown_before][:new_listed]
    return [
        {
            "case_id": c.case_id,
            "department": headline(department_name(c.department), DEPARTMENT_SHOWN),
            "story": "",  # filled in from the first mentions (CrisisService._storm)
            "mentions": c.mentions,
            "people": c.people,
            "recent": c.recent,
            "previous": c.previous,
            "trend": trend_of(c.recent, c.previous),
            "new": shown_before is not None and c.case_id not in shown_before,
        }
        for c in chosen
    ]
