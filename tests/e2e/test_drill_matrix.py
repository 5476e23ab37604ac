"""The scripted crisis drill (tests/e2e/drill_script.py) on a real Synapse: drill cards and
drafts say УЧЕНИЯ, Publish is simulated and nothing is posted outside the drill, the day's
digest does not count drill cases, and the report's figures are exactly the script's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.clock import FrozenClock
from bot.crisis.service import crisis_ref
from bot.model import CaseState
from store.models import OutboxRow
from tests.doubles.matrix_world import MatrixWorld, eventually, matrix_world
from tests.doubles.synapse import SynapseServer
from tests.e2e.drill_script import (
    DRILLS,
    EXPECTED_CHECKLIST,
    EXPECTED_HOUSING_FIRST_TOUCH,
    EXPECTED_OVERALL,
    FIRST_STEP,
    MINUTE,
    START,
    real_mention,
)


async def bot_says(world: MatrixWorld, room: str, words: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        for event in await world.bot_messages(room):
            if words in event["content"].get("body", ""):
                return event
        return None

    found: dict[str, Any] = await eventually(probe)
    return found


async def text_of_card_has(world: MatrixWorld, room: str, event_id: str, words: str) -> bool:
    return words in await world.current_text(room, event_id)


async def has_reaction(world: MatrixWorld, room: str, event_id: str, key: str) -> bool:
    return key in await world.bot_reactions(room, event_id)


async def test_a_scripted_drill_in_matrix(synapse: SynapseServer, tmp_path: Path) -> None:
    clock = FrozenClock(START)
    async with matrix_world(synapse, tmp_path, clock=clock, drills=DRILLS) as world:
        app = world.app
        assert app is not None
        housing, coordination = world.rooms["housing"], world.rooms["coordination"]
        await world.say("duty", coordination, "!drill start scripted")
        await bot_says(world, coordination, "УЧЕНИЯ №1 начались: Учебная авария")

        assert await app.drill_jobs.run() == 2
        await app.intake.receive(real_mention(clock.now()))
        clock.advance(5 * MINUTE)
        assert await app.drill_jobs.run() == 1
        run = await app.drills.running()
        assert run is not None and run.id == 1
        async with app.database.uow() as uow:
            case_a, case_b, case_c = [c.id for c in await uow.drills.cases_of(1)]
        assert case_a and case_b and case_c

        card_a = await world.card_event(case_a)
        card_b = await world.card_event(case_b, "transport")
        card_c = await world.card_event(case_c)
        assert "УЧЕНИЯ" in await world.current_text(housing, card_a)
        assert "УЧЕНИЯ" in await world.current_text(world.rooms["transport"], card_b)
        assert "УЧЕНИЯ" in await world.current_text(housing, card_c)

        clock.set(START + 12 * MINUTE)
        await eventually(lambda: has_reaction(world, housing, card_a, "✋"))
        await world.react("spec", housing, card_a, "✋")

        async def state_of(case_id: int, state: CaseState) -> bool:
            case = await app.cases.get(case_id)
            return case is not None and case.state is state

        await eventually(lambda: state_of(case_a, CaseState.TAKEN))

        # The drill's crisis card, marked DRILL: the duty officer reacts 1️⃣ to tick item 1.
        async def drill_crisis_card() -> str | None:
            async with app.database.uow() as uow:
                crisis = await uow.crises.of_drill(1)
                if crisis is None or crisis.id is None:
                    return None
                return await uow.refs.get("matrix", coordination, crisis_ref(crisis.id))

        crisis_card: str = await eventually(drill_crisis_card)
        assert "УЧЕНИЯ / DRILL" in await world.current_text(coordination, crisis_card)
        await eventually(lambda: has_reaction(world, coordination, crisis_card, "1️⃣"))
        clock.set(START + 15 * MINUTE)
        await world.react("duty", coordination, crisis_card, "1️⃣")

        async def ticked() -> bool:
            text = await world.current_text(coordination, crisis_card)
            return "✅ Дарья Морозова, 07.12 10:15" in text

        await eventually(ticked)
        clock.set(START + 20 * MINUTE)
        await world.say("spec", housing, "!draft Мы разбираемся, бригада выехала", thread=card_a)

        async def draft_post() -> str | None:
            for event in await world.thread(housing, card_a):
                body = event["content"].get("body", "")
                if event["sender"] != world.bot.user_id or "Черновик v1" not in body:
                    continue
                assert body.startswith("🧪 УЧЕНИЯ ·")  # the draft, and the notice it was sent
                if "📝 Черновик v1" in body:
                    return str(event["event_id"])
            return None

        draft = await eventually(draft_post)
        clock.set(START + 30 * MINUTE)
        await eventually(lambda: has_reaction(world, housing, draft, "✅"))
        await world.react("appr", housing, draft, "✅")
        await eventually(lambda: state_of(case_a, CaseState.APPROVED))
        clock.set(START + 31 * MINUTE)
        await eventually(lambda: has_reaction(world, housing, card_a, "📣"))
        await eventually(lambda: world.card_is_current(case_a))
        await world.react("spec", housing, card_a, "📣")
        await eventually(lambda: state_of(case_a, CaseState.PUBLISHED))

        async def simulated() -> bool:
            return any(
                e["content"]
                .get("body", "")
                .startswith(f"🧪 УЧЕНИЯ · публикация по кейсу №{case_a} только имитируется")
                for e in await world.thread(housing, card_a)
            )

        await eventually(simulated)

        clock.set(START + 40 * MINUTE)
        await eventually(lambda: has_reaction(world, world.rooms["transport"], card_b, "✋"))
        await world.react("tspec", world.rooms["transport"], card_b, "✋")
        await eventually(lambda: state_of(case_b, CaseState.TAKEN))
        clock.set(START + 45 * MINUTE)
        await world.say("duty", coordination, f"!escalate {case_c} учения: проверка")
        notice = await bot_says(world, coordination, "Эскалация (уровень 1)")
        assert notice["content"]["body"].startswith("🧪 УЧЕНИЯ ·")

        # Nothing left the drill: no answer was queued for any public place.
        async with app.database.uow() as uow:
            payloads = list(await uow.session.scalars(select(OutboxRow.payload)))
        assert payloads and all(p["view"] != "public_reply" for p in payloads)

        digest = await app.digests.evening()
        assert digest.total("new") == 1 and digest.negative == 1
        assert digest.crises == []  # the drill's crisis is no crisis of the day

        clock.set(START + 90 * MINUTE)
        await world.say("duty", coordination, "!drill stop")
        await bot_says(world, coordination, "УЧЕНИЯ №1 остановлены")
        report_event = await bot_says(world, coordination, "Отчёт об УЧЕНИЯХ №1")
        body = report_event["content"]["body"]
        assert (
            "Первый ответ: 1 · в среднем 31.0 мин · максимум 31.0 мин · в срок 1 · "
            "просрочено 2" in body
        )
        assert f"✅ 1. {FIRST_STEP} — Дарья Морозова, +15.0 мин" in body

        report = await app.drills.report_of(1)
        assert report is not None
        context = app.drills.context(report)
        overall = context["overall"]
        assert isinstance(overall, dict)
        assert {k: overall[k] for k in EXPECTED_OVERALL} == EXPECTED_OVERALL
        departments = context["departments"]
        assert isinstance(departments, list)
        housing_figures = next(d for d in departments if d["department"] == "housing")
        assert housing_figures["first_touch"] == EXPECTED_HOUSING_FIRST_TOUCH
        assert context["checklist"] == EXPECTED_CHECKLIST
        # The drill's crisis closed with the drill, and its card says so.
        await eventually(
            lambda: text_of_card_has(world, coordination, crisis_card, "Учебный кризис закрыт")
        )
