"""The queue message of a backlogged chat: clusters first, and every mention accounted for.

The invariant: a chat never holds a mention that is neither on a card in it, nor on a pack
card (a line of a case that has no card of its own in the chat), nor on the queue message with
its case (listed, or counted among the cases not listed, or counted as waiting to be added to a
card already in the chat). With and without pack cards. Checked over a backlog that grows while
the chat is rate limited, through the real intake, store and outbox worker, on both
backends; the chat is a recording stand-in that takes a few cards a minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.cases.grouping import CaseOpening
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.messages.delivery import QUEUE_REFRESH, OutboxWorker, RetryPolicy
from bot.messages.outbox import Delivery, DeliveryResult, OutboxOp, RetryLater
from bot.messages.texts import DEFAULT_TEMPLATES_DIR, texts_for
from bot.settings.playbook import load_playbook
from bot.staff.directory import Directory
from store.db import Database
from tests.doubles.fakes import RecordingTransport
from tests.doubles.support import make_config, make_mention

TRANSPORT = CaseOpening("transport")
CARDS_A_MINUTE = 5
STORIES = {
    "bus": (
        "Автобус 42 опять не пришёл, стоим на остановке на улице Мицкевича уже час",
        "42-й автобус так и не пришел на остановку Мицкевича, стоим уже час",
        "Автобус 42 не пришёл, на остановке улицы Мицкевича ждём целый час",
    ),
    "trash": ("Во дворе дома на Ленина 5 не вывозят мусор уже вторую неделю, баки переполнены",),
    "lift": ("Лифт в доме на Садовой 8 стоит неделю, пожилые жильцы не могут выйти из дома",),
}
SINGLES = (
    "В поликлинике номер 3 невозможно записаться к терапевту через сайт",
    "На перекрёстке Гагарина и Мира третий день не работает светофор",
    "В школе 12 протекает крыша над спортзалом после каждого дождя",
    "В парке Победы сломаны все фонари, вечером там совсем темно",
    "Тарифы на воду выросли вдвое, объясните, пожалуйста, расчёт",
    "Бездомные собаки стаей бегают у детской площадки на Цветочной",
)
# Unrelated complaints none of which joins another's case: what a pack card stands for.
PACKABLE = (
    "Автобус 12 проехал мимо остановки у рынка и не открыл двери",
    "Водитель маршрутки 5 курил в салоне всю дорогу до вокзала",
    "Трамвайные пути на Заводской разбиты, вагоны качает так, что страшно ехать",
    "Валидатор в троллейбусе 3 не принимает карту уже неделю",
    "На остановке Школьная сорвало навес, люди мокнут под дождём",
    "Расписание электрички на Кольцово снова поменяли без объявления",
    "Такси у аэропорта берут втрое дороже счётчика, никто не следит",
    "Ночной автобус N1 отменили, как добираться со смены домой?",
    "Кондуктор в 27-м нахамила пенсионерке из-за льготного проездного",
    "Светофор для трамвая у цирка горит красным по пять минут",
    "Велодорожку на набережной перекопали и бросили без ограждения",
    "В метро на Площади Ленина второй месяц не работает эскалатор вверх",
    "Парковку у вокзала сделали платной, а шлагбаум не открывается",
    "Электробус 8 ходит раз в сорок минут вместо обещанных пятнадцати",
    "Пешеходный переход у школы 4 стёрся, зебры совсем не видно",
    "На конечной 33-го маршрута нет ни лавочки, ни туалета для пассажиров",
)


@dataclass
class PacedChat(RecordingTransport):
    """Takes CARDS_A_MINUTE messages a minute of the injected clock and refuses the rest
    until the next minute, as a rate-limited group does; the queue message always goes (it is
    what the chat's reserve is for)."""

    clock: FrozenClock | None = None
    per_minute: dict[datetime, int] = field(default_factory=dict)
    cards_a_minute: int = CARDS_A_MINUTE
    packs_cards: bool = False  # the worker packs waiting single cases (as for Telegram)

    def capacity_per_minute(self, chat: str) -> int:
        return self.cards_a_minute

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        assert self.clock is not None
        if not (delivery.item.ref_key or "").startswith("queue:"):
            now = self.clock.now()
            minute = now.replace(second=0, microsecond=0)
            if self.per_minute.get(minute, 0) >= self.cards_a_minute:
                after = (minute + timedelta(minutes=1) - now).total_seconds()
                raise RetryLater("Too Many Requests", after=after)
            self.per_minute[minute] = self.per_minute.get(minute, 0) + 1
        return await super().deliver(delivery)


def accounted(chat: PacedChat) -> tuple[int, dict[str, object] | None]:
    """Mentions the chat shows: on its cards, on its pack cards (a line whose case has no
    card of its own in the chat), and on its queue message (None: none)."""
    cards = [p for p in chat.messages.values() if p.get("view") == "card"]
    on_cards = sum(int(p["case"]["mention_count"]) for p in cards)  # type: ignore[index]
    carded = {p["case"]["id"] for p in cards}  # type: ignore[index]
    on_packs = sum(
        int(line["mentions"])
        for p in chat.messages.values()
        if p.get("view") == "pack"
        for line in p["items"]  # type: ignore[attr-defined]
        if line["case_id"] not in carded
    )
    on_cards += on_packs
    queues = [p for p in chat.messages.values() if p.get("view") == "queue"]
    assert len(queues) <= 1
    if not queues:
        return on_cards, None
    queue = queues[0]
    items: list[dict[str, int]] = queue["items"]  # type: ignore[assignment]
    listed = sum(item["mentions"] for item in items)
    summarised = int(queue["more_mentions"]) + int(queue["updating_mentions"])  # type: ignore[call-overload]
    return on_cards + listed + summarised, queue


@pytest.mark.parametrize("packs", [False, True], ids=["cards", "packs"])
async def test_every_waiting_mention_is_on_a_card_or_on_the_queue_message(
    tmp_path: Path, database: Database, clock: FrozenClock, packs: bool
) -> None:
    config = make_config(tmp_path, database.url)
    # With packs, a chat that takes three a minute: packing eight cases into one message
    # still leaves more waiting than that, so the queue message stays and counts them.
    chat = PacedChat(clock=clock, packs_cards=packs, cards_a_minute=3 if packs else CARDS_A_MINUTE)
    directory = Directory(config, frozenset({chat.name}))
    worker = OutboxWorker(database.uow, {chat.name: chat}, clock, RetryPolicy(jitter=0.0))
    routing = load_playbook(config.playbooks.path).routing
    cases = CaseService(database.uow, clock, directory, config.tz, policy=routing)
    received = 0
    texts_sent: list[str] = []

    async def wave(bus: int, trash: int, lift: int, singles: int) -> None:
        nonlocal received
        texts = [STORIES["bus"][n % 3] + "!" * (n % 4) for n in range(bus)]
        texts += [STORIES["trash"][0] + "!" * (n % 3) for n in range(trash)]
        texts += [STORIES["lift"][0] + "." * (n % 2) for n in range(lift)]
        if packs:  # new unrelated cases each wave
            packed = sum(1 for t in texts_sent if t in PACKABLE)
            texts += list(PACKABLE[packed : packed + singles])
        else:
            texts += list(SINGLES[:singles])
        texts_sent.extend(texts)
        for text in texts:
            received += 1
            got = await cases.intake(
                make_mention(f"m{received}", clock.now(), text=text), TRANSPORT
            )
            assert got.case is not None

    async def refreshed() -> dict[str, object] | None:
        """A queue refresh while the chat's cards wait for the next minute: then the chat
        must account for every mention exactly (None: no queue message, all on cards)."""
        clock.advance(QUEUE_REFRESH)
        await worker.run_once()
        shown, queue = accounted(chat)
        assert shown == received, queue
        return queue

    # Clusters past what a pack line carries (PACK_CLUSTER_MAX): each waits for its card.
    await wave(bus=12, trash=6, lift=6, singles=8 if packs else 4)
    await worker.run_once()  # the queue message, then the first cards of the minute
    shown, first = accounted(chat)
    assert first is not None and shown >= received  # counted twice at worst, never lost
    queue = await refreshed()
    assert queue is not None
    # Clusters first, the largest first; the unlisted counted in cases and mentions.
    items: list[dict[str, int]] = queue["items"]  # type: ignore[assignment]
    sizes = [item["mentions"] for item in items]
    assert sizes == sorted(sizes, reverse=True)
    assert queue["cases"] == len(items) + int(queue["more"])  # type: ignore[call-overload]

    # More of the same storm while the chat is held: joins to cards already posted wait as
    # redraws and are counted as such; new cases queue up.
    await wave(bus=9, trash=4, lift=2, singles=8 if packs else 6)
    queue = await refreshed()
    assert queue is not None and queue["updating_mentions"]  # joins to posted cards counted
    for _ in range(12):  # minute by minute until the backlog is gone
        clock.advance(timedelta(minutes=1) - QUEUE_REFRESH)
        await worker.run_once()
        shown, _ = accounted(chat)
        assert shown >= received  # counted twice at worst, never lost
        if await refreshed() is None:
            break
    else:
        raise AssertionError("the backlog never drained")
    assert not chat.messages or all(
        p.get("view") in ("card", "pack") for p in chat.messages.values()
    )
    if packs:  # every single case went out on a pack
        lines = [
            line for p in chat.messages.values() if p.get("view") == "pack" for line in p["items"]
        ]  # type: ignore[attr-defined]
        assert len(lines) == 16

    # The queue message as people read it, in both locales.
    sample = {
        "waiting": 40,
        "items": [
            {"case_id": 7, "priority": "high", "mentions": 137},
            {"case_id": 9, "priority": "normal", "mentions": 1},
        ],
        "more": 12,
        "cases": 14,
        "mentions": 200,
        "more_mentions": 62,
        "updating": 2,
        "updating_mentions": 5,
    }
    ru = texts_for(DEFAULT_TEMPLATES_DIR, "ru").render("queue.html.j2", **sample)
    en = texts_for(DEFAULT_TEMPLATES_DIR, "en").render("queue.html.j2", **sample)
    assert "Очередь: 14 кейсов, 200 упоминаний" in ru
    assert "🟠 /case 7 — 137 упоминаний\n🟡 /case 9\n" in ru
    assert "… и ещё 12 кейсов: 62 упоминания" in ru
    assert "5 новых упоминаний в карточках выше (2)" in ru
    assert "Queue: 14 cases, 200 mentions" in en and "/case 7 — 137 mentions" in en
    assert "… and 12 more cases: 62 mentions" in en


@dataclass
class PacedSharedChat(PacedChat):
    """The chat as several instances reach it; remembers each backlog it was told of."""

    told: list[dict[str, int]] = field(default_factory=list)

    def backlogs(self, waiting: dict[str, int]) -> None:
        self.told.append(dict(waiting))


async def test_with_several_instances_only_the_leader_keeps_the_queue_message(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    """Issue 21: each instance remembers the queue messages it shows in its own memory, so
    every instance watching a backlogged chat kept its own: each refreshed it (a message of
    the chat's budget each time, times the instances) and each removed it. The leader alone
    keeps it; a follower still paces its own sends by the backlog; after a failover the new
    leader keeps the same message up to date (an edit of it, not a second one) and removes it
    at the end."""
    config = make_config(tmp_path, database.url)
    chat = PacedSharedChat(clock=clock)
    directory = Directory(config, frozenset({chat.name}))
    leader = {"a": True, "b": False}
    workers = [
        OutboxWorker(
            database.uow,
            {chat.name: chat},
            clock,
            RetryPolicy(jitter=0.0),
            instance=name,
            leading=lambda name=name: leader[name],  # type: ignore[misc]
        )
        for name in ("a", "b")
    ]
    routing = load_playbook(config.playbooks.path).routing
    cases = CaseService(database.uow, clock, directory, config.tz, policy=routing)
    for n, text in enumerate(SINGLES * 3):
        await cases.intake(make_mention(f"m{n}", clock.now(), text=f"{text} ({n})"), TRANSPORT)

    def queue_sends() -> list[OutboxOp]:
        return [s.op for s in chat.sent if s.payload.get("view") == "queue"]

    async def both() -> None:
        for worker in workers:
            await worker.run_once()
            clock.advance(timedelta(seconds=1))  # instances never watch at the same instant

    await both()
    assert queue_sends() == [OutboxOp.POST]
    assert len(chat.told) == 2  # each instance told the chat its backlog: both pace

    steps = 0
    for step in range(12):
        if step == 1:
            leader.update(a=False, b=True)  # a failover: b leads from now on
        before = len(queue_sends())
        clock.advance(QUEUE_REFRESH)
        await both()
        steps += 1
        # One refresh (or the removal) per refresh period, however many instances watch.
        assert len(queue_sends()) - before <= 1, queue_sends()
        assert sum(1 for p in chat.messages.values() if p.get("view") == "queue") <= 1
        if not any(p.get("view") == "queue" for p in chat.messages.values()):
            break
        clock.advance(timedelta(minutes=1) - QUEUE_REFRESH)
        await both()
    else:
        raise AssertionError("the queue message was never removed")
    sends = queue_sends()
    assert sends[0] is OutboxOp.POST and sends.count(OutboxOp.POST) == 1
    assert sends[-1] is OutboxOp.DELETE and sends.count(OutboxOp.DELETE) == 1
    assert steps >= 2  # the failover happened while the queue message was shown
