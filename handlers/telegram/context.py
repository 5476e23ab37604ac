"""What every Telegram handler gets, injected through the Dispatcher (no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.types import Message, User

from bot.cases.lifecycle import DomainError
from bot.cases.rights import Actor
from bot.cases.service import CaseService
from bot.chat.answers import Answers
from bot.chat.texts import Texts
from bot.clock import Clock
from bot.intake.intake import MentionIntake
from bot.settings.directory import Destination, Directory

TRANSPORT = "telegram"
MAX_ALERT = 200  # answerCallbackQuery text limit


@dataclass(frozen=True, slots=True)
class TelegramContext:
    cases: CaseService
    directory: Directory
    texts: Texts
    clock: Clock
    coordination: str  # the coordination department's id
    answers: Answers
    # Where citizens' comments and direct messages go; None when nothing takes them in.
    intake: MentionIntake | None = None

    def actor(self, user: User) -> Actor:
        return self.directory.by_telegram(user.id, user.full_name)

    def error_text(self, error: DomainError) -> str:
        return self.texts.t(f"error.{error.code}", **error.params)

    def alert(self, text: str) -> str:
        return text if len(text) <= MAX_ALERT else text[: MAX_ALERT - 1] + "…"


def where(message: Message) -> Destination:
    """The chat (and forum topic) a message was in, as an outbox destination."""
    thread = message.message_thread_id if message.is_topic_message else None
    return Destination(TRANSPORT, str(message.chat.id), str(thread) if thread else None)
