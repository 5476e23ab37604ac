"""Coding, priority and assignment from a Telegram card (issue 18, item 4): real dispatcher,
real HTTP, the Bot API test server, and `otklik report` run on the same database."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from typer.testing import CliRunner

from bot.model import Action, CaseState, EventKind, Priority
from handlers.cli import app as cli
from tests.doubles.telegram_world import telegram_world


def _buttons(message: object) -> list[str]:
    markup = getattr(message, "reply_markup", None) or {}
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else []
    return [button["text"] for row in rows for button in row]


async def test_a_lead_codes_reprioritises_and_assigns_and_the_report_counts_it(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path) as world:
        case_id = await world.open_case()
        before = await world.case(case_id)
        # The routing rule's code stays beside those set from the chat.
        assert before.priority is Priority.NORMAL and before.codes == ("heating",)
        card = await world.card(case_id)
        assert {"Коды ▸", "Приоритет ▸", "Назначить ▸"} <= set(_buttons(card))

        # Two dimensions, two levels each: «Коды ▸» → a dimension → a code.
        for dimension, code in (("Тема ▸", "Отопление"), ("Район ▸", "Южный")):
            await world.press("lead", await world.card(case_id), "Коды ▸")
            await world.idle()
            menu = await world.card(case_id)
            assert {"Тема ▸", "Объект ▸", "Район ▸"} <= set(_buttons(menu))
            await world.press("lead", menu, dimension)
            await world.idle()
            await world.press("lead", await world.card(case_id), code)
            await world.idle()
        coded = ("heating", "topic:heating", "district:south")
        assert (await world.case(case_id)).codes == coded

        # Priority up: the SLA policy follows it (high: first reply in 45 working minutes,
        # normal: 60), counted from the case's opening.
        await world.press("lead", await world.card(case_id), "Приоритет ▸")
        await world.idle()
        await world.press("lead", await world.card(case_id), "Высокий")
        await world.idle()
        raised = await world.case(case_id)
        assert raised.priority is Priority.HIGH and raised.sla_policy == "high"
        assert before.first_touch_due_at is not None and raised.first_touch_due_at is not None
        assert raised.first_touch_due_at < before.first_touch_due_at

        # A specialist's press of «Назначить» (a forged one: the menu is the lead's) is refused
        # and audited; the lead's assigns a named colleague, who is told under the card.
        await world.press("spec", await world.card(case_id), "Назначить ▸")
        await world.idle()
        assert "Назначить ▸" in _buttons(await world.card(case_id))  # no menu opened for them
        answer = await world.forge(
            "spec", await world.card(case_id), f"c:{case_id}:{raised.version}:assign:spec"
        )
        assert answer["show_alert"] and answer["text"] == "Нет прав на это действие."
        await world.press("lead", await world.card(case_id), "Назначить ▸")
        await world.idle()
        menu = await world.card(case_id)
        assert {"Анна Иванова", "Борис Орлов", "Глеб Смирнов"} <= set(_buttons(menu))
        await world.press("lead", menu, "Борис Орлов")
        await world.idle()
        case = await world.case(case_id)
        assert (case.state, case.assignee) == (CaseState.TAKEN, "spec2")
        told = [
            m.text or ""
            for m in world.server.messages(world.housing)
            if m.bot_id is not None and f"Кейс №{case_id} назначен" in (m.text or "")
        ]
        assert told == [f"👤 Кейс №{case_id} назначен: Борис Орлов (назначил(а) Глеб Смирнов)."]

        # The card shows them all.
        text = (await world.card(case_id)).text or ""
        assert "🏷️ Тема: Отопление · Район: Южный" in text
        assert "👤 Борис Орлов" in text
        assert "Высокий" in text

        # Every change is in the history, with who did it and what; the refusals too.
        async with world.app.database.uow() as uow:
            events = await uow.events.for_case(case_id)
        done = [(e.kind, e.actor, e.payload) for e in events if e.kind in set(Action)]
        assert (Action.SET_CODE, "lead", {"code": "topic:heating", "added": True}) in done
        assert (Action.SET_CODE, "lead", {"code": "district:south", "added": True}) in done
        priority = next(p for kind, _, p in done if kind == Action.SET_PRIORITY)
        assert (priority["previous"], priority["priority"], priority["sla_policy"]) == (
            "normal",
            "high",
            "high",
        )
        assert (Action.ASSIGN, "lead", {"assignee": "spec2"}) in done
        denied = [e for e in events if e.kind == EventKind.DENIED and e.actor == "spec"]
        assert [e.payload.get("action") for e in denied] == ["assign", "assign"]

        # /case N tells the story in words.
        asked = world.say("lead", world.housing, f"/case {case_id}", thread=world.topic)
        history = (await world.answer_to(asked)).text or ""
        assert "+ Тема: Отопление" in history and "+ Район: Южный" in history
        assert "изменил(а) приоритет — Высокий" in history
        assert "назначил(а) ответственного — Борис Орлов" in history

        # `otklik report` counts the case by code per dimension and by assignee.
        today = datetime.now(ZoneInfo("Europe/Moscow")).date().isoformat()
        output = tmp_path / "report.md"
        result = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            [
                "report",
                "--from",
                today,
                "--to",
                today,
                "--format",
                "md",
                "--output",
                str(output),
                "--config",
                str(tmp_path / "config.yaml"),
            ],
        )
        assert result.exit_code == 0, result.output
        report = output.read_text(encoding="utf-8")
        assert "## По кодам" in report and "## По ответственным" in report
        assert "| Тема | Отопление | 1 |" in report
        assert "| Район | Южный | 1 |" in report
        assert "| Коды источников | Отопление | 1 |" in report
        assert "| Борис Орлов | 1 | 0 | 1 |" in report
        row = next(line for line in report.splitlines() if line.startswith(f"| {case_id} |"))
        assert ", ".join(coded) in row and "Борис Орлов" in row
