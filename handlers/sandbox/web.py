"""The sandbox's pages and endpoints, on the bot's own HTTP server (handlers/app.py).

Everything a browser sends is untrusted. Who may come in: loopback clients only, unless
`sandbox.allow_remote`, and then only with the token (once as ?token=…, then a cookie). A
loopback-only sandbox also checks the Host header, so a web page elsewhere cannot reach it
by pointing a name of its own at 127.0.0.1 (DNS rebinding); POSTs need a header a form
cannot send, so another site cannot press buttons in it either.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.settings.config import Config
from bot.settings.connections import SandboxConfig
from bot.staff.rights import Actor
from handlers.sandbox import buttons, commands, replies
from handlers.sandbox.context import STRANGER, SandboxContext, where
from handlers.sandbox.feeds import FeedError, FeedProvider, feed, sources
from handlers.sandbox.shown import ChatLog

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
FILES = {"app.js": "application/javascript", "style.css": "text/css"}
PREFIX = "/sandbox"
COOKIE = "otklik_sandbox"
# POSTs must carry it: a cross-site form cannot, and a script elsewhere needs CORS, which we
# never grant.
CSRF_HEADER = "X-Otklik-Sandbox"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
LABELS = "sandbox.page."  # the page's own words, from messages.yaml
MAX_TEXT = 8000
MAX_BODY = 64 * 1024
PING_S = 15.0
WINDOW_S = 60.0
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class RateLimit:
    """At most `per_minute` events per client in any 60 seconds; 0: no limit."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}

    def allow(self, client: str) -> bool:
        if not self.per_minute:
            return True
        now = time.monotonic()  # a rate, not a moment of the bot's day: not the injected clock
        seen = self._seen.setdefault(client, deque())
        while seen and now - seen[0] > WINDOW_S:
            seen.popleft()
        if len(seen) >= self.per_minute:
            return False
        seen.append(now)
        return True


