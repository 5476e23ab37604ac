"""The SLA clock through Telegram: a reminder and an escalation land under the card in the
department's topic, and the new buttons (wait for the author, author replied, follow-up)
work from the card. Real dispatcher, real HTTP, the project's Telegram test server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.cases.deadlines import current_deadline
from bot.model import Case, CaseState
from bot.sla.engine import deadline_tag
from bot.sla.timers import Timer, TimerKind
from tests.doubles.telegram_world import World, telegram_world


async def due_now(world: World, case: Case, kind: TimerKind, **payload: object) -> None:
    """A timer of the case's current deadline that is due now, as if its moment had come."""
    assert case.id is not None
    phase = current_deadline(case)
    assert phase is not None
    tag = deadline_tag(case.id, *phase)
    base = {"deadline": phase[0], "due": phase[1].isoformat(), "tag": tag, **payload}
    timer = Timer(case.id, kind, datetime.now(UTC), f"test:{tag}:{kind.value}", base)
    async with world.app.database.uow() as uow:
        await uow.timers.add_many([timer])
        await uow.commit()
    await world.app.sla_jobs.run()


async def test_reminder_and_escalation_appear_under_the_card(tmp_path: Path) -> None:
    async with telegram_world(tmp_path) as world:
        case_id = await world.open_case()
        card = await world.card(case_id)
        case = await world.case(case_id)
        await due_now(world, case, TimerKind.REMINDER, point="80%")
        await world.idle()
        replies = [
            m
            for m in world.server.messages(world.housing)
            if m.reply_to_message_id == card.message_id and m.bot_id is not None
        ]
        assert len(replies) == 1
        assert (replies[0].text or "").startswith(f"⏰ Кейс №{case_id}: первый ответ — до ")
        assert replies[0].thread_id == world.topic
        card = await world.card(case_id)
        assert "Напоминание: 80%" in (card.text or "")

        # The first step of the chain: the head of department, under the card.
        await due_now(world, case, TimerKind.ESCALATION, level=1, repeat=0)
        await world.idle()
        texts = [
            m.text or ""
            for m in world.server.messages(world.housing)
            if m.reply_to_message_id == card.message_id
        ]
        assert any("Эскалация, уровень 1" in t and "Глеб Смирнов" in t for t in texts)
        card = await world.card(case_id)
        assert "Эскалация, уровень 1" in (card.text or "")


async def test_wait_for_the_author_then_follow_up_from_the_card(tmp_path: Path) -> None:
    async with telegram_world(tmp_path) as world:
        case_id = await world.open_case()
        card = await world.card(case_id)
        await world.press("spec", card, "Взять")
        await world.idle()

        # Wait for the author: a menu with the reasons, then the clock stands.
        card = await world.card(case_id)
        await world.press("spec", card, "Ждём автора ▸")
        await world.idle()
        card = await world.card(case_id)
        answer = await world.press("spec", card, "Перешли в личные сообщения")
        assert answer["text"] == "Готово: Ждём автора"
        await world.idle()
        case = await world.case(case_id)
        assert case.waiting_since is not None and case.follow_up_due_at is not None
        card = await world.card(case_id)
        assert "часы стоят" in (card.text or "")

        await world.press("spec", card, "Автор ответил")
        await world.idle()
        assert (await world.case(case_id)).waiting_since is None

        # The follow-up asked for when the talk moved to private: still open, then done.
        card = await world.card(case_id)
        before = (await world.case(case_id)).follow_up_due_at
        await world.press("spec", card, "Ещё не решено")
        await world.idle()
        assert (await world.case(case_id)).follow_up_due_at > before
        card = await world.card(case_id)
        await world.press("spec", card, "Результат показан")
        await world.idle()
        assert (await world.case(case_id)).state is CaseState.CLOSED
