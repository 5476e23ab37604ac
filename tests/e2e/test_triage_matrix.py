"""!negative in Matrix, against a real Synapse: a missed complaint becomes a case with a card."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.intake.triage import triage_ref
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
        case_id = int(answer.rsplit("№", 1)[1].rstrip("."))
        card = await world.card_event(case_id)  # the housing room, as routing says
        assert "нет отопления" in await world.current_text(world.rooms["housing"], card)
        async with world.app.database.uow() as uow:
            stored = await uow.mentions.get_by_external("vk", "missed")
        assert stored is not None and stored.case_id == case_id
        assert stored.sentiment_source is SentimentSource.STAFF


async def test_the_triage_list_is_decided_with_commands_in_the_coordination_room(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        coordination = world.rooms["coordination"]
        ids = []
        for n, text in enumerate(["Третий день нет отопления, батареи ледяные", "Когда уже?"]):
            received = await app.intake.receive(
                Mention(
                    source="vk",
                    external_id=f"unsure-{n}",
                    text=text,
                    author=Identity("vk", f"citizen-{n}", "Пётр Сидоров"),
                    received_at=datetime.now(UTC),
                    sentiment=Sentiment.UNCERTAIN,
                )
            )
            assert received.case is None and received.mention is not None
            ids.append(received.mention.id)
        first, second = ids

        async def listed() -> str | None:
            assert app is not None
            async with app.database.uow() as uow:
                return await uow.refs.get("matrix", coordination, triage_ref("coordination"))

        event = await eventually(listed)

        async def showing(part: str) -> bool | None:
            text = await world.current_text(coordination, event)
            return True if part in text else None

        await eventually(lambda: showing(f"#{second}"))
        text = await world.current_text(coordination, event)
        assert f"#{first}" in text and "!notnegative N" in text

        await world.say("stranger", coordination, f"!negative {first}")
        await world.say("duty", coordination, f"!negative {first}")
        await eventually(lambda: showing("Разобрать: 1"))
        await world.say("duty", coordination, f"!notnegative {second}")
        await eventually(lambda: showing("Разобрать: 0"))

        async with app.database.uow() as uow:
            promoted = await uow.mentions.get(first or 0)
            dismissed = await uow.mentions.get(second or 0)
        assert promoted is not None and promoted.case_id is not None
        assert dismissed is not None and dismissed.case_id is None
        assert (dismissed.sentiment, dismissed.sentiment_source) == (
            Sentiment.NEUTRAL,
            SentimentSource.STAFF,
        )
        bodies = [e["content"]["body"] for e in await world.bot_messages(coordination)]
        assert any("нет в списке" in body for body in bodies)  # the stranger was refused
        posted = [
            e
            for e in await world.bot_messages(coordination)
            if "Разобрать" in e["content"]["body"] and "m.relates_to" not in e["content"]
        ]
        assert [e["event_id"] for e in posted] == [event]  # one message, edited
