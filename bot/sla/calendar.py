"""SLA arithmetic in working time: deadlines, elapsed open time and reminder moments.

A policy's "4h" means four hours during which its calendar is open. Calendars are written in
local wall-clock time ("09:00-18:00" in Europe/Berlin), while cases live in UTC, so every
opening and closing is turned into an aware instant with zoneinfo and all durations are
measured between instants: a DST night is as long as it really is (23 or 25 hours).

Conventions:
- a moment is working time exactly when WorkCalendar.is_open says so (its local wall-clock
  time lies in the hours of its local date), so the hour skipped in spring never counts and
  the hour repeated in autumn counts twice if it lies within the hours;
- every function takes aware datetimes in any zone and returns aware UTC datetimes;
- a moment outside working hours starts counting at the next opening;
- adding zero returns the start unchanged (zero open time has passed at once);
- add_working_time gives the *earliest* moment the time is used up (a deadline may fall at a
  closing time, say Friday 18:00), subtract_working_time the *latest* moment that much time
  is still left (a "-15m" reminder before a Monday 09:15 deadline fires at Monday 09:00,
  not at Friday's closing).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.model import Priority
from bot.settings.playbook import Playbook
from bot.settings.sla_rules import Reminder, WorkCalendar

__all__ = [
    "Deadlines",
    "add_working_time",
    "plan_deadlines",
    "reminder_times",
    "subtract_working_time",
    "working_time_between",
]

# A calendar closed this many days in a row is treated as never open: better a loud error at
# planning time than a walk through the centuries.
_MAX_CLOSED_DAYS = 400
_ZERO = timedelta(0)
_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)

_OFFSET_MARGIN = timedelta(hours=15)
Span = tuple[datetime, datetime]  # [start, end) in UTC
Piece = tuple[datetime, datetime, timedelta]  # [start, end) in UTC and the UTC offset there


@dataclass(frozen=True, slots=True)
class Deadlines:
    """The SLA deadlines of a case, aware UTC. `reaction` only when the policy sets one."""

    first_touch: datetime
    answer: datetime
    resolution: datetime
    reaction: datetime | None = None


# --- public API ------------------------------------------------------------------------------


def add_working_time(
    calendar: WorkCalendar, start: datetime, duration: timedelta, default_tz: ZoneInfo
) -> datetime:
    """The earliest moment by which `duration` of open time has passed since `start`.

    A start outside working hours begins counting at the next opening; a zero duration returns
    `start` itself (in UTC). Raises ValueError for a negative duration, a naive `start`, or a
    calendar that is never open.
    """
    origin = _as_utc(start, "start")
    if duration < _ZERO:
        raise ValueError(f"duration must not be negative, got {duration}; use subtract")
    if duration == _ZERO:
        return origin
    if calendar.always_open:
        return origin + duration  # UTC arithmetic: a DST night counts as it really lasts
    _check_has_hours(calendar)
    remaining = duration
    for begin, end in _spans_forward(calendar, calendar.zone(default_tz), origin):
        length = end - begin
        if remaining <= length:
            return begin + remaining
        remaining -= length
    raise AssertionError("unreachable: the walk forward never ends")  # pragma: no cover


def subtract_working_time(
    calendar: WorkCalendar, end: datetime, duration: timedelta, default_tz: ZoneInfo
) -> datetime:
    """The latest moment before `end` with `duration` of open time still left until `end`.

    The mirror of add_working_time: an `end` outside working hours counts back from the last
    closing; a zero duration returns `end` itself (in UTC). Landing exactly on an opening, the
    opening is returned rather than the previous closing.
    """
    origin = _as_utc(end, "end")
    if duration < _ZERO:
        raise ValueError(f"duration must not be negative, got {duration}; use add")
    if duration == _ZERO:
        return origin
    if calendar.always_open:
        return origin - duration
    _check_has_hours(calendar)
    remaining = duration
    for begin, finish in _spans_backward(calendar, calendar.zone(default_tz), origin):
        length = finish - begin
        if remaining <= length:
            return finish - remaining
        remaining -= length
    raise AssertionError("unreachable: the walk backward never ends")  # pragma: no cover


def working_time_between(
    calendar: WorkCalendar, start: datetime, end: datetime, default_tz: ZoneInfo
) -> timedelta:
    """Open time between two moments; zero when `end` is not after `start`.

    The inverse of add_working_time: working_time_between(s, add_working_time(s, d)) == d.
    A calendar that is never open simply yields zero here.
    """
    begin, finish = _as_utc(start, "start"), _as_utc(end, "end")
    if finish <= begin:
        return _ZERO
    if calendar.always_open:
        return finish - begin
    total = _ZERO
    for span_start, span_end in _spans_forward(
        calendar, calendar.zone(default_tz), begin, until=finish
    ):
        if span_start >= finish:
            break
        total += min(span_end, finish) - span_start
    return total


def plan_deadlines(
    playbook: Playbook,
    department: str,
    priority: Priority,
    opened_at: datetime,
    default_tz: ZoneInfo,
    policy_override: str | None = None,
) -> tuple[str, Deadlines]:
    """The SLA policy's name and the case's deadlines, each counted from `opened_at` in working
    time on the policy's calendar."""
    name, policy = playbook.sla_policy_for(department, priority, policy_override)
    calendar = playbook.calendar(policy.calendar)
    deadlines = Deadlines(
        first_touch=add_working_time(calendar, opened_at, policy.first_touch, default_tz),
        answer=add_working_time(calendar, opened_at, policy.answer, default_tz),
        resolution=add_working_time(calendar, opened_at, policy.resolution, default_tz),
        reaction=(
            add_working_time(calendar, opened_at, policy.reaction, default_tz)
            if policy.reaction is not None
            else None
        ),
    )
    return name, deadlines


