"""Typed callback data. Ids only, never text: Telegram allows 64 bytes per button."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class CaseAction(CallbackData, prefix="c"):
    """A button that acts on a case: c:<case>:<card version>:<action>:<arg>."""

    case: int
    v: int  # the card version the button was drawn for; a stale press is refused
    a: str  # an Action value
    x: str = ""  # template id, department id, outcome or ignore reason


class CaseMenu(CallbackData, prefix="m"):
    """A button that opens (or with an empty menu, closes) a card's submenu."""

    case: int
    v: int
    menu: str = (
        ""  # an Action value from bot.messages.views.MENU_ACTIONS, or "" for the main buttons
    )


class DraftAction(CallbackData, prefix="d"):
    """Review buttons under a draft: d:<case>:<draft version>:<action>."""

    case: int
    ver: int
    a: str


class TriageAction(CallbackData, prefix="t"):
    """A button on a line of the triage list: t:<mention>:<decision> (TriageDecision value)."""

    m: int
    a: str


class ChecklistStep(CallbackData, prefix="k"):
    """A crisis card's checklist item: k:<crisis>:<card version>:<step>:<1 tick | 0 untick>."""

    crisis: int
    v: int  # the crisis card version the button was drawn for; a stale press is refused
    s: int  # 0-based index into the playbook's checklist
    d: int  # 1: tick it, 0: untick it (what the button offered when it was drawn)
