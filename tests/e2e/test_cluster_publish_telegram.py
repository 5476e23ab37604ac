"""A cluster of comments answered once (issue 19, item 2): real dispatcher, real HTTP, the
Telegram test server with its limits ten times faster on both sides."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from bot.cases.replies import telegram_comment_id
from bot.model import CaseState
from tests.doubles.telegram_server.state import StoredMessage
from tests.doubles.telegram_world import World, telegram_world

COMPLAINT = "Третий день нет горячей воды! Когда наконец дадут?!"
ANSWER = "Горячую воду дадут сегодня до 18:00, бригада уже на месте."
PEOPLE = 30  # more than a group's 20 messages a minute: the replies are paced


async def case_of(world: World, comment: StoredMessage) -> int:
    key = telegram_comment_id(world.discussion, comment.message_id)
    for _ in range(800):
        async with world.app.database.uow() as uow:
            mention = await uow.mentions.get_by_external("telegram", key)
        if mention is not None and mention.case_id is not None:
            return mention.case_id
        await asyncio.sleep(0.025)
    raise TimeoutError(f"comment {comment.message_id} was not taken in")


def replies_under(world: World, comment: StoredMessage) -> list[StoredMessage]:
    return [
        m
        for m in world.server.messages(world.discussion)
        if m.bot_id is not None and m.reply_to_message_id == comment.message_id
    ]


async def test_a_cluster_of_comments_is_answered_once_under_each_comment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with telegram_world(tmp_path, discussion_groups=True) as world:
        citizens = [
            world.server.create_user(f"Житель {n}", id=70_000 + n, language_code="ru")
            for n in range(PEOPLE)
        ]
        comments = [
            world.server.send_user_message(world.discussion, c, COMPLAINT) for c in citizens
        ]
        case_ids = {await case_of(world, c) for c in comments}
        assert len(case_ids) == 1, case_ids  # thirty people, one case
        (case_id,) = case_ids
        await world.idle(within=60)
        card = await world.card(case_id)
        assert f"Ещё {PEOPLE - 1} похожих от {PEOPLE - 1} чел." in (card.text or "")

        world.reply("spec", card, ANSWER)
        await world.idle()
        draft = next(
            m
            for m in world.server.messages(world.housing)
            if m.reply_to_message_id == card.message_id and "Черновик v1" in (m.text or "")
        )
        await world.press("appr", draft, "Одобрить")
        await world.idle()
        calls_before = len(world.server.stats.calls)
        pressed = asyncio.get_running_loop().time()
        await world.press("spec", await world.card(case_id), "Опубликовать")

        # Every comment gets the answer, once, as a reply to itself.
        await world.server.wait_for(
            lambda: all(replies_under(world, c) for c in comments), timeout=60
        )
        answered_s = asyncio.get_running_loop().time() - pressed
        await world.idle(within=60)
        for comment in comments:
            assert [m.text for m in replies_under(world, comment)] == [ANSWER]
        public = [m for m in world.server.messages(world.discussion) if m.bot_id is not None]
        assert len(public) == PEOPLE  # nothing else: no queue message where citizens read
        assert world.server.stats.count_429 == 0

        # The card counts them, once they all settled (at most every 20 s before that).
        async def counted() -> bool:
            text = (await world.card(case_id)).text or ""
            return f"Опубликовано {PEOPLE} из {PEOPLE}" in text

        for _ in range(400):
            if await counted():
                break
            await asyncio.sleep(0.05)
        assert await counted(), (await world.card(case_id)).text
        case = await world.case(case_id)
        assert case.state is CaseState.PUBLISHED and case.answers_delivered == PEOPLE
        # Not an edit per reply: the publication, the first count, the last (and one more
        # if the replies took longer than the refresh time).
        edits = [
            call
            for call in world.server.stats.calls[calls_before:]
            if call.method == "editMessageText" and call.chat_id == world.housing
        ]
        assert len(edits) <= 5, len(edits)
        report = (  # the figures, shown in the test run's output
            f"\ncluster publish: {PEOPLE} replies in {answered_s:.1f} s at time scale 10 "
            f"({answered_s * 10:.0f} s of Telegram time), {len(edits)} card edits, "
            f"{world.server.stats.count_429} x 429\n"
        )
        with capsys.disabled():
            sys.stdout.write(report)
        assert not re.search("Ответить вручную", (await world.card(case_id)).text or "")
