"""Migration 0021 (mention bands, a case's spread): down and up again on both backends, a
case opened before it keeps its data, and the band rows make a round trip."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select

from bot.cases.grouping import CaseOpening
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.staff.directory import Directory
from store.db import Database, alembic_config
from store.models import MentionBandRow
from tests.doubles.support import make_config, make_mention

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


async def tables_and_case_columns(database: Database) -> tuple[set[str], set[str]]:
    async with database.engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        columns = await conn.run_sync(lambda c: inspect(c).get_columns("cases"))
    return tables, {c["name"] for c in columns}


async def test_down_and_up_again(database: Database) -> None:
    await database.downgrade("0020")
    tables, columns = await tables_and_case_columns(database)
    assert "mention_bands" not in tables and "similar_count" not in columns
    await database.upgrade()
    tables, columns = await tables_and_case_columns(database)
    assert "mention_bands" in tables
    assert {"similar_count", "people_count", "last_mention_at", "sources"} <= columns
    assert await database.current_revision() == HEAD


async def test_bands_round_trip_by_keyed_hash(
    database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    config = make_config(tmp_path, database.url)
    cases = CaseService(database.uow, clock, Directory(config, frozenset({"telegram"})), config.tz)
    now = clock.now()
    got = await cases.intake(make_mention("m1", now, text="Автобус 42"), CaseOpening("transport"))
    assert got.case is not None and got.case.id is not None
    assert got.mention is not None and got.mention.id is not None
    case_id, mention_id = got.case.id, got.mention.id
    async with database.uow() as uow:
        await uow.links.add_bands(
            [(mention_id, "transport", "0:1.2", now), (mention_id, "transport", "1:3.4", now)],
            prune_before=now - timedelta(hours=6),
        )
        await uow.commit()
    async with database.engine.connect() as conn:
        hashes = set((await conn.execute(select(MentionBandRow.band_hash))).scalars())
    assert len(hashes) == 2 and "0:1.2" not in hashes  # keyed hashes, not the bands
    async with database.reader() as uow:
        found = await uow.links.similar_open(
            {("transport", "0:1.2"), ("housing", "1:3.4"), ("transport", "9:9.9")},
            now - timedelta(hours=1),
            per_band=8,
        )
        later = await uow.links.similar_open(
            {("transport", "0:1.2")}, now + timedelta(hours=1), per_band=8
        )
        (again,) = (await uow.cases.get_many([case_id])).values()
    assert [(c.mention_id, c.case_id, c.band, c.text) for c in found] == [
        (mention_id, case_id, "0:1.2", "Автобус 42")
    ]
    assert later == []  # outside the window
    assert (again.similar_count, again.people_count, again.sources) == (0, 1, ("vk",))
