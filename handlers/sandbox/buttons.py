"""Button presses on the page, translated into inbound presses (bot/chat/inbound.py) exactly
as Telegram's callback queries are. The button data comes back from the browser and is not
trusted: the inbound layer and the case service check the case, the version, the state and
the presser's rights again."""

from __future__ import annotations

from typing import Any

from bot.chat.inbound import ChecklistPress, Controls, Feedback, MenuPress, Press, TriagePress
from bot.messages.outbox import Destination
from bot.messages.views import RefKind
from bot.staff.rights import Actor
from handlers.sandbox.context import SandboxContext

MAX_FIELD = 64  # Telegram's callback data is 64 bytes: nothing of ours is longer


def _int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name, "")
    return value if isinstance(value, str) and len(value) <= MAX_FIELD else None


async def press(
    ctx: SandboxContext, here: Destination, actor: Actor, data: Any, nonce: str
) -> Feedback:
    """The press of one button of ours; data no button carries is refused and audited."""
    if not isinstance(data, dict):
        return await ctx.inbound.forged_button(actor, "")
    kind = data.get("k")
    case_id = _int(data, "case")
    if kind == "c":
        action, arg, version = _text(data, "a"), _text(data, "x"), _int(data, "v")
        if case_id is not None and action is not None and arg is not None:
            card = Press(
                here, actor, case_id, RefKind.CARD, action, nonce, Controls.BUTTONS, arg, version
            )
            return await ctx.inbound.press(card)
    elif kind == "m":
        menu, version = _text(data, "menu"), _int(data, "v")
        if case_id is not None and menu is not None:
            return await ctx.inbound.open_menu(
                MenuPress(here, actor, case_id, menu, nonce, version)
            )
    elif kind == "d":
        action, version = _text(data, "a"), _int(data, "ver")
        if case_id is not None and action is not None:
            draft = Press(
                here,
                actor,
                case_id,
                RefKind.DRAFT,
                action,
                nonce,
                Controls.BUTTONS,
                version=version,
            )
            return await ctx.inbound.press(draft)
    elif kind == "k":
        crisis_id, step, done, version = (_int(data, n) for n in ("crisis", "s", "d", "v"))
        if crisis_id is not None and step is not None and done in (0, 1):
            tick = ChecklistPress(here, actor, crisis_id, step, bool(done), version)
            return await ctx.inbound.checklist(tick)
    elif kind == "t":
        mention_id, decision = _int(data, "m"), _text(data, "a")
        if mention_id is not None and decision is not None:
            return await ctx.inbound.triage(TriagePress(here, actor, mention_id, decision))
    return await ctx.inbound.forged_button(actor, "")