class SandboxWeb:
    def __init__(
        self,
        config: Config,
        chats: ChatLog,
        feeds: list[FeedProvider],
    ) -> None:
        self._config = config
        self._settings: SandboxConfig = config.sandbox
        self._chats = chats
        self._feeds = feeds
        self._ctx: SandboxContext | None = None
        self._actions = RateLimit(config.sandbox.limits.actions_per_minute)
        self._fed = RateLimit(config.sandbox.limits.feeds_per_minute)

    def attach(self, ctx: SandboxContext) -> None:
        self._ctx = ctx

    def add_routes(self, app: web.Application) -> None:
        guard = self._guard
        app.router.add_get(PREFIX, guard(self.index))
        app.router.add_get(f"{PREFIX}/", guard(self.index))
        app.router.add_get(f"{PREFIX}/static/{{name}}", guard(self.static))
        app.router.add_get(f"{PREFIX}/api/state", guard(self.state))
        app.router.add_get(f"{PREFIX}/api/chats/{{chat}}", guard(self.messages))
        app.router.add_get(f"{PREFIX}/api/events", guard(self.events))
        app.router.add_post(f"{PREFIX}/api/press", guard(self.press))
        app.router.add_post(f"{PREFIX}/api/say", guard(self.say))
        app.router.add_post(f"{PREFIX}/api/feed", guard(self.feed))

    # --- who may come in ---

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            refusal = self._refusal(request)
            if refusal is not None:
                return _problem(403, refusal)
            if request.method == "POST" and request.headers.get(CSRF_HEADER) != "1":
                return _problem(403, f"a sandbox POST needs the {CSRF_HEADER} header")
            try:
                response = await handler(request)
            except web.HTTPException as refused:  # as JSON, like every answer of ours
                if refused.status < 400:
                    raise
                return _problem(refused.status, refused.text or refused.reason)
            if not response.prepared:
                response.headers.update(SECURITY_HEADERS)
            return response

        return guarded

    def _refusal(self, request: web.Request) -> str | None:
        settings = self._settings
        if not settings.allow_remote:
            if not is_loopback(request.remote):
                return "the sandbox serves this computer only (sandbox.allow_remote is false)"
            host = _hostname(request.host or "")
            if host not in LOOPBACK_HOSTS and host != self._config.api.listen.rsplit(":", 1)[0]:
                return "open the sandbox at 127.0.0.1 or localhost"
            return None
        offered = (
            request.query.get("token")
            or request.cookies.get(COOKIE)
            or request.headers.get("Authorization", "").removeprefix("Bearer ")
        )
        if not offered or not hmac.compare_digest(offered.encode(), settings.token.encode()):
            return "the sandbox needs its token (sandbox.token): open /sandbox?token=…"
        return None

    def _context(self) -> SandboxContext:
        if self._ctx is None:
            raise web.HTTPServiceUnavailable(text="the sandbox is starting")
        return self._ctx

    # --- pages ---

    async def index(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("token")
        if self._settings.allow_remote and token:
            # Once from the link (checked by the guard), then from the cookie: the token
            # leaves the address bar and the history.
            moved = web.Response(status=303, headers={"Location": PREFIX})
            moved.set_cookie(
                COOKIE, token, path=PREFIX, httponly=True, samesite="Strict", secure=request.secure
            )
            return moved
        response = web.FileResponse(STATIC / "index.html")
        response.content_type = "text/html"
        return response

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in FILES:
            raise web.HTTPNotFound()
        response = web.FileResponse(STATIC / name)
        response.content_type = FILES[name]
        return response

    async def state(self, request: web.Request) -> web.Response:
        ctx = self._context()
        config = self._config
        people = [{"id": m.id, "name": m.name, "roles": _roles(ctx, m.id)} for m in config.staff]
        people.append({"id": STRANGER, "name": ctx.texts.t("sandbox.stranger"), "roles": ""})
        chats = [
            {"id": d.id, "name": d.name, "coordination": d.id == config.coordination_department}
            for d in config.departments
        ]
        return web.json_response(
            {
                "organisation": config.organisation,
                "locale": config.locale,
                "chats": chats,
                "people": people,
                "sources": sources(config),
                "feeds": [
                    {"title": p.title, "samples": [s.as_json() for s in p.samples()]}
                    for p in self._feeds
                ],
                "labels": {
                    key.removeprefix(LABELS): ctx.texts.t(key)
                    for key in sorted(ctx.texts.keys())
                    if key.startswith(LABELS)
                },
            }
        )

    async def messages(self, request: web.Request) -> web.Response:
        chat = request.match_info["chat"]
        if not self._is_chat(chat):
            raise web.HTTPNotFound()
        return web.json_response({"messages": self._chats.messages(chat)})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: every post, edit and deletion in every chat."""
        response = web.StreamResponse(
            headers={
                **SECURITY_HEADERS,
                "Content-Type": "text/event-stream",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue = self._chats.listen()
        try:
            await response.write(b"retry: 1000\n\n")
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), PING_S)
                except TimeoutError:
                    await response.write(b": ping\n\n")
                    continue
                if event is None:
                    break
                data = json.dumps(event, ensure_ascii=False)
                await response.write(f"data: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._chats.forget(queue)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    # --- acting ---

    async def press(self, request: web.Request) -> web.Response:
        ctx = self._context()
        body = await self._body(request, self._actions)
        chat, actor = self._chat_and_actor(ctx, body)
        message_id = body.get("message")
        if not isinstance(message_id, str) or self._chats.get(chat, message_id) is None:
            return _problem(404, "no such message in this chat")
        nonce = secrets.token_hex(8)
        feedback = await buttons.press(ctx, where(chat), actor, body.get("data"), nonce)
        return web.json_response({"toast": ctx.toast(feedback), "alert": feedback.alert})

    async def say(self, request: web.Request) -> web.Response:
        """A message written in a chat: a command, a reply to a message, or just talk."""
        ctx = self._context()
        body = await self._body(request, self._actions)
        chat, actor = self._chat_and_actor(ctx, body)
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return _problem(422, "text: write something")
        text = text.strip()[:MAX_TEXT]
        replied_to = body.get("reply_to")
        if replied_to is not None and (
            not isinstance(replied_to, str) or self._chats.get(chat, replied_to) is None
        ):
            return _problem(404, "reply_to: no such message in this chat")
        said = self._chats.post(
            chat, {"from": "person", "person": actor.name, "text": text, "reply_to": replied_to}
        )
        here = where(chat)
        handled = await commands.on_command(ctx, here, actor, text, said["id"], replied_to)
        if not handled and replied_to is not None and not text.startswith("/"):
            handled = await replies.on_reply(ctx, here, actor, text, said["id"], replied_to)
        return web.json_response({"id": said["id"], "handled": handled})

    async def feed(self, request: web.Request) -> web.Response:
        ctx = self._context()
        if ctx.intake is None:
            return _problem(503, "nothing takes mentions in")
        body = await self._body(request, self._fed)
        text, source = body.get("text"), body.get("source")
        author = body.get("author") or ctx.texts.t("sandbox.citizen")
        if not isinstance(text, str) or not text.strip():
            return _problem(422, "text: paste a mention")
        if source not in sources(self._config):
            return _problem(422, "source: not one the sandbox offers")
        if not isinstance(author, str):
            return _problem(422, "author: must be text")
        try:
            result = await feed(ctx.intake, ctx.clock, text.strip(), source, author[:100])
        except FeedError as error:
            return _problem(422, str(error))
        case = result.case
        mention = result.mention
        return web.json_response(
            {
                "case": case.id if case is not None else None,
                "department": case.department if case is not None else None,
                "sentiment": mention.sentiment if mention is not None else None,
                "duplicate": result.duplicate,
            }
        )

    # --- helpers ---

    async def _body(self, request: web.Request, limit: RateLimit) -> dict[str, Any]:
        if not limit.allow(request.remote or "unknown"):
            raise web.HTTPTooManyRequests(text="sandbox.limits: too many requests, wait a minute")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(raw))
        try:
            body = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(text="the body is not JSON") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="the body must be a JSON object")
        return body

    def _is_chat(self, chat: object) -> bool:
        return isinstance(chat, str) and self._config.department(chat) is not None

    def _chat_and_actor(self, ctx: SandboxContext, body: dict[str, Any]) -> tuple[str, Actor]:
        chat, person = body.get("chat"), body.get("as")
        if not self._is_chat(chat):
            raise web.HTTPNotFound(text="chat: no such sandbox chat")
        if not isinstance(person, str) or len(person) > 64:
            raise web.HTTPUnprocessableEntity(text="as: a staff id or 'stranger'")
        assert isinstance(chat, str)
        return chat, ctx.actor(person)


def _hostname(host: str) -> str:
    """The name in a Host header, without its port: "127.0.0.1", "[::1]", "localhost"."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0]


def _roles(ctx: SandboxContext, staff_id: str) -> str:
    actor = ctx.directory.by_staff_id(staff_id)
    if actor is None:
        return ""
    parts = [
        f"{ctx.directory.department_name(dept)}: "
        + ", ".join(ctx.texts.t(f"role.{r.value}") for r in sorted(roles))
        for dept, roles in actor.dept_roles.items()
    ]
    parts += [ctx.texts.t(f"role.{r.value}") for r in sorted(actor.global_roles)]
    return "; ".join(parts)


def _problem(status: int, title: str) -> web.Response:
    return web.json_response({"error": title}, status=status, headers=SECURITY_HEADERS)
