"""Migration 0014 on both backends: a database at 0013 whose cases were "first touched" by
Take; after the upgrade the first reply is what the author saw (from the events), the old
moment is the reaction, and an open case that was only taken waits for its first reply again,
its timers planned at the bot's start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from bot.cases.deadlines import current_deadline
from bot.clock import FrozenClock
from bot.model import CaseState, Event
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, load_playbook
from bot.sla.engine import SlaEngine
from bot.sla.service import REPLAN_KEY, SlaService
from bot.sla.timers import TimerKind
from bot.staff.directory import Directory
from store.db import Database
from tests.doubles.support import make_config

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # Monday 10:00 in Moscow
M = timedelta(minutes=1)
DUE = T0 + 60 * M


def _case(case_id: int, state: str, touched: datetime, outcome: str | None = None) -> str:
    closed = f"'{(touched + M).strftime('%Y-%m-%d %H:%M:%S')}'" if outcome else "NULL"
    return (
        "INSERT INTO cases (id, department, state, priority, created_at, source, drill, "
        "escalation_level, sla_policy, first_touch_due_at, answer_due_at, resolution_due_at, "
        "first_touched_at, closed_at, outcome, assignee, codes, mention_count, version) VALUES "
        f"({case_id}, 'housing', '{state}', 'normal', '2026-11-23 07:00:00', 'vk', false, 0, "
        "'normal', '2026-11-23 08:00:00', '2026-11-23 11:00:00', '2026-11-26 07:00:00', "
        f"'{touched.strftime('%Y-%m-%d %H:%M:%S')}', {closed}, "
        f"{repr(outcome) if outcome else 'NULL'}, 'spec', '[]', 1, 3)"
    )


def _event(case_id: int, at: datetime, kind: str, **payload: str) -> Event:
    return Event(case_id, at, "spec", kind, CaseState.TAKEN, CaseState.TAKEN, payload)


async def test_a_case_only_taken_waits_for_its_first_reply_after_the_upgrade(
    database: Database, tmp_path: Path
) -> None:
    await database.downgrade("0013")
    async with database.engine.begin() as conn:
        for statement in (
            _case(1, "taken", T0 + 5 * M),  # only taken: the first reply is owed
            _case(2, "published", T0 + 5 * M),  # taken, then published at +40
            _case(3, "taken", T0 + 5 * M),  # taken, then written to in private at +20
            _case(4, "closed", T0 + 10 * M, "no_action"),  # closed, nobody wrote
            _case(5, "closed", T0 + 10 * M, "answered"),  # closed: the author was told
        ):
            await conn.execute(text(statement))
    async with database.uow() as uow:
        await uow.events.append(
            [
                _event(1, T0 + 5 * M, "take"),
                _event(2, T0 + 5 * M, "take"),
                _event(2, T0 + 40 * M, "publish", version="1"),
                _event(3, T0 + 5 * M, "take"),
                _event(3, T0 + 20 * M, "wait_for_author", reason="moved_to_private"),
                _event(4, T0 + 10 * M, "close", outcome="no_action"),
                _event(5, T0 + 10 * M, "close", outcome="answered"),
            ]
        )
        await uow.commit()

    await database.upgrade()

    async with database.uow() as uow:
        cases = await uow.cases.get_many([1, 2, 3, 4, 5])
        replan = await uow.kv.get(REPLAN_KEY)
    assert {i: c.first_touched_at for i, c in cases.items()} == {
        1: None,
        2: T0 + 40 * M,
        3: T0 + 20 * M,
        4: None,
        5: T0 + 10 * M,
    }
    # The old moment is kept as the reaction; no reaction deadline existed before.
    assert {i: c.reacted_at for i, c in cases.items()} == {
        1: T0 + 5 * M,
        2: T0 + 5 * M,
        3: T0 + 5 * M,
        4: T0 + 10 * M,
        5: T0 + 10 * M,
    }
    assert all(c.reaction_due_at is None for c in cases.values())
    assert replan == "[1]"  # open and now waiting for a first reply
    assert current_deadline(cases[1]) == ("first_touch", DUE)

    # The bot's start plans what the migration could not: the first reply's breach is back.
    playbook = load_playbook(DEFAULT_PLAYBOOK_DIR)
    config = make_config(tmp_path, database.url)
    clock = FrozenClock(T0 + 30 * M)
    directory = Directory(config, frozenset({"telegram"}), clock)
    sla = SlaService(database.uow, clock, directory, SlaEngine(playbook, config.tz), config.tz)
    assert await sla.replan_marked() == 1
    async with database.uow() as uow:
        pending = (await uow.timers.pending_for([1])).get(1, [])
        assert await uow.kv.get(REPLAN_KEY) == "[]"
    breach = [t for t in pending if t.kind is TimerKind.BREACH]
    assert [(t.payload["deadline"], t.due_at) for t in breach] == [("first_touch", DUE)]
    assert await sla.replan_marked() == 0  # once

    # Rolling back gives the old meaning back: the first press met the first touch.
    await database.downgrade("0013")
    async with database.engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, first_touched_at FROM cases ORDER BY id"))
        touched = [(i, at is not None) for i, at in rows]
    assert touched == [(1, True), (2, True), (3, True), (4, True), (5, True)]
