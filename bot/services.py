"""Case services: the only code that owns transactions. Transports and jobs call these.

One call, one unit of work: load, decide with the pure state machine, write the case, its
events and the messages it causes, commit once, then wake the outbox worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.directory import Destination, Directory
from bot.lifecycle import (
    ActionRequest,
    DomainError,
    InvalidInput,
    NoRight,
    StaleCard,
    transition,
)
from bot.model import (
    MAX_MENTION_TEXT,
    SYSTEM_ACTOR,
    Action,
    Author,
    Case,
    CaseState,
    Event,
    EventKind,
    Mention,
    Priority,
    Sentiment,
)
from bot.outbox import OutboxItem, OutboxOp
from bot.ports import ConcurrentUpdate, UnitOfWork, UnitOfWorkFactory
from bot.rights import Actor
from bot.views import card_ref, card_view

log = logging.getLogger(__name__)


class UnknownCase(DomainError):
    code = "unknown_case"


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
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._directory = directory
        self._tz = tz
        self._on_outbox = on_outbox  # wakes the delivery worker after a commit

    # --- intake -------------------------------------------------------------------------

    async def intake(self, mention: Mention, opening: CaseOpening | None) -> IntakeResult:
        """Store a mention (once per source and external id) and open a case if asked."""
        now = self._clock.now()
        mention = replace(mention, text=mention.text[:MAX_MENTION_TEXT])
        async with self._uow() as uow:
            existing = await uow.mentions.get_by_external(mention.source, mention.external_id)
            if existing is not None:
                return IntakeResult(existing, None, duplicate=True)
            author = await self._record_author(uow, mention, now)
            stored = await uow.mentions.add(replace(mention, author_id=author.id))
            if stored is None:  # a concurrent intake stored it first
                return IntakeResult(None, None, duplicate=True)
            case = None
            if opening is not None:
                case = await self._open_case(uow, stored, author, opening, now)
            await uow.commit()
        if case is not None:
            self._on_outbox()
        return IntakeResult(stored, case)

    async def _record_author(self, uow: UnitOfWork, mention: Mention, now: datetime) -> Author:
        author = await uow.authors.find_by_identity(mention.author)
        if author is None:
            author = await uow.authors.add(
                Author(
                    id=None,
                    display_name=mention.author.display_name or mention.author.external_id,
                    identities=(mention.author,),
                    first_seen_at=now,
                )
            )
        counts = {
            Sentiment.NEGATIVE: "negative_count",
            Sentiment.NEUTRAL: "neutral_count",
            Sentiment.POSITIVE: "positive_count",
        }
        field = counts[mention.sentiment]
        author = replace(
            author,
            last_seen_at=now,
            **{field: getattr(author, field) + 1},  # type: ignore[arg-type]
        )
        await uow.authors.save(author)
        return author

    async def _open_case(
        self,
        uow: UnitOfWork,
        mention: Mention,
        author: Author,
        opening: CaseOpening,
        now: datetime,
    ) -> Case:
        assert mention.id is not None
        case = await uow.cases.add(
            Case(
                id=None,
                department=opening.department,
                state=CaseState.NEW,
                priority=opening.priority,
                created_at=now,
                source=mention.source,
                drill=opening.drill,
                sla_policy=opening.sla_policy,
                first_touch_due_at=opening.first_touch_due_at,
                answer_due_at=opening.answer_due_at,
                resolution_due_at=opening.resolution_due_at,
                codes=tuple(dict.fromkeys((*opening.codes, *mention.codes))),
            )
        )
        assert case.id is not None
        await uow.mentions.attach(mention.id, case.id)
        await uow.events.append(
            [
                Event(
                    case.id,
                    now,
                    SYSTEM_ACTOR,
                    EventKind.CREATED,
                    None,
                    CaseState.NEW,
                    {
                        "mention_id": mention.id,
                        "department": case.department,
                        "priority": case.priority.value,
                        "drill": case.drill,
                    },
                )
            ]
        )
        await self._post_cards(uow, case, mention, author, now)
        return case

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
                await self._audit(uow, None, actor, request, now, "unknown_case")
                await uow.commit()
                return ActResult(None, error=UnknownCase(case_id=case_id))
            try:
                if request.action is Action.REROUTE and not self._directory.has_department(
                    request.department or ""
                ):
                    raise InvalidInput(field="department", limit=None)
                result = transition(case, request, actor, now)
            except NoRight as error:
                await self._audit(uow, case, actor, request, now, error.code)
                await uow.commit()
                return ActResult(case, error=error)
            except DomainError as error:
                return ActResult(case, error=error)
            new_case = result.case
            await uow.cases.save(new_case, expected_version=case.version)
            await uow.events.append(result.events)
            await self._refresh_cards(uow, case, new_case, now)
            await uow.commit()
        self._on_outbox()
        return ActResult(new_case, result.events)

    async def _audit(
        self,
        uow: UnitOfWork,
        case: Case | None,
        actor: Actor,
        request: ActionRequest,
        now: datetime,
        reason: str,
    ) -> None:
        state = case.state if case else None
        await uow.events.append(
            [
                Event(
                    case.id if case else None,
                    now,
                    actor.id,
                    EventKind.DENIED,
                    state,
                    state,
                    {
                        "action": request.action.value,
                        "reason": reason,
                        "staff": actor.is_staff,
                        "name": actor.name[:128],
                    },
                )
            ]
        )
        log.warning(
            "refused %s by %s on case %s: %s",
            request.action.value,
            actor.id,
            case.id if case else "?",
            reason,
        )

    # --- cards --------------------------------------------------------------------------

    async def _first_mention(self, uow: UnitOfWork, case: Case) -> tuple[Mention, Author | None]:
        assert case.id is not None
        mentions = await uow.mentions.for_case(case.id)
        mention = mentions[0]
        author = await uow.authors.get(mention.author_id) if mention.author_id else None
        return mention, author

    async def _post_cards(
        self, uow: UnitOfWork, case: Case, mention: Mention, author: Author | None, now: datetime
    ) -> None:
        assert case.id is not None
        view = card_view(case, mention, author, self._directory, self._tz)
        ref = card_ref(case.id, case.department)
        await uow.outbox.enqueue(
            [
                self._item(dest, OutboxOp.POST, view, f"{ref}:post:{case.version}", ref, case, now)
                for dest in self._directory.destinations(case.department)
            ]
        )

    async def _refresh_cards(self, uow: UnitOfWork, old: Case, new: Case, now: datetime) -> None:
        assert new.id is not None
        mention, author = await self._first_mention(uow, new)
        items: list[OutboxItem] = []
        if old.department != new.department:
            # The old card says where the case went; a new card appears in the new chat.
            moved = card_view(old, mention, author, self._directory, self._tz, new.department)
            old_ref = card_ref(new.id, old.department)
            items += self._for_all(old.department, OutboxOp.EDIT, moved, old_ref, new, now)
            await uow.outbox.enqueue(items)
            await self._post_cards(uow, new, mention, author, now)
            return
        view = card_view(new, mention, author, self._directory, self._tz)
        ref = card_ref(new.id, new.department)
        await uow.outbox.enqueue(self._for_all(new.department, OutboxOp.EDIT, view, ref, new, now))

    def _for_all(
        self,
        department: str,
        op: OutboxOp,
        view: dict[str, object],
        ref: str,
        case: Case,
        now: datetime,
    ) -> list[OutboxItem]:
        return [
            self._item(dest, op, view, f"{ref}:{op.value}:{case.version}", ref, case, now)
            for dest in self._directory.destinations(department)
        ]

    @staticmethod
    def _item(
        dest: Destination,
        op: OutboxOp,
        view: dict[str, object],
        key: str,
        ref: str,
        case: Case,
        now: datetime,
    ) -> OutboxItem:
        return OutboxItem(
            transport=dest.transport,
            chat=dest.chat,
            thread=dest.thread,
            op=op,
            payload=dict(view),
            idempotency_key=f"{dest.transport}:{dest.chat}:{key}",
            ref_key=ref,
            case_id=case.id,
            urgency=case.priority.rank,
            created_at=now,
        )

    async def ensure_cards(self) -> int:
        """Post cards for open cases that have none on a running transport (e.g. Telegram was
        configured after cases arrived). Idempotent: keys match the ones intake uses."""
        now = self._clock.now()
        queued = 0
        async with self._uow() as uow:
            for case in await uow.cases.list_open():
                assert case.id is not None
                ref = card_ref(case.id, case.department)
                missing = [
                    dest
                    for dest in self._directory.destinations(case.department)
                    if await uow.refs.get(dest.transport, dest.chat, ref) is None
                ]
                if not missing:
                    continue
                mention, author = await self._first_mention(uow, case)
                view = card_view(case, mention, author, self._directory, self._tz)
                queued += await uow.outbox.enqueue(
                    [
                        self._item(
                            d, OutboxOp.POST, view, f"{ref}:post:{case.version}", ref, case, now
                        )
                        for d in missing
                    ]
                )
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

    async def open_cases(self, department: str | None = None) -> Sequence[Case]:
        async with self._uow() as uow:
            return await uow.cases.list_open(department)
