"""What every Matrix handler gets from the adapter (no globals), and the small translations
they share: a room as a destination, a sender as an actor, an event's answer key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.cases.service import CaseService
from bot.chat.inbound import Answer, ChatServices, Inbound
from bot.messages.outbox import Destination
from bot.messages.views import MessageRef, parse_ref
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from handlers.matrix.shown import ShownCards

TRANSPORT = "matrix"
Event = dict[str, Any]  # an event's JSON as the homeserver sent it
# The ref_key of a message the transport has just sent, by room and event id (or None).
JustSent = Callable[[str, str], str | None]


@dataclass(frozen=True, slots=True)
class MatrixContext:
    inbound: Inbound
    cases: CaseService
    directory: Directory
    just_sent: JustSent
    shown: ShownCards  # the card version each room shows, from its timeline

    @classmethod
    def of(cls, services: ChatServices, just_sent: JustSent) -> MatrixContext:
        cases = services.cases
        return cls(services.inbound, cases, services.directory, just_sent, ShownCards(cases))

    async def our_message(
        self, room_id: str, event_id: str, wait: bool = False
    ) -> MessageRef | None:
        """What a message of ours is about, also while its delivery is still under way (the
        transport knows the id before the outbox has recorded it)."""
        sent = self.just_sent(room_id, event_id)
        if sent is not None:
            return parse_ref(sent)
        return await self.inbound.our_message(where(room_id), event_id, wait=wait)

    def actor(self, event: Event) -> Actor:
        # Rights come from the config's staff list, never from power levels.
        return self.directory.by_matrix(str(event.get("sender")))


def where(room_id: str) -> Destination:
    return Destination(TRANSPORT, room_id)


def answer_to(event: Event, thread_root: str | None) -> Answer:
    """Our answer to an event, keyed by it so a replayed event says nothing twice; in the
    card's thread when there is one."""
    return Answer(f"answer:{event.get('event_id')}", under=thread_root)
