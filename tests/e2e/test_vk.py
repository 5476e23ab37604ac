"""The VK community page end to end: Callback API events in through the bot's HTTP server,
cards in the department's Telegram chat, approved answers out through the VK test server
(tests/doubles/vk_server), once, also when the bot dies between VK's answer and its record."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from bot.cases.replies import VK_MESSAGE_SOURCE, VK_WALL_SOURCE
from bot.model import CaseState
from handlers.vk.callback import MAX_EVENT_BYTES, REFUSED, REPLAYED
from handlers.vk.intake import SOURCE_DELETED
from handlers.vk.transport import random_id_of
from tests.doubles.vk_server.callback import Answer
from tests.doubles.vk_world import (
    CONFIRMATION,
    GROUP,
    POST,
    SERVICE_TOKEN,
    VkWorld,
    vk_world,
)

CITIZEN = 7777
NO_HOT_WATER = "Третий день нет горячей воды! Когда наконец дадут?!"


async def case_of(world: VkWorld, source: str, external_id: str) -> int:
    for _ in range(400):
        async with world.app.database.uow() as uow:
            mention = await uow.mentions.get_by_external(source, external_id)
        if mention is not None and mention.case_id is not None:
            return mention.case_id
        await asyncio.sleep(0.025)
    raise TimeoutError(f"no case for {source} {external_id}")


async def audit(world: VkWorld, kind: str) -> list[dict[str, object]]:
    async with world.app.database.uow() as uow:
        return [e.payload for e in await uow.events.of_kind(kind)]


async def test_a_wall_comment_is_answered_under_itself_once_even_after_a_crash(
    tmp_path: Path,
) -> None:
    async with vk_world(tmp_path) as world:
        # VK confirms the server's address with the string from the community's settings.
        assert await world.callback.confirm() == Answer(200, CONFIRMATION)

        comment = world.vk.comment(GROUP, POST, CITIZEN, NO_HOT_WATER)
        answers = await world.callback.send("wall_reply_new", comment.as_object())
        assert answers == [Answer(200, "ok")]  # at once: taken in after the answer
        case_id = await case_of(world, VK_WALL_SOURCE, f"-{GROUP}_{POST}:{comment.id}")
        card = await world.card(case_id)  # in the housing department's chat
        assert NO_HOT_WATER in (card.text or "")
        assert "Пётр Сидоров" in (card.text or "")  # users.get, with the community token
        assert f"https://vk.com/wall-{GROUP}_{POST}?reply={comment.id}" in str(card.entities)

        # A pre-approved template, where the bot can publish: two presses, then VK.
        await world.press("spec", card, "Первый ответ ▸")
        await world.idle()
        reached, release = world.vk.hold("wall.createComment")
        await world.press("spec", await world.card(case_id), "Опубликовать: Первый ответ (ЖКХ)")
        await asyncio.wait_for(reached.wait(), 10)
        # VK has posted the reply; the bot dies before it writes that down.
        await world.crash()
        release.set()
        await world.restart()  # the same database: the reply is still `sending`, sent again
        await world.idle()

        replies = [c for c in world.vk.comments(GROUP, POST) if c.from_id == -GROUP]
        assert len(replies) == 1, [r.text for r in replies]
        assert replies[0].reply_to_comment == comment.id
        assert replies[0].text.startswith("Здравствуйте! Видим ваше сообщение")
        assert (await world.case(case_id)).state is CaseState.PUBLISHED

        # Anyone reading the post through the API sees it in the comment's thread, once.
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{world.vk.api_base}/method/wall.getComments",
                params={
                    "owner_id": -GROUP,
                    "post_id": POST,
                    "comment_id": comment.id,
                    "access_token": SERVICE_TOKEN,
                    "v": "5.199",
                },
            ) as answer,
        ):
            thread = (await answer.json())["response"]
        assert [item["from_id"] for item in thread["items"]] == [-GROUP]


async def test_a_message_to_the_community_is_answered_by_message_with_random_id(
    tmp_path: Path,
) -> None:
    async with vk_world(tmp_path) as world:
        message = world.vk.write(GROUP, CITIZEN, NO_HOT_WATER)
        event = {"message": message.as_object(), "client_info": {"lang_id": 0}}
        assert await world.callback.send("message_new", event) == [Answer(200, "ok")]
        case_id = await case_of(world, VK_MESSAGE_SOURCE, f"{CITIZEN}:{message.id}")
        card = await world.card(case_id)
        assert NO_HOT_WATER in (card.text or "")

        # A draft, approved by a second person, then published.
        await world.press("spec", card, "Взять")
        await world.idle()
        card = await world.card(case_id)
        world.reply("spec", card, "Воду дадут до 18:00, приносим извинения")
        await world.idle()
        draft = next(
            m
            for m in world.server.messages(world.housing)
            if m.reply_to_message_id == card.message_id and "Черновик v1" in (m.text or "")
        )
        await world.press("appr", draft, "Одобрить")
        await world.idle()
        assert (await world.case(case_id)).state is CaseState.APPROVED

        reached, release = world.vk.hold("messages.send")
        await world.press("spec", await world.card(case_id), "Опубликовать")
        await asyncio.wait_for(reached.wait(), 10)
        await world.crash()  # VK sent it; the bot never learnt
        release.set()
        await world.restart()
        await world.idle()

        sent = world.vk.sent_to(GROUP, CITIZEN)
        assert [m.text for m in sent] == ["Воду дадут до 18:00, приносим извинения"]
        calls = [p for name, p in world.vk.calls if name == "messages.send"]
        assert len(calls) == 2  # sent twice, delivered once: the same random_id
        assert calls[0]["random_id"] == calls[1]["random_id"] == str(sent[0].random_id)
        key = f"vk:peer{CITIZEN}:publish:{case_id}:1"
        assert sent[0].random_id == random_id_of(key)
        assert (await world.case(case_id)).state is CaseState.PUBLISHED


async def test_forged_wrong_group_replayed_and_oversize_events_are_refused_and_audited(
    tmp_path: Path,
) -> None:
    async with vk_world(tmp_path) as world:
        comment = world.vk.comment(GROUP, POST, CITIZEN, NO_HOT_WATER)
        body = comment.as_object()

        forged = await world.callback.send("wall_reply_new", body, secret="guessed", retries=0)
        assert forged == [Answer(403, "wrong secret")]
        other = await world.callback.send("wall_reply_new", body, group_id=1, retries=0)
        assert other == [Answer(403, "wrong group")]
        assert len(await audit(world, REFUSED)) == 2
        assert {p["reason"] for p in await audit(world, REFUSED)} == {
            "wrong secret",
            "wrong group_id",
        }

        # VK's own retry of an event, or somebody replaying it: it acts once.
        first = await world.callback.send("wall_reply_new", body, event_id="e0f1")
        again = await world.callback.send("wall_reply_new", body, event_id="e0f1")
        assert first == again == [Answer(200, "ok")]
        case_id = await case_of(world, VK_WALL_SOURCE, f"-{GROUP}_{POST}:{comment.id}")
        case = await world.case(case_id)
        assert case.mention_count == 1
        assert await audit(world, REPLAYED) == [
            {"event_id": "e0f1", "type": "wall_reply_new", "channel": "vk", "address": "127.0.0.1"}
        ]

        huge = {**body, "text": "х" * MAX_EVENT_BYTES}
        event = {"type": "wall_reply_new", "event_id": "e1", "group_id": GROUP, "object": huge}
        raw = json.dumps({**event, "secret": world.callback.secret}).encode()
        assert await world.callback.post(None, raw=raw) == [Answer(413, "the body is too large")]
        assert await world.callback.post(None, raw=b"{not json") == [
            Answer(400, "the body is not a JSON object")
        ]
        reasons = [p["reason"] for p in await audit(world, REFUSED)]
        assert reasons.count("oversize") == 1


async def test_a_thread_joins_one_case_an_edit_joins_it_and_a_deletion_is_on_record(
    tmp_path: Path,
) -> None:
    async with vk_world(tmp_path) as world:
        first = world.vk.comment(GROUP, POST, CITIZEN, NO_HOT_WATER)
        await world.callback.send("wall_reply_new", first.as_object())
        case_id = await case_of(world, VK_WALL_SOURCE, f"-{GROUP}_{POST}:{first.id}")

        # A neighbour answers in the thread: the same case.
        reply = world.vk.comment(GROUP, POST, 8888, "У нас в доме тоже нет воды", first.id)
        await world.callback.send("wall_reply_new", reply.as_object())
        assert await case_of(world, VK_WALL_SOURCE, f"-{GROUP}_{POST}:{reply.id}") == case_id

        # The first comment is edited: the new words join its case, the old ones stay.
        edited = {**first.as_object(), "text": NO_HOT_WATER + " Уже неделю!"}
        await world.callback.send("wall_reply_edit", edited)
        await world.callback.send("wall_reply_edit", edited)  # the same words: nothing new
        await world.idle()
        async with world.app.database.uow() as uow:
            texts = [m.text for m in await uow.mentions.for_case(case_id)]
        assert texts == [NO_HOT_WATER, "У нас в доме тоже нет воды", edited["text"]]

        # Deleted: the case stays, its audit trail says so; restored: nothing new.
        first.deleted = True
        gone = {"owner_id": -GROUP, "id": first.id, "deleter_id": CITIZEN, "post_id": POST}
        await world.callback.send("wall_reply_delete", gone)
        await world.callback.send("wall_reply_restore", first.as_object())
        await world.idle()
        async with world.app.database.uow() as uow:
            kinds = [e.kind for e in await uow.events.for_case(case_id)]
            assert len(await uow.mentions.for_case(case_id)) == 3
        assert kinds.count(SOURCE_DELETED) == 1
        assert (await world.case(case_id)).state is not CaseState.CLOSED

        # The answer to the deleted comment: VK refuses it, the card's chat is told why.
        card = await world.card(case_id)
        await world.press("spec", card, "Первый ответ ▸")
        await world.idle()
        await world.press("spec", await world.card(case_id), "Опубликовать: Первый ответ (ЖКХ)")
        await world.idle()
        # The neighbour in the thread is a second person of the case: answered once, under
        # their own comment; the citizen's edit is not a second person.
        ours = [c for c in world.vk.comments(GROUP, POST) if c.from_id == -GROUP]
        assert [c.reply_to_comment for c in ours] == [reply.id]
        notices = [
            m.text or ""
            for m in world.server.messages(world.housing)
            if m.reply_to_message_id == card.message_id and "не опубликован" in (m.text or "")
        ]
        assert len(notices) == 1
        assert f"Кейс №{case_id}: ответ не опубликован — VK error 100" in notices[0]
        assert "возможно, комментарий удалён" in notices[0]
