"""Commands: /status, /digest, /case N, /escalate N reason, /duty, /help, /whoami. Parsing
only: the answers come from bot.chat.answers, the same as in Matrix."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.chat.answers import case_number
from bot.chat.views import View
from handlers.telegram.context import TRANSPORT, TelegramContext, where


async def _say(message: Message, ctx: TelegramContext, view: View) -> None:
    await ctx.cases.send(
        where(message),
        view,
        key=f"cmd:{message.message_id}",
        reply_to_message=str(message.message_id),
    )


async def on_help(message: Message, ctx: TelegramContext) -> None:
    await _say(message, ctx, ctx.answers.help())


async def on_duty(message: Message, ctx: TelegramContext) -> None:
    await _say(message, ctx, ctx.answers.duty())


async def on_whoami(message: Message, ctx: TelegramContext) -> None:
    if message.from_user is not None:
        await _say(message, ctx, ctx.answers.whoami(ctx.actor(message.from_user)))


async def on_status(message: Message, ctx: TelegramContext) -> None:
    if message.from_user is None:
        return
    here = where(message)
    department = ctx.directory.department_at(TRANSPORT, here.chat, here.thread)
    view = await ctx.answers.status(
        ctx.actor(message.from_user), department, private=message.chat.type == "private"
    )
    await _say(message, ctx, view)


async def on_digest(message: Message, ctx: TelegramContext) -> None:
    if message.from_user is not None:
        await _say(message, ctx, await ctx.answers.digest(ctx.actor(message.from_user)))


async def on_case(message: Message, command: CommandObject, ctx: TelegramContext) -> None:
    if message.from_user is None:
        return
    first = (command.args or "").split(maxsplit=1)
    view = await ctx.answers.case(
        ctx.actor(message.from_user), case_number(first[0] if first else None)
    )
    await _say(message, ctx, view)


async def on_escalate(message: Message, command: CommandObject, ctx: TelegramContext) -> None:
    if message.from_user is None:
        return
    args = (command.args or "").strip()
    first, _, rest = args.partition(" ")
    case_id, reason = case_number(first), rest.strip()
    if case_id is None and message.reply_to_message is not None:
        # /escalate as a reply to a card: the card says which case.
        ref = await ctx.cases.ref_of(
            TRANSPORT, str(message.chat.id), str(message.reply_to_message.message_id)
        )
        if ref and ref.startswith("card:"):
            case_id, reason = int(ref.split(":")[1]), args
    view = await ctx.answers.escalate(ctx.actor(message.from_user), case_id, reason)
    await _say(message, ctx, view)


async def on_merge(message: Message, command: CommandObject, ctx: TelegramContext) -> None:
    if message.from_user is None:
        return
    words = (command.args or "").split()
    keep, gone = (case_number(w) for w in ([*words, "", ""])[:2])
    await _say(message, ctx, await ctx.answers.merge(ctx.actor(message.from_user), keep, gone))


def make_router() -> Router:
    """A fresh router: an aiogram router joins one dispatcher only."""
    router = Router(name=__name__)
    router.message.register(on_help, Command("help", "start"))
    router.message.register(on_whoami, Command("whoami"))
    router.message.register(on_duty, Command("duty"))
    router.message.register(on_status, Command("status"))
    router.message.register(on_digest, Command("digest"))
    router.message.register(on_case, Command("case"))
    router.message.register(on_escalate, Command("escalate"))
    router.message.register(on_merge, Command("merge"))
    return router
