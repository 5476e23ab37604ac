"""The outbox's Telegram transport: renders a view and makes one Bot API call for it.

Errors are sorted for the delivery worker: what may pass on its own (429, 5xx, network) is
RetryLater, what never will (bad request, bot kicked, chat gone) is PermanentFailure, so a
broken message does not hold its chat's queue forever. Anything else (an API error aiogram
adds later) propagates, and the worker retries it with backoff. Logs carry ids only: texts
may hold citizens' personal data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TypeVar

import aiohttp
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import EditMessageText, SendMessage, SendPhoto, TelegramMethod
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
)

from bot.messages.delivery import EXTERNAL_REF, QUEUE_URGENCY
from bot.messages.outbox import (
    PRESS_URGENCY,
    Delivery,
    DeliveryResult,
    OutboxOp,
    PermanentFailure,
    RetryLater,
    caused_by_press,
)
from bot.model import TELEGRAM_FILE, AttachmentKind
from handlers.telegram.limits import RateLimiter
from handlers.telegram.render import Rendered, TelegramRenderer

__all__ = ["TelegramTransport", "message_id"]

log = logging.getLogger(__name__)

T = TypeVar("T")

NOT_MODIFIED = "message is not modified"
DELETE_NOT_FOUND = "message to delete not found"
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)  # a preview would repeat the mention


def message_id(ref: str) -> int:
    """A Telegram message id from a stored ref ("123" or "ext:123"); also forum topic ids,
    which are the ids of the topics' first messages."""
    raw = ref.removeprefix(EXTERNAL_REF)
    try:
        return int(raw)
    except ValueError:
        raise PermanentFailure(f"not a Telegram message id: {ref!r}") from None


