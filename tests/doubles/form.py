"""A running Otklik with the shipped example config and its web form switched on, and a
client that fills the form in as a browser does (the token from the page, the cookie)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from bot.clock import Clock
from bot.settings.config import load_config
from bot.settings.playbook import load_playbook
from handlers.app import App
from tests.doubles.sandbox import example_config
from tests.doubles.synapse import free_port

FORM_OFF = "form:\n  enabled: false\n"
_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


@asynccontextmanager
async def running_form(
    tmp_path: Path,
    clock: Clock | None = None,
    per_hour: int = 5,
    trusted_proxies: str = "[]",
) -> AsyncIterator[tuple[App, str]]:
    """The example's App with `form.enabled: true`; yields it and its base URL."""
    port = free_port()
    example_config(tmp_path, port)  # writes tmp_path/config.yaml
    path = tmp_path / "config.yaml"
    text = path.read_text(encoding="utf-8")
    assert FORM_OFF in text
    text = text.replace(FORM_OFF, "form:\n  enabled: true\n")
    text = text.replace("per_address_per_hour: 5", f"per_address_per_hour: {per_hour}")
    text = text.replace("trusted_proxies: []", f"trusted_proxies: {trusted_proxies}")
    path.write_text(text, encoding="utf-8")
    config = load_config(path, env={})
    app = App(config, load_playbook(config.playbooks.path), clock)
    await app.start()
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await app.stop()


def token_in(page: str) -> str:
    found = _TOKEN.search(page)
    assert found is not None, page
    return found.group(1)


async def load_form(http: aiohttp.ClientSession, base: str, **headers: str) -> str:
    """GET /form as a browser: the session keeps the cookie; returns the page's token."""
    async with http.get(f"{base}/form", headers=headers) as response:
        assert response.status == 200
        return token_in(await response.text())
