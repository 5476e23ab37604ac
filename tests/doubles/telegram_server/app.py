"""The HTTP application: start and stop, reading a request's parameters (query, JSON or
multipart), routing `/bot<token>/<method>` to the mixin method `_api_<method>`, and the error
envelope with `retry_after`; also the file download route.

Next: updates.py, getUpdates and long polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Self

from aiohttp import web

from tests.doubles.telegram_server.core import ServerCore
from tests.doubles.telegram_server.protocol import ApiError, bad, to_int
from tests.doubles.telegram_server.state import ApiCall, CallRecord

_METHODS = (
    "getMe",
    "getUpdates",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "sendMessage",
    "sendPhoto",
    "editMessageText",
    "editMessageCaption",
    "editMessageReplyMarkup",
    "deleteMessage",
    "answerCallbackQuery",
    "getChat",
    "getChatMember",
    "getChatAdministrators",
    "sendChatAction",
    "getFile",
)


class HttpApp(ServerCore):
    """The Bot API endpoint over HTTP, at `api_base`."""

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("GET", "/file/bot{token}/{path:.*}", self._handle_file)
        # Cancel handlers whose client went away (an aiogram poller being stopped), and do not
        # let a pending long poll hold the shutdown.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self._base = f"http://{bound_host}:{bound_port}"
        self._closing = False

    async def stop(self) -> None:
        self._closing = True
        self._touch()  # long polls return at once
        tasks = [*self._deliveries.values(), *self._webhook_posts]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._deliveries.clear()
        if self._webhook_client is not None:
            await self._webhook_client.close()
            self._webhook_client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def fail_next_call(
        self, method: str, code: int = 500, description: str = "Internal Server Error"
    ) -> None:
        """The next call of `method` fails as Telegram does when it is having a bad moment."""
        self._failing.setdefault(method, []).append(ApiError(code, description))

    def slow_next_arrival(self, method: str, seconds: float) -> None:
        """The next call of `method` reaches the server `seconds` after the bot sent it (a
        slow way there): it is counted, for flood control too, when it arrives."""
        self._slow_arrivals.setdefault(method, []).append(seconds)

    def slow_next_answer(self, method: str, seconds: float) -> None:
        """The next call of `method` is done at once, but its answer reaches the bot `seconds`
        later (a slow way back): the bot's handling takes that much longer."""
        self._slow_answers.setdefault(method, []).append(seconds)

    @property
    def api_base(self) -> str:
        if self._base is None:
            raise RuntimeError("the server is not started")
        return self._base

    # ---- HTTP ---------------------------------------------------------------------------

    async def _read_params(
        self, request: web.Request
    ) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
        params: dict[str, str] = dict(request.query)
        files: dict[str, tuple[str, bytes]] = {}
        if not request.can_read_body:
            return params, files
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad("can't parse JSON encoded request") from None
            if not isinstance(body, dict):
                raise bad("JSON object expected")
            for key, value in body.items():
                if isinstance(value, str):
                    params[key] = value
                elif value is not None:
                    params[key] = json.dumps(value)
            return params, files
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, "Request Entity Too Large") from None
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = (value.filename, value.file.read())
            else:
                params[key] = str(value)
        return params, files

    @staticmethod
    def _reply(code: int, payload: dict[str, Any]) -> web.Response:
        return web.json_response(payload, status=code)

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        requested = request.match_info["method"]
        state = self._tokens.get(token)
        canonical = next((m for m in _METHODS if m.lower() == requested.lower()), requested)
        if self._slow_arrivals.get(canonical):
            await asyncio.sleep(self._slow_arrivals[canonical].pop(0))
        at = self._monotonic()
        params: dict[str, Any] = {}
        try:
            if state is None:
                raise ApiError(401, "Unauthorized")
            params, files = await self._read_params(request)
            handler = getattr(self, f"_api_{canonical}", None)
            if canonical not in _METHODS or handler is None:
                raise ApiError(404, "Not Found")
            if self._failing.get(canonical):
                raise self._failing[canonical].pop(0)
            result = await handler(state, params, files)
        except ApiError as exc:
            if exc.code == 429:
                self.stats.count_429 += 1
            self.history.append(
                ApiCall(
                    canonical,
                    state.info.id if state else None,
                    params,
                    False,
                    exc.code,
                    exc.description,
                    at,
                )
            )
            body: dict[str, Any] = {
                "ok": False,
                "error_code": exc.code,
                "description": exc.description,
            }
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
            if exc.migrate_to_chat_id is not None:
                body["parameters"] = {"migrate_to_chat_id": exc.migrate_to_chat_id}
            self._touch()
            return self._reply(exc.code, body)
        assert state is not None
        self.history.append(ApiCall(canonical, state.info.id, params, True, None, None, at))
        chat_id = params.get("chat_id")
        recorded_chat = to_int(chat_id) if chat_id and chat_id.lstrip("-").isdigit() else None
        self.stats.calls.append(CallRecord(canonical, recorded_chat, at, state.info.id))
        self._touch()
        if self._slow_answers.get(canonical):
            await asyncio.sleep(self._slow_answers[canonical].pop(0))
        return self._reply(200, {"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] not in self._tokens:
            return self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        data = self._files.get(request.match_info["path"].rsplit("/", 1)[-1].split(".")[0])
        if data is None:
            return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        return web.Response(body=data, content_type="application/octet-stream")
