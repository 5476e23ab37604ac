"""The command line and the application start as a user meets them."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

from bot.clock import FrozenClock
from bot.model import Author
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


def test_check_config_needs_template_texts_in_the_configured_locale_only(tmp_path: Path) -> None:
    import shutil

    playbook = tmp_path / "playbook"
    shutil.copytree(ROOT / "playbooks" / "default", playbook)
    file = playbook / "templates.yaml"
    # A Russian-only organisation writes no English replies.
    text = re.sub(r"(?m)^ {6}en: \|-\n(?: {8}.*\n)*", "", file.read_text(encoding="utf-8"))
    file.write_text(re.sub(r"(?m)^ {6}en: .*\n", "", text), encoding="utf-8")
    own = (f"path: {ROOT}/playbooks/default", f"path: {playbook}")
    path = example_copy(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace(*own), encoding="utf-8")
    result = runner.invoke(app, ["check-config", "-c", str(path)], env={})
    assert result.exit_code == 0, result.output
    path.write_text(
        path.read_text(encoding="utf-8").replace("locale: ru", "locale: en", 1), encoding="utf-8"
    )
    result = runner.invoke(app, ["check-config", "-c", str(path)], env={})
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "templates[0].title.en" in said and "has no title in 'en', the config's locale" in said


def test_fault9_check_config_requires_api_tokens_of_32_characters(tmp_path: Path) -> None:
    path = example_copy(tmp_path)
    for weak in ("s3cr3t", "x" * 31, "ключ-" + "x" * 40):
        env = {"OTKLIK_API_TOKEN_MONITORING": weak}
        result = runner.invoke(app, ["check-config", "-c", str(path)], env=env)
        assert result.exit_code == 2, (weak, result.output)
        assert "api.sources[0].token" in result.output
        assert "at least 32" in " ".join(result.output.split())
        assert weak not in result.output  # a secret is never echoed
    strong = {"OTKLIK_API_TOKEN_MONITORING": "a3f1" * 8}
    result = runner.invoke(app, ["check-config", "-c", str(path)], env=strong)
    assert result.exit_code == 0, result.output


def test_db_upgrade_and_version(tmp_path: Path) -> None:
    path = example_copy(tmp_path)
    result = runner.invoke(app, ["db", "upgrade", "-c", str(path)], env={})
    assert result.exit_code == 0, result.output
    assert "0028" in result.output
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
                    "transports": ["sandbox"],  # the browser chat stands in for a messenger
                    "outbox_depth": 0,
                }
            assert otklik.scheduler.running
        finally:
            await otklik.stop()
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "OTKLIK_TELEGRAM_TOKEN" in warning and "matrix" in warning.lower()
    said = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    assert f"http://127.0.0.1:{port}/sandbox" in said
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


async def test_a_first_start_without_keys_makes_a_private_key_file_and_warns(
    tmp_path: Path,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTKLIK_DATA_KEY")
    monkeypatch.delenv("OTKLIK_INDEX_KEY")
    port = free_port()
    path = example_copy(tmp_path, ("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{port}"))
    config = load_config(path, env={})
    with caplog.at_level(logging.WARNING):
        otklik = App(config, load_playbook(config.playbooks.path), clock=clock)
        await otklik.start()
        await otklik.stop()
    key_file = tmp_path / "otklik.db.keys"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "OTKLIK_DATA_KEY is not set" in caplog.text and str(key_file) in caplog.text
    result = runner.invoke(app, ["check-config", "-c", str(path)])
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.output and "trial use only" in result.output


def test_keys_rotate_moves_stored_values_to_the_first_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    from bot.model import Identity
    from store import crypto
    from store.db import Database
    from tests.doubles.support import make_mention

    old, new, index = (base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2, 3))
    path = example_copy(tmp_path)
    config = load_config(path, env={})
    monkeypatch.setenv("OTKLIK_INDEX_KEY", index)

    async def store_one() -> None:
        monkeypatch.setenv("OTKLIK_DATA_KEY", f"old:{old}")
        db = Database(config.database.url)
        await db.upgrade()
        async with db.uow() as uow:
            mention = make_mention("m1", datetime.now(UTC), text="Нет отопления")
            author = await uow.authors.add(Author(None, "Пётр", (mention.author,)))
            await uow.mentions.add(replace(mention, author_id=author.id))
            await uow.commit()
        await db.dispose()

    async def read_back() -> tuple[str, str]:
        monkeypatch.setenv("OTKLIK_DATA_KEY", f"new:{new}")  # the old key is gone
        db = Database(config.database.url)
        async with db.uow() as uow:
            mention = await uow.mentions.get_by_external("vk", "m1")
            author = await uow.authors.find_by_identity(Identity("vk", "id-m1"))
        await db.dispose()
        assert mention is not None and author is not None
        return mention.text, author.display_name

    asyncio.run(store_one())
    rotated = runner.invoke(
        app,
        ["keys", "rotate", "-c", str(path), "--batch", "1"],
        env={"OTKLIK_DATA_KEY": f"new:{new},old:{old}"},
    )
    assert rotated.exit_code == 0, rotated.output
    # The mention's values are one sealed record (0020): one value to re-encrypt.
    assert "mentions: 1 rows read, 1 values re-encrypted" in rotated.output
    assert "under key new" in rotated.output and "older keys may leave" in rotated.output
    assert asyncio.run(read_back()) == ("Нет отопления", "Пётр")
    assert crypto.keyring().current == "new"


def test_keys_generate_prints_usable_environment_lines() -> None:
    from store import crypto

    result = runner.invoke(app, ["keys", "generate", "--id", "k2"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines())
    ring = crypto.parse_keys(lines["OTKLIK_DATA_KEY"], lines["OTKLIK_INDEX_KEY"], "printed")
    assert ring.current == "k2"
