"""The case history and audit trail: events appended to a hash chain, never changed
(store/audit.py says how a row is sealed and linked; migration 0010 adds the triggers).

Appended events wait in the unit of work and are chained at commit (or before a read of the
events): the chain's head is read and extended under a lock held only from there to commit.
On PostgreSQL that lock is a transaction-scoped advisory lock, so processes that share the
database take turns at the head; on SQLite the one writer at a time does the same. The
unique prev_hash makes a fork impossible whatever happens: a lost race is ConcurrentUpdate.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.model import Event
from bot.ports import ConcurrentUpdate
from store.audit import (
    GENESIS,
    AuditRecord,
    ChainChecker,
    ChainReport,
    link_hash,
    new_nonce,
    seal_of,
)
from store.driver import insert_rows
from store.mappers import EVENT_COLUMNS, audit_record_from_row, event_from_row, event_rows
from store.models import EventRow

_EVENTS = cast(Table, EventRow.__table__)
_CHAINED_COLUMNS = (*EVENT_COLUMNS, "prev_hash", "hash", "seal", "nonce")
# pg_advisory_xact_lock key: "otklik events" as a number, the same in every process.
CHAIN_LOCK = 0x6F746B6C696B_01
VERIFY_PAGE = 5_000


class SqlEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session
        self._pending: list[Event] = []
        self._last_linked_to = GENESIS

    async def append(self, events: Sequence[Event]) -> None:
        # Chained at commit (flush): the chain's head stays locked for the shortest time.
        self._pending.extend(events)

    async def flush(self) -> str | None:
        """Chain and insert the appended events; the new head's hash (None: nothing new)."""
        if not self._pending:
            return None
        events, self._pending = self._pending, []
        connection = await self._s.connection()
        if connection.dialect.name == "postgresql":
            await connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({CHAIN_LOCK})")
        head = await connection.exec_driver_sql("SELECT hash FROM events ORDER BY id DESC LIMIT 1")
        prev: str = head.scalar() or GENESIS
        rows: list[tuple[Any, ...]] = []
        linked_to = prev
        # Straight to the driver: the ORM's unit of work costs ~0.5 ms a row, Core's
        # parameter processing a tenth of that (the SLA clock appends hundreds at once).
        for values in event_rows(events):
            case_id, at, actor, kind, from_state, to_state, payload = values
            nonce = new_nonce()
            seal = seal_of(nonce, actor, payload)
            digest = link_hash(prev, case_id, at, kind, from_state, to_state, seal)
            rows.append((*values, prev, digest, seal, nonce))
            linked_to, prev = prev, digest
        try:
            await insert_rows(self._s, _EVENTS, _CHAINED_COLUMNS, rows)
        except IntegrityError as error:
            if "prev_hash" not in str(error.orig):
                raise  # a broken reference is a bug, not a race to run again
            raise ConcurrentUpdate(
                f"events: another writer extended the chain: {error.orig}"
            ) from error
        except OperationalError as error:
            if "locked" not in str(error.orig):
                raise
            # SQLite: another process wrote since this transaction read the chain's head.
            raise ConcurrentUpdate(f"events: {error.orig}") from error
        self._last_linked_to = linked_to
        return prev

    async def record(self, event: Event) -> int:
        """Append one event now and return its id (an erasure names it in what it redacts)."""
        await self.append([event])
        await self.flush()
        # prev_hash is unique and indexed: the row that follows the previous head.
        found = await self._s.scalar(
            select(EventRow.id).where(EventRow.prev_hash == self._last_linked_to)
        )
        assert found is not None
        return int(found)

    async def for_case(self, case_id: int) -> list[Event]:
        await self.flush()
        rows = await self._s.scalars(
            select(EventRow).where(EventRow.case_id == case_id).order_by(EventRow.id)
        )
        return [event_from_row(row) for row in rows]

    async def of_kind(self, kind: str, since: datetime | None = None) -> list[Event]:
        await self.flush()
        # No index on kind: the kinds asked for (reroutes, for retraining) are read rarely.
        query = select(EventRow).where(EventRow.kind == kind)
        if since is not None:
            query = query.where(EventRow.at >= since)
        rows = await self._s.scalars(query.order_by(EventRow.id))
        return [event_from_row(row) for row in rows]

    # --- the audit trail ---------------------------------------------------------------------

    async def records(
        self,
        after_id: int = 0,
        limit: int = VERIFY_PAGE,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        case_ids: Sequence[int] | None = None,
    ) -> list[AuditRecord]:
        """Stored events with their chain fields, id order, ids above `after_id`; `start`
        and `end` bound `at` (end excluded); `case_ids`: only events of those cases."""
        await self.flush()
        query = select(EventRow).where(EventRow.id > after_id)
        if start is not None:
            query = query.where(EventRow.at >= start)
        if end is not None:
            query = query.where(EventRow.at < end)
        if case_ids is not None:
            query = query.where(EventRow.case_id.in_(case_ids))
        rows = await self._s.scalars(
            query.order_by(EventRow.id).limit(limit).execution_options(populate_existing=True)
        )
        return [audit_record_from_row(row) for row in rows]

    async def verify(self) -> ChainReport:
        """Walk the whole chain from the first event; stop at the first that does not fit."""
        checker = ChainChecker()
        after = 0
        while page := await self.records(after, VERIFY_PAGE):
            if not checker.feed(page):
                break
            after = page[-1].id
        return checker.report()

    async def erasures_of(self, kind: str, key: str, value: object) -> list[Event]:
        """Events of an erasure kind whose payload says `key` = `value` (idempotent erasure
        asks whether it has run already). Erasures are few: read them all."""
        await self.flush()
        rows = await self._s.scalars(
            select(EventRow).where(EventRow.kind == kind).order_by(EventRow.id)
        )
        return [event_from_row(row) for row in rows if (row.payload or {}).get(key) == value]

    async def redact(self, redactions: Sequence[tuple[int, str, dict[str, Any]]], by: int) -> None:
        """Rewrite the personal part (actor, payload) of events (id, actor, payload), as the
        erasure event `by` orders: the only change the triggers let through."""
        if not redactions:
            return
        await self.flush()
        await self._s.execute(
            update(_EVENTS)
            .where(_EVENTS.c.id == bindparam("b_id"))
            .values(
                actor=bindparam("b_actor"),
                payload=bindparam("b_payload", type_=_EVENTS.c.payload.type),
                nonce=None,
                redacted_by=by,
            ),
            [
                {"b_id": i, "b_actor": actor, "b_payload": payload}
                for i, actor, payload in redactions
            ],
        )
