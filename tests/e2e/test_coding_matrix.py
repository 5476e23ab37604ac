"""Coding, priority and assignment through the Matrix adapter (issue 18, item 4), against a
real Synapse: 🏷️ under the card and numbered lists in its thread, "!code", "!priority" and
"!assign" written there; then `otklik report` on the same database."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from typer.testing import CliRunner

from bot.model import Action, CaseState, EventKind, Priority
from handlers.cli import app as cli
from tests.doubles.matrix_world import MatrixWorld, eventually, matrix_world
from tests.doubles.synapse import SynapseServer

LEAD_AND_COLLEAGUE = (
    ("lead", "Глеб Смирнов", "housing: [lead]"),
    ("spec2", "Борис Орлов", "housing: [specialist]"),
)


async def _bot_said(world: MatrixWorld, room: str, card: str, part: str) -> bool:
    return any(
        part in e["content"].get("body", "")
        for e in await world.thread(room, card)
        if e["sender"] == world.bot.user_id
    )


async def test_a_lead_codes_reprioritises_and_assigns_in_the_card_thread(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path, extra_staff=LEAD_AND_COLLEAGUE) as world:
        app = world.app
        assert app is not None
        room = world.rooms["housing"]
        case_id = await world.open_case()
        card = await world.card_event(case_id)

        async def case():  # type: ignore[no-untyped-def]
            return await app.cases.get(case_id)

        before = await case()
        assert before is not None and before.priority is Priority.NORMAL
        await eventually(lambda: _has_reaction(world, room, card, "🏷️"))

        # 🏷️ lists the dimensions in the thread; a number opens one, the next picks a code.
        await eventually(lambda: world.card_is_current(case_id))
        await world.react("lead", room, card, "🏷️")
        await eventually(lambda: _bot_said(world, room, card, "1. Тема ▸"))
        await world.say("lead", room, "1", thread=card)
        await eventually(lambda: _bot_said(world, room, card, "1. Отопление"))
        await world.say("lead", room, "1", thread=card)

        async def coded(code: str) -> bool:
            current = await case()
            return current is not None and code in current.codes

        await eventually(lambda: coded("topic:heating"))
        # A second dimension by command: the third district of the list.
        await world.say("lead", room, "!code district 3", thread=card)
        await eventually(lambda: coded("district:south"))

        # 🚦 lists the priorities (not the current one); "!priority high" picks one.
        await eventually(lambda: world.card_is_current(case_id))
        await world.react("lead", room, card, "🚦")
        await eventually(lambda: _bot_said(world, room, card, "1. Критический\n2. Высокий"))
        await world.say("lead", room, "!priority high", thread=card)

        async def raised() -> bool:
            current = await case()
            return current is not None and current.priority is Priority.HIGH

        await eventually(raised)
        high = await case()
        assert high is not None and high.sla_policy == "high"
        assert high.first_touch_due_at < before.first_touch_due_at  # type: ignore[operator]

        # A specialist may not assign: refused in the thread, and audited.
        colleague = world.users["spec2"].user_id
        await world.say("spec", room, f"!assign {colleague}", thread=card)
        await eventually(lambda: _bot_said(world, room, card, "Нет прав"))
        await world.say("lead", room, f"!assign {colleague}", thread=card)

        async def assigned() -> bool:
            current = await case()
            return current is not None and current.assignee == "spec2"

        await eventually(assigned)
        assert (await case()).state is CaseState.TAKEN  # type: ignore[union-attr]

        async def told() -> bool:
            return any(
                f"👤 Кейс №{case_id} назначен: Борис Орлов" in e["content"].get("body", "")
                for e in await world.bot_messages(room)
            )

        await eventually(told)

        # The card shows the codes, the assignee and the priority.
        async def card_shows() -> bool:
            text = await world.current_text(room, card)
            return (
                "Тема: Отопление · Район: Южный" in text
                and "Борис Орлов" in text
                and "Высокий" in text
            )

        await eventually(card_shows)

        thread = await app.cases.thread(case_id)
        assert thread is not None
        kinds = [(e.kind, e.actor) for e in thread.events]
        assert kinds.count((Action.SET_CODE.value, "lead")) == 2
        assert (Action.SET_PRIORITY.value, "lead") in kinds
        assert (Action.ASSIGN.value, "lead") in kinds
        denied = [e for e in thread.events if e.kind == EventKind.DENIED]
        assert [(e.actor, e.payload["action"]) for e in denied] == [("spec", "assign")]

        # `otklik report` counts the case by code per dimension and by assignee.
        today = datetime.now(ZoneInfo("Europe/Moscow")).date().isoformat()
        output = tmp_path / "report.md"
        arguments = ["report", "--from", today, "--to", today, "--format", "md"]
        arguments += ["--output", str(output), "--config", str(tmp_path / "config.yaml")]
        result = await asyncio.to_thread(CliRunner().invoke, cli, arguments)
        assert result.exit_code == 0, result.output
        report = output.read_text(encoding="utf-8")
        assert "| Тема | Отопление | 1 |" in report
        assert "| Район | Южный | 1 |" in report
        assert "| Борис Орлов | 1 | 0 | 1 |" in report


async def _has_reaction(world: MatrixWorld, room: str, event_id: str, key: str) -> bool:
    return key in await world.bot_reactions(room, event_id)
