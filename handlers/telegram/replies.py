"""Text replies to the bot's own messages: a reply to a card or to a draft prompt is a draft,
to a note prompt a request for changes, to a reason prompt an escalation; a bare link in reply
to an approved card marks it published with that link."""

from __future__ import annotations

import re

from aiogram import F, Router
from aiogram.types import Message

from bot.cases.lifecycle import ActionRequest
from bot.chat.views import notice_view
from bot.model import MAX_DRAFT_TEXT, Action, CaseState
from handlers.telegram.context import TRANSPORT, TelegramContext, where

LINK = re.compile(r"^https?://\S+$")
_TEXT_FOR = {Action.DRAFT: "text", Action.REQUEST_CHANGES: "note", Action.ESCALATE: "note"}


def _parse(ref: str) -> tuple[Action, int] | None:
    """(action, case id) for a reply to one of our messages, from its logical key."""
    parts = ref.split(":")
    try:
        if parts[0] == "card":
            return Action.DRAFT, int(parts[1])
        if parts[0] == "prompt":
            action = Action(parts[1])
            return (action, int(parts[2])) if action in _TEXT_FOR else None
    except (IndexError, ValueError):
        return None
    return None


async def on_reply(message: Message, ctx: TelegramContext) -> None:
    assert message.reply_to_message is not None and message.text is not None
    if message.from_user is None or message.text.startswith("/"):
        return
    ref = await ctx.cases.ref_of(
        TRANSPORT, str(message.chat.id), str(message.reply_to_message.message_id)
    )
    parsed = _parse(ref) if ref else None
    if parsed is None:
        return  # a reply to something that is not a card or a prompt: conversation, not work
    action, case_id = parsed
    text = message.text.strip()
    actor = ctx.actor(message.from_user)
    if action is Action.DRAFT and LINK.match(text):
        case = await ctx.cases.get(case_id)
        if case is not None and case.state is CaseState.APPROVED:
            action = Action.MARK_PUBLISHED
    if action is Action.MARK_PUBLISHED:
        request = ActionRequest(action, url=text)
    else:
        request = ActionRequest(action, **{_TEXT_FOR[action]: text[: MAX_DRAFT_TEXT + 1]})
    result = await ctx.cases.act(case_id, request, actor)
    if result.error is not None:
        view = notice_view(f"error.{result.error.code}", **result.error.params)
    elif action is Action.DRAFT and result.case and result.case.latest_draft:
        view = notice_view(
            "ui.draft_sent", case_id=case_id, version=result.case.latest_draft.version
        )
    else:
        view = notice_view("ui.done", action=action.value)
    await ctx.cases.send(
        where(message),
        view,
        key=f"reply:{message.message_id}",
        reply_to_message=str(message.message_id),
    )


def make_router() -> Router:
    """A fresh router: an aiogram router joins one dispatcher only."""
    router = Router(name=__name__)
    router.message.register(on_reply, F.reply_to_message.from_user.is_bot, F.text)
    return router
