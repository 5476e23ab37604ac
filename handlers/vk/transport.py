"""The outbox's VK transport: the approved answer from the community, under the citizen's
wall comment or as a message to them (bot/cases/replies.py _vk_origin names where).

Methods and token types: VKCOM/vk-api-schema wall/methods.json and messages/methods.json
(access_token_type of each method), dev.vk.com/ru/method/wall.createComment and
/messages.send; random_id's scope: vk.com/dev/messages.send (2019 snapshot: "the given
random_id is checked for uniqueness across the whole message history"):
- wall.createComment takes a community token; `from_group` posts as the community,
  `reply_to_comment` under the comment, `guid` keeps VK from taking the same comment twice.
  wall.editComment takes a user token only, so a correction is a new reply saying so.
- messages.send takes a community token with the messages right. `random_id` is checked for
  uniqueness across the community's whole message history: a resend with the same one
  (after a crash between the send and its record) posts nothing new.
- messages.edit (community token) corrects an answer sent as a message.
Errors 6 (too many requests per second) and 9 (flood control) are retried with back-off;
1 and 10 are VK's own trouble and retried too; any other is final and its text goes on
record (the outbox item's last_error).
"""

from __future__ import annotations

import hashlib
import logging

import aiohttp

from bot.cases.replies import VK_PEER_CHAT, VK_TRANSPORT, VK_WALL_CHAT
from bot.messages.outbox import (
    Delivery,
    DeliveryResult,
    OutboxOp,
    PermanentFailure,
    RetryLater,
)
from bot.messages.texts import Texts
from bot.settings.connections import VkConfig
from handlers.vk.api import VkAnswerError, VkApi, VkApiError

log = logging.getLogger(__name__)

MAX_MESSAGE = 4_096  # messages.send takes 9,000; a comment is shorter: both fit in this
TOO_MANY_PER_SECOND, FLOOD_CONTROL = 6, 9
RETRY_AFTER_S = {TOO_MANY_PER_SECOND: 1.0}  # flood control: the outbox's growing back-off
TRANSIENT = frozenset({1, 10, TOO_MANY_PER_SECOND, FLOOD_CONTROL})  # unknown, VK's server


def random_id_of(key: str) -> int:
    """messages.send's random_id from the outbox item's idempotency key: the same key gives
    the same number after a restart, so VK drops the resend. 63 bits: VK advises a large
    range, up to int64, since it checks the community's whole history."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def guid_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _id(text: str, what: str) -> int:
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    if not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        raise PermanentFailure(f"not a VK {what}: {text!r}")
    return int(sign + digits)


class VkTransport:
    name = VK_TRANSPORT

    def __init__(self, config: VkConfig, texts: Texts, api: VkApi | None = None) -> None:
        self._group_id = config.group_id
        self._texts = texts
        self.api = api or VkApi(config)

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        try:
            return await self._deliver(delivery)
        except VkApiError as error:
            if error.code in TRANSIENT:
                raise RetryLater(str(error), after=RETRY_AFTER_S.get(error.code)) from error
            # What to do about it, in the organisation's language (messages.yaml vk_error).
            hint = self._texts.t_or(f"vk_error.{error.code}", "")
            raise PermanentFailure(f"{error}" + (f" ({hint})" if hint else "")) from error
        except (VkAnswerError, aiohttp.ClientError, TimeoutError) as error:
            raise RetryLater(f"{type(error).__name__}: {error}") from error

    async def close(self) -> None:
        await self.api.close()

    def _text(self, delivery: Delivery, corrects: bool = False) -> str:
        view = delivery.item.payload
        if view["view"] != "public_reply":
            raise PermanentFailure(f"VK carries only the public answer, not {view['view']!r}")
        text = self._texts.public_reply(view["text"], corrects or bool(view.get("corrects")))
        return text[:MAX_MESSAGE]

    async def _deliver(self, delivery: Delivery) -> DeliveryResult:
        item = delivery.item
        if item.op is OutboxOp.DELETE:
            return DeliveryResult()  # the bot never deletes what it said to a citizen
        if item.chat.startswith(VK_WALL_CHAT):
            return await self._comment(delivery)
        if item.chat.startswith(VK_PEER_CHAT):
            return await self._message(delivery)
        raise PermanentFailure(f"not a VK destination: {item.chat!r}")

    async def _comment(self, delivery: Delivery) -> DeliveryResult:
        item = delivery.item
        owner_text, _, post_text = item.chat.removeprefix(VK_WALL_CHAT).partition("_")
        owner, post = _id(owner_text, "wall"), _id(post_text, "post")
        if owner != -self._group_id:
            # Only the configured community's own wall: the token speaks for it alone.
            raise PermanentFailure(f"wall {owner} is not community {self._group_id}'s")
        params: dict[str, str | int] = {
            "owner_id": owner,
            "post_id": post,
            "from_group": self._group_id,
            # A correction cannot edit (wall.editComment takes no community token): it is
            # a new reply under the same comment that says it corrects.
            "message": self._text(delivery, corrects=item.op is OutboxOp.EDIT),
            "guid": guid_of(item.idempotency_key),
        }
        if delivery.reply_to_ref:
            params["reply_to_comment"] = _id(delivery.reply_to_ref, "comment")
        response = await self.api.call("wall.createComment", params)
        comment = response.get("comment_id") if isinstance(response, dict) else None
        if not isinstance(comment, int):
            raise RetryLater("wall.createComment answered without a comment id")
        return DeliveryResult(str(comment), {"vk_url": _comment_link(owner, post, comment)})

    async def _message(self, delivery: Delivery) -> DeliveryResult:
        item = delivery.item
        peer = _id(item.chat.removeprefix(VK_PEER_CHAT), "peer")
        if item.op is OutboxOp.EDIT and delivery.target_ref:
            await self.api.call(
                "messages.edit",
                {
                    "peer_id": peer,
                    "message_id": _id(delivery.target_ref, "message"),
                    "message": self._text(delivery),
                },
            )
            return DeliveryResult(delivery.target_ref)
        response = await self.api.call(
            "messages.send",
            {
                "peer_id": peer,
                "random_id": random_id_of(item.idempotency_key),
                "message": self._text(delivery),
            },
        )
        if not isinstance(response, int) or isinstance(response, bool):
            raise RetryLater("messages.send answered without a message id")
        return DeliveryResult(str(response))


def _comment_link(owner: int, post: int, comment: int) -> str:
    return f"https://vk.com/wall{owner}_{post}?reply={comment}"
