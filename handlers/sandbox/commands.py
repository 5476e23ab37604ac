"""Commands written in a sandbox chat: /status, /case N, /escalate N reason and the rest.
Translation only, as in Telegram: bot/chat/inbound.py parses and answers."""

from __future__ import annotations

from bot.chat.inbound import Answer, Command
from bot.messages.outbox import Destination
from bot.staff.rights import Actor
from handlers.sandbox.context import SandboxContext

ALIASES = {"start": "help"}


def parse(text: str) -> tuple[str, str] | None:
    """("status", "") from "/status"; None when the text is no command."""
    if not text.startswith("/") or len(text) < 2:
        return None
    head, _, args = text[1:].partition(" ")
    name = head.split("@", 1)[0].lower()  # "/status@otklik_bot", as Telegram writes it
    return ALIASES.get(name, name), args


async def on_command(
    ctx: SandboxContext,
    here: Destination,
    actor: Actor,
    text: str,
    message_id: str,
    replied_to: str | None,
) -> bool:
    """False when the text is no command of ours."""
    parsed = parse(text)
    if parsed is None:
        return False
    name, args = parsed
    about = (
        await ctx.inbound.our_message(here, replied_to)
        if replied_to is not None and name == "escalate"
        else None  # only /escalate reads what it replies to
    )
    answer = Answer(f"cmd:{message_id}", under=message_id)
    command = Command(here, actor, name, args, answer, about, person=actor.id)
    return await ctx.inbound.command(command)
