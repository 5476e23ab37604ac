"""/metrics is not public: on an address of its own by default, and behind a bearer token
when one is set (wherever it is served)."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bot.clock import FrozenClock
from bot.settings.connections import MetricsConfig
from bot.settings.playbook import load_playbook
from handlers.app import App
from tests.doubles.fakes import RecordingTransport
from tests.doubles.support import make_config
from tests.doubles.synapse import free_port

TOKEN = "0123456789abcdef" * 3


async def _statuses(url: str) -> list[int]:
    """Without a token, with a wrong one, with a wrong scheme, with the right one."""
    statuses = []
    async with aiohttp.ClientSession() as http:
        for header in (None, f"Bearer {TOKEN[:-1]}x", f"Basic {TOKEN}", f"Bearer {TOKEN}"):
            headers = {"Authorization": header} if header else {}
            async with http.get(url, headers=headers) as response:
                statuses.append(response.status)
                if response.status == 200:
                    assert "otklik_outbox_depth" in await response.text()
                elif response.status == 401:
                    assert response.headers["WWW-Authenticate"] == "Bearer"
    return statuses


async def _app(tmp_path: Path, sqlite_url: str, clock: FrozenClock, metrics: MetricsConfig) -> App:
    port = free_port()
    config = make_config(tmp_path, sqlite_url, port).model_copy(update={"metrics": metrics})
    app = App(
        config, load_playbook(config.playbooks.path), clock, {"telegram": RecordingTransport()}
    )
    await app.start()
    return app


async def test_metrics_on_the_api_port_only_with_the_token(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    app = await _app(tmp_path, sqlite_url, clock, MetricsConfig(listen=None, token=TOKEN))
    try:
        assert app.metrics_address is None
        base = f"http://127.0.0.1:{app.config.api.port}"
        assert await _statuses(f"{base}/metrics") == [401, 401, 401, 200]
    finally:
        await app.stop()


async def test_metrics_on_their_own_address_and_not_on_the_api_port(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    app = await _app(tmp_path, sqlite_url, clock, MetricsConfig(listen="127.0.0.1:0"))
    try:
        assert app.metrics_address is not None
        host, port = app.metrics_address
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{host}:{port}/metrics") as response:
                assert response.status == 200  # no token set: the address alone guards it
            async with http.get(f"http://127.0.0.1:{app.config.api.port}/metrics") as response:
                assert response.status == 404
            async with http.get(f"http://{host}:{port}/api/v1/openapi.json") as response:
                assert response.status == 404  # the metrics address serves nothing else
    finally:
        await app.stop()


async def test_without_address_or_token_metrics_are_served_nowhere(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    app = await _app(tmp_path, sqlite_url, clock, MetricsConfig(listen=None))
    try:
        assert app.metrics_address is None
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{app.config.api.port}/metrics") as response,
        ):
            assert response.status == 404
    finally:
        await app.stop()


async def test_a_taken_metrics_port_does_not_stop_the_bot(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    first = await _app(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path}/a.db",
        clock,
        MetricsConfig(listen="127.0.0.1:0"),
    )
    try:
        assert first.metrics_address is not None
        taken = f"127.0.0.1:{first.metrics_address[1]}"
        second = await _app(tmp_path, sqlite_url, clock, MetricsConfig(listen=taken))
        try:
            assert second.metrics_address is None and second.health() is None
        finally:
            await second.stop()
    finally:
        await first.stop()
