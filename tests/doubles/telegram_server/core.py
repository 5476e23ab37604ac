"""The server's state and the internals every Bot API area shares: who sees which message
(privacy mode, fan-out into update queues), how chats, members and messages are serialised,
and the access checks of telegram-bot-api (chat not found, kicked, blocked, flood).

The Bot API areas are mixins over this core; server.py puts them together. Next: app.py, the
HTTP side that routes a request to its method.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from tests.doubles.telegram_server.entities import fix_text
from tests.doubles.telegram_server.flood import FloodControl, Limits
from tests.doubles.telegram_server.protocol import (
    TELEGRAM_SERVICE_USER_ID,
    ApiError,
    bad,
    forbidden,
    to_int,
)
from tests.doubles.telegram_server.state import (
    MEMBER_STATUSES,
    Access,
    ApiCall,
    BotInfo,
    BotState,
    CallbackQuery,
    Chat,
    Membership,
    Stats,
    StoredMessage,
    User,
    WebhookDelivery,
)

# Update types a bot gets when it did not choose (Bot API: "all except chat_member,
# message_reaction and message_reaction_count").
_NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


class ServerCore:
    """State and shared internals of the in-memory Telegram."""

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
        strict_html: bool = True,
    ) -> None:
        self.limits = limits or Limits()
        self.stats = Stats()
        self.history: list[ApiCall] = []
        self.webhook_deliveries: list[WebhookDelivery] = []  # every POST to a webhook
        self.strict_html = strict_html
        self._monotonic = monotonic
        self._clock = clock
        self._flood = FloodControl(self.limits, monotonic)
        self._bots: dict[int, BotState] = {}
        self._tokens: dict[str, BotState] = {}
        self._users: dict[int, User] = {}
        self._chats: dict[int, Chat] = {}
        self._private: dict[tuple[int, int], Chat] = {}
        self._callbacks: dict[str, CallbackQuery] = {}
        self._answers: dict[str, dict[str, Any]] = {}
        self._files: dict[str, bytes] = {}
        self._ids = itertools.count(1)
        self._user_ids = itertools.count(1_000_001)
        self._group_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._base: str | None = None
        # Webhook delivery (webhooks.py): one task per bot with a webhook, one HTTP client.
        self._deliveries: dict[int, asyncio.Task[None]] = {}
        self._webhook_posts: set[asyncio.Task[None]] = set()
        self._failing: dict[str, list[ApiError]] = {}  # fail_next_call: method -> errors
        self._slow_arrivals: dict[str, list[float]] = {}  # slow_next_arrival: method -> delays
        self._slow_answers: dict[str, list[float]] = {}  # slow_next_answer: method -> delays
        self._webhook_client: aiohttp.ClientSession | None = None
        self._service_user = User(TELEGRAM_SERVICE_USER_ID, "Telegram")
        self._users[TELEGRAM_SERVICE_USER_ID] = self._service_user

    # ---- waiting ------------------------------------------------------------------------

    def _touch(self) -> None:
        """Wake everyone waiting for a state change."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a deadline for the condition, not for I/O
    ) -> None:
        """Wait until `predicate()` holds; it is re-checked after every state change."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self._changed
            if predicate():
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    async def wait_answer(
        self,
        callback_query_id: str,
        timeout: float = 5.0,  # noqa: ASYNC109 - same as wait_for
    ) -> dict[str, Any]:
        """The answerCallbackQuery parameters the bot sent for this query."""
        await self.wait_for(lambda: callback_query_id in self._answers, timeout)
        return self._answers[callback_query_id]

    # ---- internals: chats and messages --------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def _chat(self, chat_id: int) -> Chat:
        try:
            return self._chats[chat_id]
        except KeyError:
            raise ValueError(f"no chat {chat_id}") from None

    def _pick_bot(self, bot: BotInfo | None) -> int:
        if bot is not None:
            return bot.id
        if len(self._bots) != 1:
            raise ValueError("several bots are registered: say which one with bot=")
        return next(iter(self._bots))

    def _private_chat(self, user: User, bot_id: int) -> Chat:
        chat = self._private.get((user.id, bot_id))
        if chat is None:
            chat = Chat(user.id, "private", private_user=user, private_bot_id=bot_id)
            self._private[(user.id, bot_id)] = chat
        return chat

    def _chat_for_person(self, chat_id: int, user: User, bot: BotInfo | None) -> Chat:
        if chat_id > 0:
            if chat_id != user.id:
                raise ValueError("a private chat's id is the user's id")
            return self._private_chat(user, self._pick_bot(bot))
        return self._chat(chat_id)

    def _chat_for_lookup(self, chat_id: int, bot: BotInfo | None) -> Chat:
        if chat_id < 0:
            return self._chat(chat_id)
        if bot is not None:
            chat = self._private.get((chat_id, bot.id))
            if chat is None:
                raise ValueError(f"no private chat between {chat_id} and bot {bot.id}")
            return chat
        found = [c for (uid, _), c in self._private.items() if uid == chat_id]
        if len(found) != 1:
            raise ValueError(f"{len(found)} private chats with {chat_id}: say which bot=")
        return found[0]

    @staticmethod
    def _person_text(text: str) -> tuple[str, list[dict[str, Any]]]:
        # Apps clean and trim what people type just like the server does for bots
        try:
            return fix_text(text, [], allow_empty=False)
        except ApiError:
            raise ValueError("a message needs some non-blank text") from None

    @staticmethod
    def _live(chat: Chat, message_id: int) -> StoredMessage | None:
        msg = chat.store.get(message_id)
        return None if msg is None or msg.deleted else msg

    def _new_message(
        self,
        chat: Chat,
        sender: User | None,
        *,
        reply_to: int | None = None,
        thread_id: int | None = None,
        **fields: Any,
    ) -> StoredMessage:
        msg = StoredMessage(
            chat_id=chat.id,
            message_id=chat.next_message_id,
            date=self._now(),
            from_user=sender,
            reply_to_message_id=reply_to,
            thread_id=thread_id,
            private_bot_id=chat.private_bot_id,
            **fields,
        )
        chat.next_message_id += 1
        chat.store[msg.message_id] = msg
        return msg

    def _person_thread(
        self, chat: Chat, thread_id: int | None, reply: StoredMessage | None
    ) -> tuple[int | None, bool]:
        if chat.is_forum:
            if thread_id is None and reply is not None:
                thread_id = reply.thread_id
            if thread_id is not None and thread_id not in chat.topics:
                raise ValueError(f"no topic {thread_id} in {chat.title}")
            return thread_id, thread_id is not None
        if thread_id is not None:
            raise ValueError("message_thread_id is for forum topics; reply to join a thread")
        if chat.type == "supergroup" and reply is not None:
            return reply.thread_id or reply.message_id, False  # reply (comment) threads
        return None, False

    def _auto_forward(self, channel: Chat, post: StoredMessage) -> None:
        if channel.linked_chat_id is None:
            return
        group = self._chats[channel.linked_chat_id]
        copy = self._new_message(
            group,
            self._service_user,
            sender_chat_id=channel.id,
            text=post.text,
            entities=list(post.entities),
            caption=post.caption,
            caption_entities=list(post.caption_entities),
            photo=post.photo,
            photo_bytes=post.photo_bytes,
            is_automatic_forward=True,
            forward_origin={
                "type": "channel",
                "chat": self._chat_api(channel),
                "message_id": post.message_id,
                "date": post.date,
            },
        )
        post.discussion_message_id = copy.message_id
        self._fan_out(group, copy)

    # ---- internals: who sees what -------------------------------------------------------

    def _bot_members(self, chat: Chat) -> list[BotState]:
        if chat.type == "private":
            assert chat.private_bot_id is not None
            return [self._bots[chat.private_bot_id]]
        return [
            state
            for bot_id, state in self._bots.items()
            if (m := chat.members.get(bot_id)) is not None and m.status in MEMBER_STATUSES
        ]

    def _bot_sees(self, state: BotState, chat: Chat, msg: StoredMessage) -> bool:
        bot = state.info
        if msg.bot_id is not None or (msg.from_user is not None and msg.from_user.is_bot):
            return False  # bots do not see other bots' messages, nor their own
        if chat.type in ("private", "channel") or msg.service is not None:
            return True  # privacy mode covers ordinary group messages only
        member = chat.members[bot.id]
        can_read_all = (
            member.can_read_all
            if member.can_read_all is not None
            else bot.can_read_all_group_messages
        )
        if member.status in ("administrator", "creator") or can_read_all:
            return True
        if msg.reply_to_message_id is not None:
            replied = chat.store.get(msg.reply_to_message_id)
            if replied is not None and replied.bot_id == bot.id:
                return True
        text = msg.text if msg.text is not None else msg.caption or ""
        for entity in msg.entities if msg.text is not None else msg.caption_entities:
            piece = text.encode("utf-16-le")[
                entity["offset"] * 2 : (entity["offset"] + entity["length"]) * 2
            ].decode("utf-16-le")
            if entity["type"] == "mention" and piece[1:].lower() == bot.username.lower():
                return True
            if entity["type"] == "text_mention" and entity["user"]["id"] == bot.id:
                return True
            if entity["type"] == "bot_command" and entity["offset"] == 0:
                _, _, target = piece.partition("@")
                if target:
                    if target.lower() == bot.username.lower():
                        return True
                elif chat.last_bot_sender in (None, bot.id):
                    return True  # general commands go to the bot that spoke last
        return False

    def _fan_out(self, chat: Chat, msg: StoredMessage, kind: str = "message") -> None:
        if chat.type == "channel" and kind == "message":
            kind = "channel_post"
        if chat.type == "channel" and kind == "edited_message":
            kind = "edited_channel_post"
        for state in self._bot_members(chat):
            if self._bot_sees(state, chat, msg):
                self._enqueue(state, kind, self._message_api(chat, msg, state.info))

    def _enqueue(self, state: BotState, kind: str, payload: dict[str, Any]) -> None:
        allowed = state.allowed_updates
        if (kind in allowed) if allowed else (kind not in _NOT_BY_DEFAULT):
            state.updates.append({"update_id": state.next_update_id, kind: payload})
            state.next_update_id += 1

    def _bot_knows_user(self, bot_id: int, user: User) -> bool:
        if (user.id, bot_id) in self._private:
            return True
        return any(
            bot_id in chat.members and user.id in chat.members for chat in self._chats.values()
        )

    # ---- internals: serialisation -------------------------------------------------------

    def _chat_api(self, chat: Chat) -> dict[str, Any]:
        data: dict[str, Any] = {"id": chat.id, "type": chat.type}
        if chat.type == "private":
            user = chat.private_user
            assert user is not None
            data["first_name"] = user.first_name
            if user.last_name:
                data["last_name"] = user.last_name
            if user.username:
                data["username"] = user.username
            return data
        data["title"] = chat.title
        if chat.username:
            data["username"] = chat.username
        if chat.is_forum:
            data["is_forum"] = True
        return data

    def _chat_instance(self, chat: Chat, bot: BotInfo) -> str:
        return str(-((abs(chat.id) * 1_000_003 + bot.id * 7_919) % 9_000_000_000_000_000_000))

    def _member_api(self, chat: Chat, user: User, member: Membership | None) -> dict[str, Any]:
        status = member.status if member else "left"
        data: dict[str, Any] = {"status": status, "user": user.to_api()}
        if status == "creator":
            data["is_anonymous"] = False
        elif status == "administrator":
            assert member is not None
            rights = dict(member.rights)
            if chat.type != "channel":
                rights.pop("can_post_messages", None)
                rights.pop("can_edit_messages", None)
            if not chat.is_forum:
                rights.pop("can_manage_topics", None)
            if chat.type == "channel":
                rights.pop("can_pin_messages", None)
            data.update(rights)
        elif status == "restricted":
            data.update(
                is_member=True,
                until_date=0,
                can_send_messages=True,
                can_send_audios=True,
                can_send_documents=True,
                can_send_photos=True,
                can_send_videos=True,
                can_send_video_notes=True,
                can_send_voice_notes=True,
                can_send_polls=True,
                can_send_other_messages=True,
                can_add_web_page_previews=True,
                can_react_to_messages=True,
                can_change_info=False,
                can_invite_users=True,
                can_pin_messages=False,
                can_manage_topics=False,
                can_edit_tag=False,
            )
        elif status == "kicked":
            data["until_date"] = 0
        return data

    def _message_api(
        self, chat: Chat, msg: StoredMessage, bot: BotInfo, depth: int = 0
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"message_id": msg.message_id}
        if msg.from_user is not None:
            data["from"] = msg.from_user.to_api()
        if msg.sender_chat_id is not None:
            data["sender_chat"] = self._chat_api(self._chats[msg.sender_chat_id])
        data["date"] = msg.date
        data["chat"] = self._chat_api(chat)
        if msg.thread_id is not None:
            data["message_thread_id"] = msg.thread_id
        if msg.is_topic_message:
            data["is_topic_message"] = True
        if msg.author_signature:
            data["author_signature"] = msg.author_signature
        if msg.forward_origin is not None:
            data["forward_origin"] = msg.forward_origin
        if msg.is_automatic_forward:
            data["is_automatic_forward"] = True
        reply_id = msg.reply_to_message_id
        if reply_id is None and msg.is_topic_message and msg.thread_id != msg.message_id:
            reply_id = msg.thread_id  # Telegram: a topic message "replies" to the topic's start
        if depth == 0 and reply_id is not None:
            replied = self._live(chat, reply_id)
            if replied is not None:
                data["reply_to_message"] = self._message_api(chat, replied, bot, depth + 1)
        if msg.external_reply is not None:
            data["external_reply"] = msg.external_reply
        if msg.quote is not None:
            data["quote"] = msg.quote
        if msg.edit_date is not None:
            data["edit_date"] = msg.edit_date
        if msg.protect_content:
            data["has_protected_content"] = True
        if msg.text is not None:
            data["text"] = msg.text
            if msg.entities:
                data["entities"] = msg.entities
            if msg.link_preview_options:
                data["link_preview_options"] = msg.link_preview_options
        if msg.photo is not None:
            data["photo"] = msg.photo
        if msg.document is not None:
            data["document"] = msg.document
        if msg.caption:
            data["caption"] = msg.caption
            if msg.caption_entities:
                data["caption_entities"] = msg.caption_entities
        if msg.service:
            data.update(msg.service)
        if msg.reply_markup is not None:
            data["reply_markup"] = msg.reply_markup
        return data

    # ---- shared checks ------------------------------------------------------------------

    def _check_chat(self, bot: BotInfo, raw: str | None, access: Access) -> Chat:
        """telegram-bot-api's check_chat + check_chat_access."""
        if not raw:
            raise bad("chat_id is empty")
        if raw.startswith("@"):
            name = raw[1:].lower()
            chat = next(
                (
                    c
                    for c in self._chats.values()
                    if c.username and c.username.lower() == name and c.type != "group"
                ),
                None,
            )
            if chat is None:
                raise bad("chat not found")
        else:
            chat_id = to_int(raw)
            if chat_id > 0:
                return self._check_private(bot, chat_id, access)
            chat = self._chats.get(chat_id)
            if chat is None:
                raise bad("chat not found")
        if chat.migrated_to is not None:
            # Every method on an upgraded group's old id, with the new id as a parameter.
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=chat.migrated_to,
            )
        member = chat.members.get(bot.id)
        if member is None:
            raise bad("chat not found")  # the bot never was there, so it cannot know the chat
        kind = chat.type
        need_edit = access in (Access.EDIT, Access.WRITE)
        if member.status == "kicked" and (need_edit or chat.type != "group"):
            raise forbidden(f"bot was kicked from the {kind} chat")
        if member.status not in MEMBER_STATUSES:
            need = need_edit if (chat.type == "group" or chat.username) else True
            if need:
                raise forbidden(f"bot is not a member of the {kind} chat")
        return chat

    def _check_private(self, bot: BotInfo, user_id: int, access: Access) -> Chat:
        user = self._users.get(user_id)
        if user is None or user_id == bot.id or not self._bot_knows_user(bot.id, user):
            raise bad("chat not found")
        chat = self._private_chat(user, bot.id)
        if access is Access.WRITE:
            if user.is_bot:
                raise forbidden("bot can't send messages to bots")
            if not chat.started:
                raise forbidden("bot can't initiate conversation with a user")
            if chat.blocked:
                raise forbidden("bot was blocked by the user")
        return chat

    def _check_can_post(self, bot: BotInfo, chat: Chat) -> None:
        if chat.type != "channel":
            return
        member = chat.members[bot.id]
        if member.status != "creator" and not (
            member.status == "administrator" and member.rights.get("can_post_messages")
        ):
            raise bad("need administrator rights in the channel chat")

    def _flood_check(self, bot: BotInfo, chat: Chat) -> None:
        retry = self._flood.retry_after(bot.id, chat)
        if retry is not None:
            raise ApiError(429, f"Too Many Requests: retry after {retry}", retry_after=retry)
