"""Outgoing messages as data. Every message the bot sends is an OutboxItem first.

A service writes items in the same transaction as the state change that causes them; the
delivery worker (bot/messages/delivery.py) hands them to a Transport. Payloads are neutral views
(bot/messages/views.py: JSON-able TypedDicts); each transport renders them its own way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Protocol

from bot.messages.views import PhotoView, View
from bot.model import Case, Priority


class OutboxOp(StrEnum):
    POST = "post"  # a new message; its id is remembered under ref_key
    REPLY = "reply"  # a new message replying to the message remembered under reply_to_key
    EDIT = "edit"  # replace the content of the message remembered under ref_key
    DELETE = "delete"
    # A new picture with a caption; payload from photo_payload(), bytes in the blob store.
    PHOTO = "photo"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # handed to the transport; back to pending if we crash meanwhile
    DELIVERED = "delivered"
    FAILED = "failed"  # refused for good by the transport (bad request, chat gone)
    SUPERSEDED = "superseded"  # a newer edit of the same message replaced it
    # A card post that went out as a line of a pack card instead (bot/messages/delivery.py
    # _pack_cards); its external_ref holds the pack's ref_key. Never sent itself: a later
    # change of the case posts the card (an edit of a card never delivered becomes a post).
    PACKED = "packed"


UNDELIVERED = (OutboxStatus.PENDING, OutboxStatus.SENDING)

# What a person's press or command causes (the card's edit, the draft or prompt it posts, the
# answer) goes at this urgency plus the case's priority rank: ahead of new cards (0-3), SLA
# notices (+1) and the triage list (5), behind crisis cards (20) and the queue message (100).
# New cards give way, but are not starved in practice: people press at human speed, each
# press causes a message or two, and waiting edits of one card fold into the newest (store:
# enqueue supersedes them). Telegram's limiter keeps part of a group's minute for these.
PRESS_URGENCY = 10
# A redraw a person's press caused on a card that is not a case's (a crisis checklist tick,
# bot/crisis/service.py): ahead of that card's routine redraws, and never paced with them
# (bot/messages/delivery.py _paused); below the queue message, so the press slots serve it.
PRESSED_REDRAW_URGENCY = 30


def caused_by_press(urgency: int) -> bool:
    """Whether a message at this urgency is what a person's press or command caused (not a
    crisis card's routine redraw, not the queue message)."""
    return (
        PRESS_URGENCY <= urgency <= PRESS_URGENCY + Priority.CRITICAL.rank
        or urgency == PRESSED_REDRAW_URGENCY
    )


