"""A cluster's answer on its card as it goes out: «Опубликовано 120 из 137», coalesced.

The outbox worker tells `delivered` of every item it delivered (its on_delivered hook); a
public reply marks its case. `refresh` (handlers/jobs/publication.py runs it while cases are
marked) counts the case's replies in the outbox, stores the count on the case and redraws the
card: at most once per REFRESH per case, and at once when no reply of it waits any more. A
group takes 20 messages a minute; 137 replies and a card edit after each would spend half of
it on edits. Edits of one card also supersede each other in the outbox. Next stop: the card
line itself, bot/cases/publication.py `facts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from bot.cases import publication
from bot.cases.cards import PUBLIC_REF, Cards, bot_reply_of, public_ref
from bot.clock import Clock
from bot.messages.outbox import UNDELIVERED, DeliveryResult, OutboxItem, OutboxOp, OutboxStatus
from bot.messages.views import card_ref
from bot.ports import UnitOfWorkFactory

REFRESH = timedelta(seconds=20)  # within Telegram's budget: 3 edits a minute per card


class PublicationProgress:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        cards: Cards,
        on_outbox: Callable[[], None] = lambda: None,
        every: timedelta = REFRESH,
    ) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._cards = cards
        self._on_outbox = on_outbox
        self._every = every
        self._marked: set[int] = set()  # cases with replies delivered since their last count
        self._shown_at: dict[int, datetime] = {}  # when each case's card was last redrawn

    @property
    def pending(self) -> bool:
        return bool(self._marked)

    def delivered(self, item: OutboxItem, _result: DeliveryResult | None = None) -> bool:
        """The outbox worker's hook: True when the item was a public reply of a case."""
        ref = item.ref_key or ""
        if item.op is not OutboxOp.REPLY or item.case_id is None or not ref.startswith(PUBLIC_REF):
            return False
        self._marked.add(item.case_id)
        return True

    async def refresh(self, force: bool = False) -> int:
        """Count the marked cases' replies; redraw the cards that are due (`force`: all of
        them, at a stop). Returns how many."""
        now = self._clock.now()
        redrawn = 0
        for case_id in sorted(self._marked):
            if await self._refresh_case(case_id, now, force):
                redrawn += 1
        if redrawn:
            self._on_outbox()
        return redrawn

    async def _refresh_case(self, case_id: int, now: datetime, force: bool) -> bool:
        async with self._uow() as uow:
            case = await uow.cases.get(case_id)
            version = bot_reply_of(case) if case is not None else None
            if case is None or version is None:
                self._forget(case_id)
                return False
            replies = await uow.outbox.replies_of(case_id, public_ref(case, version))
            waiting = sum(1 for status in replies.values() if status in UNDELIVERED)
            shown_at = self._shown_at.get(case_id)
            if waiting and not force and shown_at is not None and now - shown_at < self._every:
                return False  # the next refresh draws it, or the last reply does
            delivered = sum(1 for s in replies.values() if s is OutboxStatus.DELIVERED)
            if not waiting:
                self._forget(case_id)
            if delivered == case.answers_delivered:
                return False
            await uow.cases.record_answers_delivered(case_id, delivered)
            case = replace(case, answers_delivered=delivered)
            if publication.facts(case) is None:  # one mention: the card has no count to show
                await uow.commit()
                return False
            first = (await uow.mentions.first_of_cases([case_id]))[case_id]
            author = await uow.authors.get(first.author_id) if first.author_id else None
            ref = card_ref(case_id, case.department)
            # A key per count: the same version of the card is redrawn as the count grows.
            key = f"{ref}:edit:{case.version}:answers:{delivered}"
            await uow.outbox.enqueue(self._cards.to_edit(case, first, author, now, key=key))
            await uow.commit()
        self._shown_at[case_id] = now
        return True

    def _forget(self, case_id: int) -> None:
        self._marked.discard(case_id)
        self._shown_at.pop(case_id, None)
