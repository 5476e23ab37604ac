"""Case services: the only code that owns transactions. Transports and jobs call these.

One call, one unit of work: load, decide with the pure state machine, write the case, its
events and the messages it causes, commit once, then wake the outbox worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.cases.lifecycle import (
    ALLOWED_FROM,
    ActionRequest,
    DomainError,
    InvalidInput,
    InvalidTransition,
    NoRight,
    SelfReview,
    StaleCard,
    transition,
)
from bot.cases.replies import ReplyCatalog, origin_of
from bot.cases.rights import Actor
from bot.chat.delivery import EXTERNAL_REF
from bot.chat.outbox import OutboxItem, OutboxOp
from bot.chat.views import (
    PROMPT_ACTIONS,
    REVIEW_ACTIONS,
    CardView,
    MenuOption,
    View,
    card_ref,
    card_view,
    draft_ref,
    draft_view,
    menu_options,
    notice_view,
    prompt_ref,
    prompt_view,
    public_reply_view,
)
from bot.clock import Clock
from bot.model import (
    MAX_MENTION_TEXT,
    SYSTEM_ACTOR,
    Action,
    Author,
    AuthorLabel,
    Case,
    CaseState,
    DeptRole,
    DraftStatus,
    Event,
    EventKind,
    GlobalRole,
    IgnoreReason,
    Mention,
    Priority,
    Sentiment,
    WaitReason,
)
from bot.ports import (
    ConcurrentUpdate,
    DepartmentStatus,
    RelatedCases,
    UnitOfWork,
    UnitOfWorkFactory,
)
from bot.settings.directory import Destination, Directory
from bot.settings.playbook import RoutingConfig, RoutingDefault
from bot.sla.engine import DEFAULT_FOLLOW_UP, SlaEngine
from bot.sla.service import arm_cases

log = logging.getLogger(__name__)


class UnknownCase(DomainError):
    code = "unknown_case"


class NotPublishable(DomainError):
    """The bot cannot post at this mention's source: a person posts and marks it published."""

    code = "not_publishable"


# /status counts a case "at risk" when its current deadline is this close.
AT_RISK_WITHIN = timedelta(minutes=30)
# Answers to commands go before queued cards: the person is waiting for them.
ANSWER_URGENCY = 10


@dataclass(frozen=True, slots=True)
class CaseOpening:
    """What the router decided for a mention that needs an answer."""

    department: str
    priority: Priority = Priority.NORMAL
    sla_policy: str | None = None
    first_touch_due_at: datetime | None = None
    answer_due_at: datetime | None = None
    resolution_due_at: datetime | None = None
    codes: tuple[str, ...] = ()
    drill: bool = False


