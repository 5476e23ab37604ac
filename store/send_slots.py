"""Send slots shared by every instance on one PostgreSQL database (bot.ports.SendSlots).

Each scope (a chat, a group, the whole bot) is one row holding its latest send times, oldest
first and at most its limit: a sliding window as Telegram counts it, the same shape the
in-process limiter keeps (handlers/telegram/limits.py). A token bucket or GCRA with a burst
would let a window hold nearly twice its limit right after a burst; a sliding window never does.

One statement, in autocommit, reserves a send in all scopes of a message or in none: it locks
the scopes' rows in key order (two senders never wait on each other crosswise), checks each
window with the database's clock, so that instances on different machines agree, and appends
the send time to every window only if all of them have room. A scope seen for the first time
gets its row first (a second statement, once per chat). A row whose every send has left its
window for long (KEEP_IDLE_S, and never less than the longest window asked for) says nothing
any more: now and then (PRUNE_EVERY_S) a reservation deletes a bounded batch of them, so the
table holds the chats written to lately, not every chat ever. A scope pruned and asked for
again starts empty, as its window would be.

SQLite needs none of this: one process, whose in-process limiter sees every send.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.ports import SendSlotsUnavailable, SlotScope
from store.db import Database
from store.driver import rowcount

__all__ = ["SqlSendSlots"]

log = logging.getLogger(__name__)

# `usable` may be below `keep` (the scope's limit): a message that may not use the slots kept
# for urgent ones finds the window full sooner, and every window keeps `keep` send times.
# The send time is never before the window's latest, should the database's clock step back.
RESERVE = text(
    """
WITH wanted AS (
    SELECT scope, usable, keep, span * interval '1 second' AS span
    FROM unnest(
        CAST(:scopes AS text[]), CAST(:usable AS int[]), CAST(:keep AS int[]),
        CAST(:spans AS float8[])
    ) AS w(scope, usable, keep, span)
),
held AS (
    SELECT s.scope, s.sent FROM send_slots AS s
    WHERE s.scope = ANY(CAST(:scopes AS text[]))
    ORDER BY s.scope
    FOR UPDATE
),
checked AS (
    SELECT h.scope, h.sent, w.keep,
        CASE WHEN cardinality(h.sent) < w.usable THEN 0.0
        ELSE extract(epoch FROM
            h.sent[cardinality(h.sent) - w.usable + 1] + w.span - clock_timestamp())
        END AS wait
    FROM held AS h JOIN wanted AS w USING (scope)
),
verdict AS (
    SELECT coalesce(max(wait), 0.0) AS wait, count(*) AS found FROM checked
),
granted AS (
    UPDATE send_slots AS s
    SET sent = (c.sent || greatest(clock_timestamp(), c.sent[cardinality(c.sent)]))
        [greatest(1, cardinality(c.sent) + 2 - c.keep):]
    FROM checked AS c, verdict AS v
    WHERE s.scope = c.scope AND v.wait <= 0 AND v.found = :count
    RETURNING s.scope
)
SELECT CAST(greatest(v.wait, 0.0) AS float8) AS wait, v.found,
    (SELECT count(*) FROM granted) AS granted
FROM verdict AS v
"""
)

CREATE_SCOPES = text(
    """
INSERT INTO send_slots (scope, sent)
SELECT scope, CAST('{}' AS timestamptz[])
FROM unnest(CAST(:scopes AS text[])) AS scope
ORDER BY scope
ON CONFLICT (scope) DO NOTHING
"""
)

# Rows idle this long go (at least the longest window's span: an idle row's sends have all
# left it), a batch at a time, at most this often per instance.
KEEP_IDLE_S = 600.0
PRUNE_EVERY_S = 60.0
PRUNE_BATCH = 1000
PRUNE_IDLE = text(
    """
