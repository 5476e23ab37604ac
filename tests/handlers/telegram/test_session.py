"""An answer's `Response[T]` outlives the garbage collector: it is not built again per send."""

import gc
import json
import weakref

from aiogram import Bot
from aiogram.methods import SendMessage
from aiogram.methods.base import Response
from aiogram.types import Message

from handlers.telegram.session import TelegramSession

ANSWER = json.dumps(
    {
        "ok": True,
        "result": {
            "message_id": 5,
            "date": 1,
            "chat": {"id": -100, "type": "supergroup", "title": "ЖКХ"},
            "text": "Кейс №1",
        },
    }
)


async def test_the_answers_type_survives_a_collection() -> None:
    session = TelegramSession()
    bot = Bot("123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0", session=session)
    try:
        answer = session.check_response(bot, SendMessage(chat_id=-100, text="x"), 200, ANSWER)
        assert isinstance(answer.result, Message) and answer.result.message_id == 5
        built = weakref.ref(type(answer))
        del answer
        gc.collect()
        # aiogram's own session lets pydantic's weak cache drop it here, and the next
        # answer builds the class again: hundreds of milliseconds on the event loop.
        assert built() is not None and Response[Message] is built()
    finally:
        await session.close()
