"""The outbox's Matrix transport: renders a view and sends it with matrix-nio.

Exactly once by construction: every event's transaction id derives from the item's
idempotency key, so a resend after a crash gets the first event back from the homeserver
(Synapse remembers transaction ids per device for a day). Buttons are reactions: a card gets
one per available action, and an edit brings them in step by reading the bot's own
annotations back from the server, so nothing about them is stored here.

Errors are sorted for the delivery worker as in the Telegram transport: rate limits, 5xx and
network are RetryLater; refusals (forbidden, unknown room, bad token, too large) are
PermanentFailure, so a broken message does not hold its room's queue forever. Build the client
with DELIVERY_CLIENT_CONFIG: by default nio sleeps through 429s and timeouts itself, forever,
which would hide them from the worker. Logs carry ids only: texts may hold personal data.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from typing import Any

import aiohttp
from nio import AsyncClient, AsyncClientConfig, ErrorResponse
from nio.api import Api, RelationshipType
from nio.exceptions import LocalTransportError, RemoteTransportError
from nio.responses import RoomEventRelationsResponse

from bot.messages.delivery import EXTERNAL_REF
from bot.messages.outbox import (
    Delivery,
    DeliveryResult,
    OutboxItem,
    OutboxOp,
    PermanentFailure,
    RetryLater,
)
from bot.model import AttachmentKind
from handlers.matrix.limits import MatrixLimits, MatrixPacer
from handlers.matrix.render import HTML_FORMAT, MatrixRendered, MatrixRenderer

__all__ = [
    "DELIVERY_CLIENT_CONFIG",
    "MatrixTransport",
    "event_id",
    "transaction_id",
]

log = logging.getLogger(__name__)

# No retries inside nio: the worker retries with backoff and keeps the room's order.
DELIVERY_CLIENT_CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)
MESSAGE = "m.room.message"
REACTION = "m.reaction"
IMAGE = "m.image"
MXC = "mxc://"
UPLOADS_REMEMBERED = 32  # pictures whose mxc:// URI is reused for the next room
# Messages sent whose ids the outbox may not have recorded yet (it does once the reactions are
# added too); far more than can be in flight at once, one per room.
SENT_REMEMBERED = 256
EDIT_MARK = "* "  # the fallback body of an edit, for clients that do not show edits
REACTING_VIEWS = ("card", "draft")  # views whose buttons are reactions (and crisis cards' pages)
RELATIONS_PAGE = 100
TX_ID_LENGTH = 32  # hex digits of sha256: unique enough, short in the URL
LIMIT_EXCEEDED = "M_LIMIT_EXCEEDED"
NOT_FOUND = "M_NOT_FOUND"
FORBIDDEN = "M_FORBIDDEN"
DUPLICATE_ANNOTATION = "M_DUPLICATE_ANNOTATION"
PERMANENT_CODES = frozenset(
    {
        FORBIDDEN,
        NOT_FOUND,
        "M_UNKNOWN_TOKEN",
        "M_MISSING_TOKEN",
        "M_BAD_JSON",
        "M_NOT_JSON",
        "M_TOO_LARGE",
    }
)
RETRY_STATUSES = frozenset({408, 429})


def event_id(ref: str) -> str:
    """A Matrix event id from a stored ref ("$abc" or "ext:$abc")."""
    raw = ref.removeprefix(EXTERNAL_REF)
    if not raw.startswith("$"):
        raise PermanentFailure(f"not a Matrix event id: {ref!r}")
    return raw


def transaction_id(idempotency_key: str, *parts: str) -> str:
    """The transaction id of one event an item sends: the same on every resend of the item."""
    material = "\x1f".join((idempotency_key, *parts))
    return hashlib.sha256(material.encode()).hexdigest()[:TX_ID_LENGTH]


def _failure(response: ErrorResponse, what: str) -> RetryLater | PermanentFailure:
    transport = response.transport_response
    status: int | None = transport.status if transport is not None else None
    reason = f"{what}: {response}"
    if response.status_code == LIMIT_EXCEEDED or status == 429:
        after = response.retry_after_ms / 1000 if response.retry_after_ms else None
        return RetryLater(reason, after=after)
    if response.status_code in PERMANENT_CODES:
        return PermanentFailure(reason)
    if status is not None and 400 <= status < 500 and status not in RETRY_STATUSES:
        # The same request would be refused again (e.g. a relation the server rejects).
        return PermanentFailure(reason)
    return RetryLater(reason)  # 5xx, or an answer nio could not parse (a proxy's error page)


def _checked(response: Any, what: str) -> Any:
    if isinstance(response, ErrorResponse):
        raise _failure(response, what)
    return response


class MatrixTransport:
    name = "matrix"

    def __init__(
        self, client: AsyncClient, renderer: MatrixRenderer, pacer: MatrixPacer | None = None
    ) -> None:
        self.client = client
        self.renderer = renderer
        # The homeserver's rate limit, kept before sending (an unpaced one when not given).
        self.pacer = pacer or MatrixPacer(MatrixLimits(per_second=0))
        self._uploaded: dict[str, str] = {}  # blob sha256 -> mxc:// URI, newest last
        self._upload_lock = asyncio.Lock()
        # What the outbox records once a delivery is settled, known as soon as it is sent:
        # (room, event id) -> ref_key, newest last, and the latest event of each ref_key.
        self._sent: dict[tuple[str, str], str] = {}
        self._latest: dict[tuple[str, str], str] = {}

    def capacity_per_minute(self, chat: str) -> int:
        """Messages the room can take in about a minute: above that backlog the outbox keeps
        a queue message there (bot/messages/delivery.py)."""
        return self.pacer.capacity_per_minute(chat)

    def ref_of_sent(self, room: str, event: str) -> str | None:
        """The ref_key of a message this process has just sent. A person may react to it (or
        write in its thread) before its delivery is settled and the outbox records the id:
        adding a card's reactions takes a round trip each, longer on a loaded server. As in
        the outbox's records, only the latest message sent under a ref_key stands for it."""
        ref_key = self._sent.get((room, event))
        if ref_key is None or self._latest.get((room, ref_key)) != event:
            return None
        return ref_key

    def _remember_sent(self, item: OutboxItem, event: str) -> None:
        if not item.ref_key:
            return
        if len(self._sent) >= SENT_REMEMBERED:
            (room, oldest), ref_key = next(iter(self._sent.items()))
            del self._sent[(room, oldest)]
            if self._latest.get((room, ref_key)) == oldest:
                del self._latest[(room, ref_key)]
        self._sent[(item.chat, event)] = item.ref_key
        self._latest[(item.chat, item.ref_key)] = event

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        try:
            return await self._call(delivery)
        except (
            aiohttp.ClientError,
            TimeoutError,
            LocalTransportError,
            RemoteTransportError,
        ) as exc:
            raise RetryLater(f"{type(exc).__name__}: {exc}") from exc

    async def _call(self, delivery: Delivery) -> DeliveryResult:
        item = delivery.item
        if item.op is OutboxOp.DELETE:
            return await self._delete(delivery)
        if item.op is OutboxOp.PHOTO:
            return await self._photo(delivery)
        if item.payload["view"] == "attachment":
            return await self._attachment(delivery)
        rendered = self._render(delivery)
        if item.op is OutboxOp.EDIT:
            return await self._edit(delivery, rendered)
        content = rendered.content()
        if item.op is OutboxOp.REPLY and delivery.reply_to_ref:
            relation = await self._reply_relation(item.chat, event_id(delivery.reply_to_ref))
            if relation is not None:
                content["m.relates_to"] = relation
        sent = await self._send(item.chat, MESSAGE, content, transaction_id(item.idempotency_key))
        self._remember_sent(item, sent)  # before the reactions that invite a press
        reactions = await self._add_reactions(item, sent, rendered.reactions)
        return DeliveryResult(sent, {"reactions": reactions})

    async def _photo(self, delivery: Delivery) -> DeliveryResult:
        """The picture uploaded to the media repository, then one m.image event whose body and
        formatted_body are the caption and whose filename names the file (a media caption,
        MSC2530, in the spec since v1.10). One event, so the transaction id keeps it exactly
        once; a resend after a crash may upload the bytes again, an unreferenced copy on the
        media repository but no second message."""
        item = delivery.item
        payload, picture = delivery.photo_view()
        try:
            caption = self.renderer.render(payload["caption"])
        except Exception as exc:
            log.exception("matrix: outbox item %s cannot be rendered", item.id)
            raise PermanentFailure(f"cannot render: {type(exc).__name__}: {exc}") from exc
        filename: str = payload.get("filename") or "photo.png"
        mimetype: str = payload.get("mimetype") or "image/png"
        url = await self._upload(payload.get("blob") or "", picture, mimetype, filename)
        content: dict[str, Any] = {
            "msgtype": IMAGE,
            "body": caption.body or filename,
            "filename": filename,
            "url": url,
            "info": {
                "mimetype": mimetype,
                "size": len(picture),
                "w": payload.get("width"),
                "h": payload.get("height"),
            },
        }
        if caption.formatted_body is not None and caption.body:
            content["format"] = HTML_FORMAT
            content["formatted_body"] = caption.formatted_body
        sent = await self._send(item.chat, MESSAGE, content, transaction_id(item.idempotency_key))
        return DeliveryResult(sent, {"url": url})

    async def _attachment(self, delivery: Delivery) -> DeliveryResult:
        """A citizen's photo under its card by its mxc:// uri: an m.image event that points
        at the media already on a homeserver, nothing uploaded."""
        item = delivery.item
        payload = item.payload
        assert payload["view"] == "attachment"
        if not payload["ref"].startswith(MXC) or payload["kind"] != AttachmentKind.PHOTO.value:
            raise PermanentFailure("only a photo with an mxc:// uri is sent under a card")
        caption = self.renderer.attachment_caption(payload)
        info: dict[str, Any] = {"mimetype": payload["mime"] or "image/jpeg"}
        if payload["size"] is not None:
            info["size"] = payload["size"]
        content: dict[str, Any] = {
            "msgtype": IMAGE,
            "body": caption,
            "filename": payload["name"] or "photo.jpg",
            "url": payload["ref"],
            "info": info,
        }
        if delivery.reply_to_ref:
            relation = await self._reply_relation(item.chat, event_id(delivery.reply_to_ref))
            if relation is not None:
                content["m.relates_to"] = relation
        sent = await self._send(item.chat, MESSAGE, content, transaction_id(item.idempotency_key))
        return DeliveryResult(sent)

    async def _upload(self, blob: str, data: bytes, mimetype: str, filename: str) -> str:
        """An mxc:// URI for the picture; one upload serves every room it goes to."""
        # Rooms are delivered in parallel: the lock makes the second room wait for the first
        # upload instead of making its own. Uploads are rare, one lock for all is enough.
        async with self._upload_lock:
            known = self._uploaded.get(blob) if blob else None
            if known is not None:
                return known
            response, _keys = await self.client.upload(
                io.BytesIO(data), content_type=mimetype, filename=filename, filesize=len(data)
            )
            url: str = _checked(response, "upload").content_uri
            if blob:
                if len(self._uploaded) >= UPLOADS_REMEMBERED:
                    self._uploaded.pop(next(iter(self._uploaded)))
                self._uploaded[blob] = url
            return url

    # --- the calls ---

    async def _send(self, room: str, event_type: str, content: dict[str, Any], tx_id: str) -> str:
        await self.pacer.acquire(room)
        response = await self.client.room_send(
            room_id=room,
            message_type=event_type,
            content=content,
            tx_id=tx_id,
            ignore_unverified_devices=True,
        )
        sent: str = _checked(response, f"send {event_type}").event_id
        return sent

    async def _redact(self, room: str, target: str, tx_id: str) -> None:
        await self.pacer.acquire(room)
        response = await self.client.room_redact(room, target, tx_id=tx_id)
        if isinstance(response, ErrorResponse) and response.status_code == NOT_FOUND:
            log.debug("matrix: event %s in %s was already gone", target, room)
            return
        _checked(response, "redact")

    async def _reply_relation(self, room: str, parent: str) -> dict[str, Any] | None:
        """Where a reply goes: into the parent's thread, the thread the parent sits in, or
        (the parent being an edit or reaction, where no thread may start) a plain reply."""
        response = await self.client.room_get_event(room, parent)
        if isinstance(response, ErrorResponse) and response.status_code in (NOT_FOUND, FORBIDDEN):
            # The message is gone or out of sight: the answer matters more than the thread.
            log.info("matrix: reply target %s in %s not found; posting plainly", parent, room)
            return None
        source = getattr(_checked(response, "get event").event, "source", None) or {}
        relation = (source.get("content") or {}).get("m.relates_to") or {}
        in_reply_to = {"event_id": parent}
        if relation.get("rel_type") == "m.thread" and relation.get("event_id"):
            return {
                "rel_type": "m.thread",
                "event_id": relation["event_id"],
                "is_falling_back": False,  # a real reply to one message in the thread
                "m.in_reply_to": in_reply_to,
            }
        if relation.get("rel_type"):
            return {"m.in_reply_to": in_reply_to}
        return {
            "rel_type": "m.thread",
            "event_id": parent,
            "is_falling_back": True,
            "m.in_reply_to": in_reply_to,
        }

    async def _edit(self, delivery: Delivery, rendered: MatrixRendered) -> DeliveryResult:
        item = delivery.item
        if not delivery.target_ref:
            raise PermanentFailure("edit without a message to edit")
        target = event_id(delivery.target_ref)
        new = rendered.content()
        content: dict[str, Any] = {
            **new,
            "body": EDIT_MARK + new["body"],
            "m.new_content": new,
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        }
        if "formatted_body" in new:
            content["formatted_body"] = EDIT_MARK + new["formatted_body"]
        await self._send(item.chat, MESSAGE, content, transaction_id(item.idempotency_key))
        info: dict[str, Any] = {}
        if item.payload.get("view") in REACTING_VIEWS or "checklist" in item.payload:
            info["reactions"] = await self._sync_reactions(item, target, rendered.reactions)
        return DeliveryResult(target, info)

    async def _delete(self, delivery: Delivery) -> DeliveryResult:
        if not delivery.target_ref:
            return DeliveryResult()  # never posted: nothing to delete
        item = delivery.item
        target = event_id(delivery.target_ref)
        await self._redact(item.chat, target, transaction_id(item.idempotency_key))
        return DeliveryResult(target)

    # --- reactions ---

    async def _add_reactions(
        self, item: OutboxItem, target: str, keys: list[str]
    ) -> dict[str, str]:
        added: dict[str, str] = {}
        for key in keys:
            content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}
            tx_id = transaction_id(item.idempotency_key, REACTION, target, key)
            await self.pacer.acquire(item.chat)
            response = await self.client.room_send(
                room_id=item.chat,
                message_type=REACTION,
                content=content,
                tx_id=tx_id,
                ignore_unverified_devices=True,
            )
            if isinstance(response, ErrorResponse) and response.status_code == DUPLICATE_ANNOTATION:
                continue  # already there (sent before a crash, past the transaction's memory)
            added[key] = _checked(response, "send reaction").event_id
        return added

    async def _sync_reactions(
        self, item: OutboxItem, target: str, wanted: list[str]
    ) -> dict[str, str]:
        """Add the wanted keys that are missing and redact the bot's other reactions. Read from
        the server each time: stateless, and right after a restart too."""
        present = await self._own_reactions(item.chat, target)
        kept: dict[str, str] = {}
        for key, reactions in present.items():
            surplus = reactions
            if key in wanted:
                kept[key], surplus = reactions[0], reactions[1:]
            for reaction in surplus:
                tx_id = transaction_id(item.idempotency_key, "redact", reaction)
                await self._redact(item.chat, reaction, tx_id)
        added = await self._add_reactions(item, target, [k for k in wanted if k not in kept])
        now = kept | added
        return {key: now[key] for key in wanted if key in now}

    async def _own_reactions(self, room: str, target: str) -> dict[str, list[str]]:
        """The bot's reactions on an event: key -> event ids. nio's iterator swallows errors,
        so the pages are fetched here."""
        found: dict[str, list[str]] = {}
        page: str | None = None
        while True:
            method, path = Api.room_get_event_relations(
                self.client.access_token,
                room,
                target,
                rel_type=RelationshipType.annotation,
                event_type=REACTION,
                paginate_from=page,
                limit=RELATIONS_PAGE,
            )
            response = _checked(
                await self.client._send(
                    RoomEventRelationsResponse, method, path, response_data=(room, target)
                ),
                "read reactions",
            )
            for event in response.events:
                source = getattr(event, "source", None) or {}
                relation = (source.get("content") or {}).get("m.relates_to") or {}
                key, reaction = relation.get("key"), source.get("event_id")
                if source.get("sender") == self.client.user_id and key and reaction:
                    found.setdefault(key, []).append(reaction)
            page = response.next_batch
            if not page:
                return found

    def _render(self, delivery: Delivery) -> MatrixRendered:
        try:
            return self.renderer.render(delivery.item.payload)
        except Exception as exc:
            # A payload or template bug: retrying cannot fix it and would block the room.
            log.exception("matrix: outbox item %s cannot be rendered", delivery.item.id)
            raise PermanentFailure(f"cannot render: {type(exc).__name__}: {exc}") from exc
