"""Button presses on cards, drafts, crisis checklists and the triage list, translated into
inbound presses (bot/chat/inbound.py). Callback data is never trusted: the inbound layer and
the services check the case (mention, crisis), the card version, the state and the presser's
rights again."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, InaccessibleMessage

from bot.chat.inbound import ChecklistPress, Controls, Feedback, MenuPress, Press, TriagePress
from bot.messages.outbox import Destination
from bot.messages.views import RefKind
from handlers.telegram.callbacks import (
    CaseAction,
    CaseMenu,
    ChecklistStep,
    DraftAction,
    TriageAction,
)
from handlers.telegram.context import TelegramContext, where


async def _pressed_in(query: CallbackQuery) -> Destination | None:
    """The chat of the pressed message; None, with the press answered, when Telegram no longer
    shows that message (too old or deleted) and so there is nothing to act on."""
    if query.message is None or isinstance(query.message, InaccessibleMessage):
        await query.answer()
        return None
    return where(query.message)


async def _answer(query: CallbackQuery, ctx: TelegramContext, feedback: Feedback) -> None:
    await query.answer(ctx.toast(feedback), show_alert=feedback.alert or None)


async def on_case_action(
    query: CallbackQuery, callback_data: CaseAction, ctx: TelegramContext
) -> None:
    here = await _pressed_in(query)
    if here is None:
        return
    press = Press(
        here,
        ctx.actor(query.from_user),
        callback_data.case,
        RefKind.CARD,
        callback_data.a,
        nonce=query.id,
        controls=Controls.BUTTONS,
        arg=callback_data.x,
        version=callback_data.v,
    )
    await _answer(query, ctx, await ctx.inbound.press(press))


async def on_menu(query: CallbackQuery, callback_data: CaseMenu, ctx: TelegramContext) -> None:
    here = await _pressed_in(query)
    if here is None:
        return
    press = MenuPress(
        here,
        ctx.actor(query.from_user),
        callback_data.case,
        callback_data.menu,
        nonce=query.id,
        version=callback_data.v,
    )
    await _answer(query, ctx, await ctx.inbound.open_menu(press))


async def on_draft_action(
    query: CallbackQuery, callback_data: DraftAction, ctx: TelegramContext
) -> None:
    here = await _pressed_in(query)
    if here is None:
        return
    press = Press(
        here,
        ctx.actor(query.from_user),
        callback_data.case,
        RefKind.DRAFT,
        callback_data.a,
        nonce=query.id,
        controls=Controls.BUTTONS,
        version=callback_data.ver,
    )
    await _answer(query, ctx, await ctx.inbound.press(press))


async def on_triage_action(
    query: CallbackQuery, callback_data: TriageAction, ctx: TelegramContext
) -> None:
    here = await _pressed_in(query)
    if here is None:
        return
    press = TriagePress(here, ctx.actor(query.from_user), callback_data.m, callback_data.a)
    await _answer(query, ctx, await ctx.inbound.triage(press))


async def on_checklist_step(
    query: CallbackQuery, callback_data: ChecklistStep, ctx: TelegramContext
) -> None:
    here = await _pressed_in(query)
    if here is None:
        return
    press = ChecklistPress(
        here,
        ctx.actor(query.from_user),
        callback_data.crisis,
        callback_data.s,
        done=bool(callback_data.d),
        version=callback_data.v,
    )
    await _answer(query, ctx, await ctx.inbound.checklist(press))


async def on_unknown_button(query: CallbackQuery, ctx: TelegramContext) -> None:
    """Data no button of ours carries: answer, so the client stops waiting, audit, and do
    nothing else."""
    feedback = await ctx.inbound.forged_button(ctx.actor(query.from_user), "")
    await _answer(query, ctx, feedback)


def make_router() -> Router:
    """A fresh router: an aiogram router joins one dispatcher only."""
    router = Router(name=__name__)
    router.callback_query.register(on_case_action, CaseAction.filter())
    router.callback_query.register(on_menu, CaseMenu.filter())
    router.callback_query.register(on_draft_action, DraftAction.filter())
    router.callback_query.register(on_triage_action, TriageAction.filter())
    router.callback_query.register(on_checklist_step, ChecklistStep.filter())
    router.callback_query.register(on_unknown_button)  # last: catches what nothing else did
    return router
