"""A scripted crisis drill through the Telegram test server: drill cards say УЧЕНИЯ, nothing
leaves the drill (Publish is simulated), the drill opens its own crisis card marked DRILL whose
checklist the duty officer ticks with its buttons, the day's digest counts neither drill cases
nor the drill's crisis, and the drill report's figures are exactly those of the scripted
timings (tests/e2e/drill_script.py)."""

from __future__ import annotations

from pathlib import Path

from bot.clock import FrozenClock
from bot.model import CaseState
from tests.doubles.telegram_server.state import StoredMessage
from tests.doubles.telegram_world import World, telegram_world
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


async def drill_cases(world: World) -> list[int]:
    run = await world.app.drills.running()
    assert run is not None and run.id is not None
    async with world.app.database.uow() as uow:
        return [c.id for c in await uow.drills.cases_of(run.id) if c.id is not None]


def bot_messages(world: World, chat: int) -> list[StoredMessage]:
    return [m for m in world.server.messages(chat) if m.bot_id is not None]


def checklist_buttons(message: StoredMessage) -> list[str]:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [button["text"] for row in rows for button in row]


async def test_a_scripted_drill_in_telegram(tmp_path: Path) -> None:
    clock = FrozenClock(START)
    async with telegram_world(
        tmp_path, discussion_groups=True, clock=clock, drills=DRILLS
    ) as world:
        app = world.app
        # Only the duty officer and administrators run drills.
        refused = await world.answer_to(world.say("spec", world.coordination, "/drill start x"))
        assert refused.text == "Нет прав на это действие."
        usage = await world.answer_to(world.say("duty", world.coordination, "/drill"))
        assert usage.text == ("Учения: /drill start <сценарий> или /drill stop. Сценарии: scripted")
        unknown = await world.answer_to(world.say("duty", world.coordination, "/drill start x"))
        assert unknown.text == "Нет сценария учений «x». Сценарии: scripted"
        started = await world.answer_to(
            world.say("duty", world.coordination, "/drill start scripted")
        )
        assert (started.text or "").startswith(
            "🧪 УЧЕНИЯ №1 начались: Учебная авария. Учебных упоминаний: 3 "
        )
        again = await world.answer_to(
            world.say("admin", world.coordination, "/drill start scripted")
        )
        assert again.text == "Учения №1 уже идут: сначала остановите их — /drill stop."

        # The drill's own crisis card, marked DRILL, with the checklist's buttons.
        def drill_crisis_cards() -> list[StoredMessage]:
            return [m for m in bot_messages(world, world.coordination) if "DRILL" in (m.text or "")]

        await world.server.wait_for(lambda: len(drill_crisis_cards()) == 1, 20)
        (crisis_card,) = drill_crisis_cards()
        assert "🧪 УЧЕНИЯ / DRILL" in (crisis_card.text or "")
        assert "КРИЗИС (учения)" in (crisis_card.text or "")
        assert "Приостановите" not in (crisis_card.text or "")  # a drill pauses nothing real
        buttons = checklist_buttons(crisis_card)
        assert len(buttons) == 7 and buttons[0].startswith("⬜ 1. Собрать кризисную группу")
        async with app.database.uow() as uow:
            drill_crisis = await uow.crises.of_drill(1)
        assert drill_crisis is not None and drill_crisis.drill and drill_crisis.is_open
        assert drill_crisis.id is not None
        assert await app.crises.open_crises() == []  # no real crisis, and /status shows none

        assert await app.drill_jobs.run() == 2  # what is due at 0 min
        await app.intake.receive(real_mention(clock.now()))  # a real case, the same day
        clock.advance(5 * MINUTE)
        assert await app.drill_jobs.run() == 1
        case_a, case_b, case_c = await drill_cases(world)

        card_a = await world.card(case_a)
        card_b = await world.card(case_b, "transport")
        card_c = await world.card(case_c)
        for card in (card_a, card_b, card_c):
            assert "УЧЕНИЯ" in (card.text or "")
        assert "Нет отопления в доме 1" in (card_a.text or "")

        clock.set(START + 12 * MINUTE)
        await world.press("spec", card_a, "Взять")
        await world.idle()
        clock.set(START + 15 * MINUTE)
        pressed = await world.press("duty", crisis_card, buttons[0])
        assert pressed["text"] == "Пункт 1 отмечен выполненным"

        def crisis_card_now() -> StoredMessage:
            return world.server.message(crisis_card.chat_id, crisis_card.message_id)

        await world.server.wait_for(
            lambda: "✅ Дарья Морозова, " in (crisis_card_now().text or ""), 20
        )
        assert "✅ Дарья Морозова, 07.12 10:15" in (crisis_card_now().text or "")
        clock.set(START + 20 * MINUTE)
        world.reply("spec", await world.card(case_a), "Мы разбираемся, бригада уже выехала")
        await world.idle()
        draft = next(
            m
            for m in bot_messages(world, world.housing)
            if m.reply_to_message_id == card_a.message_id and "Черновик v1" in (m.text or "")
        )
        assert (draft.text or "").startswith("🧪 УЧЕНИЯ · 📝 Черновик v1")
        clock.set(START + 30 * MINUTE)
        await world.press("appr", draft, "Одобрить")
        await world.idle()
        clock.set(START + 31 * MINUTE)
        card_a = await world.card(case_a)
        answer = await world.press("spec", card_a, "Опубликовать")
        assert answer["text"] == "Готово: Опубликовать"
        await world.idle()
        assert (await world.case(case_a)).state is CaseState.PUBLISHED
        simulated = [
            m for m in bot_messages(world, world.housing) if "публикация по кейсу" in (m.text or "")
        ]
        assert len(simulated) == 1
        assert (simulated[0].text or "").startswith(
            f"🧪 УЧЕНИЯ · публикация по кейсу №{case_a} только имитируется: ни у источника"
        )

        clock.set(START + 40 * MINUTE)
        await world.press("tspec", card_b, "Взять")
        clock.set(START + 45 * MINUTE)
        escalated = await world.answer_to(
            world.say("duty", world.coordination, f"/escalate {case_c} учения: проверка")
        )
        assert escalated.text == "Готово: Эскалировать"
        await world.idle()
        notices = [
            m
            for m in bot_messages(world, world.coordination)
            if "Эскалация (уровень 1)" in (m.text or "")
        ]
        assert notices and all((m.text or "").startswith("🧪 УЧЕНИЯ ·") for m in notices)

        # Nothing left the drill: not a word in the channel or its discussion group.
        assert bot_messages(world, world.discussion) == []
        assert bot_messages(world, world.channel) == []

        # The day's digest counts the one real case and its mention, no drill case.
        digest = await app.digests.evening()
        assert digest.total("new") == 1 and digest.negative == 1
        assert digest.crises == []  # the drill's crisis is no crisis of the day

        clock.set(START + 90 * MINUTE)
        stopped = await world.answer_to(world.say("duty", world.coordination, "/drill stop"))
        assert stopped.text == (
            "🧪 УЧЕНИЯ №1 остановлены. Отчёт об учениях уйдёт в чат координации."
        )
        await world.idle()
        (report_message,) = [
            m
            for m in bot_messages(world, world.coordination)
            if "Отчёт об УЧЕНИЯХ" in (m.text or "")
        ]
        text = report_message.text or ""
        assert "Отчёт об УЧЕНИЯХ №1: Учебная авария" in text
        assert (
            "Первый ответ: 1 · в среднем 31.0 мин · максимум 31.0 мин · в срок 1 · просрочено 2"
            in text
        )
        assert "Согласованный ответ: 1 · в среднем 30.0 мин" in text
        assert f"✅ 1. {FIRST_STEP} — Дарья Морозова, +15.0 мин" in text
        assert "Предыдущих учений по этому сценарию нет" in text

        report = await app.drills.report_of(1)
        assert report is not None
        context = app.drills.context(report)
        overall = context["overall"]
        assert isinstance(overall, dict)
        assert {k: overall[k] for k in EXPECTED_OVERALL} == EXPECTED_OVERALL
        departments = context["departments"]
        assert isinstance(departments, list)
        housing = next(d for d in departments if d["department"] == "housing")
        assert housing["first_touch"] == EXPECTED_HOUSING_FIRST_TOUCH
        assert context["checklist"] == EXPECTED_CHECKLIST
        assert await app.drills.running() is None
        # The drill's crisis closed with the drill, and its card says so.
        async with app.database.uow() as uow:
            closed = await uow.crises.of_drill(1)
        assert closed is not None and closed.closed_at is not None
        await world.server.wait_for(
            lambda: "Учебный кризис закрыт" in (crisis_card_now().text or ""), 20
        )
        assert "✅ Дарья Морозова, 07.12 10:15" in (crisis_card_now().text or "")
        assert (await app.digests.evening()).crises == []
        async with app.database.uow() as uow:  # the SLA clock chases nobody about them now
            assert await uow.timers.pending_for([case_a, case_b, case_c]) == {}
        # /status, a figure too, leaves them out: only the real case is open.
        assert sum(row.open for row in await app.cases.status()) == 1
        assert await app.drill_jobs.run() == 0  # a stopped drill feeds nothing more
