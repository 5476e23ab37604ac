"""At start: is every configured department chat usable? Per chat, getChat and getChatMember
for the bot; per forum topic, sendChatAction into it. The Bot API has no getForumTopic, and a
chat action is the one call that names a topic without posting anything: the API answers
"message thread not found" for a thread it does not know as a topic. It is not a proof: the
Bot API has been seen to answer True for a topic deleted since (tdlib/telegram-bot-api#732),
and then the first card into it fails in the outbox, which logs why. What the bot needs: to
be a member that may send messages. Administrator rights only to write in a closed topic, and,
with privacy mode on, to be sure to get commands written without the bot's @name. Reported
by bot/chat/checks.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
)
from aiogram.types import ChatMemberRestricted, User

from bot.chat.checks import ChatProblem, ConfiguredChat, Problem

_GONE = frozenset({"left", "kicked"})
_ADMINS = frozenset({"administrator", "creator"})


async def check_chats(bot: Bot, me: User, chats: Sequence[ConfiguredChat]) -> list[ChatProblem]:
    """Never raises: a misconfigured chat must not stop the rest of Otklik. `me`: getMe's
    answer (privacy mode is can_read_all_group_messages)."""
    problems: list[ChatProblem] = []
    checked: dict[str, tuple[bool, bool]] = {}  # chat -> (the bot may write there, has topics)
    for configured in chats:
        if configured.chat not in checked:  # one forum may hold several departments' topics
            problem, forum = await _check_chat(bot, me, configured)
            if problem is not None:
                problems.append(problem)
            may_write = problem is None or problem.problem is Problem.PRIVACY
            checked[configured.chat] = (may_write, forum)
        may_write, forum = checked[configured.chat]
        if configured.thread is not None and may_write:
            problem = await _check_topic(bot, configured, forum)
            if problem is not None:
                problems.append(problem)
    return problems


async def _check_chat(
    bot: Bot, me: User, configured: ConfiguredChat
) -> tuple[ChatProblem | None, bool]:
    """What is wrong with the chat, if anything, and whether it has topics."""
    chat_id = int(configured.chat)
    try:
        chat = await bot.get_chat(chat_id)
        member = await bot.get_chat_member(chat_id, me.id)
    except TelegramMigrateToChat as error:
        return ChatProblem(configured, Problem.MIGRATED, str(error.migrate_to_chat_id)), False
    except TelegramForbiddenError:  # left or kicked
        return ChatProblem(configured, Problem.NOT_MEMBER), False
    except TelegramBadRequest as error:
        if "chat not found" in error.message.lower():
            return ChatProblem(configured, Problem.NOT_FOUND), False
        return ChatProblem(configured, Problem.CANNOT_CHECK, error.message), False
    except TelegramAPIError as error:
        return ChatProblem(configured, Problem.CANNOT_CHECK, error.message), False
    forum = bool(chat.is_forum)
    restricted = member if isinstance(member, ChatMemberRestricted) else None
    if member.status in _GONE or (restricted is not None and not restricted.is_member):
        return ChatProblem(configured, Problem.NOT_MEMBER), forum
    if restricted is not None and not restricted.can_send_messages:
        return ChatProblem(configured, Problem.CANNOT_SEND), forum
    if member.status not in _ADMINS:
        if chat.permissions is not None and chat.permissions.can_send_messages is False:
            return ChatProblem(configured, Problem.CANNOT_SEND), forum  # members may not write
        if not me.can_read_all_group_messages:
            return ChatProblem(configured, Problem.PRIVACY), forum
    return None, forum


async def _check_topic(bot: Bot, configured: ConfiguredChat, forum: bool) -> ChatProblem | None:
    assert configured.thread is not None
    if not forum:
        return ChatProblem(configured, Problem.NOT_FORUM, configured.thread)
    try:
        await bot.send_chat_action(
            int(configured.chat), "typing", message_thread_id=int(configured.thread)
        )
    except TelegramBadRequest as error:
        closed = "closed" in error.message.lower()
        problem = Problem.TOPIC_CLOSED if closed else Problem.TOPIC_MISSING
        return ChatProblem(configured, problem, configured.thread)
    except TelegramAPIError as error:
        return ChatProblem(configured, Problem.CANNOT_CHECK, error.message)
    return None
