"""The test side: build the world (bots, users, groups, channels, forum topics), act as
people (write, edit, delete, post, press buttons, block the bot) and read the state back.

Nothing here is a Bot API method: these are the plain methods tests call. Next: state.py, what
the server remembers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from tests.doubles.telegram_server.core import ServerCore
from tests.doubles.telegram_server.state import (
    ADMIN_RIGHTS,
    MEMBER_STATUSES,
    ApiCall,
    BotInfo,
    BotState,
    CallbackQuery,
    Chat,
    Membership,
    StoredMessage,
    Topic,
    User,
)


class PeopleSide(ServerCore):
    """What tests do as the people and the world around the bot."""

    # ---- test side: setup ---------------------------------------------------------------

    def add_bot(
        self,
        token: str,
        username: str,
        *,
        first_name: str | None = None,
        can_read_all_group_messages: bool = True,
        can_join_groups: bool = True,
    ) -> BotInfo:
        """Register a bot; its id is the token's numeric prefix, as aiogram assumes."""
        m = re.fullmatch(r"(\d+):[\w-]+", token)
        if not m:
            raise ValueError("a bot token looks like '123456:secret'")
        info = BotInfo(
            int(m.group(1)),
            username,
            token,
            first_name or username,
            can_join_groups,
            can_read_all_group_messages,
        )
        state = BotState(info)
        self._bots[info.id] = state
        self._tokens[token] = state
        self._users[info.id] = info.user
        return info

    def create_user(
        self,
        first_name: str,
        username: str | None = None,
        id: int | None = None,
        *,
        last_name: str | None = None,
        language_code: str | None = None,
    ) -> User:
        user_id = id if id is not None else next(self._user_ids)
        user = User(user_id, first_name, username, last_name, language_code)
        self._users[user_id] = user
        return user

    def create_chat(
        self,
        type: str,
        title: str,
        is_forum: bool = False,
        bot_status: str | None = "member",
        can_read_all: bool | None = None,
        *,
        username: str | None = None,
        owner: User | None = None,
        bots: Iterable[BotInfo] | None = None,
        bot_rights: dict[str, bool] | None = None,
    ) -> Chat:
        """A group, supergroup or channel; `bot_status` applies to `bots` (default: all bots).

        `bot_status=None` means the bots never were in it (they get "chat not found").
        `can_read_all=None` takes each bot's privacy setting (`add_bot`).
        """
        if type not in ("group", "supergroup", "channel"):
            raise ValueError(
                "private chats: start_private_chat(user) or send_user_message(user.id, ...)"
            )
        if is_forum and type != "supergroup":
            raise ValueError("only supergroups can be forums")
        n = next(self._group_ids)
        chat_id = -(4_000_000_000 + n) if type == "group" else -(1_002_000_000_000 + n)
        owner = owner or self.create_user("Owner")
        chat = Chat(chat_id, type, title, username, is_forum, owner)
        chat.members[owner.id] = Membership("creator")
        chat.next_message_id = 2  # message 1 is the service message "chat created"
        self._chats[chat_id] = chat
        if bot_status is not None:
            for bot in bots if bots is not None else [s.info for s in self._bots.values()]:
                rights = {**ADMIN_RIGHTS, **(bot_rights or {})}
                chat.members[bot.id] = Membership(
                    bot_status,
                    rights if bot_status == "administrator" else {},
                    can_read_all,
                )
        return chat

    def create_channel(
        self, title: str, *, username: str | None = None, bot_status: str | None = "administrator"
    ) -> Chat:
        return self.create_chat("channel", title, bot_status=bot_status, username=username)

    def set_bot_status(
        self,
        chat_id: int,
        bot: BotInfo,
        status: str,
        *,
        rights: dict[str, bool] | None = None,
        by: User | None = None,
    ) -> None:
        """Promote, demote, remove ("left") or ban ("kicked") a bot; it gets my_chat_member."""
        chat = self._chat(chat_id)
        old = chat.members.get(bot.id)
        old_api = self._member_api(chat, bot.user, old)
        chat.members[bot.id] = Membership(
            status,
            {**ADMIN_RIGHTS, **(rights or {})} if status == "administrator" else {},
            old.can_read_all if old else None,
        )
        actor = by or chat.owner or self._service_user
        self._enqueue(
            self._bots[bot.id],
            "my_chat_member",
            {
                "chat": self._chat_api(chat),
                "from": actor.to_api(),
                "date": self._now(),
                "old_chat_member": old_api,
                "new_chat_member": self._member_api(chat, bot.user, chat.members[bot.id]),
            },
        )
        self._touch()

    def add_member(self, chat_id: int, user: User, *, announce: bool = True) -> None:
        """A user joins; with `announce` the chat gets the "joined" service message."""
        chat = self._chat(chat_id)
        chat.members[user.id] = Membership("member")
        if announce and chat.type in ("group", "supergroup"):
            msg = self._new_message(chat, user, service={"new_chat_members": [user.to_api()]})
            self._fan_out(chat, msg)
        self._touch()

    def create_topic(
        self, chat_id: int, name: str, *, by: User | None = None, icon_color: int = 0x6FB9F0
    ) -> int:
        """A forum topic; its id is the id of its "topic created" service message."""
        chat = self._chat(chat_id)
        if not chat.is_forum:
            raise ValueError("topics exist only in forum supergroups")
        creator = by or chat.owner
        assert creator is not None
        thread_id = chat.next_message_id
        msg = self._new_message(
            chat,
            creator,
            service={"forum_topic_created": {"name": name, "icon_color": icon_color}},
            thread_id=thread_id,
            is_topic_message=True,
        )
        chat.topics[thread_id] = Topic(thread_id, name, icon_color)
        self._fan_out(chat, msg)
        self._touch()
        return thread_id

    def close_topic(self, chat_id: int, thread_id: int) -> None:
        chat = self._chat(chat_id)
        chat.topics[thread_id].closed = True
        assert chat.owner is not None
        msg = self._new_message(
            chat,
            chat.owner,
            service={"forum_topic_closed": {}},
            thread_id=thread_id,
            is_topic_message=True,
        )
        self._fan_out(chat, msg)
        self._touch()

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        chat = self._chat(chat_id)
        chat.topics.pop(thread_id)
        for msg in chat.store.values():
            if msg.thread_id == thread_id:
                msg.deleted = True
        self._touch()

    def migrate_to_supergroup(self, chat_id: int, *, is_forum: bool = False) -> Chat:
        """A group becomes a supergroup (its owner turned on topics, or made it public): a new
        chat with a new -100… id and the same members. The old group's last message says
        `migrate_to_chat_id`, the new one's first `migrate_from_chat_id`; methods on the old
        id answer 400 with `parameters.migrate_to_chat_id`."""
        old = self._chat(chat_id)
        if old.type != "group":
            raise ValueError("only basic groups migrate to supergroups")
        n = next(self._group_ids)
        new = Chat(-(1_002_000_000_000 + n), "supergroup", old.title, None, is_forum, old.owner)
        new.members = dict(old.members)
        new.next_message_id = 1
        self._chats[new.id] = new
        owner = old.owner
        assert owner is not None
        gone = self._new_message(old, owner, service={"migrate_to_chat_id": new.id})
        self._fan_out(old, gone)
        old.migrated_to = new.id
        came = self._new_message(new, owner, service={"migrate_from_chat_id": old.id})
        self._fan_out(new, came)
        self._touch()
        return new

    def link_discussion(self, channel_id: int, group_id: int) -> None:
        channel, group = self._chat(channel_id), self._chat(group_id)
        if channel.type != "channel" or group.type != "supergroup":
            raise ValueError("a channel's discussion group is a supergroup")
        channel.linked_chat_id = group.id
        group.linked_chat_id = channel.id

    def start_private_chat(
        self, user: User, bot: BotInfo | None = None, *, send_start: bool = True
    ) -> Chat:
        """The user opens the bot. Pressing Start sends "/start"; without `send_start` the
        chat is simply one the user contacted before (so the bot may write first)."""
        if send_start:
            self.send_user_message(user.id, user, "/start", bot=bot)
        chat = self._private_chat(user, self._pick_bot(bot))
        chat.started = True
        self._touch()
        return chat

    def block_bot(self, user: User, bot: BotInfo) -> None:
        """The user blocks the bot: sending to them is 403 "bot was blocked by the user"."""
        chat = self._private_chat(user, bot.id)
        chat.blocked = True
        self._enqueue(
            self._bots[bot.id],
            "my_chat_member",
            {
                "chat": self._chat_api(chat),
                "from": user.to_api(),
                "date": self._now(),
                "old_chat_member": {"status": "member", "user": bot.user.to_api()},
                "new_chat_member": {"status": "kicked", "user": bot.user.to_api(), "until_date": 0},
            },
        )
        self._touch()

    # ---- test side: people act ----------------------------------------------------------

    def send_user_message(
        self,
        chat_id: int,
        user: User,
        text: str,
        reply_to: int | None = None,
        thread_id: int | None = None,
        *,
        bot: BotInfo | None = None,
    ) -> StoredMessage:
        """A person writes; bots that can see it (privacy mode!) get a `message` update.

        Private chats are addressed by the user's id (`chat_id == user.id`) and, when several
        bots are registered, `bot`.
        """
        text, entities = self._person_text(text)
        return self._person_writes(
            chat_id, user, reply_to, thread_id, bot, text=text, entities=entities
        )

    def send_user_photo(
        self,
        chat_id: int,
        user: User,
        photo: bytes,
        caption: str = "",
        reply_to: int | None = None,
        thread_id: int | None = None,
        *,
        bot: BotInfo | None = None,
    ) -> StoredMessage:
        """A person sends a picture (PNG, GIF, JPEG or WebP bytes), with or without a
        caption. As in Telegram, the message's `photo` is the PhotoSize ladder (up to four
        sizes, smallest first, each with its own file_id) that bots can send back by file_id
        or fetch with getFile."""
        sizes = self._photo_sizes(photo)  # files.py: the same ladder a bot's sendPhoto gets
        text, entities = self._person_caption(caption)
        return self._person_writes(
            chat_id,
            user,
            reply_to,
            thread_id,
            bot,
            photo=sizes,
            photo_bytes=photo,
            caption=text or None,
            caption_entities=entities,
        )

    def send_user_document(
        self,
        chat_id: int,
        user: User,
        data: bytes,
        file_name: str,
        mime_type: str = "application/octet-stream",
        caption: str = "",
        reply_to: int | None = None,
        thread_id: int | None = None,
        *,
        bot: BotInfo | None = None,
    ) -> StoredMessage:
        """A person sends a file as a Document (file_id, file_unique_id, file_name,
        mime_type, file_size), with or without a caption."""
        if not data:
            raise ValueError("a document needs some bytes")
        n = next(self._ids)
        document = {
            "file_id": f"BQACAgIAAxkBAAI{n:08d}",
            "file_unique_id": f"AgAD{n:08d}",
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": len(data),
        }
        self._files[document["file_id"]] = data
        text, entities = self._person_caption(caption)
        return self._person_writes(
            chat_id,
            user,
            reply_to,
            thread_id,
            bot,
            document=document,
            caption=text or None,
            caption_entities=entities,
        )

    def _person_caption(self, caption: str) -> tuple[str, list[dict[str, Any]]]:
        return self._person_text(caption) if caption.strip() else ("", [])

    def _person_writes(
        self,
        chat_id: int,
        user: User,
        reply_to: int | None,
        thread_id: int | None,
        bot: BotInfo | None,
        **fields: Any,
    ) -> StoredMessage:
        """A person's message of any kind into the chat, fanned out to the bots that see it."""
        chat = self._chat_for_person(chat_id, user, bot)
        if chat.type == "channel":
            raise ValueError("people do not write into channels here; use post_to_channel")
        if chat.type == "private":
            chat.started, chat.blocked = True, False
        else:
            member = chat.members.get(user.id)
            if member is not None and member.status == "kicked":
                raise ValueError(f"{user.first_name} is banned from {chat.title}")
            if member is None or member.status not in MEMBER_STATUSES:
                chat.members[user.id] = Membership("member")
        reply: StoredMessage | None = None
        if reply_to is not None:
            reply = self._live(chat, reply_to)
            if reply is None:
                raise ValueError(f"message {reply_to} does not exist in {chat.id}")
        thread, is_topic = self._person_thread(chat, thread_id, reply)
        msg = self._new_message(
            chat,
            user,
            reply_to=reply.message_id if reply else None,
            thread_id=thread,
            is_topic_message=is_topic,
            **fields,
        )
        self._fan_out(chat, msg)
        self._touch()
        return msg

    def edit_user_message(
        self, chat_id: int, message_id: int, text: str, *, bot: BotInfo | None = None
    ) -> StoredMessage:
        """A person edits their message; bots that saw it get `edited_message`."""
        chat = self._chat_for_lookup(chat_id, bot)
        msg = self._live(chat, message_id)
        if msg is None or msg.bot_id is not None or msg.text is None:
            raise ValueError("only a person's live text message can be edited this way")
        msg.text, msg.entities = self._person_text(text)
        msg.edit_date = self._now()
        self._fan_out(chat, msg, kind="edited_message")
        self._touch()
        return msg

    def delete_message(self, chat_id: int, message_id: int, *, bot: BotInfo | None = None) -> None:
        """Someone (an admin, the author) deletes a message; bots are not told, as in Telegram."""
        chat = self._chat_for_lookup(chat_id, bot)
        msg = self._live(chat, message_id)
        if msg is None:
            raise ValueError(f"message {message_id} does not exist")
        msg.deleted = True
        self._touch()

    def post_to_channel(
        self, channel_id: int, text: str, *, author_signature: str | None = None
    ) -> StoredMessage:
        """A channel post; admin bots get `channel_post`, the discussion group its forward."""
        channel = self._chat(channel_id)
        if channel.type != "channel":
            raise ValueError("not a channel")
        text, entities = self._person_text(text)
        post = self._new_message(
            channel,
            None,
            sender_chat_id=channel.id,
            text=text,
            entities=entities,
            author_signature=author_signature,
        )
        self._fan_out(channel, post, kind="channel_post")
        self._auto_forward(channel, post)
        self._touch()
        return post

    def press_button(
        self,
        chat_id: int,
        message_id: int,
        user: User,
        data: str | None = None,
        *,
        button_text: str | None = None,
        bot: BotInfo | None = None,
    ) -> str:
        """A person presses an inline button; returns the callback query id.

        `data=None` takes the message's callback button (pick one by `button_text` when it has
        several). Explicit `data` is sent as is, even if no button carries it: Telegram does
        not check either, so this is how a forged press is simulated.
        """
        chat = self._chat_for_lookup(chat_id, bot)
        msg = self._live(chat, message_id)
        if msg is None:
            raise ValueError(f"message {message_id} does not exist in {chat_id}")
        if msg.bot_id is None:
            raise ValueError("only messages sent by a bot carry callback buttons")
        if data is None:
            buttons = [
                b
                for row in (msg.reply_markup or {}).get("inline_keyboard", [])
                for b in row
                if "callback_data" in b and (button_text is None or b["text"] == button_text)
            ]
            if len(buttons) != 1:
                found = [(b["text"], b["callback_data"]) for b in buttons]
                raise ValueError(f"expected exactly one matching callback button, found {found}")
            data = buttons[0]["callback_data"]
        query_id = str(4_000_000_000_000_000_000 + next(self._callback_ids))
        query = CallbackQuery(
            query_id, msg.bot_id, user, chat.id, message_id, data, self._flood.now()
        )
        self._callbacks[query_id] = query
        state = self._bots[msg.bot_id]
        self._enqueue(
            state,
            "callback_query",
            {
                "id": query_id,
                "from": user.to_api(),
                "message": self._message_api(chat, msg, state.info),
                "chat_instance": self._chat_instance(chat, state.info),
                "data": data,
            },
        )
        self._touch()
        return query_id

    # ---- test side: reading state -------------------------------------------------------

    def messages(
        self,
        chat_id: int,
        thread_id: int | None = None,
        *,
        bot: BotInfo | None = None,
        include_service: bool = False,
    ) -> list[StoredMessage]:
        """The chat as it looks now (edits applied, deleted messages gone), oldest first."""
        chat = self._chat_for_lookup(chat_id, bot)
        return [
            m
            for m in sorted(chat.store.values(), key=lambda m: m.message_id)
            if not m.deleted
            and (thread_id is None or m.thread_id == thread_id)
            and (include_service or m.service is None)
        ]

    def presses(self, user: User) -> list[CallbackQuery]:
        """Every button press (callback query) this person sent, oldest first."""
        return [q for q in self._callbacks.values() if q.user.id == user.id]

    def message(
        self, chat_id: int, message_id: int, *, bot: BotInfo | None = None
    ) -> StoredMessage:
        """One message, deleted or not."""
        return self._chat_for_lookup(chat_id, bot).store[message_id]

    def pending_updates(self, bot: BotInfo) -> list[dict[str, Any]]:
        """Updates queued for the bot and not yet confirmed."""
        return list(self._bots[bot.id].updates)

    def commands(
        self, bot: BotInfo, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, str]]:
        key = (json.dumps(scope or {"type": "default"}, sort_keys=True), language_code)
        return list(self._bots[bot.id].commands.get(key, []))

    def is_polling(self, bot: BotInfo) -> bool:
        """A getUpdates of this bot is waiting for updates right now."""
        return self._bots[bot.id].polls_waiting > 0

    def calls(self, method: str | None = None) -> list[ApiCall]:
        return [c for c in self.history if method is None or c.method == method]
