"""Reactions: the keys that stand for buttons, and a reaction translated into the press of
its button (bot/chat/inbound.py), with the card or draft version it was made on. Clients send
back exactly the key they click on, so these strings (with their variation selectors) are the
whole contract."""

from __future__ import annotations

from bot.chat.inbound import ChecklistPress, Controls, Press
from bot.messages.views import RefKind
from bot.model import Action
from handlers.matrix.context import Event, MatrixContext, answer_to, where

# Under a card. Menu actions answer with a numbered list in the card's thread; 📝 and ⏫ ask
# for text there.
CARD_REACTIONS: dict[Action, str] = {
    Action.TAKE: "✋",
    Action.RELEASE: "👋",
    Action.DRAFT: "📝",  # the draft's text is asked for in the card's thread
    Action.USE_TEMPLATE: "📋",
    Action.PUBLISH: "📣",
    Action.MARK_PUBLISHED: "📤",
    Action.ESCALATE: "⏫",
    Action.REROUTE: "↪️",
    Action.IGNORE: "🚫",
    Action.CLOSE: "✔️",
    Action.REOPEN: "🔄",
    Action.FOLLOW_UP_DONE: "🔁",
    Action.FOLLOW_UP_LATER: "⏳",
    Action.WAIT_FOR_AUTHOR: "⏸️",
    Action.AUTHOR_REPLIED: "▶️",
    # Both ask for their text in the card's thread ("!followup …", "!correct …").
    Action.FOLLOW_UP: "➕",
    Action.CORRECT: "🩹",
    Action.SET_CODE: "🏷️",
}
# Taken when somebody reacts with them, but not put under every card: priority and
# assignment are the lead's, written as "!priority high" and "!assign …" in the thread.
QUIET_CARD_REACTIONS: dict[Action, str] = {
    Action.SET_PRIORITY: "🚦",
    Action.ASSIGN: "👤",
}
# Under a draft posted for review.
DRAFT_REACTIONS: dict[Action, str] = {
    Action.APPROVE: "✅",
    Action.REQUEST_CHANGES: "✏️",
    Action.REJECT: "❌",
}
# Under a crisis card: the checklist's items by number; reacting ticks one (items past the
# tenth are ticked with "!done N" in the card's thread).
CHECKLIST_REACTIONS = ("1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣", "8️⃣", "9️⃣", "🔟")
STEP_OF_REACTION = {key: index for index, key in enumerate(CHECKLIST_REACTIONS)}
ACTION_OF_CARD_REACTION = {
    key: action for action, key in (CARD_REACTIONS | QUIET_CARD_REACTIONS).items()
}
ACTION_OF_DRAFT_REACTION = {key: action for action, key in DRAFT_REACTIONS.items()}


def card_reactions(actions: list[str]) -> list[str]:
    """The reaction keys for a card's available actions, in the card's order."""
    keys = []
    for value in actions:
        action = Action(value)
        if action in CARD_REACTIONS:
            keys.append(CARD_REACTIONS[action])
    return keys


def checklist_reactions(steps: int) -> list[str]:
    return list(CHECKLIST_REACTIONS[:steps])


def draft_reactions(actions: list[str]) -> list[str]:
    return [DRAFT_REACTIONS[Action(a)] for a in actions if Action(a) in DRAFT_REACTIONS]


async def on_reaction(ctx: MatrixContext, room_id: str, event: Event, relation: Event) -> None:
    """A reaction under one of our cards or drafts, as the press of the button it stands for."""
    here = where(room_id)
    reacted = str(relation.get("event_id"))
    about = await ctx.our_message(room_id, reacted, wait=True)
    key = str(relation.get("key", ""))
    if about is None:
        return
    if about.kind is RefKind.CRISIS:
        await _on_checklist_reaction(ctx, room_id, event, about.case_id, key, reacted)
        return
    if about.kind is RefKind.CARD:
        action = ACTION_OF_CARD_REACTION.get(key)
    elif about.kind is RefKind.DRAFT:
        action = ACTION_OF_DRAFT_REACTION.get(key)
    else:
        return
    if action is None:
        return
    # Refusals of approve go to the room; everything else to the reacted message's thread,
    # where ✏️ and ❌ ask for the note or the reason.
    in_room = about.kind is RefKind.DRAFT and action is Action.APPROVE
    # The version the reaction was made on: a draft's is its own message's; a card's is the
    # one the room's timeline showed before the reaction (the card is edited in place).
    if about.kind is RefKind.DRAFT:
        version = about.version
    else:
        version = await ctx.shown.version(room_id, about.case_id)
    press = Press(
        here,
        ctx.actor(event),
        about.case_id,
        about.kind,
        action.value,
        nonce=str(event.get("event_id")),
        controls=Controls.REACTIONS,
        version=version,
        answer=answer_to(event, None if in_room else reacted),
    )
    await ctx.inbound.press(press)


async def _on_checklist_reaction(
    ctx: MatrixContext, room_id: str, event: Event, crisis_id: int, key: str, reacted: str
) -> None:
    """A number under a crisis card ticks that item, on the card version the room showed.
    Only ticks: removing a reaction is a redaction the bot does not read, so unticking is
    "!undo N" in the card's thread."""
    step = STEP_OF_REACTION.get(key)
    if step is None:
        return
    press = ChecklistPress(
        where(room_id),
        ctx.actor(event),
        crisis_id,
        step,
        done=True,
        version=await ctx.shown.version(room_id, crisis_id, crisis=True),
        answer=answer_to(event, reacted),
    )
    await ctx.inbound.checklist(press)
