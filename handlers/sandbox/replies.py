"""Text replies to the bot's messages in a sandbox chat, translated into inbound replies:
what a reply to a card or a prompt carries out is decided in bot/chat/inbound.py."""

from __future__ import annotations

from bot.chat.inbound import Answer, Controls, Reply
from bot.messages.outbox import Destination
from bot.staff.rights import Actor
from handlers.sandbox.context import SandboxContext


async def on_reply(
    ctx: SandboxContext,
    here: Destination,
    actor: Actor,
    text: str,
    message_id: str,
    replied_to: str,
) -> bool:
    """False when the message replied to is no card or prompt: conversation, not work."""
    to = await ctx.inbound.our_message(here, replied_to)
    if to is None:
        return False
    reply = Reply(
        here, actor, to, text.strip(), Controls.BUTTONS, Answer(f"reply:{message_id}", message_id)
    )
    return await ctx.inbound.reply(reply)
