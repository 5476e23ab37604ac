"""Shared fixtures: databases (SQLite file always, PostgreSQL when reachable) and a clock."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.clock import FrozenClock
from store import crypto
from store.db import Database
from tests.doubles.synapse import SynapseServer

# One set of data keys for the session (and the processes it starts), as production sets
# them: without them every test database would get a key file of its own.
os.environ.setdefault(crypto.DATA_KEY_ENV, f"test:{crypto.new_key_text()}")
os.environ.setdefault(crypto.INDEX_KEY_ENV, crypto.new_key_text())

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "OTKLIK_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


POSTGRES_UP = _reachable("127.0.0.1", 5432)
POSTGRES_SKIP = "PostgreSQL is not reachable at 127.0.0.1:5432 (set OTKLIK_TEST_POSTGRES_URL)"


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
