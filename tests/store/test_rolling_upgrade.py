"""A rolling upgrade (README, "Running several instances"): the new release migrates the
database before its instances start, and an instance of the old release that starts (or
restarts) meanwhile runs on the newer schema instead of failing on a revision it does not know."""

from __future__ import annotations

from sqlalchemy import text

from store.db import Database


async def test_an_older_release_starts_on_a_database_a_newer_one_migrated(
    database: Database,
) -> None:
    head = await database.current_revision()
    assert await database.upgrade_at_start() is None  # at this release's head: nothing to do
    async with database.engine.begin() as conn:
        # As the next release leaves it: a revision this code has never seen.
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    assert await database.upgrade_at_start() == "9999"
    assert await database.current_revision() == "9999"  # left as the newer release made it
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})


async def test_a_database_behind_this_release_is_migrated_at_start(database: Database) -> None:
    await database.downgrade("0023")
    assert await database.upgrade_at_start() is None
    assert await database.current_revision() == "0028"
