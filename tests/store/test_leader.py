"""Leader election on a real PostgreSQL database (store/leader.py): one leader among electors,
and another one when the leader's session ends (terminated, or closed)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from store.leader import LeaderElector
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP
from tests.handlers.ingest.test_api_hostile import own_postgres_database

CHECK_S = 1.0  # the server ends a silent session after three: room for a busy machine
PATIENCE_S = 30.0  # a bound for waiting, not a speed requirement


@pytest.fixture
async def url() -> AsyncIterator[str]:
    """A database of its own: advisory locks are per database, whatever the schema."""
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    async with own_postgres_database() as fresh:
        yield fresh


class Changes:
    def __init__(self) -> None:
        self.seen: list[bool] = []

    def __call__(self, leading: bool) -> None:
        self.seen.append(leading)


async def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


async def terminate(url: str, instance: str) -> int:
    """End the elector's session on the server, as an administrator (or a crash) would."""
    admin = create_async_engine(url)
    try:
        async with admin.connect() as conn:
            ended = await conn.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = :name AND datname = current_database()"
                ),
                {"name": f"otklik-leader {instance}"},
            )
            return int(ended or 0)
    finally:
        await admin.dispose()


@pytest.mark.postgres
async def test_one_of_two_leads_and_the_other_takes_over_when_its_session_is_terminated(
    url: str,
) -> None:
    a_changes, b_changes = Changes(), Changes()
    a = LeaderElector(url, "a", a_changes, check_s=CHECK_S)
    b = LeaderElector(url, "b", b_changes, check_s=CHECK_S)
    try:
        assert await a.attempt() is True
        assert await b.attempt() is False
        assert (await a.attempt(), await b.attempt()) == (True, False)  # checks keep it so

        assert await terminate(url, "a") == 1
        # The session is gone and the lock with it: the follower takes it at its next try,
        # and the old leader learns at its next check that it lost.
        assert await b.attempt() is True
        assert await a.attempt() is False
        assert a_changes.seen == [True, False]
        assert b_changes.seen == [True]
        assert (await a.attempt(), await b.attempt()) == (False, True)
    finally:
        await a.close()
        await b.close()


@pytest.mark.postgres
async def test_a_closed_elector_never_takes_the_lock_again(url: str) -> None:
    changes = Changes()
    a = LeaderElector(url, "a", changes, check_s=CHECK_S)
    assert await a.attempt() is True
    await a.close()  # the lock is free now, and nobody else wants it
    assert await a.attempt() is False
    assert changes.seen == [True, False]
    assert await terminate(url, "a") == 0  # no session of its own left either


@pytest.mark.postgres
async def test_running_electors_hand_over_when_the_leader_closes(url: str) -> None:
    stop = asyncio.Event()
    electors = {
        name: LeaderElector(url, name, Changes(), check_s=CHECK_S) for name in ("a", "b", "c")
    }
    tasks = [asyncio.create_task(e.run(stop)) for e in electors.values()]
    try:
        await eventually(lambda: sum(e.leading for e in electors.values()) == 1, "a leader")
        await asyncio.sleep(CHECK_S * 3)  # a few rounds of tries and checks change nothing
        leaders = [name for name, e in electors.items() if e.leading]
        assert len(leaders) == 1
        first = leaders[0]
        await electors[first].close()  # disposed: its session ends, the lock is free
        rest = {name: e for name, e in electors.items() if name != first}
        await eventually(lambda: sum(e.leading for e in rest.values()) == 1, "a new leader")
        assert sum(e.leading for e in electors.values()) == 1
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for elector in electors.values():
            await elector.close()


@pytest.mark.postgres
async def test_a_terminated_leader_in_a_run_loop_loses_at_once_and_someone_leads(
    url: str,
) -> None:
    stop = asyncio.Event()
    a_changes = Changes()
    a = LeaderElector(url, "a", a_changes, check_s=CHECK_S)
    b = LeaderElector(url, "b", Changes(), check_s=CHECK_S)
    assert await a.attempt() is True
    tasks = [asyncio.create_task(e.run(stop)) for e in (a, b)]
    try:
        assert await terminate(url, "a") == 1
        await eventually(lambda: a_changes.seen[-1:] != [True], "the leader noticed its loss")
        # Either may win the free lock; never both.
        await eventually(lambda: a.leading or b.leading, "a leader again")
        assert not (a.leading and b.leading)
    finally:
        stop.set()
        for task in tasks:
            await task
        await a.close()
        await b.close()


def test_sqlite_has_no_elector() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        LeaderElector("sqlite+aiosqlite:///x.db", "a", Changes())


@pytest.mark.postgres
async def test_a_leader_that_hangs_loses_its_session_and_another_leads(url: str) -> None:
    """A frozen leader (a stopped VM, a partition) asks nothing: the server ends its idle
    session after a few intervals (idle_session_timeout), and the lock with it."""
    stop = asyncio.Event()
    a = LeaderElector(url, "a", Changes(), check_s=CHECK_S)
    b = LeaderElector(url, "b", Changes(), check_s=CHECK_S)
    assert await a.attempt() is True  # and then never again: it hangs
    follower = asyncio.create_task(b.run(stop))
    try:
        await eventually(lambda: b.leading, "the follower leads")
        assert await a.attempt() is False  # waking up, it finds its session gone
    finally:
        stop.set()
        await follower
        await a.close()
        await b.close()
