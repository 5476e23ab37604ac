"""The Callback API endpoint (POST vk.callback_path on the bot's HTTP server).

VK (dev.vk.com/ru/api/callback/getting-started) sends one JSON object per request:
{"type", "event_id", "v", "object", "group_id", "secret"}. The server answers the
"confirmation" request with the string from the community's settings and every event with
the string "ok" and HTTP 200; anything else counts as a failure, VK sends the event again
(the same event_id), and after several failures in a row stops sending for a while.

So the endpoint only checks and stores, then answers: the event becomes a mention in
intake.py, after VK has its "ok". Checks, all before anything is stored:
- the body's size (413) and that it is a JSON object with a type and a group id (400);
- group_id and secret, each compared in constant time; a mismatch is refused (403) and goes
  into the audit trail, as does an event id seen before (answered "ok": VK's retry);
- a database that does not answer is 503 (VK retries), never a 500.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.clock import Clock
from bot.model import SYSTEM_ACTOR, Event
from bot.settings.connections import VkConfig
from handlers.http_body import read_at_most
from handlers.vk.events import TAKEN
from store.db import Database

log = logging.getLogger("otklik.vk")

# A comment is at most some 16,000 characters; JSON may spell each as \uXXXX.
MAX_EVENT_BYTES = 256 * 1024
_EVENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TYPE = re.compile(r"^[a-z_]{1,64}$")
REFUSED = "vk_callback_refused"  # audit event kinds
REPLAYED = "vk_callback_replayed"
AUDITS_PER_MINUTE = 20  # per address: a flood of forgeries must not flood the audit trail


class VkCallback:
    def __init__(
        self, config: VkConfig, database: Database, clock: Clock, on_stored: Callable[[], None]
    ) -> None:
        self._config = config
        self._database = database
        self._clock = clock
        self._on_stored = on_stored
        self._audited: defaultdict[str, deque[float]] = defaultdict(deque)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(self._config.callback_path, self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        address = request.remote or "unknown"
        if (request.content_length or 0) > MAX_EVENT_BYTES:
            return await self._refuse(413, "the body is too large", address, "oversize")
        raw = await read_at_most(request, MAX_EVENT_BYTES)
        if raw is None:
            return await self._refuse(413, "the body is too large", address, "oversize")
        try:
            event = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return _answer(400, "the body is not a JSON object")
        if not isinstance(event, dict):
            return _answer(400, "the body is not a JSON object")
        type_, group_id = event.get("type"), event.get("group_id")
        if not isinstance(type_, str) or not _TYPE.match(type_):
            return _answer(400, "no event type")
        if isinstance(group_id, bool) or not isinstance(group_id, int):
            return _answer(400, "no group_id")
        expected = str(self._config.group_id).encode()
        if not hmac.compare_digest(str(group_id).encode(), expected):
            return await self._refuse(403, "wrong group", address, "wrong group_id")
        secret = event.get("secret")
        given = secret.encode() if isinstance(secret, str) else b""
        secret_matches = hmac.compare_digest(given, self._config.secret.encode())
        if type_ == "confirmation":
            # VK's confirmation request may come before the secret is set on its side; the
            # string proves the server is ours and is no secret, but a wrong secret is.
            if secret is not None and not secret_matches:
                return await self._refuse(403, "wrong secret", address, "wrong secret")
            return web.Response(text=self._config.confirmation)
        if not secret_matches:
            return await self._refuse(403, "wrong secret", address, "wrong secret")
        event_id = event.get("event_id")
        if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
            return _answer(400, "no event_id")
        if type_ not in TAKEN:
            return web.Response(text="ok")  # ticked in VK but not ours to take: VK must stop
        version = event.get("v")
        if isinstance(version, str) and version != self._config.version:
            # Objects differ between versions: refused loudly rather than misread quietly
            # (VK's Requests tab and the log show why).
            log.warning(
                "vk: events come in API version %.20s, not %s", version, self._config.version
            )
            return _answer(400, f"set API version {self._config.version} for this server in VK")
        try:
            await self._store(event_id, group_id, type_, event.get("object"), address)
        except Exception:
            log.exception("vk: event %s could not be stored", event_id)
            return _answer(503, "the database is unavailable; VK will retry")
        self._on_stored()
        return web.Response(text="ok")

    async def _store(
        self, event_id: str, group_id: int, type_: str, body: Any, address: str
    ) -> None:
        now = self._clock.now()
        async with self._database.uow() as uow:
            if not await uow.vk_events.add(event_id, group_id, type_, body, now):
                log.info("vk: event %s again (VK's retry or a replay): ignored", event_id)
                if self._may_audit(address):
                    await uow.events.append(
                        [_audit(REPLAYED, now, {"event_id": event_id, "type": type_}, address)]
                    )
            await uow.commit()

    async def _refuse(self, status: int, reason: str, address: str, why: str) -> web.Response:
        log.warning("vk: Callback API request from %s refused: %s", address, why)
        if self._may_audit(address):
            try:
                async with self._database.uow() as uow:
                    now = self._clock.now()
                    await uow.events.append([_audit(REFUSED, now, {"reason": why}, address)])
                    await uow.commit()
            except Exception:
                log.exception("vk: a refused request could not be audited")
        return _answer(status, reason)

    def _may_audit(self, address: str) -> bool:
        seen = self._audited[address]
        now = self._clock.now().timestamp()
        while seen and now - seen[0] >= 60:
            seen.popleft()
        if len(seen) >= AUDITS_PER_MINUTE:
            return False
        seen.append(now)
        return True


def _audit(kind: str, at: Any, payload: dict[str, Any], address: str) -> Event:
    return Event(
        case_id=None,
        at=at,
        actor=SYSTEM_ACTOR,
        kind=kind,
        from_state=None,
        to_state=None,
        payload={**payload, "channel": "vk", "address": address},
    )


def _answer(status: int, reason: str) -> web.Response:
    # Plain text: VK shows the answer on the community's Callback API page.
    return web.Response(status=status, text=reason)
