"""The SLA clock that acts, over a real database with a fake clock: reminders, breaches,
escalation chains (steps, repeats, windows, /escalate, stop_on), pause and resume, follow-up."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.cases.deadlines import current_deadline
from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import ActionRequest
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.messages.outbox import OutboxItem, OutboxOp
from bot.messages.views import card_ref
from bot.model import (
    Action,
    Case,
    CaseState,
    EventKind,
    GlobalRole,
    Outcome,
    Priority,
    WaitReason,
)
from bot.settings.escalation_rules import EscalationStep
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, load_playbook
from bot.sla.calendar import add_working_time, plan_deadlines, working_time_between
from bot.sla.engine import SlaEngine
from bot.sla.service import SlaService
from bot.sla.timers import TimerKind
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from store.db import Database
from tests.doubles.support import make_config, make_mention

PLAYBOOK = load_playbook(DEFAULT_PLAYBOOK_DIR)
MOSCOW = ZoneInfo("Europe/Moscow")
M = timedelta(minutes=1)
HOUSING_CHAT = "-100111"
COORDINATION_CHAT = "-100999"


@dataclass
class World:
    cases: CaseService
    sla: SlaService
    engine: SlaEngine
    directory: Directory
    database: Database
    clock: FrozenClock

    def actor(self, staff_id: str) -> Actor:
        actor = self.directory.by_staff_id(staff_id)
        assert actor is not None
        return actor

    async def open(self, external_id: str = "1", priority: Priority = Priority.CRITICAL) -> Case:
        now = self.clock.now()
        name, due = plan_deadlines(PLAYBOOK, "housing", priority, now, MOSCOW)
        opening = CaseOpening(
            "housing",
            priority,
            name,
            due.first_touch,
            due.answer,
            due.resolution,
        )
        result = await self.cases.intake(make_mention(external_id, now), opening)
        assert result.case is not None
        return result.case

    async def act(self, case: Case, staff_id: str, action: Action, **fields: Any) -> Case:
        assert case.id is not None
        result = await self.cases.act(
            case.id, ActionRequest(action, **fields), self.actor(staff_id)
        )
        assert result.ok, result.error
        assert result.case is not None
        return result.case

    async def at(self, delta: timedelta, since: datetime) -> int:
        """Move the clock to `since + delta` and fire what is due."""
        self.clock.set(since + delta)
        return await self.sla.fire_due()

    async def outbox(self) -> list[OutboxItem]:
        async with self.database.uow() as uow:
            items = [await uow.outbox.get(n) for n in range(1, 400)]
        return [i for i in items if i is not None]

    async def sla_messages(self) -> list[OutboxItem]:
        return [i for i in await self.outbox() if i.idempotency_key.split(":")[2] == "sla"]

    async def card(self, ref: str) -> dict[str, Any]:
        """The card as it will show: edits fold into a post that has not gone out yet."""
        shown = [i for i in await self.outbox() if i.ref_key == ref and i.op is not OutboxOp.REPLY]
        return shown[-1].payload

    async def pending(self, case: Case) -> list[Any]:
        assert case.id is not None
        async with self.database.uow() as uow:
            return (await uow.timers.pending_for([case.id])).get(case.id, [])

    async def events(self, case: Case, kind: str) -> list[dict[str, Any]]:
        assert case.id is not None
        thread = await self.cases.thread(case.id)
        assert thread is not None
        return [e.payload for e in thread.events if e.kind == kind]


@pytest.fixture
async def world(tmp_path: Path, database: Database, clock: FrozenClock) -> World:
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram"}), clock)
    engine = SlaEngine(PLAYBOOK, config.tz)
    cases = CaseService(
        database.uow,
        clock,
        directory,
        config.tz,
        coordination=config.coordination_department,
        sla=engine,
    )
    sla = SlaService(database.uow, clock, directory, engine, config.tz)
    return World(cases, sla, engine, directory, database, clock)


def keys(items: list[OutboxItem]) -> list[tuple[str, str, str | None]]:
    return [(i.chat, i.payload.get("key", ""), i.reply_to_key) for i in items]


# --- reminders and breach ------------------------------------------------------------------


async def test_every_reminder_fires_once_as_a_reply_under_the_card(world: World) -> None:
    # critical: first reply in 30 minutes round the clock; reminders 50%, 80% and -10m.
    opened = world.clock.now()
    case = await world.open()
    assert case.id is not None
    card = card_ref(case.id, "housing")
    pending = {t.kind: t for t in await world.pending(case)}
    assert set(pending) == {TimerKind.REMINDER, TimerKind.BREACH}
    assert await world.at(14 * M, opened) == 0
    assert await world.at(16 * M, opened) == 1  # 50%
    assert await world.sla.fire_due() == 0  # nothing twice
    assert await world.at(25 * M, opened) == 2  # -10m (20 min) and 80% (24 min)
    messages = await world.sla_messages()
    assert keys(messages) == [(HOUSING_CHAT, "sla.reminder", card)] * 3
    assert all(m.op is OutboxOp.REPLY and m.thread == "7" for m in messages)
    points = [e["point"] for e in await world.events(case, EventKind.REMINDED)]
    assert points == ["50%", "-10m", "80%"]
    # The card is edited: it shows the deadline and the latest reminder.
    shown = await world.card(card)
    assert shown["sla"]["key"] == "sla.card_due"
    assert shown["sla"]["reminder"] == "80%"

    # The deadline passes: a breach notice, the card says overdue.
    assert await world.at(30 * M, opened) >= 1
    breached = [m for m in await world.sla_messages() if m.payload["key"] == "sla.breached"]
    assert keys(breached) == [(HOUSING_CHAT, "sla.breached", card)]
    assert (await world.card(card))["sla"]["key"] == "sla.card_overdue"


async def test_a_new_deadline_gets_its_own_reminders(world: World) -> None:
    opened = world.clock.now()
    case = await world.open()
    await world.at(16 * M, opened)
    case = await world.act(case, "spec", Action.TAKE)  # a reaction: the first reply is owed
    assert current_deadline(case) == ("first_touch", case.first_touch_due_at)
    case = await world.act(
        case, "spec", Action.WAIT_FOR_AUTHOR, wait_reason=WaitReason.MOVED_TO_PRIVATE
    )  # written to in private (critical: the clock does not stop): the answer is next
    phase = current_deadline(case)
    assert phase is not None and phase[0] == "answer"
    pending = [t for t in await world.pending(case) if t.kind is not TimerKind.FOLLOW_UP]
    assert {t.payload["deadline"] for t in pending} == {"answer"}
    # 2h answer: 50% at 1h, -10m at 1h50, 80% at 1h36, breach at 2h.
    assert sorted(t.due_at - opened for t in pending) == [60 * M, 96 * M, 110 * M, 120 * M]


# --- escalation ----------------------------------------------------------------------------


async def test_escalation_steps_repeat_and_climb(world: World) -> None:
    # critical chain: level 1 to the head of department and the duty officer at once, repeated
    # every 10 minutes twice; level 2 to leadership and coordination 20 minutes later.
    opened = world.clock.now()
    case = await world.open()
    assert case.id is not None
    card = card_ref(case.id, "housing")
    await world.at(30 * M, opened)  # breach + level 1
    stored = await world.cases.get(case.id)
    assert stored is not None and stored.escalation_level == 1
    notices = [m for m in await world.sla_messages() if m.payload["key"] == "escalation.auto"]
    assert [(m.chat, m.op, m.reply_to_key, m.payload["params"]["who"]) for m in notices] == [
        (HOUSING_CHAT, OutboxOp.REPLY, card, "Глеб Смирнов"),  # the department's lead
        (COORDINATION_CHAT, OutboxOp.POST, None, "Дарья Морозова"),  # who is on duty
    ]
    await world.at(40 * M, opened)  # repeat 1
    await world.at(50 * M, opened)  # repeat 2
    await world.at(69 * M, opened)
    escalated = await world.events(case, EventKind.ESCALATED)
    assert [(e["level"], e["repeat"]) for e in escalated] == [(1, 0), (1, 1), (1, 2)]
    await world.at(70 * M, opened)  # level 2, 20 minutes after the last repeat
    escalated = await world.events(case, EventKind.ESCALATED)
    assert [(e["level"], e["repeat"]) for e in escalated][-1] == (2, 0)
    stored = await world.cases.get(case.id)
    assert stored is not None and stored.escalation_level == 2
    assert await world.sla.fire_due() == 0
    level2 = [m for m in await world.sla_messages() if m.payload["params"].get("level") == 2]
    # leadership and coordination share the coordination chat: one notice there.
    assert [(m.chat, m.payload["key"]) for m in level2] == [(COORDINATION_CHAT, "escalation.auto")]


async def test_manual_escalation_moves_the_chain_on(world: World) -> None:
    # critical chain: level 1 after the breach, then /escalate by hand to level 2.
    opened = world.clock.now()
    case = await world.open()
    await world.at(30 * M, opened)  # breach: level 1
    case = await world.act(case, "duty", Action.ESCALATE, note="goes viral")
    assert case.escalation_level == 2
    pending = [t for t in await world.pending(case) if t.kind is TimerKind.ESCALATION]
    # Level 1's repeats are gone; the critical chain has no level 3: nothing more to chase.
    assert pending == []
    await world.at(3 * 60 * M, opened)
    levels = [e["level"] for e in await world.events(case, EventKind.ESCALATED)]
    assert levels == [1]  # no automatic notice for the level reached by hand


async def test_manual_escalation_on_a_longer_chain_goes_to_the_next_level(world: World) -> None:
    # normal: working calendar and the standard chain (lead, duty, leadership in 08-22).
    world.clock.set(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))  # Monday 10:00 in Moscow
    opened = world.clock.now()
    case = await world.open(priority=Priority.NORMAL)
    assert case.first_touch_due_at is not None
    await world.at(case.first_touch_due_at - opened, opened)  # breach: level 1 at once
    case = await world.act(case, "duty", Action.ESCALATE)
    assert case.escalation_level == 2
    (timer,) = [t for t in await world.pending(case) if t.kind is TimerKind.ESCALATION]
    assert (timer.payload["level"], timer.payload["repeat"]) == (3, 0)
    assert timer.due_at == world.clock.now() + 60 * M  # level 3 waits its hour


async def test_stop_on_ends_the_chase(world: World) -> None:
    world.clock.set(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))  # Monday 10:00 in Moscow
    opened = world.clock.now()
    case = await world.open(priority=Priority.NORMAL)
    case = await world.act(case, "spec", Action.TAKE)
    # The author is asked and answers at once: the first reply is met, no time paused.
    case = await world.act(
        case, "spec", Action.WAIT_FOR_AUTHOR, wait_reason=WaitReason.DETAILS_REQUESTED
    )
    case = await world.act(case, "spec", Action.AUTHOR_REPLIED)
    assert case.answer_due_at is not None
    await world.at(case.answer_due_at - opened, opened)  # the answer is late: level 1
    assert [t.kind for t in await world.pending(case)] == [TimerKind.ESCALATION]
    case = await world.act(case, "spec", Action.DRAFT, text="Ответ")  # draft is in stop_on
    assert await world.pending(case) == []
    assert await world.at(10 * 60 * M, opened) == 0
    assert [e["level"] for e in await world.events(case, EventKind.ESCALATED)] == [1]


async def test_a_chase_that_stops_on_approve_goes_on_until_the_last_tier(world: World) -> None:
    world.cases = CaseService(
        world.database.uow,
        world.clock,
        world.directory,
        MOSCOW,
        coordination="coordination",
        sla=world.engine,
        approval=PLAYBOOK.approval,  # critical: department, press secretary, leadership
    )
    world.clock.set(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))  # Monday 10:00 in Moscow
    opened = world.clock.now()
    case = await world.open(priority=Priority.CRITICAL)  # its chain stops on approve
    case = await world.act(case, "spec", Action.DRAFT, text="Ответ")
    assert case.first_touch_due_at is not None
    await world.at(case.first_touch_due_at - opened, opened)  # late: the chase begins
    assert TimerKind.ESCALATION in [t.kind for t in await world.pending(case)]
    assert case.id is not None
    press = Actor("press", "Пресс", global_roles=frozenset({GlobalRole.PRESS_SECRETARY}))
    boss = Actor("boss", "Глава", global_roles=frozenset({GlobalRole.LEADERSHIP}))
    for reviewer in (world.actor("appr"), press):
        result = await world.cases.act(case.id, ActionRequest(Action.APPROVE), reviewer)
        assert result.case is not None and result.case.state is CaseState.AWAITING_APPROVAL
        assert TimerKind.ESCALATION in [t.kind for t in await world.pending(case)]
    result = await world.cases.act(case.id, ActionRequest(Action.APPROVE), boss)
    assert result.case is not None and result.case.state is CaseState.APPROVED
    assert TimerKind.ESCALATION not in [t.kind for t in await world.pending(case)]


def test_a_notice_outside_its_window_waits_for_it() -> None:
    engine = SlaEngine(PLAYBOOK, MOSCOW)
    step = EscalationStep.model_validate(
        {"level": 3, "notify": "leadership", "window": "08:00-22:00"}
    )
    late = datetime(2026, 11, 23, 23, 30, tzinfo=MOSCOW)
    assert engine.in_window(step, late) == datetime(2026, 11, 24, 8, 0, tzinfo=MOSCOW)
    early = datetime(2026, 11, 24, 6, 0, tzinfo=MOSCOW)
    assert engine.in_window(step, early) == datetime(2026, 11, 24, 8, 0, tzinfo=MOSCOW)
    inside = datetime(2026, 11, 24, 12, 0, tzinfo=MOSCOW)
    assert engine.in_window(step, inside) == inside


# --- pause and resume ----------------------------------------------------------------------


async def test_waiting_for_the_author_pauses_the_clock_by_working_time(world: World) -> None:
    # normal, working calendar: wait on Friday afternoon, the author answers on Monday.
    world.clock.set(datetime(2026, 11, 20, 8, 0, tzinfo=UTC))  # Friday 11:00 in Moscow
    case = await world.open(priority=Priority.NORMAL)
    case = await world.act(case, "spec", Action.TAKE)
    waited_at = world.clock.now()
    case = await world.act(
        case, "spec", Action.WAIT_FOR_AUTHOR, wait_reason=WaitReason.DETAILS_REQUESTED
    )
    assert case.waiting_since == waited_at
    assert await world.pending(case) == []  # no reminders while the clock stands
    assert case.answer_due_at is not None and case.resolution_due_at is not None
    before = (case.answer_due_at, case.resolution_due_at)

    world.clock.set(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))  # Monday 11:00
    result = await world.cases.author_answered(case.id or 0)
    assert result.ok and result.case is not None
    resumed = result.case
    calendar = PLAYBOOK.calendar("working")
    paused = working_time_between(calendar, waited_at, world.clock.now(), MOSCOW)
    assert paused == timedelta(hours=7)  # Fri 11:00-16:45 less lunch, Monday 09:00-11:00
    assert resumed.waiting_since is None
    assert resumed.answer_due_at == add_working_time(calendar, before[0], paused, MOSCOW)
    assert resumed.resolution_due_at == add_working_time(calendar, before[1], paused, MOSCOW)
    assert resumed.first_touch_due_at == case.first_touch_due_at  # met: it stays
    assert {t.payload["deadline"] for t in await world.pending(resumed)} == {"answer"}
    assert [e.get("waiting_since") for e in await world.events(resumed, "author_replied")] == [
        waited_at.isoformat()
    ]


async def test_a_new_mention_from_the_waiting_author_resumes_the_clock(world: World) -> None:
    world.clock.set(datetime(2026, 11, 20, 8, 0, tzinfo=UTC))  # Friday 11:00 in Moscow
    start = world.clock.now()
    first = replace(make_mention("10", start, author="citizen"), reply_to_url="https://vk.com/p1")
    name, due = plan_deadlines(PLAYBOOK, "housing", Priority.NORMAL, start, MOSCOW)
    opening = CaseOpening("housing", Priority.NORMAL, name, due.first_touch, due.answer, None)
    opened = (await world.cases.intake(first, opening)).case
    assert opened is not None
    case = await world.act(opened, "spec", Action.TAKE)
    case = await world.act(
        case, "spec", Action.WAIT_FOR_AUTHOR, wait_reason=WaitReason.MOVED_TO_PRIVATE
    )
    assert case.waiting_since is not None

    # Someone else comments under the same post: the case grows, the clock still stands.
    world.clock.set(start + timedelta(hours=1))
    other = replace(
        make_mention("11", world.clock.now(), author="neighbour"), reply_to_url="https://vk.com/p1"
    )
    joined = (await world.cases.intake(other, opening)).case
    assert joined is not None and joined.id == case.id
    assert joined.mention_count == 2 and joined.waiting_since is not None

    # The author writes again: it joins the case and the clock resumes.
    world.clock.set(start + timedelta(hours=2))
    again = make_mention("12", world.clock.now(), author="citizen")
    resumed = (await world.cases.intake(again, opening)).case
    assert resumed is not None and resumed.id == case.id
    assert resumed.mention_count == 3
    assert resumed.waiting_since is None
    assert len(await world.events(resumed, "author_replied")) == 1


async def test_critical_cases_do_not_pause(world: World) -> None:
    case = await world.open()
    case = await world.act(case, "spec", Action.TAKE)
    due = case.answer_due_at
    case = await world.act(
        case, "spec", Action.WAIT_FOR_AUTHOR, wait_reason=WaitReason.DETAILS_REQUESTED
    )
    assert await world.pending(case) != []  # reminders go on
    world.clock.advance(60 * M)
    case = await world.act(case, "spec", Action.AUTHOR_REPLIED)
    assert case.answer_due_at == due


async def test_a_reopened_case_gets_fresh_deadlines_and_no_instant_breach(world: World) -> None:
    case = await world.open(priority=Priority.NORMAL)
    case = await world.act(case, "spec", Action.TAKE)
    case = await world.act(case, "lead", Action.CLOSE, outcome=Outcome.ANSWERED)
    assert await world.pending(case) == []  # a closed case has no clock

    world.clock.advance(7 * 24 * 60 * M)  # the author comes back a week later
    reopened = await world.act(case, "lead", Action.REOPEN, note="not solved")
    now = world.clock.now()
    name, due = plan_deadlines(PLAYBOOK, "housing", Priority.NORMAL, now, MOSCOW)
    assert reopened.sla_policy == name
    assert (reopened.first_touch_due_at, reopened.answer_due_at) == (due.first_touch, due.answer)
    assert reopened.resolution_due_at == due.resolution
    assert await world.sla.fire_due() == 0  # nothing overdue at the moment of reopening
    pending = await world.pending(reopened)
    assert pending and all(t.due_at > now for t in pending)


# --- follow-up -----------------------------------------------------------------------------


async def test_follow_up_after_moving_to_private_done_or_still_open(world: World) -> None:
    start = world.clock.now()
    case = await world.open()
    assert case.id is not None
    card = card_ref(case.id, "housing")
    case = await world.act(case, "spec", Action.TAKE)
    case = await world.act(
        case, "spec", Action.WAIT_FOR_AUTHOR, wait_reason=WaitReason.MOVED_TO_PRIVATE
    )
    assert case.follow_up_due_at == world.clock.now() + timedelta(days=2)  # the default
    asked_at = world.clock.now()
    await world.at(timedelta(days=2), asked_at)
    asks = [m for m in await world.sla_messages() if m.payload["key"] == "follow_up.ask"]
    assert keys(asks) == [(HOUSING_CHAT, "follow_up.ask", card)]
    # The card carries both answers as buttons.
    assert {"follow_up_done", "follow_up_later"} <= set((await world.card(card))["actions"])

    case = await world.act(case, "spec", Action.FOLLOW_UP_LATER)  # still open
    assert case.follow_up_due_at == world.clock.now() + timedelta(days=2)
    await world.at(timedelta(days=4), asked_at)
    asks = [m for m in await world.sla_messages() if m.payload["key"] == "follow_up.ask"]
    assert len(asks) == 2
    case = await world.act(case, "spec", Action.FOLLOW_UP_DONE)
    assert case.state is CaseState.CLOSED
    assert await world.pending(case) == []
    assert start < world.clock.now()


# --- the bulk outbox write the clock uses --------------------------------------------------


async def test_enqueue_many_behaves_like_enqueue(database: Database, clock: FrozenClock) -> None:
    def item(key: str, op: OutboxOp, ref: str | None, text: str) -> OutboxItem:
        return OutboxItem(
            "telegram",
            "-1",
            op,
            {"view": "notice", "text": text},
            key,
            ref_key=ref,
            created_at=clock.now(),
        )

    async with database.uow() as uow:
        assert (
            await uow.outbox.enqueue(
                [
                    item("a:post", OutboxOp.POST, "card:a", "a1"),
                    item("b:edit", OutboxOp.EDIT, "card:b", "b1"),
                ]
            )
            == 2
        )
        await uow.commit()
    async with database.uow() as uow:
        queued = await uow.outbox.enqueue_many(
            [
                item("a:post", OutboxOp.POST, "card:a", "again"),  # a known key: skipped
                item("a:edit", OutboxOp.EDIT, "card:a", "a2"),  # folds into the waiting post
                item("b:edit2", OutboxOp.EDIT, "card:b", "b2"),  # folds into the waiting edit
                item("r:1", OutboxOp.REPLY, None, "reply"),
            ]
        )
        await uow.commit()
    assert queued == 1
    async with database.uow() as uow:
        rows = [await uow.outbox.get(n) for n in range(1, 10)]
    shown = [(i.idempotency_key, i.status.value, i.payload["text"]) for i in rows if i]
    assert shown == [
        ("a:post", "pending", "a2"),
        ("b:edit", "pending", "b2"),  # the newest content, where the waiting edit stood
        ("r:1", "pending", "reply"),
    ]
