"""The chats the bot has seen (bot/chat/seen.py): one row per group, channel or room."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.model import SeenChat
from store.models import SeenChatRow


class SqlSeenChatRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def saw(self, chat: SeenChat) -> None:
        """Insert the chat, or move its last_seen on and merge its title and topics."""
        row = await self._s.scalar(
            select(SeenChatRow).where(
                SeenChatRow.transport == chat.transport, SeenChatRow.chat == chat.chat
            )
        )
        if row is None:
            self._s.add(
                SeenChatRow(
                    transport=chat.transport,
                    chat=chat.chat,
                    title=chat.title[:255],
                    kind=chat.kind,
                    topics=dict(chat.topics),
                    first_seen=chat.first_seen,
                    last_seen=chat.last_seen,
                )
            )
        else:
            row.title = chat.title[:255] or row.title
            row.kind = chat.kind
            topics = dict(row.topics)
            for topic, name in chat.topics.items():
                topics[topic] = name or topics.get(topic, "")
            row.topics = topics  # a new dict: the JSON column sees the change
            row.last_seen = max(row.last_seen, chat.last_seen)
        await self._s.flush()

    async def all(self) -> list[SeenChat]:
        rows = await self._s.scalars(
            select(SeenChatRow).order_by(SeenChatRow.transport, SeenChatRow.last_seen.desc())
        )
        return [
            SeenChat(
                row.transport,
                row.chat,
                row.title,
                row.kind,
                {str(k): str(v) for k, v in row.topics.items()},
                row.first_seen,
                row.last_seen,
            )
            for row in rows
        ]
