"""Text replies to the bot's own messages, translated into inbound replies: what a reply to
a card or to a prompt carries out is decided in bot/chat/inbound.py."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import Message

from bot.chat.inbound import Controls, Reply
from handlers.telegram.context import TelegramContext, answer_under, where


async def on_reply(message: Message, ctx: TelegramContext) -> None:
    assert message.reply_to_message is not None and message.text is not None
    if message.from_user is None or message.text.startswith("/"):
        return
    here = where(message)
    to = await ctx.inbound.our_message(here, str(message.reply_to_message.message_id))
    if to is None:
        return  # a reply to something that is not a card or a prompt: conversation, not work
    reply = Reply(
        here,
        ctx.actor(message.from_user),
        to,
        message.text.strip(),
        Controls.BUTTONS,
        answer_under(message, "reply"),
    )
    await ctx.inbound.reply(reply)


def make_router() -> Router:
    """A fresh router: an aiogram router joins one dispatcher only."""
    router = Router(name=__name__)
    router.message.register(on_reply, F.reply_to_message.from_user.is_bot, F.text)
    return router
