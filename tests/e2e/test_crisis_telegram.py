"""Crisis mode end to end: a storm of negative mentions through the real App and intake; the
crisis card appears in the coordination group of the Telegram test server within seconds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bot.messages.texts import plural_form
from bot.model import EventKind
from tests.doubles.telegram_server.state import StoredMessage
from tests.doubles.telegram_world import telegram_world

# The shipped playbook: housing-spike opens at 15 negative housing mentions within an hour.
STORM = 15


async def test_a_storm_opens_a_crisis_card_in_the_coordination_group(tmp_path: Path) -> None:
    async with telegram_world(tmp_path) as world:
        for n in range(STORM):
            await world.open_case(f"Третий день нет отопления в доме {n + 1}, батареи ледяные")

        def crisis_cards() -> list[StoredMessage]:
            return [
                m
                for m in world.server.messages(world.coordination)
                if m.bot_id is not None and "КРИЗИС: ЖКХ" in (m.text or "")
            ]

        # Intake nudges the evaluation: no waiting for the half-minute job.
        await world.server.wait_for(lambda: bool(crisis_cards()), 20)
        (card,) = crisis_cards()
        text = card.text or ""
        assert f"Негативных упоминаний за 1 час: {STORM} при пороге 15" in text
        assert "Приостановите все запланированные публикации" in text
        assert "Собрать кризисную группу" in text and "Дарья Морозова" in text
        assert "Первое заявление" in text

        # Two more: the peak grows by over 10 %, and the same card is edited in place.
        for n in range(2):
            await world.open_case(f"Нет отопления и в доме {STORM + n + 1}, дети мёрзнут")
        peak = f"Пик: {STORM + 2}"
        await world.server.wait_for(
            lambda: peak in (world.server.message(card.chat_id, card.message_id).text or ""), 20
        )
        assert len(crisis_cards()) == 1

        # /status in the coordination chat names the crisis first.
        question = world.say("duty", world.coordination, "/status")
        answer = await world.answer_to(question)
        assert (answer.text or "").startswith("🚨 Кризис: ЖКХ")
        crises = await world.app.crises.open_crises()
        assert [c.threshold_id for c in crises if c.key == "housing"] == ["housing-spike"]


def _buttons(message: StoredMessage) -> list[dict[str, str]]:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [button for row in rows for button in row]


async def test_the_checklist_is_ticked_with_buttons_by_those_who_run_the_plan(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path) as world:
        for n in range(STORM):
            await world.open_case(f"Нет отопления в доме {n + 1}, батареи ледяные")

        def crisis_card() -> StoredMessage | None:
            cards = [
                m
                for m in world.server.messages(world.coordination)
                if m.bot_id is not None and "КРИЗИС: ЖКХ" in (m.text or "")
            ]
            return cards[0] if cards else None

        await world.server.wait_for(lambda: crisis_card() is not None, 20)
        card = crisis_card()
        assert card is not None
        # The heating code's surge opens a crisis of its own, with its own card.
        (crisis,) = [c for c in await world.app.crises.open_crises() if c.key == "housing"]
        assert crisis.id is not None
        buttons = _buttons(card)
        assert len(buttons) == 7  # one per item of the shipped checklist
        assert buttons[0]["text"].startswith("⬜ 1. Собрать кризисную группу")
        assert buttons[0]["callback_data"] == f"k:{crisis.id}:1:0:1"
        first_drawn = buttons[1]["callback_data"]  # item 2, as the card was first drawn

        def shown() -> StoredMessage:
            return world.server.message(card.chat_id, card.message_id)

        # The duty officer ticks item 1: recorded, and the same message now says who and when.
        answer = await world.press("duty", card, buttons[0]["text"])
        assert answer["text"] == "Пункт 1 отмечен выполненным" and not answer.get("show_alert")
        await world.server.wait_for(lambda: "✅ Дарья Морозова" in (shown().text or ""), 20)
        (tick,) = await world.app.crises.checklist(crisis.id)
        assert (tick.step, tick.done, tick.actor) == (0, True, "duty")
        local = tick.at.astimezone(world.app.config.tz).strftime("%d.%m %H:%M")
        assert f"✅ Дарья Морозова, {local}" in (shown().text or "")
        assert "выполнено 1 из 7" in (shown().text or "")
        edited = _buttons(shown())
        assert edited[0]["text"].startswith("✅ 1.")
        assert edited[0]["callback_data"] == f"k:{crisis.id}:2:0:0"  # now it unticks

        # A stranger's press is refused and audited; nothing changes.
        before = shown().text
        answer = await world.press("stranger", shown(), edited[1]["text"])
        assert answer["show_alert"] and answer["text"] == "Нет прав на это действие."
        # A press on the card as it was first drawn is stale: refused, audited, no change.
        answer = await world.forge("duty", shown(), first_drawn)
        assert "Карточка устарела" in str(answer["text"])
        await world.idle()
        assert shown().text == before
        assert len(await world.app.crises.checklist(crisis.id)) == 1
        async with world.app.database.uow() as uow:
            denied = await uow.events.of_kind(EventKind.DENIED.value)
        assert [(e.actor, e.payload["reason"], e.payload["crisis"]) for e in denied] == [
            ("tg:6666", "no_right", crisis.id),
            ("duty", "stale", crisis.id),
        ]

        # The duty officer unticks it again: an event too, and the card says so.
        answer = await world.press("duty", shown(), edited[0]["text"])
        assert answer["text"] == "Отметка с пункта 1 снята"
        await world.server.wait_for(lambda: "выполнено 0 из 7" in (shown().text or ""), 20)
        assert [t.done for t in await world.app.crises.checklist(crisis.id)] == [True, False]


async def test_the_crisis_card_summarises_the_storm_by_clusters(tmp_path: Path) -> None:
    """Two storylines worded many ways: the card lists them as clusters with their counts,
    people and trend, the largest first, instead of leaving 17 cards to be read."""
    heating = (
        "Третий день нет отопления в доме на Ленина 5, батареи ледяные",
        "В доме на Ленина 5 третий день нет отопления, батареи холодные",
        "Ленина 5: отопления нет уже третий день, батареи ледяные",
    )
    water = "Нет горячей воды в доме на Садовой 8 уже неделю, управляющая молчит"
    async with telegram_world(tmp_path) as world:
        opened = [await world.open_case(heating[n % 3] + "!" * (n % 4)) for n in range(12)]
        opened += [await world.open_case(water + "." * n) for n in range(5)]
        sizes = Counter(opened)
        (largest, mentions), (second, other) = sizes.most_common(2)
        assert mentions >= 10 and other >= 4  # similar wordings joined (bot/cases/similarity)

        def crisis_cards() -> list[StoredMessage]:
            return [
                m
                for m in world.server.messages(world.coordination)
                if m.bot_id is not None and "КРИЗИС: ЖКХ" in (m.text or "")
            ]

        await world.server.wait_for(lambda: bool(crisis_cards()), 20)
        (card,) = crisis_cards()
        text = card.text or ""
        assert "🌪 Шторм: крупнейшие сюжеты" in text
        words = ("упоминание", "упоминания", "упоминаний")
        first = f"/case {largest} (ЖКХ) «Третий день нет отопления в доме на Ленина 5"
        assert first in text
        line = next(row for row in text.splitlines() if row.startswith(first))
        count = f"{mentions} {words[plural_form(mentions, 'ru')]}, {mentions} чел. ↑ {mentions}/0"
        assert line.endswith(count), line
        assert f"/case {second} (ЖКХ) «Нет горячей воды" in text
        assert text.index(f"/case {largest} ") < text.index(f"/case {second} ")
        assert text.index("Шторм") < text.index("План действий")  # the checklist as before
        assert len(_buttons(card)) == 7
