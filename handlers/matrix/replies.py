"""Work written in a card's thread: a number chooses from the list a menu reaction showed,
"!draft", "!note", "!published" and "!escalate" carry text for an action (also with "/").
Translation only: bot/chat/inbound.py acts and answers."""

from __future__ import annotations

from bot.chat.inbound import Choice, Controls, Reply
from bot.messages.views import MessageRef
from bot.model import Action
from handlers.matrix.context import Event, MatrixContext, answer_to, where

DRAFT_PREFIXES = ("!draft", "!черновик")  # "!draft <answer text>" is a new draft version
NOTE_PREFIXES = ("!note", "!правка")  # "!note <what to change>" sends the draft back
PUBLISHED_PREFIXES = ("!published", "!опубликовано")  # "!published <link>" marks it published
ESCALATE_PREFIXES = ("!escalate",)  # "!escalate <reason>" in the thread needs no case number
ACTION_OF_PREFIX = {
    **dict.fromkeys(DRAFT_PREFIXES, Action.DRAFT),
    **dict.fromkeys(NOTE_PREFIXES, Action.REQUEST_CHANGES),
    **dict.fromkeys(PUBLISHED_PREFIXES, Action.MARK_PUBLISHED),
    **dict.fromkeys(ESCALATE_PREFIXES, Action.ESCALATE),
}


async def on_thread_message(
    ctx: MatrixContext, room_id: str, event: Event, body: str, card: MessageRef, root: str
) -> bool:
    """True when the message in the card's thread was work for the bot."""
    answer = answer_to(event, root)
    if body.isdigit():
        choice = Choice(where(room_id), ctx.actor(event), card.case_id, int(body), answer)
        return await ctx.inbound.choose(choice)
    word, _, rest = body.partition(" ")
    word = "!" + word[1:].lower() if word.startswith("/") else word.lower()
    action = ACTION_OF_PREFIX.get(word)
    if action is None:
        return False
    reply = Reply(
        where(room_id),
        ctx.actor(event),
        card,
        rest.strip(),
        Controls.REACTIONS,
        answer,
        action=action,
    )
    return await ctx.inbound.reply(reply)
