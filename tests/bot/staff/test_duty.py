"""Duty rotation: the weekly rota, explicit overrides, DST, config errors and /duty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.cases.service import CaseService
from bot.chat.answers import Answers
from bot.clock import FrozenClock
from bot.messages.texts import texts_for
from bot.settings.config import Config, ConfigError, load_config
from bot.settings.duty_rules import DutyConfig
from bot.staff.directory import Directory
from bot.staff.duty import who_is_on_duty
from tests.doubles.support import API_TOKENS, CONFIG_YAML, ROOT

MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")

# 2026-11-02 is a Monday: spec's week starts then at 09:00 Moscow time.
ROTA = """
duty:
  rota:
    staff: [spec, appr, lead]
    start: 2026-11-02
    handover: {weekday: mon, time: "09:00"}
  overrides:
    - {staff: spec2, from: "2026-12-30 18:00", to: 2027-01-08}
"""


def config_with(tmp_path: Path, extra: str, timezone: str = "Europe/Moscow") -> Config:
    text = CONFIG_YAML.format(url=f"sqlite+aiosqlite:///{tmp_path}/d.db", root=ROOT, port=0)
    text = text.replace("timezone: Europe/Moscow", f"timezone: {timezone}") + extra
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env=API_TOKENS)


def local(tz: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz)


def test_weekly_rota_hands_over_exactly_at_the_boundary(tmp_path: Path) -> None:
    duty = config_with(tmp_path, ROTA).duty
    assert duty is not None
    before = who_is_on_duty(duty, MSK, local(MSK, 2026, 11, 9, 8, 59))
    at = who_is_on_duty(duty, MSK, local(MSK, 2026, 11, 9, 9, 0))
    assert before.staff == ("spec",)
    assert before.until == local(MSK, 2026, 11, 9, 9, 0)
    assert at.staff == ("appr",)
    assert at.until == local(MSK, 2026, 11, 16, 9, 0)
    # The rota goes round: the fourth week is the first person's again.
    assert who_is_on_duty(duty, MSK, local(MSK, 2026, 11, 23, 12, 0)).staff == ("spec",)
    # Before the first handover the rota wraps backwards: the last person has that week.
    assert who_is_on_duty(duty, MSK, local(MSK, 2026, 11, 1, 12, 0)).staff == ("lead",)


def test_an_override_wins_and_shortens_the_shift_before_it(tmp_path: Path) -> None:
    duty = config_with(tmp_path, ROTA).duty
    assert duty is not None
    # The week from 2026-12-28 is the ninth: lead's by the rota, until the override starts.
    before = who_is_on_duty(duty, MSK, local(MSK, 2026, 12, 30, 17, 0))
    assert before.staff == ("lead",)
    assert before.until == local(MSK, 2026, 12, 30, 18, 0)  # the override starts then
    during = who_is_on_duty(duty, MSK, local(MSK, 2027, 1, 3, 3, 0))
    assert during.staff == ("spec2",)
    # A bare date in `to` includes that day.
    assert during.until == local(MSK, 2027, 1, 9, 0, 0)
    last_minute = who_is_on_duty(duty, MSK, local(MSK, 2027, 1, 8, 23, 59))
    assert last_minute.staff == ("spec2",)
    # Then the rota again: the week from 2027-01-04 is spec's, until Monday 11 January.
    after = who_is_on_duty(duty, MSK, local(MSK, 2027, 1, 9, 0, 0))
    assert after.staff == ("spec",) and after.until == local(MSK, 2027, 1, 11, 9, 0)


def test_overlapping_overrides_put_both_on_duty() -> None:
    duty = DutyConfig.model_validate(
        {
            "overrides": [
                {"staff": "spec", "from": "2026-12-01 09:00", "to": "2026-12-02 09:00"},
                {"staff": "appr", "from": "2026-12-01 20:00", "to": "2026-12-01 23:00"},
            ]
        }
    )
    shift = who_is_on_duty(duty, MSK, local(MSK, 2026, 12, 1, 21, 0))
    assert shift.staff == ("spec", "appr")
    assert shift.until == local(MSK, 2026, 12, 1, 23, 0)
    # Outside every override and without a rota the config names nobody.
    empty = who_is_on_duty(duty, MSK, local(MSK, 2026, 11, 30, 12, 0))
    assert empty.staff == () and empty.until == local(MSK, 2026, 12, 1, 9, 0)


def test_handover_keeps_local_time_across_daylight_saving() -> None:
    # Berlin moves clocks forward on 2026-03-29: the handover stays at Monday 09:00 local.
    duty = DutyConfig.model_validate(
        {"rota": {"staff": ["a", "b"], "start": "2026-03-16", "handover": {"time": "09:00"}}}
    )
    winter = who_is_on_duty(duty, BERLIN, local(BERLIN, 2026, 3, 23, 9, 0))
    assert winter.staff == ("b",)
    assert winter.until == local(BERLIN, 2026, 3, 30, 9, 0)
    assert winter.until is not None and winter.until.astimezone(UTC).hour == 7  # summer time
    # One minute before the summer-time handover it is still b; at 09:00 CEST it is a.
    assert who_is_on_duty(duty, BERLIN, local(BERLIN, 2026, 3, 30, 8, 59)).staff == ("b",)
    assert who_is_on_duty(duty, BERLIN, local(BERLIN, 2026, 3, 30, 9, 0)).staff == ("a",)
    # 168 hours after a winter handover is 08:00 summer time: not yet a handover.
    assert who_is_on_duty(duty, BERLIN, winter.until - timedelta(hours=1)).staff == ("b",)


def test_unknown_staff_and_bad_values_are_config_errors_with_paths(tmp_path: Path) -> None:
    bad = """
