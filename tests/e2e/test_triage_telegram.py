"""Staff correct the bot's triage in Telegram: /negative opens a case for a missed complaint,
"Не негатив" takes a mention out of the negative counts. Real dispatcher, the test server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.cases.replies import telegram_comment_id
from bot.crisis.thresholds import CountWindow
from bot.intake.triage import triage_ref
from bot.model import (
    EventKind,
    Identity,
    Mention,
    Sentiment,
    SentimentSource,
)
from tests.doubles.telegram_server.state import StoredMessage
from tests.doubles.telegram_world import World, telegram_world

COMPLAINT = "Третий день нет отопления, батареи ледяные"


async def _negative_now(world: World) -> int:
    now = datetime.now(UTC)
    async with world.app.database.uow() as uow:
        (counts,) = await uow.crises.window_counts([CountWindow(now - timedelta(hours=1), now)])
    return counts.total


async def test_a_missed_complaint_promoted_by_negative_gets_a_case_and_a_card(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path) as world:
        url = "https://vk.com/wall-1_missed"
        missed = await world.app.intake.receive(
            Mention(
                source="vk",
                external_id="missed",
                text=COMPLAINT,
                author=Identity("vk", "citizen-1", "Пётр Сидоров"),
                received_at=datetime.now(UTC),
                url=url,
                sentiment=Sentiment.NEUTRAL,  # the source (or the classifier) missed it
            )
        )
        assert missed.case is None and missed.mention is not None
        assert missed.mention.id is not None
        assert await _negative_now(world) == 0

        # Somebody off the staff list may not.
        refused = world.say("stranger", world.coordination, f"/negative {url}")
        assert "нет в списке" in ((await world.answer_to(refused)).text or "")

        ask = world.say("spec", world.housing, f"/negative {url}", thread=world.topic)
        answer = (await world.answer_to(ask)).text or ""
        assert "Отмечено как негатив" in answer
        case_id = int(answer.rsplit("№", 1)[1].rstrip("."))
        await world.idle()
        card = await world.card(case_id)  # routed as any mention: housing's topic
        assert (card.chat_id, card.thread_id) == (world.housing, world.topic)
        assert COMPLAINT in (card.text or "")

        async with world.app.database.uow() as uow:
            stored = await uow.mentions.get(missed.mention.id)
            events = await uow.events.for_case(case_id)
        assert stored is not None and stored.case_id == case_id
        assert stored.sentiment is Sentiment.NEGATIVE
        assert stored.sentiment_source is SentimentSource.STAFF
        assert any(e.kind == EventKind.MARKED_NEGATIVE and e.actor == "spec" for e in events)
        assert await _negative_now(world) == 1

        # Once more, by its id: the case it has is named, nothing new opens.
        again = world.say("duty", world.coordination, f"/negative {missed.mention.id}")
        assert f"уже есть кейс №{case_id}" in ((await world.answer_to(again)).text or "")
        unknown = world.say("duty", world.coordination, "/negative 999999")
        assert "не найдено" in ((await world.answer_to(unknown)).text or "")
        assert len(await world.app.cases.open_cases()) == 1


async def test_not_negative_on_a_card_rewrites_the_sentiment_and_the_crisis_count(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path) as world:
        started = datetime.now(UTC)
        case_id = await world.open_case(COMPLAINT, author="critic")
        other = await world.open_case("Опять нет горячей воды в доме 5", author="someone")
        assert await _negative_now(world) == 2

        await world.press("spec", await world.card(case_id), "Не отвечаем ▸")
        await world.idle()
        await world.press("spec", await world.card(case_id), "Не негатив")
        await world.idle()

        assert await _negative_now(world) == 1  # only the other case's mention still counts
        async with world.app.database.uow() as uow:
            (mention,) = await uow.mentions.for_case(case_id)
            author = await uow.authors.find_by_identity(Identity("vk", "critic"))
            corrections = await uow.mentions.corrections(started)
            (still,) = await uow.mentions.for_case(other)
        assert mention.sentiment is Sentiment.NEUTRAL
        assert mention.sentiment_source is SentimentSource.STAFF
        assert still.sentiment is Sentiment.NEGATIVE
        assert author is not None
        assert (author.negative_count, author.neutral_count) == (0, 1)
        assert [(c.mention_id, c.sentiment, c.department, c.by) for c in corrections] == [
            (mention.id, Sentiment.NEUTRAL, "housing", "spec")
        ]
        assert corrections[0].text == COMPLAINT


async def test_staff_mark_an_author_official_and_their_news_opens_no_case(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path) as world:
        case_id = await world.open_case("Авария на теплосети, отопления не будет", author="tsk")

        refused = world.say("spec", world.housing, f"/official {case_id}", thread=world.topic)
        assert "Нет прав" in ((await world.answer_to(refused)).text or "")
        ask = world.say("duty", world.coordination, f"/official {case_id}")
        assert "официальный источник" in ((await world.answer_to(ask)).text or "")

        news = await world.app.intake.receive(
            Mention(
                source="vk",
                external_id="news-1",
                text="Авария на теплосети устранена не будет до вечера, отопления нет",
                author=Identity("vk", "tsk", "Теплосеть"),
                received_at=datetime.now(UTC),
                sentiment=Sentiment.NEGATIVE,
            )
        )
        assert news.case is None and news.mention is not None
        assert news.mention.sentiment is Sentiment.NEUTRAL
        assert news.mention.sentiment_source is SentimentSource.RULE

        undo = world.say("duty", world.coordination, f"/official {case_id} off")
        assert "больше не" in ((await world.answer_to(undo)).text or "")


# The shipped model is not sure about a question with no complaint word in it (asserted below,
# so a retrained model that decides it shows up as that, not as a missing list).
UNSURE = "Когда будут чистить снег у школы и садика?"


async def _triage_message(world: World, showing: str, within: float = 10.0) -> StoredMessage:
    """The triage message in the coordination chat, once its text shows `showing`."""
    ref = triage_ref("coordination")

    async def current() -> StoredMessage | None:
        async with world.app.database.uow() as uow:
            message_id = await uow.refs.get("telegram", str(world.coordination), ref)
        if message_id is None:
            return None
        message = world.server.message(world.coordination, int(message_id))
        return message if showing in (message.text or "") else None

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        found = await current()
        if found is not None:
            return found
        await asyncio.sleep(0.025)
    raise TimeoutError(f"no triage message showing {showing!r}")


def _labels(message: StoredMessage) -> list[str]:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [button["text"] for row in rows for button in row]


async def test_uncertain_mentions_wait_on_the_triage_list_until_staff_decide(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path, discussion_groups=True) as world:
        server = world.server
        started = datetime.now(UTC)
        post = server.post_to_channel(world.channel, "Ремонт дорог в Заречном")
        assert post.discussion_message_id is not None
        comment = server.send_user_message(
            world.discussion, world.person("citizen"), UNSURE, post.discussion_message_id
        )
        key = telegram_comment_id(world.discussion, comment.message_id)
        found = None
        for _ in range(400):
            async with world.app.database.uow() as uow:
                found = await uow.mentions.get_by_external("telegram", key)
            if found is not None:
                break
            await asyncio.sleep(0.025)
        assert found is not None and found.id is not None
        assert found.sentiment is Sentiment.UNCERTAIN and found.case_id is None
        first = found.id

        listed = await _triage_message(world, f"#{first}")
        assert UNSURE in (listed.text or "")
        assert _labels(listed) == [f"#{first} Это негатив → кейс", f"#{first} Не негатив"]

        # A second uncertain mention (from VK) joins the same message: edited, not re-posted.
        other = await world.app.intake.receive(
            Mention(
                source="vk",
                external_id="unsure-2",
                text=COMPLAINT,
                author=Identity("vk", "citizen-2", "Пётр Сидоров"),
                received_at=datetime.now(UTC),
                url="https://vk.com/wall-1_unsure",
                sentiment=Sentiment.UNCERTAIN,
            )
        )
        assert other.case is None and other.mention is not None and other.mention.id
        second = other.mention.id
        both = await _triage_message(world, f"#{second}")
        assert both.message_id == listed.message_id and both.edit_date is not None
        assert f"#{first}" in (both.text or "") and "Разобрать: 2" in (both.text or "")

        # Somebody off the staff list may decide nothing.
        refused = await world.press("stranger", both, f"#{second} Это негатив → кейс")
        assert "нет в списке" in str(refused.get("text"))
        assert len(await world.app.cases.open_cases()) == 0

        # "Это негатив → кейс": the /negative path, a card in the department's chat.
        done = await world.press("spec", both, f"#{second} Это негатив → кейс")
        assert "Отмечено как негатив" in str(done.get("text"))
        case_id = int(str(done["text"]).rsplit("№", 1)[1].rstrip("."))
        card = await world.card(case_id)
        assert (card.chat_id, card.thread_id) == (world.housing, world.topic)
        one = await _triage_message(world, "Разобрать: 1")
        assert f"#{second}" not in (one.text or "") and f"#{first}" in (one.text or "")

        # "Не негатив": neutral, with staff provenance; the list is empty.
        dismissed = await world.press("duty", one, f"#{first} Не негатив")
        assert "не негатив" in str(dismissed.get("text"))
        empty = await _triage_message(world, "Разобрать: 0")
        assert _labels(empty) == []

        # A second tap on either (a client that still shows the buttons) changes nothing.
        again = await world.forge("duty", empty, f"t:{first}:x")
        assert "не негатив" in str(again.get("text")) and not again.get("show_alert")
        twice = await world.forge("spec", empty, f"t:{second}:n")
        assert f"уже есть кейс №{case_id}" in str(twice.get("text"))
        forged = await world.forge("duty", empty, f"t:{first}:z")  # no such decision
        assert forged.get("show_alert")
        await world.idle()

        async with world.app.database.uow() as uow:
            decided = await uow.mentions.get(first)
            corrections = await uow.mentions.corrections(started)
        assert decided is not None and decided.case_id is None
        assert decided.sentiment is Sentiment.NEUTRAL
        assert decided.sentiment_source is SentimentSource.STAFF
        assert [(c.mention_id, c.sentiment, c.by) for c in corrections] == [
            (second, Sentiment.NEGATIVE, "spec"),
            (first, Sentiment.NEUTRAL, "duty"),
        ]
        assert len(await world.app.cases.open_cases()) == 1
        ours = [m for m in server.messages(world.coordination) if m.bot_id is not None]
        assert [m.message_id for m in ours] == [listed.message_id]  # one message, edited
