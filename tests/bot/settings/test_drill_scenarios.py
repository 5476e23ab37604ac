"""drills/*.yaml: the shipped scenarios load, and mistakes are reported by file and field."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from bot.settings.drill_scenarios import BurstShape, load_scenarios
from bot.settings.errors import Problem
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, PlaybookError, load_playbook

GOOD = """
title: {ru: Учения, en: Drill}
hour_in_minutes: 10
storylines:
  - id: heat
    department: housing
    source: vk
    texts: {ru: ["Нет тепла {n}"], en: ["No heat {n}"]}
    bursts:
      - {at: 0m, count: 3, over: 30m, shape: ramp}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "drills"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def test_the_shipped_scenarios_load() -> None:
    playbook = load_playbook(DEFAULT_PLAYBOOK_DIR)
    assert set(playbook.drills) == {"utility-outage-storm", "transport-strike", "viral-accusation"}
    storm = playbook.drills["utility-outage-storm"]
    assert storm.title.get("en").startswith("Utility outage storm")
    assert {s.department for s in storm.storylines} == {"housing"}
    assert storm.compression == 6.0  # a drill hour in 10 real minutes
    assert storm.length == timedelta(minutes=90)
    assert playbook.summary()["drill_scenarios"] == 3
    departments = {"housing", "transport", "health", "education", "social", "coordination"}
    assert playbook.check_departments(departments) == []


def test_a_good_file_loads_with_its_name_as_id(tmp_path: Path) -> None:
    write(tmp_path, "heat-wave.yaml", GOOD)
    problems: list[Problem] = []
    scenarios = load_scenarios(tmp_path, problems)
    assert problems == []
    scenario = scenarios["heat-wave"]
    assert scenario.id == "heat-wave" and scenario.hour_in_minutes == 10
    assert scenario.storylines[0].bursts[0].shape is BurstShape.RAMP
    assert load_scenarios(tmp_path / "nowhere", problems) == {} and problems == []


def test_a_scenario_opens_a_drill_crisis_card_unless_it_says_crisis_false(
    tmp_path: Path,
) -> None:
    write(tmp_path, "with-card.yaml", GOOD)
    write(tmp_path, "no-card.yaml", GOOD.replace("hour_in_minutes: 10", "crisis: false"))
    write(tmp_path, "bad.yaml", GOOD.replace("hour_in_minutes: 10", "crisis: maybe"))
    problems: list[Problem] = []
    scenarios = load_scenarios(tmp_path, problems)
    assert scenarios["with-card"].crisis is True
    assert scenarios["no-card"].crisis is False
    assert [(path.name, field) for path, field, _ in problems] == [("bad.yaml", "crisis")]


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (("count: 3", "count: 0"), "storylines[0].bursts[0].count", "must be at least 1, got 0"),
        (("shape: ramp", "shape: wave"), "storylines[0].bursts[0].shape", "wave"),
        (("over: 30m", "over: 30"), "storylines[0].bursts[0].over", "duration"),
        (('en: ["No heat {n}"]', "en: []"), "storylines[0].texts.en", "at least 1"),
        (("hour_in_minutes: 10", "hour_in_minutes: 0"), "hour_in_minutes", "greater than 0"),
        (("source: vk", "source: vk\n    color: red"), "storylines[0].color", "unknown key"),
    ],
)
def test_mistakes_name_the_file_and_the_field(
    tmp_path: Path, edit: tuple[str, str], field: str, words: str
) -> None:
    file = write(tmp_path, "broken.yaml", GOOD.replace(*edit))
    problems: list[Problem] = []
    assert load_scenarios(tmp_path, problems) == {}
    assert [(f, p) for f, p, _ in problems] == [(file, field)], problems
    assert words in problems[0][2]


def test_an_id_inside_the_file_and_twice_the_same_storyline_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "with-id.yaml", "id: other\n" + GOOD)
    twice = GOOD + GOOD[GOOD.index("  - id: heat") :]
    write(tmp_path, "twice.yaml", twice)
    problems: list[Problem] = []
    assert load_scenarios(tmp_path, problems) == {}
    messages = {f.name: m for f, _, m in problems}
    assert "file name" in messages["with-id.yaml"]
    assert "used twice" in messages["twice.yaml"]


def test_a_playbook_with_a_bad_scenario_does_not_load_and_unknown_departments_are_named(
    tmp_path: Path,
) -> None:
    playbook_dir = tmp_path / "playbook"
    shutil.copytree(
        DEFAULT_PLAYBOOK_DIR, playbook_dir, ignore=shutil.ignore_patterns("corpus", "models")
    )
    shutil.rmtree(playbook_dir / "drills")
    write(playbook_dir, "heat.yaml", GOOD.replace("department: housing", "department: hosing"))
    playbook = load_playbook(playbook_dir)
    departments = {"housing", "transport", "health", "education", "social", "coordination"}
    (problem,) = playbook.check_departments(departments)
    assert problem[0] == playbook_dir / "drills" / "heat.yaml"
    assert problem[1] == "storylines[0].department"
    assert "did you mean 'housing'" in problem[2]
    write(playbook_dir, "bad.yaml", GOOD.replace("count: 3", "count: -1"))
    with pytest.raises(PlaybookError) as error:
        load_playbook(playbook_dir)
    assert "bad.yaml: storylines[0].bursts[0].count" in str(error.value)
