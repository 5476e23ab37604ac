"""Follow-up answers and corrections through Telegram: a comment in the discussion group is
moved to private messages; later a follow-up with the result is written, approved by a second
person and published as a reply to the citizen's comment; then a correction, approved the
same way, edits the bot's reply in place. Real dispatcher, real HTTP, the project's Telegram
test server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.cases.replies import telegram_comment_id
from bot.messages.outbox import Delivery, OutboxOp
from bot.model import CaseState, DraftKind
from tests.doubles.telegram_server.state import StoredMessage
from tests.doubles.telegram_world import World, telegram_world

RESULT = "Трубу заменили 3 мая, горячая вода есть. Спасибо, что написали!"
CORRECTED = "Трубу заменили 4 мая, горячая вода есть. Спасибо, что написали!"


async def _case_of_comment(world: World, comment: StoredMessage) -> int:
    key = telegram_comment_id(world.discussion, comment.message_id)
    for _ in range(400):
        async with world.app.database.uow() as uow:
            mention = await uow.mentions.get_by_external("telegram", key)
        if mention is not None and mention.case_id is not None:
            return mention.case_id
        await asyncio.sleep(0.025)
    raise TimeoutError("the comment opened no case")


def _last_bot_message(world: World, chat: int, words: str) -> StoredMessage:
    return next(
        m
        for m in reversed(world.server.messages(chat))
        if m.bot_id is not None and words in (m.text or "")
    )


def _bot_replies_to(world: World, comment: StoredMessage) -> list[StoredMessage]:
    return [
        m
        for m in world.server.messages(world.discussion)
        if m.bot_id is not None and m.reply_to_message_id == comment.message_id
    ]


async def test_moved_to_private_then_follow_up_published_and_corrected(tmp_path: Path) -> None:
    async with telegram_world(tmp_path, discussion_groups=True) as world:
        comment = world.say("citizen", world.discussion, "Третий день нет горячей воды в доме 5!")
        case_id = await _case_of_comment(world, comment)

        # The dispute moves to private messages: the bot will ask for the result later.
        for label in ("Взять", "Ждём автора ▸", "Перешли в личные сообщения"):
            await world.press("spec", await world.card(case_id), label)
            await world.idle()
        case = await world.case(case_id)
        assert case.follow_up_due_at is not None and case.waiting_since is not None
        assert _bot_replies_to(world, comment) == []  # nothing public yet

        # «Дополнить ответ» asks for the text; the reply to the prompt is the follow-up draft.
        card = await world.card(case_id)
        assert "Исправить ответ" not in str(card.reply_markup)  # nothing public to correct
        await world.press("spec", card, "Дополнить ответ")
        await world.idle()
        prompt = _last_bot_message(world, world.housing, "текстом дополнения")
        world.reply("spec", prompt, RESULT)
        await world.idle()
        draft = _last_bot_message(world, world.housing, "Дополнение v1")
        assert draft.reply_to_message_id == card.message_id
        case = await world.case(case_id)
        assert case.state is CaseState.AWAITING_APPROVAL
        assert case.latest_draft.kind is DraftKind.FOLLOW_UP
        assert "Дополнение v1" in (await world.card(case_id)).text

        # Four eyes: the author may not approve it; a second person does.
        answer = await world.press("spec", draft, "Одобрить")
        assert answer["show_alert"]
        await world.press("appr", draft, "Одобрить")
        await world.idle()
        assert (await world.case(case_id)).state is CaseState.APPROVED

        # Published into the same thread: a reply to the citizen's comment.
        await world.press("spec", await world.card(case_id), "Опубликовать")
        await world.idle()
        public = _bot_replies_to(world, comment)
        assert [m.text for m in public] == [RESULT]
        reply = public[0]
        assert reply.reply_to_message_id == comment.message_id and reply.edit_date is None
        case = await world.case(case_id)
        assert case.state is CaseState.PUBLISHED
        assert (case.follow_up_due_at, case.waiting_since) == (None, None)  # loop closed
        assert case.published_draft.published_by_bot

        # «Исправить ответ»: a correction, approved by a second person, edits that reply.
        card = await world.card(case_id)
        assert "Дополнить ответ" in str(card.reply_markup)
        await world.press("spec", card, "Исправить ответ")
        await world.idle()
        prompt = _last_bot_message(world, world.housing, "исправленным текстом")
        world.reply("spec", prompt, CORRECTED)
        await world.idle()
        card = await world.card(case_id)
        assert "Исправление v2" in (card.text or "")
        assert "Опубликовано (v1)" in (card.text or "")  # what is public, above the correction
        draft = _last_bot_message(world, world.housing, "Исправление v2")
        await world.press("appr", draft, "Одобрить")
        await world.idle()
        await world.press("spec", await world.card(case_id), "Опубликовать")
        await world.idle()

        public = _bot_replies_to(world, comment)
        assert len(public) == 1  # edited in place, nothing posted twice
        edited = world.server.message(world.discussion, reply.message_id)
        assert edited.text == CORRECTED and edited.edit_date is not None
        assert edited.reply_to_message_id == comment.message_id
        case = await world.case(case_id)
        assert case.state is CaseState.PUBLISHED
        assert case.published_draft.kind is DraftKind.CORRECTION

        # A crash after the edit went out but before it was recorded sends it again at the
        # start: an edit to the same text changes nothing and posts nothing.
        correction = None
        async with world.app.database.uow() as uow:
            for item_id in range(1, 200):
                item = await uow.outbox.get(item_id)
                if item and item.idempotency_key.endswith(f":correct:{case_id}:2"):
                    correction = item
        assert correction is not None and correction.op is OutboxOp.EDIT
        again = Delivery(correction, target_ref=str(reply.message_id))
        await world.app.transports["telegram"].deliver(again)
        assert [m.text for m in _bot_replies_to(world, comment)] == [CORRECTED]
