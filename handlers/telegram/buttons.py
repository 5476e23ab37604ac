"""Button presses on cards and drafts. Callback data is never trusted: the service checks the
case, the card version, the state and the presser's rights again."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, InaccessibleMessage

from bot.cases.lifecycle import ActionRequest, DomainError, NoRight, StaleCard
from bot.cases.service import ActResult
from bot.chat.views import MENU_ACTIONS, PROMPT_ACTIONS, REVIEW_ACTIONS, choice_request
from bot.model import Action
from handlers.telegram.callbacks import CaseAction, CaseMenu, DraftAction
from handlers.telegram.context import TelegramContext, where


class BadButton(DomainError):
    """Callback data that no button of ours carries."""

    code = "invalid_input"


def _request(action: Action, arg: str, version: int) -> ActionRequest:
    if action in MENU_ACTIONS:
        request = choice_request(action, arg, expected_version=version)
        if request is None:
            raise BadButton(field="button", limit=None)
        return request
    if arg:  # only menu choices carry an argument
        raise BadButton(field="button", limit=None)
    return ActionRequest(action, expected_version=version)


async def _answer(
    query: CallbackQuery, ctx: TelegramContext, action: Action, result: ActResult
) -> None:
    if result.error is None:
        await query.answer(ctx.alert(ctx.texts.t("ui.done", action=action.value)))
    elif isinstance(result.error, NoRight):
        await query.answer(ctx.alert(ctx.texts.t("ui.no_rights")), show_alert=True)
    else:
        stale = isinstance(result.error, StaleCard)
        await query.answer(ctx.alert(ctx.error_text(result.error)), show_alert=not stale)


async def on_case_action(
    query: CallbackQuery, callback_data: CaseAction, ctx: TelegramContext
) -> None:
    if query.message is None or isinstance(query.message, InaccessibleMessage):
        await query.answer()
        return
    actor = ctx.actor(query.from_user)
    try:
        action = Action(callback_data.a)
        if action in REVIEW_ACTIONS:  # review buttons live under drafts, not cards
            raise BadButton(field="button", limit=None)
        if action in PROMPT_ACTIONS:
            result = await ctx.cases.prompt(
                callback_data.case, action, actor, where(query.message), nonce=query.id
            )
        else:
            request = _request(action, callback_data.x, callback_data.v)
            result = await ctx.cases.act(callback_data.case, request, actor)
    except (ValueError, BadButton):
        await query.answer(
            ctx.alert(ctx.texts.t("error.invalid_input", field="button", limit=None)),
            show_alert=True,
        )
        return
    await _answer(query, ctx, action, result)


async def on_menu(query: CallbackQuery, callback_data: CaseMenu, ctx: TelegramContext) -> None:
    if query.message is None or isinstance(query.message, InaccessibleMessage):
        await query.answer()
        return
    try:
        menu = Action(callback_data.menu) if callback_data.menu else None
    except ValueError:
        menu = Action.TAKE  # not a menu: refused below
    if menu is not None and menu not in MENU_ACTIONS:
        await query.answer(
            ctx.alert(ctx.texts.t("error.invalid_input", field="button", limit=None)),
            show_alert=True,
        )
        return
    result = await ctx.cases.open_menu(
        callback_data.case, menu, ctx.actor(query.from_user), where(query.message), nonce=query.id
    )
    if result.error is None:
        await query.answer()
    else:
        await _answer(query, ctx, menu or Action.TAKE, result)


async def on_draft_action(
    query: CallbackQuery, callback_data: DraftAction, ctx: TelegramContext
) -> None:
    if query.message is None or isinstance(query.message, InaccessibleMessage):
        await query.answer()
        return
    actor = ctx.actor(query.from_user)
    try:
        action = Action(callback_data.a)
    except ValueError:
        action = Action.TAKE
    if action not in REVIEW_ACTIONS:
        await query.answer(
            ctx.alert(ctx.texts.t("error.invalid_input", field="button", limit=None)),
            show_alert=True,
        )
        return
    case = await ctx.cases.get(callback_data.case)
    draft = case.latest_draft if case else None
    if case is not None and (draft is None or draft.version != callback_data.ver):
        # A button under an older draft: that version is no longer the one under review.
        stale = StaleCard(expected=callback_data.ver, actual=draft.version if draft else None)
        await _answer(query, ctx, action, ActResult(case, error=stale))
        return
    if action in PROMPT_ACTIONS:
        result = await ctx.cases.prompt(
            callback_data.case, action, actor, where(query.message), nonce=query.id
        )
    else:
        result = await ctx.cases.act(callback_data.case, ActionRequest(action), actor)
    await _answer(query, ctx, action, result)


async def on_unknown_button(query: CallbackQuery, ctx: TelegramContext) -> None:
    """Data no button of ours carries: answer, so the client stops waiting, and do nothing."""
    await query.answer(
        ctx.alert(ctx.texts.t("error.invalid_input", field="button", limit=None)),
        show_alert=True,
    )


def make_router() -> Router:
    """A fresh router: an aiogram router joins one dispatcher only."""
    router = Router(name=__name__)
    router.callback_query.register(on_case_action, CaseAction.filter())
    router.callback_query.register(on_menu, CaseMenu.filter())
    router.callback_query.register(on_draft_action, DraftAction.filter())
    router.callback_query.register(on_unknown_button)  # last: catches what nothing else did
    return router
