"""Work written in a card's thread: a number chooses from the list a menu reaction showed,
"!draft", "!note", "!reject", "!published", "!escalate", "!followup" and "!correct" carry text
for an action (also with "/"), and after 📝 or ⏫ the presser's next plain message is the
draft's text or the reason; "!code topic 3", "!priority high" and "!assign @user:server" code,
reprioritise and assign the case (without an argument they list the choices).
In a crisis card's thread, "!done N" ticks checklist item N and "!undo N" unticks it.
Translation only: bot/chat/inbound.py acts and answers."""

from __future__ import annotations

from bot.chat.inbound import ChecklistPress, Choice, Controls, Reply
from bot.messages.views import MessageRef, RefKind
from bot.model import Action
from handlers.matrix.commands import COMMAND_PREFIXES
from handlers.matrix.context import Event, MatrixContext, answer_to, where

DRAFT_PREFIXES = ("!draft", "!черновик")  # "!draft <answer text>" is a new draft version
NOTE_PREFIXES = ("!note", "!правка")  # "!note <what to change>" sends the draft back
REJECT_PREFIXES = ("!reject", "!отклонить")  # "!reject <why>" rejects it, with the reason
PUBLISHED_PREFIXES = ("!published", "!опубликовано")  # "!published <link>" marks it published
ESCALATE_PREFIXES = ("!escalate",)  # "!escalate <reason>" in the thread needs no case number
FOLLOW_UP_PREFIXES = ("!followup", "!дополнить")  # "!followup <text>": a follow-up draft
CORRECT_PREFIXES = ("!correct", "!исправить")  # "!correct <text>": a correction draft
DONE_PREFIXES = ("!done", "!сделано")  # "!done 3": checklist item 3 is done
UNDO_PREFIXES = ("!undo", "!отменить")  # "!undo 3": it is not done after all
CODE_PREFIXES = ("!code", "!код")  # "!code topic 3": toggle code 3 of the topic list
PRIORITY_PREFIXES = ("!priority", "!приоритет")  # "!priority high" or "up" / "down"
ASSIGN_PREFIXES = ("!assign", "!назначить")  # "!assign @user:server", a number, a staff id
CHECKLIST_PREFIXES = {**dict.fromkeys(DONE_PREFIXES, True), **dict.fromkeys(UNDO_PREFIXES, False)}
# What may be written in a draft's own thread: the note or the reason its reviewer was asked for.
REVIEW_PREFIX_ACTIONS = frozenset({Action.REQUEST_CHANGES, Action.REJECT})
ACTION_OF_PREFIX = {
    **dict.fromkeys(DRAFT_PREFIXES, Action.DRAFT),
    **dict.fromkeys(NOTE_PREFIXES, Action.REQUEST_CHANGES),
    **dict.fromkeys(REJECT_PREFIXES, Action.REJECT),
    **dict.fromkeys(PUBLISHED_PREFIXES, Action.MARK_PUBLISHED),
    **dict.fromkeys(ESCALATE_PREFIXES, Action.ESCALATE),
    **dict.fromkeys(FOLLOW_UP_PREFIXES, Action.FOLLOW_UP),
    **dict.fromkeys(CORRECT_PREFIXES, Action.CORRECT),
    **dict.fromkeys(CODE_PREFIXES, Action.SET_CODE),
    **dict.fromkeys(PRIORITY_PREFIXES, Action.SET_PRIORITY),
    **dict.fromkeys(ASSIGN_PREFIXES, Action.ASSIGN),
}


async def on_thread_message(
    ctx: MatrixContext, room_id: str, event: Event, body: str, card: MessageRef, root: str
) -> bool:
    """True when the message in the card's thread (or a draft's own) was work for the bot."""
    answer = answer_to(event, root)
    on_draft = card.kind is RefKind.DRAFT
    if body.isdigit() and not on_draft:
        choice = Choice(where(room_id), ctx.actor(event), card.case_id, int(body), answer)
        if await ctx.inbound.choose(choice):
            return True
    word, _, rest = body.partition(" ")
    word = "!" + word[1:].lower() if word.startswith("/") else word.lower()
    action = ACTION_OF_PREFIX.get(word)
    if action is None:
        if body.startswith(COMMAND_PREFIXES) or on_draft:
            return False  # a command ("!status"), answered as in the room; a draft's talk
        # The text 📝 or ⏫ asked this person for, if they were asked; else conversation.
        text = Reply(where(room_id), ctx.actor(event), card, body, Controls.REACTIONS, answer)
        return await ctx.inbound.prompted(text)
    if on_draft and action not in REVIEW_PREFIX_ACTIONS:
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


async def on_crisis_thread_message(
    ctx: MatrixContext, room_id: str, event: Event, body: str, crisis_id: int, root: str
) -> bool:
    """True when the message in a crisis card's thread was "!done N" or "!undo N"."""
    word, _, rest = body.partition(" ")
    word = "!" + word[1:].lower() if word.startswith("/") else word.lower()
    done = CHECKLIST_PREFIXES.get(word)
    number = rest.strip()
    if done is None or not number.isdigit():
        return False
    press = ChecklistPress(
        where(room_id),
        ctx.actor(event),
        crisis_id,
        int(number) - 1,  # people count from 1, as the card does
        done=done,
        answer=answer_to(event, root),
    )
    await ctx.inbound.checklist(press)
    return True
