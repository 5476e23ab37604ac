"""Several instances on one PostgreSQL database: each outbox item is delivered once, one
sender per chat keeps each chat's order, a dead instance's claims are taken over after their
lease and not before, and SLA timers fire once. Every instance has its own engine."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.cases.grouping import CaseOpening
from bot.cases.service import CaseService
from bot.clock import Clock, FrozenClock, SystemClock
from bot.messages.delivery import TAKE_OVER_CHECK, OutboxWorker, RetryPolicy
from bot.messages.outbox import (
    Delivery,
    DeliveryResult,
    OutboxItem,
    OutboxOp,
    OutboxStatus,
)
from bot.messages.views import notice_view
from bot.model import EventKind, Priority
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, load_playbook
from bot.sla.calendar import plan_deadlines
from bot.sla.engine import SlaEngine
from bot.sla.service import SlaService
from bot.staff.directory import Directory
from handlers.metrics import Metrics
from store.db import Database
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP, POSTGRES_URL, Instances
from tests.doubles.support import make_config, make_mention

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_UP, reason=POSTGRES_SKIP),
]

NO_JITTER = RetryPolicy(base_s=1.0, cap_s=60.0, jitter=0.0)
T0 = datetime(2026, 11, 20, 13, 30, tzinfo=UTC)
LEASE_S = 30.0
M = timedelta(minutes=1)


@dataclass
class Chats:
    """One chat network both instances send to: what arrived, in order, and how many sends
    were in progress in each chat at once (one sender per chat: never more than one)."""

    log: list[tuple[str, str]] = field(default_factory=list)  # (chat, key) as delivered
    busy: Counter[str] = field(default_factory=Counter)
    most_at_once: int = 0
    by: Counter[str] = field(default_factory=Counter)  # deliveries per instance
    moved: asyncio.Event = field(default_factory=asyncio.Event)  # a send began or ended

    async def until(self, done: Callable[[], bool]) -> None:
        while not done():
            self.moved.clear()
            await self.moved.wait()


@dataclass
class ChatsTransport:
    chats: Chats
    instance: str
    hang: asyncio.Event | None = None  # block inside deliver until set (a stuck upload)
    started: list[int] = field(default_factory=list)  # item ids handed over
    name: str = "telegram"

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        item = delivery.item
        assert item.id is not None
        self.started.append(item.id)
        chats = self.chats
        chats.moved.set()
        chats.busy[item.chat] += 1
        chats.most_at_once = max(chats.most_at_once, chats.busy[item.chat])
        try:
            if self.hang is not None:
                await self.hang.wait()
            await asyncio.sleep(random.uniform(0, 0.004))
            chats.log.append((item.chat, item.idempotency_key))
            chats.by[self.instance] += 1
            chats.moved.set()
            return DeliveryResult(f"m{item.id}")
        finally:
            chats.busy[item.chat] -= 1


def notices(chat_count: int, per_chat: int, start: int = 0) -> list[OutboxItem]:
    """Items spread over the chats, interleaved as a real burst queues them."""
    return [
        OutboxItem(
            transport="telegram",
            chat=f"-100{c}",
            op=OutboxOp.POST,
            payload=notice_view("sla.reminder", case_id=n),
            idempotency_key=f"k:{c}:{n:04d}",
            created_at=T0,
        )
        for n in range(start, start + per_chat)
        for c in range(chat_count)
    ]


async def enqueue(db: Database, items: list[OutboxItem]) -> None:
    async with db.uow() as uow:
        await uow.outbox.enqueue_many(items)
        await uow.commit()


def worker(db: Database, transport: ChatsTransport, clock: Clock, **options: float) -> OutboxWorker:
    return OutboxWorker(
        db.uow,
        {"telegram": transport},
        clock,
        NO_JITTER,
        instance=transport.instance,
        lease_s=LEASE_S,
        shared=True,
        **options,  # type: ignore[arg-type]  # poll_interval_s
    )


def in_queue_order(chats: Chats) -> dict[str, list[str]]:
    per_chat: dict[str, list[str]] = {}
    for chat, key in chats.log:
        per_chat.setdefault(chat, []).append(key)
    return per_chat


async def test_two_instances_deliver_every_item_once_in_each_chats_order(
    instances: Instances,
) -> None:
    first, second = await instances(), await instances()
    chats = Chats()
    clock = SystemClock()
    workers = [
        worker(first, ChatsTransport(chats, "a"), clock, poll_interval_s=0.02),
        worker(second, ChatsTransport(chats, "b"), clock, poll_interval_s=0.02),
    ]
    stop = asyncio.Event()
    running = [asyncio.create_task(w.run(stop)) for w in workers]
    # 500 items over 20 chats, queued in waves while both instances deliver.
    queued: list[OutboxItem] = []
    for wave in range(10):
        batch = notices(20, 25 // 10 + (1 if wave < 25 % 10 else 0), start=len(queued) // 20)
        queued += batch
        await enqueue(first, batch)
        for w in workers:
            w.wake()
        await asyncio.sleep(0.02)
    assert len(queued) == 500
    async with asyncio.timeout(120):
        await chats.until(lambda: len(chats.log) >= len(queued))
    await asyncio.sleep(0.2)  # anything sent twice would arrive meanwhile
    stop.set()
    await asyncio.gather(*running)

    delivered = Counter(key for _, key in chats.log)
    assert delivered == Counter(item.idempotency_key for item in queued)  # each exactly once
    expected: dict[str, list[str]] = {}
    for item in queued:  # the order they were queued in, chat by chat
        expected.setdefault(item.chat, []).append(item.idempotency_key)
    assert in_queue_order(chats) == expected
    assert chats.most_at_once == 1  # one sender per chat, across instances
    # Both took part (each claims whatever the other has not: a free head is rarely left).
    assert chats.by["a"] > 0 and chats.by["b"] > 0
    assert all(w.claims_in_flight == 0 for w in workers)
    async with second.uow() as uow:
        assert await uow.outbox.depth() == 0


async def test_a_dead_instances_claims_are_taken_over_after_the_lease_and_not_before(
    instances: Instances,
) -> None:
    first, second = await instances(), await instances()
    clock = FrozenClock(T0)
    chats = Chats()
    stuck = ChatsTransport(chats, "a", hang=asyncio.Event())  # never released: it dies
    dying = worker(first, stuck, clock)
    queued = notices(3, 2)  # chats -1000..-1002, two items each
    await enqueue(first, queued)
    stop = asyncio.Event()
    running = asyncio.create_task(dying.run(stop))
    async with asyncio.timeout(30):
        await chats.until(lambda: len(stuck.started) >= 3)  # each chat's head in hand
    assert dying.claims_in_flight == 3
    watched = Metrics()
    watched.worker = dying
    assert "otklik_outbox_claims_in_flight 3.0" in watched.render(6).decode()

    # A second instance starts meanwhile: the live claims are left alone (the old recovery
    # requeued every `sending` item, and both instances sent them).
    taker = worker(second, ChatsTransport(chats, "b"), clock)
    assert await taker.recover() == 0
    async with second.uow() as uow:
        held = [await uow.outbox.get(i) for i in stuck.started]
        assert {i.status for i in held if i is not None} == {OutboxStatus.SENDING}
    assert await taker.run_once() == 0  # the chats' heads are the dead instance's: held

    # The first instance dies: nothing settled, its engine gone.
    running.cancel()
    for task in list(dying._in_flight.values()):
        task.cancel()
    await asyncio.gather(running, *dying._in_flight.values(), return_exceptions=True)
    await first.dispose()

    clock.advance(timedelta(seconds=LEASE_S - 1))
    assert await taker.run_once() == 0  # the lease still runs: not touched
    assert chats.log == [] and taker.stats.lease_expiries == 0
    # Expired claims are looked for every TAKE_OVER_CHECK: taken over by then.
    clock.advance(TAKE_OVER_CHECK)
    assert await taker.run_once() == 6  # taken over, then the rest of each chat
    assert taker.stats.lease_expiries == 3
    metrics = Metrics()  # what an operator sees of this instance
    metrics.worker = taker
    shown = metrics.render(0).decode()
    assert "otklik_outbox_lease_expiries_total 3.0" in shown
    assert "otklik_outbox_claims_in_flight 0.0" in shown
    assert Counter(key for _, key in chats.log) == Counter(i.idempotency_key for i in queued)
    expected: dict[str, list[str]] = {}
    for item in queued:
        expected.setdefault(item.chat, []).append(item.idempotency_key)
    assert in_queue_order(chats) == expected


async def test_a_claim_in_progress_holds_its_chat_even_when_the_head_changes(
    instances: Instances,
) -> None:
    """The window between reading heads and claiming: instance A claims a chat's head; before
    A commits, a more urgent item arrives, so instance B reads a different head. B must not
    claim it while A's claim is in progress, nor after A committed (A's claim is live)."""
    first, second = await instances(), await instances()
    await enqueue(first, notices(1, 1))
    lease = T0 + timedelta(seconds=LEASE_S)
    async with first.uow() as a:
        [head] = await a.outbox.due_heads(T0, 10)
        assert await a.outbox.claim_heads([head], "a", T0, lease) == {head.id}
        urgent = notices(1, 1, start=1)[0]
        await enqueue(second, [replace(urgent, urgency=10)])
        async with second.uow() as b:
            [other] = await b.outbox.due_heads(T0, 10)
            assert other.id != head.id  # B sees the urgent item as the head
            assert await b.outbox.claim_heads([other], "b", T0, lease) == set()
            await b.commit()
        await a.commit()
    async with second.uow() as b:
        [other] = await b.outbox.due_heads(T0, 10)
        assert await b.outbox.claim_heads([other], "b", T0, lease) == set()  # A's is live
        await b.commit()
    async with first.uow() as a:  # A itself may send the urgent item meanwhile, as today
        assert await a.outbox.claim_heads([other], "a", T0, lease) == {other.id}
        await a.commit()


# --- SLA timers -----------------------------------------------------------------------------


async def test_two_instances_running_the_sla_clock_at_once_fire_each_timer_once(
    instances: Instances, tmp_path: Path
) -> None:
    first, second = await instances(), await instances()
    clock = FrozenClock(T0)
    playbook = load_playbook(DEFAULT_PLAYBOOK_DIR)
    config = make_config(tmp_path, POSTGRES_URL)
    directory = Directory(config, frozenset({"telegram"}), clock)
    engine = SlaEngine(playbook, config.tz)
    cases = CaseService(
        first.uow,
        clock,
        directory,
        config.tz,
        coordination=config.coordination_department,
        sla=engine,
    )
    opened: list[int] = []
    for n in range(40):
        name, due = plan_deadlines(playbook, "housing", Priority.CRITICAL, T0, config.tz)
        opening = CaseOpening(
            "housing", Priority.CRITICAL, name, due.first_touch, due.answer, due.resolution
        )
        mention = make_mention(str(n), T0, text=f"Подъезд {n}: нет отопления, номер {n * 7919}")
        case = (await cases.intake(mention, opening)).case
        assert case is not None and case.id is not None
        opened.append(case.id)
    assert len(set(opened)) == 40
    clocks = [SlaService(db.uow, clock, directory, engine, config.tz) for db in (first, second)]
    clock.advance(16 * M)  # each critical case's 50% reminder (15 minutes) is due
    # Small chunks, so the two runs interleave over many transactions.
    fired = await asyncio.gather(*(sla.fire_due(limit=3) for sla in clocks))
    assert sum(fired) == 40
    for case_id in opened:
        thread = await cases.thread(case_id)
        assert thread is not None
        reminded = [e for e in thread.events if e.kind == EventKind.REMINDED]
        assert len(reminded) == 1, case_id  # fired once: one event
    async with first.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT case_id FROM outbox WHERE idempotency_key LIKE '%:sla:%'")
        )
        notices_per_case = Counter(int(case_id) for (case_id,) in rows.all())
    assert notices_per_case == Counter(opened)  # one notice per case


async def test_a_slow_delivery_renews_its_lease_and_is_not_taken_over(
    instances: Instances,
) -> None:
    first, second = await instances(), await instances()
    clock = FrozenClock(T0)
    chats = Chats()
    upload = asyncio.Event()
    slow = ChatsTransport(chats, "a", hang=upload)  # a large upload, still going
    sender = worker(first, slow, clock, poll_interval_s=0.01)
    await enqueue(first, notices(1, 1))
    stop = asyncio.Event()
    running = asyncio.create_task(sender.run(stop))
    async with asyncio.timeout(30):
        await chats.until(lambda: len(slow.started) == 1)
    [item_id] = slow.started
    assert await lease_of(second, item_id) == T0 + timedelta(seconds=LEASE_S)

    clock.advance(timedelta(seconds=LEASE_S / 3 + 1))  # the heartbeat is due
    renewed = T0 + timedelta(seconds=LEASE_S / 3 + 1 + LEASE_S)
    for _ in range(1000):  # the running loop renews at its next cycle (every 10 ms)
        if await lease_of(second, item_id) == renewed:
            break
        await asyncio.sleep(0.01)
    assert await lease_of(second, item_id) == renewed

    # Past the first lease, within the renewed one (the sender keeps renewing meanwhile).
    clock.set(T0 + timedelta(seconds=LEASE_S + 5))
    other = worker(second, ChatsTransport(chats, "b"), clock)
    assert await other.run_once() == 0
    assert other.stats.lease_expiries == 0
    upload.set()
    async with asyncio.timeout(30):
        await chats.until(lambda: len(chats.log) == 1)
    stop.set()
    await running
    assert chats.by == Counter({"a": 1})  # sent once, by the instance that claimed it
    assert await lease_of(second, item_id) is None  # settled: the claim is gone


async def lease_of(db: Database, item_id: int) -> datetime | None:
    async with db.engine.connect() as conn:
        found = await conn.execute(
            text("SELECT lease_until FROM outbox WHERE id = :id"), {"id": item_id}
        )
        lease = found.scalar_one()
    return None if lease is None else lease.astimezone(UTC)


async def test_an_instance_that_stalled_past_its_lease_leaves_the_take_over_alone(
    instances: Instances,
) -> None:
    first, second = await instances(), await instances()
    await enqueue(first, notices(1, 1))
    async with first.uow() as a:
        [head] = await a.outbox.due_heads(T0, 10)
        assert head.id is not None
        assert await a.outbox.claim_heads([head], "a", T0, T0 + timedelta(seconds=LEASE_S))
        await a.commit()
    later = T0 + timedelta(seconds=LEASE_S + 1)
    async with second.uow() as b:  # a's lease ran out: b takes the item over
        assert await b.outbox.requeue_in_flight(expired_at=later) == 1
        [again] = await b.outbox.due_heads(later, 10)
        assert await b.outbox.claim_heads([again], "b", later, later + timedelta(seconds=30))
        await b.commit()
    async with first.uow() as a:  # a wakes up and writes its outcome: not applied
        await a.outbox.mark_retry(head.id, later, "timeout", owner="a")
        await a.commit()
    async with second.uow() as b:
        item = await b.outbox.get(head.id)
        assert item is not None and item.status is OutboxStatus.SENDING  # still b's
        await b.outbox.mark_delivered(head.id, later, "m1", owner="b")
        await b.commit()
    async with first.uow() as a:  # nor may it put back what b delivered
        await a.outbox.mark_retry(head.id, later, "timeout", owner="a")
        await a.commit()
        item = await a.outbox.get(head.id)
        assert item is not None and item.status is OutboxStatus.DELIVERED
