"""Stored Callback API events become mentions (events.py says what each kind means), after
VK has had its "ok" (callback.py). A crash in between loses nothing: the event waits in
vk_events and is taken in at the next start; intake's (source, external_id) key makes
taking it in twice harmless.

Events are taken in batches through the bulk intake path (bot/intake/bulk.py: one
transaction for the batch, the same grouping as the single path, so replies in a thread and
edits join their case even when their first comment is in the same batch). The authors'
names come from one users.get call per batch, waited for at most NAME_WAIT_S: a name is nice
to have, and the mentions never wait longer for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.intake.bulk import BulkIntake
from bot.intake.intake import MentionIntake
from bot.model import MAX_NAME, SYSTEM_ACTOR, Event, Mention
from handlers.vk.events import Deleted, translate
from store.db import Database
from store.repos.vk_events import WaitingVkEvent

log = logging.getLogger("otklik.vk")

BATCH = 200  # events a transaction; VK's storm of 17/s fills one in about ten seconds
GATHER_S = 0.25  # after a poke, a burst's next events arrive: taken in together, not one by one
POLL_S = 5.0  # also what another process stored, and a retry after a failure
MAX_ATTEMPTS = 3  # an event intake keeps failing on is dropped (logged), not retried for ever
NAME_WAIT_S = 3.0  # a name is nice to have: a batch does not wait longer for its names
NAMES_PAUSE = timedelta(minutes=1)  # after VK did not give names: batches go without for so long
NAMES_KEPT = 10_000
NamesLookup = Callable[[Sequence[int]], Awaitable[dict[int, str]]]
SOURCE_DELETED = "source_deleted"  # audit event kind on the case of a deleted comment


@dataclass(frozen=True, slots=True)
class _Taking:
    """A stored event and the mention it becomes."""

    event: WaitingVkEvent
    mention: Mention


class VkIntake:
    def __init__(
        self,
        database: Database,
        intake: MentionIntake,
        bulk: BulkIntake,
        clock: Clock,
        group_id: int,
        names: NamesLookup | None = None,
    ) -> None:
        self._names = names  # Callback API events carry an id, not the person's name
        self._known: OrderedDict[int, str] = OrderedDict()
        self._names_paused_until: datetime | None = None
        self._database = database
        self._intake = intake  # one by one, when a batch as a whole fails
        self._bulk = bulk
        self._clock = clock
        self._group_id = group_id
        self._wake = asyncio.Event()
        self._failures: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="vk-intake")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                while await self.drain():
                    pass
            except Exception:
                log.exception("vk: taking in stored events failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)
                await asyncio.sleep(GATHER_S)

    async def drain(self) -> int:
        """Take in a batch of waiting events, oldest first; how many were settled."""
        async with self._database.reader() as uow:  # a read: writers need not wait for it
            waiting = await uow.vk_events.waiting(BATCH)
        if not waiting:
            return 0
        now = self._clock.now()
        taking: list[_Taking] = []
        deleted: list[tuple[WaitingVkEvent, Deleted]] = []
        settled: list[int] = []  # nothing to take in (not ours, malformed) is settled too
        for event in waiting:
            meaning = translate(event.type, event.body, self._group_id, now)
            if isinstance(meaning, Mention):
                taking.append(_Taking(event, meaning))
            elif isinstance(meaning, Deleted):
                deleted.append((event, meaning))
            else:
                settled.append(event.id)
        settled += await self._take(await self._named(taking))
        # After the batch's mentions: a comment deleted soon after it came is in the store.
        settled += await self._deleted(deleted)
        async with self._database.uow() as uow:
            await uow.vk_events.done(settled, self._clock.now())
            await uow.commit()
        for row_id in settled:
            self._failures.pop(row_id, None)
        return len(settled)

    async def _take(self, taking: Sequence[_Taking]) -> list[int]:
        """Take the mentions in, the batch in one transaction; the events settled."""
        if not taking:
            return []
        try:
            result = await self._bulk.receive_many([t.mention for t in taking])
        except Exception:
            log.exception("vk: a batch of %d events failed; one by one", len(taking))
        else:
            log.info(
                "vk: %d events taken in: %d mentions, %d duplicates, %d with a case",
                len(taking),
                result.stored,
                result.duplicates,
                result.cases,
            )
            return [t.event.id for t in taking]
        settled = []
        for one in taking:
            try:
                await self._intake.receive(one.mention)
            except Exception:
                if not self._failed(one.event):
                    continue
            settled.append(one.event.id)
        return settled

    def _failed(self, event: WaitingVkEvent) -> bool:
        """Count a failure; True when the event is to be given up (dropped, logged)."""
        failures = self._failures[event.id] = self._failures.get(event.id, 0) + 1
        log.exception("vk: event %s not taken in (attempt %d)", event.event_id, failures)
        if failures < MAX_ATTEMPTS:
            return False
        log.error("vk: event %s dropped after %d attempts", event.event_id, failures)
        return True

    async def _named(self, taking: Sequence[_Taking]) -> list[_Taking]:
        """The mentions with their authors' names from VK: those known already, the rest from
        one users.get call, when VK gives them in time."""
        wanted = {
            user_id
            for t in taking
            if (user_id := int(t.mention.author.external_id)) not in self._known
        }
        now = self._clock.now()
        paused = self._names_paused_until is not None and now < self._names_paused_until
        if wanted and self._names is not None and not paused:
            try:
                found = await asyncio.wait_for(self._names(sorted(wanted)), NAME_WAIT_S)
            except Exception as error:  # the ids stay the names; the mentions must not wait
                log.warning("vk: no names for %d authors: %s", len(wanted), type(error).__name__)
                found = {}
                # A storm must not wait NAME_WAIT_S a batch while VK is slow or refuses.
                self._names_paused_until = now + NAMES_PAUSE
            for user_id, found_name in found.items():
                if user_id in wanted and found_name:
                    self._known[user_id] = found_name[:MAX_NAME]
            while len(self._known) > NAMES_KEPT:
                self._known.popitem(last=False)
        named = []
        for one in taking:
            author = one.mention.author
            user_id = int(author.external_id)
            name = self._known.get(user_id)
            if name is None:
                named.append(one)
                continue
            self._known.move_to_end(user_id)
            mention = replace(one.mention, author=replace(author, display_name=name))
            named.append(replace(one, mention=mention))
        return named

    async def _deleted(self, deleted: Sequence[tuple[WaitingVkEvent, Deleted]]) -> list[int]:
        """Mark deleted comments on their cases' audit trails; the events settled."""
        settled = []
        for event, gone in deleted:
            try:
                await self._mark_deleted(gone)
            except Exception:
                if not self._failed(event):
                    continue
            settled.append(event.id)
        return settled

    async def _mark_deleted(self, deleted: Deleted) -> None:
        async with self._database.uow() as uow:
            mention = await uow.mentions.get_by_external(deleted.source, deleted.external_id)
            if mention is None or mention.case_id is None:
                return
            await uow.events.append(
                [
                    Event(
                        case_id=mention.case_id,
                        at=self._clock.now(),
                        actor=SYSTEM_ACTOR,
                        kind=SOURCE_DELETED,
                        from_state=None,
                        to_state=None,
                        payload={"mention_id": mention.id, "source": deleted.source},
                    )
                ]
            )
            await uow.commit()
