"""Similar-mention candidates (repos/links.py similar_open): for a band shared by many
mentions, its newest few in open cases of the department, on both backends alike."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from bot.cases.grouping import CaseOpening
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.model import CaseState
from bot.staff.directory import Directory
from store.db import Database
from store.models import CaseRow
from tests.doubles.support import make_config, make_mention

SHARED = "3:77.12"  # a band every mention below has, as a storm's wordings share theirs
PER_BAND = 3


async def test_a_band_shared_by_many_gives_its_newest_mentions_in_open_cases(
    database: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    config = make_config(tmp_path, database.url)
    cases = CaseService(database.uow, clock, Directory(config, frozenset({"telegram"})), config.tz)
    opened: list[tuple[int, int]] = []  # (mention, case), oldest first
    for n in range(12):
        got = await cases.intake(
            make_mention(f"m{n}", clock.now(), text=f"Жалоба {n}"), CaseOpening("transport")
        )
        assert got.case is not None and got.case.id is not None
        assert got.mention is not None and got.mention.id is not None
        opened.append((got.mention.id, got.case.id))
        own = f"{n}:{n}.{n}"  # and one band of its own
        async with database.uow() as uow:
            await uow.links.add_bands(
                [
                    (got.mention.id, "transport", SHARED, clock.now()),
                    (got.mention.id, "transport", own, clock.now()),
                ],
                prune_before=clock.now() - timedelta(hours=6),
            )
            await uow.commit()
        clock.advance(timedelta(seconds=30))
    # The two newest are closed: the next newest open ones stand in for them.
    closed = [case_id for _, case_id in opened[-2:]]
    async with database.engine.begin() as conn:
        await conn.execute(
            update(CaseRow).where(CaseRow.id.in_(closed)).values(state=CaseState.CLOSED.value)
        )
    async with database.reader() as uow:
        found = await uow.links.similar_open(
            {("transport", SHARED), ("transport", "0:0.0"), ("housing", SHARED)},
            clock.now() - timedelta(hours=1),
            per_band=PER_BAND,
        )
    by_band = sorted((c.band, c.mention_id, c.case_id, c.text) for c in found)
    newest_open = opened[-2 - PER_BAND : -2]
    assert by_band == sorted(
        [("0:0.0", *opened[0], "Жалоба 0")]
        + [(SHARED, m, c, f"Жалоба {opened.index((m, c))}") for m, c in newest_open]
    )
