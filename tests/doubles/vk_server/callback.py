"""Callback API events sent to the bot as VK sends them (dev.vk.com/ru/api/callback/
getting-started): one JSON object per POST, {"type", "event_id", "v", "object", "group_id",
"secret"}; the server must answer the string "ok" with HTTP 200, else VK sends the same event
(the same event_id) again. `send` does the same, a few times."""

from __future__ import annotations

import asyncio
import io
import secrets
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.doubles.vk_server.server import VERSION

RETRIES = 5


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    text: str

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.text == "ok"


class CallbackSender:
    def __init__(self, url: str, group_id: int, secret: str) -> None:
        self.url = url
        self.group_id = group_id
        self.secret = secret

    async def confirm(self) -> Answer:
        """What VK asks when the server's address is saved in the community settings."""
        return (await self.post({"type": "confirmation", "group_id": self.group_id}))[0]

    async def send(
        self,
        type_: str,
        obj: dict[str, Any],
        *,
        event_id: str | None = None,
        secret: str | None = None,
        group_id: int | None = None,
        retries: int = RETRIES,
    ) -> list[Answer]:
        """Send an event, again while the bot does not answer "ok"; every answer, in order."""
        event = {
            "type": type_,
            "event_id": event_id or secrets.token_hex(20),
            "v": VERSION,
            "object": obj,
            "group_id": self.group_id if group_id is None else group_id,
            "secret": self.secret if secret is None else secret,
        }
        answers: list[Answer] = []
        for attempt in range(1 + retries):
            answers += await self.post(event)
            if answers[-1].ok:
                break
            await asyncio.sleep(0.05 * (attempt + 1))
        return answers

    async def post(self, body: Any, raw: bytes | None = None) -> list[Answer]:
        async with aiohttp.ClientSession() as session:
            if raw is not None:
                request = session.post(
                    self.url, data=io.BytesIO(raw), headers={"Content-Type": "application/json"}
                )
            else:
                request = session.post(self.url, json=body)
            async with request as answer:
                return [Answer(answer.status, await answer.text())]
