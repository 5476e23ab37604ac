"""The wire contract shared by every Bot API area: errors worded exactly as Telegram words
them, the size limits, and how telegram-bot-api reads a parameter (booleans, integers, JSON).

Last stop of the tour that starts in tests/doubles/telegram_server/__init__.py.
"""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """An error the server answers with, exactly as Telegram words it."""

    def __init__(
        self,
        code: int,
        description: str,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id  # ResponseParameters, a group upgraded


def bad(message: str) -> ApiError:
    return ApiError(400, f"Bad Request: {message}")


def forbidden(message: str) -> ApiError:
    return ApiError(403, f"Forbidden: {message}")


QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
TELEGRAM_SERVICE_USER_ID = 777000  # "Telegram": the sender of automatic forwards

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200
MAX_BUTTONS = 100
MAX_PHOTO_BYTES = 10 * 1024 * 1024


def to_bool(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "yes", "1")


def to_int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return 0  # td::to_integer yields 0 for garbage


def json_arg(value: str, what: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        raise bad(f"can't parse {what} JSON object") from None
