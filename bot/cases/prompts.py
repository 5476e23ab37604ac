"""Prompts and menus: a press that asks for more before acting (a draft's text, a note, a
template, a department, an outcome).

Each is checked by the state machine's own `lifecycle.check` with the request it leads to, so
whatever the action would refuse (rights, state, ownership, four eyes) is refused before the
person writes a word. The reply or the choice then goes through CaseService.act.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.cases import lifecycle
from bot.cases.cards import (
    PROMPT_ACTIONS,
    REVIEW_ACTIONS,
    Cards,
    card_view,
    first_mention,
    menu_options,
)
from bot.cases.lifecycle import ActionRequest, DomainError, NoRight
from bot.cases.outcomes import ActResult, UnknownCase, audit_refusal
from bot.cases.replies import ReplyCatalog
from bot.clock import Clock
from bot.messages.outbox import Destination, OutboxOp
from bot.messages.views import MenuOption, card_ref, draft_ref, prompt_ref, prompt_view
from bot.model import Action, Case
from bot.ports import UnitOfWork, UnitOfWorkFactory
from bot.staff.directory import Directory
from bot.staff.rights import Actor


class Prompts:
    """Posts a prompt or a redrawn card with a submenu, once the action's guards let it."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        directory: Directory,
        tz: ZoneInfo,
        cards: Cards,
        replies: ReplyCatalog | None,
        on_outbox: Callable[[], None],
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._directory = directory
        self._tz = tz
        self._cards = cards
        self._replies = replies
        self._on_outbox = on_outbox

    async def prompt(
        self, case_id: int, action: Action, actor: Actor, where: Destination, nonce: str
    ) -> ActResult:
        """Ask in the chat for the text an action needs (draft, note, reason). The reply to the
        prompt carries the action out."""
        key = PROMPT_ACTIONS[action]
        now = self._clock.now()
        async with self._uow() as uow:
            case = await uow.cases.get(case_id)
            error = await self._precheck(uow, case, case_id, action, actor, now)
            if error is not None or case is None:
                await uow.commit()
                return ActResult(case, error=error)
            assert case.id is not None
            draft = case.latest_draft
            version = draft.version if draft else 0
            ref = prompt_ref(action.value, case.id, version, nonce)
            reply_to = (
                draft_ref(case.id, version, case.department)
                if action in REVIEW_ACTIONS
                else card_ref(case.id, case.department)
            )
            view = prompt_view(key, case_id=case.id, version=version)
            await uow.outbox.enqueue(
                [
                    where.about(
                        case, OutboxOp.REPLY, view, f"{ref}:post", now, ref=ref, reply_to=reply_to
                    )
                ]
            )
            await uow.commit()
        self._on_outbox()
        return ActResult(case)

    async def open_menu(
        self, case_id: int, menu: Action | None, actor: Actor, where: Destination, nonce: str
    ) -> ActResult:
        """Show a card's submenu (templates, departments, outcomes, reasons) in one chat, or
        the main buttons again with menu=None."""
        now = self._clock.now()
        async with self._uow() as uow:
            case = await uow.cases.get(case_id)
            error = (
                await self._precheck(uow, case, case_id, menu, actor, now)
                if menu is not None
                else None  # going back needs only a look
            )
            if case is None or error is not None:
                await uow.commit()
                return ActResult(case, error=error or UnknownCase(case_id=case_id))
            assert case.id is not None
            mention, author = await first_mention(uow, case)
            options = None
            if menu is not None:
                options = menu_options(menu, case, self._directory, self._templates(case))
            view = card_view(
                case,
                mention,
                author,
                self._directory,
                self._tz,
                publishable=self._cards.publishable(mention),
                menu=menu,
                options=options,
            )
            ref = card_ref(case.id, case.department)
            await uow.outbox.enqueue(
                [where.about(case, OutboxOp.EDIT, view, f"{ref}:menu:{nonce}", now, ref=ref)]
            )
            await uow.commit()
        self._on_outbox()
        return ActResult(case)

    async def menu_choices(
        self, case_id: int, menu: Action, actor: Actor
    ) -> tuple[ActResult, list[MenuOption]]:
        """The choices of a submenu, checked like the action, for transports that list them
        as text (Matrix) instead of redrawing the card's buttons."""
        now = self._clock.now()
        async with self._uow() as uow:
            case = await uow.cases.get(case_id)
            error = await self._precheck(uow, case, case_id, menu, actor, now)
            await uow.commit()
        if case is None or error is not None:
            return ActResult(case, error=error), []
        return ActResult(case), menu_options(menu, case, self._directory, self._templates(case))

    def _templates(self, case: Case) -> list[tuple[str, str]]:
        return self._replies.options(case.department) if self._replies else []

    async def _precheck(
        self,
        uow: UnitOfWork,
        case: Case | None,
        case_id: int,
        action: Action,
        actor: Actor,
        now: datetime,
    ) -> DomainError | None:
        """The refusal the action would meet, before the person is asked for its input;
        audited as the action's refusals are."""
        if case is None:
            await audit_refusal(uow, None, actor, action, now, UnknownCase.code)
            return UnknownCase(case_id=case_id)
        error = lifecycle.check(case, ActionRequest(action), actor)
        if isinstance(error, NoRight):
            await audit_refusal(uow, case, actor, action, now, error.code)
        return error
