"""The outbox against a database that fails for real: nothing stuck in `sending`, a worker
that never dies silently, and /healthz that says so (issue 15, fault 5)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.clock import FrozenClock
from bot.messages.outbox import OutboxStatus
from bot.settings.config import Config
from bot.settings.playbook import load_playbook
from handlers.app import App
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP, POSTGRES_URL
from tests.doubles.fakes import RecordingTransport
from tests.doubles.support import make_config, make_mention
from tests.handlers.test_cli import free_port

PATIENCE_S = 60.0  # a bound for waiting on the worker, not a speed requirement


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


def quick_retries(config: Config) -> Config:
    """The worker's backoff kept short, so the test waits on restarts, not on the clock."""
    outbox = config.outbox.model_copy(update={"base_retry_s": 0.05, "max_retry_s": 1.0})
    return config.model_copy(update={"outbox": outbox})


async def healthz(base: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{base}/healthz") as response,
    ):
        return response.status, await response.json()


async def statuses(app: App) -> list[OutboxStatus]:
    async with app.database.uow() as uow:
        found = [await uow.outbox.get(n) for n in range(1, 40)]
    return [item.status for item in found if item is not None]


def card_posts(transport: RecordingTransport) -> list[object]:
    """The case of every card the transport posted, in order."""
    return [
        s.payload["case"]["id"]  # type: ignore[index]
        for s in transport.posts()
        if s.payload.get("view") == "card"
    ]


class ReadOnlyRole:
    """A PostgreSQL login of its own whose sessions can be made read-only, as after a
    failover to a replica: existing connections are terminated, new ones refuse writes."""

    def __init__(self, admin: AsyncEngine) -> None:
        self.name = f"otk_{uuid.uuid4().hex[:10]}"
        self._admin = admin

    @property
    def url(self) -> str:
        return POSTGRES_URL.replace("postgres@", f"{self.name}@", 1)

    async def create(self) -> None:
        async with self._admin.begin() as conn:
            await conn.execute(text(f"CREATE ROLE {self.name} LOGIN"))
            # The role's own schema comes first on its default search_path ("$user").
            await conn.execute(text(f"CREATE SCHEMA {self.name} AUTHORIZATION {self.name}"))

    async def read_only(self, on: bool) -> None:
        setting = "SET default_transaction_read_only = on" if on else "RESET ALL"
        async with self._admin.begin() as conn:
            await conn.execute(text(f"ALTER ROLE {self.name} {setting}"))
            await conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
                {"r": self.name},
            )

    async def drop(self) -> None:
        async with self._admin.begin() as conn:
            await conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
                {"r": self.name},
            )
            await conn.execute(text(f"DROP SCHEMA {self.name} CASCADE"))
            await conn.execute(text(f"DROP ROLE {self.name}"))


@pytest.fixture
async def pg_role() -> AsyncIterator[ReadOnlyRole]:
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    admin = create_async_engine(POSTGRES_URL)
    role = ReadOnlyRole(admin)
    await role.create()
    try:
        yield role
    finally:
        await role.drop()
        await admin.dispose()


@pytest.mark.postgres
async def test_a_delivery_the_database_refused_to_record_is_recorded_once_it_recovers(
    tmp_path: Path, clock: FrozenClock, pg_role: ReadOnlyRole
) -> None:
    port = free_port()
    config = quick_retries(make_config(tmp_path, pg_role.url, port))
    transport = RecordingTransport(hang=asyncio.Event())
    app = App(config, load_playbook(config.playbooks.path), clock, {"telegram": transport})
    await app.start()
    base = f"http://127.0.0.1:{port}"
    try:
        # Two cases of one department: two cards, one chat, delivered in order.
        first = await app.intake.receive(make_mention("1", clock.now()))
        second = await app.intake.receive(make_mention("2", clock.now(), "Прорвало трубу"))
        assert first.case is not None and second.case is not None

        async def sending() -> bool:
            return OutboxStatus.SENDING in await statuses(app)

        await eventually(sending, "the first card handed to the transport")
        # The database fails over to a read-only replica while Telegram takes the card.
        await pg_role.read_only(True)
        transport.hang.set()  # type: ignore[union-attr]

        async def unhealthy() -> bool:
            return (await healthz(base))[0] == 503

        await eventually(unhealthy, "/healthz reporting the failing outbox")
        status, body = await healthz(base)
        assert status == 503 and body["status"] == "unhealthy"
        assert "read-only" in body["reason"] or "not yet recorded" in body["reason"]

        await pg_role.read_only(False)  # the primary is back

        async def settled() -> bool:
            found = await statuses(app)
            return len(card_posts(transport)) == 2 and OutboxStatus.SENDING not in found

        await eventually(settled, "both cards delivered and recorded")
        assert (await healthz(base))[0] == 200
    finally:
        await app.stop()
    # The card Telegram took during the failure was recorded, not sent again.
    assert sorted(card_posts(transport)) == sorted([first.case.id, second.case.id])
    assert OutboxStatus.SENDING not in await statuses(app)


async def test_a_read_only_database_at_start_keeps_the_worker_alive_and_healthz_503(
    tmp_path: Path, clock: FrozenClock
) -> None:
    path = tmp_path / "otklik.db"
    writable = f"sqlite+aiosqlite:///{path}"
    transport = RecordingTransport()
    config = make_config(tmp_path, writable, free_port())
    app = App(config, load_playbook(config.playbooks.path), clock, {"telegram": transport})
    await app.start()
    await app.stop()
    # A mention arrived but its card never went out before the database turned read-only.
    writer = App(config, load_playbook(config.playbooks.path), clock, {"telegram": transport})
    await writer.cases.intake(make_mention("1", clock.now()), plan=writer.intake.plan)
    await writer.database.dispose()
    with sqlite3.connect(path) as raw:  # and one was in flight at a crash
        raw.execute("UPDATE outbox SET status = 'sending' WHERE id = 1")

    port = free_port()
    read_only = f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"
    config = quick_retries(make_config(tmp_path, read_only, port))
    app = App(config, load_playbook(config.playbooks.path), clock, {"telegram": transport})
    await app.start()
    base = f"http://127.0.0.1:{port}"
    try:

        async def restarted() -> bool:
            return app.worker.restarts >= 2

        await eventually(restarted, "the worker restarted after failing to recover")
        status, body = await healthz(base)
        assert status == 503
        assert body["status"] == "unhealthy"
        assert "readonly database" in body["reason"]
        assert app.health() is not None and "outbox" in app.health()  # type: ignore[operator]
        assert app._worker_task is not None and not app._worker_task.done()
    finally:
        await app.stop()
    assert transport.sent == []
    with sqlite3.connect(path) as raw:  # left for the next start's recovery, not lost
        assert raw.execute("SELECT status FROM outbox WHERE id = 1").fetchone() == ("sending",)
