"""At start: is every configured department chat usable? Per chat, getChat and getChatMember
for the bot; per forum topic, sendChatAction into it (the Bot API has no getForumTopic, and
a chat action is the one call that names a topic without posting anything: "message thread
not found" for a topic that does not exist). What the bot needs: to be a member that may
send messages. Administrator rights are needed only to write in a closed topic, and, with
privacy mode on, to be sure to get commands written without the bot's @name. Reported by
bot/chat/checks.py.
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
from aiogram.types import ChatFullInfo, ChatMemberRestricted, User
from aiogram.types.chat_member_union import ChatMemberUnion as ChatMember

from bot.chat.checks import ChatProblem, ConfiguredChat, Problem

_GONE = frozenset({"left", "kicked"})
_ADMINS = frozenset({"administrator", "creator"})


async def check_chats(bot: Bot, me: User, chats: Sequence[ConfiguredChat]) -> list[ChatProblem]:
    """Never raises: a misconfigured chat must not stop the rest of Otklik."""
    problems: list[ChatProblem] = []
    usable: dict[str, tuple[bool, bool]] = {}  # chat -> (bot may write there, is a forum)
    for configured in chats:
        chat_id = configured.chat
        if chat_id not in usable:
            found, forum = await _check_chat(bot, me, configured)
            problems += found
            usable[chat_id] = (all(p.problem is Problem.PRIVACY for p in found), forum)
        may_write, forum = usable[chat_id]
        if configured.thread is None or not may_write:
            continue
        if not forum:
            problems.append(ChatProblem(configured, Problem.NOT_FORUM, configured.thread))
            continue
        try:
            await bot.send_chat_action(
                int(chat_id), "typing", message_thread_id=int(configured.thread)
            )
        except TelegramBadRequest as error:
            closed = "closed" in error.message.lower()
            problem = Problem.TOPIC_CLOSED if closed else Problem.TOPIC_MISSING
            problems.append(ChatProblem(configured, problem, configured.thread))
        except TelegramAPIError as error:
            problems.append(ChatProblem(configured, Problem.CANNOT_CHECK, error.message))
    return problems


async def _check_chat(
    bot: Bot, me: User, configured: ConfiguredChat
) -> tuple[list[ChatProblem], bool]:
    """What is wrong with the chat, and whether it has topics."""
    problems, forum = _membership(configured, *await _look_up(bot, me, configured))
    return problems, forum


async def _look_up(
    bot: Bot, me: User, configured: ConfiguredChat
) -> tuple[ChatFullInfo | None, ChatMember | None, User, ChatProblem | None]:
    chat_id = int(configured.chat)
    try:
        chat = await bot.get_chat(chat_id)
        member = await bot.get_chat_member(chat_id, me.id)
    except TelegramMigrateToChat as error:
        migrated = str(error.migrate_to_chat_id)
        return None, None, me, ChatProblem(configured, Problem.MIGRATED, migrated)
    except TelegramForbiddenError:  # kicked
        return None, None, me, ChatProblem(configured, Problem.NOT_MEMBER)
    except TelegramBadRequest as error:
        if "not found" in error.message.lower():
            return None, None, me, ChatProblem(configured, Problem.NOT_FOUND)
        return None, None, me, ChatProblem(configured, Problem.CANNOT_CHECK, error.message)
    except TelegramAPIError as error:
        return None, None, me, ChatProblem(configured, Problem.CANNOT_CHECK, error.message)
    return chat, member, me, None


def _membership(
    configured: ConfiguredChat,
    chat: ChatFullInfo | None,
    member: ChatMember | None,
    me: User,
    failed: ChatProblem | None,
) -> tuple[list[ChatProblem], bool]:
    if failed is not None or chat is None or member is None:
        return [failed] if failed is not None else [], False
    forum = bool(chat.is_forum)
    status = member.status
    if status in _GONE or (isinstance(member, ChatMemberRestricted) and not member.is_member):
        return [ChatProblem(configured, Problem.NOT_MEMBER)], forum
    if isinstance(member, ChatMemberRestricted) and not member.can_send_messages:
        return [ChatProblem(configured, Problem.CANNOT_SEND)], forum
    if status not in _ADMINS:
        permissions = chat.permissions
        if permissions is not None and permissions.can_send_messages is False:
            return [ChatProblem(configured, Problem.CANNOT_SEND)], forum  # members may not write
        if not me.can_read_all_group_messages:
            return [ChatProblem(configured, Problem.PRIVACY)], forum
    return [], forum
