"""Messages: sendMessage, sendPhoto, the three edits and deleteMessage, with the parse
modes, reply parameters, threads and topics, link previews and the text limits.

Text handling itself lives in entities.py (next), html_parser.py and markdown_parser.py.
"""

from __future__ import annotations

from typing import Any

from tests.doubles.telegram_server.entities import (
    ParseError,
    check_entity_bounds,
    check_link,
    fix_text,
    parse_explicit_entities,
    utf16_len,
)
from tests.doubles.telegram_server.files import FileApi
from tests.doubles.telegram_server.html_parser import parse_html
from tests.doubles.telegram_server.keyboards import KeyboardApi
from tests.doubles.telegram_server.markdown_parser import parse_markdown, parse_markdown_v2
from tests.doubles.telegram_server.protocol import (
    MAX_CAPTION,
    MAX_TEXT,
    NOT_MODIFIED,
    bad,
    json_arg,
    to_bool,
    to_int,
)
from tests.doubles.telegram_server.state import (
    Access,
    BotInfo,
    BotState,
    Chat,
    ReplyTarget,
    StoredMessage,
)


class MessageApi(KeyboardApi, FileApi):
    """Sending, editing and deleting messages."""

    # ---- text ---------------------------------------------------------------------------

    def _parse_text(
        self, text: str, parse_mode: str | None, entities_raw: str | None
    ) -> tuple[str, list[dict[str, Any]], bool]:
        """Parse mode or explicit entities; returns (text, entities, entities were explicit)."""
        self._check_utf8(text)
        if entities_raw:
            return text, parse_explicit_entities(entities_raw, self._users), True
        mode = (parse_mode or "").lower()
        try:
            if mode == "":
                return text, [], False
            if mode == "html":
                plain, entities = parse_html(text, strict=self.strict_html, users=self._users)
            elif mode == "markdownv2":
                plain, entities = parse_markdown_v2(text, users=self._users)
            elif mode == "markdown":
                plain, entities = parse_markdown(text, users=self._users)
            else:
                raise bad("unsupported parse_mode")
        except ParseError as exc:
            raise bad(f"can't parse entities: {exc}") from None
        return plain, entities, False

    def parse_message_text(self, text: str, parse_mode: str | None) -> str:
        """What sendMessage does with a text before storing it: the parse mode, then the
        cleanup and the length limit. Raises ApiError as the Bot API answers; returns the
        plain text. For tests that push many texts without HTTP."""
        self._check_utf8(text)
        plain, entities, explicit = self._parse_text(text, parse_mode, None)
        return self._finish_text(plain, entities, explicit, caption=False)[0]

    @staticmethod
    def _check_utf8(text: str) -> None:
        # A lone surrogate reaches us only as a JSON escape; the Bot API refuses the string.
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise bad("strings must be encoded in UTF-8") from None

    def _finish_text(
        self, text: str, entities: list[dict[str, Any]], explicit: bool, *, caption: bool
    ) -> tuple[str, list[dict[str, Any]]]:
        if explicit:
            check_entity_bounds(text, entities)
        plain, fixed = fix_text(text, entities, allow_empty=caption)
        if utf16_len(plain) > (MAX_CAPTION if caption else MAX_TEXT):
            raise bad("message caption is too long" if caption else "message is too long")
        return plain, fixed

    # ---- replies and threads ------------------------------------------------------------

    def _reply_target(self, bot: BotInfo, chat: Chat, params: dict[str, str]) -> ReplyTarget:
        """Bot API check_reply_parameters: (thread, is topic, reply, external reply, quote)."""
        message_id, allow, reply_chat, quote = 0, False, chat, None
        if params.get("reply_parameters"):
            rp = json_arg(params["reply_parameters"], "reply parameters")
            if not isinstance(rp, dict):
                raise bad("object expected as reply parameters")
            raw_id = rp.get("message_id")
            message_id = raw_id if isinstance(raw_id, int) else 0
            allow = bool(rp.get("allow_sending_without_reply"))
            quote = rp.get("quote")
            if rp.get("chat_id") not in (None, "") and str(rp["chat_id"]) != params.get("chat_id"):
                reply_chat = self._check_chat(bot, str(rp["chat_id"]), Access.READ)
        else:
            message_id = to_int(params.get("reply_to_message_id"))
            allow = to_bool(params.get("allow_sending_without_reply"))
        replied: StoredMessage | None = None
        if message_id > 0:
            replied = self._live(reply_chat, message_id)
            if replied is None and not allow:
                raise bad("message to be replied not found")
        thread_id = to_int(params.get("message_thread_id"))
        is_topic = False
        if thread_id > 0:
            if chat.is_forum:
                if thread_id not in chat.topics:
                    raise bad("message thread not found")
                is_topic = True
                topic = chat.topics[thread_id]
                member = chat.members[bot.id]
                if topic.closed and member.status not in ("administrator", "creator"):
                    raise bad("TOPIC_CLOSED")
            else:
                root = self._live(chat, thread_id) if chat.type == "supergroup" else None
                if root is not None and (root.thread_id or root.message_id) == thread_id:
                    raise bad("message thread is not a forum topic thread")
                raise bad("message thread not found")
        external: dict[str, Any] | None = None
        if replied is not None:
            other_thread = thread_id > 0 and replied.thread_id != thread_id
            if reply_chat is not chat or other_thread:
                external = {
                    "origin": self._origin(replied),
                    "chat": self._chat_api(reply_chat),
                    "message_id": replied.message_id,
                }
                replied = None
        if thread_id <= 0 and replied is not None:
            if chat.is_forum:
                thread_id, is_topic = replied.thread_id or 0, replied.thread_id is not None
            elif chat.type == "supergroup":
                thread_id = replied.thread_id or replied.message_id
        quote_obj = None
        if quote and (replied or external):
            source = (replied.text if replied else None) or ""
            position = source.find(str(quote)) if replied else 0
            if replied and position < 0:
                raise bad("QUOTE_TEXT_INVALID")
            quote_obj = {
                "text": str(quote),
                "position": utf16_len(source[:position]),
                "is_manual": True,
            }
        return thread_id or None, is_topic, replied, external, quote_obj

    def _origin(self, msg: StoredMessage) -> dict[str, Any]:
        if msg.sender_chat_id is not None:
            sender = self._chats[msg.sender_chat_id]
            if sender.type == "channel":
                return {
                    "type": "channel",
                    "date": msg.date,
                    "chat": self._chat_api(sender),
                    "message_id": msg.message_id,
                }
            return {"type": "chat", "date": msg.date, "sender_chat": self._chat_api(sender)}
        assert msg.from_user is not None
        return {"type": "user", "date": msg.date, "sender_user": msg.from_user.to_api()}

    # ---- sending ------------------------------------------------------------------------

    def _store_bot_message(
        self,
        state: BotState,
        chat: Chat,
        params: dict[str, str],
        markup: dict[str, Any] | None,
        reply: ReplyTarget,
        **content: Any,
    ) -> StoredMessage:
        thread_id, is_topic, replied, external, quote = reply
        bot = state.info
        sender = bot.user if chat.type != "channel" else None
        msg = self._new_message(
            chat,
            sender,
            sender_chat_id=chat.id if chat.type == "channel" else None,
            reply_to=replied.message_id if replied else None,
            thread_id=thread_id,
            is_topic_message=is_topic,
            external_reply=external,
            quote=quote,
            reply_markup=markup if markup and "inline_keyboard" in markup else None,
            sent_reply_markup=markup,
            protect_content=to_bool(params.get("protect_content")),
            disable_notification=to_bool(params.get("disable_notification")),
            bot_id=bot.id,
            **content,
        )
        if chat.type != "private":
            chat.last_bot_sender = bot.id
        self._flood.record(bot.id, chat)
        if chat.type == "channel":
            self._auto_forward(chat, msg)
        return msg

    def _link_preview(self, params: dict[str, str]) -> dict[str, Any] | None:
        if params.get("link_preview_options"):
            options = json_arg(params["link_preview_options"], "link preview options")
            if not isinstance(options, dict):
                raise bad("object expected as link preview options")
            if options.get("url"):
                try:
                    check_link(str(options["url"]))
                except ValueError:
                    raise bad("WEBPAGE_URL_INVALID") from None
            return {k: v for k, v in options.items() if v not in (None, False, "")} or None
        if to_bool(params.get("disable_web_page_preview")):
            return {"is_disabled": True}
        return None

    async def _api_sendMessage(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        markup = self._parse_markup(params.get("reply_markup"))
        source = params.get("text", "")
        if source == "":
            raise bad("message text is empty")
        text, entities, explicit = self._parse_text(
            source, params.get("parse_mode"), params.get("entities")
        )
        preview = self._link_preview(params)
        chat = self._check_chat(state.info, params.get("chat_id"), Access.WRITE)
        reply = self._reply_target(state.info, chat, params)
        self._check_can_post(state.info, chat)
        text, entities = self._finish_text(text, entities, explicit, caption=False)
        markup = self._check_markup(markup, chat)
        self._flood_check(state.info, chat)
        msg = self._store_bot_message(
            state,
            chat,
            params,
            markup,
            reply,
            text=text,
            entities=entities,
            link_preview_options=preview,
            source=source,
            parse_mode=params.get("parse_mode"),
        )
        return self._message_api(chat, msg, state.info)

    async def _api_sendPhoto(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        markup = self._parse_markup(params.get("reply_markup"))
        data = self._photo_input(params, files)
        source = params.get("caption", "")
        caption, entities, explicit = self._parse_text(
            source, params.get("parse_mode"), params.get("caption_entities")
        )
        chat = self._check_chat(state.info, params.get("chat_id"), Access.WRITE)
        reply = self._reply_target(state.info, chat, params)
        self._check_can_post(state.info, chat)
        caption, entities = self._finish_text(caption, entities, explicit, caption=True)
        markup = self._check_markup(markup, chat)
        sizes = self._photo_sizes(data)
        self._flood_check(state.info, chat)
        msg = self._store_bot_message(
            state,
            chat,
            params,
            markup,
            reply,
            photo=sizes,
            photo_bytes=data,
            caption=caption or None,
            caption_entities=entities,
            source=source,
            parse_mode=params.get("parse_mode"),
        )
        return self._message_api(chat, msg, state.info)

    # ---- editing and deleting -----------------------------------------------------------

    def _target(
        self, bot: BotInfo, params: dict[str, str], what: str
    ) -> tuple[Chat, StoredMessage]:
        if params.get("inline_message_id"):
            raise bad("MESSAGE_ID_INVALID")  # no inline mode here
        if not params.get("chat_id"):
            raise bad("message identifier is not specified")
        chat = self._check_chat(bot, params.get("chat_id"), Access.EDIT)
        message_id = to_int(params.get("message_id"))
        msg = self._live(chat, message_id) if message_id > 0 else None
        if msg is None:
            raise bad(f"{what} not found")
        return chat, msg

    def _check_editable(self, bot: BotInfo, chat: Chat, msg: StoredMessage) -> None:
        if msg.bot_id == bot.id and chat.type != "channel":
            return
        member = chat.members.get(bot.id)
        rights = member.rights if member else {}
        own_post = msg.bot_id == bot.id and rights.get("can_post_messages")
        if (
            chat.type == "channel"
            and msg.sender_chat_id == chat.id
            and member
            and (member.status == "creator" or rights.get("can_edit_messages") or own_post)
        ):
            return
        raise bad("message can't be edited")

    def _apply_edit(
        self, state: BotState, chat: Chat, msg: StoredMessage, changes: dict[str, Any]
    ) -> dict[str, Any]:
        if all(getattr(msg, key) == value for key, value in changes.items()):
            raise bad(NOT_MODIFIED)
        self._flood_check(state.info, chat)
        for key, value in changes.items():
            setattr(msg, key, value)
        msg.edit_date = self._now()
        self._flood.record(state.info.id, chat)
        if chat.type == "channel" and msg.discussion_message_id is not None:
            copy = chat.linked_chat_id and self._chats[chat.linked_chat_id].store.get(
                msg.discussion_message_id
            )
            if copy:  # Telegram keeps the discussion copy in step with the post
                for key in ("text", "entities", "caption", "caption_entities"):
                    setattr(copy, key, getattr(msg, key))
                copy.edit_date = msg.edit_date
        return self._message_api(chat, msg, state.info)

    async def _api_editMessageText(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        markup = self._parse_markup(params.get("reply_markup"))
        if markup is not None and "inline_keyboard" not in markup:
            raise bad("inline keyboard expected")
        source = params.get("text", "")
        if source == "":
            raise bad("message text is empty")
        text, entities, explicit = self._parse_text(
            source, params.get("parse_mode"), params.get("entities")
        )
        preview = self._link_preview(params)
        chat, msg = self._target(state.info, params, "message to edit")
        self._check_editable(state.info, chat, msg)
        if msg.text is None:
            raise bad("there is no text in the message to edit")
        text, entities = self._finish_text(text, entities, explicit, caption=False)
        markup = self._check_markup(markup, chat)
        return self._apply_edit(
            state,
            chat,
            msg,
            {
                "text": text,
                "entities": entities,
                "reply_markup": markup,
                **({"link_preview_options": preview} if preview else {}),
            },
        )

    async def _api_editMessageCaption(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        markup = self._parse_markup(params.get("reply_markup"))
        source = params.get("caption", "")
        caption, entities, explicit = self._parse_text(
            source, params.get("parse_mode"), params.get("caption_entities")
        )
        chat, msg = self._target(state.info, params, "message to edit")
        self._check_editable(state.info, chat, msg)
        if msg.photo is None:
            raise bad("there is no caption in the message to edit")
        caption, entities = self._finish_text(caption, entities, explicit, caption=True)
        markup = self._check_markup(markup, chat)
        return self._apply_edit(
            state,
            chat,
            msg,
            {
                "caption": caption or None,
                "caption_entities": entities,
                "reply_markup": markup,
            },
        )

    async def _api_editMessageReplyMarkup(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        markup = self._parse_markup(params.get("reply_markup"))
        if markup is not None and "inline_keyboard" not in markup:
            raise bad("inline keyboard expected")
        chat, msg = self._target(state.info, params, "message to edit")
        self._check_editable(state.info, chat, msg)
        markup = self._check_markup(markup, chat)
        return self._apply_edit(state, chat, msg, {"reply_markup": markup})

    async def _api_deleteMessage(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> bool:
        bot = state.info
        chat, msg = self._target(bot, params, "message to delete")
        member = chat.members.get(bot.id)
        is_admin = member is not None and (
            member.status == "creator" or member.rights.get("can_delete_messages", False)
        )
        own = msg.bot_id == bot.id
        if msg.service and ("forum_topic_created" in msg.service):
            raise bad("message can't be deleted")
        if chat.type == "private":
            allowed = True  # bots may delete both sides of a private chat
        elif chat.type == "channel":
            allowed = is_admin or (
                own and member is not None and bool(member.rights.get("can_post_messages"))
            )
        else:
            allowed = own or is_admin
        if not allowed:
            raise bad("message can't be deleted")
        if self._now() - msg.date > 48 * 3600 and not (is_admin and chat.type != "group"):
            raise bad("message can't be deleted for everyone")
        msg.deleted = True
        return True
