"""The playbook: the shipped default loads and routes realistic mentions; broken files are
reported with file and field."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from jinja2.exceptions import SecurityError

from bot.intake.routing import route
from bot.model import AuthorLabel, Priority
from bot.settings.fields import TimeRange, format_duration, parse_duration
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, Playbook, PlaybookError, load_playbook
from bot.settings.reply_templates import TemplateKind
from bot.settings.sla_rules import ALWAYS_OPEN, Reminder, parse_ical_dates, parse_ical_days

DEPARTMENTS = {"housing", "transport", "health", "education", "social", "coordination"}
MOSCOW = ZoneInfo("Europe/Moscow")


@pytest.fixture(scope="module")
def playbook() -> Playbook:
    return load_playbook(DEFAULT_PLAYBOOK_DIR)


# --- the default playbook ---------------------------------------------------------------------


def test_default_playbook_loads(playbook: Playbook) -> None:
    summary = playbook.summary()
    assert 15 <= summary["rules"] <= 30
    assert summary["templates"] >= 8
    assert summary["chains"] >= 2
    assert summary["thresholds"] >= 3
    assert {r.department for r in playbook.routing.rules} == DEPARTMENTS
    assert playbook.routing.default.department == "coordination"
    assert playbook.check_departments(DEPARTMENTS) == []


def test_default_templates_cover_the_practices(playbook: Playbook) -> None:
    kinds = {t.kind for t in playbook.templates}
    assert kinds == set(TemplateKind)
    first_touch = playbook.templates_for("health", TemplateKind.FIRST_TOUCH)
    assert first_touch and all(t.pre_approved for t in first_touch)
    move = playbook.templates_for("housing", TemplateKind.MOVE_TO_PRIVATE)[0]
    assert move.pre_approved and move.follow_up_after == timedelta(hours=24)
    assert "личные сообщения" in move.text.ru
    holding = playbook.template(playbook.crisis.holding_statement_template)
    assert holding.kind is TemplateKind.HOLDING_STATEMENT and not holding.pre_approved


@pytest.mark.parametrize(
    ("text", "department", "rule_id"),
    [
        ("Третий день нет горячей воды в доме на Ленина, 5!", "housing", "housing-water"),
        ("Батареи ледяные, отопление так и не дали", "housing", "housing-heating"),
        (
            "Во дворе неделю не вывозят мусор, контейнерная площадка завалена",
            "housing",
            "housing-waste",
        ),
        ("УК не отвечает, в подъезде течёт крыша", "housing", "housing-management"),
        ("Жильцы МКД на Мира требуют отчёта", "housing", "housing-management"),
        ("Когда начнётся капремонт? Платим взносы пять лет", "housing", "housing-capital-repair"),
        ("На дороге к школе №3 огромные ямы", "transport", "transport-roads"),
        ("Трасса Р-255 разбита, асфальта нет", "transport", "transport-roads"),
        (
            "Автобус 12 опять не пришёл, ждали 40 минут на остановке",
            "transport",
            "transport-public",
        ),
        ("Тротуары не чистят, гололёд, люди падают", "transport", "transport-snow"),
        ("В поликлинике невозможно записаться к терапевту", "health", "health-clinics"),
        ("Скорую ждали три часа", "health", "health-ambulance"),
        ("В аптеке нет льготного инсулина", "health", "health-medicines"),
        ("Очередь в детский сад не двигается два года", "education", "education-kindergarten"),
        ("Школьное питание ужасное, дети голодные", "education", "education-meals"),
        ("Учителя жалуются на нагрузку, в школе нет физика", "education", "education-schools"),
        ("Многодетным так и не выплатили пособие", "social", "social-payments"),
        ("Инвалиду отказали в льготе", "social", "social-support"),
        (
            "Не могу дозвониться в администрацию третий день",
            "coordination",
            "coordination-unreachable",
        ),
        ("No hot water in our building for a week", "housing", "housing-water"),
        ("Brak ciepłej wody od tygodnia", "housing", "housing-water"),
    ],
)
def test_routing_realistic_mentions(
    playbook: Playbook, text: str, department: str, rule_id: str
) -> None:
    decision = route(playbook, text, "vk")
    assert (decision.department, decision.rule_id) == (department, rule_id)


def test_unmatched_goes_to_coordination(playbook: Playbook) -> None:
    decision = route(playbook, "Почему администрация молчит?", "vk", codes=("жалоба",))
    assert decision.rule_id is None
    assert decision.department == "coordination"
    assert decision.priority is Priority.NORMAL
    assert decision.codes == ("жалоба",)
    assert not decision.urgent


def test_rule_codes_are_added_after_mention_codes(playbook: Playbook) -> None:
    decision = route(playbook, "Холодные батареи", "vk", codes=("жкх", "heating"))
    assert decision.codes == ("жкх", "heating")
    assert route(playbook, "Холодные батареи", "vk", codes=("жкх",)).codes == ("жкх", "heating")


def test_urgent_words_raise_priority_and_force_a_case(playbook: Playbook) -> None:
    sued = route(playbook, "Подам в суд на управляющую компанию", "vk")
    assert sued.department == "housing" and sued.priority is Priority.HIGH and sued.urgent
    # "судя" begins like "суд", and "в" + "суд…" only matches whole "в".
    calm = route(playbook, "Вот судя по всему, отопление дали", "vk")
    assert calm.priority is Priority.NORMAL and not calm.urgent
    fatal = route(playbook, "На пожаре погиб человек", "vk")
    assert fatal.priority is Priority.CRITICAL and fatal.urgent
    assert fatal.department == "coordination"
    # A rule's own priority is never lowered by an urgent word.
    gas = route(playbook, "Запах газа в подъезде!", "vk")
    assert gas.rule_id == "housing-gas" and gas.priority is Priority.CRITICAL


def test_keywords_match_word_prefixes_case_insensitively(playbook: Playbook) -> None:
    assert route(playbook, "ОТОПЛЕНИЕ!!!", "vk").rule_id == "housing-heating"
    assert route(playbook, "горячей   воды нет", "vk").rule_id == "housing-water"
    # Words must be consecutive and in order for a phrase.
    assert route(playbook, "воды горячей нет", "vk").rule_id != "housing-water"
    # ё and е are the same letter for matching.
    assert route(playbook, "Гололёд на улице", "vk").rule_id == "transport-snow"
    assert route(playbook, "Гололед на улице", "vk").rule_id == "transport-snow"


def test_case_sensitive_regex_parts(playbook: Playbook) -> None:
    assert route(playbook, "Статья 159 УК РФ", "vk").rule_id is None
    assert route(playbook, "Наша УК бездействует", "vk").rule_id == "housing-management"


def test_a_stemmer_can_be_plugged_in(playbook: Playbook) -> None:
    text = "В квартире нет тепла"
    assert route(playbook, text, "vk").rule_id is None

    def stem(word: str) -> str:  # a toy lemmatiser: "тепла" means heating
        return "отоплен" if word.startswith("тепл") else word

    assert route(playbook, text, "vk", stem=stem).rule_id == "housing-heating"


def test_author_labels_and_languages(playbook: Playbook) -> None:
    leader = route(
        playbook, "Почему администрация молчит?", "vk", author_labels=[AuthorLabel.OPINION_LEADER]
    )
    assert leader.rule_id == "coordination-opinion-leaders"
    assert leader.priority is Priority.HIGH
    english = route(playbook, "Why is nobody answering?", "vk", language="en-GB")
    assert english.rule_id == "coordination-foreign"
    assert route(playbook, "Why is nobody answering?", "vk", language=None).rule_id is None


def test_sources_and_codes_criteria(playbook_copy: Path, edit: Callable[..., None]) -> None:
    edit(
        playbook_copy / "routing.yaml",
        "rules:\n",
        """rules:
  - id: press-health
    department: health
    match:
      sources: [telegram]
      codes: [Здравоохранение]
