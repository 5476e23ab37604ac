"""The crisis checklist in Matrix, against a real Synapse: number reactions under the crisis
card tick items, "!done N" and "!undo N" in its thread tick and untick, and the card is edited
in place to say who did what and when."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bot.crisis.service import crisis_ref
from bot.messages.outbox import Delivery
from bot.model import Event, EventKind
from handlers.matrix.render import MatrixRendered
from handlers.matrix.transport import MatrixTransport
from tests.doubles.matrix_world import MatrixWorld, eventually, matrix_world
from tests.doubles.synapse import SynapseServer

STORM = 15  # the shipped playbook: housing-spike opens at 15 negative housing mentions an hour
NUMBERS = ["1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣"]


@asynccontextmanager
async def crisis_card_edits_held(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[asyncio.Event]:
    """While inside, crisis card edits wait before they reach the homeserver: the room keeps
    showing the card as it was, as for a person whose client has not caught up yet."""
    release = asyncio.Event()
    edit = MatrixTransport._edit

    async def held_edit(
        transport: MatrixTransport, delivery: Delivery, rendered: MatrixRendered
    ) -> object:
        if "checklist" in delivery.item.payload:
            await release.wait()
        return await edit(transport, delivery, rendered)

    monkeypatch.setattr(MatrixTransport, "_edit", held_edit)
    try:
        yield release
    finally:
        release.set()


async def _denied(world: MatrixWorld) -> list[Event]:
    assert world.app is not None
    async with world.app.database.uow() as uow:
        return await uow.events.of_kind(EventKind.DENIED.value)


async def test_the_checklist_is_ticked_with_reactions_and_thread_commands(
    synapse: SynapseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        room = world.rooms["coordination"]
        for n in range(STORM):
            await world.open_case(f"Нет отопления в доме {n + 1}, батареи ледяные")

        async def housing_crisis() -> int | None:
            crises = [c for c in await app.crises.open_crises() if c.key == "housing"]
            return crises[0].id if crises else None

        crisis_id: int = await eventually(housing_crisis)

        async def posted() -> str | None:
            async with app.database.uow() as uow:
                return await uow.refs.get("matrix", room, crisis_ref(crisis_id))

        card: str = await eventually(posted)
        assert await world.bot_reactions(room, card) == set(NUMBERS)  # one per checklist item

        async def text_has(fragment: str) -> bool:
            return fragment in await world.current_text(room, card)

        # The duty officer reacts 1️⃣: ticked, and the card says by whom.
        await world.react("duty", room, card, NUMBERS[0])
        await eventually(lambda: text_has("✅ Дарья Морозова"))
        (tick,) = await app.crises.checklist(crisis_id)
        assert (tick.step, tick.done, tick.actor) == (0, True, "duty")

        # A stranger's reaction is refused, audited and said in the card's thread.
        await world.react("stranger", room, card, NUMBERS[1])

        async def refused_stranger() -> bool:
            return any(e.payload.get("reason") == "no_right" for e in await _denied(world))

        await eventually(refused_stranger)
        (denied,) = await _denied(world)
        assert denied.actor == world.users["stranger"].user_id
        assert denied.payload["crisis"] == crisis_id and denied.payload["step"] == 1

        async def said(fragment: str) -> bool:
            return any(
                fragment in e["content"].get("body", "") for e in await world.thread(room, card)
            )

        await eventually(lambda: said("Нет прав на это действие."))
        assert len(await app.crises.checklist(crisis_id)) == 1

        # "!done 2" in the thread ticks item 2.
        await world.say("duty", room, "!done 2", thread=card)
        await eventually(lambda: text_has("выполнено 2 из 7"))

        # A reaction made while the room still shows an older card is refused as stale.
        admin = app.directory.by_staff_id("admin")
        assert admin is not None
        async with crisis_card_edits_held(monkeypatch) as release:
            ticked = await app.crises.tick(crisis_id, 2, admin, done=True)
            assert ticked.error is None
            await world.react("duty", room, card, NUMBERS[3])

            async def refused_stale() -> bool:
                return any(e.payload.get("reason") == "stale" for e in await _denied(world))

            await eventually(refused_stale)
            release.set()
        await eventually(lambda: said("Карточка устарела"))
        assert [t.step for t in await app.crises.checklist(crisis_id)] == [0, 1, 2]
        await eventually(lambda: text_has("✅ Жанна Котова"))

        # "!undo 1": the duty officer unticks their own item; the card follows.
        await world.say("duty", room, "!undo 1", thread=card)
        await eventually(lambda: text_has("выполнено 2 из 7"))
        assert [t.done for t in await app.crises.checklist(crisis_id)] == [True, True, True, False]
