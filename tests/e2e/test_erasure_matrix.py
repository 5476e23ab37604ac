"""/forget through Matrix against a real Synapse: administrators only; the card in the room is
edited so that it no longer shows the person."""

from __future__ import annotations

from pathlib import Path

from bot.model import EventKind
from tests.doubles.matrix_world import eventually, matrix_world
from tests.doubles.synapse import SynapseServer

TEXT = "Третий день нет отопления в доме на Перекопской, батареи ледяные"


async def test_forget_from_a_room(synapse: SynapseServer, tmp_path: Path) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        assert world.app is not None
        app = world.app
        room, coordination = world.rooms["housing"], world.rooms["coordination"]
        case_id = await world.open_case(TEXT)
        card = await world.card_event(case_id)
        assert "Перекопской" in await world.current_text(room, card)
        async with app.database.reader() as uow:
            (mention,) = await uow.mentions.for_case(case_id)
        author_id = mention.author_id

        await world.say("spec", coordination, f"!forget {author_id}")
        await world.say("admin", coordination, f"!forget {author_id}")

        async def answered() -> list[str]:
            bodies = [e["content"]["body"] for e in await world.bot_messages(coordination)]
            done = [b for b in bodies if f"автора {author_id} удалены" in b]
            return bodies if done and any("Нет прав" in b for b in bodies) else []

        await eventually(answered)

        async def redrawn() -> bool:
            return "Перекопской" not in await world.current_text(room, card)

        await eventually(redrawn)
        async with app.database.reader() as uow:
            (stub,) = await uow.events.of_kind(EventKind.AUTHOR_FORGOTTEN)
            assert (await uow.events.verify()).ok
        assert stub.actor == "admin" and stub.payload["author_id"] == author_id
