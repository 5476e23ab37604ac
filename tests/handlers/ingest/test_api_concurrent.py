"""Concurrent ingest on PostgreSQL (issue 21): clients posting single mentions and clients
posting batches, all joining the same cases at once. Every request is answered 202, every
mention is stored once and counted once on its case."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.clock import FrozenClock
from handlers.app import App
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP
from tests.doubles.api_app import running_api
from tests.doubles.support import API_TOKENS
from tests.handlers.ingest.test_api_hostile import own_postgres_database

MON = {"Authorization": f"Bearer {API_TOKENS['MON_TOKEN']}"}
AUTHORS = 3  # few authors: their mentions join the same open cases (same author, department)
SINGLE_CLIENTS, SINGLES_EACH = 6, 15
BATCH_CLIENTS, BATCHES_EACH, BATCH = 2, 3, 60


def mention(external_id: str, n: int) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "text": f"Третий день нет отопления, батареи ледяные (#{n})",
        "sentiment": "negative",
        "author": {"id": f"resident-{n % AUTHORS}", "name": "Ольга", "channel": "vk"},
        "reach": 10,
    }


@pytest.fixture
async def running_on_postgres(
    tmp_path: Path, clock: FrozenClock
) -> AsyncIterator[tuple[App, str, str]]:
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    async with own_postgres_database() as url, running_api(tmp_path, url, clock) as (app, base):
        yield app, base, url


async def test_singles_and_batches_joining_the_same_cases_are_all_accepted(
    running_on_postgres: tuple[App, str, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, base, url = running_on_postgres
    caplog.set_level(logging.ERROR, logger="otklik")
    statuses: list[int] = []
    sent: list[str] = []

    async def post(http: aiohttp.ClientSession, body: Any) -> None:
        async with http.post(f"{base}/api/v1/mentions", json=body, headers=MON) as response:
            statuses.append(response.status)
            answer = await response.json()
            assert answer.get("rejected") == 0, answer

    async def single_client(http: aiohttp.ClientSession, client: int) -> None:
        for i in range(SINGLES_EACH):
            n = client * 1_000 + i
            sent.append(f"s{n}")
            await post(http, mention(f"s{n}", n))

    async def batch_client(http: aiohttp.ClientSession, client: int) -> None:
        for b in range(BATCHES_EACH):
            numbers = [100_000 + client * 10_000 + b * 1_000 + i for i in range(BATCH)]
            sent.extend(f"b{n}" for n in numbers)
            await post(http, [mention(f"b{n}", n) for n in numbers])

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(
            *(single_client(http, c) for c in range(SINGLE_CLIENTS)),
            *(batch_client(http, c) for c in range(BATCH_CLIENTS)),
        )

    # No batch lost its race and fell back to storing its mentions one by one.
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert statuses == [202] * (SINGLE_CLIENTS * SINGLES_EACH + BATCH_CLIENTS * BATCHES_EACH)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT case_id FROM mentions"))).all()
            cases = (await conn.execute(text("SELECT id, mention_count FROM cases"))).all()
            attached = (
                await conn.execute(text("SELECT case_id, count(*) FROM mentions GROUP BY case_id"))
            ).all()
    finally:
        await engine.dispose()
    # Every mention stored exactly once (external ids are unique per source), each on a case.
    assert len(rows) == len(sent) == len(set(sent))
    assert all(case_id is not None for (case_id,) in rows)
    # The cases count exactly the mentions that joined them: no join was lost to a race.
    assert dict(attached) == {case_id: count for case_id, count in cases}
    assert len(cases) < len(sent) / 10  # they did join: few cases, many mentions each
