"""The unit of work: one session, one transaction, repositories sharing it."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.blobs import SqlBlobRepository
from store.crises import SqlCrisisRepository
from store.export import SqlExportRepository
from store.links import SqlLinkRepository
from store.reports import SqlReportRepository
from store.repositories import (
    SqlAuthorRepository,
    SqlCaseRepository,
    SqlEventRepository,
    SqlKeyValueRepository,
    SqlMentionRepository,
    SqlMessageRefRepository,
    SqlOutboxRepository,
)
from store.timers import SqlTimerRepository


class SqlUnitOfWork:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> SqlUnitOfWork:
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
            await self._session.close()
            self._session = None

    async def commit(self) -> None:
        assert self._session is not None
        await self._session.commit()

    @property
    def session(self) -> AsyncSession:
        """For store-internal queries (reports); services use the repositories."""
        assert self._session is not None
        return self._session
