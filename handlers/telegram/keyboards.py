"""Inline keyboards for cards and drafts. Callback data carries ids only (64-byte limit);
`.pack()` raises ValueError past it, which is a bug to surface, not to hide."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.cases.cards import MENU_ACTIONS
from bot.chat.inbound import TriageDecision
from bot.messages.texts import Texts
from bot.messages.views import (
    CardView,
    ChecklistControls,
    DraftView,
    MenuOption,
    PackView,
    TriageView,
    button_rows,
    pack_takeable,
)
from bot.model import Action
from handlers.telegram.callbacks import (
    CaseAction,
    CaseMenu,
    ChecklistStep,
    DraftAction,
    TriageAction,
)

__all__ = [
    "card_keyboard",
    "checklist_keyboard",
    "draft_keyboard",
    "layout",
    "pack_keyboard",
    "triage_keyboard",
]

PACK_ROWS = 8  # a pack's take buttons one a row up to this many, then two a row


def layout(buttons: Sequence[InlineKeyboardButton]) -> list[list[InlineKeyboardButton]]:
    return button_rows(buttons, lambda b: b.text)


def _button(
    text: str, data: CaseAction | CaseMenu | DraftAction | TriageAction | ChecklistStep
) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def card_keyboard(view: CardView, texts: Texts) -> InlineKeyboardMarkup | None:
    """The card's main buttons, or the open submenu's options with a way back."""
    case_id: int = view["case"]["id"]
    version: int = view["case"]["version"]
    menu: str | None = view.get("menu")
    if menu:
        options: list[MenuOption] = view.get("options") or []
        buttons = [
            _button(
                texts.option_label(opt),
                # An option may open a submenu (a dimension of «Коды ▸»), or stand for another
                # action: "not ours" in the no-reply menu sends the case to the coordination
                # centre.
                CaseMenu(case=case_id, v=version, menu=opt["menu"])
                if opt.get("menu")
                else CaseAction(case=case_id, v=version, a=opt.get("action") or menu, x=opt["arg"]),
            )
            for opt in options
        ]
        back = _button(texts.t("ui.menu.back"), CaseMenu(case=case_id, v=version, menu=""))
        return InlineKeyboardMarkup(inline_keyboard=[*layout(buttons), [back]])
    actions: list[str] = view.get("actions") or []
    if not actions:
        return None
    buttons = [
        _button(texts.t(f"ui.menu.{action}"), CaseMenu(case=case_id, v=version, menu=action))
        if action in MENU_ACTIONS
        else _button(texts.t(f"action.{action}"), CaseAction(case=case_id, v=version, a=action))
        for action in actions
    ]
    return InlineKeyboardMarkup(inline_keyboard=layout(buttons))


def draft_keyboard(view: DraftView, texts: Texts) -> InlineKeyboardMarkup | None:
    """Review buttons under a pending draft; none once it is decided."""
    actions: list[str] = view.get("actions") or []
    if not actions:
        return None
    buttons = [
        _button(
            texts.t(f"action.{action}"),
            DraftAction(case=view["case_id"], ver=view["version"], a=action),
        )
        for action in actions
    ]
    return InlineKeyboardMarkup(inline_keyboard=layout(buttons))


def triage_keyboard(view: TriageView, texts: Texts) -> InlineKeyboardMarkup | None:
    """One row per line of the triage list: "Это негатив → кейс" and "Не негатив"."""
    rows = [
        [
            _button(
                texts.t(f"ui.triage_{label}", mention_id=item["mention_id"]),
                TriageAction(m=item["mention_id"], a=decision.value),
            )
            for label, decision in (
                ("negative", TriageDecision.NEGATIVE),
                ("not_negative", TriageDecision.NOT_NEGATIVE),
            )
        ]
        for item in view.get("items") or []
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def pack_keyboard(view: PackView, texts: Texts) -> InlineKeyboardMarkup | None:
    """A pack card's take buttons, one per case still to take: the same press as the take
    button of the case's card (version and rights checked again by the service). One a row,
    two a row past PACK_ROWS: a storm's large pack keeps a keyboard one can scroll past."""
    buttons = [
        _button(
            texts.t("ui.pack_take", case_id=line["case_id"]),
            CaseAction(case=line["case_id"], v=line["version"], a=Action.TAKE.value),
        )
        for line in view.get("items") or []
        if pack_takeable(line)
    ]
    width = 1 if len(buttons) <= PACK_ROWS else 2
    rows = [buttons[at : at + width] for at in range(0, len(buttons), width)]
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def checklist_keyboard(controls: ChecklistControls, texts: Texts) -> InlineKeyboardMarkup | None:
    """One row per checklist item of a crisis card: "⬜ 1. …" ticks it, "✅ 1. …" unticks it."""
    version = controls["version"]
    rows = []
    for index, step in enumerate(controls["steps"]):
        text = texts.checklist_button(index + 1, step["label"], step["done"])
        data = ChecklistStep(crisis=controls["crisis"], v=version, s=index, d=int(not step["done"]))
        rows.append([_button(text, data)])
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