duty:
  rota:
    staff: [spec, nobody]
    start: 2026-11-02
    handover: {weekday: mnd, time: "25:00"}
  overrides:
    - {staff: ghost, from: 2026-12-30, to: 2026-12-31}
    - {staff: spec, from: "2026-12-31 10:00", to: "2026-12-31 09:00"}
"""
    with pytest.raises(ConfigError) as caught:
        config_with(tmp_path, bad)
    paths = {path for path, _ in caught.value.fields}
    assert "duty.rota.handover.weekday" in paths
    assert "duty.rota.handover.time" in paths
    assert "duty.overrides[1]" in paths
    # Cross-references are checked once the shapes are right.
    fixed = (
        bad.replace("mnd", "mon")
        .replace('"25:00"', '"09:00"')
        .replace('"2026-12-31 09:00"', '"2026-12-31 11:00"')
    )
    with pytest.raises(ConfigError) as caught:
        config_with(tmp_path, fixed)
    problems = dict(caught.value.fields)
    assert "unknown staff id 'nobody'" in problems["duty.rota.staff[1]"]
    assert "unknown staff id 'ghost'" in problems["duty.overrides[0].staff"]


def test_without_a_duty_section_the_duty_role_is_on_duty(tmp_path: Path) -> None:
    config = config_with(tmp_path, "")
    clock = FrozenClock(local(MSK, 2026, 11, 20, 12, 0))
    directory = Directory(config, clock=clock)
    assert directory.on_duty() == ["Дарья Морозова"]
    assert directory.duty_shift().until is None
    # With overrides only, the duty role stands in between them.
    holidays = 'duty:\n  overrides: [{staff: spec, from: "2026-12-31 18:00", to: 2027-01-08}]\n'
    covered = Directory(config_with(tmp_path, holidays), clock=clock)
    shift = covered.duty_shift()
    assert shift.staff == ("duty",) and shift.until == local(MSK, 2026, 12, 31, 18, 0)
    assert covered.on_duty(local(MSK, 2027, 1, 1, 12, 0)) == ["Анна Иванова"]


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("ru", "Сейчас дежурит: Вера Петрова (до 16.11 09:00)"),
        ("en", "On duty now: Вера Петрова (until 16.11 09:00)"),
    ],
)
def test_duty_command_names_who_and_until_when(tmp_path: Path, locale: str, expected: str) -> None:
    config = config_with(tmp_path, ROTA)
    clock = FrozenClock(local(MSK, 2026, 11, 10, 15, 0))
    directory = Directory(config, frozenset({"telegram"}), clock)
    cases = CaseService(lambda: None, clock, directory, config.tz)  # type: ignore[arg-type,return-value]
    texts = texts_for(config.playbooks.templates, locale)
    view = Answers(cases, directory, texts).duty()
    assert texts.t(view["key"], **view["params"]) == expected
    # The fallback names the duty role and no end.
    plain = Directory(config_with(tmp_path, ""), frozenset({"telegram"}), clock)
    fallback = Answers(cases, plain, texts).duty()
    assert texts.t(fallback["key"], **fallback["params"]) in (
        "Сейчас дежурит: Дарья Морозова",
        "On duty now: Дарья Морозова",
    )
