"""At start, after the first sync: is the bot in every configured department room, and may
it post there (messages, and the reactions that stand for buttons)? Power levels come from
the synced room state. Reported by bot/chat/checks.py."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from nio import AsyncClient

from bot.chat.checks import ChatProblem, ConfiguredChat, Problem

# What the bot sends into a department room (handlers/matrix/transport.py).
SENT_EVENTS = ("m.room.message", "m.reaction")


def check_rooms(
    client: AsyncClient, chats: Sequence[ConfiguredChat], joining: Collection[str] = ()
) -> list[ChatProblem]:
    """`joining`: rooms joined during this sync (on an invite), not yet in the client's
    state: counted as joined, their power levels unknown until the next sync."""
    problems = []
    for configured in chats:
        room = client.rooms.get(configured.chat)
        if room is None:
            if configured.chat not in joining:
                problems.append(ChatProblem(configured, Problem.NOT_JOINED))
            continue
        levels = room.power_levels
        for event_type in SENT_EVENTS:
            if not levels.can_user_send_message(client.user_id, event_type):
                has = levels.get_user_level(client.user_id)
                needs = levels.get_message_event_required_level(event_type)
                problems.append(ChatProblem(configured, Problem.LOW_POWER, f"{has}/{needs}"))
                break
    return problems
