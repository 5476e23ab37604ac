"""The unit of work: one session, one transaction, repositories sharing it."""

from __future__ import annotations

import asyncio
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.ports import ConcurrentUpdate
from store.driver import lost_race
from store.queries.export import SqlExportRepository
from store.queries.reports import SqlReportRepository
from store.repos.authors import SqlAuthorRepository
from store.repos.blobs import SqlBlobRepository
from store.repos.cases import SqlCaseRepository
from store.repos.chats import SqlSeenChatRepository
from store.repos.crises import SqlCrisisRepository
from store.repos.drills import SqlDrillRunRepository
from store.repos.erasure import SqlErasureRepository
from store.repos.events import SqlEventRepository
from store.repos.kv import SqlKeyValueRepository
from store.repos.links import SqlLinkRepository
from store.repos.mentions import SqlMentionRepository
from store.repos.outbox import SqlOutboxRepository
from store.repos.refs import SqlMessageRefRepository
from store.repos.telegram_updates import SqlTelegramUpdateRepository
from store.repos.timers import SqlTimerRepository
from store.repos.vk_events import SqlVkEventRepository


class WriteGate:
    """One transaction at a time on an SQLite file, per process, in arrival order.

    SQLite lets one connection write at a time; a second one waits in SQLite's busy handler,
    which sleeps in steps of up to 100 ms, so eight concurrent intakes made 30 a second.
    Waiting here instead hands the database over the moment it is free. busy_timeout stays
    as the safety net for other processes (`otklik import` beside a running bot) and for
    transactions that skip the gate (long reports). Re-entrant within one task, so a nested
    unit of work does not wait for itself."""

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owner: asyncio.Task[object] | None = None
        self._depth = 0

    async def acquire(self) -> None:
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            self._depth += 1
            return
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:  # a lock serves one event loop
            self._lock, self._loop = asyncio.Lock(), loop
        await self._lock.acquire()
        self._owner, self._depth = task, 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            assert self._lock is not None
            self._lock.release()


class SqlUnitOfWork:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], gate: WriteGate | None = None
    ) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None
        self._gate = gate

    async def __aenter__(self) -> SqlUnitOfWork:
        if self._gate is not None:
            await self._gate.acquire()
        session = self._session = self._sessions()
        self.cases = SqlCaseRepository(session)
        self.mentions = SqlMentionRepository(session)
        self.authors = SqlAuthorRepository(session)
        self.events = SqlEventRepository(session)
        self.outbox = SqlOutboxRepository(session)
        self.refs = SqlMessageRefRepository(session)
        self.kv = SqlKeyValueRepository(session)
        self.blobs = SqlBlobRepository(session)
        self.export = SqlExportRepository(session)
        self.links = SqlLinkRepository(session)
        self.timers = SqlTimerRepository(session)
        self.reports = SqlReportRepository(session)
        self.crises = SqlCrisisRepository(session)
        self.drills = SqlDrillRunRepository(session)
        self.erasure = SqlErasureRepository(session, self.events)
        self.chats = SqlSeenChatRepository(session)
        self.vk_events = SqlVkEventRepository(session)
        self.telegram_updates = SqlTelegramUpdateRepository(session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._session is not None
        try:
            await self._session.rollback()  # a no-op after commit
        finally:
            try:
                await self._session.close()
            finally:
                self._session = None
                if self._gate is not None:
                    self._gate.release()
        # A deadlock or serialization failure anywhere in the transaction: it was rolled back
        # whole, and callers that run a lost race again (ConcurrentUpdate) do so.
        if exc is not None and not isinstance(exc, ConcurrentUpdate) and lost_race(exc):
            raise ConcurrentUpdate(f"transaction lost a race: {exc}") from exc

    async def commit(self) -> None:
        assert self._session is not None
        await self.events.flush()  # appended events join the audit chain last (events.py)
        await self._session.commit()

    @property
    def session(self) -> AsyncSession:
        """For store-internal queries (reports); services use the repositories."""
        assert self._session is not None
        return self._session
