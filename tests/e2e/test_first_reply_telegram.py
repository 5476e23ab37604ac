"""The first-reply deadline measures what the author sees, through Telegram: «Взять» is a
reaction, not a reply, so the first-reply deadline still breaches and escalates after it; a
published first-reply template and a reply moved to private messages meet it. Real
dispatcher, real HTTP, the project's Telegram test server, the App's SLA job on a script
clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.cases.deadlines import current_deadline
from bot.clock import FrozenClock
from bot.model import CaseState
from tests.doubles.telegram_world import World, telegram_world

MONDAY = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 10:00 in Moscow: the calendar is open


def under_card(world: World, card_id: int) -> list[str]:
    return [
        m.text or ""
        for m in world.server.messages(world.housing)
        if m.reply_to_message_id == card_id and m.bot_id is not None
    ]


async def test_take_is_no_first_reply_a_template_and_a_private_reply_are(
    tmp_path: Path,
) -> None:
    clock = FrozenClock(MONDAY)
    async with telegram_world(tmp_path, clock=clock) as world:
        taken = await world.open_case()
        templated = await world.open_case("Опять прорвало трубу во дворе, вода хлещет")
        private = await world.open_case("Управляющая компания не отвечает на звонки")

        # «Взять»: somebody reacted; the author has seen nothing, the first reply is owed.
        await world.press("spec", await world.card(taken), "Взять")
        await world.idle()
        case = await world.case(taken)
        assert case.state is CaseState.TAKEN and case.reacted_at == MONDAY
        assert case.first_touched_at is None
        assert current_deadline(case) == ("first_touch", case.first_touch_due_at)

        # A first-reply template, published: the author sees it.
        card = await world.card(templated)
        await world.press("spec", card, "Первый ответ ▸")
        await world.idle()
        await world.press("spec", await world.card(templated), "Первый ответ (ЖКХ)")
        await world.idle()
        assert (await world.case(templated)).first_touched_at is None  # drafted, not shown
        await world.press("spec", await world.card(templated), "Опубликовано")
        await world.idle()
        case = await world.case(templated)
        assert case.state is CaseState.PUBLISHED and case.first_touched_at == MONDAY

        # The talk moved to private messages: somebody wrote to the author.
        await world.press("spec", await world.card(private), "Взять")
        await world.idle()
        await world.press("spec", await world.card(private), "Ждём автора ▸")
        await world.idle()
        await world.press("spec", await world.card(private), "Перешли в личные сообщения")
        await world.idle()
        assert (await world.case(private)).first_touched_at == MONDAY

        # The first-reply deadline of the taken case comes: breach and escalation under its
        # card; the two that were answered stay quiet.
        case = await world.case(taken)
        assert case.first_touch_due_at is not None
        clock.set(case.first_touch_due_at)
        await world.app.sla_jobs.run()
        await world.idle()
        card = await world.card(taken)
        texts = under_card(world, card.message_id)
        assert f"🔥 Кейс №{taken}: срок «первый ответ» пропущен." in texts
        assert any("Эскалация, уровень 1" in t and "«первый ответ»" in t for t in texts)
        assert (await world.case(taken)).escalation_level == 1
        for answered in (templated, private):
            card = await world.card(answered)
            assert not any("пропущен" in t for t in under_card(world, card.message_id))
