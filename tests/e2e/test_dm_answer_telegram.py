"""A citizen's private message to the bot is answered in the same private chat: Telegram DM →
case → draft → approval by a second person → Publish → the answer is a reply to the
citizen's message, once. Real dispatcher, real HTTP, the project's Telegram test server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.model import CaseState, Mention
from handlers.telegram.comments import DM_SOURCE
from tests.doubles.telegram_world import World, telegram_world


async def arrived(world: World, external_id: str, within: float = 10) -> Mention:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        async with world.app.database.uow() as uow:
            found = await uow.mentions.get_by_external(DM_SOURCE, external_id)
        if found is not None and found.case_id is not None:
            return found
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no case for {DM_SOURCE} {external_id}")


async def test_a_private_message_is_answered_in_the_citizens_private_chat(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path, direct_messages=True) as world:
        server = world.server
        citizen = world.person("citizen")
        sent = server.send_user_message(
            citizen.id, citizen, "Третий день нет горячей воды в доме 5 по Ленина!"
        )
        mention = await arrived(world, f"{citizen.id}:{sent.message_id}")
        case_id = mention.case_id
        assert case_id is not None
        await world.idle()
        acknowledgement = await world.answer_to(sent)  # "thank you, we read it"

        card = await world.card(case_id)
        await world.press("spec", card, "Взять")
        await world.idle()
        world.reply("spec", await world.card(case_id), "Воду дадут до 18:00, извините.")
        await world.idle()
        draft = next(
            m
            for m in server.messages(world.housing)
            if m.reply_to_message_id == card.message_id and "Черновик v1" in (m.text or "")
        )
        await world.press("appr", draft, "Одобрить")
        await world.idle()
        assert (await world.case(case_id)).state is CaseState.APPROVED

        # The card offers Publish (not "Mark published"): the bot can answer there itself.
        card = await world.card(case_id)
        answer = await world.press("spec", card, "Опубликовать")
        assert not answer.get("show_alert"), answer
        await world.idle()
        answers = [
            m
            for m in server.messages(citizen.id)
            if m.bot_id is not None
            and m.reply_to_message_id == sent.message_id
            and m.message_id != acknowledgement.message_id
        ]
        assert [m.text for m in answers] == ["Воду дадут до 18:00, извините."]
        assert not answers[0].protect_content  # the citizen's own answer may be kept
        case = await world.case(case_id)
        assert case.state is CaseState.PUBLISHED

        # Published: the card no longer offers Publish, so nothing can send it twice.
        card = await world.card(case_id)
        rows = (card.reply_markup or {}).get("inline_keyboard", [])
        labels = [button["text"] for row in rows for button in row]
        assert "Опубликовать" not in labels
