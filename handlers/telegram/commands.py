"""Commands: /status, /case N, /escalate N reason, /duty, /help, /whoami."""

from __future__ import annotations

from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot.lifecycle import ActionRequest
from bot.model import SYSTEM_ACTOR, Action, GlobalRole
from bot.services import CaseThread
from bot.views import card_view, format_time, notice_view, page_view
from handlers.telegram.context import TRANSPORT, TelegramContext, where

COMMANDS = ("status", "case", "escalate", "duty", "help", "whoami")
MAX_EVENTS = 40  # /case shows the latest events; the rest is in the database


async def _say(message: Message, ctx: TelegramContext, view: dict[str, Any]) -> None:
    await ctx.cases.send(
        where(message),
        view,
        key=f"cmd:{message.message_id}",
        reply_to_message=str(message.message_id),
    )


async def _staff_only(message: Message, ctx: TelegramContext) -> bool:
    if message.from_user is not None and ctx.actor(message.from_user).is_staff:
        return True
    await _say(message, ctx, notice_view("ui.not_staff"))
    return False


async def on_help(message: Message, ctx: TelegramContext) -> None:
    await _say(message, ctx, page_view("help.html.j2", {}))


async def on_whoami(message: Message, ctx: TelegramContext) -> None:
    if message.from_user is None:
        return
    actor = ctx.actor(message.from_user)
    roles = [
        f"{ctx.directory.department_name(dept)}: "
        + ", ".join(ctx.texts.t(f"role.{r.value}") for r in sorted(rs))
        for dept, rs in actor.dept_roles.items()
        if rs
    ]
    roles += [ctx.texts.t(f"role.{r.value}") for r in sorted(actor.global_roles)]
    await _say(message, ctx, notice_view("ui.whoami", name=actor.name, roles="; ".join(roles)))


async def on_duty(message: Message, ctx: TelegramContext) -> None:
    await _say(message, ctx, notice_view("ui.duty", names=", ".join(ctx.directory.on_duty())))


async def on_status(message: Message, ctx: TelegramContext) -> None:
    if not await _staff_only(message, ctx) or message.from_user is None:
        return
    here = where(message)
    department = ctx.directory.department_at(TRANSPORT, here.chat, here.thread)
    actor = ctx.actor(message.from_user)
    # The coordination chat and the duty officer's private chat see every department.
    if department == ctx.coordination or (
        message.chat.type == "private" and GlobalRole.DUTY in actor.global_roles
    ):
        department = None
    now = ctx.clock.now()
    rows = {row.department: row for row in await ctx.cases.status()}
    wanted = [department] if department else ctx.directory.department_ids()
    departments = []
    for dept in wanted:
        row = rows.get(dept)
        oldest = row.oldest_new_at if row else None
        departments.append(
            {
                "name": ctx.directory.department_name(dept),
                "open": row.open if row else 0,
                "overdue": row.overdue if row else 0,
                "at_risk": row.at_risk if row else 0,
                "oldest_waiting": _waited(now - oldest) if oldest else None,
            }
        )
    generated = format_time(now, ctx.cases.tz)
    await _say(
        message,
        ctx,
        page_view("status.html.j2", {"generated_at": generated, "departments": departments}),
    )


def _waited(delta: Any) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


async def on_case(message: Message, command: CommandObject, ctx: TelegramContext) -> None:
    if not await _staff_only(message, ctx):
        return
    case_id = _case_number(command.args)
    thread = await ctx.cases.thread(case_id) if case_id is not None else None
    if thread is None:
        view = (
            notice_view("error.unknown_case", case_id=case_id)
            if case_id is not None
            else notice_view("ui.usage_case")
        )
        await _say(message, ctx, view)
        return
    await _say(message, ctx, page_view("case_thread.html.j2", thread_context(thread, ctx)))


def thread_context(thread: CaseThread, ctx: TelegramContext) -> dict[str, Any]:
    case, mention = thread.case, thread.mentions[0]
    card = card_view(case, mention, thread.author, ctx.directory, ctx.cases.tz)
    card["case"].update(
        outcome=case.outcome.value if case.outcome else None,
        ignore_reason=case.ignore_reason.value if case.ignore_reason else None,
    )
    drafts = [
        {
            "version": d.version,
            "status": d.status.value,
            "text": d.text,
            "note": d.note,
            "author_name": ctx.directory.name_of(d.author),
        }
        for d in case.drafts
    ]
    events = [
        {
            "detail": _detail(e.payload, ctx),
            "at": format_time(e.at, ctx.cases.tz),
            "kind": e.kind,
            "actor": (
                ctx.texts.t("ui.system_actor")
                if e.actor == SYSTEM_ACTOR
                else ctx.directory.name_of(e.actor)
            ),
        }
        for e in thread.events[-MAX_EVENTS:]
    ]
    keys = (
        "case",
        "department_name",
        "source",
        "deadline",
        "assignee_name",
        "author",
        "text",
        "url",
    )
    return {**{k: card[k] for k in keys}, "drafts": drafts, "events": events}


def _detail(payload: dict[str, Any], ctx: TelegramContext) -> str:
    """The one thing worth reading about an event: a reason, a note, where it went."""
    if payload.get("target"):
        return ctx.directory.department_name(str(payload["target"]))
    if payload.get("outcome"):
        return ctx.texts.t_or(f"outcome.{payload['outcome']}", str(payload["outcome"]))
    if payload.get("reason") and payload.get("action") is None:
        return ctx.texts.t_or(f"ignore_reason.{payload['reason']}", str(payload["reason"]))
    return str(payload.get("note") or "")


def _case_number(args: str | None) -> int | None:
    word = (args or "").split(maxsplit=1)[0] if args else ""
    word = word.lstrip("#")
    return int(word) if word.isdigit() and len(word) < 12 else None


async def on_escalate(message: Message, command: CommandObject, ctx: TelegramContext) -> None:
    if message.from_user is None:
        return
    args = (command.args or "").strip()
    case_id = _case_number(args)
    reason = args.split(maxsplit=1)[1] if case_id is not None and " " in args else ""
    if case_id is None and message.reply_to_message is not None:
        # /escalate as a reply to a card: the card says which case.
        ref = await ctx.cases.ref_of(
            TRANSPORT, str(message.chat.id), str(message.reply_to_message.message_id)
        )
        if ref and ref.startswith("card:"):
            case_id = int(ref.split(":")[1])
            reason = args
    if case_id is None:
        await _say(message, ctx, notice_view("ui.usage_escalate"))
        return
    result = await ctx.cases.act(
        case_id, ActionRequest(Action.ESCALATE, note=reason or None), ctx.actor(message.from_user)
    )
    view = (
        notice_view("ui.done", action=Action.ESCALATE.value)
        if result.error is None
        else notice_view(f"error.{result.error.code}", **result.error.params)
    )
    await _say(message, ctx, view)


def make_router() -> Router:
    """A fresh router: an aiogram router joins one dispatcher only."""
    router = Router(name=__name__)
    router.message.register(on_help, Command("help", "start"))
    router.message.register(on_whoami, Command("whoami"))
    router.message.register(on_duty, Command("duty"))
    router.message.register(on_status, Command("status"))
    router.message.register(on_case, Command("case"))
    router.message.register(on_escalate, Command("escalate"))
    return router
