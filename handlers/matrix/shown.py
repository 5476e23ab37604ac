"""Which version of each card a room shows, read from the room's own timeline.

A Telegram button carries the card version it was drawn for; a Matrix reaction carries only
the key and the card's event. So every card the bot posts or edits names its case and version
in its content (CARD_FIELD), and the sync loop, which sees the room's events in the
homeserver's order, notes the latest one before each reaction: that is the card the person
reacted on. A reaction made before an edit reached the room is then refused as stale, as a
press on an old Telegram card is. Kept in the database too (once per sync, before the sync
position is), so a restart does not forget it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from bot.cases.service import CaseService

# Our own content field on a card: {"case", "version"}, or a crisis card's {"crisis", "version"}.
CARD_FIELD = "org.otklik.card"
CASE, CRISIS = "case", "crisis"  # the kinds of card, as CARD_FIELD names their id
REMEMBERED = 4096  # cards kept in memory; older ones are read back from the database


class ShownCards:
    def __init__(self, cases: CaseService) -> None:
        self._cases = cases
        # (room, "case" or "crisis", id) -> version
        self._shown: OrderedDict[tuple[str, str, int], int] = OrderedDict()
        self._unsaved: dict[str, str] = {}

    def saw(self, room_id: str, event: dict[str, Any]) -> None:
        """One of our own events in a room's timeline: a card's post or edit notes its version."""
        content = event.get("content") or {}
        if (content.get("m.relates_to") or {}).get("rel_type") == "m.replace":
            content = content.get("m.new_content") or {}
        card = content.get(CARD_FIELD)
        if not isinstance(card, dict):
            return
        kind = CRISIS if "crisis" in card else CASE
        card_id, version = card.get(kind), card.get("version")
        if not isinstance(card_id, int) or not isinstance(version, int):
            return
        self._keep(room_id, kind, card_id, version)
        self._unsaved[_key(room_id, kind, card_id)] = str(version)

    async def save(self) -> None:
        """Store what this sync's events showed, in one transaction."""
        if self._unsaved:
            unsaved, self._unsaved = self._unsaved, {}
            await self._cases.remember_many(unsaved)

    async def version(self, room_id: str, card_id: int, *, crisis: bool = False) -> int | None:
        """The version of the case's (or with `crisis`, the crisis's) card the room shows now;
        None when no card of ours with a version was ever seen there (cards posted before
        versions were written into them)."""
        kind = CRISIS if crisis else CASE
        known = self._shown.get((room_id, kind, card_id))
        if known is not None:
            return known
        stored = await self._cases.recall(_key(room_id, kind, card_id))
        if stored is None or not stored.isdigit():
            return None
        self._keep(room_id, kind, card_id, int(stored))
        return int(stored)

    def _keep(self, room_id: str, kind: str, card_id: int, version: int) -> None:
        self._shown[(room_id, kind, card_id)] = version
        self._shown.move_to_end((room_id, kind, card_id))
        while len(self._shown) > REMEMBERED:
            self._shown.popitem(last=False)


def _key(room_id: str, kind: str, card_id: int) -> str:
    # Case cards keep the key they had before crisis cards were shown here too.
    if kind == CASE:
        return f"matrix.card_shown:{room_id}:{card_id}"
    return f"matrix.crisis_shown:{room_id}:{card_id}"
