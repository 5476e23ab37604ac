"""What the sandbox's chats show: the last messages of each chat, in memory, and the browsers
listening for changes (server-sent events).

Only the page's copy lives here. What the bot knows of its messages (which message is which
case's card) is in the database like for the other transports, so a restart loses the pages'
history and nothing else: the next edit of a card posts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import OrderedDict
from typing import Any

Message = dict[str, Any]  # JSON for the page: handlers/sandbox/render.py makes the bot's
Event = dict[str, Any]

# A browser that lags this far behind is dropped; it reconnects and reloads the chat.
LISTENER_BACKLOG = 500


def new_message_id() -> str:
    """Random, not counted: ids must not repeat after a restart, when the database still
    knows the old ones."""
    return secrets.token_hex(8)


class ChatLog:
    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._chats: dict[str, OrderedDict[str, Message]] = {}
        self._listeners: set[asyncio.Queue[Event | None]] = set()
        self._closed = False  # stopping: a browser that reconnects is told so at once

    # --- the chats ---

    def messages(self, chat: str) -> list[Message]:
        shown = self._chats.get(chat)
        return list(shown.values()) if shown is not None else []

    def get(self, chat: str, message_id: str) -> Message | None:
        shown = self._chats.get(chat)
        return shown.get(message_id) if shown is not None else None

    def post(self, chat: str, message: Message) -> Message:
        message = {**message, "id": new_message_id(), "chat": chat}
        shown = self._chats.setdefault(chat, OrderedDict())
        shown[message["id"]] = message
        while len(shown) > self._keep:
            shown.popitem(last=False)
        self._publish({"type": "post", "chat": chat, "message": message})
        return message

    def edit(self, chat: str, message_id: str, message: Message) -> Message | None:
        """The message replaced in place; None when it is not shown (any more)."""
        shown = self._chats.get(chat)
        if shown is None or message_id not in shown:
            return None
        old = shown[message_id]
        edited = {**message, "id": message_id, "chat": chat, "reply_to": old.get("reply_to")}
        edited["edited"] = True
        shown[message_id] = edited
        self._publish({"type": "edit", "chat": chat, "message": edited})
        return edited

    def delete(self, chat: str, message_id: str) -> None:
        shown = self._chats.get(chat)
        if shown is not None and shown.pop(message_id, None) is not None:
            self._publish({"type": "delete", "chat": chat, "id": message_id})

    # --- the browsers ---

    def listen(self) -> asyncio.Queue[Event | None]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue(LISTENER_BACKLOG)
        if self._closed:
            queue.put_nowait(None)
        else:
            self._listeners.add(queue)
        return queue

    def forget(self, queue: asyncio.Queue[Event | None]) -> None:
        self._listeners.discard(queue)

    def close(self) -> None:
        """Every listener's stream ends (None), so the server can stop."""
        self._closed = True
        for queue in list(self._listeners):
            self._drop(queue)

    def _publish(self, event: Event) -> None:
        for queue in list(self._listeners):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self._drop(queue)

    def _drop(self, queue: asyncio.Queue[Event | None]) -> None:
        self._listeners.discard(queue)
        while True:  # make room for the end marker
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
                return
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
