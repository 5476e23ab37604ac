"""How many presses a templated first reply takes from a fresh card, through Telegram: real
dispatcher, real HTTP, the project's Telegram test server. Where the bot can post the answer
itself (a comment in the organisation's discussion group) a template that needs no second
person is published by the press that chooses it: two presses. Elsewhere the person posts it:
template, copy, «Опубликовано», three presses."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.cases.replies import telegram_comment_id
from bot.model import Action, CaseState
from tests.doubles.telegram_server.state import StoredMessage
from tests.doubles.telegram_world import World, telegram_world

TEMPLATE = "Первый ответ (ЖКХ)"
TEXT_START = "Здравствуйте! Видим ваше сообщение"


async def case_of_comment(world: World, comment: StoredMessage) -> int:
    key = telegram_comment_id(world.discussion, comment.message_id)
    for _ in range(400):
        async with world.app.database.uow() as uow:
            mention = await uow.mentions.get_by_external("telegram", key)
        if mention is not None and mention.case_id is not None:
            return mention.case_id
        await asyncio.sleep(0.025)
    raise TimeoutError("the comment opened no case")


def buttons(message: StoredMessage) -> list[str]:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [b["text"] for row in rows for b in row]


async def test_a_templated_first_reply_to_a_discussion_comment_takes_two_presses(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path, discussion_groups=True) as world:
        comment = world.say(
            "citizen", world.discussion, "Третий день нет горячей воды! Когда наконец дадут?!"
        )
        case_id = await case_of_comment(world, comment)
        card = await world.card(case_id)
        assert (await world.case(case_id)).state is CaseState.NEW  # fresh: nobody took it

        # Press 1: the menu. Each template that needs no second person says it publishes,
        # and its text is on the card to read before choosing.
        await world.press("spec", card, "Первый ответ ▸")
        await world.idle()
        card = await world.card(case_id)
        assert f"Опубликовать: {TEMPLATE}" in buttons(card)
        assert TEXT_START in (card.text or "")
        assert (await world.case(case_id)).state is CaseState.NEW  # a menu changes nothing

        # Press 2: the template; the bot takes the case and posts the answer under the comment.
        answer = await world.press("spec", card, f"Опубликовать: {TEMPLATE}")
        assert not answer.get("show_alert")
        await world.idle()
        public = [
            m
            for m in world.server.messages(world.discussion)
            if m.bot_id is not None and m.reply_to_message_id == comment.message_id
        ]
        assert len(public) == 1 and (public[0].text or "").startswith(TEXT_START)
        assert len(world.server.presses(world.person("spec"))) == 2

        case = await world.case(case_id)
        assert (case.state, case.assignee) == (CaseState.PUBLISHED, "spec")
        assert case.first_touched_at is not None and case.latest_draft.pre_approved
        async with world.app.database.uow() as uow:
            kinds = [e.kind for e in await uow.events.for_case(case_id)]
        # Every step audited, in order: one press, three changes.
        assert kinds[-3:] == [Action.TAKE, Action.USE_TEMPLATE, Action.PUBLISH]
        card = await world.card(case_id)
        assert "Опубликован" in (card.text or "") and "Опубликовать" not in buttons(card)


async def test_where_the_bot_cannot_publish_it_takes_three_presses(tmp_path: Path) -> None:
    async with telegram_world(tmp_path, discussion_groups=True) as world:
        case_id = await world.open_case()  # a VK comment: only a person can answer there
        card = await world.card(case_id)

        await world.press("spec", card, "Первый ответ ▸")  # 1
        await world.idle()
        card = await world.card(case_id)
        assert TEMPLATE in buttons(card)
        assert not any(b.startswith("Опубликовать") for b in buttons(card))
        await world.press("spec", card, TEMPLATE)  # 2: approved, the text to copy is shown
        await world.idle()
        case = await world.case(case_id)
        assert (case.state, case.assignee) == (CaseState.APPROVED, "spec")
        card = await world.card(case_id)
        assert TEXT_START in (card.text or "")
        await world.press("spec", card, "Опубликовано")  # 3: posted by hand
        await world.idle()

        assert (await world.case(case_id)).state is CaseState.PUBLISHED
        assert len(world.server.presses(world.person("spec"))) == 3
        assert not [m for m in world.server.messages(world.discussion) if m.bot_id is not None]
