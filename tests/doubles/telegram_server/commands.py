"""The bot itself: getMe and its command menus per scope and language (set, get and delete
MyCommands).

Next: chats.py, what a bot may learn about a chat.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.doubles.telegram_server.core import ServerCore
from tests.doubles.telegram_server.protocol import bad, json_arg
from tests.doubles.telegram_server.state import Access, BotInfo, BotState


class CommandApi(ServerCore):
    """getMe and the command menus."""

    # ---- bot settings -------------------------------------------------------------------

    async def _api_getMe(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> dict[str, Any]:
        info = state.info
        return info.user.to_api() | {
            "can_join_groups": info.can_join_groups,
            "can_read_all_group_messages": info.can_read_all_group_messages,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _command_key(self, bot: BotInfo, params: dict[str, str]) -> tuple[str, str]:
        language = params.get("language_code", "")
        if language and not re.fullmatch(r"[a-z]{2}", language):
            raise bad("invalid language code specified")
        scope: dict[str, Any] = {"type": "default"}
        if params.get("scope"):
            raw = json_arg(params["scope"], "bot command scope")
            if not isinstance(raw, dict):
                raise bad("object expected as bot command scope")
            kind = raw.get("type")
            if kind in (
                "default",
                "all_private_chats",
                "all_group_chats",
                "all_chat_administrators",
            ):
                scope = {"type": kind}
            elif kind in ("chat", "chat_administrators", "chat_member"):
                chat = self._check_chat(bot, str(raw.get("chat_id", "")), Access.READ)
                scope = {"type": kind, "chat_id": chat.id}
                if kind == "chat_member":
                    user_id = raw.get("user_id")
                    if not isinstance(user_id, int) or user_id not in self._users:
                        raise bad("user not found")
                    scope["user_id"] = user_id
            else:
                raise bad("unsupported bot command scope type specified")
        return json.dumps(scope, sort_keys=True), language

    async def _api_setMyCommands(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> bool:
        raw = json_arg(params.get("commands", "") or "null", "bot commands")
        if not isinstance(raw, list):
            raise bad('field "commands" must be an Array')
        commands: list[dict[str, str]] = []
        for item in raw:
            if not isinstance(item, dict):
                raise bad("can't parse BotCommand: expected an Object")
            command = str(item.get("command", "")).removeprefix("/")
            description = str(item.get("description", ""))
            if not command:
                raise bad("command must be non-empty")
            if len(command) > 32:
                raise bad("command length must not exceed 32")
            if not re.fullmatch(r"[a-z0-9_]+", command):
                raise bad("BOT_COMMAND_INVALID")
            if not description.strip():
                raise bad("BOT_COMMAND_DESCRIPTION_INVALID")
            if len(description) > 256:
                raise bad("command description length must not exceed 256")
            commands.append({"command": command, "description": description})
        if len(commands) > 100:
            raise bad("BOT_COMMANDS_TOO_MUCH")
        key = self._command_key(state.info, params)
        if commands:
            state.commands[key] = commands
        else:
            state.commands.pop(key, None)
        return True

    async def _api_getMyCommands(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> list[dict[str, str]]:
        return list(state.commands.get(self._command_key(state.info, params), []))

    async def _api_deleteMyCommands(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> bool:
        state.commands.pop(self._command_key(state.info, params), None)
        return True
