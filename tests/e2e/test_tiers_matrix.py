"""Approval tiers and reject with a reason in Matrix, against a real Synapse: ✅ under a draft
approves at the tier it stands at, four eyes at each; the press secretaries' tier is asked in
the coordination room; ❌ asks for the reason in the thread and "!reject …" gives it."""

from __future__ import annotations

from pathlib import Path

from bot.model import Action, CaseState, DraftStatus, Priority
from tests.doubles.matrix_world import MatrixWorld, eventually, matrix_world
from tests.doubles.synapse import SynapseServer

HIGH = "Авария на теплотрассе, дом без отопления третий день"


async def _draft_in(world: MatrixWorld, room: str) -> str | None:
    for event in await world.bot_messages(room):
        if event["content"].get("body", "").startswith("📝 Черновик v1 "):
            return str(event["event_id"])
    return None


async def _said(world: MatrixWorld, room: str, part: str) -> bool:
    return any(part in e["content"].get("body", "") for e in await world.bot_messages(room))


async def _has(world: MatrixWorld, room: str, event_id: str, key: str) -> bool:
    return key in await world.bot_reactions(room, event_id)


async def test_a_high_priority_draft_goes_through_two_tiers_with_four_eyes_at_each(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        housing, coordination = world.rooms["housing"], world.rooms["coordination"]
        case_id = await world.open_case(HIGH)
        case = await app.cases.get(case_id)
        assert case is not None and case.priority is Priority.HIGH
        card = await world.card_event(case_id)

        # The department's approver writes the answer in the card's thread.
        await world.say("appr", housing, "!draft Бригада на месте, тепло дадут до 18:00", card)
        draft = await eventually(lambda: _draft_in(world, housing))
        assert "Согласование: ⏳ отдел → пресс-секретарь" in await world.current_text(
            housing, draft
        )
        await eventually(lambda: _has(world, housing, draft, "✅"))

        # Each refusal is waited for before the next reaction: they are told in the room.
        await world.react("appr", housing, draft, "✅")  # the author
        await eventually(lambda: _said(world, housing, "нужен второй человек"))
        await world.react("press2", housing, draft, "✅")  # the press secretary's step is 2
        await eventually(lambda: _said(world, housing, "на шаге 1"))
        case = await app.cases.get(case_id)
        assert case is not None and case.state is CaseState.AWAITING_APPROVAL
        assert case.latest_draft is not None and case.latest_draft.approvals == ()

        await world.react("press", housing, draft, "✅")  # step 1: housing's approver

        async def approvals() -> int:
            case = await app.cases.get(case_id)
            return len(case.latest_draft.approvals) if case and case.latest_draft else 0

        await eventually(lambda: _at_least(approvals(), 1))

        # Step 2 is asked in the coordination room, where the press secretaries read.
        asked = await eventually(lambda: _draft_in(world, coordination))
        await eventually(lambda: _has(world, coordination, asked, "✅"))
        shown = await world.current_text(coordination, asked)
        assert "✅ отдел (Зоя Кравец) → ⏳ пресс-секретарь" in shown
        await world.react("press", coordination, asked, "✅")  # one person, one step
        await eventually(lambda: _said(world, coordination, "на другом шаге"))
        case = await app.cases.get(case_id)
        assert case is not None and case.state is CaseState.AWAITING_APPROVAL

        await world.react("press2", coordination, asked, "✅")

        async def approved() -> bool:
            case = await app.cases.get(case_id)
            return case is not None and case.state is CaseState.APPROVED

        await eventually(approved)
        done = "✅ отдел (Зоя Кравец) → ✅ пресс-секретарь (Илья Соколов)"
        await eventually(lambda: _contains(world.current_text(housing, draft), done))
        await eventually(lambda: _contains(world.current_text(coordination, asked), done))

        await eventually(lambda: _has(world, housing, card, "📤"))
        await world.react("appr", housing, card, "📤")

        async def published() -> bool:
            case = await app.cases.get(case_id)
            return case is not None and case.state is CaseState.PUBLISHED

        await eventually(published)
        thread = await app.cases.thread(case_id)
        assert thread is not None
        steps = [e for e in thread.events if e.kind == Action.APPROVE]
        assert [(e.actor, e.payload["tier"]) for e in steps] == [("press", 1), ("press2", 2)]


async def test_reject_asks_for_the_reason_in_the_thread(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        room = world.rooms["housing"]
        case_id = await world.open_case()
        card = await world.card_event(case_id)
        await world.say("spec", room, "!draft Напишите нам в личные сообщения", thread=card)
        draft = await eventually(lambda: _draft_in(world, room))
        await eventually(lambda: _has(world, room, draft, "❌"))

        await world.react("appr", room, draft, "❌")
        # Asked in the thread, nothing rejected yet.
        await eventually(lambda: _in_thread(world, room, card, "!отклонить"))
        case = await app.cases.get(case_id)
        assert case is not None and case.state is CaseState.AWAITING_APPROVAL

        await world.say("appr", room, "!reject Отвечаем по существу, а не в личке", thread=card)

        async def rejected() -> bool:
            case = await app.cases.get(case_id)
            return case is not None and case.state is CaseState.TAKEN

        await eventually(rejected)
        case = await app.cases.get(case_id)
        assert case is not None and case.latest_draft is not None
        assert case.latest_draft.status is DraftStatus.REJECTED
        assert case.latest_draft.note == "Отвечаем по существу, а не в личке"
        # The author reads it on the draft itself, in the card's thread.
        reason = "Отклонён — Вера Петрова: Отвечаем по существу, а не в личке"
        await eventually(lambda: _contains(world.current_text(room, draft), reason))
        thread = await app.cases.thread(case_id)
        assert thread is not None
        (event,) = [e for e in thread.events if e.kind == Action.REJECT]
        assert (event.actor, event.payload["note"]) == ("appr", case.latest_draft.note)


async def _at_least(value: object, n: int) -> bool:
    return await value >= n  # type: ignore[operator,misc]


async def _contains(text: object, part: str) -> bool:
    return part in await text  # type: ignore[operator,misc]


async def _in_thread(world: MatrixWorld, room: str, root: str, part: str) -> bool:
    return any(
        part in e["content"].get("body", "")
        for e in await world.thread(room, root)
        if e["sender"] == world.bot.user_id
    )


async def test_a_press_secretary_rejects_in_the_coordination_room_with_a_reason(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        housing, coordination = world.rooms["housing"], world.rooms["coordination"]
        case_id = await world.open_case(HIGH)
        card = await world.card_event(case_id)
        await world.say("spec", housing, "!draft Всё под контролем", thread=card)
        draft = await eventually(lambda: _draft_in(world, housing))
        await eventually(lambda: _has(world, housing, draft, "✅"))
        await world.react("appr", housing, draft, "✅")
        asked = await eventually(lambda: _draft_in(world, coordination))
        await eventually(lambda: _has(world, coordination, asked, "❌"))

        # ❌ under the coordination room's copy asks in that draft's own thread.
        await world.react("press2", coordination, asked, "❌")
        await eventually(lambda: _in_thread(world, coordination, asked, "!отклонить"))
        await world.say("press2", coordination, "!отклонить Слишком общо", thread=asked)

        async def rejected() -> bool:
            case = await app.cases.get(case_id)
            return case is not None and case.state is CaseState.TAKEN

        await eventually(rejected)
        case = await app.cases.get(case_id)
        assert case is not None and case.latest_draft is not None
        assert (case.latest_draft.reviewer, case.latest_draft.note) == ("press2", "Слишком общо")
        # The author reads it under the card, where the draft was written.
        reason = "Отклонён — Илья Соколов: Слишком общо"
        await eventually(lambda: _contains(world.current_text(housing, draft), reason))
        await eventually(lambda: _contains(world.current_text(housing, draft), "↩️ пресс-секретарь"))
