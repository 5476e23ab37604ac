"""The specialists' whole workflow in Telegram: real dispatcher, real HTTP, the test server."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from bot.cases.replies import telegram_comment_id
from bot.messages.delivery import PACK_CLUSTER_MAX, redraw_pause
from bot.model import CaseState, EventKind, Outcome
from handlers.telegram.transport import TelegramTransport
from tests.doubles.support import PACK_HEAD, PACK_LINE
from tests.doubles.telegram_world import World, telegram_world


async def test_card_lands_in_the_department_topic_and_two_taps_publish_a_template(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path) as world:
        case_id = await world.open_case()
        card = await world.card(case_id)
        assert (card.chat_id, card.thread_id) == (world.housing, world.topic)
        assert card.protect_content
        assert f"Кейс №{case_id}" in (card.text or "")
        assert "Третий день нет отопления" in (card.text or "")

        answer = await world.press("spec", card, "Взять")
        assert answer["text"] == "Готово: Взять"
        await world.idle()
        card = await world.card(case_id)
        assert "Анна Иванова" in (card.text or "")

        # Two taps from the card: the menu, then a pre-approved template.
        await world.press("spec", card, "Первый ответ ▸")
        await world.idle()
        card = await world.card(case_id)
        await world.press("spec", card, "Первый ответ (ЖКХ)")
        await world.idle()
        case = await world.case(case_id)
        assert case.state is CaseState.APPROVED
        card = await world.card(case_id)
        assert "Здравствуйте! Видим ваше сообщение" in (card.text or "")  # ready to copy

        await world.press("spec", card, "Опубликовано")
        await world.idle()
        assert (await world.case(case_id)).state is CaseState.PUBLISHED


async def test_draft_review_cycle_and_publishing_into_the_discussion_group(
    tmp_path: Path,
) -> None:
    # The discussion group is configured: the bot answers only under comments it took in.
    async with telegram_world(tmp_path, discussion_groups=True) as world:
        comment = world.say(
            "citizen", world.discussion, "Третий день нет горячей воды! Когда наконец дадут?!"
        )
        key = telegram_comment_id(world.discussion, comment.message_id)
        mention = None
        for _ in range(400):
            async with world.app.database.uow() as uow:
                mention = await uow.mentions.get_by_external("telegram", key)
            if mention is not None:
                break
            await asyncio.sleep(0.025)
        assert mention is not None and mention.case_id is not None
        case_id = mention.case_id
        card = await world.card(case_id)
        await world.press("spec", card, "Взять")
        await world.idle()

        # A draft is a reply to the card; it appears under the card for review.
        world.reply("spec", card, "Мы разбираемся, напишите адрес")
        await world.idle()
        drafts = [
            m
            for m in world.server.messages(world.housing)
            if m.reply_to_message_id == card.message_id and "Черновик v1" in (m.text or "")
        ]
        assert len(drafts) == 1
        draft = drafts[0]

        # A specialist may not approve at all; an approver sends it back with a note.
        answer = await world.press("spec", draft, "Одобрить")
        assert answer["show_alert"] and answer["text"] == "Нет прав на это действие."
        await world.press("appr", draft, "На доработку")
        await world.idle()
        prompt = next(
            m
            for m in reversed(world.server.messages(world.housing))
            if "что исправить" in (m.text or "")
        )
        world.reply("appr", prompt, "Добавьте срок")
        await world.idle()
        case = await world.case(case_id)
        assert case.state is CaseState.CHANGES_REQUESTED
        assert case.latest_draft.note == "Добавьте срок"

        # The lead rewrites it; four eyes: whoever drafted may not approve, even a lead.
        world.reply(
            "lead",
            await world.card(case_id),
            "Мы разбираемся, воду дадут до 18:00. Напишите адрес в личные сообщения",
        )
        await world.idle()
        draft2 = next(
            m
            for m in world.server.messages(world.housing)
            if m.reply_to_message_id == card.message_id and "Черновик v2" in (m.text or "")
        )
        answer = await world.press("lead", draft2, "Одобрить")
        assert answer["show_alert"] and "второй человек" in str(answer["text"])
        await world.press("appr", draft2, "Одобрить")
        await world.idle()
        assert (await world.case(case_id)).state is CaseState.APPROVED

        # Publish: the bot answers under the citizen's comment in the discussion group.
        card = await world.card(case_id)
        await world.press("spec", card, "Опубликовать")
        await world.idle()
        public = [
            m
            for m in world.server.messages(world.discussion)
            if m.bot_id is not None and m.reply_to_message_id == comment.message_id
        ]
        assert [m.text for m in public] == [
            "Мы разбираемся, воду дадут до 18:00. Напишите адрес в личные сообщения"
        ]
        assert not public[0].protect_content

        card = await world.card(case_id)
        await world.press("spec", card, "Закрыть ▸")
        await world.idle()
        await world.press("spec", await world.card(case_id), "Решено")
        await world.idle()
        case = await world.case(case_id)
        assert (case.state, case.outcome) == (CaseState.CLOSED, Outcome.RESOLVED)


async def test_reroute_escalate_and_commands(tmp_path: Path) -> None:
    async with telegram_world(tmp_path) as world:
        case_id = await world.open_case("Автобус 12 не пришёл, ждали час на остановке")
        card = await world.card(case_id, "transport")
        other = await world.open_case()
        housing_card = await world.card(other)

        await world.press("spec", housing_card, "Передать ▸")
        await world.idle()
        await world.press("spec", await world.card(other), "Транспорт")
        await world.idle()
        moved = await world.card(other, "housing")
        assert "Передан в отдел" in (moved.text or "") and not moved.reply_markup
        new_card = await world.card(other, "transport")
        assert f"Кейс №{other}" in (new_card.text or "")

        # "Not ours" hands a case to the coordination centre to decide whose it is.
        third = await world.open_case("Опять нет горячей воды в доме 5")
        await world.press("spec", await world.card(third), "Не отвечаем ▸")
        await world.idle()
        await world.press("spec", await world.card(third), "Не наше")
        await world.idle()
        assert (await world.case(third)).department == "coordination"
        await world.card(third, "coordination")

        # /escalate N reason: a notice under the card and in the coordination chat.
        ask = world.say("tspec", world.transport, f"/escalate {case_id} жалоба губернатору")
        answer = await world.answer_to(ask)
        assert "Готово" in (answer.text or "")
        await world.idle()
        notices = [
            m for m in world.server.messages(world.coordination) if "Эскалация" in (m.text or "")
        ]
        assert notices and "жалоба губернатору" in (notices[0].text or "")
        assert (await world.case(case_id)).escalation_level == 1
        assert card.message_id in {
            m.reply_to_message_id for m in world.server.messages(world.transport)
        }

        status = world.say("duty", world.coordination, "/status")
        text = (await world.answer_to(status)).text or ""
        assert "ЖКХ" in text and "Транспорт" in text
        local = world.say("tspec", world.transport, "/status")
        text = (await world.answer_to(local)).text or ""
        assert "Транспорт" in text and "ЖКХ" not in text

        thread = world.say("tspec", world.transport, f"/case {case_id}")
        text = (await world.answer_to(thread)).text or ""
        assert f"№{case_id}" in text and "Автобус 12" in text and "жалоба губернатору" in text

        who = world.say("duty", world.coordination, "/whoami")
        assert "Дежурный" in ((await world.answer_to(who)).text or "")
        nobody = world.say("stranger", world.coordination, f"/case {case_id}")
        assert "нет в списке" in ((await world.answer_to(nobody)).text or "")
        commands = world.server.commands(world.bot, language_code="en")
        assert {c["command"] for c in commands} >= {"status", "case", "escalate", "help"}


async def test_strangers_and_forged_presses_change_nothing_and_are_audited(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path) as world:
        case_id = await world.open_case()
        card = await world.card(case_id)
        answer = await world.press("stranger", card, "Взять")
        assert answer["show_alert"] and answer["text"] == "Нет прав на это действие."
        answer = await world.press("tspec", card, "Взять")  # staff of another department
        assert answer["show_alert"]
        for data in (
            f"c:{case_id}:0:approve:",
            f"c:{case_id}:0:take:x",
            "c:999:0:take:",
            f"c:{case_id}:7:take:",
            "garbage",
            f"m:{case_id}:0:take",
            f"d:{case_id}:1:approve",
        ):
            answer = await world.forge("spec", card, data)
            assert "Готово" not in str(answer.get("text", "")), data
        case = await world.case(case_id)
        assert case.state is CaseState.NEW and case.version == 0
        thread = await world.app.cases.thread(case_id)
        denied = [e for e in thread.events if e.kind == EventKind.DENIED]
        # Also audited (issue 15): data no button carries, a stale card, a draft press
        # without the right to review.
        assert [(e.actor, e.payload["staff"], e.payload["reason"]) for e in denied] == [
            ("tg:6666", False, "no_right"),
            ("tspec", True, "no_right"),
            ("spec", True, "invalid_button"),
            ("spec", True, "invalid_button"),
            ("spec", True, "stale"),
            ("spec", True, "invalid_button"),
            ("spec", True, "no_right"),
        ]


async def test_hostile_long_mention_renders_without_a_telegram_error(tmp_path: Path) -> None:
    hostile = (
        "Нет отопления! "
        + ('<script>alert(1)</script> & </b> <b> "quotes" 1 < 2 && 3 > 2 ' * 120)[:5985]
    )
    async with telegram_world(tmp_path) as world:
        case_id = await world.open_case(hostile)
        card = await world.card(case_id)
        assert "<script>" in (card.text or "")  # shown as text, not markup
        assert "/case" in (card.text or "")  # cut, with the way to read the rest
        await world.press("spec", card, "Взять")
        await world.idle()
        assert [(c.method, c.description) for c in world.server.history if not c.ok] == []
        async with world.app.database.uow() as uow:
            assert await uow.outbox.depth() == 0


async def test_commands_answer_in_english(tmp_path: Path) -> None:
    async with telegram_world(tmp_path, locale="en") as world:
        case_id = await world.open_case()
        card = await world.card(case_id)
        assert f"Case #{case_id}" in (card.text or "")
        answer = await world.press("spec", card, "Take")
        assert answer["text"] == "Done: Take"
        status = world.say("duty", world.coordination, "/status")
        assert "Open" in ((await world.answer_to(status)).text or "")
        bad = world.say("spec", world.housing, "/escalate", thread=world.topic)
        assert "Usage" in ((await world.answer_to(bad)).text or "")


CARD_ID = re.compile(r"(?:Кейс №|Case #)(\d+)")


def card_order(world: World, chat: int) -> list[int]:
    cards = [
        m
        for m in world.server.messages(chat)
        if m.bot_id is not None
        and m.reply_to_message_id in (None, world.topic)
        and CARD_ID.search(m.text or "")
    ]
    return [int(CARD_ID.search(m.text or "").group(1)) for m in cards]  # type: ignore[union-attr]


def shown_order(world: World, chat: int) -> list[int]:
    """Cases in the order they first appeared in the chat, on a card or a pack card's line."""
    order: list[int] = []
    for message in world.server.messages(chat):
        text = message.text or ""
        if message.bot_id is None or message.reply_to_message_id not in (None, world.topic):
            continue
        if PACK_HEAD in text:
            cases = [int(n) for n in PACK_LINE.findall(text)]
        else:
            card = CARD_ID.search(text)
            cases = [int(card.group(1))] if card else []
        order += [case for case in cases if case not in order]
    return order