@dataclass(frozen=True, slots=True)
class OutboxItem:
    transport: str  # "telegram", "matrix"
    chat: str  # chat id or room id, as text
    op: OutboxOp
    payload: View  # {"view": "card", ...}; the store reads it back with views.as_view
    idempotency_key: str  # the same key is never queued twice
    ref_key: str | None = None  # logical message this item creates or changes
    reply_to_key: str | None = None
    thread: str | None = None  # Telegram forum topic id; Matrix thread root is a ref_key
    case_id: int | None = None
    urgency: int = 0  # higher goes first when a chat is backlogged
    created_at: datetime | None = None
    id: int | None = None
    status: OutboxStatus = OutboxStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    external_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a department's cards go on one transport."""

    transport: str
    chat: str
    thread: str | None = None

    def message(
        self,
        op: OutboxOp,
        view: View,
        key: str,
        now: datetime,
        *,
        ref: str | None,
        urgency: int,
        case_id: int | None = None,
        reply_to: str | None = None,
    ) -> OutboxItem:
        """An outbox item for this chat; the key is scoped to the chat so one event
        sent to several chats queues once per chat."""
        return OutboxItem(
            transport=self.transport,
            chat=self.chat,
            thread=self.thread,
            op=op,
            payload=view.copy(),
            idempotency_key=f"{self.transport}:{self.chat}:{key}",
            ref_key=ref,
            reply_to_key=reply_to,
            case_id=case_id,
            urgency=urgency,
            created_at=now,
        )

    def about(
        self,
        case: Case,
        op: OutboxOp,
        view: View,
        key: str,
        now: datetime,
        *,
        ref: str | None,
        reply_to: str | None = None,
        urgency_bonus: int = 0,
    ) -> OutboxItem:
        """A message about a case: it goes out as urgently as the case's priority says. A
        notice or prompt about a drill case carries `drill`: it is marked DRILL when shown."""
        if case.drill and (view["view"] == "notice" or view["view"] == "prompt"):
            marked = view.copy()
            marked["params"] = {**view["params"], "drill": True}
            view = marked
        return self.message(
            op,
            view,
            key,
            now,
            ref=ref,
            urgency=case.priority.rank + urgency_bonus,
            case_id=case.id,
            reply_to=reply_to,
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a transport gets: the item plus the transport ids it refers to."""

    item: OutboxItem
    target_ref: str | None = None  # the message to edit or delete (EDIT, DELETE)
    reply_to_ref: str | None = None  # the message to reply to (REPLY)
    photo: bytes | None = None  # the picture of a PHOTO item, read from the blob store

    def photo_view(self) -> tuple[PhotoView, bytes]:
        """A PHOTO item's view and picture; PermanentFailure when either is missing, since
        no retry brings them back."""
        if self.photo is None:
            raise PermanentFailure("photo without a picture")
        payload = self.item.payload
        if payload["view"] != PHOTO_VIEW:
            raise PermanentFailure(f"cannot render: a photo item with a {payload['view']!r} view")
        return payload, self.photo


@dataclass(frozen=True, slots=True)
class WaitingCard:
    """A case whose card still waits to be posted in a chat, with its mentions."""

    case_id: int
    priority: str  # Priority value
    mentions: int


@dataclass(frozen=True, slots=True)
class CardBacklog:
    """What a backlogged chat has not seen yet, counted in cases and in mentions, so the
    queue message accounts for every mention (bot/messages/delivery.py _update_queue)."""

    listed: list[WaitingCard]  # the first few: largest clusters, then most urgent
    cases: int  # cases whose card waits
    mentions: int  # their mentions
    # Cards already in the chat whose redraw with more mentions waits, and how many more.
    updating: int = 0
    updating_mentions: int = 0

    @property
    def unlisted(self) -> int:
        return self.cases - len(self.listed)

    @property
    def unlisted_mentions(self) -> int:
        return self.mentions - sum(card.mentions for card in self.listed)


@dataclass(frozen=True, slots=True)
class WaitingWork:
    """A waiting card post, card edit, pack post or counting pack edit of a backlogged chat,
    with the mentions it would put in front of people that the chat does not show yet, and
    since when the oldest of them waits (bot/messages/delivery.py chooses the next one by
    these)."""

    item_id: int
    op: OutboxOp
    ref_key: str
    reveals: int  # mentions newly visible once it is delivered: 0 for a redraw of what is shown
    since: datetime  # when the oldest of them began to wait
    # It redraws a message the chat shows (a card's count, a pack's lines), rather than
    # putting a case in front of people for the first time.
    redraw: bool = False
    # A pack post's cases, each as (its mentions, since when its card waits): a pack of twenty
    # has waited as long as each of them, not twenty times as long as its oldest.
    parts: tuple[tuple[int, datetime], ...] = ()


@dataclass(frozen=True, slots=True)
class PackChange:
    """A pack card one of whose cases changed since it was packed: the pack's latest version
    and the latest card of each such case in the chat (bot/messages/delivery.py redraws the
    pack's lines from them)."""

    transport: str
    chat: str
    ref_key: str
    thread: str | None
    payload: View  # the pack's latest queued version
    cards: dict[int, View]  # case id -> its latest card version queued since
    # Cases whose latest card went onto the pack (a count grown within the line's bound,
    # delivery.py _onto_pack): their lines show it; the others have their own card now.
    on_pack: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    external_ref: str | None = None  # the transport's id of the message it posted
    info: dict[str, Any] = field(default_factory=dict)


PHOTO_VIEW: Final = "photo"


def photo_payload(
    *,
    blob: str,
    caption: View,
    width: int,
    height: int,
    size: int,
    filename: str,
    mimetype: str = "image/png",
) -> PhotoView:
    """The payload of a PHOTO item. `blob` is the sha256 the blob store returned for the
    picture; the row holds only this reference, so the item stays small and the picture is
    written once, in the same transaction. `caption` is a neutral view (a page, a notice)
    that each transport renders as it renders messages, then fits to its caption limit."""
    return {
        "view": PHOTO_VIEW,
        "blob": blob,
        "mimetype": mimetype,
        "filename": filename,
        "width": width,
        "height": height,
        "size": size,
        "caption": caption,
    }


class RetryLater(Exception):
    """A transient refusal: rate limit, 5xx, network. `after` seconds if the server said."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class PermanentFailure(Exception):
    """The server will never accept this message (bad request, forbidden, chat gone)."""


class Transport(Protocol):
    """One chat network. Raises RetryLater or PermanentFailure; anything else is retried."""

    name: str

    async def deliver(self, delivery: Delivery) -> DeliveryResult: ...
