"""Prompts and menus: a press that asks for more before acting (a draft's text, a note, a
template, a department, an outcome).

Each is checked by the state machine's own `lifecycle.check` with the request it leads to, so
whatever the action would refuse (rights, a stale card or draft, state, ownership, four eyes)
is refused before the person writes a word; so is a press from a chat the case is not worked
in. The reply or the choice then goes through CaseService.act.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.cases import lifecycle
from bot.cases.cards import (
    PROMPT_ACTIONS,
    REVIEW_ACTIONS,
    SUBMENU_SEPARATOR,
    Cards,
    card_view,
    first_mention,
    menu_options,
    template_options,
)
from bot.cases.lifecycle import ActionRequest, DomainError, NoRight, StaleCard
from bot.cases.outcomes import ActResult, UnknownCase, WrongChat, audit_refusal, audited
from bot.cases.replies import ReplyCatalog
from bot.clock import Clock
from bot.messages.outbox import PRESS_URGENCY, Destination, OutboxOp
from bot.messages.views import MenuOption, card_ref, draft_ref, prompt_ref, prompt_view
from bot.model import Action, Author, Case, Mention
from bot.ports import UnitOfWork, UnitOfWorkFactory
from bot.settings.reply_templates import TemplateKind
from bot.staff.directory import Directory
from bot.staff.rights import Actor, may_look_at

# The refusal for a press from a chat a case is not worked in (CaseService.misplaced).
Placement = Callable[[Case, Destination | None], WrongChat | None]
BACK = "menu"  # what the audit trail calls a press for a card's main buttons
# Prompts that show templates to start from, and which kinds (None: every answer start).
STARTS: dict[Action, frozenset[TemplateKind] | None] = {
    Action.DRAFT: None,
    Action.FOLLOW_UP: frozenset({TemplateKind.FOLLOW_UP}),
}


@dataclass(frozen=True, slots=True)
class Versions:
    """What a button was drawn for: the card's version and, under a draft, the draft's.
    None: not known (a reaction under a card the bot has not seen in the room's timeline)."""

    card: int | None = None
    draft: int | None = None


NO_VERSIONS = Versions()  # a press that names no version (a command, an old reaction)


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
        misplaced: Placement = lambda _case, _where: None,
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._directory = directory
        self._tz = tz
        self._cards = cards
        self._replies = replies
        self._on_outbox = on_outbox
        self._misplaced = misplaced

    async def prompt(
        self,
        case_id: int,
        action: Action,
        actor: Actor,
        where: Destination,
        nonce: str,
        versions: Versions = NO_VERSIONS,
    ) -> ActResult:
        """Ask in the chat for the text an action needs (draft, note, reason). The reply to the
        prompt carries the action out."""
        key = PROMPT_ACTIONS[action]
        now = self._clock.now()
        async with self._uow() as uow:
            case = await uow.cases.get(case_id)
            error = await self._precheck(uow, case, case_id, action, actor, now, where, versions)
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
            params: dict[str, object] = {"case_id": case.id, "version": version}
            if action in STARTS and self._replies is not None:
                # Apology and refutation templates start an answer, the follow-up templates a
                # follow-up: shown to copy and complete.
                mention, author = await first_mention(uow, case)
                params["starts"] = [
                    {"title": title, "text": text}
                    for title, text in self._replies.answer_starts(
                        case, mention, author, STARTS[action]
                    )
                ]
            view = prompt_view(key, **params)
            await uow.outbox.enqueue(
                [
                    where.about(
                        case,
                        OutboxOp.REPLY,
                        view,
                        f"{ref}:post",
                        now,
                        ref=ref,
                        reply_to=reply_to,
                        urgency_bonus=PRESS_URGENCY,
                    )
                ]
            )
            await uow.commit()
        self._on_outbox()
        return ActResult(case)

    async def open_menu(
        self,
        case_id: int,
        menu: Action | None,
        actor: Actor,
        where: Destination,
        nonce: str,
        versions: Versions = NO_VERSIONS,
        dimension: str | None = None,
    ) -> ActResult:
        """Show a card's submenu (templates, departments, outcomes, reasons) in one chat, or
        the main buttons again with menu=None. Only where the card is: a redraw for a chat
        without it would become a new post of the card there. `dimension`: «Коды ▸»'s second
        level, the codes of that dimension."""
        now = self._clock.now()
        async with self._uow() as uow:
            case = await uow.cases.get(case_id)
            error = await self._precheck(uow, case, case_id, menu, actor, now, where, versions)
            if (
                error is None
                and case is not None
                and not self._directory.in_chat_of(case.department, where)
            ):
                error = WrongChat()
                await audit_refusal(uow, case, actor, menu or BACK, now, error.code)
            if case is None or error is not None:
                await uow.commit()
                return ActResult(case, error=error or UnknownCase(case_id=case_id))
            assert case.id is not None
            mention, author = await first_mention(uow, case)
            options = None
            if menu is not None:
                options = self._options(menu, case, mention, author, dimension)
            view = card_view(
                case,
                mention,
                author,
                self._directory,
                self._tz,
                publishable=self._cards.publishable(mention),
                menu=menu,
                options=options,
                codes=self._cards.codes,
                menu_name=(
                    f"{menu.value}{SUBMENU_SEPARATOR}{dimension}" if menu and dimension else None
                ),
            )
            ref = card_ref(case.id, case.department)
            await uow.outbox.enqueue(
                [
                    where.about(
                        case,
                        OutboxOp.EDIT,
                        view,
                        f"{ref}:menu:{nonce}",
                        now,
                        ref=ref,
                        urgency_bonus=PRESS_URGENCY,
                    )
                ]
            )
            await uow.commit()
        self._on_outbox()
        return ActResult(case)

    async def menu_choices(
        self,
        case_id: int,
        menu: Action,
        actor: Actor,
        where: Destination | None = None,
        versions: Versions = NO_VERSIONS,
        dimension: str | None = None,
    ) -> tuple[ActResult, list[MenuOption]]:
        """The choices of a submenu, checked like the action, for transports that list them
        as text (Matrix) instead of redrawing the card's buttons."""
        checked = await self.check(case_id, menu, actor, where, versions)
        if checked.case is None or checked.error is not None:
            return checked, []
        async with self._uow() as uow:
            mention, author = await first_mention(uow, checked.case)
        return checked, self._options(menu, checked.case, mention, author, dimension)

    async def check(
        self,
        case_id: int,
        action: Action,
        actor: Actor,
        where: Destination | None = None,
        versions: Versions = NO_VERSIONS,
    ) -> ActResult:
        """Whether the action would be allowed now, before its text is written (a Matrix
        reviewer's ✏️, whose note comes later as "!note …"); refusals audited."""
        now = self._clock.now()
        async with self._uow() as uow:
            case = await uow.cases.get(case_id)
            error = await self._precheck(uow, case, case_id, action, actor, now, where, versions)
            await uow.commit()
        return ActResult(case, error=error)

    def _options(
        self,
        menu: Action,
        case: Case,
        mention: Mention,
        author: Author | None,
        dimension: str | None = None,
    ) -> list[MenuOption]:
        if menu is Action.USE_TEMPLATE:
            offers = self._replies.offers(case, mention, author) if self._replies else []
            return template_options(offers, self._cards.publishable(mention))
        return menu_options(menu, case, self._directory, [], self._cards.codes, dimension)

    async def _precheck(
        self,
        uow: UnitOfWork,
        case: Case | None,
        case_id: int,
        action: Action | None,
        actor: Actor,
        now: datetime,
        where: Destination | None,
        versions: Versions,
    ) -> DomainError | None:
        """The refusal the action would meet, before the person is asked for its input;
        audited as the action's refusals are. `action` None: the card's main buttons again,
        which need a right on the case, the chat and the card version like any press."""
        pressed = action or BACK
        if case is None:
            await audit_refusal(uow, None, actor, pressed, now, UnknownCase.code)
            return UnknownCase(case_id=case_id)
        error: DomainError | None = self._misplaced(case, where)
        if error is None and action is None:
            if not may_look_at(actor, case.department):
                error = NoRight(action=BACK, department=case.department)
            elif versions.card is not None and versions.card != case.version:
                error = StaleCard(expected=versions.card, actual=case.version)
        elif error is None and action is not None:
            request = ActionRequest(
                action, expected_version=versions.card, draft_version=versions.draft
            )
            error = lifecycle.check(case, request, actor)
        if error is not None and audited(error):
            await audit_refusal(uow, case, actor, pressed, now, error.code)
        return error