def reminder_times(
    calendar: WorkCalendar,
    start: datetime,
    due: datetime,
    reminders: Iterable[Reminder],
    default_tz: ZoneInfo,
) -> list[datetime]:
    """When each reminder for a deadline fires: sorted, without duplicates, strictly after
    `start` and not after `due`.

    The allowed time is the open time between `start` and `due` (after a pause the due moment
    may have moved, so it is measured rather than taken from the policy). '80%' fires once that
    share of it has passed; '-15m' fires when 15 working minutes are left, counted back from
    `due`. A reminder that would fire at once (an offset longer than the allowed time) is
    dropped, as Reminder.elapsed says.
    """
    begin, finish = _as_utc(start, "start"), _as_utc(due, "due")
    allowed = working_time_between(calendar, begin, finish, default_tz)
    moments: set[datetime] = set()
    for reminder in reminders:
        if reminder.elapsed(allowed) is None:
            continue
        if reminder.fraction is not None:
            at = add_working_time(calendar, begin, allowed * reminder.fraction, default_tz)
        else:
            assert reminder.before is not None
            at = subtract_working_time(calendar, finish, reminder.before, default_tz)
        if begin < at <= finish:
            moments.add(at)
    return sorted(moments)


# --- walking the calendar --------------------------------------------------------------------


def _as_utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {moment!r}")
    # Aware arithmetic in one non-UTC zone is wall-clock arithmetic, wrong across DST.
    return moment.astimezone(UTC)


def _check_has_hours(calendar: WorkCalendar) -> None:
    if not any(calendar.hours.values()):
        raise ValueError(f"calendar {calendar.name!r} has no working hours on any day of the week")


def _never_open(calendar: WorkCalendar) -> ValueError:
    return ValueError(
        f"calendar {calendar.name!r} is closed for {_MAX_CLOSED_DAYS} days in a row "
        "(check its hours and holidays)"
    )


