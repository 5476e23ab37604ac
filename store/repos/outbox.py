"""Queueing many outbox items in a few statements: what SqlOutboxRepository.enqueue does item
by item (skip known keys, fold an edit into its message's waiting post, supersede older
waiting edits), for batches such as the SLA clock's 500 timers per transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat.outbox import OutboxItem, OutboxOp, OutboxStatus
from store.driver import insert_rows
from store.models import OutboxRow

_OUTBOX = cast(Table, OutboxRow.__table__)
_KEYS = 500

Target = tuple[str, str, str]  # transport, chat, ref_key


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


async def enqueue_many(session: AsyncSession, items: Sequence[OutboxItem]) -> int:
    """Queue items in order; returns how many were queued (folded edits and known keys are
    not counted), like calling enqueue on each."""
    if any(item.created_at is None for item in items):
        raise ValueError("outbox items carry their creation time")
    # Of several edits of one message in the batch only the last matters.
    last_edit: dict[Target, int] = {}
    for index, item in enumerate(items):
        if item.op is OutboxOp.EDIT and item.ref_key:
            last_edit[(item.transport, item.chat, item.ref_key)] = index
    skipped = {
        i
        for i, item in enumerate(items)
        if item.op is OutboxOp.EDIT
        and item.ref_key
        and last_edit[(item.transport, item.chat, item.ref_key)] != i
    }
    skipped |= await _fold_edits(session, items, last_edit)
    rows = [_row(item) for i, item in enumerate(items) if i not in skipped]
    # Counted from the keys: executemany's rowcount is not reliable on every driver.
    keys = {row[0] for row in rows}
    known = 0
    for chunk in _chunks(sorted(keys), _KEYS):
        found = await session.execute(
            select(_OUTBOX.c.idempotency_key).where(_OUTBOX.c.idempotency_key.in_(chunk))
        )
        known += len(found.all())
    await insert_rows(session, _OUTBOX, _COLUMNS, rows, skip_conflicts_on="idempotency_key")
    queued = len(keys) - known
    return queued


async def _fold_edits(
    session: AsyncSession, items: Sequence[OutboxItem], last_edit: dict[Target, int]
) -> set[int]:
    """Fold the batch's edits into waiting posts of the same message; supersede waiting
    edits. Returns the indexes of the edits folded away."""
    if not last_edit:
        return set()
    by_chat: dict[tuple[str, str], list[str]] = {}
    for transport, chat, ref in last_edit:
        by_chat.setdefault((transport, chat), []).append(ref)
    columns = (_OUTBOX.c.id, _OUTBOX.c.op, _OUTBOX.c.transport, _OUTBOX.c.chat, _OUTBOX.c.ref_key)
    waiting: list[Any] = []
    for (transport, chat), refs in by_chat.items():
        for chunk in _chunks(sorted(refs), _KEYS):
            # transport and chat first: the outbox's target index answers it.
            query = select(*columns).where(
                _OUTBOX.c.transport == transport,
                _OUTBOX.c.chat == chat,
                _OUTBOX.c.ref_key.in_(chunk),
                _OUTBOX.c.status == OutboxStatus.PENDING.value,
            )
            waiting += (await session.execute(query)).all()
    folded: set[int] = set()
    payloads: list[dict[str, Any]] = []
    superseded: list[int] = []
    posts = (OutboxOp.POST.value, OutboxOp.REPLY.value)
    for row in waiting:
        index = last_edit.get((row.transport, row.chat, row.ref_key))
        if index is None:
            continue
        if row.op in posts:
            payloads.append({"b_id": row.id, "b_payload": items[index].payload})
            folded.add(index)
        elif row.op == OutboxOp.EDIT.value:
            superseded.append(row.id)
    if payloads:
        await session.execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.id == bindparam("b_id"))
            .values(payload=bindparam("b_payload")),
            payloads,
        )
    # Waiting older edits would only overwrite the newer content: drop them.
    for chunk in _chunks(superseded, _KEYS):
        await session.execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(chunk))
            .values(status=OutboxStatus.SUPERSEDED.value)
        )
    return folded


_COLUMNS = (
    "idempotency_key",
    "transport",
    "chat",
    "thread",
    "op",
    "ref_key",
    "reply_to_key",
    "payload",
    "case_id",
    "urgency",
    "status",
    "attempts",
    "created_at",
    "next_attempt_at",
)


def _row(item: OutboxItem) -> tuple[Any, ...]:
    return (
        item.idempotency_key,
        item.transport,
        item.chat,
        item.thread,
        item.op.value,
        item.ref_key,
        item.reply_to_key,
        item.payload,
        item.case_id,
        item.urgency,
        OutboxStatus.PENDING.value,
        0,
        item.created_at,
        item.next_attempt_at or item.created_at,
    )
