"""A long tail of unrelated complaints, at Telegram's real limits (issue 19, "every mention in
front of a person within a minute"), time-scaled as tests/e2e/test_burst_telegram.py is.

A hundred and twenty people each complain about a different bus route, in one batch. No two
join (route 112 is not route 113), so one card each would take six minutes at twenty messages
a minute; packed eight to a message they are all in the chat within the minute, each on a
pack card (or its own card), without a single 429. A take button on a pack line takes that
case through the same press a card's button makes: its card appears, the pack line says so;
a person without the right is refused.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

from bot.clock import ScaledClock
from bot.model import CaseState, Identity, Mention, Sentiment
from tests.doubles.telegram_server.state import StoredMessage
from tests.doubles.telegram_world import telegram_world

COMPLAINTS = 120
SCALE = 5  # Telegram's limits five times faster on both sides: a minute lasts 12 s
MINUTE_S = 60 / SCALE
TROUBLES = (
    "не пришёл утром, ждали на остановке сорок минут",
    "проехал мимо остановки, водитель даже не притормозил",
    "ходит раз в час вместо обещанных пятнадцати минут",
    "вечером отменили без всякого предупреждения пассажиров",
    "переполнен так, что люди висят на подножке",
    "сломался посреди маршрута, пассажиров высадили под дождём",
)

PACK = re.compile(r"Новые упоминания: (\d+)")
LINE = re.compile(r"/case (\d+)")
CARD = re.compile(r"Кейс №(\d+)")


def complaint(n: int) -> Mention:
    route = 100 + n  # a different route each: never the same story
    return Mention(
        source="vk",
        external_id=f"tail-{n}",
        text=f"Автобус {route} {TROUBLES[n % len(TROUBLES)]}",
        author=Identity("vk", f"citizen-{n}", f"Житель {n}"),
        received_at=datetime.now(UTC),
        url=f"https://vk.com/wall-1_{n}",
        sentiment=Sentiment.NEGATIVE,
    )


def shown(messages: list[StoredMessage]) -> tuple[set[int], set[int], list[StoredMessage]]:
    """Cases on their own cards, cases on pack lines, and the pack messages, as the chat
    shows them now."""
    carded, packed, packs = set(), set(), []
    for message in messages:
        if message.bot_id is None:
            continue
        text = message.text or ""
        if PACK.search(text):
            packs.append(message)
            packed |= {int(n) for n in LINE.findall(text)}
        elif card := CARD.search(text):
            carded.add(int(card.group(1)))
    return carded, packed, packs


async def test_a_tail_of_single_complaints_is_in_the_chat_within_a_minute(tmp_path: Path) -> None:
    async with telegram_world(tmp_path, scale=SCALE, clock=ScaledClock(SCALE)) as world:
        app = world.app
        bulk = app._bulk_intake()  # the HTTP API's batch path
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        result = await bulk.receive_many([complaint(n) for n in range(COMPLAINTS)])
        case_ids = {r.case.id for r in result.results if r.case is not None}
        assert len(case_ids) == COMPLAINTS  # none joined another
        routed: dict[str, set[int]] = {}
        for case_id in case_ids:
            case = await world.case(case_id)
            routed.setdefault(case.department, set()).add(case_id)
        assert len(routed.get("transport", ())) >= COMPLAINTS * 0.9

        await asyncio.sleep(max(0.0, sent_at + MINUTE_S - loop.time()))
        chats = {"transport": world.transport, "coordination": world.coordination}
        for department, cases in routed.items():
            carded, packed, _ = shown(world.server.messages(chats[department]))
            missing = cases - carded - packed
            assert not missing, f"{len(missing)} of {len(cases)} not in {department}'s chat"
        assert world.server.stats.count_429 == 0
        carded, packed, packs = shown(world.server.messages(world.transport))
        assert packs and len(packed) >= COMPLAINTS * 0.8  # most of the tail on packs
        assert len(packs) <= COMPLAINTS // 8 + 2

        # A press on a pack line's take button: the same press a card's button makes.
        pack = packs[0]
        line_case = min(int(n) for n in LINE.findall(pack.text or ""))
        answer = await world.press("tspec", pack, f"Взять №{line_case}")
        assert answer["text"] == "Готово: Взять"
        case = await world.case(line_case)
        assert case.state is CaseState.TAKEN and case.assignee == "tspec"
        card = await world.card(line_case, "transport")
        assert "В работе" in (card.text or "")
        await world.server.wait_for(
            lambda: (
                "→ на своей карточке"
                in (world.server.message(pack.chat_id, pack.message_id).text or "")
            ),
            30,
        )
        redrawn = world.server.message(pack.chat_id, pack.message_id)
        labels = [b["text"] for row in redrawn.reply_markup["inline_keyboard"] for b in row]  # type: ignore[index]
        assert f"Взять №{line_case}" not in labels and labels

        # Someone without a role in transport presses another line's button: refused, checked
        # on the server side as for a card.
        other = int(labels[0].removeprefix("Взять №"))
        answer = await world.press("spec", redrawn, labels[0])
        assert answer["show_alert"] and answer["text"] == "Нет прав на это действие."
        assert (await world.case(other)).state is CaseState.NEW
        assert world.server.stats.count_429 == 0
        # Exactly one card for the taken case, however often the pack and card were redrawn.
        cards = [CARD.search(m.text or "") for m in world.server.messages(world.transport)]
        assert [c.group(1) for c in cards if c is not None].count(str(line_case)) == 1
