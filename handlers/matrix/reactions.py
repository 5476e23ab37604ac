"""Reaction keys that stand for buttons. Clients send back exactly the key they click on, so
these strings (with their variation selectors) are the whole contract."""

from __future__ import annotations

from bot.model import Action

# Under a card. Menu actions answer with a numbered list in the card's thread.
CARD_REACTIONS: dict[Action, str] = {
    Action.TAKE: "✋",
    Action.RELEASE: "👋",
    Action.USE_TEMPLATE: "📝",
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
}
# Under a draft posted for review.
DRAFT_REACTIONS: dict[Action, str] = {
    Action.APPROVE: "✅",
    Action.REQUEST_CHANGES: "✏️",
    Action.REJECT: "❌",
}
ACTION_OF_CARD_REACTION = {key: action for action, key in CARD_REACTIONS.items()}
ACTION_OF_DRAFT_REACTION = {key: action for action, key in DRAFT_REACTIONS.items()}


def card_reactions(actions: list[str]) -> list[str]:
    """The reaction keys for a card's available actions, in the card's order."""
    keys = []
    for value in actions:
        action = Action(value)
        if action in CARD_REACTIONS:
            keys.append(CARD_REACTIONS[action])
    return keys


def draft_reactions(actions: list[str]) -> list[str]:
    return [DRAFT_REACTIONS[Action(a)] for a in actions if Action(a) in DRAFT_REACTIONS]


# Text commands in a card's thread (also with "/" instead of "!").
DRAFT_PREFIXES = ("!draft", "!черновик")  # "!draft <answer text>" is a new draft version
NOTE_PREFIXES = ("!note", "!правка")  # "!note <what to change>" sends the draft back
PUBLISHED_PREFIXES = ("!published", "!опубликовано")  # "!published <link>" marks it published