""",
    )
    custom = load_playbook(playbook_copy)
    assert route(custom, "Что-то", "telegram:press", codes=["здравоохранение"]).rule_id == (
        "press-health"
    )
    assert route(custom, "Что-то", "telegram", codes=["Здравоохранение"]).rule_id == (
        "press-health"
    )
    assert route(custom, "Что-то", "telegramx", codes=["здравоохранение"]).rule_id is None
    assert route(custom, "Что-то", "telegram:press").rule_id is None


# --- SLA --------------------------------------------------------------------------------------


def test_sla_policy_for_with_overrides(playbook: Playbook) -> None:
    name, policy = playbook.sla_policy_for("housing", Priority.NORMAL)
    assert name == "normal"
    assert (policy.first_touch, policy.answer) == (timedelta(minutes=60), timedelta(hours=4))
    assert playbook.sla_policy_for("housing", Priority.HIGH)[0] == "high"
    name, policy = playbook.sla_policy_for("health", Priority.HIGH)
    assert name == "high_24x7" and policy.calendar == ALWAYS_OPEN
    name, policy = playbook.sla_policy_for("health", Priority.CRITICAL)
    assert name == "critical"
    assert (policy.first_touch, policy.answer, policy.resolution) == (
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(days=1),
    )
    assert not policy.pause_while_waiting_for_author
    assert playbook.sla_policy_for("housing", Priority.LOW, override="critical")[0] == "critical"
    with pytest.raises(KeyError, match="nope"):
        playbook.sla_policy_for("housing", Priority.LOW, override="nope")


def test_working_calendar(playbook: Playbook) -> None:
    working = playbook.calendar("working")
    friday = working.hours_on(date(2026, 3, 13))
    assert [str(r) for r in friday] == ["09:00-13:00", "13:45-16:45"]
    assert [str(r) for r in working.hours_on(date(2026, 3, 12))] == ["09:00-13:00", "13:45-18:00"]
    assert working.hours_on(date(2026, 3, 14)) == ()  # Saturday
    assert working.hours_on(date(2026, 1, 5)) == ()  # New Year holidays
    assert working.hours_on(date(2027, 6, 14)) == ()  # 12 June moved to Monday
    assert working.hours_on(date(2026, 1, 9)) == ()  # 3 January moved by decree
    # 30 April, before the 1 May holiday, is an hour shorter (Labour Code art. 95).
    assert [str(r) for r in working.hours_on(date(2026, 4, 30))] == ["09:00-13:00", "13:45-17:00"]
    at_lunch = datetime(2026, 3, 12, 10, 30, tzinfo=UTC)  # 13:30 in Moscow
    assert not working.is_open(at_lunch, MOSCOW)
    assert working.is_open(at_lunch + timedelta(minutes=30), MOSCOW)
    always = playbook.calendar(ALWAYS_OPEN)
    assert always.is_open(datetime(2026, 1, 1, 3, 0, tzinfo=UTC), MOSCOW)


def test_reminders(playbook: Playbook) -> None:
    policy = playbook.sla_policy("normal")
    assert [str(r) for r in policy.reminders] == ["50%", "80%", "-15m"]
    hour = timedelta(hours=1)
    assert [r.elapsed(hour) for r in policy.reminders] == [
        timedelta(minutes=30),
        timedelta(minutes=48),
        timedelta(minutes=45),
    ]
    assert Reminder.model_validate("-2h").elapsed(hour) is None


def test_escalation_chains(playbook: Playbook) -> None:
    standard = playbook.chain("standard")
    assert [s.level for s in standard.steps] == [1, 2, 3]
    assert [s.notify[0].value for s in standard.steps] == ["department_lead", "duty", "leadership"]
    assert standard.steps[1].after == timedelta(minutes=30)
    assert standard.steps[2].window == TimeRange.model_validate("08:00-22:00")
    assert len(playbook.chain("critical").steps[0].notify) == 2


# --- durations and iCal -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45m", timedelta(minutes=45)),
        ("4h", timedelta(hours=4)),
        ("1h30m", timedelta(minutes=90)),
        ("3d", timedelta(days=3)),
        ("90s", timedelta(seconds=90)),
        ("1d 2h", timedelta(days=1, hours=2)),
        ("0m", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "45", "4 hours", "1m30h", "-5m", "1.5h", "400d", 45, None])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration_round_trips() -> None:
    for text in ("45m", "4h", "1h30m", "3d", "1m30s", "1d2h", "0m", "1d1h1m1s"):
        assert format_duration(parse_duration(text)) == text
    assert format_duration(timedelta(minutes=90)) == "1h30m"


def test_parse_ical_dates() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260101\r\n"
        "DTEND;VALUE=DATE:20260103\r\nSUMMARY:Long\r\n holiday\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260223\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    days, problems = parse_ical_dates(text)
    assert problems == []
    assert days == {date(2026, 1, 1), date(2026, 1, 2), date(2026, 2, 23)}


# --- broken playbooks -------------------------------------------------------------------------


@pytest.fixture
def playbook_copy(tmp_path: Path) -> Path:
    target = tmp_path / "pb"
    shutil.copytree(DEFAULT_PLAYBOOK_DIR, target)
    return target


@pytest.fixture
def edit() -> Callable[..., None]:
    def replace(file: Path, old: str, new: str, count: int = 1) -> None:
        text = file.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {file.name}"
        file.write_text(text.replace(old, new, count), encoding="utf-8")

    return replace


def _problems(path: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    return [(file.name, field, message) for file, field, message in caught.value.problems]


def _rule_index(playbook: Playbook, rule_id: str) -> int:
    return next(i for i, r in enumerate(playbook.routing.rules) if r.id == rule_id)


def test_yaml_syntax_error_names_file_and_line(playbook_copy: Path, edit) -> None:
    edit(
        playbook_copy / "routing.yaml",
        "default:\n  department: coordination",
        "default:\n  department: [coordination",
    )
    [(file, field, message)] = _problems(playbook_copy)
    assert file == "routing.yaml" and field == ""
    assert "invalid YAML at line" in message


def test_duplicate_yaml_key(playbook_copy: Path, edit) -> None:
    edit(playbook_copy / "sla.yaml", "by_priority:\n", "by_priority:\n  low: normal\n")
    [(file, _, message)] = _problems(playbook_copy)
    assert file == "sla.yaml" and "duplicate key 'low'" in message


def test_unknown_key_is_named_with_suggestion(playbook_copy: Path, edit, playbook) -> None:
    edit(playbook_copy / "routing.yaml", "      keywords: [капремонт", "      keyword: [капремонт")
    i = _rule_index(playbook, "housing-capital-repair")
    [(file, field, message)] = _problems(playbook_copy)
    assert (file, field) == (
        "routing.yaml",
        f'rule "housing-capital-repair" (rules[{i}]).match.keyword',
    )
    assert "unknown key 'keyword'" in message and "did you mean 'keywords'" in message


def test_wrong_type(playbook_copy: Path, edit) -> None:
    edit(
        playbook_copy / "routing.yaml",
        "default:\n  department: coordination\n  priority: normal",
        "default:\n  department: coordination\n  priority: urgent",
    )
    [(file, field, message)] = _problems(playbook_copy)
    assert (file, field) == ("routing.yaml", "default.priority")
    assert message == "'urgent' is not allowed; expected one of low, normal, high, critical"


def test_bad_duration(playbook_copy: Path, edit) -> None:
    edit(playbook_copy / "sla.yaml", "    answer: 4h", "    answer: 4 hours")
    [(file, field, message)] = _problems(playbook_copy)
    assert (file, field) == ("sla.yaml", "policies.normal.answer")
    assert "invalid duration '4 hours'" in message


def test_bad_reminder_and_time_range(playbook_copy: Path, edit) -> None:
    edit(playbook_copy / "sla.yaml", 'reminders: ["80%"]', 'reminders: ["120%"]')
    edit(
        playbook_copy / "sla.yaml",
        'fri: ["09:00-13:00", "13:45-16:45"]',
        'fri: ["09:00-13:00", "12:45-16:45"]',
    )
    edit(playbook_copy / "escalation.yaml", 'window: "08:00-22:00"', 'window: "8-22"')
    problems = _problems(playbook_copy)
    fields = {(file, field) for file, field, _ in problems}
    assert fields == {
        ("sla.yaml", "policies.low.reminders[0]"),
        ("sla.yaml", "calendars.working.hours.fri"),
        ("escalation.yaml", "chains.standard.steps[2].window"),
    }
    assert any("overlap" in message for _, _, message in problems)


def test_bad_regex_is_reported_with_its_index(playbook_copy: Path, edit, playbook) -> None:
    edit(playbook_copy / "routing.yaml", r"- '\b\d{2}[КK]-\d{3,4}\b'", "- '(unclosed'")
    i = _rule_index(playbook, "transport-roads")
    [(file, field, message)] = _problems(playbook_copy)
    field_path = f'rule "transport-roads" (rules[{i}]).match.regex[1]'
    assert (file, field) == ("routing.yaml", field_path)
    assert message.startswith("invalid regular expression:")
    assert str(PlaybookError([(playbook_copy / file, field, message)])).startswith(
        f"{playbook_copy}/routing.yaml: {field_path}: invalid regular expression:"
    )


def test_undefined_references(playbook_copy: Path, edit) -> None:
    edit(
        playbook_copy / "sla.yaml",
        "    calendar: working\n    first_touch: 60m",
        "    calendar: workin\n    first_touch: 60m",
    )
    edit(playbook_copy / "sla.yaml", "escalation_chain: critical", "escalation_chain: panic")
    edit(playbook_copy / "sla.yaml", "  low: low\n", "  low: lowest\n")
    edit(
        playbook_copy / "routing.yaml",
        "default:\n  department: coordination\n",
        "default:\n  department: coordination\n  sla_policy: vip\n",
    )
    edit(
        playbook_copy / "crisis.yaml",
        "holding_statement_template: holding-statement",
        "holding_statement_template: holding",
    )
    problems = {(file, field): message for file, field, message in _problems(playbook_copy)}
    assert (
        "unknown calendar 'workin' (did you mean 'working'?)"
        in problems[("sla.yaml", "policies.normal.calendar")]
    )
    assert (
        "unknown escalation chain 'panic'"
        in problems[("sla.yaml", "policies.critical.escalation_chain")]
    )
    assert "unknown SLA policy 'lowest'" in problems[("sla.yaml", "by_priority.low")]
    assert "unknown SLA policy 'vip'" in problems[("routing.yaml", "default.sla_policy")]
    assert "unknown template 'holding'" in problems[("crisis.yaml", "holding_statement_template")]


def test_holding_statement_must_be_of_its_kind(playbook_copy: Path, edit) -> None:
    edit(
        playbook_copy / "crisis.yaml",
        "holding_statement_template: holding-statement",
        "holding_statement_template: thanks",
    )
    [(file, field, message)] = _problems(playbook_copy)
    assert (file, field) == ("crisis.yaml", "holding_statement_template")
    assert "expected 'holding_statement'" in message


def test_jinja_errors_in_reply_templates(playbook_copy: Path, edit) -> None:
    edit(
        playbook_copy / "templates.yaml",
        "Спасибо, что написали, мы уже разбираемся.",
        "Спасибо {% if %}",
    )
    edit(
        playbook_copy / "templates.yaml",
        "Hello! Thank you for letting us know",
        "Hello {{ author }}! Thank you for letting us know",
    )
    problems = {(file, field): message for file, field, message in _problems(playbook_copy)}
    first = 'template "first-touch" (templates[0])'
    assert "template syntax error at line 1" in problems[("templates.yaml", f"{first}.text.ru")]
    assert "unknown variable(s) author" in problems[("templates.yaml", f"{first}.text.en")]


def test_crisis_threshold_needs_exactly_one_of_count_or_ratio(playbook_copy: Path, edit) -> None:
    edit(
        playbook_copy / "crisis.yaml",
        "    window: 60m\n    count: 15\n",
        "    window: 60m\n    count: 15\n    ratio: 2.0\n",
    )
    edit(playbook_copy / "crisis.yaml", "    min_count: 10\n", "")
    problems = {(file, field): message for file, field, message in _problems(playbook_copy)}
    first, sixth = (
        'threshold "housing-spike" (thresholds[0])',
        'threshold "heating-surge" (thresholds[5])',
    )
    assert "exactly one of count or ratio" in problems[("crisis.yaml", first)]
    assert "ratio needs baseline_days and min_count" in problems[("crisis.yaml", sixth)]


def test_escalation_levels_in_order(playbook_copy: Path, edit) -> None:
    edit(
        playbook_copy / "escalation.yaml",
        "      - level: 2\n        notify: duty",
        "      - level: 3\n        notify: duty",
    )
    [(file, field, message)] = _problems(playbook_copy)
    assert (file, field) == ("escalation.yaml", "chains.standard.steps[1].level")
    assert "expected level 2" in message


def test_missing_file_and_duplicate_ids(playbook_copy: Path, edit) -> None:
    (playbook_copy / "crisis.yaml").unlink()
    edit(playbook_copy / "routing.yaml", "- id: housing-gas", "- id: housing-accident")
    problems = _problems(playbook_copy)
    # Per-file problems come first; cross-file checks wait until every file parses.
    assert problems == [("crisis.yaml", "", "file is missing")]
    shutil.copy(DEFAULT_PLAYBOOK_DIR / "crisis.yaml", playbook_copy / "crisis.yaml")
    [(file, field, message)] = _problems(playbook_copy)
    assert (file, field) == ("routing.yaml", 'rule "housing-accident" (rules[1]).id')
    assert "duplicate rule id 'housing-accident' (also rules[0])" in message


ICAL = """BEGIN:VCALENDAR
VERSION:2.0
BEGIN:VEVENT
DTSTART;VALUE=DATE:20270511
SUMMARY:Радоница
END:VEVENT
BEGIN:VEVENT
DTSTART;VALUE=DATE:20270512
RRULE:FREQ=YEARLY
END:VEVENT
BEGIN:VEVENT
DTSTART:20260914T090000
END:VEVENT
END:VCALENDAR
"""


def test_ical_problems(playbook_copy: Path) -> None:
    (playbook_copy / "holidays.ics").write_text(ICAL, encoding="utf-8")
    problems = _problems(playbook_copy)
    assert (
        "holidays.ics",
        "VEVENT[1].RRULE",
        "recurring events are not supported: list each date",
    ) in problems
    assert any(f == "holidays.ics" and field == "VEVENT[2].DTSTART" for f, field, _ in problems)
    (playbook_copy / "holidays.ics").unlink()
    [(file, field, message)] = _problems(playbook_copy)
    assert (file, field) == ("sla.yaml", "calendars.working.holidays_ical")
    assert "not found" in message


def test_ical_days_close_the_calendar(playbook_copy: Path) -> None:
    (playbook_copy / "holidays.ics").write_text(
        ICAL.split("BEGIN:VEVENT\nDTSTART;VALUE=DATE:20270512")[0] + "END:VCALENDAR\n",
        encoding="utf-8",
    )
    working = load_playbook(playbook_copy).calendar("working")
    assert working.hours_on(date(2027, 5, 11)) == ()
    assert working.year(2027).closed[date(2027, 5, 11)] == "Радоница"


def test_shipped_ical_holds_no_days() -> None:
    # The shipped file is an empty example: no region's holiday is presented as everyone's.
    days, problems = parse_ical_days((DEFAULT_PLAYBOOK_DIR / "holidays.ics").read_text("utf-8"))
    assert (days, problems) == ({}, [])


def test_ical_file_must_stay_inside_the_playbook(playbook_copy: Path, edit) -> None:
    edit(
        playbook_copy / "sla.yaml", "holidays_ical: holidays.ics", "holidays_ical: ../../etc/passwd"
    )
    [(_, field, message)] = _problems(playbook_copy)
    assert field == "calendars.working.holidays_ical" and "inside the playbook" in message


def test_every_problem_is_reported_at_once(playbook_copy: Path, edit) -> None:
    edit(playbook_copy / "sla.yaml", "    answer: 4h", "    answer: soon")
    edit(playbook_copy / "escalation.yaml", "stop_on: [approve, publish]", "stop_on: [panic]")
    edit(playbook_copy / "templates.yaml", "pre_approved: true", "pre_approved: true\n    x: 1")
    files = {file for file, _, _ in _problems(playbook_copy)}
    assert files == {"sla.yaml", "escalation.yaml", "templates.yaml"}


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="playbook directory not found"):
        load_playbook(tmp_path / "missing")


# --- templates and departments ----------------------------------------------------------------


def test_templates_for_filters_by_department(playbook: Playbook) -> None:
    housing = {t.id for t in playbook.templates_for("housing")}
    coordination = {t.id for t in playbook.templates_for("coordination")}
    assert "first-touch-housing" in housing and "first-touch-transport" not in housing
    assert "first-touch" in housing and "first-touch" in coordination
    assert not any(t.departments for t in playbook.templates_for("coordination"))
    assert [t.id for t in playbook.templates_for("transport", TemplateKind.FIRST_TOUCH)] == [
        "first-touch",
        "first-touch-transport",
    ]
    with pytest.raises(KeyError, match="nope"):
        playbook.template("nope")


def test_reply_templates_render_in_both_locales(playbook: Playbook) -> None:
    template = playbook.template("first-touch")
    params = {"department_name": "ЖКХ", "case_id": 7, "org_name": "Администрация"}
    ru = template.render("ru", author_name="Анна", **params)
    assert ru.startswith("Здравствуйте!") and "личные сообщения" in ru
    assert "Анна" not in ru  # pre-approved: nothing the citizen chose (fault 8)
    assert template.render("en", author_name="", **params).startswith("Hello! ")
    apology = playbook.template("apology").render("ru", author_name="Анна", **params)
    assert apology.startswith("Анна, приносим извинения")  # reviewed: may greet by name
    holding = playbook.template("holding-statement").render("ru", author_name="", **params)
    assert "Администрация уже работает" in holding
    for t in playbook.templates:
        for locale in ("ru", "en"):
            assert t.render(locale, author_name="A", **params)


def test_reply_templates_are_sandboxed(playbook_copy: Path, edit) -> None:
    edit(
        playbook_copy / "templates.yaml",
        "Спасибо, что написали, мы уже разбираемся.",
        "{{ org_name.__class__.__mro__ }}",
    )
    custom = load_playbook(playbook_copy)
    with pytest.raises(SecurityError):
        custom.template("first-touch").render(
            "ru", author_name="A", department_name="D", case_id=1, org_name="O"
        )


def test_check_departments_finds_unknown_departments(playbook: Playbook) -> None:
    configured = DEPARTMENTS - {"social"} | {"socail"}
    problems = playbook.check_departments(configured)
    assert problems
    assert all(m == "unknown department 'social' (did you mean 'socail'?)" for _, _, m in problems)
    where = {(file.name, field) for file, field, _ in problems}
    assert ("crisis.yaml", 'threshold "social-spike" (thresholds[4]).key') in where
    assert any(f == "routing.yaml" and field.endswith(".department") for f, field in where)
    housing_gone = playbook.check_departments(DEPARTMENTS - {"housing"})
    assert ("sla.yaml", "by_department.health") not in {
        (f.name, field) for f, field, _ in housing_gone
    }
    assert ("templates.yaml", 'template "first-touch-housing" (templates[1]).departments[0]') in {
        (f.name, field) for f, field, _ in housing_gone
    }


# --- issue 15, fault 8: nothing a citizen wrote goes out unreviewed ---------------------------

PRE_APPROVED_WITH_NAME = """
  - id: greeting-by-name
    kind: thanks
    pre_approved: true
    title: {ru: Привет по имени, en: Hello by name}
    text:
      ru: "Спасибо, {{ author_name }}!"
      en: "Thank you{% if mention_url %} for {{ mention_url }}{% endif %}!"
