"""Citizens in Telegram: comments in the channel's discussion group and private messages to the
bot become mentions; staff, bots and the channel's own posts do not. Real App, real aiogram
polling, the Telegram test server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.cases.replies import telegram_comment_id
from bot.model import CaseState, Mention, Sentiment
from bot.settings.connections import DiscussionGroup
from handlers.telegram.comments import DM_SOURCE, check_discussion_groups
from tests.doubles.telegram_server.server import TelegramServer
from tests.doubles.telegram_world import TOKEN, World, telegram_world

ACK = "Спасибо, мы получили ваше сообщение и передали его специалистам."


async def mention(world: World, source: str, external_id: str) -> Mention | None:
    async with world.app.database.uow() as uow:
        return await uow.mentions.get_by_external(source, external_id)


async def arrived(world: World, source: str, external_id: str, within: float = 10) -> Mention:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        found = await mention(world, source, external_id)
        if found is not None:
            return found
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no mention {source} {external_id}")


def internal(chat_id: int) -> str:
    return str(chat_id).removeprefix("-100")


async def test_citizen_comments_become_mentions_and_the_answer_lands_under_the_comment(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path, discussion_groups=True) as world:
        server = world.server
        post = server.post_to_channel(world.channel, "Плановые работы на теплосети в Заречном")
        thread = post.discussion_message_id
        assert thread is not None
        olga = server.create_user("Ольга", username="olga_k", last_name="Кузнецова")
        comment = server.send_user_message(
            world.discussion, olga, "Прорыв трубы на Садовой, кипяток заливает подъезд!", thread
        )
        found = await arrived(
            world, "telegram", telegram_comment_id(world.discussion, comment.message_id)
        )
        group = internal(world.discussion)
        assert found.url == f"https://t.me/c/{group}/{comment.message_id}?thread={thread}"
        assert found.reply_to_url == f"https://t.me/c/{group}/{thread}"
        assert found.text == "Прорыв трубы на Садовой, кипяток заливает подъезд!"
        # No sentiment from Telegram: the classifier read the text.
        assert found.sentiment is Sentiment.NEGATIVE and found.published_at is not None
        assert (found.author.channel, found.author.external_id) == ("telegram", str(olga.id))
        assert found.author_id is not None
        async with world.app.database.uow() as uow:
            author = await uow.authors.get(found.author_id)
        assert author is not None and author.display_name == "Ольга Кузнецова"
        assert [i.profile_url for i in author.identities] == ["https://t.me/olga_k"]

        # Urgent words open a case even while Telegram mentions are neutral: a card appears.
        assert found.case_id is not None
        case_id = found.case_id
        card = await world.card(case_id)
        assert "Прорыв трубы на Садовой" in (card.text or "")

        # Staff answering, and the channel post's automatic forward, are not mentions; a
        # neutral citizen's comment is, without a case.
        staff = world.reply("spec", server.message(world.discussion, thread), "Бригада выехала")
        chat = server.send_user_message(
            world.discussion, world.person("citizen"), "Спасибо за информацию", thread
        )
        thanks = await arrived(
            world, "telegram", telegram_comment_id(world.discussion, chat.message_id)
        )
        assert thanks.case_id is None and thanks.author.display_name == "Пётр"
        await world.idle()
        for message_id in (staff.message_id, thread):
            key = telegram_comment_id(world.discussion, message_id)
            assert await mention(world, "telegram", key) is None

        # A citizen's private message is no mention while direct messages are off.
        citizen = world.person("citizen")
        dm = server.send_user_message(citizen.id, citizen, "Здравствуйте, у нас во дворе яма")
        await world.idle()
        assert await mention(world, DM_SOURCE, f"{citizen.id}:{dm.message_id}") is None
        assert [m for m in server.messages(citizen.id) if m.bot_id is not None] == []

        # A pre-approved template, published by the bot as it is chosen: a reply under the
        # comment itself.
        await world.press("spec", card, "Первый ответ ▸")
        await world.idle()
        await world.press("spec", await world.card(case_id), "Опубликовать: Первый ответ (ЖКХ)")
        await world.idle()
        public = [
            m
            for m in server.messages(world.discussion)
            if m.bot_id is not None and m.reply_to_message_id == comment.message_id
        ]
        assert len(public) == 1 and (public[0].text or "").startswith("Здравствуйте! Видим")
        assert "Ольга Кузнецова" not in (public[0].text or "")  # unreviewed: no citizen text
        assert (await world.case(case_id)).state is CaseState.PUBLISHED


async def test_direct_messages_become_mentions_and_are_acknowledged(tmp_path: Path) -> None:
    async with telegram_world(tmp_path, direct_messages=True) as world:
        server = world.server
        citizen = world.person("citizen")
        server.start_private_chat(citizen)  # "/start": a command, not a mention
        dm = server.send_user_message(citizen.id, citizen, "Здравствуйте, у нас во дворе яма")
        ack = await world.answer_to(dm)
        assert ack.text == ACK
        found = await arrived(world, DM_SOURCE, f"{citizen.id}:{dm.message_id}")
        assert found.text == "Здравствуйте, у нас во дворе яма" and found.url is None
        assert (found.author.channel, found.author.external_id) == ("telegram", str(citizen.id))

        # Staff writing to the bot privately are not citizens.
        spec = world.person("spec")
        mine = server.send_user_message(spec.id, spec, "Проверка связи")
        await world.idle()
        assert await mention(world, DM_SOURCE, f"{spec.id}:{mine.message_id}") is None
        assert [m for m in server.messages(spec.id) if m.bot_id is not None] == []
        async with world.app.database.uow() as uow:
            start = await uow.mentions.get_by_external(DM_SOURCE, f"{citizen.id}:1")
        assert start is None
        acks = [m for m in server.messages(citizen.id) if m.text == ACK]
        assert len(acks) == 1


async def test_start_up_warns_when_the_bot_cannot_see_the_comments(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="handlers.telegram.comments")
    async with telegram_world(tmp_path, discussion_groups=True, bot_privacy=True) as world:
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(
            "Обсуждение новостей" in w and "@BotFather /setprivacy" in w and "administrator" in w
            for w in warnings
        ), warnings
        assert world.server.is_polling(world.bot)  # a warning, not a failure


async def test_the_membership_check_covers_every_way_a_group_can_be_wrong() -> None:
    async with TelegramServer() as server:
        info = server.add_bot(TOKEN, "otklik_bot", can_read_all_group_messages=False)
        admin = server.create_chat("supergroup", "Админ", bot_status="administrator")
        member = server.create_chat("supergroup", "Участник")
        left = server.create_chat("supergroup", "Вышел", bot_status="left")
        never = server.create_chat("supergroup", "Никогда", bot_status=None)
        groups = [
            DiscussionGroup(chat_id=c.id, name=c.title or "") for c in (admin, member, left, never)
        ]
        session = AiohttpSession(api=TelegramAPIServer.from_base(server.api_base))
        bot = Bot(TOKEN, session=session)
        try:
            me = await bot.get_me()
            warnings = await check_discussion_groups(bot, me, groups)
            info.can_read_all_group_messages = True
            relaxed = await check_discussion_groups(bot, await bot.get_me(), groups)
        finally:
            await session.close()
    assert len(warnings) == 3
    privacy, gone, unknown = warnings
    assert "«Участник»" in privacy and "/setprivacy" in privacy
    assert "«Вышел»" in gone and "not a member" in gone
    assert "«Никогда»" in unknown and "chat not found" in unknown
    assert [w for w in relaxed if "«Участник»" in w] == []  # privacy off: a member suffices
    assert len(relaxed) == 2
