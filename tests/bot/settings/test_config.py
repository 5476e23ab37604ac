"""Config loading: env substitution, validation messages with field paths, lookups."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bot.model import DeptRole, GlobalRole
from bot.settings.config import Config, ConfigError, load_config

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "config.example.yaml"
# Right shape for a bot token, obviously not a real one.
GOOD_TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijk"

BASE: dict[str, Any] = {
    "departments": [
        {"id": "housing", "name": "ЖКХ", "telegram": {"chat_id": -1001, "topic_id": 3}},
        {"id": "transport", "name": "Транспорт", "matrix": {"room_id": "!tr:example.org"}},
        {"id": "coordination", "name": "ЦУР"},
    ],
    "coordination_department": "coordination",
    "staff": [
        {
            "id": "ivanova",
            "name": "Анна Иванова",
            "telegram_id": 100001,
            "roles": {"housing": ["specialist"]},
        },
        {
            "id": "petrov",
            "name": "Сергей Петров",
            "matrix_id": "@petrov:example.org",
            "roles": {"housing": ["approver"], "transport": ["lead"]},
            "global_roles": ["duty"],
        },
    ],
}


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def write(tmp_path: Path, data: dict[str, Any] | str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {})
    assert {file for file, _, _ in info.value.problems} == {path}
    return dict(info.value.fields)


def load_problems(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return info.value.fields


# --- the shipped example ---------------------------------------------------------------------


def test_example_loads_with_empty_env() -> None:
    config = load_config(EXAMPLE, env={})

    assert [d.id for d in config.departments] == [
        "housing",
        "transport",
        "health",
        "education",
        "social",
        "coordination",
    ]
    assert config.department("housing").name == "ЖКХ"
    assert config.department("social").name == "Социальная поддержка"
    assert config.coordination_department == "coordination"
    assert config.department("housing").telegram.chat_id == -1001000000001
    assert config.department("housing").telegram.topic_id == 2
    assert config.department("health").matrix is None
    # Secrets default to empty, so both transports are off and nothing fails.
    assert config.telegram is not None and config.telegram.token == ""
    assert not config.telegram_enabled
    assert not config.matrix_enabled
    assert [s.token for s in config.api.sources] == ["", ""]
    assert config.locale == "ru"
    assert str(config.tz) == "Europe/Moscow"
    assert config.database.url == f"sqlite+aiosqlite:///{REPO}/data/otklik.db"  # beside it
    assert config.playbooks.path == REPO / "playbooks" / "default"
    assert config.playbooks.templates == REPO / "playbooks" / "templates"

    assert 8 <= len(config.staff) <= 10
    dept_roles = {role for s in config.staff for roles in s.roles.values() for role in roles}
    assert dept_roles == set(DeptRole)
    global_roles = [role for s in config.staff for role in s.global_roles]
    assert sorted(global_roles) == sorted(GlobalRole)  # exactly one of each
    assert config.staff_by_telegram(100001).id == "ivanova"
    # Every department has somebody who can take its cases.
    for dept_id in config.department_ids:
        assert any(dept_id in s.roles for s in config.staff), dept_id


def test_example_enables_transports_when_secrets_are_set() -> None:
    config = load_config(
        EXAMPLE, env={"OTKLIK_TELEGRAM_TOKEN": GOOD_TOKEN, "OTKLIK_MATRIX_TOKEN": "syt_abc"}
    )
    assert config.telegram_enabled and config.telegram.token == GOOD_TOKEN
    assert config.matrix_enabled and config.matrix.access_token == "syt_abc"


# --- environment substitution -----------------------------------------------------------------


def test_env_value_default_and_partial_substitution(tmp_path: Path) -> None:
    data = base()
    data["telegram"] = {"token": "${TG_TOKEN}"}
    data["database"] = {"url": "postgresql+asyncpg://otklik:${DB_PW}@${DB_HOST:-localhost}/otklik"}
    data["timezone"] = "${TZ_NAME:-Asia/Yekaterinburg}"
    config = load_config(write(tmp_path, data), env={"TG_TOKEN": GOOD_TOKEN, "DB_PW": "s3cr3t"})

    assert config.telegram.token == GOOD_TOKEN
    assert config.telegram_enabled
    assert config.database.url == "postgresql+asyncpg://otklik:s3cr3t@localhost/otklik"
    assert config.timezone == "Asia/Yekaterinburg"


def test_default_applies_to_set_but_empty_variable(tmp_path: Path) -> None:
    data = base()
    data["timezone"] = "${TZ_NAME:-Asia/Omsk}"
    data["locale"] = "${LOC}"
    config = load_config(write(tmp_path, data), env={"TZ_NAME": "", "LOC": "en"})
    assert config.timezone == "Asia/Omsk"
    assert config.locale == "en"


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = base()
    data["telegram"] = {"token": "${OTKLIK_TEST_TOKEN}"}
    monkeypatch.setenv("OTKLIK_TEST_TOKEN", GOOD_TOKEN)
    assert load_config(write(tmp_path, data)).telegram.token == GOOD_TOKEN


def test_substituted_strings_are_coerced_to_field_types(tmp_path: Path) -> None:
    data = base()
    data["departments"][0]["telegram"]["chat_id"] = "${HOUSING_CHAT}"
    data["database"] = {"echo": "${DB_ECHO:-false}"}
    config = load_config(write(tmp_path, data), env={"HOUSING_CHAT": "-100777"})
    assert config.department("housing").telegram.chat_id == -100777
    assert config.database.echo is False


def test_missing_variables_are_all_reported_with_paths(tmp_path: Path) -> None:
    data = base()
    data["telegram"] = {"token": "${OTKLIK_X}"}
    data["departments"][1]["matrix"]["room_id"] = "!${ROOM}:example.org"
    path = write(tmp_path, data)

    problems = problems_of(path)
    assert problems == {
        "telegram.token": "environment variable OTKLIK_X is not set",
        "departments[1].matrix.room_id": "environment variable ROOM is not set",
    }
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert f"{path}: telegram.token: environment variable OTKLIK_X is not set" in str(info.value)


def test_escaped_and_malformed_references(tmp_path: Path) -> None:
    data = base()
    data["departments"][0]["name"] = "Cost $${NOT_A_VAR}"
    assert load_config(write(tmp_path, data), env={}).departments[0].name == "Cost ${NOT_A_VAR}"

    data["departments"][0]["name"] = "${not valid}"
    problems = problems_of(write(tmp_path, data))
    assert "malformed variable reference" in problems["departments[0].name"]

    data["departments"][0]["name"] = "${A:-${B}}"
    problems = problems_of(write(tmp_path, data), env={"B": "x"})
    assert "nested references" in problems["departments[0].name"]


def test_secret_values_are_not_echoed_in_errors(tmp_path: Path) -> None:
    data = base()
    data["telegram"] = {"token": "${TG}"}
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, data), env={"TG": "supersecretvalue-without-shape"})
    assert "telegram.token" in dict(info.value.fields)
    assert "supersecretvalue" not in str(info.value)


# --- validation messages and paths ------------------------------------------------------------


def test_unknown_key_at_top_level(tmp_path: Path) -> None:
    data = base()
    data["log_levl"] = "INFO"
    path = write(tmp_path, data)
    problems = problems_of(path)
    assert list(problems) == ["log_levl"]
    assert problems["log_levl"].startswith("unknown key")
    assert "did you mean 'log_level'" in problems["log_levl"]


def test_unknown_key_nested_in_list(tmp_path: Path) -> None:
    data = base()
    data["departments"][1]["nmae"] = "Транспорт"
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.fields == [("departments[1].nmae", "unknown key (did you mean 'name'?)")]
    assert str(info.value) == f"{path}: departments[1].nmae: unknown key (did you mean 'name'?)"


def test_unknown_key_without_close_match_lists_known_keys(tmp_path: Path) -> None:
    data = base()
    data["departments"][0]["telegram"]["zzz"] = 1
    problems = problems_of(write(tmp_path, data))
    assert problems["departments[0].telegram.zzz"] == "unknown key (known keys: chat_id, topic_id)"


def test_wrong_type_reports_path(tmp_path: Path) -> None:
    data = base()
    data["departments"][0]["telegram"]["chat_id"] = "not-a-number"
    problems = problems_of(write(tmp_path, data))
    assert list(problems) == ["departments[0].telegram.chat_id"]
    assert problems["departments[0].telegram.chat_id"] == (
        "expected a whole number, got 'not-a-number'"
    )


def test_bad_role_name_reports_list_index(tmp_path: Path) -> None:
    data = base()
    data["staff"][1]["roles"]["transport"] = ["lead", "boss"]
    problems = problems_of(write(tmp_path, data))
    assert list(problems) == ["staff[1].roles.transport[1]"]
    assert problems["staff[1].roles.transport[1]"] == (
        "'boss' is not allowed; expected one of specialist, approver, lead"
    )


def test_missing_required_key(tmp_path: Path) -> None:
    data = base()
    del data["coordination_department"]
    del data["departments"][2]["name"]
    problems = problems_of(write(tmp_path, data))
    assert problems == {
        "coordination_department": "missing required key",
        "departments[2].name": "missing required key",
    }


def test_unknown_department_in_staff_roles(tmp_path: Path) -> None:
    data = base()
    data["staff"].append({"id": "sidorov", "name": "Сидоров", "roles": {"housng": ["lead"]}})
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.fields == [
        ("staff[2].roles.housng", "unknown department 'housng' (did you mean 'housing'?)")
    ]
    assert f"{path}: staff[2].roles.housng: unknown department 'housng'" in str(info.value)


def test_unknown_coordination_department(tmp_path: Path) -> None:
    data = base()
    data["coordination_department"] = "cur"
    problems = problems_of(write(tmp_path, data))
    assert problems == {"coordination_department": "unknown department 'cur'"}


def test_duplicate_ids(tmp_path: Path) -> None:
    data = base()
    data["departments"].append({"id": "housing", "name": "ЖКХ-2"})
    data["staff"].append(
        {
            "id": "ivanova",
            "name": "Другая Иванова",
            "telegram_id": 100001,
            "matrix_id": "@petrov:example.org",
        }
    )
    problems = problems_of(write(tmp_path, data))
    assert problems == {
        "departments[3].id": "duplicate department id 'housing' (also departments[0])",
        "staff[2].id": "duplicate staff id 'ivanova' (also staff[0])",
        "staff[2].telegram_id": "duplicate telegram_id 100001 (also staff[0])",
        "staff[2].matrix_id": "duplicate matrix_id '@petrov:example.org' (also staff[1])",
    }


def test_duplicate_api_source_names_and_tokens(tmp_path: Path) -> None:
    data = base()
    data["api"] = {
        "sources": [
            {"name": "monitoring", "token": "t0k3n-aaaaaaaaaaaaaaaa"},
            {"name": "monitoring", "token": "t0k3n-aaaaaaaaaaaaaaaa", "scopes": ["read"]},
            {"name": "empty-1"},
            {"name": "empty-2"},  # two unset tokens are not a clash
        ]
    }
    problems = problems_of(write(tmp_path, data))
    assert problems == {
        "api.sources[1].name": "duplicate source name 'monitoring' (also api.sources[0])",
        "api.sources[1].token": "same token as api.sources[0]",
    }


def test_no_departments(tmp_path: Path) -> None:
    data = base()
    data["departments"] = []
    data["staff"] = []
    problems = problems_of(write(tmp_path, data))
    assert problems == {"departments": "at least one department is required"}


def test_invalid_ids_and_matrix_ids(tmp_path: Path) -> None:
    data = base()
    data["departments"][0]["id"] = "Housing"
    data["departments"][1]["matrix"]["room_id"] = "transport:example.org"
    data["staff"][1]["matrix_id"] = "petrov"
    problems = problems_of(write(tmp_path, data))
    assert set(problems) == {
        "departments[0].id",
        "departments[1].matrix.room_id",
        "staff[1].matrix_id",
    }
    assert "lowercase" in problems["departments[0].id"]
    assert "room id" in problems["departments[1].matrix.room_id"]


@pytest.mark.parametrize(
    "room",
    [
        "!tr:example.org",  # room versions up to 11
        "!aBcD-_1234567890aBcD-_1234567890aBcD-_12345",  # version 12: no server part
        "#press-transport:example.org",  # an alias, resolved to the room id at start
    ],
)
def test_matrix_rooms_of_every_room_version_and_aliases(tmp_path: Path, room: str) -> None:
    data = base()
    data["departments"][1]["matrix"]["room_id"] = room
    data["digest"] = {"recipients": {"matrix_room_ids": [room]}}
    config = load_config(write(tmp_path, data), env={})
    department = config.departments[1]
    assert department.matrix is not None and department.matrix.room_id == room
    aliases = [room] if room.startswith("#") else []
    assert config.matrix_room_aliases == aliases  # named once though configured twice


@pytest.mark.parametrize("room", ["!", "!a b:example.org", "#noserver", "#a:", "@a:example.org"])
def test_not_a_matrix_room(tmp_path: Path, room: str) -> None:
    data = base()
    data["departments"][1]["matrix"]["room_id"] = room
    problem = problems_of(write(tmp_path, data))["departments[1].matrix.room_id"]
    assert "room id" in problem and "alias" in problem


def test_matrix_rate_limit(tmp_path: Path) -> None:
    data = base()
    data["matrix"] = {"homeserver": "https://matrix.example.org"}
    config = load_config(write(tmp_path, data), env={})
    assert config.matrix is not None
    # Synapse's own defaults for rc_message.
    assert (config.matrix.rate_limit.per_second, config.matrix.rate_limit.burst) == (0.2, 10)
    data["matrix"]["rate_limit"] = {"per_second": 0, "burst": 0}
    assert set(problems_of(write(tmp_path, data))) == {"matrix.rate_limit.burst"}


def test_bad_timezone(tmp_path: Path) -> None:
    data = base()
    data["timezone"] = "Europe/Mosco"
    problems = problems_of(write(tmp_path, data))
    assert problems == {
        "timezone": "unknown time zone 'Europe/Mosco' (use an IANA name like 'Europe/Moscow')"
    }
    data["timezone"] = "../../etc/passwd"
    assert "timezone" in problems_of(write(tmp_path, data))


def test_timezone_property(tmp_path: Path) -> None:
    data = base()
    data["timezone"] = "Asia/Vladivostok"
    assert load_config(write(tmp_path, data), env={}).tz.key == "Asia/Vladivostok"


@pytest.mark.parametrize(
    ("cron", "fragment"),
    [
        ("0 19 * *", "must have 5 fields"),
        ("@daily", "must have 5 fields"),
        ("0 19 * * * *", "got 6"),
        ("0 19 ? * *", "'?'"),
    ],
)
def test_bad_cron(tmp_path: Path, cron: str, fragment: str) -> None:
    data = base()
    data["digest"] = {"weekly_cron": cron}
    problems = problems_of(write(tmp_path, data))
    assert list(problems) == ["digest.weekly_cron"]
    assert fragment in problems["digest.weekly_cron"]


def test_good_cron_shapes(tmp_path: Path) -> None:
    data = base()
    data["digest"] = {"evening_cron": "*/15 9-18 * * mon-fri", "weekly_cron": "0 10 1,15 jan sun"}
    config = load_config(write(tmp_path, data), env={})
    assert config.digest.evening_cron == "*/15 9-18 * * mon-fri"


@pytest.mark.parametrize(
    "token",
    [
        "CHANGE_ME",
        "your-token",
        "123456789:your-bot-token-from-botfather",
        "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11",
        "<token>",
    ],
)
def test_placeholder_token_rejected(tmp_path: Path, token: str) -> None:
    data = base()
    data["telegram"] = {"token": token}
    problems = problems_of(write(tmp_path, data))
    assert list(problems) == ["telegram.token"]
    assert "placeholder" in problems["telegram.token"]


@pytest.mark.parametrize("token", ["12345", "abc:defghijklmnopqrstuvwxyz", "123:short"])
def test_malformed_token_rejected(tmp_path: Path, token: str) -> None:
    data = base()
    data["telegram"] = {"token": token}
    problems = problems_of(write(tmp_path, data))
    assert "does not look like a Telegram bot token" in problems["telegram.token"]


def test_token_whitespace_and_null(tmp_path: Path) -> None:
    data = base()
    data["telegram"] = {"token": f"{GOOD_TOKEN}\n"}
    assert load_config(write(tmp_path, data), env={}).telegram.token == GOOD_TOKEN
    data["telegram"] = {"token": None}
    config = load_config(write(tmp_path, data), env={})
    assert config.telegram.token == "" and not config.telegram_enabled


def test_telegram_webhook_settings(tmp_path: Path) -> None:
    data = base()
    data["telegram"] = {"token": GOOD_TOKEN}
    telegram = load_config(write(tmp_path, data), env={}).telegram
    assert telegram is not None and telegram.mode == "polling"  # the default

    data["telegram"] = {
        "token": GOOD_TOKEN,
        "mode": "webhook",
        "webhook": {"url": "https://bot.example.org/", "secret_token": "a-Z_9" * 10},
    }
    telegram = load_config(write(tmp_path, data), env={}).telegram
    assert telegram is not None
    assert telegram.webhook.public_url == "https://bot.example.org/telegram/webhook"
    assert (telegram.webhook.max_connections, telegram.webhook.reclaim_after_s) == (40, 60.0)
    data["telegram"]["webhook"]["url"] = "https://bot.example.org/tg/hook"  # the proxy's path
    telegram = load_config(write(tmp_path, data), env={}).telegram
    assert telegram is not None and telegram.webhook.public_url == "https://bot.example.org/tg/hook"


def test_telegram_webhook_problems(tmp_path: Path) -> None:
    data = base()
    data["telegram"] = {"token": GOOD_TOKEN, "mode": "webhook"}
    assert "is needed in webhook mode" in problems_of(write(tmp_path, data))["telegram.webhook.url"]
    data["telegram"] = {"token": "", "mode": "webhook"}  # Telegram off: nothing to ask
    load_config(write(tmp_path, data), env={})

    data["telegram"] = {
        "token": GOOD_TOKEN,
        "mode": "webhook",
        "webhook": {
            "url": "bot.example.org",
            "path": "/api/telegram",
            "secret_token": "not allowed!",
            "max_connections": 101,
        },
    }
    problems = problems_of(write(tmp_path, data))
    assert set(problems) == {
        "telegram.webhook.url",
        "telegram.webhook.path",
        "telegram.webhook.secret_token",
        "telegram.webhook.max_connections",
    }
    assert "1 to 256 Latin letters" in problems["telegram.webhook.secret_token"]
    data["telegram"]["webhook"] = {"url": "https://bot.example.org", "secret_token": "x" * 257}
    assert "telegram.webhook.secret_token" in problems_of(write(tmp_path, data))


def test_placeholder_rejected_for_other_secrets(tmp_path: Path) -> None:
    data = base()
    data["matrix"] = {"access_token": "CHANGE_ME"}
    data["api"] = {"sources": [{"name": "monitoring", "token": "<your token>"}]}
    problems = problems_of(write(tmp_path, data))
    assert set(problems) == {"matrix.access_token", "api.sources[0].token"}


def test_database_url_needs_async_driver(tmp_path: Path) -> None:
    data = base()
    data["database"] = {"url": "postgresql://u:p@h/db"}
    problems = problems_of(write(tmp_path, data))
    assert "postgresql+asyncpg://" in problems["database.url"]


def test_outbox_limits(tmp_path: Path) -> None:
    data = base()
    data["outbox"] = {"base_retry_s": 10, "max_retry_s": 5}
    assert problems_of(write(tmp_path, data)) == {
        "outbox.max_retry_s": "must be at least base_retry_s (10.0)"
    }
    data["outbox"] = {"poll_interval_s": 0}
    assert "greater than 0" in problems_of(write(tmp_path, data))["outbox.poll_interval_s"]


def test_log_level_is_case_insensitive(tmp_path: Path) -> None:
    data = base()
    data["log_level"] = "debug"
    assert load_config(write(tmp_path, data), env={}).log_level == "DEBUG"


# --- file and YAML problems -------------------------------------------------------------------


def test_yaml_syntax_error_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path, "locale: ru\ndepartments:\n  - id: housing\n    name: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    [(field, message)] = info.value.fields
    assert field == ""
    # The parser notices at the end of the file, so the opening line is given as well.
    assert message.startswith("invalid YAML at line 5, column 1:")
    assert message.endswith("(while parsing a flow sequence started at line 4)")
    assert str(info.value).startswith(f"{path}: invalid YAML at line")


def test_yaml_bad_indentation_reports_exact_line(tmp_path: Path) -> None:
    path = write(tmp_path, "locale: ru\ntimezone: Europe/Moscow\n  log_level: INFO\n")
    [(_, message)] = load_problems(path)
    assert "line 3" in message


def test_duplicate_yaml_key_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "locale: ru\nlocale: en\n")
    [(_, message)] = load_problems(path)
    assert message.startswith("invalid YAML at line 2, column 1: found duplicate key 'locale'")


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    text = yaml.safe_dump(base(), allow_unicode=True) + (
        "digest:\n"
        "  recipients: &r {telegram_chat_ids: [-1001]}\n"
        "outbox: {<<: {base_retry_s: 2.0, max_retry_s: 3.0}, max_retry_s: 60.0}\n"
    )
    config = load_config(write(tmp_path, text), env={})
    assert config.outbox.base_retry_s == 2.0 and config.outbox.max_retry_s == 60.0


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert load_problems(path) == [("", "file not found")]


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_top_level_must_be_mapping(tmp_path: Path, text: str) -> None:
    [(field, message)] = load_problems(write(tmp_path, text))
    assert field == ""
    assert "mapping" in message


# --- paths ------------------------------------------------------------------------------------


def test_relative_playbook_paths_resolve_against_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # must not matter
    data = base()
    data["playbooks"] = {"path": "pb/default", "templates": str(tmp_path / "abs" / "tpl")}
    data["database"] = {"url": "sqlite+aiosqlite:///data/otklik.db"}
    config = load_config(write(tmp_path, data, name="etc/otklik/config.yaml"), env={})

    assert config.playbooks.path == tmp_path.resolve() / "etc" / "otklik" / "pb" / "default"
    assert config.playbooks.path.is_absolute()
    assert config.playbooks.templates == tmp_path / "abs" / "tpl"
    # Beside the config file too (it once followed the working directory).
    assert config.database.url == (
        f"sqlite+aiosqlite:///{tmp_path.resolve()}/etc/otklik/data/otklik.db"
    )


def test_default_playbook_paths_resolve_too(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, base()), env={})
    assert config.playbooks.path == tmp_path.resolve() / "playbooks" / "default"
    assert config.playbooks.templates == tmp_path.resolve() / "playbooks" / "templates"


# --- lookups and model behaviour --------------------------------------------------------------


def test_lookups(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, base()), env={})

    assert config.staff_by_telegram(100001).id == "ivanova"
    assert config.staff_by_telegram(999) is None
    assert config.staff_by_matrix("@petrov:example.org").id == "petrov"
    assert config.staff_by_matrix("@nobody:example.org") is None
    assert config.staff_member("petrov").roles == {
        "housing": [DeptRole.APPROVER],
        "transport": [DeptRole.LEAD],
    }
    assert config.staff_member("petrov").global_roles == [GlobalRole.DUTY]
    assert config.staff_member("nobody") is None
    assert config.department("transport").matrix.room_id == "!tr:example.org"
    assert config.department("health") is None
    assert config.department_ids == frozenset({"housing", "transport", "coordination"})


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, base()), env={})
    with pytest.raises(ValidationError):
        config.locale = "en"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.departments[0].name = "x"  # type: ignore[misc]


def test_model_copy_rebuilds_lookups(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, base()), env={})
    assert config.staff_member("ivanova") is not None  # builds the index
    emptied = config.model_copy(update={"staff": []})
    assert emptied.staff_member("ivanova") is None
    assert config.staff_member("ivanova") is not None


def test_config_can_be_built_directly() -> None:
    # Tests elsewhere build Config in code; cross-checks still apply there.
    config = Config.model_validate(base())
    assert config.playbooks.path == Path("playbooks/default")  # no file, nothing to resolve
    bad = base()
    bad["coordination_department"] = "cur"
    with pytest.raises(ValidationError, match="unknown department 'cur'"):
        Config.model_validate(bad)


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8080),
        ("0.0.0.0:0", "0.0.0.0", 0),
        ("[::1]:9000", "::1", 9000),
    ],
)
def test_api_listen(tmp_path: Path, listen: str, host: str, port: int) -> None:
    data = base()
    data["api"] = {"listen": listen}
    config = load_config(write(tmp_path, data), env={})
    assert (config.api.host, config.api.port) == (host, port)
    assert config.api.sources == []


@pytest.mark.parametrize("listen", ["localhost", "127.0.0.1:http", "h:70000", "::1:80"])
def test_api_listen_rejected(tmp_path: Path, listen: str) -> None:
    data = base()
    data["api"] = {"listen": listen}
    assert "api.listen" in problems_of(write(tmp_path, data))


def test_api_source_default_scope(tmp_path: Path) -> None:
    data = base()
    data["api"] = {"sources": [{"name": "monitoring", "token": "${T:-}"}]}
    config = load_config(write(tmp_path, data), env={})
    assert config.api.sources[0].scopes == ["ingest"]
    assert not config.api.sources[0].enabled


def test_matrix_enabled_needs_all_three(tmp_path: Path) -> None:
    data = base()
    data["matrix"] = {"homeserver": "https://matrix.example.org", "user_id": "@otklik:example.org"}
    assert not load_config(write(tmp_path, data), env={}).matrix_enabled
    data["matrix"]["access_token"] = "syt_b3RrbGlr_abcdef"
    config = load_config(write(tmp_path, data), env={})
    assert config.matrix_enabled
    assert not config.telegram_enabled  # section absent


def test_fault7_api_source_names_of_built_in_channels_are_refused(tmp_path: Path) -> None:
    # A source named like a messenger would pass its mentions off as that messenger's.
    names = ["telegram", "Telegram", "telegram_dm", "matrix", "email", "phone", "rss:news"]
    data = base()
    data["api"] = {"sources": [{"name": name} for name in [*names, "monitoring"]]}
    problems = problems_of(write(tmp_path, data))
    assert set(problems) == {f"api.sources[{i}].name" for i in range(len(names))}
    assert "built-in" in problems["api.sources[0].name"]


def test_instance_name_is_configured_or_host_and_pid(tmp_path: Path) -> None:
    named = load_config(write(tmp_path, {**base(), "instance": {"name": "bot-a"}}), env={})
    assert named.instance_name == "bot-a"
    default = load_config(write(tmp_path, base()), env={})
    assert default.instance_name.endswith(f"-{os.getpid()}")
    problems = problems_of(write(tmp_path, {**base(), "instance": {"name": "a b"}}))
    assert "instance.name" in problems
