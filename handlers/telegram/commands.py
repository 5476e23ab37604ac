"""Commands: /status, /digest, /case N, /escalate N reason, /merge A B, /duty, /help,
/whoami, /ids. Translation only: bot/chat/inbound.py parses the arguments and bot/chat/answers.py
answers, the same as in Matrix."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.chat.answers import COMMANDS
from bot.chat.inbound import Command as InboundCommand
from handlers.telegram.context import TelegramContext, answer_under, where

ALIASES = {"start": "help"}  # what Telegram clients send when a person opens the bot


async def on_command(message: Message, command: CommandObject, ctx: TelegramContext) -> None:
    if message.from_user is None:
        return
    here = where(message)
    replied = message.reply_to_message
    about = (
        await ctx.inbound.our_message(here, str(replied.message_id))
        if replied is not None and command.command.lower() == "escalate"
        else None  # only /escalate reads what it replies to: no look-up for the rest
    )
    name = command.command.lower()
    await ctx.inbound.command(
        InboundCommand(
            here,
            ctx.actor(message.from_user),
            ALIASES.get(name, name),
            command.args or "",
            answer_under(message, "cmd"),
            about=about,
            private=message.chat.type == "private",
            person=str(message.from_user.id),
        )
    )


def make_router() -> Router:
    """A fresh router: an aiogram router joins one dispatcher only."""
    router = Router(name=__name__)
    router.message.register(on_command, Command(*COMMANDS, *ALIASES))
    return router
