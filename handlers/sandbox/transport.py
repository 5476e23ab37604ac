"""The outbox's sandbox transport: renders a view and shows it in the chat's page.

It is delivered like any other transport, by the outbox worker, with message ids the outbox
records as refs, so a card's edits and deletions find it. A render bug is a
PermanentFailure, as in Telegram: retrying cannot fix it and would block the chat.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.messages.outbox import Delivery, DeliveryResult, OutboxOp, PermanentFailure
from handlers.sandbox.context import TRANSPORT
from handlers.sandbox.render import SandboxRenderer
from handlers.sandbox.shown import ChatLog

log = logging.getLogger(__name__)


class SandboxTransport:
    name = TRANSPORT

    def __init__(self, chats: ChatLog, renderer: SandboxRenderer) -> None:
        self.chats = chats
        self.renderer = renderer

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        item = delivery.item
        if item.op is OutboxOp.DELETE:
            if delivery.target_ref:
                self.chats.delete(item.chat, delivery.target_ref)
            return DeliveryResult(delivery.target_ref)
        shown = self._render(delivery)
        if item.op is OutboxOp.EDIT:
            if not delivery.target_ref:
                raise PermanentFailure("edit without a message to edit")
            edited = self.chats.edit(item.chat, delivery.target_ref, shown)
            if edited is not None:
                return DeliveryResult(delivery.target_ref)
            # Not on the page (the bot restarted, or it scrolled off): show it again.
        elif item.op is OutboxOp.REPLY and delivery.reply_to_ref:
            shown["reply_to"] = delivery.reply_to_ref
        message = self.chats.post(item.chat, shown)
        return DeliveryResult(message["id"])

    def _render(self, delivery: Delivery) -> dict[str, Any]:
        try:
            if delivery.item.op is OutboxOp.PHOTO:
                shown = self.renderer.photo(delivery)
            else:
                shown = self.renderer.render(delivery.item.payload)
        except PermanentFailure:
            raise
        except Exception as exc:
            log.exception("sandbox: outbox item %s cannot be rendered", delivery.item.id)
            raise PermanentFailure(f"cannot render: {type(exc).__name__}: {exc}") from exc
        return {**shown, "from": "bot", "case_id": delivery.item.case_id}
