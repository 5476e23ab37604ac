"""Inbound chat traffic, once for every transport: a press, a numbered choice, a reply, a
command. The adapters (handlers/telegram, handlers/matrix) only translate their library's
objects into these events and the feedback back; everything between lives here: reading
our message keys, parsing command arguments, choosing the ActionRequest, bounding text,
and turning a refusal into a notice. The next stop is the case service
(bot/cases/service.py), which checks rights and state and drives the lifecycle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Protocol

from bot.cases.cards import (
    MENU_ACTIONS,
    PROMPT_ACTIONS,
    REVIEW_ACTIONS,
    SUBMENU_SEPARATOR,
    colleagues,
)
from bot.cases.codes import code_of_arg
from bot.cases.lifecycle import ActionRequest, DomainError, StaleCard, StaleDraft
from bot.cases.outcomes import ActResult
from bot.cases.prompts import Versions
from bot.cases.service import CaseService
from bot.chat.answers import COMMANDS, ID_COMMANDS, Answers, ChatIds, case_number, refusal_view
from bot.chat.checks import ChatProblems
from bot.chat.seen import ChatLog
from bot.clock import Clock
from bot.crisis.service import CrisisService
from bot.intake.intake import MentionIntake
from bot.messages.outbox import Destination, Transport
from bot.messages.texts import Texts
from bot.messages.views import MessageRef, NoticeView, RefKind, View, notice_view, parse_ref
from bot.model import (
    MAX_DRAFT_TEXT,
    Action,
    Case,
    CaseState,
    Event,
    EventKind,
    IgnoreReason,
    Outcome,
    Priority,
    WaitReason,
)
from bot.staff.directory import Directory
from bot.staff.rights import Actor

log = logging.getLogger(__name__)

LINK = re.compile(r"^https?://\S+$")
# A press may arrive before the outbox has recorded the id of the message pressed on (Matrix
# reactions are added right after the message): wait this long for it while the chat is busy.
REF_WAIT_STEPS, REF_WAIT_STEP_S = 30, 0.1
# What the text of a reply becomes, by the action it carries out.
# What a reaction that needs text asks for in the card's thread (Controls.REACTIONS).
THREAD_PROMPTS = {
    Action.DRAFT: "ui.matrix_prompt_draft",
    Action.ESCALATE: "ui.matrix_prompt_reason",
}
# How long such a question stays open: later, the person's message there is conversation.
PROMPT_PATIENCE = timedelta(hours=1)
TEXT_FIELD = {
    Action.DRAFT: "text",
    Action.REQUEST_CHANGES: "note",
    Action.REJECT: "note",
    Action.ESCALATE: "note",
    Action.FOLLOW_UP: "text",
    Action.CORRECT: "text",
}
# Actions whose reply is a new draft version ("draft v3 sent for approval").
WRITES_DRAFT = frozenset({Action.DRAFT, Action.FOLLOW_UP, Action.CORRECT})
# Asked for as "!followup …" / "!correct …" in a card's thread where reactions stand for buttons.
FOLLOW_UP_ACTIONS = frozenset({Action.FOLLOW_UP, Action.CORRECT})
# What a reviewer's reaction asks them to write in the thread ("!note …", "!reject …").
THREAD_NOTICE = {Action.REQUEST_CHANGES: "ui.matrix_note", Action.REJECT: "ui.matrix_reject"}
BAD_BUTTON = notice_view("ui.bad_button")
BAD_CHOICE = notice_view("ui.bad_choice")


# What a triage press says when it did (or had done) what was asked: anything else alerts.
TRIAGE_DONE = frozenset({"ui.marked_negative", "ui.already_a_case", "ui.marked_not_negative"})
# ...and when the presser had no right to it: audited, as a refused press on a card is.
TRIAGE_NO_RIGHT = frozenset({"ui.not_staff", "ui.no_rights"})
# What the audit trail calls a triage press, a press whose data says nothing we can read,
# and the reason for a press with data no button carries.
TRIAGE, BUTTON, FORGED = "triage", "button", "invalid_button"
CHECKLIST = "checklist"  # a checklist press where no crisis service runs

# The audit trail's reason for a command from a chat that is no work chat.
NOT_A_WORK_CHAT = "not_a_work_chat"

# "/official 42 off": the author no longer speaks officially.
OFF_WORDS = frozenset({"off", "no", "нет", "снять"})


class Controls(Enum):
    """How a transport offers choices and asks for text."""

    # Submenus redraw the card's buttons, text is asked for with a prompt to reply to, and
    # every press is answered with a short toast (Telegram).
    BUTTONS = "buttons"
    # Submenus are numbered lists in the card's thread, text comes as commands written
    # there, and only what needs saying is answered, in the thread (Matrix reactions).
    REACTIONS = "reactions"


@dataclass(frozen=True, slots=True)
class Answer:
    """Where our answer to an inbound message goes through the outbox."""

    key: str  # idempotency key: one inbound message is answered once, even if re-delivered
    under: str | None = None  # the transport's id of the message it replies to, if any


@dataclass(frozen=True, slots=True)
class Press:
    """A button pressed (or a reaction that stands for one) under a card or a draft.
    Nothing in it is trusted: the action, the argument and the version are checked again."""

    where: Destination
    actor: Actor
    case_id: int
    on: RefKind  # CARD or DRAFT
    action: str  # an Action value, as sent
    nonce: str  # unique per press: keys the prompt or menu it opens
    controls: Controls
    arg: str = ""  # a menu choice's template, department, outcome or reason
    version: int | None = None  # the card's or draft's version it was drawn for, if known
    answer: Answer | None = None  # where to say what needs saying; None: feedback only


class TriageDecision(Enum):
    """The two buttons of a line of the triage list."""

    NEGATIVE = "n"  # "Это негатив → кейс"
    NOT_NEGATIVE = "x"  # "Не негатив"


@dataclass(frozen=True, slots=True)
class TriagePress:
    """A button pressed on a line of the triage list: one mention, one decision (as sent,
    not trusted: the mention and the presser's rights are checked again)."""

    where: Destination
    actor: Actor
    mention_id: int
    decision: str  # a TriageDecision value


@dataclass(frozen=True, slots=True)
class ChecklistPress:
    """A crisis card's checklist item pressed (a button, a number reaction, "!done N"). Not
    trusted: the crisis, the chat, the presser's right and the card version are checked
    again (bot/crisis/service.py tick)."""

    where: Destination
    actor: Actor
    crisis_id: int
    step: int  # 0-based index into the playbook's checklist
    done: bool  # tick it, or untick it
    version: int | None = None  # the card version it was drawn for, if known
    answer: Answer | None = None  # where to say what needs saying; None: feedback only


@dataclass(frozen=True, slots=True)
class MenuPress:
    """A card's submenu opened (menu is an Action value) or closed (menu is ""). Not trusted
    either: the chat, the presser's right and the card version are checked again."""

    where: Destination
    actor: Actor
    case_id: int
    menu: str
    nonce: str
    version: int | None = None  # the card version the button was drawn for, if known


@dataclass(frozen=True, slots=True)
class Choice:
    """A number written in a card's thread: the choice from the list a menu reaction showed."""

    where: Destination
    actor: Actor
    case_id: int
    number: int
    answer: Answer


@dataclass(frozen=True, slots=True)
class Reply:
    """Text for a case: a reply to a card or a prompt of ours, or a command in a card's thread
    that names its action ("!note …")."""

    where: Destination
    actor: Actor
    to: MessageRef  # the card or prompt replied to, or the card whose thread it is in
    text: str
    controls: Controls
    answer: Answer
    action: Action | None = None  # named by the person; None: what `to` asks for


@dataclass(frozen=True, slots=True)
class Command:
    """A chat command: /status, /case N, /merge A B, /escalate N reason and the rest."""

    where: Destination
    actor: Actor
    name: str  # without its prefix, lower case
    args: str
    answer: Answer
    about: MessageRef | None = None  # the message it replies to, or the card thread it is in
    private: bool = False
    person: str = ""  # the transport's id of the sender (a Telegram user id, a Matrix id)
    # The thread it was written in where `where` does not say it (a Matrix thread's root).
    thread_root: str | None = None


@dataclass(frozen=True, slots=True)
class Feedback:
    """What a press says back: a notice, and whether it is worth an alert. A transport with
    toasts shows it; for the others it has already gone to the chat when it needed to."""

    notice: NoticeView | None = None  # None: nothing to say (a menu opened)
    alert: bool = False


class Inbound:
    """One method per inbound event. A press acts, asks for text or lists choices and returns
    its Feedback; a choice, a reply and a command answer through the outbox, keyed by the
    message they answer. Rights, chat, versions and state of a press are checked by the case
    service, never here; which chats a command is answered in is decided here."""

    def __init__(
        self,
        cases: CaseService,
        answers: Answers,
        directory: Directory,
        texts: Texts,
        crises: CrisisService | None = None,
    ) -> None:
        self._crises = crises  # None: no crisis cards, so no checklist to tick
        self._cases = cases
        self._answers = answers
        self._directory = directory
        self._texts = texts

    async def our_message(
        self, where: Destination, message_id: str, wait: bool = False
    ) -> MessageRef | None:
        """What a message of ours in this chat is about; None when it is not ours or no card,
        draft or prompt. `wait`: the outbox may not have recorded it yet (a quick reaction)."""
        busy = wait
        for _ in range(REF_WAIT_STEPS if wait else 1):
            ref = await self._cases.ref_of(where.transport, where.chat, message_id)
            if ref is not None:
                return parse_ref(ref)
            if not busy:
                return None
            # Read after the ref: a delivery settled in between has recorded it by now, so
            # one more look follows before giving up on a chat that has gone idle.
            busy = await self._cases.chat_busy(where.transport, where.chat)
            if busy:
                await asyncio.sleep(REF_WAIT_STEP_S)
        return None

    # --- presses ------------------------------------------------------------------------

    async def press(self, press: Press) -> Feedback:
        try:
            action = Action(press.action)
        except ValueError:
            return await self._tell(press, await self._forged(press))
        if press.on is RefKind.DRAFT:
            return await self._review(press, action)
        if press.on is not RefKind.CARD or action in REVIEW_ACTIONS:
            # Review buttons live under drafts, not cards.
            return await self._tell(press, await self._forged(press))
        if action in MENU_ACTIONS and press.controls is Controls.REACTIONS:
            return await self._list_choices(press, action)
        if action in FOLLOW_UP_ACTIONS and press.controls is Controls.REACTIONS:
            # The text comes as "!followup …" or "!correct …": check the right now, act then.
            check = await self._cases.check(
                press.case_id, action, press.actor, press.where, Versions(card=press.version)
            )
            notice = (
                refusal_view(check.error, self._directory)
                if check.error
                else notice_view("ui.matrix_follow_up", case_id=press.case_id)
            )
            return await self._tell(press, Feedback(notice, alert=check.error is not None))
        if action in PROMPT_ACTIONS and press.controls is Controls.REACTIONS:
            return await self._ask_in_thread(press, action)
        if action in PROMPT_ACTIONS and press.controls is Controls.BUTTONS:
            result = await self._cases.prompt(
                press.case_id,
                action,
                press.actor,
                press.where,
                nonce=press.nonce,
                versions=Versions(card=press.version),
            )
            return await self._outcome(press, action, result)
        if action in MENU_ACTIONS:
            request = choice_request(action, press.arg, expected_version=press.version)
        elif not press.arg:  # only menu choices carry an argument
            request = ActionRequest(action, expected_version=press.version)
        else:
            request = None
        if request is None:
            return await self._tell(press, await self._forged(press))
        result = await self._cases.act(press.case_id, request, press.actor, press.where)
        return await self._outcome(press, action, result)

    async def _review(self, press: Press, action: Action) -> Feedback:
        """A press under a draft: approve, request changes, reject that very version. The
        version goes with the request, so the check and the change are one transaction: an
        author who writes another version meanwhile gets nothing approved."""
        if action not in REVIEW_ACTIONS:
            return await self._tell(press, await self._forged(press))
        versions = Versions(draft=press.version)
        if action in PROMPT_ACTIONS:
            if press.controls is Controls.BUTTONS:
                result = await self._cases.prompt(
                    press.case_id,
                    action,
                    press.actor,
                    press.where,
                    nonce=press.nonce,
                    versions=versions,
                )
                return await self._outcome(press, action, result)
            # The note or reason comes as "!note …" or "!reject …" in the thread: check the
            # right now, act then.
            check = await self._cases.check(
                press.case_id, action, press.actor, press.where, versions
            )
            if check.error is None and press.version is not None:
                # The note is for this version: one written after the author replaced it is
                # refused as stale, as the reaction itself would have been.
                await self._cases.remember(
                    _note_key(press.where, press.case_id, action), str(press.version)
                )
            notice = (
                refusal_view(check.error, self._directory)
                if check.error
                else notice_view(THREAD_NOTICE[action], case_id=press.case_id)
            )
            return await self._tell(press, Feedback(notice, alert=check.error is not None))
        request = ActionRequest(action, draft_version=press.version)
        result = await self._cases.act(press.case_id, request, press.actor, press.where)
        return await self._outcome(press, action, result)

    async def triage(self, press: TriagePress) -> Feedback:
        """A line of the triage list decided: a case opens for the mention (as /negative), or
        it is not negative. A second tap on a line already decided says so and changes
        nothing."""
        try:
            decision = TriageDecision(press.decision)
        except ValueError:
            return await self.forged_button(press.actor, TRIAGE)
        answers = self._answers
        reference = str(press.mention_id)
        if decision is TriageDecision.NEGATIVE:
            view = await answers.negative(press.actor, reference)
        else:
            view = await answers.not_negative(press.actor, reference)
        notice = view if view["view"] == "notice" else None
        refused = notice is not None and notice["key"] not in TRIAGE_DONE
        if notice is not None and notice["key"] in TRIAGE_NO_RIGHT:
            await self._cases.deny(None, press.actor, TRIAGE, notice["key"].removeprefix("ui."))
        return Feedback(notice, alert=refused)

    async def checklist(self, press: ChecklistPress) -> Feedback:
        """A crisis card's checklist item ticked or unticked; the card is redrawn in every
        coordination chat. A refusal is said (in the thread, for a transport without toasts)."""
        if self._crises is None:
            return await self.forged_button(press.actor, CHECKLIST)
        result = await self._crises.tick(
            press.crisis_id,
            press.step,
            press.actor,
            done=press.done,
            where=press.where,
            expected_version=press.version,
        )
        if result.error is not None:
            feedback = self._refused(result.error)
        elif press.answer is not None:
            feedback = Feedback()  # a reaction or a reply needs no "done": the card changes
        else:
            assert result.tick is not None
            key = "ui.checklist_done" if result.tick.done else "ui.checklist_undone"
            feedback = Feedback(notice_view(key, step=press.step + 1))
        if press.answer is not None and feedback.notice is not None:
            await self._send(press.where, press.answer, feedback.notice)
        return feedback

    async def open_menu(self, press: MenuPress) -> Feedback:
        """A card's submenu redrawn as buttons, or the main buttons again."""
        menu, dimension = parse_menu(press.menu)
        if press.menu and menu is None:
            return await self.forged_button(press.actor, press.menu, press.case_id)
        result = await self._cases.open_menu(
            press.case_id,
            menu,
            press.actor,
            press.where,
            nonce=press.nonce,
            versions=Versions(card=press.version),
            dimension=dimension,
        )
        if result.error is None:
            return Feedback()
        return self._refused(result.error)

    async def _list_choices(
        self, press: Press, menu: Action, dimension: str | None = None
    ) -> Feedback:
        """A menu as a numbered list in the card's thread; the number written back chooses."""
        check, options = await self._cases.menu_choices(
            press.case_id,
            menu,
            press.actor,
            press.where,
            Versions(card=press.version),
            dimension=dimension,
        )
        if check.error is not None:
            await self._refresh_if_stale(press, check.error)
            return await self._tell(press, self._refused(check.error))
        if not options:
            return await self._tell(press, Feedback(BAD_CHOICE, alert=True))
        # A template's text follows its line: the choice is what gets posted.
        lines = [
            f"{n}. {self._texts.option_label(option)}"
            + (f"\n   «{option['preview']}»" if option.get("preview") else "")
            for n, option in enumerate(options, 1)
        ]
        pending = json.dumps({"action": menu.value, "options": options})
        await self._cases.remember(_menu_key(press.where, press.case_id), pending)
        listed = notice_view("ui.matrix_menu", case_id=press.case_id, choices="\n".join(lines))
        return await self._tell(press, Feedback(listed))

    async def _ask_in_thread(self, press: Press, action: Action) -> Feedback:
        """A draft's text or an escalation's reason asked for in the card's thread (Matrix
        📝, ⏫): checked like the action now, carried out by the presser's next message there
        (`prompted`)."""
        check = await self._cases.check(
            press.case_id, action, press.actor, press.where, Versions(card=press.version)
        )
        if check.error is not None:
            await self._refresh_if_stale(press, check.error)
            return await self._tell(press, self._refused(check.error))
        asked = json.dumps({"action": action.value, "at": self._cases.now().isoformat()})
        await self._cases.remember(_prompt_key(press.where, press.case_id, press.actor), asked)
        key = THREAD_PROMPTS[action]
        return await self._tell(press, Feedback(notice_view(key, case_id=press.case_id)))

    async def prompted(self, reply: Reply) -> bool:
        """Text written in a card's thread by a person the bot asked for it there (📝, ⏫):
        the action asked for, once. False when nothing was asked of them for this case here
        (or too long ago): the message is conversation."""
        key = _prompt_key(reply.where, reply.to.case_id, reply.actor)
        stored = await self._cases.recall(key)
        asked = json.loads(stored) if stored else None
        if not asked:
            return False
        await self._cases.remember(key, "null")  # one answer per prompt
        at = datetime.fromisoformat(asked["at"])
        if self._cases.now() - at > PROMPT_PATIENCE:
            return False
        return await self.reply(replace(reply, action=Action(asked["action"])))

    async def choose(self, choice: Choice) -> bool:
        """A numbered choice from the list last shown for this case here. False when no list
        is pending: the number was not for the bot."""
        key = _menu_key(choice.where, choice.case_id)
        pending = await self._cases.recall(key)
        if pending is None:
            return False
        listed = json.loads(pending)
        submenu = _submenu_of(listed, choice.number)
        if submenu is not None:  # a dimension of «Коды ▸»: its codes are listed next
            menu, dimension = parse_menu(submenu)
            if menu is not None:
                await self._list_choices(_listing(choice), menu, dimension)
                return True
        request = _menu_request(listed, choice.number)
        if request is None:
            await self._send(choice.where, choice.answer, BAD_CHOICE)
            return True
        await self._cases.remember(key, "null")  # one choice per list
        result = await self._cases.act(choice.case_id, request, choice.actor, choice.where)
        if result.error is not None:
            await self._send(
                choice.where, choice.answer, refusal_view(result.error, self._directory)
            )
        return True

    async def _outcome(self, press: Press, action: Action, result: ActResult) -> Feedback:
        if result.error is None:
            done = Feedback(notice_view("ui.done", action=action.value))
            # A reaction needs no "done": the card it sits under changes.
            return done if press.answer is None else Feedback()
        await self._refresh_if_stale(press, result.error)
        return await self._tell(press, self._refused(result.error))

    async def _refresh_if_stale(self, press: Press, error: DomainError) -> None:
        """A reaction on a card the room shows in an older version: redraw it there. Usually
        the change that made it old is redrawing it anyway; this also covers a card edit the
        sync loop never saw (a gap in the room's timeline), so "press again" always works."""
        stale_card = isinstance(error, StaleCard) and not isinstance(error, StaleDraft)
        if stale_card and press.on is RefKind.CARD and press.controls is Controls.REACTIONS:
            await self._cases.open_menu(
                press.case_id, None, press.actor, press.where, nonce=f"stale:{press.nonce}"
            )

    async def forged_button(
        self, actor: Actor, pressed: str, case_id: int | None = None
    ) -> Feedback:
        """A press with data no button of ours carries (an action a card or draft does not
        offer that way, an argument where none belongs, a menu that is none, or no data we
        can read at all): refused, and audited as the forgery it is."""
        await self._cases.deny(case_id, actor, pressed or BUTTON, FORGED)
        return Feedback(BAD_BUTTON, alert=True)

    async def _forged(self, press: Press) -> Feedback:
        return await self.forged_button(press.actor, press.action, press.case_id)

    def _refused(self, error: DomainError) -> Feedback:
        """A refused press: an alert, except for a stale card, which has just been redrawn."""
        return Feedback(
            refusal_view(error, self._directory), alert=not isinstance(error, StaleCard)
        )

    async def _tell(self, press: Press, feedback: Feedback) -> Feedback:
        """Say a press's feedback in the chat when the transport has no toast for it."""
        if press.answer is not None and feedback.notice is not None:
            await self._send(press.where, press.answer, feedback.notice)
        return feedback

    # --- replies --------------------------------------------------------------------------

    async def reply(self, reply: Reply) -> bool:
        """Text that carries out an action on a case. False when it was not for the bot (a
        reply to something that is no card or prompt: conversation, not work)."""
        to = reply.to
        action = reply.action
        if action in CODING_ACTIONS:
            assert action is not None
            return await self._coding(reply, action)
        if action is None:
            implied = Action.DRAFT if to.kind is RefKind.CARD else to.action
            if implied not in TEXT_FIELD:
                return False
            action = implied
            if action is Action.DRAFT and LINK.match(reply.text):
                # A bare link in reply to an approved card: where the answer was published.
                case = await self._cases.get(to.case_id)
                if case is not None and case.state is CaseState.APPROVED:
                    action = Action.MARK_PUBLISHED
        request = _text_request(action, reply.text)
        if to.kind in (RefKind.PROMPT, RefKind.DRAFT) and action in REVIEW_ACTIONS:
            # A note written for the draft version the prompt asked about (or in the thread of
            # that very draft), and no other.
            request = replace(request, draft_version=to.version)
        elif action in (Action.REQUEST_CHANGES, Action.REJECT):
            # "!note" ("!reject") in a card's thread: for the draft version ✏️ (❌) was put
            # under, if any.
            key = _note_key(reply.where, to.case_id, action)
            noted = await self._cases.recall(key)
            if noted and noted.isdigit():
                request = replace(request, draft_version=int(noted))
                await self._cases.remember(key, "")  # one note per ✏️
        result = await self._cases.act(to.case_id, request, reply.actor, reply.where)
        buttons = reply.controls is Controls.BUTTONS
        view: View | None
        # An answer about a drill case is marked DRILL like every other message about it.
        drill = {"drill": True} if result.case is not None and result.case.drill else {}
        if result.error is not None:
            view = refusal_view(result.error, self._directory, name_the_right=buttons)
        elif action in WRITES_DRAFT and result.case and result.case.latest_draft:
            version = result.case.latest_draft.version
            view = notice_view("ui.draft_sent", case_id=to.case_id, version=version, **drill)
        else:
            view = notice_view("ui.done", action=action.value, **drill) if buttons else None
        if view is not None:
            await self._send(reply.where, reply.answer, view)
        return True

    async def _coding(self, reply: Reply, action: Action) -> bool:
        """ "!code topic 3", "!priority high", "!assign @user:server" (or a number) in a
        card's thread. Without what to choose, the choices are listed as the menu's reaction
        lists them; the number written back chooses."""
        words = reply.text.split()
        listing = _listing(reply)
        codes = self._cases.codes
        request: ActionRequest | None = None
        if action is Action.SET_CODE:
            if not words:
                await self._list_choices(listing, action)
                return True
            dimension = words[0].lower()
            if len(words) == 1:
                await self._list_choices(listing, action, dimension)
                return True
            case = await self._cases.get(reply.to.case_id)
            offered = codes.codes(dimension, case.department) if codes and case else []
            chosen = words[1].lower()
            if chosen.isdigit() and 1 <= int(chosen) <= len(offered):
                code = offered[int(chosen) - 1][0]
            else:
                code = f"{dimension}:{chosen}"
            request = ActionRequest(action, code=code)
        elif action is Action.SET_PRIORITY:
            if not words:
                await self._list_choices(listing, action)
                return True
            case = await self._cases.get(reply.to.case_id)
            target = _priority_named(words[0], case.priority if case else None)
            request = ActionRequest(action, priority=target) if target else None
        else:
            if not words:
                await self._list_choices(listing, action)
                return True
            case = await self._cases.get(reply.to.case_id)
            request = ActionRequest(action, assignee=self._colleague(words[0], reply, case))
        if request is None:
            await self._send(reply.where, reply.answer, BAD_CHOICE)
            return True
        result = await self._cases.act(reply.to.case_id, request, reply.actor, reply.where)
        if result.error is not None:
            view = refusal_view(result.error, self._directory)
            await self._send(reply.where, reply.answer, view)
        return True

    def _colleague(self, named: str, reply: Reply, case: Case | None) -> str:
        """A staff id from how a person named a colleague: a transport's user id (a Matrix
        id), a number of the list "!assign" shows, or a staff id as the config spells it."""
        if named.startswith("@") and reply.where.transport == "matrix":
            return self._directory.by_matrix(named).id
        if named.isdigit() and case is not None:
            listed = [
                staff_id
                for staff_id, _ in colleagues(self._directory, case.department)
                if staff_id != case.assignee
            ]
            if 1 <= int(named) <= len(listed):
                return listed[int(named) - 1]
        return named

    # --- commands -------------------------------------------------------------------------

    async def command(self, command: Command) -> bool:
        """Answer a command; False when the name is no command of ours. A command from a chat
        that is not a work chat (a public discussion group, a citizen's private chat) gets no
        answer at all: it would tell strangers who is on duty, or what the bot can do."""
        if command.name not in COMMANDS:
            return False
        if not self._may_answer_here(command):
            await self._ignored(command)
            return True
        view = await self._command_view(command)
        if view is None:
            return False
        await self._send(command.where, command.answer, view)
        return True

    def _may_answer_here(self, command: Command) -> bool:
        """Configured work chats, and private chats with staff. /whoami and /ids also answer
        anyone in a private chat (their own id) and staff in any group (how an administrator
        learns a new group's id); a stranger's in a group not configured stays unanswered."""
        if command.name in ID_COMMANDS and (command.private or command.actor.is_staff):
            return True
        if command.private:
            return command.actor.is_staff
        return self._directory.is_work_chat(command.where.transport, command.where.chat)

    async def _ignored(self, command: Command) -> None:
        """An ignored command is audited once per chat: enough to see the bot was probed
        there, and a flood of commands cannot flood the audit trail."""
        where, actor = command.where, command.actor
        payload = {
            "command": command.name,
            "reason": NOT_A_WORK_CHAT,
            "transport": where.transport,
            "chat": where.chat,
            "staff": actor.is_staff,
        }
        event = Event(None, self._cases.now(), actor.id, EventKind.DENIED, None, None, payload)
        key = f"{where.transport}.ignored_commands:{where.chat}"
        if await self._cases.audit_once(key, event):
            log.warning("ignored /%s in %s chat %s", command.name, where.transport, where.chat)

    async def _command_view(self, command: Command) -> View | None:
        answers, actor, args = self._answers, command.actor, command.args.strip()
        match command.name:
            case "help":
                return answers.help()
            case "duty":
                return answers.duty()
            case "whoami" | "ids":
                if not command.private and not actor.is_staff:
                    return notice_view("ui.not_staff")  # ids of a work chat are staff's
                ids = _chat_ids(command)
                return answers.whoami(actor, ids) if command.name == "whoami" else answers.ids(ids)
            case "status":
                return await answers.status(actor, self._department_here(command))
            case "digest":
                return await answers.digest(actor)
            case "case":
                words = args.split(maxsplit=1)
                number = case_number(words[0] if words else None)
                return await answers.case(actor, number, self._department_here(command))
            case "negative":
                return await answers.negative(actor, args)
            case "notnegative":
                return await answers.not_negative(actor, args)
            case "official":
                words = args.split()
                number = case_number(words[0] if words else None)
                off = len(words) > 1 and words[1].casefold() in OFF_WORDS
                return await answers.official(actor, number, not off)
            case "merge":
                words = args.split()
                keep, gone = (case_number(w) for w in [*words, "", ""][:2])
                return await answers.merge(actor, keep, gone)
            case "drill":
                return await answers.drill(actor, args)
            case "split":
                words = args.split()
                return await answers.split(actor, case_number(words[0] if words else None))
            case "forget":
                words = args.split()
                return await answers.forget(actor, case_number(words[0] if words else None))
            case "escalate":
                first, _, rest = args.partition(" ")
                case_id, reason = case_number(first), rest.strip()
                about = command.about
                if case_id is None and about is not None and about.kind is RefKind.CARD:
                    # /escalate in reply to a card or in its thread: the card says which case.
                    case_id, reason = about.case_id, args
                return await answers.escalate(actor, case_id, reason)
        return None

    def _department_here(self, command: Command) -> str | None:
        """The department whose chat (or forum topic) a command was written in."""
        here = command.where
        return self._directory.department_at(here.transport, here.chat, here.thread)

    async def _send(self, where: Destination, answer: Answer, view: View) -> None:
        await self._cases.send(where, view, key=answer.key, reply_to_message=answer.under)


def _chat_ids(command: Command) -> ChatIds:
    where = command.where
    return ChatIds(
        where.transport,
        None if command.private else where.chat,  # a private chat's id is the person's
        where.thread or command.thread_root,
        command.person,
    )


# --- the adapters' side -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatServices:
    """What a chat adapter is given when it starts (no globals)."""

    inbound: Inbound
    cases: CaseService
    directory: Directory
    texts: Texts
    clock: Clock
    # Where citizens' messages go (Telegram comments and DMs); None when nothing takes them.
    intake: MentionIntake | None = None
    chats: ChatLog | None = None  # the groups and rooms updates come from (`otklik chats`)
    # Where what is wrong with the configured chats is said at start (bot/chat/checks.py).
    problems: ChatProblems | None = None


class ChatAdapter(Protocol):
    """One messenger: translates its library's updates into inbound events and delivers the
    outbox through `transport`. handlers/app.py starts and stops a list of these."""

    @property
    def name(self) -> str:
        """The transport's name in destinations and the outbox ("telegram", "matrix")."""
        ...

    @property
    def transport(self) -> Transport: ...

    async def start(self, services: ChatServices) -> None: ...

    async def stop(self) -> None: ...


# Actions written as "!code", "!priority", "!assign" in a card's thread.
CODING_ACTIONS = frozenset({Action.SET_CODE, Action.SET_PRIORITY, Action.ASSIGN})
# "!priority up" / "выше": one step, as the lead says it.
_PRIORITY_STEPS = {"up": 1, "выше": 1, "+": 1, "down": -1, "ниже": -1, "-": -1}
_PRIORITY_WORDS = {
    "low": Priority.LOW,
    "низкий": Priority.LOW,
    "normal": Priority.NORMAL,
    "обычный": Priority.NORMAL,
    "high": Priority.HIGH,
    "высокий": Priority.HIGH,
    "critical": Priority.CRITICAL,
    "критический": Priority.CRITICAL,
}


def _priority_named(word: str, current: Priority | None) -> Priority | None:
    word = word.casefold()
    if word in _PRIORITY_WORDS:
        return _PRIORITY_WORDS[word]
    step = _PRIORITY_STEPS.get(word)
    if step is None or current is None:
        return None
    ranked = sorted(Priority, key=lambda p: p.rank)
    index = current.rank + step
    return ranked[index] if 0 <= index < len(ranked) else None


def parse_menu(name: str) -> tuple[Action | None, str | None]:
    """A menu's name as a button or a list carries it: an Action value, or
    "<action>.<dimension>" for «Коды ▸»'s second level. (None, None) for the main buttons
    (""), and (None, …) for a name that is no menu."""
    if not name:
        return None, None
    base, dot, dimension = name.partition(SUBMENU_SEPARATOR)
    try:
        menu = Action(base)
    except ValueError:
        return None, None
    if menu not in MENU_ACTIONS or (dot and (menu is not Action.SET_CODE or not dimension)):
        return None, None
    return menu, dimension or None


def choice_request(
    action: Action, arg: str, expected_version: int | None = None
) -> ActionRequest | None:
    """The request a menu choice stands for; None when the argument fits no such choice."""
    try:
        if action is Action.SET_CODE:
            code = code_of_arg(arg)
            if code is None:
                return None
            return ActionRequest(action, code=code, expected_version=expected_version)
        if action is Action.SET_PRIORITY:
            return ActionRequest(action, priority=Priority(arg), expected_version=expected_version)
        if action is Action.ASSIGN:
            return ActionRequest(action, assignee=arg, expected_version=expected_version)
        if action is Action.USE_TEMPLATE:
            return ActionRequest(action, template_id=arg, expected_version=expected_version)
        if action is Action.REROUTE:
            return ActionRequest(action, department=arg, expected_version=expected_version)
        if action is Action.CLOSE:
            return ActionRequest(action, outcome=Outcome(arg), expected_version=expected_version)
        if action is Action.IGNORE:
            return ActionRequest(
                action, reason=IgnoreReason(arg), expected_version=expected_version
            )
        if action is Action.WAIT_FOR_AUTHOR:
            return ActionRequest(
                action, wait_reason=WaitReason(arg), expected_version=expected_version
            )
    except ValueError:
        return None
    return None


def _text_request(action: Action, text: str) -> ActionRequest:
    """The request for text written for an action, bounded so a huge message is refused by
    the lifecycle's own limit rather than carried around."""
    bounded = text[: MAX_DRAFT_TEXT + 1]
    if action is Action.MARK_PUBLISHED:
        return ActionRequest(action, url=text or None)
    if action is Action.ESCALATE:
        return ActionRequest(action, note=bounded or None)
    if action in (Action.REQUEST_CHANGES, Action.REJECT):
        return ActionRequest(action, note=bounded)
    return ActionRequest(action, text=bounded)


def _note_key(where: Destination, case_id: int, action: Action = Action.REQUEST_CHANGES) -> str:
    """The draft version a reviewer asked to change (✏️) or to reject (❌) in a chat,
    awaiting their note or reason."""
    kind = "reject" if action is Action.REJECT else "note"
    return f"{where.transport}.{kind}:{where.chat}:{case_id}"


def _prompt_key(where: Destination, case_id: int, actor: Actor) -> str:
    """What the bot asked this person to write in a case's thread in a chat (📝, ⏫)."""
    return f"{where.transport}.prompt:{where.chat}:{case_id}:{actor.id}"


def _menu_key(where: Destination, case_id: int) -> str:
    """The list of choices last shown for a case in a chat (kept across restarts)."""
    return f"{where.transport}.menu:{where.chat}:{case_id}"


def _submenu_of(pending: dict[str, Any] | None, number: int) -> str | None:
    """The submenu a numbered choice opens, if it opens one."""
    options = (pending or {}).get("options") or []
    if not 1 <= number <= len(options):
        return None
    submenu = options[number - 1].get("menu")
    return str(submenu) if submenu else None


def _listing(said: Choice | Reply) -> Press:
    """A list asked for by a number or a command in a card's thread, as the press of a menu
    reaction would ask for it (answered in the same thread)."""
    case_id = said.case_id if isinstance(said, Choice) else said.to.case_id
    return Press(
        said.where,
        said.actor,
        case_id,
        RefKind.CARD,
        "",
        nonce=said.answer.key,
        controls=Controls.REACTIONS,
        answer=said.answer,
    )


def _menu_request(pending: dict[str, Any] | None, number: int) -> ActionRequest | None:
    """The action a numbered choice stands for."""
    if not pending:
        return None
    options = pending.get("options") or []
    if not 1 <= number <= len(options):
        return None
    option = options[number - 1]
    return choice_request(Action(option.get("action") or pending["action"]), str(option["arg"]))
