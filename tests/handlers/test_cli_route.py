"""`otklik route`: a dry run of intake that stores nothing (issue 17, point 6)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from bot.cases.service import CaseService
from bot.clock import SystemClock
from bot.model import Identity, Mention, Sentiment
from bot.settings.config import load_config
from bot.staff.directory import Directory
from handlers.cli import app
from store.db import Database
from tests.handlers.test_cli import example_copy

runner = CliRunner()

HEATING_RU = "Третий день нет горячей воды в доме на Ленина 5, управляющая компания молчит"
BUS_EN = "The bus 12 never came again this morning, the drivers ignore the schedule"


def _seed(path: Path) -> None:
    config = load_config(path, env={})

    async def seed() -> None:
        db = Database(config.database.url)
        await db.upgrade()
        cases = CaseService(db.uow, SystemClock(), Directory(config), config.tz)
        for n, text in enumerate((HEATING_RU, BUS_EN)):
            mention = Mention(
                source="vk",
                external_id=str(n),
                text=text,
                author=Identity("vk", f"p{n}", "Пётр"),
                received_at=datetime.now(UTC),
                sentiment=Sentiment.NEGATIVE,
            )
            await cases.intake(mention, None)
        await db.dispose()

    asyncio.run(seed())


def _files(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file beside the database (the WAL and shared-memory files too): bytes, mtime."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()}


def _counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def test_route_prints_the_decision_and_leaves_the_database_untouched(tmp_path: Path) -> None:
    path = example_copy(tmp_path)
    _seed(path)
    db = tmp_path / "otklik.db"
    counts = _counts(db)
    assert counts["mentions"] == 2 and counts["authors"] >= 1
    before = _files(tmp_path)

    ru = runner.invoke(app, ["route", HEATING_RU, "--source", "vk", "-c", str(path)], env={})
    assert ru.exit_code == 0, ru.output
    assert "department: housing (ЖКХ) by rule housing-water" in ru.output
    assert "housing-water → housing: MATCHED" in ru.output
    assert "housing-management → housing: shadowed by an earlier rule" in ru.output
    assert "sentiment: negative" in ru.output and "signals: «" in ru.output
    assert "learned router: housing" in ru.output

    en = runner.invoke(app, ["route", BUS_EN, "--language", "en", "-c", str(path)], env={})
    assert en.exit_code == 0, en.output
    assert "department: transport (Транспорт) by rule transport-public" in en.output

    assert _files(tmp_path) == before  # not a byte, not a timestamp, no new file
    assert _counts(db) == counts


def test_route_json_names_almost_matched_rules_and_labels(tmp_path: Path) -> None:
    path = example_copy(tmp_path)
    # The words of "горяч вод" are there, but apart: housing-water almost matched.
    result = runner.invoke(
        app, ["route", "вода не горячая третий день", "--json", "-c", str(path)], env={}
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    water = next(r for r in found["rules"] if r["id"] == "housing-water")
    assert not water["matched"] and water["almost"]
    assert water["conditions"][0]["near"] == ["горяч вод"]
    assert found["sentiment"]["sentiment"] == "negative"
    assert found["router"]["department"] == "housing"
    assert not (tmp_path / "otklik.db").exists()  # a dry run never creates the database

    official = runner.invoke(
        app,
        ["route", "Авария на теплотрассе", "--author-label", "official", "--json", "-c", str(path)],
        env={},
    )
    assert official.exit_code == 0, official.output
    assert json.loads(official.output)["official"] is True
    assert json.loads(official.output)["opens_case"] is False

    wrong = runner.invoke(app, ["route", "x", "--author-label", "boss", "-c", str(path)], env={})
    assert wrong.exit_code == 2
    assert "official" in wrong.output
