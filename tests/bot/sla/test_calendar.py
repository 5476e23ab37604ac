"""SLA arithmetic in working time: weekends, lunch breaks, holidays, DST nights, deadlines and
reminders. Pure: no clock, no network."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.model import Priority
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, Playbook, load_playbook
from bot.settings.sla_rules import ALWAYS_OPEN, Reminder, WorkCalendar
from bot.sla import calendar as sla
from bot.sla.calendar import (
    Deadlines,
    add_working_time,
    plan_deadlines,
    reminder_times,
    subtract_working_time,
    working_time_between,
)

MOSCOW = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
ALL_DAYS = (*WEEKDAYS, "sat", "sun")
H = timedelta(hours=1)
M = timedelta(minutes=1)


def calendar(
    hours: Sequence[str],
    *,
    days: Sequence[str] = WEEKDAYS,
    tz: str | None = "Europe/Moscow",
    holidays: Sequence[date] = (),
    name: str = "office",
) -> WorkCalendar:
    return WorkCalendar.model_validate(
        {
            "name": name,
            "timezone": tz,
            "hours": {day: list(hours) for day in days},
            "holidays": frozenset(holidays),
        }
    )


def at(day: date, hhmm: str, tz: ZoneInfo = MOSCOW) -> datetime:
    hour, minute = (int(part) for part in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)


def second(day: date, hhmm: str, tz: ZoneInfo) -> datetime:
    """The second occurrence of a wall time repeated when DST ends, in UTC (PEP 495: a fold=1
    time never compares equal to a time in another zone)."""
    return at(day, hhmm, tz).replace(fold=1).astimezone(UTC)


def add(cal: WorkCalendar, start: datetime, duration: timedelta, tz: ZoneInfo = MOSCOW) -> datetime:
    return add_working_time(cal, start, duration, tz)


OFFICE = calendar(["09:00-18:00"])
LUNCH = calendar(["09:00-13:00", "14:00-18:00"])
FRI, SAT, MON, TUE, WED = (date(2026, 3, d) for d in (13, 14, 16, 17, 18))


SHIPPED = load_playbook(DEFAULT_PLAYBOOK_DIR)


@pytest.fixture
def playbook() -> Playbook:
    return SHIPPED


# --- add_working_time on simple calendars ----------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "start"),
    [
        (["09:00-18:00"], "17:30"),  # half an hour left on Friday
        (["09:00-17:00"], "16:30"),  # the same with a 17:00 close
    ],
)
def test_friday_evening_rolls_over_the_weekend(hours: list[str], start: str) -> None:
    cal = calendar(hours)
    result = add(cal, at(FRI, start), H)
    assert result == at(MON, "09:30")
    assert result.tzinfo is UTC
    with_holiday = calendar(hours, holidays=[MON])
    assert add(with_holiday, at(FRI, start), H) == at(TUE, "09:30")


def test_time_left_on_the_same_day_stays_on_it() -> None:
    # Friday 16:30 on a 09:00-18:00 calendar still has 1.5 open hours that day.
    assert add(OFFICE, at(FRI, "16:30"), H) == at(FRI, "17:30")
    # Using up the day exactly ends at the closing, not at Monday's opening.
    assert add(OFFICE, at(FRI, "09:00"), 9 * H) == at(FRI, "18:00")
    assert add(OFFICE, at(FRI, "16:30"), 90 * M) == at(FRI, "18:00")


def test_lunch_break() -> None:
    assert add(LUNCH, at(TUE, "12:30"), H) == at(TUE, "14:30")
    assert add(LUNCH, at(TUE, "13:15"), 30 * M) == at(TUE, "14:30")  # starts after lunch
    assert add(LUNCH, at(TUE, "12:00"), H) == at(TUE, "13:00")  # exactly up at lunch
    assert add(LUNCH, at(TUE, "12:00"), H + M) == at(TUE, "14:01")
    assert add(LUNCH, at(TUE, "09:00"), 8 * H) == at(TUE, "18:00")


def test_start_outside_working_hours() -> None:
    assert add(OFFICE, at(SAT, "03:00"), 2 * H) == at(MON, "11:00")  # weekend
    assert add(OFFICE, at(TUE, "23:00"), H) == at(WED, "10:00")  # night
    assert add(OFFICE, at(TUE, "07:00"), H) == at(TUE, "10:00")  # early morning
    assert add(OFFICE, at(TUE, "18:00"), H) == at(WED, "10:00")  # exactly at closing
    assert add(OFFICE, at(TUE, "09:00"), H) == at(TUE, "10:00")  # exactly at opening


def test_zero_duration_returns_the_start() -> None:
    for start in (at(SAT, "03:00"), at(TUE, "18:00"), at(TUE, "10:15")):
        assert add(OFFICE, start, timedelta(0)) == start
        assert subtract_working_time(OFFICE, start, timedelta(0), MOSCOW) == start


def test_multi_day_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    # Monday 10:00: 8h that day, 9h on Tuesday, 3h on Wednesday.
    assert add(OFFICE, at(MON, "10:00"), 20 * H) == at(WED, "12:00")
    # The walk goes day by day, not minute by minute: count the days it looks at.
    days_seen: list[date] = []
    day_spans = sla._day_spans

    def counting(cal: WorkCalendar, zone: ZoneInfo, day: date) -> list[tuple[datetime, datetime]]:
        days_seen.append(day)
        return day_spans(cal, zone, day)

    monkeypatch.setattr(sla, "_day_spans", counting)
    # 720 working hours = 16 weeks of 45 hours, each from Monday 10:00 to Monday 10:00.
    result = add(OFFICE, at(MON, "10:00"), timedelta(days=30))
    assert result == at(MON, "10:00") + timedelta(weeks=16)
    assert len(days_seen) == 16 * 7 + 2  # plus the day before the start, as insurance
    assert working_time_between(OFFICE, at(MON, "10:00"), result, MOSCOW) == timedelta(days=30)


def test_inputs_in_any_zone() -> None:
    start_utc = at(FRI, "17:30").astimezone(UTC)
    start_ny = start_utc.astimezone(NEW_YORK)
    assert add(OFFICE, start_utc, H) == add(OFFICE, start_ny, H) == at(MON, "09:30")


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add(OFFICE, datetime(2026, 3, 13, 12, 0), H)
    with pytest.raises(ValueError, match="negative"):
        add(OFFICE, at(FRI, "12:00"), -H)
    with pytest.raises(ValueError, match="negative"):
        subtract_working_time(OFFICE, at(FRI, "12:00"), -H, MOSCOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        working_time_between(OFFICE, datetime(2026, 3, 13), at(FRI, "12:00"), MOSCOW)


def test_calendar_that_is_never_open() -> None:
    no_hours = calendar([], name="closed")
    with pytest.raises(ValueError, match="'closed' has no working hours"):
        add(no_hours, at(FRI, "12:00"), H)
    mondays = [date(2024, 1, 1) + timedelta(weeks=n) for n in range(400)]  # 2024-2031
    only_holidays = calendar(["09:00-18:00"], days=["mon"], holidays=mondays, name="mondays")
    with pytest.raises(ValueError, match="'mondays' is closed for 400 days"):
        add(only_holidays, at(FRI, "12:00"), H)
    with pytest.raises(ValueError, match="closed for 400 days"):
        subtract_working_time(only_holidays, at(FRI, "12:00"), H, MOSCOW)
    # Measuring time on it is harmless: nothing was open.
    assert working_time_between(
        only_holidays, at(FRI, "12:00"), at(FRI, "12:00") + 1000 * H, MOSCOW
    ) == timedelta(0)


# --- time zones and DST ----------------------------------------------------------------------


def test_moscow_has_no_dst() -> None:
    clock = calendar(["00:00-24:00"], days=ALL_DAYS)
    night = date(2026, 3, 29)  # Berlin switches this night, Moscow does not
    assert add(clock, at(night, "01:30"), H) == at(night, "02:30")
    assert working_time_between(clock, at(night, "00:00"), at(night, "23:00"), MOSCOW) == 23 * H


def test_berlin_spring_forward() -> None:
    clock = calendar(["00:00-24:00"], days=ALL_DAYS, tz="Europe/Berlin")
    night = date(2026, 3, 29)
    result = add(clock, at(night, "01:30", BERLIN), H)
    assert result.astimezone(BERLIN) == at(night, "03:30", BERLIN)
    assert result == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    # The day is 23 hours long, exactly as on the built-in 24x7 calendar.
    day = (at(night, "00:00", BERLIN), at(date(2026, 3, 30), "00:00", BERLIN))
    assert working_time_between(clock, *day, MOSCOW) == 23 * H
    always = WorkCalendar(name=ALWAYS_OPEN, always_open=True)
    assert working_time_between(always, *day, MOSCOW) == 23 * H
    assert add_working_time(always, at(night, "01:30", BERLIN), H, MOSCOW) == result


def test_berlin_fall_back() -> None:
    clock = calendar(["00:00-24:00"], days=ALL_DAYS, tz="Europe/Berlin")
    night = date(2026, 10, 25)
    result = add(clock, at(night, "01:30", BERLIN), 2 * H)
    assert result == second(night, "02:30", BERLIN)  # in CET
    assert result == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    day = (at(night, "00:00", BERLIN), at(date(2026, 10, 26), "00:00", BERLIN))
    assert working_time_between(clock, *day, MOSCOW) == 25 * H


def test_berlin_night_shift_over_the_missing_and_repeated_hour() -> None:
    shift = calendar(["01:00-04:00"], days=ALL_DAYS, tz="Europe/Berlin")
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    # 02:00-03:00 does not exist in spring: the shift lasts 2 hours; in autumn 4.
    for night, hours in ((spring, 2 * H), (autumn, 4 * H)):
        span = (at(night, "00:00", BERLIN), at(night, "12:00", BERLIN))
        assert working_time_between(shift, *span, BERLIN) == hours
    # An opening inside the gap opens at the switch; a whole range inside it is empty.
    late = calendar(["02:30-04:00"], days=ALL_DAYS, tz="Europe/Berlin")
    assert add(late, at(spring, "00:00", BERLIN), 30 * M) == at(spring, "03:30", BERLIN)
    gap = calendar(["02:00-03:00", "10:00-11:00"], days=ALL_DAYS, tz="Europe/Berlin")
    assert add(gap, at(spring, "00:00", BERLIN), 30 * M) == at(spring, "10:30", BERLIN)
    # Open means what is_open says: the wall clock shows 02:00-02:30 twice in autumn, so
    # '00:00-02:30' holds 00:00-02:30 CEST and 02:00-02:30 CET, 3 hours.
    ending = calendar(["00:00-02:30"], days=ALL_DAYS, tz="Europe/Berlin")
    day = (at(autumn, "00:00", BERLIN), at(autumn, "12:00", BERLIN))
    assert working_time_between(ending, *day, BERLIN) == 3 * H
    assert add(ending, day[0], 2 * H + 45 * M) == second(autumn, "02:15", BERLIN)


NIGHT_CALENDARS = [
    calendar(["00:00-24:00"], days=ALL_DAYS, tz="Europe/Berlin"),
    calendar(["01:00-02:30", "02:45-04:00", "22:00-24:00"], days=ALL_DAYS, tz="Europe/Berlin"),
    calendar(["02:00-03:00", "09:00-18:00"], tz="Europe/Berlin", days=("fri", "sat", "sun")),
    calendar(["00:30-01:30", "01:45-02:15", "23:00-24:00"], days=ALL_DAYS, tz="America/New_York"),
]
DST_WEEKENDS = [
    (BERLIN, datetime(2026, 3, 27, tzinfo=UTC)),
    (BERLIN, datetime(2026, 10, 23, tzinfo=UTC)),
    (NEW_YORK, datetime(2026, 3, 6, tzinfo=UTC)),
    (NEW_YORK, datetime(2026, 10, 30, tzinfo=UTC)),
]


@pytest.mark.parametrize(
    "cal", NIGHT_CALENDARS, ids=["berlin-24h", "berlin-night", "berlin-gap-weekend", "ny-night"]
)
def test_dst_weekends_agree_with_is_open_minute_by_minute(cal: WorkCalendar) -> None:
    zone = cal.zone(MOSCOW)
    for zone_of_weekend, friday in DST_WEEKENDS:
        if zone_of_weekend is not zone:
            continue
        minutes = [friday + n * M for n in range(4 * 24 * 60)]
        open_minutes = sum(cal.is_open(minute, MOSCOW) for minute in minutes)
        assert working_time_between(cal, minutes[0], minutes[-1] + M, MOSCOW) == open_minutes * M
        # Adding the open time counted up to a minute lands on it when the minute before it
        # was open, and at the last closing before it otherwise.
        counted = 0
        for index, (previous, minute) in enumerate(itertools.pairwise(minutes)):
            was_open = cal.is_open(previous, MOSCOW)
            counted += was_open
            if index % 5:
                continue  # every fifth minute is plenty, and keeps the test fast
            reached = add(cal, minutes[0], counted * M)
            if was_open:
                assert reached == minute
            else:
                assert reached <= previous and (counted == 0 or cal.is_open(reached - M, MOSCOW))


dst_starts = st.tuples(
    st.sampled_from(DST_WEEKENDS), st.integers(min_value=0, max_value=4 * 24 * 3600)
).map(lambda pair: (pair[0][0], pair[0][1] + timedelta(seconds=pair[1])))


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    cal=st.sampled_from(NIGHT_CALENDARS),
    zone_and_start=dst_starts,
    duration=st.integers(min_value=0, max_value=3 * 24 * 3600).map(
        lambda n: n * timedelta(seconds=1)
    ),
)
def test_between_is_the_inverse_of_add_over_dst_nights(
    cal: WorkCalendar, zone_and_start: tuple[ZoneInfo, datetime], duration: timedelta
) -> None:
    zone, start = zone_and_start
    due = add_working_time(cal, start.astimezone(zone), duration, MOSCOW)
    assert working_time_between(cal, start, due.astimezone(zone), MOSCOW) == duration
    back = subtract_working_time(cal, due, duration, MOSCOW)
    assert start <= back <= due
    assert working_time_between(cal, back, due, MOSCOW) == duration


def test_berlin_office_across_both_switches() -> None:
    office = calendar(["09:00-18:00"], tz="Europe/Berlin")
    # Friday before the spring switch, Monday after it: 09:30 CEST is 07:30 UTC.
    result = add(office, at(date(2026, 3, 27), "17:30", BERLIN), H)
    assert result == datetime(2026, 3, 30, 7, 30, tzinfo=UTC)
    result = add(office, at(date(2026, 10, 23), "17:30", BERLIN), H)
    assert result == datetime(2026, 10, 26, 8, 30, tzinfo=UTC)  # 09:30 CET
    # The org's default zone does not matter when the calendar names its own.
    assert add_working_time(office, at(date(2026, 10, 23), "17:30", BERLIN), H, NEW_YORK) == result


def test_new_york() -> None:
    office = calendar(["09:00-17:00"], tz="America/New_York")
    # DST starts on Sunday 2026-03-08: Monday 09:30 is EDT, 13:30 UTC (Friday's close was 22:00).
    result = add(office, at(date(2026, 3, 6), "16:30", NEW_YORK), H)
    assert result == datetime(2026, 3, 9, 13, 30, tzinfo=UTC)
    assert result.astimezone(NEW_YORK) == at(date(2026, 3, 9), "09:30", NEW_YORK)
    clock = calendar(["00:00-24:00"], days=ALL_DAYS, tz="America/New_York")
    saturday = at(date(2026, 3, 7), "23:00", NEW_YORK)
    assert add(clock, saturday, 4 * H).astimezone(NEW_YORK) == at(
        date(2026, 3, 8), "04:00", NEW_YORK
    )
    # Fall back on 2026-11-01: 01:00-02:00 happens twice.
    sunday = at(date(2026, 11, 1), "00:30", NEW_YORK)
    assert add(clock, sunday, 2 * H) == second(date(2026, 11, 1), "01:30", NEW_YORK)


# --- the shipped "working" calendar ---------------------------------------------------------


def test_shipped_calendar_friday_short_day_and_lunch(playbook: Playbook) -> None:
    working = playbook.calendar("working")
    # Friday closes at 16:45: 15 minutes that day, 45 on Monday.
    assert add(working, at(FRI, "16:00"), H) == at(MON, "09:15")
    assert add(working, at(FRI, "16:30"), H) == at(MON, "09:45")
    # Lunch 13:00-13:45.
    assert add(working, at(date(2026, 3, 12), "12:30"), H) == at(date(2026, 3, 12), "14:15")
    # A full Monday-Thursday day is 8h15, Friday 7h.
    day = (at(MON, "00:00"), at(TUE, "00:00"))
    assert working_time_between(working, *day, MOSCOW) == 8 * H + 15 * M
    assert working_time_between(working, at(FRI, "00:00"), at(SAT, "00:00"), MOSCOW) == 7 * H


def test_shipped_calendar_holidays(playbook: Playbook) -> None:
    working = playbook.calendar("working")
    # 30 April 2026, a Thursday before 1 May, closes an hour early (17:00); 4 May is next.
    assert add(working, at(date(2026, 4, 30), "16:30"), H) == at(date(2026, 5, 4), "09:30")
    # 31 December 2026 and the New Year holidays up to 8 January 2027 (a Friday).
    assert add(working, at(date(2026, 12, 30), "17:30"), H) == at(date(2027, 1, 11), "09:30")
    # The calendar has no zone of its own: the organisation's decides.
    yekaterinburg = ZoneInfo("Asia/Yekaterinburg")  # two hours ahead of Moscow
    result = add_working_time(
        working, at(date(2026, 4, 30), "16:30", yekaterinburg), H, yekaterinburg
    )
    assert result == at(date(2026, 5, 4), "09:30", yekaterinburg)


# --- working_time_between and subtract_working_time ------------------------------------------


def test_working_time_between() -> None:
    assert working_time_between(OFFICE, at(FRI, "17:00"), at(MON, "10:00"), MOSCOW) == 2 * H
    assert working_time_between(LUNCH, at(TUE, "12:30"), at(TUE, "14:30"), MOSCOW) == H
    assert working_time_between(OFFICE, at(SAT, "01:00"), at(SAT, "23:00"), MOSCOW) == timedelta(0)
    assert working_time_between(OFFICE, at(MON, "10:00"), at(MON, "10:00"), MOSCOW) == timedelta(0)
    assert working_time_between(OFFICE, at(MON, "11:00"), at(MON, "10:00"), MOSCOW) == timedelta(0)
    next_saturday = at(SAT + timedelta(weeks=1), "00:00")
    assert working_time_between(OFFICE, at(MON, "09:00"), next_saturday, MOSCOW) == 45 * H


def test_subtract_working_time() -> None:
    assert subtract_working_time(OFFICE, at(MON, "09:30"), H, MOSCOW) == at(FRI, "17:30")
    assert subtract_working_time(LUNCH, at(TUE, "14:30"), H, MOSCOW) == at(TUE, "12:30")
    # Landing on an opening gives the opening, not the previous evening's closing.
    assert subtract_working_time(OFFICE, at(MON, "09:15"), 15 * M, MOSCOW) == at(MON, "09:00")
    # An end outside working hours counts back from the last closing.
    assert subtract_working_time(OFFICE, at(SAT, "12:00"), H, MOSCOW) == at(FRI, "17:00")
    always = WorkCalendar(name=ALWAYS_OPEN, always_open=True)
    assert subtract_working_time(always, at(SAT, "12:00"), H, MOSCOW) == at(SAT, "11:00")


CALENDARS = [
    OFFICE,
    LUNCH,
    calendar(["09:00-13:00", "14:00-18:00"], tz="Europe/Berlin", holidays=[date(2026, 10, 26)]),
    calendar(["00:00-24:00"], days=ALL_DAYS, tz="Europe/Berlin"),
    calendar(["01:00-02:30", "02:45-04:00"], days=ALL_DAYS, tz="Europe/Berlin"),
    calendar(["09:00-17:00"], tz="America/New_York"),
    WorkCalendar(name=ALWAYS_OPEN, always_open=True),
    SHIPPED.calendar("working"),
]
ZONES = [UTC, MOSCOW, BERLIN, NEW_YORK]

starts = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
).map(lambda moment: moment.replace(second=0, microsecond=0))
durations = st.integers(min_value=0, max_value=60 * 24 * 30).map(lambda n: n * M)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    cal=st.sampled_from(CALENDARS),
    start=starts,
    zone=st.sampled_from(ZONES),
    duration=durations,
    extra=st.integers(min_value=0, max_value=59_999_999).map(lambda n: timedelta(microseconds=n)),
)
def test_between_is_the_inverse_of_add(
    cal: WorkCalendar, start: datetime, zone: ZoneInfo, duration: timedelta, extra: timedelta
) -> None:
    local_start = start.astimezone(zone)
    for amount in (duration, duration + extra):  # whole minutes, and odd microseconds
        due = add_working_time(cal, local_start, amount, MOSCOW)
        assert due >= start
        assert working_time_between(cal, local_start, due, MOSCOW) == amount
        back = subtract_working_time(cal, due.astimezone(zone), amount, MOSCOW)
        assert working_time_between(cal, back, due, MOSCOW) == amount
        assert back >= start  # the latest moment with that much left is not before the start
    if duration:
        # Whole minutes: the earliest such moment ends an open minute, and subtracting lands in
        # open time too (on an opening rather than the closing before it).
        due = add_working_time(cal, local_start, duration, MOSCOW)
        assert cal.is_open(due - timedelta(seconds=1), MOSCOW)
        assert cal.is_open(subtract_working_time(cal, due, duration, MOSCOW), MOSCOW)


# --- deadlines and reminders -----------------------------------------------------------------


def test_plan_deadlines_critical_counts_every_minute(playbook: Playbook) -> None:
    opened = at(date(2026, 11, 20), "17:30")  # Friday evening
    name, due = plan_deadlines(playbook, "housing", Priority.CRITICAL, opened, MOSCOW)
    assert name == "critical"
    assert due == Deadlines(
        first_touch=at(date(2026, 11, 20), "18:00"),
        answer=at(date(2026, 11, 20), "19:30"),
        resolution=at(date(2026, 11, 21), "17:30"),
    )
    assert all(d.tzinfo is UTC for d in (due.first_touch, due.answer, due.resolution))
    name, due = plan_deadlines(playbook, "health", Priority.HIGH, opened, MOSCOW)
    assert name == "high_24x7" and due.answer == at(date(2026, 11, 20), "20:30")


def test_plan_deadlines_normal_counts_working_hours(playbook: Playbook) -> None:
    opened = at(date(2026, 11, 20), "16:30")  # Friday, 15 minutes before the short day ends
    name, due = plan_deadlines(playbook, "housing", Priority.NORMAL, opened, MOSCOW)
    assert name == "normal"
    assert due == Deadlines(
        first_touch=at(date(2026, 11, 23), "09:45"),  # 15m Friday + 45m Monday
        answer=at(date(2026, 11, 23), "12:45"),  # 15m + 3h45m
        resolution=at(date(2026, 11, 25), "17:00"),  # 15m + 8h15m + 8h15m + 7h15m
    )
    # A routing rule's override wins over by_priority.
    name, due = plan_deadlines(playbook, "housing", Priority.LOW, opened, MOSCOW, "critical")
    assert name == "critical" and due.first_touch == at(date(2026, 11, 20), "17:00")


def reminders(*specs: str) -> list[Reminder]:
    return [Reminder.model_validate(spec) for spec in specs]


def test_reminder_times_on_working_hours(playbook: Playbook) -> None:
    working = playbook.calendar("working")
    opened = at(date(2026, 11, 20), "16:30")
    due = add(working, opened, H)
    assert due == at(date(2026, 11, 23), "09:45")
    policy = playbook.sla_policy("normal")
    assert reminder_times(working, opened, due, policy.reminders, MOSCOW) == [
        at(date(2026, 11, 23), "09:15"),  # 50%: 30 working minutes
        at(date(2026, 11, 23), "09:30"),  # -15m
        at(date(2026, 11, 23), "09:33"),  # 80%: 48 working minutes
    ]


def test_reminder_times_edge_cases(playbook: Playbook) -> None:
    working = playbook.calendar("working")
    opened = at(date(2026, 11, 20), "16:30")
    due = add(working, opened, 30 * M)  # Monday 09:15
    # 50% is used up at Friday's closing; 15 minutes before the deadline is Monday's opening.
    assert reminder_times(working, opened, due, reminders("50%", "-15m"), MOSCOW) == [
        at(date(2026, 11, 20), "16:45"),
        at(date(2026, 11, 23), "09:00"),
    ]
    due = add(working, opened, H)
    # Same moment twice: kept once. An offset longer than the allowed time: dropped.
    assert reminder_times(working, opened, due, reminders("50%", "-30m", "-2h"), MOSCOW) == [
        at(date(2026, 11, 23), "09:15")
    ]
    assert reminder_times(working, due, opened, reminders("50%", "-15m"), MOSCOW) == []
    assert reminder_times(working, opened, due, [], MOSCOW) == []


def test_reminder_times_on_24x7(playbook: Playbook) -> None:
    always = playbook.calendar(ALWAYS_OPEN)
    opened = at(date(2026, 11, 21), "10:00")  # Saturday: no matter
    due = add(always, opened, 2 * H)
    policy = playbook.sla_policy("critical")
    times = reminder_times(always, opened, due, policy.reminders, MOSCOW)
    assert times == [
        at(date(2026, 11, 21), "11:00"),
        at(date(2026, 11, 21), "11:36"),
        at(date(2026, 11, 21), "11:50"),
    ]
    assert all(opened < moment <= due and moment.tzinfo is UTC for moment in times)
