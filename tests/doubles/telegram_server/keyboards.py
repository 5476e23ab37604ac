"""Reply markup and callback queries: the Bot API's JSON checks of keyboards, tdlib's URL
checks, the 64-byte callback data and 100-button limits, and answerCallbackQuery.

Next: files.py, photos and downloads.
"""

from __future__ import annotations

import re
from typing import Any

from tests.doubles.telegram_server.core import ServerCore
from tests.doubles.telegram_server.entities import check_link, utf16_len
from tests.doubles.telegram_server.protocol import (
    MAX_BUTTONS,
    MAX_CALLBACK_ANSWER,
    MAX_CALLBACK_DATA,
    QUERY_INVALID,
    bad,
    json_arg,
    to_bool,
    to_int,
)
from tests.doubles.telegram_server.state import BotState, Chat


class KeyboardApi(ServerCore):
    """Reply markup parsing and checks; answerCallbackQuery."""

    # ---- reply markup -------------------------------------------------------------------

    def _parse_markup(self, raw: str | None) -> dict[str, Any] | None:
        """The Bot API's JSON checks; buttons keep their raw URL until `_check_markup`."""
        if not raw:
            return None
        value = json_arg(raw, "reply keyboard markup")
        if not isinstance(value, dict):
            raise bad("object expected as reply markup")
        if "inline_keyboard" in value:
            rows = value["inline_keyboard"]
            if not isinstance(rows, list) or any(not isinstance(r, list) for r in rows):
                raise bad(
                    'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
                )
            parsed = [[self._parse_button(b) for b in row] for row in rows]
            if any(parsed):
                return {"inline_keyboard": parsed}
            return None
        if "keyboard" in value:
            rows = value["keyboard"]
            if not isinstance(rows, list) or any(not isinstance(r, list) for r in rows):
                raise bad('field "keyboard" must be an Array of Arrays')
            for row in rows:
                for button in row:
                    if isinstance(button, dict) and not isinstance(button.get("text"), str):
                        raise bad("can't parse keyboard button: Can't find field \"text\"")
                    if not isinstance(button, dict | str):
                        raise bad(
                            "can't parse keyboard button: KeyboardButton must be a String "
                            "or an Object"
                        )
            return {"keyboard": rows, **{k: v for k, v in value.items() if k != "keyboard"}}
        if value.get("remove_keyboard") or value.get("hide_keyboard"):
            return {"remove_keyboard": True}
        if value.get("force_reply") or value.get("force_reply_keyboard"):
            placeholder = value.get("input_field_placeholder")
            if isinstance(placeholder, str) and len(placeholder) > 64:
                raise bad("input field placeholder is too long")
            return {
                "force_reply": True,
                **({"input_field_placeholder": placeholder} if placeholder else {}),
            }
        return None

    @staticmethod
    def _parse_button(button: Any) -> dict[str, Any]:
        prefix = "can't parse inline keyboard button: "
        if not isinstance(button, dict):
            raise bad(prefix + "InlineKeyboardButton must be an Object")
        if "text" not in button:
            raise bad(prefix + 'Can\'t find field "text"')
        if not isinstance(button["text"], str):
            raise bad(prefix + 'Field "text" must be of type String')
        result: dict[str, Any] = {"text": button["text"]}
        for extra in ("style", "icon_custom_emoji_id"):
            if extra in button:
                result[extra] = button[extra]
        # The Bot API takes the first kind present, in this order; it does not insist on one.
        for kind in ("url", "callback_data"):
            value = button.get(kind)
            if isinstance(value, str) and value:
                result[kind] = value
                return result
        for kind in (
            "callback_game",
            "pay",
            "switch_inline_query",
            "switch_inline_query_chosen_chat",
            "switch_inline_query_current_chat",
            "login_url",
            "web_app",
            "copy_text",
        ):
            if kind in button:
                result[kind] = button[kind]
                return result
        raise bad(prefix + "Text buttons are unallowed in the inline keyboard")

    def _check_markup(self, markup: dict[str, Any] | None, chat: Chat) -> dict[str, Any] | None:
        """tdlib's URL checks, then the server's own (data size, button count)."""
        if markup is None or "inline_keyboard" not in markup:
            return markup
        rows: list[list[dict[str, Any]]] = []
        count = 0
        for row in markup["inline_keyboard"]:
            new_row = []
            for button in row:
                button = dict(button)
                if "url" in button:
                    try:
                        button["url"] = check_link(button["url"])
                    except ValueError as exc:
                        raise bad(
                            f"inline keyboard button URL '{button['url']}' is invalid: {exc}"
                        ) from None
                if "web_app" in button:
                    url = str((button["web_app"] or {}).get("url", ""))
                    try:
                        check_link(url, https_only=True)
                    except ValueError as exc:
                        raise bad(
                            f"inline keyboard button Web App URL '{url}' is invalid: {exc}"
                        ) from None
                new_row.append(button)
                count += 1
            rows.append(new_row)
        for row in rows:
            for button in row:
                data = button.get("callback_data")
                if data is not None and len(data.encode("utf-8")) > MAX_CALLBACK_DATA:
                    raise bad("BUTTON_DATA_INVALID")
                if "pay" in button or "callback_game" in button:
                    raise bad("BUTTON_TYPE_INVALID")
                if "copy_text" in button:
                    copy = button["copy_text"]
                    text = copy.get("text") if isinstance(copy, dict) else None
                    if not isinstance(text, str) or not 1 <= len(text) <= 256:
                        raise bad("BUTTON_COPY_TEXT_INVALID")
                if "web_app" in button and chat.type != "private":
                    raise bad("BUTTON_TYPE_INVALID")
        if count > MAX_BUTTONS:
            raise bad("reply markup is too long")
        return {"inline_keyboard": rows}

    # ---- callbacks ----------------------------------------------------------------------

    async def _api_answerCallbackQuery(
        self, state: BotState, params: dict[str, str], files: dict[str, Any]
    ) -> bool:
        query_id = params.get("callback_query_id", "")
        query = self._callbacks.get(query_id)
        # Telegram's 15 s to answer is how long the client waits, not a rate: real seconds,
        # whatever the time scale (scaled, a press waiting behind other work on a loaded
        # machine was refused after 1.5 s).
        too_old = query is not None and (
            (self._flood.now() - query.created) / self.limits.time_scale
            > self.limits.callback_answer_timeout_s
        )
        if query is None or query.bot_id != state.info.id or query.answered or too_old:
            raise bad(QUERY_INVALID)
        text = params.get("text", "")
        if utf16_len(text) > MAX_CALLBACK_ANSWER:
            raise bad("MESSAGE_TOO_LONG")
        url = params.get("url")
        if url and not re.match(r"(?i)(https?://t\.me/|tg://)", url):
            raise bad("URL_INVALID")  # only game and t.me/<bot>?start= links may open
        query.answered = True
        self._answers[query_id] = {
            "callback_query_id": query_id,
            "text": text or None,
            "show_alert": to_bool(params.get("show_alert")),
            "url": url,
            "cache_time": to_int(params.get("cache_time")),
        }
        return True
