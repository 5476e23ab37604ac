"""Chats as a bot sees them: getChat, getChatMember, getChatAdministrators and
sendChatAction.

Next: people.py, what tests do as the people around the bot.
"""

from __future__ import annotations

from typing import Any

from tests.doubles.telegram_server.messages import MessageApi
from tests.doubles.telegram_server.protocol import bad, to_int
from tests.doubles.telegram_server.state import Access, BotState, Membership

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


class ChatApi(MessageApi):
    """Chat and member look-ups; sendChatAction."""

    # ---- chats --------------------------------------------------------------------------

    async def _api_getChat(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        chat = self._check_chat(state.info, params.get("chat_id"), Access.READ)
        data = self._chat_api(chat) | {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
        if chat.linked_chat_id is not None:
            data["linked_chat_id"] = chat.linked_chat_id
        if chat.type in ("group", "supergroup"):
            data["permissions"] = {
                "can_send_messages": True,
                "can_send_photos": True,
                "can_invite_users": True,
                "can_pin_messages": False,
                "can_change_info": False,
                "can_manage_topics": False,
            }
        return data

    async def _api_getChatMember(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        chat = self._check_chat(state.info, params.get("chat_id"), Access.READ)
        user_id = to_int(params.get("user_id"))
        user = self._users.get(user_id)
        if user is None:
            raise bad("user not found")
        if chat.type == "private":
            both = {chat.id, chat.private_bot_id}
            return self._member_api(chat, user, Membership("member" if user_id in both else "left"))
        return self._member_api(chat, user, chat.members.get(user_id))

    async def _api_getChatAdministrators(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> list[dict[str, Any]]:
        chat = self._check_chat(state.info, params.get("chat_id"), Access.READ)
        if chat.type == "private":
            raise bad("there are no administrators in the private chat")
        return [
            self._member_api(chat, self._users[uid], m)
            for uid, m in chat.members.items()
            if m.status in ("creator", "administrator")
        ]

    async def _api_sendChatAction(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> bool:
        if params.get("action") not in _CHAT_ACTIONS:
            raise bad("wrong parameter action in request")
        chat = self._check_chat(state.info, params.get("chat_id"), Access.WRITE)
        self._reply_target(
            state.info, chat, {"message_thread_id": params.get("message_thread_id", "")}
        )
        return True