"""


def test_fault8_a_pre_approved_template_may_not_use_what_the_citizen_wrote(
    playbook_copy: Path,
) -> None:
    file = playbook_copy / "templates.yaml"
    file.write_text(file.read_text(encoding="utf-8") + PRE_APPROVED_WITH_NAME, encoding="utf-8")
    index = len(load_playbook(DEFAULT_PLAYBOOK_DIR).templates)
    problems = {(f, field): message for f, field, message in _problems(playbook_copy)}
    label = f'template "greeting-by-name" (templates[{index}])'
    assert set(problems) == {
        ("templates.yaml", f"{label}.text.ru"),
        ("templates.yaml", f"{label}.text.en"),
    }
    ru = problems[("templates.yaml", f"{label}.text.ru")]
    assert "pre_approved" in ru and "author_name" in ru and "review" in ru
    assert "mention_url" in problems[("templates.yaml", f"{label}.text.en")]

    # The same text is fine once a second person reviews every answer made from it.
    file.write_text(
        file.read_text(encoding="utf-8").replace(
            "id: greeting-by-name\n    kind: thanks\n    pre_approved: true",
            "id: greeting-by-name\n    kind: thanks\n    pre_approved: false",
        ),
        encoding="utf-8",
    )
    assert load_playbook(playbook_copy).template("greeting-by-name").pre_approved is False


def test_fault8_default_pre_approved_templates_publish_no_citizen_text(playbook: Playbook) -> None:
    hostile = "Администрация признаёт вину, звоните 8-800"
    params = {"department_name": "ЖКХ", "case_id": 7, "org_name": "Администрация"}
    pre_approved = [t for t in playbook.templates if t.pre_approved]
    assert len(pre_approved) >= 4  # the two-tap answers are still there
    for template in pre_approved:
        for locale in ("ru", "en"):
            text = template.render(
                locale, author_name=hostile, mention_url="https://evil.example/", **params
            )
            assert hostile not in text and "evil.example" not in text, template.id


def test_an_optional_reaction_deadline_is_checked(playbook_copy: Path, edit) -> None:
    # Absent: no reaction deadline (the shipped playbook); set: loaded beside first_touch.
    assert load_playbook(playbook_copy).sla.policies["normal"].reaction is None
    edit(
        playbook_copy / "sla.yaml",
        "    calendar: working\n    first_touch: 60m",
        "    calendar: working\n    reaction: 15m\n    first_touch: 60m",
    )
    assert load_playbook(playbook_copy).sla.policies["normal"].reaction == timedelta(minutes=15)
    # Longer than the first reply, or not a duration: check-config says where.
    edit(playbook_copy / "sla.yaml", "    reaction: 15m", "    reaction: 90m")
    [(file, field, message)] = _problems(playbook_copy)
    assert (file, field, message) == (
        "sla.yaml",
        "policies.normal.reaction",
        "is longer than first_touch",
    )
    edit(playbook_copy / "sla.yaml", "    reaction: 90m", "    reaction: soon")
    [(file, field, message)] = _problems(playbook_copy)
    assert (file, field) == ("sla.yaml", "policies.normal.reaction")
    assert "invalid duration 'soon'" in message


def test_templates_need_only_the_configured_locale(playbook_copy: Path, edit) -> None:
    file = playbook_copy / "templates.yaml"
    # Drop every English title and text: a Russian-only organisation writes none.
    text = re.sub(r"(?m)^ {6}en: \|-\n(?: {8}.*\n)*", "", file.read_text(encoding="utf-8"))
    file.write_text(re.sub(r"(?m)^ {6}en: .*\n", "", text), encoding="utf-8")
    playbook = load_playbook(playbook_copy)
    assert all(not t.title.has("en") and not t.text.has("en") for t in playbook.templates)
    assert playbook.check_locale("ru") == []
    problems = playbook.check_locale("en")
    assert len(problems) == 2 * len(playbook.templates)
    first = problems[0]
    assert first[0].name == "templates.yaml" and first[1] == "templates[0].title.en"
    assert "has no title in 'en', the config's locale" in first[2]
    # Rendering in a locale the template lacks falls back rather than crashing.
    assert (
        playbook.template("thanks")
        .render("en", author_name="", department_name="ЖКХ", case_id=1, org_name="")
        .startswith("Спасибо")
    )


def test_a_template_needs_some_text_and_a_known_use(playbook_copy: Path, edit) -> None:
    edit(
        playbook_copy / "templates.yaml",
        "  - id: thanks\n    kind: thanks\n",
        "  - id: thanks\n    kind: thanks\n    use: maybe\n",
    )
    edit(
        playbook_copy / "templates.yaml",
        "    title:\n      ru: Спасибо\n      en: Thank you\n",
        "    title: {}\n",
    )
    fields = {field for _, field, _ in _problems(playbook_copy)}
    default = load_playbook(DEFAULT_PLAYBOOK_DIR)
    thanks = next(i for i, t in enumerate(default.templates) if t.id == "thanks")
    named = f'template "thanks" (templates[{thanks}])'
    assert {f"{named}.use", f"{named}.title"} <= fields


def test_a_crisis_code_must_be_one_something_gives(playbook_copy: Path, edit) -> None:
    assert load_playbook(playbook_copy).check_codes() == []
    edit(playbook_copy / "crisis.yaml", "key: heating", "key: press_release")
    playbook = load_playbook(playbook_copy)
    [(file, field, message)] = playbook.check_codes()
    assert (file.name, field) == ("crisis.yaml", 'threshold "heating-surge" (thresholds[5]).key')
    assert message.startswith("unknown code 'press_release' (codes in routing.yaml: ")
    assert playbook.check_codes(["Press_Release"]) == []  # a feed in config.yaml adds it


# --- codes.yaml: the lists staff code cases with from the chat ------------------------------------


def test_codes_yaml_is_optional_and_checked_when_present(playbook_copy: Path, edit) -> None:
    (playbook_copy / "codes.yaml").rename(playbook_copy / "codes.off")
    assert load_playbook(playbook_copy).codes.dimensions == ()
    (playbook_copy / "codes.off").rename(playbook_copy / "codes.yaml")

    codes = playbook_copy / "codes.yaml"
    edit(codes, "id: heating,", "id: heating-and-hot-water-supply,")  # too long for a button
    (problem,) = _problems(playbook_copy)
    assert problem[:2] == ("codes.yaml", 'dimension "topic" (dimensions[0]).codes[0].id')
    assert "heating-and-hot-water-supply" in problem[2] and "1-16" in problem[2]

    edit(codes, "id: heating-and-hot-water-supply,", "id: heating,")
    edit(codes, "  - id: district\n", "  - id: topic\n")  # a dimension twice
    (problem,) = _problems(playbook_copy)
    assert problem[0] == "codes.yaml" and "duplicate dimension id(s): topic" in problem[2]


def test_codes_name_configured_departments_and_the_configs_locale(
    playbook_copy: Path, edit
) -> None:
    codes = playbook_copy / "codes.yaml"
    edit(codes, "departments: [transport]", "departments: [transprot]")
    edit(codes, "{ru: Южный, en: South}", "{ru: Южный}")
    playbook = load_playbook(playbook_copy)
    departments = {"housing", "transport", "health", "education", "social", "coordination"}
    unknown = playbook.check_departments(departments)
    assert [(file.name, field) for file, field, _ in unknown] == [
        ("codes.yaml", 'dimension "object" (dimensions[1]).codes[4].departments[0]')
    ]
    missing = [(file.name, field) for file, field, _ in playbook.check_locale("en")]
    assert ("codes.yaml", "dimensions[2].codes[2].title.en") in missing
    assert all(file.name != "codes.yaml" for file, _, _ in playbook.check_locale("ru"))


# --- approval.yaml ----------------------------------------------------------------------------


def test_approval_file_is_optional(playbook_copy: Path) -> None:
    (playbook_copy / "approval.yaml").unlink()
    loaded = load_playbook(playbook_copy)
    chain = loaded.approval_chain("housing", Priority.CRITICAL)
    assert [t.value for t in chain.tiers] == ["department"] and chain.template_skips


def test_approval_mistakes_are_named(playbook_copy: Path, edit) -> None:
    file = playbook_copy / "approval.yaml"
    edit(file, "tiers: [department, press_secretary, leadership]", "tiers: [department, mayor]")
    edit(file, "match: {priorities: [high]}", "match: {}")
    edit(file, "  - id: high", "  - id: critical")
    problems = _problems(playbook_copy)
    fields = {field: message for name, field, message in problems if name == "approval.yaml"}
    assert fields == {
        'rule "critical" (rules[0]).tiers[1]': "'mayor' is not allowed; expected one of "
        "department, press_secretary, leadership"
    }


def test_approval_rules_checked_across(playbook_copy: Path, edit) -> None:
    file = playbook_copy / "approval.yaml"
    edit(file, "match: {priorities: [high]}", "match: {}")
    edit(file, "  - id: high", "  - id: critical")
    problems = _problems(playbook_copy)
    assert ("approval.yaml", 'rule "critical" (rules[1]).id') in {(n, f) for n, f, _ in problems}
    assert any("at least one of departments" in m for _, _, m in problems)


def test_approval_tiers_nobody_holds(playbook: Playbook) -> None:
    problems = playbook.check_approvers(["duty", "leadership"])
    assert [(field, "press_secretary" in message) for _, field, message in problems] == [
        ('rule "critical" (rules[0]).tiers[1]', True),
        ('rule "high" (rules[1]).tiers[1]', True),
    ]
    assert playbook.check_approvers(["press_secretary", "leadership"]) == []
