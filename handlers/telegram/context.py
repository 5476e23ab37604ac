"""What every Telegram handler gets, injected through the Dispatcher (no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.types import Message, User

from bot.cases.service import CaseService
from bot.chat.inbound import Answer, ChatServices, Feedback, Inbound
from bot.clock import Clock
from bot.intake.intake import MentionIntake
from bot.messages.outbox import Destination
from bot.messages.texts import Texts
from bot.staff.directory import Directory
from bot.staff.rights import Actor

TRANSPORT = "telegram"
MAX_ALERT = 200  # answerCallbackQuery text limit


@dataclass(frozen=True, slots=True)
class TelegramContext:
    inbound: Inbound
    cases: CaseService
    directory: Directory
    texts: Texts
    clock: Clock
    # Where citizens' comments and direct messages go; None when nothing takes them in.
    intake: MentionIntake | None = None

    @classmethod
    def of(cls, services: ChatServices) -> TelegramContext:
        return cls(
            services.inbound,
            services.cases,
            services.directory,
            services.texts,
            services.clock,
            services.intake,
        )

    def actor(self, user: User) -> Actor:
        return self.directory.by_telegram(user.id, user.full_name)

    def toast(self, feedback: Feedback) -> str | None:
        """A press's feedback as answerCallbackQuery text, within its limit."""
        if feedback.notice is None:
            return None
        text = self.texts.t(feedback.notice["key"], **feedback.notice["params"])
        return text if len(text) <= MAX_ALERT else text[: MAX_ALERT - 1] + "…"


def where(message: Message) -> Destination:
    """The chat (and forum topic) a message was in, as an outbox destination."""
    thread = message.message_thread_id if message.is_topic_message else None
    return Destination(TRANSPORT, str(message.chat.id), str(thread) if thread else None)


def answer_under(message: Message, kind: str) -> Answer:
    """Our answer to a message, as a reply to it, keyed by its id ("cmd:<id>", "reply:<id>")
    so a re-delivered update is answered once."""
    return Answer(f"{kind}:{message.message_id}", under=str(message.message_id))