class TelegramTransport:
    name = "telegram"

    def __init__(
        self,
        bot: Bot,
        renderer: TelegramRenderer,
        limiter: RateLimiter,
        protect_content: bool,
    ) -> None:
        self.bot = bot
        self.renderer = renderer
        self.limiter = limiter
        self.protect_content = protect_content

    # A backlogged chat gets pack cards (bot/messages/delivery.py): a take button per line.
    packs_cards = True

    def capacity_per_minute(self, chat: str) -> int:
        """Messages the chat takes in a real minute (more when the limits are scaled)."""
        return self.limiter.capacity_per_minute(int(chat))

    def backlogs(self, waiting: Mapping[str, int]) -> None:
        """The outbox's backlog per chat, for the limiter's pacing."""
        self.limiter.backlogs({int(chat): count for chat, count in waiting.items()})

    async def _send(
        self, chat_id: int, request: TelegramMethod[T], delivery: Delivery | None = None
    ) -> T:
        """`request` in the chat's next slot: the most urgent first, and what a press caused
        may use the slots a group keeps for presses (the queue message, urgent as it is, may
        not); with no `delivery`, an ordinary message's slot.

        Callers build the request before: building validates it, and aiogram builds a
        model's validator on its first use (tens of milliseconds, more on a loaded machine),
        which would stand between the slot and the request leaving. The limiter counts the
        message from its answer once it has one (RateLimiter.answered)."""
        if delivery is None:
            slot = await self.limiter.acquire(chat_id)
        else:
            urgency = delivery.item.urgency
            press = PRESS_URGENCY <= urgency < QUEUE_URGENCY
            slot = await self.limiter.acquire(
                chat_id, urgency, press=press, person=caused_by_press(urgency)
            )
        try:
            return await self.bot(request)
        finally:
            self.limiter.answered(chat_id, slot)

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        item = delivery.item
        try:
            chat_id = int(item.chat)
        except ValueError:
            raise PermanentFailure(f"not a Telegram chat id: {item.chat!r}") from None
        try:
            return await self._call(delivery, chat_id)
        except TelegramRetryAfter as exc:
            raise RetryLater(exc.message, after=float(exc.retry_after)) from exc
        except TelegramMigrateToChat as exc:
            # The group became a supergroup: the config needs the new id, retrying won't help.
            raise PermanentFailure(exc.message) from exc
        except TelegramEntityTooLarge as exc:  # a network error by class, but final
            raise PermanentFailure(exc.message) from exc
        except (TelegramServerError, TelegramNetworkError) as exc:
            raise RetryLater(f"{type(exc).__name__}: {exc.message}") from exc
        except (
            TelegramBadRequest,
            TelegramForbiddenError,
            TelegramNotFound,
            TelegramUnauthorizedError,
        ) as exc:
            raise PermanentFailure(exc.message) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise RetryLater(f"{type(exc).__name__}: {exc}") from exc

    async def _call(self, delivery: Delivery, chat_id: int) -> DeliveryResult:
        item = delivery.item
        if item.op is OutboxOp.DELETE:
            return await self._delete(delivery, chat_id)
        if item.op is OutboxOp.PHOTO:
            return await self._photo(delivery, chat_id)
        if item.payload["view"] == "attachment":
            return await self._attachment(delivery, chat_id)
        rendered = self._render(delivery)
        if item.op is OutboxOp.EDIT:
            return await self._edit(delivery, chat_id, rendered)
        reply = None
        if item.op is OutboxOp.REPLY and delivery.reply_to_ref:
            # Still send if the card was deleted meanwhile: the answer matters more.
            reply = ReplyParameters(
                message_id=message_id(delivery.reply_to_ref), allow_sending_without_reply=True
            )
        request = SendMessage(
            chat_id=chat_id,
            text=rendered.text,
            parse_mode="HTML",
            message_thread_id=message_id(item.thread) if item.thread else None,
            reply_markup=rendered.markup,
            protect_content=self.protect_content and not rendered.public,
            link_preview_options=NO_PREVIEW,
            reply_parameters=reply,
        )
        message = await self._send(chat_id, request, delivery)
        return DeliveryResult(str(message.message_id))

    async def _photo(self, delivery: Delivery, chat_id: int) -> DeliveryResult:
        """sendPhoto as a multipart upload of the stored picture, the caption in HTML. Not
        idempotent on Telegram's side (like sendMessage): a crash between the upload and
        mark-delivered sends it again at start."""
        item = delivery.item
        payload, picture = delivery.photo_view()
        try:
            caption = self.renderer.caption(payload["caption"])
        except Exception as exc:
            log.exception("telegram: outbox item %s cannot be rendered", item.id)
            raise PermanentFailure(f"cannot render: {type(exc).__name__}: {exc}") from exc
        request = SendPhoto(
            chat_id=chat_id,
            photo=BufferedInputFile(picture, payload.get("filename") or "photo.png"),
            caption=caption or None,
            parse_mode="HTML",
            message_thread_id=message_id(item.thread) if item.thread else None,
            protect_content=self.protect_content,
        )
        message = await self._send(chat_id, request, delivery)
        return DeliveryResult(str(message.message_id))

    async def _attachment(self, delivery: Delivery, chat_id: int) -> DeliveryResult:
        """A citizen's photo under its card, sent by the file id Telegram gave this bot: no
        download, no upload, and Telegram keeps the file. sendPhoto rather than copyMessage:
        the comment may be deleted meanwhile, the file stays."""
        item = delivery.item
        payload = item.payload
        assert payload["view"] == "attachment"
        ref = payload["ref"]
        if not ref.startswith(TELEGRAM_FILE) or payload["kind"] != AttachmentKind.PHOTO.value:
            raise PermanentFailure("only a photo with a Telegram file id is sent under a card")
        reply = None
        if delivery.reply_to_ref:
            reply = ReplyParameters(
                message_id=message_id(delivery.reply_to_ref), allow_sending_without_reply=True
            )
        request = SendPhoto(
            chat_id=chat_id,
            photo=ref.removeprefix(TELEGRAM_FILE),
            caption=self.renderer.attachment_caption(payload),
            parse_mode="HTML",
            message_thread_id=message_id(item.thread) if item.thread else None,
            protect_content=self.protect_content,
            reply_parameters=reply,
        )
        message = await self._send(chat_id, request)
        return DeliveryResult(str(message.message_id))

    async def _edit(self, delivery: Delivery, chat_id: int, rendered: Rendered) -> DeliveryResult:
        if not delivery.target_ref:
            raise PermanentFailure("edit without a message to edit")
        target = message_id(delivery.target_ref)
        # ForceReply cannot be attached by an edit; no markup also removes old buttons.
        markup = rendered.markup if isinstance(rendered.markup, InlineKeyboardMarkup) else None
        request = EditMessageText(
            chat_id=chat_id,
            message_id=target,
            text=rendered.text,
            parse_mode="HTML",
            reply_markup=markup,
            link_preview_options=NO_PREVIEW,
        )
        try:
            result = await self._send(chat_id, request, delivery)
        except TelegramBadRequest as exc:
            if NOT_MODIFIED not in exc.message.lower():
                raise
            log.debug("telegram: message %s in %s already up to date", target, chat_id)
        else:
            if isinstance(result, Message):
                target = result.message_id
        return DeliveryResult(str(target))

    async def _delete(self, delivery: Delivery, chat_id: int) -> DeliveryResult:
        if not delivery.target_ref:
            return DeliveryResult()  # never posted: nothing to delete
        target = message_id(delivery.target_ref)
        try:
            await self.bot.delete_message(chat_id=chat_id, message_id=target)
        except TelegramBadRequest as exc:
            if DELETE_NOT_FOUND not in exc.message.lower():
                raise
            log.debug("telegram: message %s in %s was already gone", target, chat_id)
        return DeliveryResult(str(target))

    def _render(self, delivery: Delivery) -> Rendered:
        try:
            return self.renderer.render(delivery.item.payload)
        except Exception as exc:
            # A payload or template bug: retrying cannot fix it and would block the chat.
            log.exception("telegram: outbox item %s cannot be rendered", delivery.item.id)
            raise PermanentFailure(f"cannot render: {type(exc).__name__}: {exc}") from exc
