"""The production calendar in SLA arithmetic: the `holidays` package's years, the playbook's
own days (regional holidays, working Saturdays, shortened days) and the warning before a
calendar runs out."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.clock import FrozenClock
from bot.model import Priority
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, Playbook, PlaybookError, load_playbook
from bot.sla.calendar import add_working_time, plan_deadlines, working_time_between
from bot.sla.coverage import CalendarWatch, calendar_gaps
from bot.staff.directory import Directory
from store.db import Database
from tests.doubles.support import make_config

MOSCOW = ZoneInfo("Europe/Moscow")
H = timedelta(hours=1)
ICS_LINE = "    holidays_ical: holidays.ics\n"


def at(day: date, hhmm: str) -> datetime:
    hour, minute = (int(part) for part in hhmm.split(":"))
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=MOSCOW)


@pytest.fixture(scope="module")
def shipped() -> Playbook:
    return load_playbook(DEFAULT_PLAYBOOK_DIR)


def playbook_with(tmp_path: Path, extra: str) -> Playbook:
    """The shipped playbook with more keys in the `working` calendar of sla.yaml."""
    target = tmp_path / "pb"
    shutil.copytree(DEFAULT_PLAYBOOK_DIR, target)
    sla = target / "sla.yaml"
    text = sla.read_text(encoding="utf-8")
    assert ICS_LINE in text
    sla.write_text(text.replace(ICS_LINE, ICS_LINE + extra), encoding="utf-8")
    return load_playbook(target)


def test_2028_new_year_holidays_are_non_working(shipped: Playbook) -> None:
    working = shipped.calendar("working")
    for day in range(1, 9):
        assert working.hours_on(date(2028, 1, day)) == (), f"{day} January 2028"
    assert working.hours_on(date(2028, 1, 10))  # Monday: back to work
    # 4 November 2028 is a Saturday: the day off moves to Monday (Labour Code art. 112),
    # though the package has no decree for 2028 yet.
    assert working.hours_on(date(2028, 11, 6)) == ()
    # Friday 3 November is the eve of a holiday: an hour shorter (art. 95).
    assert [str(r) for r in working.hours_on(date(2028, 11, 3))] == ["09:00-13:00", "13:45-15:45"]


@pytest.mark.parametrize(
    ("year", "short"),
    [
        # The official production calendars' shortened days (consultant.ru), computed here
        # from art. 95 and the package's decrees: eves of holidays, and a working Saturday
        # standing in for an eve (20 February 2021, 1 November 2025).
        (2021, ["02-20", "04-30", "06-11", "11-03"]),
        (2025, ["03-07", "04-30", "06-11", "11-01"]),
        (2026, ["04-30", "05-08", "06-11", "11-03"]),
    ],
)
def test_pre_holiday_days_match_the_official_calendar(
    shipped: Playbook, year: int, short: list[str]
) -> None:
    plan = shipped.calendar("working").year(year)
    assert sorted(plan.short) == [date.fromisoformat(f"{year}-{md}") for md in short]
    assert set(plan.short.values()) == {H}


def test_a_deadline_over_the_2028_new_year_skips_the_holidays(shipped: Playbook) -> None:
    # Low priority: an 8 working-hour answer. Thursday 30 December 2027, 15:00 gives three
    # hours (to 18:00); 31 December is a day off by the 2027 decree, 1-9 January are holidays
    # and a Sunday; Monday 10 January gives 4h before lunch and the last hour after it.
    opened = at(date(2027, 12, 30), "15:00")
    name, deadlines = plan_deadlines(shipped, "housing", Priority.LOW, opened, MOSCOW)
    assert name == "low"
    assert deadlines.answer == at(date(2028, 1, 10), "14:45")
    assert deadlines.first_touch == at(date(2027, 12, 30), "17:00")
    working = shipped.calendar("working")
    assert working_time_between(working, opened, deadlines.answer, MOSCOW) == 8 * H


def test_a_working_saturday_from_the_playbook_counts(tmp_path: Path) -> None:
    playbook = playbook_with(
        tmp_path,
        "    working_days:\n"
        "      - {date: 2028-11-11, name: перенос}\n"
        "      - {date: 2028-11-18, hours: ['10:00-12:00']}\n",
    )
    working = playbook.calendar("working")
    saturday = date(2028, 11, 11)
    # Friday 10 November 16:15 + 1h: half an hour to 16:45, half an hour on Saturday.
    assert add_working_time(working, at(date(2028, 11, 10), "16:15"), H, MOSCOW) == at(
        saturday, "09:30"
    )
    assert [str(r) for r in working.hours_on(saturday)] == [
        str(r)
        for r in working.hours_on(date(2028, 11, 13))  # a Saturday works as Monday
    ]
    assert [str(r) for r in working.hours_on(date(2028, 11, 18))] == ["10:00-12:00"]
    assert working.year(2028).working[saturday] == "рабочий день (sla.yaml)"


def test_a_shortened_day_ends_early(tmp_path: Path) -> None:
    playbook = playbook_with(
        tmp_path,
        "    short_days:\n"
        "      - 2028-12-28\n"
        "      - {date: 2028-12-29, shorter_by: 2h}\n"
        "      - {date: 2028-11-03, shorter_by: 0m}\n",
    )
    working = playbook.calendar("working")
    thursday, friday = date(2028, 12, 28), date(2028, 12, 29)
    assert [str(r) for r in working.hours_on(thursday)] == ["09:00-13:00", "13:45-17:00"]
    # Friday closes at 16:45, two hours shorter is 14:45.
    assert [str(r) for r in working.hours_on(friday)] == ["09:00-13:00", "13:45-14:45"]
    assert add_working_time(working, at(thursday, "16:30"), H, MOSCOW) == at(friday, "09:30")
    # "0m" cancels the computed pre-holiday hour.
    assert [str(r) for r in working.hours_on(date(2028, 11, 3))] == ["09:00-13:00", "13:45-16:45"]


def test_a_regional_holiday_from_the_playbook_is_non_working(tmp_path: Path) -> None:
    playbook = playbook_with(
        tmp_path, "    holidays:\n      - {date: 2028-04-25, name: Радоница}\n      - 2028-09-14\n"
    )
    working = playbook.calendar("working")
    assert working.hours_on(date(2028, 4, 25)) == ()
    assert working.hours_on(date(2028, 9, 14)) == ()
    assert add_working_time(working, at(date(2028, 4, 24), "17:30"), H, MOSCOW) == at(
        date(2028, 4, 26), "09:30"
    )
    assert working.year(2028).closed[date(2028, 4, 25)] == "Радоница"


def test_poland_from_the_package(tmp_path: Path) -> None:
    playbook = playbook_with(tmp_path, "")
    text = (playbook.path / "sla.yaml").read_text(encoding="utf-8")
    (playbook.path / "sla.yaml").write_text(text.replace("country: RU", "country: PL"), "utf-8")
    working = load_playbook(playbook.path).calendar("working")
    assert working.hours_on(date(2028, 5, 3)) == ()  # Constitution Day
    assert working.hours_on(date(2028, 11, 10))  # no Russian pre-holiday hour in Poland
    assert working.hours_on(date(2028, 1, 7))  # nor Orthodox Christmas
    assert working.covers(2040)  # fixed rules: the package knows every year


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ("    short_days: [{date: 2028-12-29, shorter_by: 90s}]\n", "short_days[0]", "whole"),
        ("    working_days: ['2028-02-30']\n", "working_days[0].date", "2028-02-30"),
        ("    holidays: [2028-01-10]\n    working_days: [2028-01-10]\n", "", "both"),
        ("    subdivision: XX\n", "subdivision", "unknown subdivision"),
    ],
)
def test_bad_calendar_keys_are_named(tmp_path: Path, extra: str, field: str, words: str) -> None:
    with pytest.raises(PlaybookError) as caught:
        playbook_with(tmp_path, extra)
    [(file, where, message)] = caught.value.problems
    assert file.name == "sla.yaml" and where == f"calendars.working{'.' if field else ''}{field}"
    assert words in message


def test_an_unknown_country_is_named(tmp_path: Path) -> None:
    target = tmp_path / "pb"
    shutil.copytree(DEFAULT_PLAYBOOK_DIR, target)
    sla = target / "sla.yaml"
    sla.write_text(sla.read_text("utf-8").replace("country: RU", "country: RX"), "utf-8")
    with pytest.raises(PlaybookError) as caught:
        load_playbook(target)
    [(_, where, message)] = caught.value.problems
    assert where == "calendars.working.country" and "unknown country 'RX'" in message


def test_gaps_start_60_days_before_the_year(shipped: Playbook) -> None:
    # The package has Russia's decree for 2027, not for 2028.
    assert shipped.calendar("working").covers(2027)
    assert not shipped.calendar("working").covers(2028)
    nov_1 = datetime(2027, 11, 1, 23, 59, tzinfo=MOSCOW)
    assert calendar_gaps(shipped, nov_1, MOSCOW) == []
    [gap] = calendar_gaps(shipped, nov_1 + timedelta(minutes=1), MOSCOW)  # 2 Nov 00:00
    assert (gap.year, gap.calendars) == (2028, ("working",))


def test_confirmed_years_silence_the_gap(tmp_path: Path) -> None:
    playbook = playbook_with(tmp_path, "    confirmed_years: [2028]\n")
    assert calendar_gaps(playbook, datetime(2027, 12, 1, tzinfo=UTC), MOSCOW) == []


async def test_the_warning_goes_to_the_coordination_chat_once(
    tmp_path: Path, sqlite_url: str
) -> None:
    database = Database(sqlite_url)
    await database.upgrade()
    config = make_config(tmp_path, sqlite_url)
    clock = FrozenClock(datetime(2027, 11, 1, 12, 0, tzinfo=MOSCOW))  # 61 days before
    directory = Directory(config, frozenset({"telegram"}))
    watch = CalendarWatch(
        database.uow, clock, directory, load_playbook(DEFAULT_PLAYBOOK_DIR), MOSCOW
    )
    try:
        assert await watch.check() == []
        async with database.uow() as uow:
            assert await uow.outbox.depth() == 0
        clock.advance(timedelta(days=1))
        [gap] = await watch.check()
        assert gap.year == 2028
        clock.advance(timedelta(days=1))
        assert len(await watch.check()) == 1  # still a gap, but no second message
        async with database.uow() as uow:
            [item] = await uow.outbox.due_heads(clock.now(), 10)
            assert await uow.outbox.depth() == 1
        [coordination] = directory.destinations(directory.coordination)
        assert (item.transport, item.chat) == (coordination.transport, coordination.chat)
        assert item.payload == {
            "view": "notice",
            "key": "sla.calendar_missing",
            "params": {"year": 2028},
        }
        # A restart: a new watch, the same outbox key, still one message.
        again = CalendarWatch(
            database.uow, clock, directory, load_playbook(DEFAULT_PLAYBOOK_DIR), MOSCOW
        )
        assert len(await again.check()) == 1
        async with database.uow() as uow:
            assert await uow.outbox.depth() == 1
    finally:
        await database.dispose()
