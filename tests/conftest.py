"""Shared fixtures: databases (SQLite file always, PostgreSQL when reachable) and a clock."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.clock import FrozenClock
from store import crypto
from store.db import Database
from tests.doubles.migrated import migrated_sqlite_url
from tests.doubles.synapse import SynapseServer

# One set of data keys for the session (and the processes it starts), as production sets
# them: without them every test database would get a key file of its own.
os.environ.setdefault(crypto.DATA_KEY_ENV, f"test:{crypto.new_key_text()}")
os.environ.setdefault(crypto.INDEX_KEY_ENV, crypto.new_key_text())

ROOT = Path(__file__).resolve().parent.parent
# The server and database the tests are given; under pytest-xdist each worker ("gw0", ...)
# works in a database of its own beside it ("test_gw0"), made at session start and dropped at
# the end, so no worker sees another's schemas, roles' objects or leftovers.
GIVEN_POSTGRES_URL = os.environ.get(
    "OTKLIK_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")


def _worker_url(url: str, worker: str | None) -> str:
    if worker is None:
        return url
    given = make_url(url)
    return given.set(database=f"{given.database}_{worker}").render_as_string(hide_password=False)


POSTGRES_URL = _worker_url(GIVEN_POSTGRES_URL, XDIST_WORKER)
if XDIST_WORKER is not None:
    # A worker starts with COLUMNS=80 and LINES=24 in its environment; rich would fix its
    # consoles' width from them for good (see wide_cli_output below).
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


POSTGRES_UP = _reachable("127.0.0.1", 5432)
POSTGRES_SKIP = "PostgreSQL is not reachable at 127.0.0.1:5432 (set OTKLIK_TEST_POSTGRES_URL)"


async def _recreate_database(url: str, *, drop_only: bool = False) -> None:
    """(Re)create the database `url` names, connected to the given one (trust auth)."""
    target = make_url(url)
    plain = make_url(GIVEN_POSTGRES_URL).set(drivername="postgresql")
    conn = await asyncpg.connect(plain.render_as_string(hide_password=False))
    try:
        # A run killed half-way leaves its database behind: start from nothing.
        await conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        if not drop_only:
            await conn.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await conn.close()


# Tests of half a minute or more (processes, time-scaled Telegram limits, a cron minute, long
# generated runs) start first: xdist's workers then share them out, instead of one finishing
# them alone at the end.
SLOW_FIRST = (
    "tests/e2e/test_scaleout.py",
    "tests/e2e/test_leader_failover.py",
    "tests/handlers/test_check_config_fuzz.py",
    "tests/bot/cases/test_random_walk.py",
    "tests/e2e/test_shared_limits_telegram.py",
    "tests/e2e/test_burst_telegram.py",
    "tests/e2e/test_packs_telegram.py",
    "tests/e2e/test_crash_safety.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(SLOW_FIRST))  # stable otherwise


@pytest.fixture(scope="session", autouse=True)
def worker_postgres_database() -> Iterator[None]:
    """This xdist worker's own database (sync: its own short event loop, none shared)."""
    if XDIST_WORKER is None or not POSTGRES_UP:
        yield
        return
    asyncio.run(_recreate_database(POSTGRES_URL))
    try:
        yield
    finally:
        asyncio.run(_recreate_database(POSTGRES_URL, drop_only=True))


@pytest.fixture(autouse=True)
def wide_cli_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's rich console wraps at 80 columns off a terminal and folds a word longer than
    the line where it falls: a tmp path (longer under xdist: .../popen-gw0/...) would be cut
    inside, and tests that undo the wrapping would not find the file names they look for."""
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture
def clock() -> FrozenClock:
    # A Friday afternoon in Moscow: close to the end of the working week on purpose.
    return FrozenClock(datetime(2026, 11, 20, 13, 30, tzinfo=UTC))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'otklik.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[Database]:
    """A migrated database on each backend; PostgreSQL gets a schema of its own per test."""
    if request.param == "sqlite":
        await migrated_sqlite_url(sqlite_url)  # a copy at head: upgrade() finds nothing to do
        db = Database(sqlite_url)
        await db.upgrade()
        yield db
        await db.dispose()
        return
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        await db.upgrade()
        yield db
    finally:
        await db.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


# Engines of separate "instances" on one migrated PostgreSQL schema (tests of several
# processes on one database, in one test process).
Instances = Callable[[], Awaitable[Database]]


@pytest.fixture
async def instances() -> AsyncIterator[Instances]:
    """Each call: a Database of its own (engine, pool) on the test's own PostgreSQL schema."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    opened: list[Database] = []

    async def instance() -> Database:
        db = Database(POSTGRES_URL, connect_args={"server_settings": {"search_path": schema}})
        if not opened:
            await db.upgrade()
        opened.append(db)
        return db

    try:
        yield instance
    finally:
        for db in opened:
            await db.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    """One real Synapse on 127.0.0.1 for the whole session (sync: owns a subprocess, no loop)."""
    reason = "matrix-synapse is not installed: pip install -e '.[dev]'"
    pytest.importorskip("synapse", reason=reason, exc_type=ImportError)
    server = SynapseServer(tmp_path_factory.mktemp("synapse"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
