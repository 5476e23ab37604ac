"""Erasure of personal data: one author on request (`otklik authors forget`, /forget), and
the retention policy's daily pass over closed cases (handlers/jobs/retention.py).

Each erasure leaves an audit stub event (who, when, what kinds of data and how many rows; no
personal data) and redacts earlier events through the path the database triggers allow, so
`otklik audit verify` still passes. The store decides where the data lives
(store/repos/erasure.py); this module decides who may erase and what the trail says.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from bot.cases.lifecycle import DomainError, NoRight
from bot.cases.service import CaseService
from bot.clock import Clock
from bot.model import SYSTEM_ACTOR, Event, EventKind
from bot.ports import ErasureCounts, UnitOfWorkFactory
from bot.staff.rights import Actor, may_erase

log = logging.getLogger(__name__)

RETENTION_BATCH = 200  # cases (and loose mentions) per transaction and per audit event


@dataclass(frozen=True, slots=True)
class Forgotten:
    author_id: int
    counts: ErasureCounts
    already: bool = False  # forgotten before: nothing was done this time
    event_id: int | None = None


@dataclass(frozen=True, slots=True)
class RetentionRun:
    cutoff: datetime
    batches: int
    counts: ErasureCounts


def months_before(moment: datetime, months: int) -> datetime:
    """The same moment `months` calendar months earlier (the 31st becomes the month's end)."""
    year, month = divmod(moment.year * 12 + moment.month - 1 - months, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _added(a: ErasureCounts, b: ErasureCounts) -> ErasureCounts:
    return ErasureCounts(**{f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(a)})


class Erasure:
    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, cases: CaseService) -> None:
        self._uow = uow_factory
        self._clock = clock
        self._cases = cases  # redraws the cards that showed what was erased

    async def forget(self, author_id: int, actor: Actor) -> Forgotten | DomainError | None:
        """Erase one author's personal data everywhere. Idempotent: a second run does
        nothing and says so. None: no such author."""
        if not may_erase(actor):
            return NoRight(action="forget", department="*")
        now = self._clock.now()
        async with self._uow() as uow:
            if await uow.authors.get(author_id) is None:
                return None
            done = await uow.events.erasures_of(EventKind.AUTHOR_FORGOTTEN, "author_id", author_id)
            if done:
                return Forgotten(author_id, ErasureCounts(), already=True, event_id=done[0].id)
            plan = await uow.erasure.plan_author(author_id)
            await uow.erasure.apply(plan)
            payload = {"author_id": author_id, "erased": plan.counts.as_payload()}
            event_id = await uow.events.record(
                Event(None, now, actor.id, EventKind.AUTHOR_FORGOTTEN, None, None, payload)
            )
            await uow.erasure.redact_events(plan, event_id)
            await uow.commit()
        log.info("author %s forgotten by %s: %s", author_id, actor.id, payload["erased"])
        await self._settle(plan.case_ids, f"forget-{event_id}")
        return Forgotten(author_id, plan.counts, event_id=event_id)

    async def apply_retention(self, months: int, batch: int = RETENTION_BATCH) -> RetentionRun:
        """Erase the personal data of cases closed more than `months` ago, and of mentions
        that never opened a case received before then; one audit event per batch."""
        now = self._clock.now()
        cutoff = months_before(now, months)
        total, batches = ErasureCounts(), 0
        while True:
            async with self._uow() as uow:
                plan = await uow.erasure.plan_retention(cutoff, batch)
                if plan.empty:
                    break
                payload = {
                    "months": months,
                    "cutoff": cutoff.isoformat(),
                    "cases": list(plan.case_ids),
                    "erased": plan.counts.as_payload(),
                }
                await uow.erasure.apply(plan)
                event_id = await uow.events.record(
                    Event(None, now, SYSTEM_ACTOR, EventKind.RETENTION_ERASED, None, None, payload)
                )
                await uow.erasure.redact_events(plan, event_id)
                await uow.commit()
            batches += 1
            total = _added(total, plan.counts)
            await self._cases.redraw_cards(plan.case_ids, f"retention-{event_id}")
        if batches:
            await self._reclaim()
        log.info("retention (%s months, before %s): %s", months, cutoff, total.as_payload())
        return RetentionRun(cutoff, batches, total)

    async def _settle(self, case_ids: Sequence[int], reason: str) -> None:
        await self._cases.redraw_cards(case_ids, reason)
        await self._reclaim()

    async def _reclaim(self) -> None:
        async with self._uow() as uow:
            await uow.erasure.reclaim()
