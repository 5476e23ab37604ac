"""Leader election among instances on one PostgreSQL database: a session-level advisory lock.

The elector holds one connection of its own. While it does not lead it tries
`pg_try_advisory_lock(LEADER_LOCK_KEY)` every `check_s`; while it leads it asks the server,
every `check_s`, whether its session still holds the lock. Any error, a timeout, a lost
connection or a terminated backend ends leadership at once: the connection is dropped (the
server frees the lock with the session) and the next attempt comes `check_s` later.

A killed leader's TCP connection closes with its process, and PostgreSQL frees the lock with
the session: another instance leads within one `check_s`. A leader that hangs without dying
(a frozen VM, a network partition) stops asking; `idle_session_timeout` then ends its session
on the server after IDLE_CHECKS intervals, so the lock does not outlive it for long either.

Who reacts to the changes is the caller's business (`on_change`); this module only speaks SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

# One fixed key for "the Otklik leader" (ASCII "otkl"); under 2**31, so pg_locks shows it as
# objid with classid 0.
LEADER_LOCK_KEY = 0x6F746B6C
# A leader silent this many intervals loses its session on the server (idle_session_timeout).
IDLE_CHECKS = 3

_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")
_HOLDS_LOCK = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND classid = 0 AND objid = :key AND objsubid = 1)"
)


class LeaderElector:
    """Whether this instance leads, kept true to an advisory lock. `run` until `stop`."""

    def __init__(
        self,
        url: str,
        instance: str,
        on_change: Callable[[bool], None],
        check_s: float = 5.0,
        key: int = LEADER_LOCK_KEY,
    ) -> None:
        if make_url(url).get_backend_name() != "postgresql":
            raise ValueError("leader election needs PostgreSQL")
        self._key = key
        self._check_s = check_s
        self._on_change = on_change
        self._instance = instance
        self._idle_ms = int(check_s * IDLE_CHECKS * 1000)
        # NullPool: the one connection is ours alone, and closing it really closes it.
        self._engine: AsyncEngine = create_async_engine(
            url,
            poolclass=NullPool,
            connect_args={
                "timeout": check_s,
                "command_timeout": check_s,
                "server_settings": {"application_name": f"otklik-leader {instance}"[:63]},
            },
        )
        self._connection: AsyncConnection | None = None
        self._closed = False
        self.leading = False

    async def attempt(self) -> bool:
        """One step: take the lock when free, or check that we still hold it. Whether we
        lead afterwards. Closed: never again (a run still looping must not take the lock back)."""
        if self._closed:
            return False
        try:
            await asyncio.wait_for(self._step(), self._check_s)
        except Exception as error:  # includes TimeoutError: an unanswered check is a loss
            if self.leading:
                log.warning("leader %s: lost leadership: %s", self._instance, _short(error))
            else:
                log.debug("leader %s: cannot try the lock: %s", self._instance, _short(error))
            await self._drop()
            self._set(False)
        return self.leading

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and not self._closed:
            await self.attempt()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._check_s)

    async def close(self) -> None:
        """Give the lock up (the session ends) so that another instance leads at once."""
        self._closed = True
        await self._drop()
        self._set(False)
        await self._engine.dispose()

    async def _step(self) -> None:
        if self._connection is None:
            connection = await self._engine.connect()
            self._connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            # PostgreSQL 14 and later end a session silent this long (older ones cannot).
            version = await self._connection.scalar(text("SHOW server_version_num"))
            if int(version or 0) >= 140000:
                await self._connection.execute(
                    text(f"SET idle_session_timeout = {self._idle_ms}")  # an int: no injection
                )
        if self.leading:
            held = await self._connection.scalar(_HOLDS_LOCK, {"key": self._key})
            if not held:
                raise RuntimeError("the session no longer holds the leader lock")
            return
        if await self._connection.scalar(_TRY_LOCK, {"key": self._key}):
            log.info("leader %s: now leading", self._instance)
            self._set(True)

    def _set(self, leading: bool) -> None:
        if leading != self.leading:
            self.leading = leading
            self._on_change(leading)

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        # A dead connection cannot say goodbye: do not wait for it.
        with contextlib.suppress(Exception):
            await connection.invalidate()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), self._check_s)


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]
