"""The optional reaction deadline (sla.yaml `reaction`), over a real database with a script
clock: it reminds, breaches and escalates like the others when a policy sets it, runs beside
the first-reply deadline (Take meets the reaction, not the first reply), and does not exist
when the policy leaves it out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.cases.cards import card_view
from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import ActionRequest
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.messages.outbox import OutboxItem
from bot.model import Action, Case, EventKind, Priority
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, Playbook, load_playbook
from bot.sla.calendar import plan_deadlines
from bot.sla.engine import SlaEngine
from bot.sla.service import SlaService
from bot.sla.timers import TimerKind
from bot.staff.directory import Directory
from store.db import Database
from tests.doubles.support import make_config, make_mention

M = timedelta(minutes=1)
T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # Monday 10:00 in Moscow


def playbook_with(reaction: timedelta | None) -> Playbook:
    """The shipped playbook, its critical policy (24x7: first reply 30m, reminders 50%, 80%,
    -10m, the critical chain) with this reaction deadline."""
    playbook = load_playbook(DEFAULT_PLAYBOOK_DIR)
    policies = dict(playbook.sla.policies)
    policies["critical"] = policies["critical"].model_copy(update={"reaction": reaction})
    sla = playbook.sla.model_copy(update={"policies": policies})
    return playbook.model_copy(update={"sla": sla})


class Clockwork:
    def __init__(self, database: Database, tmp_path: Path, playbook: Playbook) -> None:
        config = make_config(tmp_path, database.url)
        self.tz = config.tz
        self.clock = FrozenClock(T0)
        self.directory = Directory(config, frozenset({"telegram"}), self.clock)
        engine = SlaEngine(playbook, config.tz)
        self.playbook = playbook
        self.database = database
        self.cases = CaseService(
            database.uow,
            self.clock,
            self.directory,
            config.tz,
            coordination=config.coordination_department,
            sla=engine,
        )
        self.sla = SlaService(database.uow, self.clock, self.directory, engine, config.tz)

    async def open(self) -> Case:
        name, due = plan_deadlines(self.playbook, "housing", Priority.CRITICAL, T0, self.tz)
        opening = CaseOpening(
            "housing",
            Priority.CRITICAL,
            name,
            due.first_touch,
            due.answer,
            due.resolution,
            reaction_due_at=due.reaction,
        )
        result = await self.cases.intake(make_mention("1", T0), opening)
        assert result.case is not None
        return result.case

    async def take(self, case: Case) -> Case:
        assert case.id is not None
        actor = self.directory.by_staff_id("spec")
        assert actor is not None
        result = await self.cases.act(case.id, ActionRequest(Action.TAKE), actor)
        assert result.ok and result.case is not None
        return result.case

    async def until(self, minutes: int) -> int:
        self.clock.set(T0 + minutes * M)
        return await self.sla.fire_due()

    async def deadlines(self, case: Case) -> set[tuple[str, TimerKind]]:
        assert case.id is not None
        async with self.database.uow() as uow:
            pending = (await uow.timers.pending_for([case.id])).get(case.id, [])
        return {(t.payload["deadline"], t.kind) for t in pending if "deadline" in t.payload}

    async def notices(self) -> list[tuple[str, str | None]]:
        async with self.database.uow() as uow:
            items = [await uow.outbox.get(n) for n in range(1, 200)]
        sla = [i for i in items if isinstance(i, OutboxItem) and ":sla:" in i.idempotency_key]
        return [(i.payload["key"], i.payload["params"].get("kind")) for i in sla]

    async def reminded(self, case: Case) -> list[tuple[str, str]]:
        assert case.id is not None
        thread = await self.cases.thread(case.id)
        assert thread is not None
        return [
            (e.payload["deadline"], e.payload["point"])
            for e in thread.events
            if e.kind == EventKind.REMINDED
        ]


async def test_a_reaction_deadline_reminds_breaches_and_escalates_when_nobody_takes(
    database: Database, tmp_path: Path
) -> None:
    world = Clockwork(database, tmp_path, playbook_with(10 * M))
    case = await world.open()
    assert case.reaction_due_at == T0 + 10 * M
    assert await world.deadlines(case) == {
        ("reaction", TimerKind.REMINDER),
        ("reaction", TimerKind.BREACH),
        ("first_touch", TimerKind.REMINDER),
        ("first_touch", TimerKind.BREACH),
    }
    await world.until(10)  # 50% (5m), 80% (8m), then the breach and the chain's level 1
    assert await world.reminded(case) == [
        ("reaction", "50%"),
        ("reaction", "80%"),
        ("reaction", "breach"),
    ]
    notices = await world.notices()
    assert ("sla.breached", "reaction") in notices
    assert ("escalation.auto", "reaction") in notices
    stored = await world.cases.get(case.id or 0)
    assert stored is not None and stored.escalation_level == 1

    # Taking it ends the reaction's clock; the first reply's goes on.
    case = await world.take(stored)
    assert {d for d, _ in await world.deadlines(case)} == {"first_touch"}


async def test_take_meets_the_reaction_and_the_first_reply_still_fires(
    database: Database, tmp_path: Path
) -> None:
    world = Clockwork(database, tmp_path, playbook_with(10 * M))
    case = await world.open()
    await world.until(3)
    case = await world.take(case)
    assert case.reacted_at == T0 + 3 * M and case.first_touched_at is None
    await world.until(30)
    assert [d for d, _ in await world.reminded(case)] == ["first_touch"] * 4  # 3 points, breach
    assert ("sla.breached", "first_touch") in await world.notices()
    assert all(kind != "reaction" for _, kind in await world.notices())


async def test_without_a_reaction_deadline_there_is_no_reaction_clock(
    database: Database, tmp_path: Path
) -> None:
    world = Clockwork(database, tmp_path, playbook_with(None))
    case = await world.open()
    assert case.reaction_due_at is None
    assert {d for d, _ in await world.deadlines(case)} == {"first_touch"}
    await world.until(30)
    assert {d for d, _ in await world.reminded(case)} == {"first_touch"}
    assert all(kind != "reaction" for _, kind in await world.notices())


async def test_the_card_shows_the_reaction_until_somebody_takes_the_case(
    database: Database, tmp_path: Path
) -> None:
    world = Clockwork(database, tmp_path, playbook_with(10 * M))
    case = await world.open()
    thread = await world.cases.thread(case.id or 0)
    assert thread is not None
    line = card_view(case, thread.mentions[0], None, world.directory, world.tz)["sla"]
    assert line is not None and line["params"]["kind"] == "reaction"
    case = await world.take(case)
    line = card_view(case, thread.mentions[0], None, world.directory, world.tz)["sla"]
    assert line is not None and line["params"]["kind"] == "first_touch"
