"""A stand-in for a chat network (Telegram and Matrix have their own real tests).

It records what it was asked to send and can fail on demand. With `dedupe_by_key` it
behaves like a Matrix homeserver, which drops a repeated transaction id.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bot.messages.outbox import Delivery, DeliveryResult, OutboxOp, PermanentFailure, RetryLater


@dataclass
class Sent:
    op: OutboxOp
    chat: str
    message_id: str
    payload: dict[str, object]
    key: str


@dataclass
class RecordingTransport:
    name: str = "telegram"
    dedupe_by_key: bool = False
    failures: list[Exception] = field(default_factory=list)  # raised, in order, before success
    hang: asyncio.Event | None = None  # when set: block inside deliver until released
    sent: list[Sent] = field(default_factory=list)
    messages: dict[str, dict[str, object]] = field(default_factory=dict)  # id -> latest payload
    _keys: dict[str, str] = field(default_factory=dict)
    _next_id: int = 100

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        item = delivery.item
        if self.hang is not None:
            await self.hang.wait()
        if self.failures:
            raise self.failures.pop(0)
        if self.dedupe_by_key and item.idempotency_key in self._keys:
            return DeliveryResult(self._keys[item.idempotency_key])
        if item.op in (OutboxOp.POST, OutboxOp.REPLY, OutboxOp.PHOTO):
            self._next_id += 1
            message_id = str(self._next_id)
            self.messages[message_id] = item.payload
        elif item.op is OutboxOp.EDIT:
            if delivery.target_ref not in self.messages:
                raise PermanentFailure("message to edit not found")
            message_id = delivery.target_ref
            self.messages[message_id] = item.payload
        else:
            message_id = delivery.target_ref or ""
            self.messages.pop(message_id, None)
        self._keys[item.idempotency_key] = message_id
        self.sent.append(Sent(item.op, item.chat, message_id, item.payload, item.idempotency_key))
        return DeliveryResult(message_id)

    def posts(self) -> list[Sent]:
        return [s for s in self.sent if s.op is OutboxOp.POST]


def rate_limited(after: float = 3.0) -> RetryLater:
    return RetryLater("Too Many Requests", after=after)
