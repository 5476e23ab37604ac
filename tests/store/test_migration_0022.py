"""Migration 0022 (a cluster's answer as it goes out): down and up again on both backends; a
case from before it shows no count and waits for nothing by hand."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from bot.cases import publication
from bot.cases.grouping import CaseOpening
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.staff.directory import Directory
from store.db import Database, alembic_config
from tests.doubles.support import make_config, make_mention

COLUMNS = {"answer_targets", "answers_delivered", "hand_due", "hand_published", "hand_marked_upto"}

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


async def case_columns(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        columns = await conn.run_sync(lambda c: inspect(c).get_columns("cases"))
    return {c["name"] for c in columns}


async def test_down_and_up_again_keeps_cases(
    database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    config = make_config(tmp_path, database.url)
    cases = CaseService(database.uow, clock, Directory(config), config.tz)
    opened = await cases.intake(make_mention("1", clock.now()), CaseOpening("housing"))
    assert opened.case is not None and opened.case.id is not None

    await database.downgrade("0021")
    assert not COLUMNS & await case_columns(database)
    await database.upgrade()
    assert await case_columns(database) >= COLUMNS
    assert await database.current_revision() == HEAD
    case = await cases.get(opened.case.id)
    assert case is not None and case.mention_count == 1
    assert (case.answer_targets, case.hand_due, case.hand_published) == (0, 0, 0)
    assert publication.facts(case) is None
