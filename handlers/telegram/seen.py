"""Every update's chat, noted for `otklik chats` (bot/chat/seen.py) and logged at DEBUG, and
a group's move to a supergroup (a new id) logged as a warning. An outer middleware: it sees
every update before any router does, and never stops one."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.types import Chat, Message, TelegramObject, Update

from bot.chat.seen import ChatLog
from handlers.telegram.context import TRANSPORT

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class SeenChats:
    """aiogram outer middleware for `Dispatcher.update`."""

    def __init__(self, chats: ChatLog | None) -> None:
        self.chats = chats

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Update):
            try:
                self._note(event)
            except Exception:  # noting a chat must never cost the update
                log.exception("telegram: could not note the chat of update %s", event.update_id)
        return await handler(event, data)

    def _note(self, update: Update) -> None:
        message = (
            update.message
            or update.edited_message
            or update.channel_post
            or update.edited_channel_post
        )
        chat: Chat | None = None
        if message is not None:
            chat = message.chat
        elif update.callback_query is not None and update.callback_query.message is not None:
            chat = update.callback_query.message.chat
        elif update.my_chat_member is not None:
            chat = update.my_chat_member.chat
        elif update.chat_member is not None:
            chat = update.chat_member.chat
        elif update.message_reaction is not None:
            chat = update.message_reaction.chat
        if chat is None:
            return
        if chat.type == "private":
            # A private chat's id is the person's: neither logged nor kept.
            log.debug("telegram: update %s from a private chat", update.update_id)
            return
        topic, topic_name = _topic(message) if message is not None else (None, "")
        log.debug(
            "telegram: update %s from %s %s «%s»%s",
            update.update_id,
            chat.type,
            chat.id,
            chat.title or "",
            f" topic {topic}" if topic else "",
        )
        if message is not None and message.migrate_to_chat_id:
            log.warning(
                "telegram: group %s «%s» became supergroup %s: if the config names %s, "
                "put %s there",
                chat.id,
                chat.title or "",
                message.migrate_to_chat_id,
                chat.id,
                message.migrate_to_chat_id,
            )
        if self.chats is not None:
            self.chats.saw(TRANSPORT, str(chat.id), chat.title or "", chat.type, topic, topic_name)


def _topic(message: Message) -> tuple[str | None, str]:
    """The forum topic a message is in and, when the message says it, the topic's name."""
    if not message.is_topic_message or not message.message_thread_id:
        return None, ""
    thread = message.message_thread_id
    name = ""
    for candidate in (message, message.reply_to_message):
        if candidate is None:
            continue
        created = candidate.forum_topic_created
        if created is not None and (candidate.message_id == thread or candidate is message):
            name = created.name
        elif candidate.forum_topic_edited is not None and candidate.forum_topic_edited.name:
            name = candidate.forum_topic_edited.name
        if name:
            break
    return str(thread), name
