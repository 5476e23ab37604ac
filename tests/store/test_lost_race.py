"""A transaction PostgreSQL rolls back as a deadlock's victim surfaces as ConcurrentUpdate, the
error callers run again on; the other transaction commits."""

import asyncio

import pytest

from bot.ports import ConcurrentUpdate
from store.db import Database
from store.uow import SqlUnitOfWork


@pytest.mark.postgres
async def test_a_deadlock_victim_raises_concurrent_update_and_the_winner_commits(
    database: Database,
) -> None:
    if database.url.startswith("sqlite"):
        pytest.skip("one writer at a time on SQLite: no deadlock to lose")
    async with database.uow() as uow:
        await uow.kv.set("left", "0")
        await uow.kv.set("right", "0")
        await uow.commit()
    both_hold_one = asyncio.Barrier(2)

    async def write(first: str, second: str, uow: SqlUnitOfWork) -> None:
        async with uow:
            await uow.kv.set(first, second)
            await both_hold_one.wait()
            await uow.kv.set(second, first)  # each waits for the other's row: a deadlock
            await uow.commit()

    outcomes = await asyncio.gather(
        write("left", "right", database.uow()),
        write("right", "left", database.uow()),
        return_exceptions=True,
    )
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(lost) == 1 and isinstance(lost[0], ConcurrentUpdate), outcomes
    async with database.uow() as uow:
        stored = (await uow.kv.get("left"), await uow.kv.get("right"))
    assert stored == ("right", "left")  # either order writes these: the winner's two rows
