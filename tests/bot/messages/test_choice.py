"""What a backlogged chat spends its next message on (bot/messages/delivery.py _choose).

Through the real intake, case service, store and outbox worker, on both backends; the chat is
the recording stand-in of tests/bot/messages/test_queue.py that takes a few messages a minute.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.cases.grouping import CaseOpening
from bot.clock import FrozenClock
from bot.crisis.service import CRISIS_URGENCY, TICK_URGENCY
from bot.messages.delivery import (
    PACK_MAX,
    PACK_SIZE,
    REDRAW_PAUSE,
    OutboxWorker,
    RetryPolicy,
    _worth,
    pack_size,
    redraw_pause,
)
from bot.messages.outbox import Destination, OutboxOp, WaitingWork
from bot.messages.views import notice_view
from bot.model import Priority
from store.db import Database
from tests.bot.messages.test_packs import service
from tests.bot.messages.test_queue import PACKABLE, TRANSPORT, PacedChat
from tests.doubles.fakes import Sent
from tests.doubles.support import make_mention

BUS = "Автобус 42 не пришёл, на Мицкевича ждём час"


def cards(chat: PacedChat) -> list[Sent]:
    """The card posts and edits the chat got, in order (the queue message aside)."""
    return [s for s in chat.sent if s.payload.get("view") == "card"]


async def test_a_cluster_that_grew_by_forty_is_redrawn_before_older_single_cards(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases = service(tmp_path, database, clock)
    chat = PacedChat(clock=clock)  # five messages a minute, no packs
    worker = OutboxWorker(database.uow, {chat.name: chat}, clock, RetryPolicy(jitter=0.0))
    cluster = await cases.intake(make_mention("bus-0", clock.now(), text=BUS), TRANSPORT)
    assert cluster.case is not None
    singles = []
    for number, text in enumerate(PACKABLE[:6]):
        opened = await cases.intake(make_mention(f"s{number}", clock.now(), text=text), TRANSPORT)
        assert opened.case is not None
        singles.append(opened.case.id)
    await worker.run_once()  # the minute's five: the cluster's card and four singles
    assert len(cards(chat)) == 5
    waiting = set(singles) - {s.payload["case"]["id"] for s in cards(chat)}  # type: ignore[index]
    assert len(waiting) == 2

    clock.advance(timedelta(seconds=10))
    for number in range(1, 41):  # forty people write the same, after the two singles queued
        joined = await cases.intake(make_mention(f"bus-{number}", clock.now(), text=BUS), TRANSPORT)
        assert joined.case is not None and joined.case.id == cluster.case.id

    clock.advance(timedelta(minutes=1))
    await worker.run_once()
    after = cards(chat)[5:]
    # The redraw that shows forty more goes first; the two older single cards after it.
    assert after[0].op is OutboxOp.EDIT
    assert after[0].payload["case"]["id"] == cluster.case.id  # type: ignore[index]
    assert after[0].payload["case"]["mention_count"] == 41  # type: ignore[index]
    assert {s.payload["case"]["id"] for s in after[1:3]} == waiting  # type: ignore[index]


async def test_a_single_card_that_waited_long_goes_before_a_fresh_small_redraw(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    """Age counts too: a mention that waited minutes is not starved by a cluster growing by
    one or two at a time."""
    cases = service(tmp_path, database, clock)
    chat = PacedChat(clock=clock, cards_a_minute=2)
    worker = OutboxWorker(database.uow, {chat.name: chat}, clock, RetryPolicy(jitter=0.0))
    cluster = await cases.intake(make_mention("bus-0", clock.now(), text=BUS), TRANSPORT)
    assert cluster.case is not None
    first = await cases.intake(make_mention("s0", clock.now(), text=PACKABLE[0]), TRANSPORT)
    old = await cases.intake(make_mention("s1", clock.now(), text=PACKABLE[1]), TRANSPORT)
    assert first.case is not None and old.case is not None
    await worker.run_once()  # the minute's two: the cluster's card and the first single
    clock.advance(timedelta(minutes=3))
    joined = await cases.intake(make_mention("bus-1", clock.now(), text=BUS), TRANSPORT)
    assert joined.case is not None and joined.case.id == cluster.case.id
    await worker.run_once()
    sent = cards(chat)
    assert [s.payload["case"]["id"] for s in sent[:2]] == [cluster.case.id, first.case.id]  # type: ignore[index]
    assert sent[2].payload["case"]["id"] == old.case.id  # type: ignore[index]
    assert sent[3].op is OutboxOp.EDIT


def test_a_pack_is_worth_the_waits_of_its_own_cases_not_its_oldest_times_its_lines() -> None:
    """A pack of one case that waited 40 s and five fresh ones has not kept six mentions
    waiting 40 s: a mention joined on a pack line 50 s ago goes first."""
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    slot = 60 / 16

    def ago(seconds: float) -> datetime:
        return now - timedelta(seconds=seconds)

    parts = ((1, ago(40)), *((1, ago(2)),) * 5)
    pack = WaitingWork(1, OutboxOp.POST, "pack:1", 6, ago(40), parts=parts)
    line_grown = WaitingWork(2, OutboxOp.EDIT, "pack:0", 1, ago(50), redraw=True)
    assert _worth(line_grown, now, slot) > _worth(pack, now, slot)
    # Six cases all 40 s old are worth more than that one mention.
    old = WaitingWork(3, OutboxOp.POST, "pack:2", 6, ago(40), parts=((1, ago(40)),) * 6)
    assert _worth(old, now, slot) > _worth(line_grown, now, slot)


def test_a_backlog_of_single_cases_grows_the_pack_within_its_bounds() -> None:
    # A chat that takes 17 a minute: four packs a quarter of its minute.
    assert pack_size(10, 17) == PACK_SIZE  # few wait: packs of the usual size
    assert pack_size(4 * PACK_SIZE + 4, 17) == PACK_SIZE + 1
    assert pack_size(50, 17) == 13
    assert pack_size(1000, 17) == PACK_MAX  # never beyond what fits in one message
    assert pack_size(50, 0) == PACK_MAX  # a chat of unknown capacity: one pack a minute


async def draw_summary(
    database: Database, chat: Destination, clock: FrozenClock, op: OutboxOp, version: int
) -> None:
    """A card redrawn for its figures only, urgent as a crisis card is (no waiting mention)."""
    view = notice_view("crisis.opened", count=version)
    item = chat.message(op, view, f"summary:{version}", clock.now(), ref="summary:1", urgency=20)
    async with database.uow() as uow:
        await uow.outbox.enqueue([item])
        await uow.commit()


async def test_a_redraw_that_shows_no_waiting_mention_waits_its_turn_while_cards_wait(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    """A card that is redrawn for its figures only (as a crisis card is, urgent as it is)
    takes a backlogged chat's message at most every REDRAW_PAUSE: within it, the cards of
    waiting mentions go first."""
    cases = service(tmp_path, database, clock)
    chat = PacedChat(clock=clock, cards_a_minute=60)
    worker = OutboxWorker(database.uow, {chat.name: chat}, clock, RetryPolicy(jitter=0.0))
    summary = Destination(chat.name, "-100222")  # the transport department's chat

    async def draw(op: OutboxOp, version: int) -> None:
        await draw_summary(database, summary, clock, op, version)

    await draw(OutboxOp.POST, 0)
    await worker.run_once()
    await draw(OutboxOp.EDIT, 1)
    await worker.run_once()  # no backlog: at once
    singles = []
    for number, text in enumerate(PACKABLE[:3]):
        opened = await cases.intake(make_mention(f"s{number}", clock.now(), text=text), TRANSPORT)
        assert opened.case is not None
        singles.append(opened.case.id)
    await draw(OutboxOp.EDIT, 2)
    clock.advance(REDRAW_PAUSE / 3)
    await worker.run_once()
    order = [s.payload["view"] for s in chat.sent[2:]]
    assert order == ["card", "card", "card", "notice"]  # the redraw after the waiting cards

    for number, text in enumerate(PACKABLE[3:6], start=3):
        await cases.intake(make_mention(f"s{number}", clock.now(), text=text), TRANSPORT)
    await draw(OutboxOp.EDIT, 3)
    clock.advance(REDRAW_PAUSE)
    await worker.run_once()
    assert chat.sent[6].payload["view"] == "notice"  # its pause over: first again, as urgent


def test_routine_redraws_take_at_most_one_of_eight_of_a_chats_messages() -> None:
    assert redraw_pause(60) == REDRAW_PAUSE  # a fast chat: every 15 s
    assert redraw_pause(16) == timedelta(seconds=30)  # a Telegram group's backlog pace
    assert redraw_pause(5) == timedelta(seconds=96)  # a slow chat keeps its few for cases


async def test_in_a_slow_chat_a_routine_redraw_waits_longer_than_the_pause(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    """A chat that takes five messages a minute: a crisis card's routine redraw 30 s after
    the last one still waits behind the cards of waiting mentions (every 15 s it would take
    four of the five)."""
    cases = service(tmp_path, database, clock)
    chat = PacedChat(clock=clock, cards_a_minute=5)
    worker = OutboxWorker(database.uow, {chat.name: chat}, clock, RetryPolicy(jitter=0.0))
    summary = Destination(chat.name, "-100222")

    async def draw(op: OutboxOp, version: int) -> None:
        await draw_summary(database, summary, clock, op, version)

    await draw(OutboxOp.POST, 0)
    await worker.run_once()
    await draw(OutboxOp.EDIT, 1)
    await worker.run_once()  # no backlog: at once, and the pause starts
    for number, text in enumerate(PACKABLE[:3]):
        await cases.intake(make_mention(f"s{number}", clock.now(), text=text), TRANSPORT)
    await draw(OutboxOp.EDIT, 2)
    clock.advance(2 * REDRAW_PAUSE)
    await worker.run_once()
    order = [s.payload["view"] for s in chat.sent[2:]]
    assert order == ["card", "card", "card"]  # the minute's three left go to the cases


async def test_a_checklist_tick_is_redrawn_at_once_within_the_pause(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    """A crisis card redrawn because a person ticked its checklist is a press: it goes ahead
    of the waiting cards even while routine redraws of the chat wait out REDRAW_PAUSE."""
    cases = service(tmp_path, database, clock)
    chat = PacedChat(clock=clock, cards_a_minute=60)
    worker = OutboxWorker(database.uow, {chat.name: chat}, clock, RetryPolicy(jitter=0.0))
    coordination = Destination(chat.name, "-100222")

    async def draw(op: OutboxOp, version: int, urgency: int) -> None:
        view = notice_view("crisis.opened", count=version)
        item = coordination.message(
            op, view, f"crisis:{version}", clock.now(), ref="crisis:1", urgency=urgency
        )
        async with database.uow() as uow:
            await uow.outbox.enqueue([item])
            await uow.commit()

    await draw(OutboxOp.POST, 0, CRISIS_URGENCY)
    await worker.run_once()
    await draw(OutboxOp.EDIT, 1, CRISIS_URGENCY)
    await worker.run_once()  # a routine redraw: the pause starts
    for number, text in enumerate(PACKABLE[:3]):
        await cases.intake(make_mention(f"s{number}", clock.now(), text=text), TRANSPORT)
    await draw(OutboxOp.EDIT, 2, TICK_URGENCY)
    clock.advance(REDRAW_PAUSE / 3)
    await worker.run_once()
    order = [s.payload["view"] for s in chat.sent[2:]]
    assert order == ["notice", "card", "card", "card"]  # the tick first, then the cards
    assert chat.sent[2].payload["params"]["count"] == 2


ACCIDENT = "Автобус 7 врезался в остановку на Мира, есть пострадавшие"
URGENT = CaseOpening("transport", Priority.HIGH)


async def test_a_grown_count_of_an_urgent_card_competes_with_less_urgent_new_cases(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    """Urgency orders what people have not seen (a high case's new card goes before normal
    ones). Once the high card is in the chat, one more mention on its count no longer
    outranks a normal complaint nobody has seen that waited longer: worth decides."""
    cases = service(tmp_path, database, clock)
    chat = PacedChat(clock=clock, cards_a_minute=2)
    worker = OutboxWorker(database.uow, {chat.name: chat}, clock, RetryPolicy(jitter=0.0))
    urgent = await cases.intake(make_mention("a-0", clock.now(), text=ACCIDENT), URGENT)
    assert urgent.case is not None
    await worker.run_once()  # the urgent card, alone in the chat so far
    normal = []
    for number, text in enumerate(PACKABLE[:2]):
        opened = await cases.intake(make_mention(f"s{number}", clock.now(), text=text), TRANSPORT)
        assert opened.case is not None
        normal.append(opened.case.id)
    await worker.run_once()  # the minute's second message: the first normal case
    clock.advance(timedelta(seconds=30))
    joined = await cases.intake(make_mention("a-1", clock.now(), text=ACCIDENT), URGENT)
    assert joined.case is not None and joined.case.id == urgent.case.id

    clock.advance(timedelta(minutes=1))
    await worker.run_once()
    after = [(s.op, s.payload["case"]["id"]) for s in cards(chat)[2:]]  # type: ignore[index]
    # The normal case nobody has seen, waiting longer, before the urgent card's grown count.
    assert after == [(OutboxOp.POST, normal[1]), (OutboxOp.EDIT, urgent.case.id)]
