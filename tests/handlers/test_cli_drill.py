"""`otklik drill start|stop|report` beside a running bot: the CLI writes the run, the bot's
drill job plays it, the CLI stops it and exports its report."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from openpyxl import load_workbook
from typer.testing import CliRunner

from bot.clock import FrozenClock
from bot.drills.timeline import due_count
from bot.settings.config import load_config
from bot.settings.playbook import load_playbook
from handlers.app import App
from handlers.cli import app
from tests.handlers.test_cli import example_copy

runner = CliRunner()


def test_drill_start_play_stop_and_report(tmp_path: Path) -> None:
    config_path = example_copy(tmp_path)
    unknown = runner.invoke(app, ["drill", "start", "flood", "-c", str(config_path)])
    assert unknown.exit_code == 1
    assert "no drill scenario 'flood'" in unknown.output
    assert all(name in unknown.output for name in ("transport-strike", "viral-accusation"))

    started = runner.invoke(app, ["drill", "start", "utility-outage-storm", "-c", str(config_path)])
    assert started.exit_code == 0, started.output
    assert "drill #1 started: utility-outage-storm, 15 mention(s)" in started.output
    again = runner.invoke(app, ["drill", "start", "transport-strike", "-c", str(config_path)])
    assert again.exit_code == 1 and "already running" in again.output
    assert runner.invoke(app, ["drill", "report", "1", "-c", str(config_path)]).exit_code == 1

    # The running bot (another process) picks the run up: ten real minutes later, its drill
    # job has fed what is due by then (a drill hour passes in 10 minutes here).
    config = load_config(config_path, env={})
    playbook = load_playbook(config.playbooks.path)
    later = datetime.now(UTC) + timedelta(minutes=10)

    async def drill_crisis_open() -> bool | None:
        """None: the drill opened no crisis; else whether its crisis is open."""
        bot = App(config, playbook, FrozenClock(later), transports={})
        try:
            async with bot.database.uow() as uow:
                crisis = await uow.crises.of_drill(1)
            return None if crisis is None else crisis.is_open
        finally:
            await bot.database.dispose()

    async def play() -> tuple[int, int, list[bool]]:
        bot = App(config, playbook, FrozenClock(later), transports={})
        await bot.database.upgrade()
        try:
            run = await bot.drills.running()
            assert run is not None and run.id == 1
            fed = await bot.drill_jobs.run()
            expected = due_count(
                bot.drills.timeline(playbook.drills["utility-outage-storm"]),
                run.hour_in_minutes,
                run.started_at,
                later,
            )
            async with bot.database.uow() as uow:
                cases = await uow.drills.cases_of(1)
            return fed, expected, [c.drill and c.drill_run_id == 1 for c in cases]
        finally:
            await bot.database.dispose()

    fed, expected, flags = asyncio.run(play())
    assert 0 < fed == expected < 15
    assert flags == [True] * fed
    # The bot's drill job opened the drill's crisis card (the CLI opens none: no race).
    assert asyncio.run(drill_crisis_open()) is True

    stopped = runner.invoke(app, ["drill", "stop", "-c", str(config_path)])
    assert stopped.exit_code == 0, stopped.output
    assert f"drill #1 stopped: {fed} case(s), {fed} left open" in stopped.output
    assert runner.invoke(app, ["drill", "stop", "-c", str(config_path)]).exit_code == 1
    assert asyncio.run(drill_crisis_open()) is False  # the CLI's stop closed it

    md = tmp_path / "drill.md"
    done = runner.invoke(
        app, ["drill", "report", "1", "--format", "md", "-o", str(md), "-c", str(config_path)]
    )
    assert done.exit_code == 0, done.output
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# 🧪 Отчёт об учениях №1: Шторм аварий ЖКХ")
    assert "| **Все отделы** |" not in text  # plain cells: the last row is the overall one
    assert f"| Все отделы | {fed} | 0 |" in text
    assert "Ни один пункт чек-листа не отмечен." in text  # the card was not ticked

    html = tmp_path / "drill.html"
    runner.invoke(
        app, ["drill", "report", "1", "--format", "html", "-o", str(html), "-c", str(config_path)]
    )
    assert "<table>" in html.read_text(encoding="utf-8")

    xlsx = tmp_path / "drill.xlsx"
    runner.invoke(
        app, ["drill", "report", "1", "--format", "xlsx", "-o", str(xlsx), "-c", str(config_path)]
    )
    book = load_workbook(xlsx)
    assert book.sheetnames == ["Сводка", "Чек-лист кризиса"]
    rows = list(book["Сводка"].iter_rows(values_only=True))
    assert rows[0][0] == "Отчёт об учениях №1: Шторм аварий ЖКХ — отключение тепла и воды"
    assert rows[2][:2] == ("Отдел", "Кейсов")
    assert rows[-1][:2] == ("Все отделы", fed)
    bad = runner.invoke(app, ["drill", "report", "1", "--format", "pdf", "-c", str(config_path)])
    assert bad.exit_code == 2
