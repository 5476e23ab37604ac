"""The config's production settings: the SQLite path against the config file's directory,
log_format, and where /metrics is served."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings.config import load_config
from tests.bot.settings.test_config import base, problems_of, write


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite+aiosqlite:///data/otklik.db", "sqlite+aiosqlite:///{conf}/data/otklik.db"),
        ("sqlite+aiosqlite:///../shared/o.db", "sqlite+aiosqlite:///{tmp}/shared/o.db"),
        ("sqlite+aiosqlite:///o.db?timeout=5", "sqlite+aiosqlite:///{conf}/o.db?timeout=5"),
        ("sqlite+aiosqlite:////var/lib/otklik/o.db", "sqlite+aiosqlite:////var/lib/otklik/o.db"),
        ("sqlite+aiosqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
        ("sqlite+aiosqlite://", "sqlite+aiosqlite://"),
        (
            "sqlite+aiosqlite:///file:/srv/o.db?mode=ro&uri=true",
            "sqlite+aiosqlite:///file:/srv/o.db?mode=ro&uri=true",
        ),
        (
            "postgresql+asyncpg://otklik:pw@db:5432/otklik",
            "postgresql+asyncpg://otklik:pw@db:5432/otklik",
        ),
    ],
)
def test_a_relative_sqlite_path_is_relative_to_the_config_file(
    tmp_path: Path, given: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = base()
    data["database"] = {"url": given}
    path = write(tmp_path / "conf", data)
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    config = load_config(path, env={})
    assert config.database.url == expected.format(conf=tmp_path / "conf", tmp=tmp_path)


def test_the_default_database_lies_beside_the_config_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "etc", base()), env={})
    assert config.database.url == f"sqlite+aiosqlite:///{tmp_path}/etc/data/otklik.db"


def test_log_format_is_plain_or_json(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, base()), env={}).log_format == "plain"
    data = base()
    data["log_format"] = "json"
    assert load_config(write(tmp_path, data), env={}).log_format == "json"
    data["log_format"] = "xml"
    assert "log_format" in problems_of(write(tmp_path, data))


def test_metrics_default_to_an_address_of_their_own(tmp_path: Path) -> None:
    metrics = load_config(write(tmp_path, base()), env={}).metrics
    assert (metrics.host, metrics.port, metrics.token, metrics.on_api_port) == (
        "127.0.0.1",
        9108,
        "",
        False,
    )


def test_metrics_on_the_api_port_need_a_token(tmp_path: Path) -> None:
    data = base()
    data["metrics"] = {"listen": "", "token": "${METRICS_TOKEN:-}"}
    path = write(tmp_path, data)
    off = load_config(path, env={}).metrics
    assert off.listen is None and not off.on_api_port  # served nowhere
    token = "f" * 32
    beside = load_config(path, env={"METRICS_TOKEN": token}).metrics
    assert beside.on_api_port and beside.token == token

    assert "metrics.token" in problems_of(path, env={"METRICS_TOKEN": "short-token"})
    data["metrics"] = {"listen": "127.0.0.1:8080"}  # the API's own address
    assert "metrics.listen" in problems_of(write(tmp_path, data))
    data["metrics"] = {"listen": "localhost"}
    assert "metrics.listen" in problems_of(write(tmp_path, data))
