"""The chats the bot has seen, for `otklik chats`: which group ids and forum topics exist,
so an administrator copies ids instead of guessing them.

Adapters call `ChatLog.saw` for every update from a group, channel or room (never a private
chat: its id is a person's). It costs a dict look-up: a chat is written at most once per
WRITE_EVERY (or when a new topic or title shows up), off the update's path, in a task of
its own. Next: store/repos/chats.py keeps them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.model import SeenChat
from bot.ports import UnitOfWorkFactory
from bot.settings.config import Config

log = logging.getLogger(__name__)

WRITE_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class _Written:
    title: str
    topics: dict[str, str]  # topic id -> name, as last written
    at: datetime


class ChatLog:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock
        self._written: dict[tuple[str, str], _Written] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def saw(
        self,
        transport: str,
        chat: str,
        title: str,
        kind: str,
        topic: str | None = None,
        topic_name: str = "",
    ) -> None:
        """An update came from this chat (and forum topic). Returns at once; the write, when
        one is due, runs in its own task."""
        key = (transport, chat)
        now = self._clock.now()
        last = self._written.get(key)
        known = last.topics if last is not None else {}
        news = topic is not None and (
            topic not in known or bool(topic_name and known[topic] != topic_name)
        )
        if last is not None and not news and last.title == title and now - last.at < WRITE_EVERY:
            return
        topics = dict(known)
        if topic is not None:
            topics[topic] = topic_name or known.get(topic, "")
        self._written[key] = _Written(title, topics, now)
        seen = SeenChat(
            transport, chat, title, kind, {topic: topic_name} if topic else {}, now, now
        )
        task = asyncio.create_task(self._write(seen), name=f"seen-chat:{transport}:{chat}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, seen: SeenChat) -> None:
        try:
            async with self._uow() as uow:
                await uow.chats.saw(seen)
                await uow.commit()
        except Exception:  # a lost "seen" must never disturb the update that caused it
            log.exception("could not record chat %s:%s", seen.transport, seen.chat)
            self._written.pop((seen.transport, seen.chat), None)

    async def all(self) -> list[SeenChat]:
        async with self._uow() as uow:
            return await uow.chats.all()

    async def drain(self) -> None:
        """Wait for the writes under way (at stop, and in tests)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def config_uses(config: Config) -> dict[tuple[str, str], list[str]]:
    """What the config uses each chat for, by (transport, chat id): "department housing
    (topic 5)", "coordination chat", "discussion group", "digest recipient"."""
    uses: dict[tuple[str, str], list[str]] = {}

    def use(transport: str, chat: str, what: str) -> None:
        uses.setdefault((transport, chat), []).append(what)

    for department in config.departments:
        role = (
            "coordination chat"
            if department.id == config.coordination_department
            else f"department {department.id} chat"
        )
        if department.telegram is not None:
            topic = department.telegram.topic_id
            where = f" (topic {topic})" if topic is not None else ""
            use("telegram", str(department.telegram.chat_id), role + where)
        if department.matrix is not None:
            use("matrix", department.matrix.room_id, role)
    if config.telegram is not None:
        for group in config.telegram.discussion_groups:
            use("telegram", str(group.chat_id), "discussion group")
    for chat_id in config.digest.recipients.telegram_chat_ids:
        use("telegram", str(chat_id), "digest recipient")
    for room_id in config.digest.recipients.matrix_room_ids:
        use("matrix", room_id, "digest recipient")
    return uses