@dataclass(frozen=True, slots=True)
class IntakeResult:
    mention: Mention | None  # None when it was a duplicate
    case: Case | None  # the case opened for it, if any
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class ActResult:
    case: Case | None
    events: tuple[Event, ...] = ()
    error: DomainError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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
        sla: SlaEngine | None = None,
        on_timers: Callable[[datetime], None] = lambda _due: None,
    ) -> None:
        # Grouping and author-label thresholds from the playbook (defaults without one).
        self._sla = sla  # None: no SLA timers (tests of other parts)
        self._on_timers = on_timers  # tells the scheduler about a timer due at that moment
        self._policy = policy or RoutingConfig(
            default=RoutingDefault(department=coordination or "coordination")
        )
        self._replies = replies
        self._coordination = coordination
        self._uow = uow_factory
        self._clock = clock
        self._directory = directory
        self._tz = tz
        self._on_outbox = on_outbox  # wakes the delivery worker after a commit

    def wake_outbox(self) -> None:
        """After a caller's own transaction queued messages (see open_many)."""
        self._on_outbox()

    # --- intake -------------------------------------------------------------------------

    async def intake(self, mention: Mention, opening: CaseOpening | None) -> IntakeResult:
        """Store a mention (once per source and external id) on its author's card; open a
        case if asked, or join the open case it belongs to."""
        for attempt in (1, 2):
            try:
                return await self._intake_once(mention, opening)
            except ConcurrentUpdate:  # the related case changed meanwhile: decide again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _intake_once(self, mention: Mention, opening: CaseOpening | None) -> IntakeResult:
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
            author = await self._record_author(uow, mention, now)
            stored = await uow.mentions.add(replace(mention, author_id=author.id))
            if stored is None:  # a concurrent intake stored it first
                return IntakeResult(None, None, duplicate=True)
            author = await self._relabel(uow, author, now)
            case = None
            if opening is not None:
                (case,) = await self.open_many(uow, [(stored, opening)], now)
            await uow.commit()
        if case is not None:
            self._on_outbox()
            (case,) = await self.resume_for_authors([(stored, case)])
        return IntakeResult(stored, case)

    async def _record_author(self, uow: UnitOfWork, mention: Mention, now: datetime) -> Author:
        """The one author behind every identity the source gives; authors the source links
        (same e-mail, phone or linked profile) are merged into one card."""
        identities = (mention.author, *mention.linked)
        owners = await uow.links.authors_of([(i.channel, i.external_id) for i in identities])
        for gone in owners[1:]:
            await uow.links.merge_authors(owners[0], gone)
        author = await uow.authors.get(owners[0]) if owners else None
        if author is None:
            author = await uow.authors.add(
                Author(
                    id=None,
                    display_name=mention.author.display_name or mention.author.external_id,
                    identities=identities,
                    first_seen_at=now,
                )
            )
        counts = {
            Sentiment.NEGATIVE: "negative_count",
            Sentiment.NEUTRAL: "neutral_count",
            Sentiment.POSITIVE: "positive_count",
        }
        field = counts[mention.sentiment or Sentiment.NEUTRAL]
        known = {(i.channel, i.external_id) for i in author.identities}
        new_identities = tuple(i for i in identities if (i.channel, i.external_id) not in known)
        author = replace(
            author,
            identities=(*author.identities, *new_identities),
            last_seen_at=now,
            **{field: getattr(author, field) + 1},  # type: ignore[arg-type]
        )
        await uow.authors.save(author)
        return author

    async def _relabel(self, uow: UnitOfWork, author: Author, now: datetime) -> Author:
        """Labels from the playbook's thresholds; "do not engage" is only ever set by staff."""
        assert author.id is not None
        rules = self._policy.author_labels
        labels = set(author.labels) - {AuthorLabel.SYSTEMATIC_CRITIC, AuthorLabel.OPINION_LEADER}
        negative = await uow.links.negative_since(author.id, now - rules.critic_window)
        if negative >= rules.critic_negative_count:
            labels.add(AuthorLabel.SYSTEMATIC_CRITIC)
        total = author.total_mentions
        if (
            total
            and author.positive_count / total >= rules.leader_positive_share
            and await uow.links.max_reach(author.id) >= rules.leader_min_reach
        ):
            labels.add(AuthorLabel.OPINION_LEADER)
        if labels != set(author.labels):
            author = replace(author, labels=frozenset(labels))
            await uow.authors.save(author)
        return author

    async def merge_authors(self, keep: int, gone: int, actor: Actor) -> DomainError | None:
        """An administrator's merge of two author cards (the same person on two channels)."""
        if GlobalRole.ADMIN not in actor.global_roles:
            return NoRight(action="merge", department="*")
        now = self._clock.now()
        async with self._uow() as uow:
            if await uow.authors.get(keep) is None or await uow.authors.get(gone) is None:
                return InvalidInput(field="author", limit=None)
            await uow.links.merge_authors(keep, gone)
            merged = await uow.authors.get(keep)
            assert merged is not None
            await self._relabel(uow, merged, now)
            await uow.commit()
        return None

    async def open_many(
        self, uow: UnitOfWork, openings: Sequence[tuple[Mention, CaseOpening]], now: datetime
    ) -> list[Case]:
        """Open a case for each stored mention, or join it to the open case it belongs to, in
        order and inside the caller's transaction: the one place that groups related mentions
        (single intake and batches). Returns each mention's case as the batch leaves it."""
        since = now - self._policy.grouping.same_author_within
        related = await uow.links.related_open_cases(
            story_ids={m.story_id for m, _ in openings if m.story_id},
            thread_urls={m.reply_to_url for m, _ in openings if m.reply_to_url},
            authors={(m.author_id, o.department) for m, o in openings if m.author_id},
            since=since,
        )
        groups = _Grouping(related)
        fresh: list[_NewCase] = []
        targets: list[_NewCase | int] = []
        for mention, opening in openings:
            target = groups.find(mention, opening.department)
            if target is None:
                target = _NewCase(mention, opening)
                fresh.append(target)
            elif isinstance(target, _NewCase):
                target.joined.append(mention)
            targets.append(target)
            if isinstance(target, int):
                groups.remember(mention, opening.department, target)
            elif not target.opening.drill:  # as in the store, drill cases gather nothing
                groups.remember(mention, target.opening.department, target)

        joined_ids = sorted({t for t in targets if isinstance(t, int)})
        stored = await uow.cases.get_many(joined_ids)
        grown: dict[int, Case] = {}
        for target in targets:
            if isinstance(target, int):
                case = grown.get(target, stored[target])
                grown[target] = replace(case, mention_count=case.mention_count + 1)
        grown = {i: replace(c, version=stored[i].version + 1) for i, c in grown.items()}
        await uow.cases.record_joined(list(grown.values()))
        opened = await uow.cases.add_many([n.case(now) for n in fresh])
        for new, case in zip(fresh, opened, strict=True):
            new.stored = case

        attach: list[tuple[int, int]] = []
        events: list[Event] = []
        result: list[Case] = []
        for (mention, _), target in zip(openings, targets, strict=True):
            case_or_none = target.stored if isinstance(target, _NewCase) else grown[target]
            assert case_or_none is not None
            case = case_or_none
            assert case.id is not None and mention.id is not None
            attach.append((mention.id, case.id))
            result.append(case)
            if isinstance(target, _NewCase) and target.mention is mention:
                payload = {
                    "mention_id": mention.id,
                    "department": case.department,
                    "priority": case.priority.value,
                    "drill": case.drill,
                }
                events.append(
                    Event(case.id, now, SYSTEM_ACTOR, EventKind.CREATED, None, case.state, payload)
                )
            else:
                payload = {"mention_id": mention.id, "source": mention.source}
                events.append(
                    Event(
                        case.id,
                        now,
                        SYSTEM_ACTOR,
                        EventKind.MENTION_ADDED,
                        case.state,
                        case.state,
                        payload,
                    )
                )
        await uow.mentions.attach_many(attach)
        await uow.events.append(events)

        # Cards: a new case is posted once with the batch's count; a grown one edited once.
        firsts = await uow.mentions.first_of_cases(list(grown))
        firsts.update({n.stored.id: n.mention for n in fresh if n.stored and n.stored.id})
        authors = await uow.authors.cards_of(
            sorted({m.author_id for m in firsts.values() if m.author_id})
        )
        items: list[OutboxItem] = []
        for case in [*(n.stored for n in fresh if n.stored), *grown.values()]:
            assert case.id is not None
            first = firsts[case.id]
            view = self._card(case, first, authors.get(first.author_id or 0))
            ref = card_ref(case.id, case.department)
            if case.id in grown:
                items += self._for_all(case.department, OutboxOp.EDIT, view, ref, case, now)
            else:
                key = f"{ref}:post:{case.version}"
                items += self._for_all(case.department, OutboxOp.POST, view, ref, case, now, key)
        await uow.outbox.enqueue(items)
        await self._cases_changed(uow, [*opened, *grown.values()], now)
        final = {c.id: c for c in [*opened, *grown.values()]}
        return [final[c.id] for c in result]

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
                first, _ = await self._first_mention(uow, case)
            if first.author_id != author_id:
                return ActResult(case)
        otklik = Actor(
            SYSTEM_ACTOR,
            SYSTEM_ACTOR,
            dept_roles={case.department: frozenset({DeptRole.SPECIALIST})},
        )
        return await self.act(case_id, ActionRequest(Action.AUTHOR_REPLIED), otklik)

    # --- actions ------------------------------------------------------------------------

    async def act(self, case_id: int, request: ActionRequest, actor: Actor) -> ActResult:
        """Apply one person's action. Refusals change nothing; refusals for rights are audited."""
        for attempt in (1, 2):
            try:
                return await self._act_once(case_id, request, actor)
            except ConcurrentUpdate:
                if attempt == 2 or request.expected_version is not None:
                    # The press raced another one on the same card version: report it stale.
                    current = await self.get(case_id)
                    actual = current.version if current else None
                    stale = StaleCard(expected=request.expected_version, actual=actual)
                    return ActResult(current, error=stale)
        raise AssertionError("unreachable")

    async def _act_once(self, case_id: int, request: ActionRequest, actor: Actor) -> ActResult:
        now = self._clock.now()
        async with self._uow() as uow:
            case = await uow.cases.get(case_id)
            if case is None:
                await self._audit(uow, None, actor, request.action, now, UnknownCase.code)
                await uow.commit()
                return ActResult(None, error=UnknownCase(case_id=case_id))
            mention, author = await self._first_mention(uow, case)
            try:
                request = self._complete(case, mention, author, request, now)
                result = transition(case, request, actor, now)
            except NoRight as error:
                await self._audit(uow, case, actor, request.action, now, error.code)
                await uow.commit()
                return ActResult(case, error=error)
            except DomainError as error:
                return ActResult(case, error=error)
            new_case = result.case
            if request.action is Action.AUTHOR_REPLIED and self._sla is not None:
                new_case = self._sla.resumed(case, new_case, now)  # the paused time is given back
            if request.action is Action.REOPEN and self._sla is not None:
                new_case = self._sla.reopened(new_case, now)
            await uow.cases.save(new_case, expected_version=case.version)
            await uow.events.append(result.events)
            if request.reason is IgnoreReason.DO_NOT_ENGAGE and author is not None:
                # Staff decided: the author's card says so from now on, in every case.
                labels = author.labels | {AuthorLabel.DO_NOT_ENGAGE}
                await uow.authors.save(replace(author, labels=labels))
            await self._announce(uow, case, new_case, request, actor, mention, author, now)
            await self._cases_changed(uow, [new_case], now, request.action)
            await uow.commit()
        self._on_outbox()
        return ActResult(new_case, result.events)

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
        if action is Action.PUBLISH and not self._publishable(mention):
            raise NotPublishable()
        if action in (Action.PUBLISH, Action.MARK_PUBLISHED) and request.follow_up_at is None:
            approved = case.approved_draft
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

    def _publishable(self, mention: Mention) -> bool:
        origin = origin_of(mention)
        return origin is not None and origin.transport in self._directory.transports

    async def _audit(
        self,
        uow: UnitOfWork,
        case: Case | None,
        actor: Actor,
        action: Action,
        now: datetime,
        reason: str,
    ) -> None:
        state = case.state if case else None
        payload = {
            "action": action.value,
            "reason": reason,
            "staff": actor.is_staff,
            "name": actor.name[:128],
        }
        await uow.events.append(
            [
                Event(
                    case.id if case else None,
                    now,
                    actor.id,
                    EventKind.DENIED,
                    state,
                    state,
                    payload,
                )
            ]
        )
        log.warning(
            "refused %s by %s on case %s: %s",
            action.value,
            actor.id,
            case.id if case else "?",
            reason,
        )

    # --- prompts and menus: a press that asks for more before acting --------------------

    async def prompt(
        self, case_id: int, action: Action, actor: Actor, where: Destination, nonce: str
    ) -> ActResult:
        """Ask in the chat for the text an action needs (draft, note, reason). The reply to the
        prompt carries the action out. Checked like the action itself."""
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
            if action in REVIEW_ACTIONS and draft is not None and draft.author == actor.id:
                return ActResult(case, error=SelfReview(version=version))
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
            check = menu or Action.TAKE  # going back needs only a look
            error = (
                await self._precheck(uow, case, case_id, check, actor, now)
                if menu is not None
                else None
            )
            if case is None or error is not None:
                await uow.commit()
                return ActResult(case, error=error or UnknownCase(case_id=case_id))
            assert case.id is not None
            mention, author = await self._first_mention(uow, case)
            options = None
            if menu is not None:
                templates = self._replies.options(case.department) if self._replies else []
                options = menu_options(menu, case, self._directory, templates)
            view = card_view(
                case,
                mention,
                author,
                self._directory,
                self._tz,
                publishable=self._publishable(mention),
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
        templates = self._replies.options(case.department) if self._replies else []
        return ActResult(case), menu_options(menu, case, self._directory, templates)

    async def remember(self, key: str, value: str) -> None:
        """Small state a transport keeps across restarts (sync tokens, open menus)."""
        async with self._uow() as uow:
            await uow.kv.set(key, value)
            await uow.commit()

    async def recall(self, key: str) -> str | None:
        async with self._uow() as uow:
            return await uow.kv.get(key)

    async def _precheck(
        self,
        uow: UnitOfWork,
        case: Case | None,
        case_id: int,
        action: Action,
        actor: Actor,
        now: datetime,
    ) -> DomainError | None:
        if case is None:
            await self._audit(uow, None, actor, action, now, UnknownCase.code)
            return UnknownCase(case_id=case_id)
        if not actor.may(action, case.department):
            await self._audit(uow, case, actor, action, now, NoRight.code)
            return NoRight(action=action.value, department=case.department)
        if case.state not in ALLOWED_FROM[action]:
            return InvalidTransition(action=action.value, state=case.state.value)
        return None

    # --- messages caused by a change ----------------------------------------------------

    async def _first_mention(self, uow: UnitOfWork, case: Case) -> tuple[Mention, Author | None]:
        assert case.id is not None
        mentions = await uow.mentions.for_case(case.id)
        mention = mentions[0]
        author = await uow.authors.get(mention.author_id) if mention.author_id else None
        return mention, author

    def _card(
        self, case: Case, mention: Mention, author: Author | None, moved_to: str | None = None
    ) -> CardView:
        return card_view(
            case,
            mention,
            author,
            self._directory,
            self._tz,
            moved_to,
            publishable=self._publishable(mention),
            now=self._clock.now(),
        )

    async def _post_cards(
        self, uow: UnitOfWork, case: Case, mention: Mention, author: Author | None, now: datetime
    ) -> None:
        assert case.id is not None
        view = self._card(case, mention, author)
        ref = card_ref(case.id, case.department)
        await uow.outbox.enqueue(
            self._for_all(
                case.department,
                OutboxOp.POST,
                view,
                ref,
                case,
                now,
                key=f"{ref}:post:{case.version}",
            )
        )

    async def _announce(
        self,
        uow: UnitOfWork,
        old: Case,
        new: Case,
        request: ActionRequest,
        actor: Actor,
        mention: Mention,
        author: Author | None,
        now: datetime,
    ) -> None:
        """Queue every message one change causes: card edits, drafts for review, notices."""
        assert new.id is not None
        items: list[OutboxItem] = []
        dept = new.department
        card = card_ref(new.id, dept)
        if old.department != dept:
            # The old card says where the case went; a new card appears in the new chat.
            moved = self._card(old, mention, author, moved_to=dept)
            old_card = card_ref(new.id, old.department)
            items += self._for_all(old.department, OutboxOp.EDIT, moved, old_card, new, now)
            await uow.outbox.enqueue(items)
            await self._post_cards(uow, new, mention, author, now)
            return
        items += self._for_all(
            dept, OutboxOp.EDIT, self._card(new, mention, author), card, new, now
        )

        # Drafts live under the card: a new one for review, a reviewed one edited in place.
        for before, after in zip(old.drafts, new.drafts, strict=False):
            if before != after:
                ref = draft_ref(new.id, after.version, dept)
                items += self._for_all(
                    dept, OutboxOp.EDIT, draft_view(new, after, self._directory), ref, new, now
                )
        for draft in new.drafts[len(old.drafts) :]:
            if draft.status is DraftStatus.PENDING:
                ref = draft_ref(new.id, draft.version, dept)
                items += self._for_all(
                    dept,
                    OutboxOp.REPLY,
                    draft_view(new, draft, self._directory),
                    ref,
                    new,
                    now,
                    reply_to=card,
                )

        if request.action is Action.ESCALATE:
            notice = notice_view(
                "ui.escalated",
                case_id=new.id,
                level=new.escalation_level,
                department_name=self._directory.department_name(dept),
                actor_name=actor.name,
                reason=(request.note or "").strip(),
            )
            ref = f"escalation:{new.id}:{new.version}"
            items += self._for_all(dept, OutboxOp.REPLY, notice, ref, new, now, reply_to=card)
            if self._coordination != dept:
                items += self._for_all(self._coordination, OutboxOp.POST, notice, ref, new, now)

        if request.action is Action.PUBLISH:
            origin = origin_of(mention)
            approved = new.approved_draft
            assert origin is not None and approved is not None
            items.append(
                OutboxItem(
                    transport=origin.transport,
                    chat=origin.chat,
                    op=OutboxOp.REPLY,
                    payload=public_reply_view(approved.text),
                    idempotency_key=f"{origin.transport}:{origin.chat}:publish:{new.id}:"
                    f"{approved.version}",
                    ref_key=f"public:{new.id}:{approved.version}",
                    reply_to_key=f"{EXTERNAL_REF}{origin.message_id}",
                    case_id=new.id,
                    urgency=new.priority.rank,
                    created_at=now,
                )
            )
        await uow.outbox.enqueue(items)

    def _for_all(
        self,
        department: str,
        op: OutboxOp,
        view: View,
        ref: str,
        case: Case,
        now: datetime,
        key: str | None = None,
        reply_to: str | None = None,
    ) -> list[OutboxItem]:
        key = key or f"{ref}:{op.value}:{case.version}"
        return [
            dest.about(case, op, view, key, now, ref=ref, reply_to=reply_to)
            for dest in self._directory.destinations(department)
        ]

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
                        payload=dict(view),
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

    async def ensure_cards(self) -> int:
        """Post cards for open cases that have none on a running transport (e.g. Telegram was
        configured after cases arrived). Idempotent: keys match the ones intake uses."""
        now = self._clock.now()
        queued = 0
        async with self._uow() as uow:
            # One query per department chat, not one per open case: 100,000 open cases whose
            # cards are all there cost a handful of index look-ups at start.
            missing: dict[int, tuple[Case, list[Destination]]] = {}
            for department in self._directory.department_ids():
                for dest in self._directory.destinations(department):
                    for case in await uow.cases.open_without_card(
                        department, dest.transport, dest.chat
                    ):
                        assert case.id is not None
                        missing.setdefault(case.id, (case, []))[1].append(dest)
            firsts = await uow.mentions.first_of_cases(sorted(missing))
            authors = await uow.authors.cards_of(
                sorted({m.author_id for m in firsts.values() if m.author_id})
            )
            items: list[OutboxItem] = []
            for case_id, (case, dests) in sorted(missing.items()):
                mention = firsts.get(case_id)
                if mention is None:
                    continue
                view = self._card(case, mention, authors.get(mention.author_id or 0))
                ref = card_ref(case_id, case.department)
                key = f"{ref}:post:{case.version}"
                items += [d.about(case, OutboxOp.POST, view, key, now, ref=ref) for d in dests]
            queued += await uow.outbox.enqueue(items)
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


@dataclass(eq=False, slots=True)
class _NewCase:
    """A case a batch opens: its first mention, and the batch's mentions that join it."""

    mention: Mention
    opening: CaseOpening
    joined: list[Mention] = field(default_factory=list)
    stored: Case | None = None

    def case(self, now: datetime) -> Case:
        opening = self.opening
        return Case(
            id=None,
            department=opening.department,
            state=CaseState.NEW,
            priority=opening.priority,
            created_at=now,
            source=self.mention.source,
            drill=opening.drill,
            sla_policy=opening.sla_policy,
            first_touch_due_at=opening.first_touch_due_at,
            answer_due_at=opening.answer_due_at,
            resolution_due_at=opening.resolution_due_at,
            codes=tuple(dict.fromkeys((*opening.codes, *self.mention.codes))),
            mention_count=1 + len(self.joined),
        )


class _Grouping:
    """Which case a mention joins: stored open cases first found by the store, then the cases
    this batch opens or joins (newer, so they win, as the single path's newest-first look-up
    would choose them). Kinds of link in the single path's order: story, thread, author."""

    def __init__(self, stored: RelatedCases) -> None:
        self._story: dict[str, _NewCase | int] = dict(stored.by_story)
        self._thread: dict[str, _NewCase | int] = dict(stored.by_thread)
        self._author: dict[tuple[int, str], _NewCase | int] = dict(stored.by_author)

    def find(self, mention: Mention, department: str) -> _NewCase | int | None:
        if mention.story_id and mention.story_id in self._story:
            return self._story[mention.story_id]
        if mention.reply_to_url and mention.reply_to_url in self._thread:
            return self._thread[mention.reply_to_url]
        if mention.author_id:
            return self._author.get((mention.author_id, department))
        return None

    def remember(self, mention: Mention, department: str, case: _NewCase | int) -> None:
        if mention.story_id:
            self._story[mention.story_id] = case
        for url in (mention.reply_to_url, mention.url):
            if url:
                self._thread[url] = case
        if mention.author_id:
            self._author[mention.author_id, department] = case
