"""What is wrong with the configured chats, found at start by each adapter (Telegram:
handlers/telegram/checks.py; Matrix: handlers/matrix/checks.py) and said twice: a WARNING
per problem naming the config path, and one message to the coordination chat through the
outbox. The words are the playbook's (messages.yaml `chat_check`), in the configured language.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from bot.cases.service import CaseService
from bot.messages.texts import Texts
from bot.messages.views import notice_view
from bot.settings.config import Config
from bot.staff.directory import Directory

log = logging.getLogger(__name__)


class Problem(StrEnum):
    NOT_FOUND = "not_found"  # the bot cannot see the chat: a wrong id, or it was never added
    NOT_MEMBER = "not_member"  # the bot left or was removed
    CANNOT_SEND = "cannot_send"  # a member who may not write there
    MIGRATED = "migrated"  # a group became a supergroup; detail: the new id
    NOT_FORUM = "not_forum"  # a topic_id for a chat without topics; detail: the topic id
    TOPIC_MISSING = "topic_missing"  # detail: the topic id
    TOPIC_CLOSED = "topic_closed"  # detail: the topic id
    PRIVACY = "privacy"  # a plain member in privacy mode: may miss commands
    NOT_JOINED = "not_joined"  # Matrix: not in the room
    LOW_POWER = "low_power"  # Matrix: detail: "has/needs"
    CANNOT_CHECK = "cannot_check"  # the check itself failed; detail: the error


@dataclass(frozen=True, slots=True)
class ConfiguredChat:
    """A department's chat as the config names it."""

    path: str  # "departments[0].telegram": where to fix it
    department: str
    chat: str
    thread: str | None = None  # a Telegram forum topic


@dataclass(frozen=True, slots=True)
class ChatProblem:
    chat: ConfiguredChat
    problem: Problem
    detail: str = ""


def configured_chats(config: Config, transport: str) -> list[ConfiguredChat]:
    found = []
    for i, department in enumerate(config.departments):
        if transport == "telegram" and department.telegram is not None:
            topic = department.telegram.topic_id
            found.append(
                ConfiguredChat(
                    f"departments[{i}].telegram",
                    department.id,
                    str(department.telegram.chat_id),
                    str(topic) if topic is not None else None,
                )
            )
        elif transport == "matrix" and department.matrix is not None:
            found.append(
                ConfiguredChat(f"departments[{i}].matrix", department.id, department.matrix.room_id)
            )
    return found


class ChatProblems:
    def __init__(self, cases: CaseService, directory: Directory, texts: Texts) -> None:
        self._cases = cases
        self._directory = directory
        self._texts = texts

    async def report(self, transport: str, problems: list[ChatProblem]) -> None:
        """Log each problem and send one message about them all to the coordination chat."""
        if not problems:
            return
        lines = []
        for p in problems:
            text = self._texts.t(f"chat_check.{p.problem.value}", chat=p.chat.chat, detail=p.detail)
            log.warning("%s: %s (%s): %s", transport, p.chat.path, p.chat.department, text)
            lines.append(
                {
                    "department": self._directory.department_name(p.chat.department),
                    "path": p.chat.path,
                    "text": text,
                }
            )
        view = notice_view("chat_check.report", transport=transport, problems=lines)
        key = f"chat-check:{transport}:{self._cases.now().isoformat()}"  # one per start
        for where in self._directory.destinations(self._directory.coordination):
            await self._cases.send(where, view, key=key)
