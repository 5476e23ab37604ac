"""Webhooks: setWebhook, deleteWebhook, getWebhookInfo, and the delivery of queued updates by
HTTPS POST to the bot's URL (https://core.telegram.org/bots/api#setwebhook).

As Telegram does: the update is the JSON body, `X-Telegram-Bot-Api-Secret-Token` carries the
secret token when one is set, any answer other than 2xx (or no answer) is a failure that is
retried with back-off and shown in getWebhookInfo's last_error_*; at most max_connections
requests are in flight, and a chat's updates go one at a time, in order (telegram-bot-api
keeps one queue per chat). While a webhook is set, getUpdates answers 409 (updates.py).

One deliberate difference: plain http is accepted for loopback hosts, so tests need no TLS.

Test knobs (`set_webhook_targets`, `lose_webhook_answer`) model what sits between Telegram
and the bot: a load balancer spreading requests round-robin over instances, and a 200 lost on
the way back (Telegram then delivers the same update again).

Next: messages.py, sending, editing and deleting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tests.doubles.telegram_server.core import ServerCore
from tests.doubles.telegram_server.protocol import bad, json_arg, to_bool, to_int
from tests.doubles.telegram_server.state import BotInfo, BotState, Webhook, WebhookDelivery

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_SECRET_CHARS = re.compile(r"^[A-Za-z0-9_-]*$")
_PORTS = (80, 88, 443, 8443)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class WebhookApi(ServerCore):
    """The webhook methods and the delivery loop."""

    # Back-off between attempts of one update (real seconds), and how long an answer may take.
    webhook_retry_base_s = 0.05
    webhook_retry_max_s = 1.0
    webhook_timeout_s = 10.0

    # ---- Bot API ------------------------------------------------------------------------

    async def _api_setWebhook(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> bool:
        url = params.get("url", "")
        if not url:
            self._drop_webhook(state, to_bool(params.get("drop_pending_updates")))
            return True
        _check_url(url)
        secret = params.get("secret_token") or None
        if secret is not None:
            if len(secret) > 256:
                raise bad("secret token is too long")
            if not _SECRET_CHARS.match(secret):
                raise bad("secret token contains unallowed characters")
        if "allowed_updates" in params and params["allowed_updates"] != "":
            allowed = json_arg(params["allowed_updates"], "allowed updates")
            if isinstance(allowed, list):
                state.allowed_updates = frozenset(str(a) for a in allowed) or None
        if to_bool(params.get("drop_pending_updates")):
            state.updates.clear()
        connections = min(max(to_int(params.get("max_connections"), 40), 1), 100)
        state.webhook = Webhook(url, secret, connections)
        self._touch()  # a waiting getUpdates ends with 409
        if state.info.id not in self._deliveries:
            self._deliveries[state.info.id] = asyncio.create_task(
                self._deliver(state), name=f"webhook-{state.info.id}"
            )
        return True

    async def _api_deleteWebhook(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> bool:
        self._drop_webhook(state, to_bool(params.get("drop_pending_updates")))
        return True

    async def _api_getWebhookInfo(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(state.updates),
        }
        hook = state.webhook
        if hook is None:
            return info
        info["url"] = hook.url
        info["max_connections"] = hook.max_connections
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
        if state.allowed_updates is not None:
            info["allowed_updates"] = sorted(state.allowed_updates)
        return info

    def _drop_webhook(self, state: BotState, drop_pending: bool) -> None:
        state.webhook = None
        if drop_pending:
            state.updates.clear()
        delivery = self._deliveries.pop(state.info.id, None)
        if delivery is not None:
            delivery.cancel()  # requests in flight finish on their own; nothing new starts
        state.retry_at.clear()
        state.attempts.clear()
        self._touch()

    # ---- test side ----------------------------------------------------------------------

    def set_webhook_targets(self, bot: BotInfo, urls: list[str]) -> None:
        """Deliver round-robin across these URLs (retries too), not to the webhook's URL: a
        load balancer in front of several instances. An empty list goes back to the URL."""
        state = self._bots[bot.id]
        state.webhook_targets = list(urls)
        state.target_turn = 0

    def lose_webhook_answer(self, bot: BotInfo, update_id: int | None = None) -> int:
        """The next 2xx for this update (default: the latest queued) is lost on its way back:
        Telegram counts a failure and delivers the update again. Returns the update id."""
        state = self._bots[bot.id]
        if update_id is None:
            if not state.updates:
                raise ValueError("no update is queued")
            update_id = int(state.updates[-1]["update_id"])
        state.lost_answers.add(update_id)
        return update_id

    def next_update_id(self, bot: BotInfo) -> int:
        """The id the bot's next update will have."""
        return self._bots[bot.id].next_update_id

    def in_flight(self, bot: BotInfo) -> set[int]:
        """Update ids being POSTed to the webhook right now."""
        return set(self._bots[bot.id].in_flight)

    def webhook_of(self, bot: BotInfo) -> Webhook | None:
        """The bot's webhook as set now (None: none, the bot polls)."""
        return self._bots[bot.id].webhook

    def deliveries(self, update_id: int | None = None) -> list[WebhookDelivery]:
        return [d for d in self.webhook_deliveries if update_id in (None, d.update_id)]

    # ---- delivery -----------------------------------------------------------------------

    async def _deliver(self, state: BotState) -> None:
        """Start a POST for every update whose chat has none in flight or waiting for a retry,
        up to max_connections; wake on every state change or the next retry."""
        loop = asyncio.get_running_loop()
        while state.webhook is not None and not self._closing:
            event = self._changed
            now = loop.time()
            busy: set[object] = set()
            wake_at: float | None = None
            for update in list(state.updates):
                update_id = int(update["update_id"])
                queue = _queue_of(update)
                if queue in busy:
                    continue  # an earlier update of this chat goes first
                busy.add(queue)
                if update_id in state.in_flight:
                    continue
                due = state.retry_at.get(update_id, 0.0)
                if due > now:
                    wake_at = due if wake_at is None else min(wake_at, due)
                    continue
                if len(state.in_flight) >= state.webhook.max_connections:
                    break
                state.in_flight.add(update_id)
                post = asyncio.create_task(
                    self._post(state, update), name=f"webhook-post-{update_id}"
                )
                self._webhook_posts.add(post)
                post.add_done_callback(self._webhook_posts.discard)
            timeout = None if wake_at is None else max(wake_at - now, 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)

    async def _post(self, state: BotState, update: dict[str, Any]) -> None:
        update_id = int(update["update_id"])
        hook = state.webhook
        try:
            if hook is None:
                return
            url = self._next_target(state, hook)
            status, error = await self._send(url, update, hook.secret_token)
            if error is None and update_id in state.lost_answers:
                state.lost_answers.discard(update_id)
                error = "Read timeout expired"  # the 200 never reached Telegram
            self.webhook_deliveries.append(WebhookDelivery(update_id, url, status, error))
            if error is None:
                state.updates = [u for u in state.updates if u["update_id"] != update_id]
                state.retry_at.pop(update_id, None)
                state.attempts.pop(update_id, None)
                return
            attempts = state.attempts[update_id] = state.attempts.get(update_id, 0) + 1
            back_off = min(
                self.webhook_retry_base_s * 2 ** (attempts - 1), self.webhook_retry_max_s
            )
            state.retry_at[update_id] = asyncio.get_running_loop().time() + back_off
            hook.last_error_date = self._now()
            hook.last_error_message = error
        finally:
            state.in_flight.discard(update_id)
            self._touch()

    def _next_target(self, state: BotState, hook: Webhook) -> str:
        if not state.webhook_targets:
            return hook.url
        url = state.webhook_targets[state.target_turn % len(state.webhook_targets)]
        state.target_turn += 1
        return url

    async def _send(
        self, url: str, update: dict[str, Any], secret: str | None
    ) -> tuple[int | None, str | None]:
        if self._webhook_client is None:
            self._webhook_client = aiohttp.ClientSession()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        try:
            async with self._webhook_client.post(
                url,
                data=json.dumps(update, ensure_ascii=False).encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout_s),
            ) as response:
                await response.read()
        except TimeoutError:
            return None, "Read timeout expired"
        except aiohttp.ClientError:
            return None, "Connection refused"
        if 200 <= response.status < 300:
            return response.status, None
        return (
            response.status,
            f"Wrong response from the webhook: {response.status} {response.reason}",
        )


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "http" and host in _LOOPBACK:
        return  # tests only (see the module's docstring)
    if parts.scheme != "https" or not host:
        raise bad("bad webhook: An HTTPS URL must be provided for webhook")
    if (parts.port or 443) not in _PORTS:
        raise bad("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")


def _queue_of(update: dict[str, Any]) -> object:
    """The chat an update belongs to: its updates are delivered one at a time, in order."""
    for kind, payload in update.items():
        if kind == "update_id" or not isinstance(payload, dict):
            continue
        chat = payload.get("chat")
        if chat is None and isinstance(payload.get("message"), dict):
            chat = payload["message"].get("chat")
        if isinstance(chat, dict) and "id" in chat:
            return ("chat", chat["id"])
        sender = payload.get("from")
        if isinstance(sender, dict) and "id" in sender:
            return ("user", sender["id"])
    return ("update", update["update_id"])
