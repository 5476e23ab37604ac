"""`VkServer`: the VK API methods the bot uses, as dev.vk.com documents them.

Requests (dev.vk.com/ru/api/api-requests): POST or GET <base>/method/<name>; parameters in the
query string or a form-encoded body (both are read, the body winning); `access_token` (or an
`Authorization: Bearer` header) and `v` with every call. Answers are HTTP 200 with
{"response": ...} or {"error": {"error_code", "error_msg", "request_params"}}, the codes and
texts of VKCOM/vk-api-schema errors.json, `request_params` echoing the call's parameters
without the token (dev.vk.com/ru/reference/errors).

Token types (vk-api-schema, each method's access_token_type): wall.createComment takes user
and community tokens; wall.getComments user and service tokens; messages.send and
messages.edit user and community tokens. A community token is limited to 20 requests per
second, a user token to 3 (vk.com/dev/api_requests): beyond that, error 6.

messages.send: `random_id` is checked for uniqueness across the sender's whole message
history (vk.com/dev/messages.send); a repeat sends nothing and answers the first
message's id. A community may write only to people who wrote to it or allowed its messages
(error 901). wall.createComment: `guid` keeps the same comment from being added twice.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

VERSION = "5.199"
TokenKind = Literal["group", "user", "service"]
PER_SECOND = {"group": 20, "user": 3, "service": 20}

# error_code: error_msg, as VK words them (vk-api-schema errors.json descriptions).
ERRORS = {
    3: "Unknown method passed",
    5: "User authorization failed",
    6: "Too many requests per second",
    8: "Invalid request",
    9: "Flood control",
    15: "Access denied",
    27: "Group authorization failed",
    28: "Application authorization failed",
    100: "One of the parameters specified was missing or invalid",
    901: "Can't send messages for users without permission",
}


class VkError(Exception):
    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code = code
        self.text = ERRORS.get(code, "Unknown error occurred") + (f": {detail}" if detail else "")


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    owner: int  # the community's id for a community token, else the user's


@dataclass(slots=True)
class Comment:
    id: int
    owner_id: int
    post_id: int
    from_id: int
    date: int
    text: str
    reply_to_comment: int | None = None
    parents_stack: list[int] = field(default_factory=list)
    guid: str | None = None
    deleted: bool = False

    def as_object(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": self.id,
            "from_id": self.from_id,
            "date": self.date,
            "text": self.text,
            "post_id": self.post_id,
            "owner_id": self.owner_id,
            "parents_stack": list(self.parents_stack),
        }
        if self.reply_to_comment is not None:
            item["reply_to_comment"] = self.reply_to_comment
        return item


@dataclass(slots=True)
class PrivateMessage:
    id: int
    peer_id: int
    from_id: int  # negative: the community wrote it
    date: int
    text: str
    random_id: int = 0

    def as_object(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "date": self.date,
            "peer_id": self.peer_id,
            "from_id": self.from_id,
            "text": self.text,
            "random_id": self.random_id,
            "conversation_message_id": self.id,
            "out": 1 if self.from_id < 0 else 0,
            "attachments": [],
        }


Method = Callable[[Token, dict[str, str]], Awaitable[Any]]


class VkServer:
    def __init__(self) -> None:
        self.tokens: dict[str, Token] = {}
        self.posts: dict[tuple[int, int], list[Comment]] = {}  # (owner, post) → comments
        self.messages: dict[int, list[PrivateMessage]] = {}  # community → its dialogs
        self.allowed: set[tuple[int, int]] = set()  # (community, user) may be written to
        self.calls: list[tuple[str, dict[str, str]]] = []  # every call, token left out
        self._failures: dict[str, deque[int]] = {}  # method → error codes to answer next
        self._holds: dict[str, tuple[asyncio.Event, asyncio.Event]] = {}
        self._recent: dict[str, deque[float]] = {}
        self._ids = itertools.count(1)
        self._methods: dict[str, Method] = {
            "wall.createComment": self._create_comment,
            "wall.getComments": self._get_comments,
            "messages.send": self._send,
            "messages.edit": self._edit,
            "users.get": self._users,
        }
        self._access: dict[str, tuple[TokenKind, ...]] = {
            "wall.createComment": ("user", "group"),
            "wall.getComments": ("user", "service"),
            "messages.send": ("user", "group"),
            "messages.edit": ("user", "group"),
            "users.get": ("user", "group", "service"),
        }
        self.people: dict[int, tuple[str, str]] = {}  # id → (first name, last name)
        self._runner: web.AppRunner | None = None
        self.api_base = ""

    # --- the test's side ----------------------------------------------------------------

    def add_token(self, token: str, kind: TokenKind, owner: int) -> None:
        self.tokens[token] = Token(kind, owner)

    def add_person(self, user_id: int, first_name: str, last_name: str) -> None:
        self.people[user_id] = (first_name, last_name)

    def add_post(self, group_id: int, post_id: int) -> None:
        self.posts.setdefault((-group_id, post_id), [])

    def comment(
        self, group_id: int, post_id: int, from_id: int, text: str, reply_to: int | None = None
    ) -> Comment:
        """A person comments on the community's post (or replies to a comment there)."""
        return self._add_comment(-group_id, post_id, from_id, text, reply_to, None)

    def write(self, group_id: int, from_id: int, text: str) -> PrivateMessage:
        """A person writes to the community: from now on it may write back."""
        self.allowed.add((group_id, from_id))
        message = PrivateMessage(next(self._ids), from_id, from_id, _now(), text)
        self.messages.setdefault(group_id, []).append(message)
        return message

    def comments(self, group_id: int, post_id: int) -> list[Comment]:
        return [c for c in self.posts.get((-group_id, post_id), []) if not c.deleted]

    def sent_to(self, group_id: int, user_id: int) -> list[PrivateMessage]:
        """What the community wrote to a person."""
        return [
            m
            for m in self.messages.get(group_id, [])
            if m.peer_id == user_id and m.from_id == -group_id
        ]

    def fail_next(self, method: str, *codes: int) -> None:
        """The next calls of `method` answer these errors, in order (flood control, …)."""
        self._failures.setdefault(method, deque()).extend(codes)

    def hold(self, method: str) -> tuple[asyncio.Event, asyncio.Event]:
        """The next call of `method` is carried out, then its answer waits: (reached, release).
        A test kills the bot meanwhile, so the caller never learns it succeeded."""
        events = (asyncio.Event(), asyncio.Event())
        self._holds[method] = events
        return events

    # --- HTTP ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/method/{name}", self._http)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.api_base = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _http(self, request: web.Request) -> web.Response:
        if request.method not in ("GET", "POST"):
            return web.Response(status=405)
        params = dict(request.query)
        if request.method == "POST" and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        token = params.pop("access_token", "")
        bearer = request.headers.get("Authorization", "")
        if not token and bearer.lower().startswith("bearer "):
            token = bearer[7:].strip()
        name = request.match_info["name"]
        self.calls.append((name, dict(params)))
        try:
            response = await self._call(name, token, params)
        except VkError as error:
            echoed = [{"key": k, "value": v} for k, v in params.items()]
            echoed.insert(0, {"key": "method", "value": name})
            body = {
                "error": {
                    "error_code": error.code,
                    "error_msg": error.text,
                    "request_params": echoed,
                }
            }
            return web.json_response(body)
        held = self._holds.pop(name, None)
        if held is not None:
            held[0].set()
            await held[1].wait()
        return web.json_response({"response": response})

    async def _call(self, name: str, token_text: str, params: dict[str, str]) -> Any:
        method = self._methods.get(name)
        if method is None:
            raise VkError(3)
        if not token_text:
            raise VkError(5, "no access_token passed.")
        token = self.tokens.get(token_text)
        if token is None:
            raise VkError(5, "invalid access_token (4).")
        if not params.get("v"):
            raise VkError(8, "v (version) is required")
        self._count(token_text, token)
        failures = self._failures.get(name)
        if failures:
            raise VkError(failures.popleft())
        if token.kind not in self._access[name]:
            code = {"group": 27, "service": 28, "user": 5}[token.kind]
            raise VkError(code, f"method is unavailable with {token.kind} auth.")
        return await method(token, params)

    def _count(self, token_text: str, token: Token) -> None:
        recent = self._recent.setdefault(token_text, deque())
        now = time.monotonic()
        while recent and now - recent[0] >= 1.0:
            recent.popleft()
        if len(recent) >= PER_SECOND[token.kind]:
            raise VkError(6)
        recent.append(now)

    # --- methods ------------------------------------------------------------------------

    async def _create_comment(self, token: Token, params: dict[str, str]) -> Any:
        owner = _int(params, "owner_id", default=token.owner if token.kind == "user" else None)
        post = _int(params, "post_id")
        if (owner, post) not in self.posts:
            raise VkError(100, "post_id is invalid")
        if token.kind == "group" and owner != -token.owner:
            raise VkError(15, "a community token comments only on its community's wall")
        message = params.get("message", "")
        if not message.strip():
            raise VkError(100, "message is undefined")
        from_group = params.get("from_group")
        author = token.owner if token.kind == "user" else -token.owner
        if from_group not in (None, "", "0"):
            if _int(params, "from_group") != -owner:
                raise VkError(15, "from_group is not the wall's community")
            author = owner
        guid = params.get("guid") or None
        if guid is not None:
            for comment in self.posts[owner, post]:
                if comment.guid == guid and comment.from_id == author:
                    return {"comment_id": comment.id, "parents_stack": comment.parents_stack}
        reply_to = _int(params, "reply_to_comment", default=0) or None
        comment = self._add_comment(owner, post, author, message, reply_to, guid)
        return {"comment_id": comment.id, "parents_stack": comment.parents_stack}

    def _add_comment(
        self,
        owner: int,
        post: int,
        author: int,
        text: str,
        reply_to: int | None,
        guid: str | None,
    ) -> Comment:
        comments = self.posts[owner, post]
        stack: list[int] = []
        if reply_to is not None:
            parent = next((c for c in comments if c.id == reply_to and not c.deleted), None)
            if parent is None:
                raise VkError(100, "reply_to_comment is invalid")
            stack = parent.parents_stack[:1] or [parent.id]  # threads are one level deep
        comment = Comment(next(self._ids), owner, post, author, _now(), text, reply_to, stack)
        comment.guid = guid
        comments.append(comment)
        return comment

    async def _get_comments(self, token: Token, params: dict[str, str]) -> Any:
        owner, post = _int(params, "owner_id"), _int(params, "post_id")
        if (owner, post) not in self.posts:
            raise VkError(100, "post_id is invalid")
        thread = _int(params, "comment_id", default=0)
        live = [c for c in self.posts[owner, post] if not c.deleted]
        level = [
            c for c in live if (c.parents_stack[:1] == [thread] if thread else not c.parents_stack)
        ]
        count = _int(params, "count", default=10)
        offset = _int(params, "offset", default=0)
        items = []
        for comment in level[offset : offset + min(count, 100)]:
            item = comment.as_object()
            replies = [c for c in live if c.parents_stack[:1] == [comment.id]]
            item["thread"] = {"count": len(replies), "items": [], "can_post": True}
            items.append(item)
        return {"count": len(level), "current_level_count": len(level), "items": items}

    async def _send(self, token: Token, params: dict[str, str]) -> Any:
        if "random_id" not in params:
            raise VkError(100, "random_id is a required parameter")
        random_id = _int(params, "random_id")
        peer = _int(params, "peer_id", default=_int(params, "user_id", default=0))
        if peer <= 0:
            raise VkError(100, "peer_id is invalid")
        message = params.get("message", "")
        if not message.strip():
            raise VkError(100, "message is empty")
        sender = -token.owner if token.kind == "group" else token.owner
        dialogs = self.messages.setdefault(token.owner, [])
        if random_id != 0:
            for sent in dialogs:
                if sent.from_id == sender and sent.random_id == random_id:
                    return sent.id  # the same message again: nothing new is sent
        if token.kind == "group" and (token.owner, peer) not in self.allowed:
            raise VkError(901)
        sent = PrivateMessage(next(self._ids), peer, sender, _now(), message, random_id)
        dialogs.append(sent)
        return sent.id

    async def _users(self, token: Token, params: dict[str, str]) -> Any:
        ids = [part.strip() for part in params.get("user_ids", "").split(",") if part.strip()]
        found = []
        for text in ids:
            if not text.isdigit():
                raise VkError(100, "user_ids is invalid")
            person = self.people.get(int(text))
            if person is not None:
                first, last = person
                found.append({"id": int(text), "first_name": first, "last_name": last})
        return found

    async def _edit(self, token: Token, params: dict[str, str]) -> Any:
        number, peer = _int(params, "message_id"), _int(params, "peer_id")
        sender = -token.owner if token.kind == "group" else token.owner
        for sent in self.messages.get(token.owner, []):
            if sent.id == number and sent.peer_id == peer and sent.from_id == sender:
                sent.text = params.get("message", sent.text)
                return 1
        raise VkError(100, "message_id is invalid")


def _int(params: dict[str, str], name: str, default: int | None = None) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise VkError(100, f"{name} is undefined")
        return default
    try:
        return int(raw)
    except ValueError:
        raise VkError(100, f"{name} not integer") from None


def _now() -> int:
    return int(time.time())
