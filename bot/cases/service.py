"""Case services: the only code that owns transactions. Transports and jobs call these.

One call, one unit of work: load, decide with the pure state machine, write the case, its
events and the messages it causes, commit once, then wake the outbox worker. The service
composes the parts that do the work: grouping new mentions into cases (bot/cases/grouping.py),
author cards (authors.py), the messages a change causes (cards.py), prompts and menus
(prompts.py); refusals and their audit trail are in outcomes.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.cases import lifecycle, publication
from bot.cases.authors import AuthorLabels, author_of, count_mention
from bot.cases.cards import Cards, bot_reply_of, colleagues, first_mention
from bot.cases.codes import CodeBook, dimension_of
from bot.cases.corrections import Dismissal, IntakePlan, Promotion, correct_sentiment
from bot.cases.deadlines import DEFAULT_FOLLOW_UP, SlaPlanner, arm_cases
from bot.cases.grouping import CaseOpener, CaseOpening, IntakeResult
from bot.cases.lifecycle import (
    ActionRequest,
    DomainError,
    InvalidInput,
    NoRight,
    StaleCard,
    transition,
)
from bot.cases.outcomes import (
    ActResult,
    NotPublishable,
    UnknownCase,
    WrongChat,
    audit_refusal,
    audited,
)
from bot.cases.progress import PublicationProgress
from bot.cases.prompts import NO_VERSIONS, Prompts, Versions
from bot.cases.replies import ReplyCatalog
from bot.cases.split import split_mention
from bot.clock import Clock
from bot.messages.delivery import EXTERNAL_REF
from bot.messages.outbox import PRESS_URGENCY, Destination, OutboxItem, OutboxOp
from bot.messages.views import MenuOption, View, card_ref, notice_view
from bot.model import (
    MAX_MENTION_TEXT,
    SYSTEM_ACTOR,
    Action,
    Author,
    AuthorLabel,
    Case,
    CaseState,
    DeptRole,
    DraftKind,
    Event,
    EventKind,
    IgnoreReason,
    Mention,
    Sentiment,
    SentimentSource,
    WaitReason,
)
from bot.ports import (
    ConcurrentUpdate,
    DepartmentStatus,
    UnitOfWork,
    UnitOfWorkFactory,
)
from bot.settings.approval_rules import ApprovalConfig
from bot.settings.routing_rules import RoutingConfig, RoutingDefault
from bot.staff.directory import Directory
from bot.staff.rights import Actor, may_correct_sentiment

# /status counts a case "at risk" when its current deadline is this close.
AT_RISK_WITHIN = timedelta(minutes=30)
# Answers to commands go before queued cards: the person is waiting for them.
ANSWER_URGENCY = PRESS_URGENCY


@dataclass(frozen=True, slots=True)
class CaseThread:
    """Everything about one case, for /case N."""

    case: Case
    mentions: list[Mention]
    author: Author | None
    events: list[Event]


class CaseService:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        directory: Directory,
        tz: ZoneInfo,
        on_outbox: Callable[[], None] = lambda: None,
        replies: ReplyCatalog | None = None,
        coordination: str = "",
        policy: RoutingConfig | None = None,
        sla: SlaPlanner | None = None,
        on_timers: Callable[[datetime], None] = lambda _due: None,
        codes: CodeBook | None = None,
        approval: ApprovalConfig | None = None,
    ) -> None:
        # Approval tiers (approval.yaml); without it one tier, the department's approver.
        self._approval = approval or ApprovalConfig()
        self._sla = sla  # None: no SLA timers (tests of other parts)
        self._on_timers = on_timers  # tells the scheduler about a timer due at that moment
        # Grouping and author-label thresholds from the playbook (defaults without one).
        policy = policy or RoutingConfig(
            default=RoutingDefault(department=coordination or "coordination")
        )
        self._default_department = policy.default.department
        self._replies = replies
        self._uow = uow_factory
        self._clock = clock
        self._directory = directory
        self._tz = tz
        self._on_outbox = on_outbox  # wakes the delivery worker after a commit
        self._cards = Cards(directory, tz, clock, coordination, codes)
        self._authors = AuthorLabels(uow_factory, clock, policy.author_labels)
        self._opener = CaseOpener(policy.grouping, self._cards, self._cases_changed)
        self._prompts = Prompts(
            uow_factory, clock, directory, tz, self._cards, replies, on_outbox, self.misplaced
        )
        self._audit_once_lock = asyncio.Lock()  # two commands at once still audit once
        # A cluster's answer on its card as it goes out: fed by the outbox worker's hook.
        self.progress = PublicationProgress(uow_factory, clock, self._cards, on_outbox)

    def publishable(self, mention: Mention) -> bool:
        """Whether the bot itself can post an answer where the mention was written."""
        return self._cards.publishable(mention)

    def wake_outbox(self) -> None:
        """After a caller's own transaction queued messages (see open_many)."""
        self._on_outbox()

    # --- intake -------------------------------------------------------------------------

    async def intake(
        self,
        mention: Mention,
        opening: CaseOpening | None = None,
        *,
        plan: IntakePlan | None = None,
    ) -> IntakeResult:
        """Store a mention (once per source and external id) on its author's card; open a
        case if asked, or join the open case it belongs to. With `plan`, intake decides inside
        the transaction, knowing the author's labels (routing rules on author_labels, official
        authors), and `opening` is not used."""
        for attempt in (1, 2):
            try:
                return await self._intake_once(mention, opening, plan)
            except ConcurrentUpdate:  # the related case changed meanwhile: decide again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _intake_once(
        self, mention: Mention, opening: CaseOpening | None, plan: IntakePlan | None
    ) -> IntakeResult:
        now = self._clock.now()
        mention = replace(
            mention,
            text=mention.text[:MAX_MENTION_TEXT],
            sentiment=mention.sentiment or Sentiment.NEUTRAL,  # intake normally classified it
        )
        async with self._uow() as uow:
            existing = await uow.mentions.get_by_external(mention.source, mention.external_id)
            if existing is not None:
                return IntakeResult(existing, None, duplicate=True)
            author = await author_of(uow, mention, now)
            if plan is not None:  # the labels the card has as the mention arrives
                mention, opening = plan(mention, author.labels)
            author = await count_mention(uow, author, mention, now)
            stored = await uow.mentions.add(replace(mention, author_id=author.id))
            if stored is None:  # a concurrent intake stored it first
                return IntakeResult(None, None, duplicate=True)
            author = await self._authors.relabel(uow, author, now)
            case = None
            if opening is not None:
                (case,) = await self.open_many(uow, [(stored, opening)], now)
            await uow.commit()
        if case is not None:
            self._on_outbox()
            (case,) = await self.resume_for_authors([(stored, case)])
        return IntakeResult(stored, case)

    async def promote(
        self, mention_id: int | None, url: str | None, actor: Actor, plan: IntakePlan
    ) -> Promotion | DomainError | None:
        """/negative: staff say a stored mention that opened no case is negative. It becomes
        NEGATIVE (SentimentSource.STAFF) and a case opens or joins as at intake, with its card.
        A mention that has a case gives that case. None: no such mention."""
        if not may_correct_sentiment(actor):
            return NoRight(action="negative", department="*")
        for attempt in (1, 2):
            try:
                return await self._promote_once(mention_id, url, actor, plan)
            except ConcurrentUpdate:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _promote_once(
        self, mention_id: int | None, url: str | None, actor: Actor, plan: IntakePlan
    ) -> Promotion | None:
        now = self._clock.now()
        async with self._uow() as uow:
            if mention_id is not None:
                mention = await uow.mentions.get(mention_id)
            else:
                mention = await uow.mentions.find_by_url(url) if url else None
            if mention is None:
                return None
            if mention.case_id is not None:
                return Promotion(await uow.cases.get(mention.case_id))
            author = await uow.authors.get(mention.author_id) if mention.author_id else None
            (mention,) = await correct_sentiment(
                uow, [mention], Sentiment.NEGATIVE, actor.id, now, self._authors
            )
            mention, opening = plan(mention, author.labels if author else frozenset())
            if opening is None:  # a plan gives a negative mention a case; be safe all the same
                opening = CaseOpening(department=self._default_department)
            (case,) = await self.open_many(uow, [(mention, opening)], now)
            await uow.events.append(
                [
                    Event(
                        case.id,
                        now,
                        actor.id,
                        EventKind.MARKED_NEGATIVE,
                        None,
                        None,
                        {"mention_id": mention.id},
                    )
                ]
            )
            await uow.commit()
        self._on_outbox()
        return Promotion(case, opened=True)

    async def dismiss(self, mention_id: int, actor: Actor) -> Dismissal | DomainError | None:
        """ "Не негатив" on the triage list: a mention with no case is not negative, as staff
        say (NEUTRAL, SentimentSource.STAFF, who and when). A mention staff decided already,
        or one that has a case by now, is left as it is. None: no such mention."""
        if not may_correct_sentiment(actor):
            return NoRight(action="not_negative", department="*")
        now = self._clock.now()
        async with self._uow() as uow:
            mention = await uow.mentions.get(mention_id)
            if mention is None:
                return None
            if mention.case_id is not None or mention.sentiment_source is SentimentSource.STAFF:
                return Dismissal(mention, changed=False)  # a second tap, or decided otherwise
            (mention,) = await correct_sentiment(
                uow, [mention], Sentiment.NEUTRAL, actor.id, now, self._authors
            )
            await uow.commit()
        return Dismissal(mention)

    async def mark_official(
        self, case_id: int, official: bool, actor: Actor
    ) -> Author | DomainError | None:
        """/official N [off]: the author of case N speaks officially, or no longer does."""
        return await self._authors.mark_official(case_id, official, actor)

    async def merge_authors(self, keep: int, gone: int, actor: Actor) -> DomainError | None:
        """An administrator's merge of two author cards (the same person on two channels)."""
        return await self._authors.merge(keep, gone, actor)

    async def split(self, mention_id: int, actor: Actor) -> Case | DomainError:
        """A wrongly joined mention becomes a case of its own, with its card (bot/cases/
        split.py). Returns the new case."""
        now = self._clock.now()
        async with self._uow() as uow:
            result = await split_mention(uow, self._cards, mention_id, actor, now)
            if not isinstance(result, DomainError):
                await self._cases_changed(uow, list(result), now)
            await uow.commit()  # a refusal's audit event too
        if isinstance(result, DomainError):
            return result
        self._on_outbox()
        return result[1]

    def prepare_grouping(self, texts: Sequence[str]) -> None:
        """CPU work of grouping these texts, for a worker thread (bot/intake/bulk.py)."""
        self._opener.prepare(texts)

    async def open_many(
        self, uow: UnitOfWork, openings: Sequence[tuple[Mention, CaseOpening]], now: datetime
    ) -> list[Case]:
        """Open a case for each stored mention, or join it to the open case it belongs to, in
        order and inside the caller's transaction (bot/cases/grouping.py). Returns each
        mention's case as the batch leaves it."""
        return await self._opener.open_many(uow, openings, now)

    async def _cases_changed(
        self,
        uow: UnitOfWork,
        cases: Sequence[Case],
        now: datetime,
        action: Action | None = None,
    ) -> None:
        """Every case opened or changed in a transaction passes here once: the SLA engine
        arms its timers. `action`: the person's action that changed them, if any."""
        if self._sla is None or not cases:
            return
        earliest = await arm_cases(uow, self._sla, cases, now, action)
        if earliest is not None:
            # Before the commit: a wake-up for a rolled-back timer finds nothing, harmlessly.
            self._on_timers(earliest)

    async def resume_for_authors(self, joined: Sequence[tuple[Mention, Case]]) -> list[Case]:
        """After mentions joined cases (committed): a case waiting for its author whose author
        wrote one of them resumes its clock. Returns the cases as they now stand."""
        result: list[Case] = []
        for mention, case in joined:
            if case.waiting_since is not None and case.id is not None:
                case = (await self.author_answered(case.id, mention.author_id)).case or case
            result.append(case)
        return result

    async def author_answered(self, case_id: int, author_id: int | None = None) -> ActResult:
        """The author of a case waiting for them wrote again (a new mention joined it, or a
        person pressed "Author replied"): the SLA clock resumes. Nothing happens otherwise.
        `author_id`: who wrote; someone else writing under the same post does not count."""
        case = await self.get(case_id)
        if case is None or case.waiting_since is None or not case.state.is_open:
            return ActResult(case)
        if author_id is not None:
            async with self._uow() as uow:
                first, _ = await first_mention(uow, case)
            if first.author_id != author_id:
                return ActResult(case)
        otklik = Actor(
            SYSTEM_ACTOR,
            SYSTEM_ACTOR,
            dept_roles={case.department: frozenset({DeptRole.SPECIALIST})},
        )
        return await self.act(case_id, ActionRequest(Action.AUTHOR_REPLIED), otklik)

    # --- actions ------------------------------------------------------------------------

    async def act(
        self,
        case_id: int,
        request: ActionRequest,
        actor: Actor,
        where: Destination | None = None,
    ) -> ActResult:
        """Apply one person's action. Refusals change nothing; refusals for rights, stale
        versions and the wrong chat are audited. `where`: the chat a press came from, which
        must be one the case is worked in; None for commands and jobs."""
        for attempt in (1, 2):
            try:
                return await self._act_once(case_id, request, actor, where)
            except ConcurrentUpdate:
                if attempt == 2 or request.expected_version is not None:
                    # The press raced another one on the same card version: report it stale.
                    current = await self.get(case_id)
                    actual = current.version if current else None
                    stale = StaleCard(expected=request.expected_version, actual=actual)
                    return ActResult(current, error=stale)
        raise AssertionError("unreachable")

    async def _act_once(
        self, case_id: int, request: ActionRequest, actor: Actor, where: Destination | None
    ) -> ActResult:
        now = self._clock.now()
        async with self._uow() as uow:
            case = await uow.cases.get(case_id)
            if case is None:
                await audit_refusal(uow, None, actor, request.action, now, UnknownCase.code)
                await uow.commit()
                return ActResult(None, error=UnknownCase(case_id=case_id))
            # Who, where and which version first: nothing the playbook says about the request
            # (a template, a department, where to publish) is told to someone who may not ask.
            refusal = self.misplaced(case, where) or lifecycle.check(case, request, actor)
            if refusal is not None:
                if audited(refusal):
                    await audit_refusal(uow, case, actor, request.action, now, refusal.code)
                    await uow.commit()
                return ActResult(case, error=refusal)
            mentions = await uow.mentions.for_case(case_id)
            mention = mentions[0]
            author = await uow.authors.get(mention.author_id) if mention.author_id else None
            if request.action is Action.MARK_PUBLISHED:
                # What a mark covers: the mentions there are now, not one that joins later.
                request = replace(request, by_hand_upto=max(m.id or 0 for m in mentions))
            try:
                request = self._complete(case, mention, author, request, now)
                result = transition(case, request, actor, now)
            except DomainError as error:
                return ActResult(case, error=error)
            result, announced = self._publish_at_once(result, request, actor, mention, author, now)
            new_case = self._answer_round(case, result.case, announced, mentions)
            ended_wait = case.waiting_since is not None and new_case.waiting_since is None
            if ended_wait and self._sla is not None:
                # The author replied, or a follow-up showed the result: the paused time is
                # given back.
                new_case = self._sla.resumed(case, new_case, now)
            if request.action is Action.REOPEN and self._sla is not None:
                new_case = self._sla.reopened(new_case, now)
            events = result.events
            if request.action is Action.SET_PRIORITY and self._sla is not None:
                # The SLA policy follows the priority: deadlines not yet met are counted again
                # from the case's opening on the new policy; the event says which.
                new_case = self._sla.reprioritised(new_case, now)
                events = tuple(_with_deadlines(e, new_case) for e in events)
            await uow.cases.save(new_case, expected_version=case.version)
            if new_case.answers_delivered != case.answers_delivered:  # a new answer: from 0
                await uow.cases.record_answers_delivered(case_id, new_case.answers_delivered)
            await uow.events.append(events)
            if new_case.department != case.department:  # similar mentions find it there now
                await uow.links.move_bands(case_id, new_case.department)
            if request.action is Action.IGNORE and request.reason is IgnoreReason.NOT_NEGATIVE:
                # Staff say Otklik was wrong: the mentions stop counting as negative (crisis
                # counts, the author's critic label) and become training examples.
                wrong = [
                    m
                    for m in await uow.mentions.for_case(case_id)
                    if m.sentiment is not Sentiment.POSITIVE
                ]
                await correct_sentiment(uow, wrong, Sentiment.NEUTRAL, actor.id, now, self._authors)
                if author is not None and author.id is not None:
                    author = await uow.authors.get(author.id)
            if request.reason is IgnoreReason.DO_NOT_ENGAGE and author is not None:
                # Staff decided: the author's card says so from now on, in every case.
                labels = author.labels | {AuthorLabel.DO_NOT_ENGAGE}
                await uow.authors.save(replace(author, labels=labels))
            # What a person did goes ahead of new cards in the chats' queues.
            bonus = 0 if actor.id == SYSTEM_ACTOR else PRESS_URGENCY
            await self._cards.announce(
                uow, case, new_case, announced, actor, mention, author, now, bonus
            )
            # An approval at a tier before the last readies no answer: an escalation chain
            # that stops on approve goes on until the last tier approves.
            done = request.action is not Action.APPROVE or new_case.state is CaseState.APPROVED
            chased = _chase_action(announced) if done else None
            await self._cases_changed(uow, [new_case], now, chased)
            await uow.commit()
        self._on_outbox()
        return ActResult(new_case, events)

    def _publish_at_once(
        self,
        result: lifecycle.Transition,
        request: ActionRequest,
        actor: Actor,
        mention: Mention,
        author: Author | None,
        now: datetime,
    ) -> tuple[lifecycle.Transition, ActionRequest]:
        """A template that needs no second person (ReplyCatalog.skips_review), chosen where
        the bot can post the answer itself: it is published in the same step, so a templated
        first reply takes two presses. Both changes are audited as their own events. The
        request the messages are queued for is returned with the outcome."""
        case = result.case
        if not (
            request.action is Action.USE_TEMPLATE
            and request.pre_approved
            and case.state is CaseState.APPROVED
            and self._cards.publishable(mention)
        ):
            return result, request
        try:
            publish = self._complete(case, mention, author, ActionRequest(Action.PUBLISH), now)
            published = transition(case, publish, actor, now)
        except DomainError:  # e.g. no right to publish: the approved answer waits on the card
            return result, request
        return lifecycle.Transition(published.case, result.events + published.events), publish

    def _answer_round(
        self, old: Case, new: Case, request: ActionRequest, mentions: Sequence[Mention]
    ) -> Case:
        """A new text published goes to every mention of the case (bot/cases/publication.py):
        the bot's replies and what waits for a person are counted from now. A correction that
        edits the bot's replies in place keeps the count; a drill publishes nothing."""
        if new.drill or old.state is CaseState.PUBLISHED or new.state is not CaseState.PUBLISHED:
            return new  # (MARK_PUBLISHED on a published case marks what waits: lifecycle)
        if request.action is Action.MARK_PUBLISHED:
            return publication.marked_round(new, mentions)
        if request.action is not Action.PUBLISH:
            return new
        approved = new.approved_draft
        corrected = approved is not None and approved.kind is DraftKind.CORRECTION
        if corrected and bot_reply_of(old) is not None:
            return new
        return publication.start_round(new, mentions, self._cards.publishable)

    def _complete(
        self,
        case: Case,
        mention: Mention,
        author: Author | None,
        request: ActionRequest,
        now: datetime,
    ) -> ActionRequest:
        """Fill in what only the playbook and the config know; refuse what they forbid."""
        action = request.action
        if action is Action.REROUTE and not self._directory.has_department(
            request.department or ""
        ):
            raise InvalidInput(field="department", limit=None)
        if action is Action.USE_TEMPLATE and request.text is None:
            rendered = (
                self._replies.render(request.template_id or "", case, mention, author)
                if self._replies
                else None
            )
            if rendered is None:
                raise InvalidInput(field="template_id", limit=None)
            request = replace(request, text=rendered.text, pre_approved=rendered.pre_approved)
        if action is Action.SET_CODE:
            # Only the playbook's codes, as offered in the case's department; one the case has
            # may always be removed (the playbook may have dropped it since).
            codes, code = self._cards.codes, request.code or ""
            if codes is None or (
                code not in case.codes and not codes.offered(code, case.department)
            ):
                raise InvalidInput(field="code", limit=None)
            request = replace(request, code_multiple=codes.multiple(dimension_of(code) or ""))
        if (
            action is Action.ASSIGN
            and request.assignee is not None
            and request.assignee not in dict(colleagues(self._directory, case.department))
        ):
            raise InvalidInput(field="assignee", limit=None)  # staff of the department only
        if action in (Action.DRAFT, Action.USE_TEMPLATE, Action.FOLLOW_UP, Action.CORRECT):
            # The chain is fixed on the draft now: a later change of priority or codes does
            # not move the goalposts of a review under way (the next version gets the new one).
            chain = self._approval.chain_for(case.department, case.priority, case.codes)
            request = replace(request, tiers=chain.tiers, template_skips=chain.template_skips)
        if action is Action.PUBLISH and not case.drill and not self._cards.publishable(mention):
            raise NotPublishable()
        approved = case.approved_draft
        answer = approved is not None and approved.kind is DraftKind.ANSWER
        publishes = action in (Action.PUBLISH, Action.MARK_PUBLISHED)
        if publishes and answer and request.follow_up_at is None:
            wait = (
                self._replies.follow_up_after(approved.template_id)
                if (self._replies and approved)
                else None
            )
            if wait is not None:
                request = replace(request, follow_up_at=now + wait)
        asks_again = action is Action.FOLLOW_UP_LATER or (
            action is Action.WAIT_FOR_AUTHOR and request.wait_reason is WaitReason.MOVED_TO_PRIVATE
        )
        if asks_again and request.follow_up_at is None:
            wait = self._sla.follow_up_after(case) if self._sla else DEFAULT_FOLLOW_UP
            request = replace(request, follow_up_at=now + wait)
        return request

    @property
    def codes(self) -> CodeBook | None:
        """The playbook's codes.yaml, for transports that parse "!code topic 3"."""
        return self._cards.codes

    def misplaced(self, case: Case, where: Destination | None) -> WrongChat | None:
        """A press from a chat that is neither the case's department chat nor the coordination
        chat: forged (a button carries only ids), and whatever it asked for would show the
        case where it does not belong."""
        if where is None:
            return None
        directory = self._directory
        if directory.in_chat_of(case.department, where) or directory.in_chat_of(
            directory.coordination, where
        ):
            return None
        return WrongChat()

    async def deny(
        self, case_id: int | None, actor: Actor, pressed: Action | str, reason: str
    ) -> None:
        """Audit a refusal decided before the service was asked to act: a press with data no
        button carries, a triage press without the right. On the case, when there is one."""
        async with self._uow() as uow:
            case = await uow.cases.get(case_id) if case_id is not None else None
            await audit_refusal(uow, case, actor, pressed, self._clock.now(), reason)
            await uow.commit()

    async def audit_once(self, key: str, event: Event) -> bool:
        """Append an event unless one was appended under this key before (an ignored command
        is recorded once per chat, not once per message). True when it was appended now."""
        async with self._audit_once_lock, self._uow() as uow:
            if await uow.kv.get(key) is not None:
                return False
            await uow.events.append([event])
            await uow.kv.set(key, event.at.isoformat())
            await uow.commit()
        return True

    # --- prompts and menus: a press that asks for more before acting --------------------

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
        prompt carries the action out. Checked like the action itself (lifecycle.check), for
        the card and draft versions the button was drawn for."""
        return await self._prompts.prompt(case_id, action, actor, where, nonce, versions)

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
        """Show a card's submenu (templates, departments, outcomes, reasons, codes) in one
        chat, or the main buttons again with menu=None."""
        return await self._prompts.open_menu(
            case_id, menu, actor, where, nonce, versions, dimension
        )

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
        return await self._prompts.menu_choices(case_id, menu, actor, where, versions, dimension)

    async def check(
        self,
        case_id: int,
        action: Action,
        actor: Actor,
        where: Destination | None = None,
        versions: Versions = NO_VERSIONS,
    ) -> ActResult:
        """Whether the action would be allowed now, before the person writes its text;
        checked and audited like the action (lifecycle.check)."""
        return await self._prompts.check(case_id, action, actor, where, versions)

    async def remember(self, key: str, value: str) -> None:
        """Small state a transport keeps across restarts (sync tokens, open menus)."""
        async with self._uow() as uow:
            await uow.kv.set(key, value)
            await uow.commit()

    async def remember_many(self, values: Mapping[str, str]) -> None:
        """Several of them at once, in one transaction."""
        async with self._uow() as uow:
            for key, value in values.items():
                await uow.kv.set(key, value)
            await uow.commit()

    async def recall(self, key: str) -> str | None:
        async with self._uow() as uow:
            return await uow.kv.get(key)

    # --- messages ---------------------------------------------------------------------

    async def send(
        self,
        where: Destination,
        view: View,
        key: str,
        reply_to_message: str | None = None,
    ) -> None:
        """Queue a message that is no case's card: answers to commands, notices. `key` makes a
        repeated request (a re-delivered update) send nothing twice."""
        async with self._uow() as uow:
            await uow.outbox.enqueue(
                [
                    OutboxItem(
                        transport=where.transport,
                        chat=where.chat,
                        thread=where.thread,
                        op=OutboxOp.REPLY if reply_to_message else OutboxOp.POST,
                        payload=view.copy(),
                        idempotency_key=f"{where.transport}:{where.chat}:{key}",
                        reply_to_key=(
                            f"{EXTERNAL_REF}{reply_to_message}" if reply_to_message else None
                        ),
                        urgency=ANSWER_URGENCY,
                        created_at=self._clock.now(),
                    )
                ]
            )
            await uow.commit()
        self._on_outbox()

    async def chat_busy(self, transport: str, chat: str) -> bool:
        """Whether messages to this chat are still waiting or in flight."""
        async with self._uow() as uow:
            return (await uow.outbox.backlog(transport)).get(chat, 0) > 0

    async def ref_of(self, transport: str, chat: str, message_id: str) -> str | None:
        """Our logical key for a message we sent (to read what a person replied to)."""
        async with self._uow() as uow:
            return await uow.refs.find(transport, chat, message_id)

    async def publication_refused(
        self, uow: UnitOfWork, item: OutboxItem, reason: str, now: datetime
    ) -> None:
        """The approved answer was refused for good where it was to be published (the VK
        comment deleted, the citizen not accepting messages): the department sees why under
        the card. Called by the outbox worker in the transaction that records the refusal."""
        if item.payload["view"] != "public_reply" or item.case_id is None:
            return
        case = await uow.cases.get(item.case_id)
        if case is None or case.id is None:
            return
        notice = notice_view("public.not_published", case_id=case.id, reason=reason)
        await uow.outbox.enqueue(
            self._cards.for_all(
                case.department,
                OutboxOp.REPLY,
                notice,
                f"not-published:{item.id}",
                case,
                now,
                reply_to=card_ref(case.id, case.department),
                urgency_bonus=PRESS_URGENCY,
            )
        )

    async def ensure_cards(self) -> int:
        """Post cards for open cases that have none on a running transport (e.g. Telegram was
        configured after cases arrived). Idempotent: keys match the ones intake uses."""
        async with self._uow() as uow:
            queued = await uow.outbox.enqueue(await self._cards.missing(uow, self._clock.now()))
            await uow.commit()
        if queued:
            self._on_outbox()
        return queued

    async def redraw_cards(self, case_ids: Sequence[int], reason: str) -> int:
        """Redraw these cases' cards in every chat of their department (after an erasure the
        chats' copies lose the erased data too). `reason` keeps the edits' keys new."""
        now = self._clock.now()
        async with self._uow() as uow:
            firsts = await uow.mentions.first_of_cases(list(case_ids))
            authors = await uow.authors.cards_of(
                sorted({m.author_id for m in firsts.values() if m.author_id})
            )
            items: list[OutboxItem] = []
            for case_id, first in sorted(firsts.items()):
                case = await uow.cases.get(case_id)
                if case is None:
                    continue
                author = authors.get(first.author_id or 0)
                view = self._cards.view(case, first, author)
                ref = card_ref(case_id, case.department)
                key = f"{ref}:edit:{reason}"
                items += self._cards.for_all(
                    case.department, OutboxOp.EDIT, view, ref, case, now, key
                )
            queued = await uow.outbox.enqueue(items)
            await uow.commit()
        if queued:
            self._on_outbox()
        return queued

    # --- reading ------------------------------------------------------------------------

    async def get(self, case_id: int) -> Case | None:
        async with self._uow() as uow:
            return await uow.cases.get(case_id)

    async def thread(self, case_id: int) -> CaseThread | None:
        async with self._uow() as uow:
            case = await uow.cases.get(case_id)
            if case is None:
                return None
            mentions = await uow.mentions.for_case(case_id)
            author = None
            if mentions and mentions[0].author_id is not None:
                author = await uow.authors.get(mentions[0].author_id)
            return CaseThread(case, mentions, author, await uow.events.for_case(case_id))

    def now(self) -> datetime:
        return self._clock.now()

    @property
    def tz(self) -> ZoneInfo:
        """The organisation's time zone, for times shown to people."""
        return self._tz

    async def status(self, at_risk_within: timedelta = AT_RISK_WITHIN) -> list[DepartmentStatus]:
        now = self._clock.now()
        async with self._uow() as uow:
            return await uow.cases.status(now, now + at_risk_within)

    async def open_cases(self, department: str | None = None) -> Sequence[Case]:
        async with self._uow() as uow:
            return await uow.cases.list_open(department)


def _with_deadlines(event: Event, case: Case) -> Event:
    """A priority change's event with the SLA policy and deadlines it led to."""
    due = {
        "sla_policy": case.sla_policy,
        "first_touch_due_at": case.first_touch_due_at,
        "answer_due_at": case.answer_due_at,
        "resolution_due_at": case.resolution_due_at,
    }
    payload = {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in due.items()
        if value is not None
    }
    return replace(event, payload={**event.payload, **payload})


def _chase_action(request: ActionRequest) -> Action:
    """The action the SLA chase's stop_on sees. A template is a draft, and a pre-approved one
    an approved answer: a template from a fresh card (which takes it) ends the chase as Take,
    Draft or Approve would, so nobody needs to press Take first."""
    if request.action is Action.USE_TEMPLATE:
        return Action.APPROVE if request.pre_approved else Action.DRAFT
    return request.action
