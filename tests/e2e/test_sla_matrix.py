"""The SLA clock through Matrix, against a real Synapse: a reminder under the card, waiting
for the author chosen by number, and the follow-up answered with the card's reactions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.cases.deadlines import current_deadline
from bot.model import CaseState
from bot.sla.engine import deadline_tag
from bot.sla.timers import Timer, TimerKind
from tests.doubles.matrix_world import eventually, matrix_world
from tests.doubles.synapse import SynapseServer


async def test_reminder_wait_for_author_and_follow_up(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        room = world.rooms["housing"]
        case_id = await world.open_case()
        card = await world.card_event(case_id)

        # A reminder of the first-touch deadline comes due: it appears in the room.
        case = await app.cases.get(case_id)
        assert case is not None
        phase = current_deadline(case)
        assert phase is not None
        tag = deadline_tag(case_id, *phase)
        payload = {"deadline": phase[0], "due": phase[1].isoformat(), "tag": tag, "point": "50%"}
        timer = Timer(case_id, TimerKind.REMINDER, datetime.now(UTC), f"test:{tag}", payload)
        async with app.database.uow() as uow:
            await uow.timers.add_many([timer])
            await uow.commit()
        await app.sla_jobs.run()

        async def reminded() -> bool:
            bodies = [e["content"].get("body", "") for e in await world.bot_messages(room)]
            return any(f"⏰ Кейс №{case_id}: первый ответ" in b for b in bodies)

        await eventually(reminded)

        # Take, then wait for the author: the reasons are numbered in the card's thread.
        await world.react("spec", room, card, "✋")

        async def taken() -> bool:
            current = await app.cases.get(case_id)
            return current is not None and current.state is CaseState.TAKEN

        await eventually(taken)
        # A person reacts on the card the room shows: each time, wait for its redraw.
        await eventually(lambda: world.card_is_current(case_id))
        await world.react("spec", room, card, "⏸️")

        async def reasons_listed() -> bool:
            return any(
                "Перешли в личные сообщения" in e["content"].get("body", "")
                for e in await world.thread(room, card)
                if e["sender"] == world.bot.user_id
            )

        await eventually(reasons_listed)
        await world.say("spec", room, "1", thread=card)  # 1. moved to private

        async def waiting() -> bool:
            current = await app.cases.get(case_id)
            return current is not None and current.waiting_since is not None

        await eventually(waiting)
        current = await app.cases.get(case_id)
        assert current is not None and current.follow_up_due_at is not None
        asked_for = current.follow_up_due_at

        # Still open (⏳) moves the follow-up on; the result shown (🔁) closes the case.
        await eventually(lambda: world.card_is_current(case_id))
        await world.react("spec", room, card, "⏳")

        async def moved_on() -> bool:
            current = await app.cases.get(case_id)
            due = current.follow_up_due_at if current else None
            return due is not None and due > asked_for

        await eventually(moved_on)
        await eventually(lambda: world.card_is_current(case_id))
        await world.react("spec", room, card, "🔁")

        async def closed() -> bool:
            current = await app.cases.get(case_id)
            return current is not None and current.state is CaseState.CLOSED

        await eventually(closed)
