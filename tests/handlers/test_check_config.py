"""check-config and run on broken settings: exit 2, one `file: field: message` line per
problem in plain words, never a traceback (issue 17: the administrator's cases)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from handlers.cli import app
from tests.doubles.support import ROOT

runner = CliRunner()


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    """The example config with its own copy of the default playbook (no training corpus)."""
    shutil.copytree(
        ROOT / "playbooks" / "default",
        tmp_path / "playbook",
        ignore=shutil.ignore_patterns("corpus"),
    )
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    text = text.replace("path: playbooks/default", f"path: {tmp_path}/playbook")
    text = text.replace("templates: playbooks/templates", f"templates: {ROOT}/playbooks/templates")
    text = text.replace(
        "sqlite+aiosqlite:///data/otklik.db", f"sqlite+aiosqlite:///{tmp_path}/o.db"
    )
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def edit(file: Path, old: str, new: str) -> None:
    text = file.read_text(encoding="utf-8")
    assert old in text, old
    file.write_text(text.replace(old, new, 1), encoding="utf-8")


def problems(setup: Path, command: str = "check-config") -> list[str]:
    """The problem lines, paths relative to the setup; asserts exit 2 and no traceback."""
    result = runner.invoke(app, [command, "-c", str(setup / "config.yaml")], env={})
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    assert "Traceback" not in result.output
    _, _, rest = result.output.partition("Configuration is not valid\n")
    assert rest, result.output
    return [line.replace(f"{setup}/", "") for line in rest.splitlines() if line.strip()]


def test_the_setup_is_valid(setup: Path) -> None:
    result = runner.invoke(app, ["check-config", "-c", str(setup / "config.yaml")], env={})
    assert result.exit_code == 0, result.output


# A regional holiday the playbook adds, and one that cannot be.
IMPOSSIBLE_HOLIDAY = (
    "    country: RU\n",
    "    country: RU\n    holidays:\n      - 2026-05-11\n      - 2026-02-30\n",
)


def test_an_impossible_holiday_in_sla_yaml(setup: Path) -> None:
    edit(setup / "playbook" / "sla.yaml", IMPOSSIBLE_HOLIDAY[0], IMPOSSIBLE_HOLIDAY[1])
    assert problems(setup) == [
        "playbook/sla.yaml: calendars.working.holidays[1].date: "
        "2026-02-30 is not a date (February has 28 days in 2026)"
    ]


def test_an_impossible_date_in_the_duty_rota(setup: Path) -> None:
    edit(setup / "config.yaml", "start: 2026-11-02", "start: 2026-11-31")
    assert problems(setup) == [
        "config.yaml: duty.rota.start: 2026-11-31 is not a date (November has 30 days in 2026)"
    ]


def test_an_impossible_date_and_time_in_a_duty_override(setup: Path) -> None:
    edit(setup / "config.yaml", 'from: "2026-12-31 18:00"', 'from: "2026-13-01 18:00"')
    assert problems(setup) == [
        "config.yaml: duty.overrides[0].from: 2026-13-01 18:00 is not a date (there is no month 13)"
    ]


def test_a_mistyped_crisis_code_is_an_error(setup: Path) -> None:
    edit(setup / "playbook" / "crisis.yaml", "key: heating", "key: heatng")
    assert problems(setup) == [
        'playbook/crisis.yaml: threshold "heating-surge" (thresholds[5]).key: '
        "unknown code 'heatng' (did you mean 'heating'?)"
    ]


def test_an_unknown_crisis_code_lists_where_codes_come_from(setup: Path) -> None:
    edit(setup / "playbook" / "crisis.yaml", "key: school_meals", "key: zzzz")
    [line] = problems(setup)
    assert "(thresholds[6]).key: unknown code 'zzzz' (codes in routing.yaml: " in line
    assert "heating" in line and "school_meals" in line


def test_a_crisis_key_naming_an_unknown_department(setup: Path) -> None:
    edit(setup / "playbook" / "crisis.yaml", "key: housing", "key: housng")
    assert problems(setup) == [
        'playbook/crisis.yaml: threshold "housing-spike" (thresholds[0]).key: '
        "unknown department 'housng' (did you mean 'housing'?)"
    ]


def test_rule_errors_name_the_rule_by_its_id(setup: Path) -> None:
    routing = setup / "playbook" / "routing.yaml"
    edit(routing, "    department: housing\n", "    department: housing\n    prioriti: high\n")
    edit(routing, "codes: [heating]", "codes: heating")
    lines = problems(setup)
    assert len(lines) == 2
    assert lines[0].startswith(
        'playbook/routing.yaml: rule "housing-accident" (rules[0]).prioriti: '
    )
    assert "unknown key 'prioriti'" in lines[0] and "did you mean 'priority'?" in lines[0]
    assert re.fullmatch(
        r'playbook/routing.yaml: rule "housing-heating" \(rules\[\d+\]\)\.codes: '
        r"expected a list, got 'heating'",
        lines[1],
    )


def test_a_wrong_notify_is_one_error(setup: Path) -> None:
    edit(
        setup / "playbook" / "escalation.yaml",
        "  notify: department_lead",
        "  notify: departmant_lead",
    )
    assert problems(setup) == [
        "playbook/escalation.yaml: chains.standard.steps[0].notify[0]: 'departmant_lead' is not "
        "allowed; expected one of department_lead, duty, leadership, coordination "
        "(did you mean 'department_lead'?)"
    ]


def test_working_hours_written_as_one_range(setup: Path) -> None:
    edit(
        setup / "playbook" / "sla.yaml",
        'wed: ["09:00-13:00", "13:45-18:00"]',
        'wed: "09:00-18:00"',
    )
    assert problems(setup) == [
        "playbook/sla.yaml: calendars.working.hours.wed: "
        "write the hours as a list, even one range: ['09:00-18:00']"
    ]


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "config.yaml",
            "log_level: INFO",
            "log_level: LOUD",
            "config.yaml: log_level: 'LOUD' is not allowed; "
            "expected one of DEBUG, INFO, WARNING, ERROR",
        ),
        (
            "config.yaml",
            "  echo: false",
            "  echo: maybe",
            "config.yaml: database.echo: expected true or false, got 'maybe'",
        ),
        (
            "playbook/crisis.yaml",
            "    count: 15\n",
            "    count: 0\n",
            'playbook/crisis.yaml: threshold "housing-spike" (thresholds[0]).count: '
            "must be at least 1, got 0",
        ),
        (
            "playbook/crisis.yaml",
            "    count: 15\n",
            "    count: fifteen\n",
            'playbook/crisis.yaml: threshold "housing-spike" (thresholds[0]).count: '
            "expected a whole number, got 'fifteen'",
        ),
        (
            "playbook/crisis.yaml",
            "cool_down: 2h",
            "cool_down: [2h]",
            "playbook/crisis.yaml: cool_down: expected a duration like '45m', '4h', '1h30m', "
            "'3d' or '90s', got a list",
        ),
        (
            "playbook/escalation.yaml",
            "max_repeats: 1\n",
            f"max_repeats: {'9' * 5000}\n",
            "playbook/escalation.yaml: invalid YAML at line 18, column 22: "
            "'9999999999999999999999999999999999…999' is not a valid whole number "
            "(at most 4300 digits)",
        ),
        (
            "playbook/routing.yaml",
            "  same_author_within: 12h",
            "  same_author_within: [12h",
            None,  # line and column: checked below
        ),
    ],
)
def test_pydantic_jargon_is_plain_english(
    setup: Path, file: str, old: str, new: str, expected: str | None
) -> None:
    edit(setup / file, old, new)
    lines = problems(setup)
    for line in lines:
        assert "Input should" not in line and "Field required" not in line
    if expected is not None:
        assert lines == [expected]
    else:
        [line] = lines
        assert re.match(r"playbook/routing.yaml: invalid YAML at line \d+, column \d+: ", line)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty; expected a mapping of settings"),
        (b"- a\n- b\n", "the top level must be a mapping of settings, not a list"),
        (b"just text\n", "the top level must be a mapping of settings, not text"),
        (b"a: 1\nb: \xff\xfe\n", "not UTF-8 text: byte 0xff at line 2; save the file as UTF-8"),
        (b"a: &x [*x]\n", "invalid YAML: an alias (*name) refers to a node that contains it"),
        (b"a: !!int abc\n", "invalid YAML at line 1, column 4: 'abc' is not a valid whole number"),
    ],
)
def test_whole_file_problems(setup: Path, content: bytes, expected: str) -> None:
    (setup / "playbook" / "templates.yaml").write_bytes(content)
    assert expected in problems(setup)[0]
    assert problems(setup)[0].startswith("playbook/templates.yaml: ")


def test_console_markup_in_a_value_is_printed_not_obeyed(setup: Path) -> None:
    with (setup / "config.yaml").open("a", encoding="utf-8") as file:
        file.write('"[/x]": 1\n')
    [line] = problems(setup)
    assert line.startswith("config.yaml: [/x]: unknown key")


def test_a_damaged_model_file_is_named(setup: Path) -> None:
    model = setup / "playbook" / "models" / "sentiment.npz"
    model.write_bytes(model.read_bytes()[:1000])
    [line] = problems(setup)
    assert line.startswith("playbook/models/sentiment.npz: damaged or not a sentiment model (")


def test_a_damaged_holiday_calendar(setup: Path) -> None:
    edit(
        setup / "playbook" / "holidays.ics",
        "END:VCALENDAR",
        "BEGIN:VEVENT\nUID:region-day@example\nDTSTART;VALUE=DATE:20260431\n"
        "SUMMARY:День области\nEND:VEVENT\nEND:VCALENDAR",
    )
    assert problems(setup) == [
        "playbook/holidays.ics: VEVENT[0].DTSTART: '20260431' is not a valid date"
    ]


def test_every_file_is_checked_at_once(setup: Path) -> None:
    edit(setup / "playbook" / "crisis.yaml", "key: heating", "key: heatng")
    (setup / "playbook" / "lexicon" / "en.yaml").write_bytes(b"- not a mapping\n")
    lines = problems(setup)
    assert [line.split(":")[0] for line in lines] == [
        "playbook/crisis.yaml",
        "playbook/lexicon/en.yaml",
    ]


def test_run_refuses_a_broken_config_with_the_same_messages(setup: Path) -> None:
    edit(setup / "playbook" / "sla.yaml", IMPOSSIBLE_HOLIDAY[0], IMPOSSIBLE_HOLIDAY[1])
    assert problems(setup, "run") == problems(setup, "check-config")


def test_an_unreadable_organisation_model_is_a_warning(setup: Path) -> None:
    # model.path in the example config: the organisation's own model, made by retraining.
    own = setup / "data" / "models" / "sentiment.org.npz"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"PK\x03\x04 cut short")
    result = runner.invoke(app, ["check-config", "-c", str(setup / "config.yaml")], env={})
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.output and "cannot be read: not used" in result.output


def test_approval_tiers_nobody_can_approve_at_are_named(setup: Path) -> None:
    edit(setup / "config.yaml", "global_roles: [press_secretary]", "global_roles: []")
    edit(setup / "playbook" / "approval.yaml", "match: {priorities: [high]}", "match: {}")
    lines = problems(setup)
    assert any(
        line.startswith('playbook/approval.yaml: rule "high" (rules[1]).match: a rule needs')
        for line in lines
    ), lines
    setup_ok = (setup / "playbook" / "approval.yaml").read_text(encoding="utf-8")
    (setup / "playbook" / "approval.yaml").write_text(
        setup_ok.replace("match: {}", "match: {priorities: [high]}"), encoding="utf-8"
    )
    lines = problems(setup)
    assert lines == [
        'playbook/approval.yaml: rule "critical" (rules[0]).tiers[1]: no staff member has '
        "global_roles: [press_secretary] in the config: drafts would wait at this tier for ever",
        'playbook/approval.yaml: rule "high" (rules[1]).tiers[1]: no staff member has '
        "global_roles: [press_secretary] in the config: drafts would wait at this tier for ever",
    ]


def test_similar_grouping_settings_are_checked(setup: Path) -> None:
    edit(setup / "playbook/routing.yaml", "  similar_threshold: 0.4", "  similar_threshold: 1.5")
    edit(setup / "playbook/routing.yaml", "  similar_within: 6h", "  similar_within: soon")
    lines = problems(setup)
    assert len(lines) == 2, lines
    assert all(line.startswith("playbook/routing.yaml: grouping.similar_") for line in lines)
    assert any("similar_threshold" in line and "1" in line for line in lines)
    assert any("similar_within" in line and "duration" in line for line in lines)


def test_check_config_knows_the_vk_section(setup: Path) -> None:
    """The commented example, uncommented: VK is on with the token from the environment, and
    a secret that VK would not take is named with its path."""
    config = setup / "config.yaml"
    text = config.read_text(encoding="utf-8")
    start = text.index("# vk:\n")
    block = text[start : text.index("\n\n", start)]
    config.write_text(
        text.replace(block, "\n".join(line[2:] for line in block.splitlines())),
        encoding="utf-8",
    )
    env = {"OTKLIK_VK_TOKEN": "vk1.a.check0config0token0abcdefghijklmn", "OTKLIK_VK_SECRET": "S3"}
    result = runner.invoke(app, ["check-config", "-c", str(config)], env=env)
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # rich wraps long lines
    assert "VK: on, community 218861756, Callback API at /vk/callback" in said
    edit(config, "secret: ${OTKLIK_VK_SECRET:-}", "secret: not-letters!")
    result = runner.invoke(app, ["check-config", "-c", str(config)], env=env)
    assert result.exit_code == 2 and "vk.secret" in result.output
