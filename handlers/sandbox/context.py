"""What every sandbox handler gets (no globals), and who a browser acts as."""

from __future__ import annotations

from dataclasses import dataclass

from bot.chat.inbound import ChatServices, Feedback, Inbound
from bot.clock import Clock
from bot.intake.intake import MentionIntake
from bot.messages.outbox import Destination
from bot.messages.texts import Texts
from bot.staff.directory import SANDBOX, Directory
from bot.staff.rights import Actor

TRANSPORT = SANDBOX
# "Act as" a person the config does not know: what any stranger in a work chat is.
STRANGER = "stranger"


@dataclass(frozen=True, slots=True)
class SandboxContext:
    inbound: Inbound
    directory: Directory
    texts: Texts
    clock: Clock
    intake: MentionIntake | None = None

    @classmethod
    def of(cls, services: ChatServices) -> SandboxContext:
        return cls(
            services.inbound, services.directory, services.texts, services.clock, services.intake
        )

    def actor(self, person: str) -> Actor:
        """A staff member by id; anyone else (STRANGER included) is a stranger, as a Telegram
        account the config does not list is."""
        staff = self.directory.by_staff_id(person) if person != STRANGER else None
        return staff or Actor.stranger(f"{TRANSPORT}:{STRANGER}", self.texts.t("sandbox.stranger"))

    def toast(self, feedback: Feedback) -> str | None:
        """A press's feedback as the text Telegram's toast shows."""
        if feedback.notice is None:
            return None
        return self.texts.t(feedback.notice["key"], **feedback.notice["params"])


def where(chat: str) -> Destination:
    return Destination(TRANSPORT, chat)
