"""Crisis mode end to end: a storm of negative mentions through the real App and intake; the
crisis card appears in the coordination group of the Telegram test server within seconds."""

from __future__ import annotations

from pathlib import Path

from tests.doubles.telegram_server.state import StoredMessage
from tests.doubles.telegram_world import telegram_world

# The shipped playbook: housing-spike opens at 15 negative housing mentions within an hour.
STORM = 15


async def test_a_storm_opens_a_crisis_card_in_the_coordination_group(tmp_path: Path) -> None:
    async with telegram_world(tmp_path) as world:
        for n in range(STORM):
            await world.open_case(f"Третий день нет отопления в доме {n + 1}, батареи ледяные")

        def crisis_cards() -> list[StoredMessage]:
            return [
                m
                for m in world.server.messages(world.coordination)
                if m.bot_id is not None and "КРИЗИС: ЖКХ" in (m.text or "")
            ]

        # Intake nudges the evaluation: no waiting for the half-minute job.
        await world.server.wait_for(lambda: bool(crisis_cards()), 20)
        (card,) = crisis_cards()
        text = card.text or ""
        assert f"{STORM} негативных упоминаний за 1h (порог 15)" in text
        assert "Приостановите все запланированные публикации" in text
        assert "Собрать кризисную группу" in text and "Дарья Морозова" in text
        assert "Заявление-заглушка" in text

        # Two more: the peak grows by over 10 %, and the same card is edited in place.
        for n in range(2):
            await world.open_case(f"Нет отопления и в доме {STORM + n + 1}, дети мёрзнут")
        peak = f"Пик: {STORM + 2}"
        await world.server.wait_for(
            lambda: peak in (world.server.message(card.chat_id, card.message_id).text or ""), 20
        )
        assert len(crisis_cards()) == 1

        # /status in the coordination chat names the crisis first.
        question = world.say("duty", world.coordination, "/status")
        answer = await world.answer_to(question)
        assert (answer.text or "").startswith("🚨 Кризис: ЖКХ")
        crises = await world.app.crises.open_crises()
        assert [c.threshold_id for c in crises if c.key == "housing"] == ["housing-spike"]