def _offset_pieces(zone: ZoneInfo, low: datetime, high: datetime) -> list[Piece]:
    """Split [low, high) where the zone's UTC offset changes. A window of a couple of days holds
    at most one change in real zones (DST switches are months apart)."""
    low_offset = low.astimezone(zone).utcoffset()
    high_offset = high.astimezone(zone).utcoffset()
    assert low_offset is not None and high_offset is not None
    if low_offset == high_offset:
        return [(low, high, low_offset)]
    # Bisect for the switch; zone offsets change on whole seconds.
    before, after = low, high
    while after - before > _SECOND:
        middle = before + timedelta(seconds=int((after - before).total_seconds()) // 2)
        if middle.astimezone(zone).utcoffset() == high_offset:
            after = middle
        else:
            before = middle
    return [(low, after, low_offset), (after, high, high_offset)]


# Calendars are not hashable (pydantic models holding dicts), so the cache is keyed by
# identity and keeps the calendar itself to prove the id still means it.
_SPANS: dict[tuple[int, ZoneInfo, date], tuple[WorkCalendar, tuple[Span, ...]]] = {}
_SPANS_KEPT = 4096  # a few years of days for a few calendars


def _day_spans(calendar: WorkCalendar, zone: ZoneInfo, day: date) -> tuple[Span, ...]:
    """_open_spans of a day, remembered: every deadline planned walks the same few days."""
    key = (id(calendar), zone, day)
    hit = _SPANS.get(key)
    if hit is not None and hit[0] is calendar:
        return hit[1]
    spans = tuple(_open_spans(calendar, zone, day))
    if len(_SPANS) >= _SPANS_KEPT:
        _SPANS.clear()
    _SPANS[key] = (calendar, spans)
    return spans


def _open_spans(calendar: WorkCalendar, zone: ZoneInfo, day: date) -> list[Span]:
    """Open spans of a local date as UTC instants, ordered and merged.

    An instant is open exactly when WorkCalendar.is_open says so: its local date has a range
    holding its local wall-clock time. Hence on the spring-forward night '02:00-03:00' is
    empty and '01:00-04:00' lasts 2 hours, on the fall-back night the repeated hour counts
    twice ('00:00-24:00' lasts 25 hours). While the offset is constant, wall time is UTC plus
    the offset, so each range maps to one UTC span per stretch of constant offset.
    """
    ranges = calendar.hours_on(day)
    if not ranges:
        return []
    midnight = datetime.combine(day, time(), tzinfo=UTC)  # the local wall clock, read as UTC
    # Every instant of the local date lies in this window: offsets stay within -12h..+14h.
    pieces = _offset_pieces(zone, midnight - _OFFSET_MARGIN, midnight + _DAY + _OFFSET_MARGIN)
    found: list[Span] = []
    for hours in ranges:
        opens, closes = (midnight + timedelta(minutes=m) for m in (hours.start, hours.end))
        for low, high, offset in pieces:
            begin, end = max(low, opens - offset), min(high, closes - offset)
            if end > begin:
                found.append((begin, end))
    spans: list[Span] = []
    for begin, end in sorted(found):
        if spans and begin <= spans[-1][1]:  # touching ranges are one stretch of open time
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((begin, end))
    return spans


def _spans_forward(
    calendar: WorkCalendar, zone: ZoneInfo, moment: datetime, until: datetime | None = None
) -> Iterator[Span]:
    """Open spans from `moment` on, in order, disjoint, the first clipped to start at `moment`.

    Without `until` the walk is endless and raises ValueError after _MAX_CLOSED_DAYS closed
    days in a row; with it, the walk stops after the local date of `until`.
    """
    # Start a day early: cheap insurance for a zone whose clock steps back across midnight.
    day = moment.astimezone(zone).date() - _DAY
    last_day = until.astimezone(zone).date() + _DAY if until is not None else date.max - _DAY
    cursor = moment
    closed = 0
    while day <= last_day:
        spans = _day_spans(calendar, zone, day)
        for begin, end in spans:
            begin = max(begin, cursor)  # skip what lies before `moment` or is already counted
            if end > begin:
                yield begin, end
                cursor = end
        closed = 0 if spans else closed + 1
        if until is None and closed >= _MAX_CLOSED_DAYS:
            raise _never_open(calendar)
        day += _DAY


def _spans_backward(calendar: WorkCalendar, zone: ZoneInfo, moment: datetime) -> Iterator[Span]:
    """Open spans before `moment`, latest first, disjoint, the first clipped to end at it.
    Endless; raises ValueError after _MAX_CLOSED_DAYS closed days in a row."""
    day = moment.astimezone(zone).date() + _DAY  # one day late, mirroring _spans_forward
    cursor = moment
    closed = 0
    while True:
        spans = _day_spans(calendar, zone, day)
        for begin, end in reversed(spans):
            end = min(end, cursor)
            if end > begin:
                yield begin, end
                cursor = begin
        closed = 0 if spans else closed + 1
        if closed >= _MAX_CLOSED_DAYS:
            raise _never_open(calendar)
        day -= _DAY
