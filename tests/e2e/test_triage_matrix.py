"""!negative in Matrix, against a real Synapse: a missed complaint becomes a case with a card."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.model import Identity, Mention, Sentiment, SentimentSource
from tests.doubles.matrix_world import eventually, matrix_world
from tests.doubles.synapse import SynapseServer


async def test_negative_promotes_a_missed_complaint(synapse: SynapseServer, tmp_path: Path) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        assert world.app is not None
        url = "https://vk.com/wall-1_missed"
        missed = await world.app.intake.receive(
            Mention(
                source="vk",
                external_id="missed",
                text="Третий день нет отопления, батареи ледяные",
                author=Identity("vk", "citizen-1", "Пётр Сидоров"),
                received_at=datetime.now(UTC),
                url=url,
                sentiment=Sentiment.NEUTRAL,
            )
        )
        assert missed.case is None and missed.mention is not None
        coordination = world.rooms["coordination"]
        await world.say("duty", coordination, f"!negative {url}")

        async def answered() -> str | None:
            for event in await world.bot_messages(coordination):
                if "Отмечено как негатив" in event["content"]["body"]:
                    return str(event["content"]["body"])
            return None

        answer = await eventually(answered)
        case_id = int(answer.rsplit("#", 1)[1].rstrip("."))
        card = await world.card_event(case_id)  # the housing room, as routing says
        assert "нет отопления" in await world.current_text(world.rooms["housing"], card)
        async with world.app.database.uow() as uow:
            stored = await uow.mentions.get_by_external("vk", "missed")
        assert stored is not None and stored.case_id == case_id
        assert stored.sentiment_source is SentimentSource.STAFF