DELETE FROM send_slots
WHERE scope IN (
    SELECT scope FROM send_slots
    WHERE coalesce(sent[cardinality(sent)], '-infinity')
        < clock_timestamp() - CAST(:idle_s AS float8) * interval '1 second'
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
)
"""
)

# A grant whose statement took longer than this to answer may have been stamped well before the
# send can leave (the windows allow 0.1 s for that, handlers/telegram/limits.py): it is left
# spent and another asked for, this many times at most, so that a database slow all the time
# neither stops sends nor fills the windows with spent slots.
LATE_AFTER_S = 0.1
LATE_GRANT_RETRIES = 2


class SqlSendSlots:
    """bot.ports.SendSlots on PostgreSQL, over a few connections of its own from the engine's
    pool: one round trip a reservation (no BEGIN/COMMIT in autocommit, no check-out ping).
    Several connections, because a group's minute opening lets many chats ask at once: on one
    connection each would queue behind the others' round trips."""

    def __init__(
        self,
        database: Database,
        timeout_s: float = 5.0,
        connections: int = 3,
        late_after_s: float = LATE_AFTER_S,
        keep_idle_s: float = KEEP_IDLE_S,
        prune_every_s: float = PRUNE_EVERY_S,
    ) -> None:
        if database.is_sqlite:
            raise ValueError("send slots are shared through PostgreSQL; SQLite needs none")
        self._database = database
        self._timeout_s = timeout_s
        self._late_after_s = late_after_s
        self._idle: list[AsyncConnection] = []
        self._turns = asyncio.Semaphore(connections)
        self._keep_idle_s = keep_idle_s
        self._prune_every_s = prune_every_s
        self._pruned_at = time.monotonic()
        self._longest_span_s = 0.0

    async def reserve(self, scopes: Sequence[SlotScope]) -> float:
        keys = [scope.key for scope in scopes]
        if len(set(keys)) != len(keys):
            raise ValueError(f"a scope named twice: {keys}")
        if not scopes:
            return 0.0
        params: dict[str, Any] = {
            "scopes": keys,
            "usable": [scope.usable for scope in scopes],
            "keep": [scope.limit for scope in scopes],
            "spans": [scope.span_s for scope in scopes],
            "count": len(scopes),
        }
        async with self._turns:
            connection: AsyncConnection | None = None
            try:
                async with asyncio.timeout(self._timeout_s):
                    connection = self._idle.pop() if self._idle else await self._connect()
                    wait, found = await self._ask_in_time(connection, params)
                    # A scope seen for the first time gets its row; a second time only if a
                    # prune elsewhere took it between the two statements.
                    for _ in range(2):
                        if found == len(scopes):
                            break
                        await connection.execute(CREATE_SCOPES, {"scopes": keys})
                        wait, found = await self._ask_in_time(connection, params)
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                await _discard(connection)
                raise SendSlotsUnavailable(f"{type(exc).__name__}: {exc}") from exc
            except asyncio.CancelledError:
                await _discard(connection)  # a statement may be half-way: not to be reused
                raise
            self._longest_span_s = max(self._longest_span_s, *params["spans"])
            fit = True
            if time.monotonic() - self._pruned_at >= self._prune_every_s:
                self._pruned_at = time.monotonic()
                fit = await self._prune(connection)  # the reservation stands either way
            if fit:
                self._idle.append(connection)
        if found < len(scopes):  # created a moment ago and gone again: ask once more later
            raise SendSlotsUnavailable(f"send slot scopes missing: {keys}")
        return wait

    async def _prune(self, connection: AsyncConnection) -> bool:
        """A batch of idle rows goes; whether the connection is still fit for use."""
        idle_s = max(self._keep_idle_s, self._longest_span_s)
        try:
            async with asyncio.timeout(self._timeout_s):
                pruned = await connection.execute(
                    PRUNE_IDLE, {"idle_s": idle_s, "batch": PRUNE_BATCH}
                )
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("send slots: idle scopes not pruned (%s); next time", exc)
            await _discard(connection)
            return False
        except asyncio.CancelledError:
            await _discard(connection)
            raise
        log.debug("send slots: %s idle scopes pruned", rowcount(pruned))
        return True

    async def _ask_in_time(
        self, connection: AsyncConnection, params: dict[str, Any]
    ) -> tuple[float, int]:
        """The reservation, asked again when a grant came late (LATE_AFTER_S). Timed from
        the statement alone: waiting for a connection only makes the stamp later, not stale."""
        for late in itertools.count():
            asked = time.monotonic()
            wait, found = await self._ask(connection, params)
            answered_in = time.monotonic() - asked
            if wait > 0 or found < params["count"] or answered_in <= self._late_after_s:
                return wait, found
            if late >= LATE_GRANT_RETRIES:
                return wait, found
            log.debug("send slots: granted %.3f s late, asking again", answered_in)
        raise AssertionError("unreachable")

    @staticmethod
    async def _ask(connection: AsyncConnection, params: dict[str, Any]) -> tuple[float, int]:
        row = (await connection.execute(RESERVE, params)).one()
        return float(row.wait), int(row.found)

    async def _connect(self) -> AsyncConnection:
        connection = await self._database.engine.connect()
        return await connection.execution_options(isolation_level="AUTOCOMMIT")

    async def close(self) -> None:
        """Returns its connections to the pool (before the database is disposed of)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


async def _discard(connection: AsyncConnection | None) -> None:
    if connection is None:
        return
    with contextlib.suppress(Exception):
        await connection.invalidate()
    with contextlib.suppress(Exception):
        await connection.close()
