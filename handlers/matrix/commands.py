"""Commands written as "!status" or "/status" (and the rest of bot.chat.answers.COMMANDS).
Translation only: bot/chat/inbound.py parses the arguments and answers."""

from __future__ import annotations

from bot.chat.inbound import Command
from bot.messages.views import MessageRef
from handlers.matrix.context import Event, MatrixContext, answer_to, where

COMMAND_PREFIXES = ("!", "/")
MAX_COMMAND = 2_000  # characters of a command beyond a draft's text


async def on_command(
    ctx: MatrixContext,
    room_id: str,
    event: Event,
    body: str,
    about: MessageRef | None,
    root: str | None,
    private: bool = False,
) -> None:
    """`about`: the message whose thread the command was written in, if any; `private`: a
    room of the bot with staff only (adapter.py)."""
    if not body.startswith(COMMAND_PREFIXES):
        return
    word, _, args = body[1:].partition(" ")
    command = Command(
        where(room_id),
        ctx.actor(event),
        word.lower(),
        args,
        answer_to(event, root),
        about=about,
        person=str(event.get("sender") or ""),
        private=private,
        thread_root=root,
    )
    await ctx.inbound.command(command)
