"""A running Otklik with the shipped example config (no chat credentials: the sandbox is its
only chat), and a client that uses the sandbox's endpoints as its page does."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from bot.clock import Clock
from bot.settings.config import Config, load_config
from bot.settings.playbook import load_playbook
from handlers.app import App
from tests.doubles.support import ROOT
from tests.doubles.synapse import free_port

EXAMPLE = ROOT / "config.example.yaml"
HEADERS = {"X-Otklik-Sandbox": "1"}
HEATING = "Третий день нет отопления в доме на Ленина, 5, батареи ледяные, дети болеют"
Message = dict[str, Any]


def example_config(
    tmp_path: Path, port: int, listen_host: str = "127.0.0.1", sandbox: str = ""
) -> Config:
    """config.example.yaml as shipped, runnable from tmp_path: absolute playbook paths, its
    own database and port, and optionally a `sandbox:` section of the test's."""
    text = EXAMPLE.read_text(encoding="utf-8")
    text = re.sub(r"path: playbooks/default", f"path: {ROOT}/playbooks/default", text)
    text = re.sub(r"templates: playbooks/templates", f"templates: {ROOT}/playbooks/templates", text)
    text = text.replace(
        "sqlite+aiosqlite:///data/otklik.db", f"sqlite+aiosqlite:///{tmp_path}/otklik.db"
    )
    text = text.replace(
        "path: data/models/sentiment.org.npz", f"path: {tmp_path}/sentiment.org.npz"
    )
    assert "listen: 127.0.0.1:8080" in text
    text = text.replace("listen: 127.0.0.1:8080", f"listen: {listen_host}:{port}")
    if sandbox:
        start, end = text.index("\nsandbox:\n"), text.index("\napi:\n")
        text = text[:start] + text[end:]
        text += f"\nsandbox:\n{sandbox}\n"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={})


@asynccontextmanager
async def running_example(
    tmp_path: Path, clock: Clock | None = None, listen_host: str = "127.0.0.1", sandbox: str = ""
) -> AsyncIterator[tuple[App, str]]:
    port = free_port()
    config = example_config(tmp_path, port, listen_host, sandbox)
    app = App(config, load_playbook(config.playbooks.path), clock)
    await app.start()
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await app.stop()


class SandboxClient:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.http.post(
            f"{self.base}/sandbox/api/{path}", json=body, headers=HEADERS
        ) as response:
            return response.status, await response.json()

    async def feed(self, text: str, source: str = "vk") -> dict[str, Any]:
        status, body = await self.post("feed", {"text": text, "source": source, "author": "Пётр"})
        assert status == 200, body
        return body

    async def press(self, chat: str, as_: str, message: Message, label: str) -> dict[str, Any]:
        data = next(
            (b["data"] for row in message["buttons"] for b in row if b["label"] == label), None
        )
        assert data is not None, (label, message["buttons"])
        status, body = await self.post(
            "press", {"chat": chat, "as": as_, "message": message["id"], "data": data}
        )
        assert status == 200, body
        return body

    async def say(
        self, chat: str, as_: str, text: str, reply_to: str | None = None
    ) -> dict[str, Any]:
        status, body = await self.post(
            "say", {"chat": chat, "as": as_, "text": text, "reply_to": reply_to}
        )
        assert status == 200, body
        return body

    async def messages(self, chat: str) -> list[Message]:
        async with self.http.get(f"{self.base}/sandbox/api/chats/{chat}") as response:
            assert response.status == 200
            return list((await response.json())["messages"])

    async def wait_for(
        self, chat: str, found: Callable[[Message], bool], what: str = "a message"
    ) -> Message:
        """The first message of the chat that `found` accepts, as soon as it is there."""
        for _ in range(300):
            for message in await self.messages(chat):
                if found(message):
                    return message
            await asyncio.sleep(0.05)
        raise AssertionError(f"{what} never appeared in {chat}: {await self.messages(chat)}")

    async def card(self, chat: str, case_id: int, has: str = "") -> Message:
        return await self.wait_for(
            chat,
            lambda m: m.get("kind") == "card" and m.get("case_id") == case_id and has in text_of(m),
            f"the card of case {case_id} with {has!r}",
        )


def text_of(message: Message) -> str:
    """What a message says, as the page shows it."""
    if message.get("from") == "person":
        return str(message["text"])

    def flat(nodes: list[Any]) -> str:
        return "".join(n if isinstance(n, str) else flat(n["children"]) for n in nodes)

    return flat(message.get("body") or [])


def labels(message: Message) -> list[str]:
    return [b["label"] for row in message.get("buttons") or [] for b in row]
