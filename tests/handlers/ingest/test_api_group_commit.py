"""Group commit (issue 19): single mentions posted at the same moment are stored in one
transaction, and each request is still answered on its own merits, only once it committed.

On SQLite the test holds the write gate (a unit of work of its own) so that the posts queue
up behind it, and lets go once the API holds them all: the group is then known, not a matter
of timing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.cases.grouping import IntakeResult
from bot.clock import FrozenClock
from bot.group_commit import GroupCommit
from bot.model import Mention
from handlers.app import App
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP, POSTGRES_URL
from tests.doubles.api_app import running_api
from tests.handlers.ingest.test_api_hostile import MON, mention, own_postgres_database

Answer = tuple[int, dict[str, Any], dict[str, str]]


@pytest.fixture
async def running(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> AsyncIterator[tuple[App, str]]:
    async with running_api(tmp_path, sqlite_url, clock) as started:
        yield started


def singles_of(app: App) -> GroupCommit[Mention, IntakeResult]:
    assert app.api is not None and app.api.singles is not None
    return app.api.singles


async def post(http: aiohttp.ClientSession, base: str, body: Any) -> Answer:
    async with http.post(f"{base}/api/v1/mentions", json=body, headers=MON) as response:
        return response.status, await response.json(), dict(response.headers)


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(1_000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the API never held the posts")


async def posted_as_one_group(
    app: App, base: str, bodies: list[Any], held: int
) -> tuple[Answer, list[Answer]]:
    """Post a pilot while the test holds the write gate (it forms a group of its own and
    waits at the gate), then `bodies` at once; `held` of them reach the group commit (the
    others are refused before). Let go once all are waiting: they are the next group."""
    singles = singles_of(app)
    async with aiohttp.ClientSession() as http:
        async with app.database.uow():  # the write gate, on SQLite
            pilot = asyncio.create_task(post(http, base, mention("pilot")))
            await until(lambda: singles.pending == 1)
            answers: list[asyncio.Task[Answer]] = [
                asyncio.create_task(post(http, base, body)) for body in bodies
            ]
            await until(lambda: singles.pending == 1 + held)
        return await pilot, list(await asyncio.gather(*answers))


async def test_single_posts_arriving_together_are_committed_together_each_answered_on_its_own(
    running: tuple[App, str],
) -> None:
    app, base = running
    singles = singles_of(app)
    async with aiohttp.ClientSession() as http:
        status, _, _ = await post(http, base, mention("stored-before"))
        assert status == 202
    groups = singles.groups
    bodies = [
        mention("a", author={"id": "anna", "name": "Анна", "channel": "vk"}),
        mention("b", author={"id": "boris", "name": "Борис", "channel": "vk"}),
        mention("a", author={"id": "anna", "name": "Анна", "channel": "vk"}),  # the same, again
        mention("stored-before"),
        mention("bad", reach=-1),  # refused by validation: never reaches the group
        mention("c", text="Во дворе на Ленина, 5 прорвало трубу", author={"id": "clara"}),
    ]
    pilot, answers = await posted_as_one_group(app, base, bodies, held=5)

    assert pilot[0] == 202 and pilot[1]["results"][0]["status"] == "accepted"
    # Two groups: the pilot's, and the five that waited behind it.
    assert singles.groups == groups + 2 and singles.largest >= 5
    statuses = [(status, body["results"][0]["status"]) for status, body, _ in answers]
    # Of the two posts of "a" in one group, one stored it and the other is its duplicate.
    assert sorted([statuses[0], statuses[2]]) == [(202, "accepted"), (202, "duplicate")]
    assert statuses[1] == (202, "accepted") and statuses[5] == (202, "accepted")
    assert statuses[3] == (202, "duplicate")
    assert statuses[4] == (422, "rejected")
    assert answers[4][1]["problems"][0]["path"] == "[0].reach"
    # Each accepted one is answered with its own case; the duplicates with none.
    for index in (1, 5):
        assert isinstance(answers[index][1]["cases"][0], int)
    assert answers[3][1]["cases"] == [None]
    async with app.database.uow() as uow:
        for external_id in ("pilot", "a", "b", "c", "stored-before"):
            stored = await uow.mentions.get_by_external("monitoring", external_id)
            assert stored is not None and stored.case_id is not None, external_id
        assert await uow.mentions.get_by_external("monitoring", "bad") is None
        count = (await uow.session.execute(text("SELECT count(*) FROM mentions"))).scalar_one()
    assert count == 5  # "a" once


async def test_a_group_the_database_refuses_is_stored_one_by_one_and_nothing_half(
    running: tuple[App, str],
) -> None:
    """One mention the database will not take fails its group's transaction: none of the
    group is stored by it (not even the refused one's author card, written before the
    mentions), then each is stored on its own, and only the refused one is refused."""
    app, base = running
    singles = singles_of(app)
    async with app.database.uow() as uow:
        await uow.session.execute(
            text(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON mentions "
                "WHEN NEW.reach = 666 BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )
        await uow.commit()
    groups = singles.groups
    bodies = [
        mention("good-1", author={"id": "one", "channel": "vk"}),
        # The trigger's mark: reach 666.
        mention("poison", author={"id": "poisoner", "channel": "vk"}, reach=666),
        mention("good-2", author={"id": "two", "channel": "vk"}),
    ]
    _, answers = await posted_as_one_group(app, base, bodies, held=3)

    assert singles.groups == groups + 1  # the pilot's; the second group failed as a whole
    assert [(status, body["results"][0]["status"]) for status, body, _ in answers] == [
        (202, "accepted"),
        (422, "rejected"),
        (202, "accepted"),
    ]
    assert "could not be stored" in answers[1][1]["results"][0]["problems"][0]["message"]
    async with app.database.uow() as uow:
        stored = [
            await uow.mentions.get_by_external("monitoring", external_id)
            for external_id in ("pilot", "good-1", "good-2", "poison")
        ]
        count = (await uow.session.execute(text("SELECT count(*) FROM mentions"))).scalar_one()
        owners = await uow.authors.owners([("vk", "one"), ("vk", "two"), ("vk", "poisoner")])
    assert [m is not None for m in stored] == [True, True, True, False]
    assert count == 3  # each once
    assert set(owners) == {("vk", "one"), ("vk", "two")}  # no card for the refused one


async def test_when_the_database_is_gone_every_request_of_the_group_is_answered_503(
    tmp_path: Path, clock: FrozenClock
) -> None:
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")

    async def sql(statement: str) -> None:
        async with admin.connect() as conn:
            await conn.execute(text(statement))

    try:
        async with own_postgres_database() as url, running_api(tmp_path, url, clock) as pair:
            app, base = pair
            name = url.rsplit("/", 1)[1]
            # The database goes away under the running bot: no connection gets in.
            await sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            )
            groups = singles_of(app).groups
            try:
                async with aiohttp.ClientSession() as http:
                    answers = await asyncio.gather(
                        *(post(http, base, mention(f"m{n}")) for n in range(8))
                    )
            finally:
                await sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert [status for status, _, _ in answers] == [503] * 8
            assert all(headers["Retry-After"] == "30" for _, _, headers in answers)
            assert singles_of(app).groups == groups
            async with app.database.uow() as uow:
                count = await uow.session.execute(text("SELECT count(*) FROM mentions"))
                assert count.scalar_one() == 0
    finally:
        await admin.dispose()
