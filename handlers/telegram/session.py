"""The HTTP session every Bot of ours uses: aiogram's, with its answers' types kept alive.

aiogram parses each answer as `Response[T]`, T being what the method returns. pydantic keeps
such parametrised classes in a weak cache, and a class is a reference cycle nobody else
holds, so the garbage collector soon takes it: the next answer builds it again, schema and
validator, a few hundred milliseconds on the event loop (more with lazy_models.py, which
builds T's own validator along). Sends then stalled every chat in a storm. Holding each
`Response[T]` once it is made keeps an answer's parse at tens of microseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods.base import Response, TelegramMethod, TelegramType

if TYPE_CHECKING:
    from aiogram import Bot

_KEPT: dict[Any, type[Response[Any]]] = {}


class TelegramSession(AiohttpSession):
    def check_response(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        status_code: int,
        content: str,
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in _KEPT:
            _KEPT[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)
