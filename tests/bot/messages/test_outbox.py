"""The outbox: nothing lost across a crash, nothing posted twice, order kept per chat."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event

from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import ActionRequest
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.messages.delivery import OutboxWorker, RetryPolicy
from bot.messages.outbox import OutboxOp, OutboxStatus, PermanentFailure
from bot.model import Action, Priority
from bot.staff.directory import Directory
from store.db import Database
from tests.doubles.fakes import RecordingTransport, rate_limited
from tests.doubles.support import make_config, make_mention

NO_JITTER = RetryPolicy(base_s=1.0, cap_s=60.0, jitter=0.0)


class Node:
    """One process of Otklik: its own engine, service and worker over a shared SQLite file."""

    def __init__(
        self, tmp_path: Path, url: str, clock: FrozenClock, transport: RecordingTransport
    ) -> None:
        config = make_config(tmp_path, url)
        self.db = Database(url)
        directory = Directory(config, frozenset({transport.name}))
        self.worker = OutboxWorker(self.db.uow, {transport.name: transport}, clock, NO_JITTER)
        self.cases = CaseService(self.db.uow, clock, directory, config.tz, self.worker.wake)

    async def __aenter__(self) -> Node:
        await self.db.upgrade()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.db.dispose()

    async def statuses(self) -> list[OutboxStatus]:
        async with self.db.uow() as uow:
            return [i.status for i in [await uow.outbox.get(n) for n in range(1, 50)] if i]


async def test_failure_after_commit_is_delivered_exactly_once_after_restart(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    broken = RecordingTransport(failures=[ConnectionError("telegram is down")])
    async with Node(tmp_path, sqlite_url, clock, broken) as node:
        result = await node.cases.intake(make_mention("1", clock.now()), CaseOpening("housing"))
        assert result.case is not None
        assert await node.worker.run_once() == 1  # tried, failed, scheduled a retry
        assert broken.sent == []
        assert await node.statuses() == [OutboxStatus.PENDING]
    # The process dies here. A new one starts later on the same database.
    clock.advance(timedelta(minutes=5))
    healthy = RecordingTransport()
    async with Node(tmp_path, sqlite_url, clock, healthy) as node:
        assert await node.worker.recover() == 0
        await node.worker.run_once()
        await node.worker.run_once()
    async with Node(tmp_path, sqlite_url, clock, healthy) as node:
        await node.worker.recover()
        await node.worker.run_once()
        assert await node.statuses() == [OutboxStatus.DELIVERED]
    assert [(s.op, s.chat) for s in healthy.sent] == [(OutboxOp.POST, "-100111")]


async def test_crash_while_sending_resends_once_with_the_same_key(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    # Like a Matrix homeserver: a repeated transaction id is answered, not posted again.
    server = RecordingTransport(dedupe_by_key=True, hang=asyncio.Event())
    async with Node(tmp_path, sqlite_url, clock, server) as node:
        await node.cases.intake(make_mention("1", clock.now()), CaseOpening("housing"))
        stop = asyncio.Event()
        running = asyncio.create_task(node.worker.run(stop))
        for _ in range(200):  # until the worker has claimed the item and waits on the network
            if await node.statuses() == [OutboxStatus.SENDING]:
                break
            await asyncio.sleep(0.02)
        assert await node.statuses() == [OutboxStatus.SENDING]
        running.cancel()  # the process is killed mid-request
        await asyncio.gather(running, return_exceptions=True)
        for task in list(node.worker._in_flight.values()):
            task.cancel()
        await asyncio.sleep(0)
    server.hang = None
    async with Node(tmp_path, sqlite_url, clock, server) as node:
        assert await node.worker.recover() == 1
        await node.worker.run_once()
        assert await node.statuses() == [OutboxStatus.DELIVERED]
    assert len(server.posts()) == 1


async def test_order_is_kept_per_chat_and_other_chats_are_not_blocked(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    transport = RecordingTransport(failures=[rate_limited(after=30)])
    async with Node(tmp_path, sqlite_url, clock, transport) as node:
        first = await node.cases.intake(make_mention("1", clock.now()), CaseOpening("housing"))
        assert first.case is not None and first.case.id is not None
        spec = node.cases._directory.by_staff_id("spec")
        assert spec is not None
        await node.cases.act(first.case.id, ActionRequest(Action.TAKE), spec)
        await node.cases.intake(make_mention("2", clock.now()), CaseOpening("transport"))
        await node.worker.run_once()
        # Housing's post hit the rate limit: its edit waits behind it; transport went on.
        assert [(s.chat, s.op) for s in transport.sent] == [("-100222", OutboxOp.POST)]
        clock.advance(timedelta(seconds=29))
        await node.worker.run_once()
        assert len(transport.sent) == 1  # retry_after is honoured
        clock.advance(timedelta(seconds=1))
        await node.worker.run_once()
    # The card went out late, so it went out once, already showing who took it.
    housing = [s for s in transport.sent if s.chat == "-100111"]
    assert [s.op for s in housing] == [OutboxOp.POST]
    assert housing[0].payload["assignee_name"] == "Анна Иванова"


async def test_edits_are_coalesced_and_a_refused_item_does_not_block_its_chat(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    transport = RecordingTransport()
    async with Node(tmp_path, sqlite_url, clock, transport) as node:
        opened = await node.cases.intake(make_mention("1", clock.now()), CaseOpening("housing"))
        assert opened.case is not None and opened.case.id is not None
        case_id = opened.case.id
        await node.worker.run_once()
        directory = node.cases._directory
        spec, appr = directory.by_staff_id("spec"), directory.by_staff_id("appr")
        assert spec and appr
        await node.cases.act(case_id, ActionRequest(Action.TAKE), spec)
        await node.cases.act(case_id, ActionRequest(Action.DRAFT, text="Разбираемся"), spec)
        await node.cases.act(case_id, ActionRequest(Action.APPROVE), appr)
        await node.worker.run_once()
        edits = [s for s in transport.sent if s.op is OutboxOp.EDIT]
        assert len(edits) == 1  # three changes, one edit with the latest state
        assert edits[0].payload["case"]["state"] == "approved"  # type: ignore[index]

        transport.failures.append(PermanentFailure("Bad Request: chat not found"))
        await node.cases.act(
            case_id, ActionRequest(Action.ESCALATE, note="жалоба в прокуратуру"), spec
        )
        await node.cases.act(case_id, ActionRequest(Action.MARK_PUBLISHED), spec)
        await node.worker.run_once()
        # One message is refused for good; nothing else waits behind it.
        assert node.worker.stats.failed == 1
        statuses = await node.statuses()
        assert statuses.count(OutboxStatus.FAILED) == 1
        assert OutboxStatus.PENDING not in statuses
        await node.cases.intake(
            make_mention("2", clock.now(), author="id7"), CaseOpening("housing", Priority.CRITICAL)
        )
        await node.worker.run_once()
    assert node.worker.stats.failed == 1
    last = transport.sent[-1]
    assert last.op is OutboxOp.POST and last.payload["case"]["priority"] == "critical"  # type: ignore[index]


async def test_a_press_edit_waits_for_the_post_in_flight_instead_of_posting_again(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    # A press's edit outranks the card's post; while the post is on its way (no message id
    # recorded yet) the edit must not become a second post of the card.
    transport = RecordingTransport(hang=asyncio.Event())
    async with Node(tmp_path, sqlite_url, clock, transport) as node:
        opened = await node.cases.intake(make_mention("1", clock.now()), CaseOpening("housing"))
        assert opened.case is not None and opened.case.id is not None
        stop = asyncio.Event()
        running = asyncio.create_task(node.worker.run(stop))
        for _ in range(200):  # the post is claimed and waits on the network
            if await node.statuses() == [OutboxStatus.SENDING]:
                break
            await asyncio.sleep(0.02)
        spec = node.cases._directory.by_staff_id("spec")
        assert spec is not None
        taken = await node.cases.act(opened.case.id, ActionRequest(Action.TAKE), spec)
        assert taken.ok
        await asyncio.sleep(0.3)  # the worker looks at the edit meanwhile, and leaves it
        assert transport.sent == []
        assert transport.hang is not None
        transport.hang.set()
        for _ in range(200):
            if len(transport.sent) == 2:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await running
    assert [s.op for s in transport.sent] == [OutboxOp.POST, OutboxOp.EDIT]
    assert transport.sent[1].payload["assignee_name"] == "Анна Иванова"


async def test_deliveries_that_finish_together_are_written_down_together(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    transport = RecordingTransport()
    async with Node(tmp_path, sqlite_url, clock, transport) as node:
        for n, department in enumerate(("housing", "transport", "coordination")):
            await node.cases.intake(make_mention(str(n), clock.now()), CaseOpening(department))
        settlements: list[int] = []  # how many rows each statement recording deliveries names

        def recording(
            _conn: object, _cursor: object, sql: str, params: object, _ctx: object, many: bool
        ) -> None:
            if sql.startswith("UPDATE outbox") and "delivered_at" in sql:
                settlements.append(len(params) if many else 1)  # type: ignore[arg-type]

        engine = node.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", recording)
        try:
            assert await node.worker.run_once() == 3
        finally:
            event.remove(engine, "before_cursor_execute", recording)
        assert await node.statuses() == [OutboxStatus.DELIVERED] * 3
        # A card in each of three chats, claimed together: written down by one statement.
        assert settlements == [3]
        async with node.db.uow() as uow:
            items = [i for i in [await uow.outbox.get(n) for n in range(1, 50)] if i]
            kept = {i.chat: await uow.refs.get(i.transport, i.chat, i.ref_key or "") for i in items}
    # Each card's message id is kept: its edits go to it, not to a new post.
    assert kept == {s.chat: s.message_id for s in transport.posts()}
    assert len(kept) == 3
