"""The command line and the application start as a user meets them."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

from bot.clock import FrozenClock
from bot.settings.config import load_config
from bot.settings.playbook import load_playbook
from handlers.app import App
from handlers.cli import app
from tests.doubles.support import ROOT

runner = CliRunner()
EXAMPLE = ROOT / "config.example.yaml"


def example_copy(tmp_path: Path, replace: tuple[str, str] | None = None) -> Path:
    """The example config, runnable from tmp_path (absolute playbook paths, own database)."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text = re.sub(r"path: playbooks/default", f"path: {ROOT}/playbooks/default", text)
    text = re.sub(r"templates: playbooks/templates", f"templates: {ROOT}/playbooks/templates", text)
    text = text.replace(
        "sqlite+aiosqlite:///data/otklik.db", f"sqlite+aiosqlite:///{tmp_path}/otklik.db"
    )
    if replace:
        assert replace[0] in text
        text = text.replace(*replace, 1)
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_config_on_the_example_prints_a_summary() -> None:
    result = runner.invoke(app, ["check-config", "-c", str(EXAMPLE)], env={})
    assert result.exit_code == 0, result.output
    for expected in ("OK", "Departments", "housing", "coordination", "Staff", "Playbook"):
        assert expected in result.output


def test_check_config_names_a_mistyped_key(tmp_path: Path) -> None:
    path = example_copy(tmp_path, ("coordination_department:", "coordination_departmnet:"))
    result = runner.invoke(app, ["check-config", "-c", str(path)], env={})
    assert result.exit_code == 2
    assert "coordination_departmnet" in result.output
    assert "unknown key" in result.output


def test_db_upgrade_and_version(tmp_path: Path) -> None:
    path = example_copy(tmp_path)
    result = runner.invoke(app, ["db", "upgrade", "-c", str(path)], env={})
    assert result.exit_code == 0, result.output
    assert "0010" in result.output
    assert (tmp_path / "otklik.db").exists()
    assert "otklik 0.1.0" in runner.invoke(app, ["version"]).output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_app_starts_without_chat_credentials_and_says_what_to_configure(
    tmp_path: Path, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    path = example_copy(tmp_path, ("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{port}"))
    config = load_config(path, env={})
    otklik = App(config, load_playbook(config.playbooks.path), clock=clock)
    with caplog.at_level(logging.INFO):
        await otklik.start()
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://127.0.0.1:{port}/healthz") as response,
            ):
                assert response.status == 200
                assert await response.json() == {
                    "status": "ok",
                    "transports": [],
                    "outbox_depth": 0,
                }
            assert otklik.scheduler.running
        finally:
            await otklik.stop()
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "OTKLIK_TELEGRAM_TOKEN" in warning and "matrix" in warning.lower()
    await asyncio.sleep(0)


def test_authors_merge_on_the_command_line(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from bot.cases.service import CaseService
    from bot.clock import SystemClock
    from bot.model import Identity, Mention, Sentiment
    from bot.staff.directory import Directory
    from store.db import Database

    path = example_copy(tmp_path)
    config = load_config(path, env={})

    async def seed() -> list[int]:
        db = Database(config.database.url)
        await db.upgrade()
        cases = CaseService(db.uow, SystemClock(), Directory(config), config.tz)
        ids = []
        for n, channel in enumerate(("vk", "email")):
            result = await cases.intake(
                Mention(
                    source=channel,
                    external_id=str(n),
                    text="x",
                    author=Identity(channel, f"p{n}", "Пётр"),
                    received_at=datetime.now(UTC),
                    sentiment=Sentiment.NEGATIVE,
                ),
                None,
            )
            assert result.mention and result.mention.author_id
            ids.append(result.mention.author_id)
        await db.dispose()
        return ids

    keep, gone = asyncio.run(seed())
    result = runner.invoke(app, ["authors", "merge", str(keep), str(gone), "-c", str(path)])
    assert result.exit_code == 0, result.output
    again = runner.invoke(app, ["authors", "merge", str(keep), str(gone), "-c", str(path)])
    assert again.exit_code == 1  # the merged card is gone
