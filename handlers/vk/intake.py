"""Stored Callback API events become mentions (events.py says what each kind means), after
VK has had its "ok" (callback.py). A crash in between loses nothing: the event waits in
vk_events and is taken in at the next start; intake's (source, external_id) key makes
taking it in twice harmless."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bot.clock import Clock
from bot.intake.intake import MentionIntake
from bot.model import MAX_NAME, SYSTEM_ACTOR, Event, Mention
from handlers.vk.events import Deleted, translate
from store.db import Database
from store.repos.vk_events import WaitingVkEvent

log = logging.getLogger("otklik.vk")

BATCH = 100
POLL_S = 5.0  # also what another process stored, and a retry after a failure
MAX_ATTEMPTS = 3  # an event intake keeps failing on is dropped (logged), not retried for ever
NAME_WAIT_S = 3.0  # a name is nice to have: the mention does not wait longer for it
NAMES_KEPT = 10_000
NameLookup = Callable[[int], Awaitable[str | None]]
SOURCE_DELETED = "source_deleted"  # audit event kind on the case of a deleted comment


class VkIntake:
    def __init__(
        self,
        database: Database,
        intake: MentionIntake,
        clock: Clock,
        group_id: int,
        names: NameLookup | None = None,
    ) -> None:
        self._names = names  # Callback API events carry an id, not the person's name
        self._known: OrderedDict[int, str] = OrderedDict()
        self._database = database
        self._intake = intake
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

    async def drain(self) -> int:
        """Take in the waiting events, oldest first; how many were settled."""
        async with self._database.uow() as uow:
            waiting = await uow.vk_events.waiting(BATCH)
        settled = 0
        for event in waiting:
            try:
                await self._take(event)
            except Exception:
                failures = self._failures[event.id] = self._failures.get(event.id, 0) + 1
                log.exception("vk: event %s not taken in (attempt %d)", event.event_id, failures)
                if failures < MAX_ATTEMPTS:
                    continue
                log.error("vk: event %s dropped after %d attempts", event.event_id, failures)
            self._failures.pop(event.id, None)
            async with self._database.uow() as uow:
                await uow.vk_events.done(event.id, self._clock.now())
                await uow.commit()
            settled += 1
        return settled

    async def _take(self, event: WaitingVkEvent) -> None:
        meaning = translate(event.type, event.body, self._group_id, self._clock.now())
        if isinstance(meaning, Mention):
            result = await self._intake.receive(await self._named(meaning))
            log.info(
                "vk: %s %s taken in%s",
                event.type,
                event.event_id,
                f", case #{result.case.id}" if result.case is not None else "",
            )
        elif isinstance(meaning, Deleted):
            await self._deleted(meaning)

    async def _named(self, mention: Mention) -> Mention:
        """The mention with its author's name from VK, when VK gives it in time."""
        user_id = int(mention.author.external_id)
        name = self._known.get(user_id)
        if name is not None:
            self._known.move_to_end(user_id)
        elif self._names is not None:
            try:
                name = await asyncio.wait_for(self._names(user_id), NAME_WAIT_S)
            except Exception as error:  # the id stays the name; the mention must not wait
                log.warning("vk: no name for an author: %s", type(error).__name__)
            if name:
                name = self._known[user_id] = name[:MAX_NAME]
                if len(self._known) > NAMES_KEPT:
                    self._known.popitem(last=False)
        if not name:
            return mention
        return replace(mention, author=replace(mention.author, display_name=name))

    async def _deleted(self, deleted: Deleted) -> None:
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