async def test_a_burst_of_sixty_cases_gets_no_429_and_keeps_creation_order(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path) as world:  # both sides' limits 10x faster
        ids = [await world.open_case(f"Нет отопления, дом {n}") for n in range(60)]
        await world.idle(within=60)
        assert world.server.stats.count_429 == 0
        # Those the backlog packed are on pack cards, in the same order; a pack goes ahead of
        # cards of its priority, so it may overtake a card already in hand.
        shown = shown_order(world, world.housing)
        assert sorted(shown) == ids
        cards = card_order(world, world.housing)
        assert cards == sorted(cards)
        assert [case for case in shown if case not in cards] == sorted(set(ids) - set(cards))


async def test_a_backlogged_chat_shows_a_queue_and_urgent_cards_overtake(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path, scale=1) as world:  # Telegram's real limits
        # More mentions each than a pack line carries (the same tenant kept writing): cases
        # a pack card does not take.
        normal = []
        for n in range(30):
            normal.append(await world.open_case(f"Нет отопления, дом {n}", author=f"t{n}"))
            for _ in range(PACK_CLUSTER_MAX):
                assert (
                    await world.open_case(f"Так и нет отопления, дом {n}", author=f"t{n}")
                    == (normal[-1])
                )
        critical = await world.open_case("Прорыв трубы отопления, кипяток заливает подъезд")

        def queue() -> list[str]:
            return [
                m.text or ""
                for m in world.server.messages(world.housing)
                if "Очередь" in (m.text or "")
            ]

        # The queue message may first be drawn while the last cases are still being opened
        # (a loaded machine opens them slower); it is redrawn as they come, but a backlogged
        # group's redraws share one every redraw_pause (30 s at the 16 a minute it counts on).
        transport = world.app.transports["telegram"]
        assert isinstance(transport, TelegramTransport)
        capacity = transport.capacity_per_minute(str(world.housing))
        redraws = redraw_pause(capacity).total_seconds()
        await world.server.wait_for(
            lambda: any(f"/case {normal[-1]}" in q or "ещё" in q for q in queue()),
            timeout=redraws + 30,
        )
        await world.server.wait_for(
            lambda: critical in card_order(world, world.housing), timeout=15
        )
        posted = card_order(world, world.housing)
        assert normal[-1] not in posted  # the critical card did not wait its turn
        assert world.server.stats.count_429 == 0
