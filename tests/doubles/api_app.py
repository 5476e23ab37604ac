"""An App started on a free port with the test config, its HTTP API at the returned base URL:
what the API, audit and hostile-input tests talk to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.clock import Clock
from bot.messages.outbox import Transport
from bot.settings.playbook import load_playbook
from handlers.app import App
from tests.doubles.fakes import RecordingTransport
from tests.doubles.migrated import migrated_sqlite_url
from tests.doubles.support import make_config
from tests.doubles.synapse import free_port


@asynccontextmanager
async def running_api(
    tmp_path: Path, url: str, clock: Clock, transport: Transport | None = None
) -> AsyncIterator[tuple[App, str]]:
    """(the started App, "http://127.0.0.1:PORT"); Telegram is `transport` (a recorder)."""
    port = free_port()
    config = make_config(tmp_path, url, port)
    telegram = transport if transport is not None else RecordingTransport()
    await migrated_sqlite_url(url)
    app = App(config, load_playbook(config.playbooks.path), clock, {"telegram": telegram})
    await app.start()
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await app.stop()
