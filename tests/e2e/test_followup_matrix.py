"""Follow-up answers and corrections in Matrix, against a real Synapse: a case moved to
private messages gets a follow-up (➕ asks for it in the card's thread, "!followup …" writes
it), approved by a second person (✅) and marked published (📤); then a correction (🩹,
"!correct …") goes the same way, and the card, edited in place (m.replace), shows the
corrected text as what is public. The source is VK: people publish there by hand."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.model import CaseState, DraftKind
from tests.doubles.matrix_world import MatrixWorld, eventually, matrix_world
from tests.doubles.synapse import SynapseServer

RESULT = "Трубу заменили 3 мая, горячая вода есть."
CORRECTED = "Трубу заменили 4 мая, горячая вода есть."
URL = "https://vk.com/wall-1_1?reply=7"


def _state_is(world: MatrixWorld, case_id: int, state: CaseState) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        assert world.app is not None
        case = await world.app.cases.get(case_id)
        return case is not None and case.state is state

    return probe


async def _bot_in_thread(world: MatrixWorld, room: str, root: str, words: str) -> str | None:
    for event in await world.thread(room, root):
        if event["sender"] == world.bot.user_id and words in event["content"].get("body", ""):
            return str(event["event_id"])
    return None


async def test_moved_to_private_then_follow_up_and_correction(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        assert world.app is not None
        room = world.rooms["housing"]
        case_id = await world.open_case("Третий день нет горячей воды в доме 5")
        card = await world.card_event(case_id)

        await eventually(lambda: _has(world.bot_reactions(room, card), "✋"))
        await world.react("spec", room, card, "✋")
        await eventually(lambda: _has(world.bot_reactions(room, card), "⏸️"))
        await eventually(lambda: world.card_is_current(case_id))
        await world.react("spec", room, card, "⏸️")  # waiting for the author: which reason?
        await eventually(lambda: _bot_in_thread(world, room, card, "1."))
        await world.say("spec", room, "1", thread=card)  # moved to private messages

        async def moved() -> bool:
            case = await world.app.cases.get(case_id)  # type: ignore[union-attr]
            return case is not None and case.follow_up_due_at is not None

        await eventually(moved)
        # ➕ under the card asks for the follow-up in the card's thread.
        await eventually(lambda: _has(world.bot_reactions(room, card), "➕"))
        assert "🩹" not in await world.bot_reactions(room, card)  # nothing public to correct
        await eventually(lambda: world.card_is_current(case_id))
        await world.react("spec", room, card, "➕")
        await eventually(lambda: _bot_in_thread(world, room, card, "!followup"))
        await world.say("spec", room, f"!followup {RESULT}", thread=card)
        draft = await eventually(lambda: _bot_in_thread(world, room, card, "Дополнение v1"))
        await eventually(lambda: _contains(world.current_text(room, card), "Дополнение v1"))

        # Four eyes: the author's ✅ is refused, the approver's counts.
        await eventually(lambda: _has(world.bot_reactions(room, draft), "✅"))
        await world.react("spec", room, draft, "✅")
        await world.react("appr", room, draft, "✅")
        await eventually(_state_is(world, case_id, CaseState.APPROVED))
        case = await world.app.cases.get(case_id)
        assert case is not None and case.latest_draft is not None
        assert (case.latest_draft.kind, case.latest_draft.reviewer) == (DraftKind.FOLLOW_UP, "appr")

        # Posted under the citizen's comment by hand: "!published <link>" in the thread.
        await world.say("spec", room, f"!published {URL}", thread=card)
        await eventually(_state_is(world, case_id, CaseState.PUBLISHED))
        case = await world.app.cases.get(case_id)
        assert case is not None
        assert (case.follow_up_due_at, case.waiting_since) == (None, None)  # the loop is closed
        assert case.published_url == URL

        # 🩹: a correction of the published follow-up, through the same review.
        await eventually(lambda: _has(world.bot_reactions(room, card), "🩹"))
        await eventually(lambda: world.card_is_current(case_id))
        await world.react("spec", room, card, "🩹")
        await world.say("spec", room, f"!correct {CORRECTED}", thread=card)
        correction = await eventually(lambda: _bot_in_thread(world, room, card, "Исправление v2"))
        # The card shows what is public and the correction in progress.
        shown = await eventually(
            lambda: _contains(world.current_text(room, card), "Исправление v2")
        )
        assert "Опубликовано (v1)" in shown and RESULT in shown
        await eventually(lambda: _has(world.bot_reactions(room, correction), "✅"))
        await world.react("appr", room, correction, "✅")
        await eventually(_state_is(world, case_id, CaseState.APPROVED))
        await world.say("spec", room, f"!published {URL}", thread=card)
        await eventually(_state_is(world, case_id, CaseState.PUBLISHED))

        case = await world.app.cases.get(case_id)
        assert case is not None and case.published_draft is not None
        assert (case.published_draft.kind, case.published_draft.text) == (
            DraftKind.CORRECTION,
            CORRECTED,
        )
        # The card is edited in place (m.replace) and the correction draft says it is approved.
        await eventually(lambda: world.card_is_current(case_id))
        assert CORRECTED in await world.current_text(room, card)
        await eventually(lambda: _contains(world.current_text(room, correction), "Одобрен"))


async def _has(reactions: Awaitable[set[str]], key: str) -> bool:
    return key in await reactions


async def _contains(text: Awaitable[str], words: str) -> str | None:
    shown = await text
    return shown if words in shown else None
