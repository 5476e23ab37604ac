"""The outbox: messages waiting for their transport, in the transaction that caused them.

enqueue takes items one by one; enqueue_many does the same (skip known keys, fold an edit
into its message's waiting post or waiting edit) in a few statements, for batches such as the
SLA clock's 500 timers per transaction."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    Table,
    TextualSelect,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.messages.outbox import (
    UNDELIVERED,
    CardBacklog,
    OutboxItem,
    OutboxOp,
    OutboxStatus,
    PackChange,
    WaitingCard,
    WaitingWork,
)
from bot.messages.views import View, as_view
from bot.model import CaseState, Priority
from store.driver import chunks, conflict_insert, driver_sql, insert_rows, one_of, rowcount
from store.mappers import OUTBOX_COLUMNS, outbox_from_row, outbox_row, outbox_values
from store.models import CaseRow, MessageRefRow, OutboxRow

_OUTBOX = cast(Table, OutboxRow.__table__)
_CASES = cast(Table, CaseRow.__table__)
_UNDELIVERED = [s.value for s in UNDELIVERED]
_CARD = "card:"  # bot/messages/views.py card_ref
_QUEUE = "queue:"  # bot/messages/delivery.py QUEUE_REF
_PACK = "pack:"  # bot/messages/views.py pack_ref
UNPACKED = "unpacked: its pack card was refused for good"

_Target = tuple[str, str, str]  # transport, chat, ref_key

# The outbox again, under other names, for the subqueries below: made once, as each new alias
# costs most of a millisecond to build its columns on first use (per watch, per chat).
_DRAWN = aliased(OutboxRow)
_OTHER = aliased(OutboxRow)
_PACKED = aliased(OutboxRow)
_NEWER = aliased(OutboxRow)
_PACK_POST = aliased(OutboxRow)
_DELIVERED = aliased(OutboxRow)
_HELD = _OUTBOX.alias("held")
_SENDER = _OUTBOX.alias("sender")


class SqlOutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def enqueue(self, items: Sequence[OutboxItem]) -> int:
        queued = 0
        for item in items:
            if item.created_at is None:
                raise ValueError("outbox items carry their creation time")
            if item.op is OutboxOp.EDIT and item.ref_key and await self._coalesce(item):
                continue
            statement = (
                conflict_insert(self._s, OutboxRow)
                .values(**outbox_values(item))
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(OutboxRow.id)
            )
            if (await self._s.execute(statement)).scalar_one_or_none() is not None:
                queued += 1
        return queued

    async def _coalesce(self, edit: OutboxItem) -> bool:
        """Fold an edit into the waiting post or edit of the same message. True if folded."""
        same_message = (
            OutboxRow.transport == edit.transport,
            OutboxRow.chat == edit.chat,
            OutboxRow.ref_key == edit.ref_key,
            OutboxRow.status == OutboxStatus.PENDING.value,
        )
        # The message is not out yet: send the latest version instead of sending then editing.
        folded = await self._s.execute(
            update(OutboxRow)
            .where(*same_message, OutboxRow.op.in_((OutboxOp.POST.value, OutboxOp.REPLY.value)))
            .values(payload=edit.payload)
        )
        if rowcount(folded):
            return True
        # A waiting edit takes the newest content where it stands in the line: a card that keeps
        # changing (a cluster in a storm) would otherwise go to the back at every change and
        # show its new mentions last.
        refreshed = await self._s.execute(
            update(OutboxRow)
            .where(*same_message, OutboxRow.op == OutboxOp.EDIT.value)
            .values(
                payload=edit.payload,
                urgency=case(
                    (OutboxRow.urgency >= edit.urgency, OutboxRow.urgency), else_=edit.urgency
                ),
            )
        )
        return bool(rowcount(refreshed))

    async def enqueue_many(self, items: Sequence[OutboxItem]) -> int:
        """Queue items in order; returns how many were queued (folded edits and known keys are
        not counted), like calling enqueue on each."""
        if any(item.created_at is None for item in items):
            raise ValueError("outbox items carry their creation time")
        # Of several edits of one message in the batch only the last matters.
        last_edit: dict[_Target, int] = {}
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
        skipped |= await self._fold_edits(items, last_edit)
        rows = [outbox_row(item) for i, item in enumerate(items) if i not in skipped]
        # Counted from the keys: executemany's rowcount is not reliable on every driver.
        keys = {row[0] for row in rows}
        known = 0
        for chunk in chunks(sorted(keys)):
            found = await self._s.execute(
                select(_OUTBOX.c.idempotency_key).where(
                    one_of(self._s, _OUTBOX.c.idempotency_key, chunk)
                )
            )
            known += len(found.all())
        await insert_rows(
            self._s, _OUTBOX, OUTBOX_COLUMNS, rows, skip_conflicts_on="idempotency_key"
        )
        queued = len(keys) - known
        return queued

    async def _fold_edits(
        self, items: Sequence[OutboxItem], last_edit: dict[_Target, int]
    ) -> set[int]:
        """Fold the batch's edits into waiting posts of the same message; supersede waiting
        edits. Returns the indexes of the edits folded away."""
        if not last_edit:
            return set()
        by_chat: dict[tuple[str, str], list[str]] = {}
        for transport, chat, ref in last_edit:
            by_chat.setdefault((transport, chat), []).append(ref)
        columns = (
            _OUTBOX.c.id,
            _OUTBOX.c.op,
            _OUTBOX.c.transport,
            _OUTBOX.c.chat,
            _OUTBOX.c.ref_key,
        )
        waiting: list[Any] = []
        for (transport, chat), refs in by_chat.items():
            for chunk in chunks(sorted(refs)):
                # transport and chat first: the outbox's target index answers it.
                query = select(*columns).where(
                    _OUTBOX.c.transport == transport,
                    _OUTBOX.c.chat == chat,
                    one_of(self._s, _OUTBOX.c.ref_key, chunk),
                    _OUTBOX.c.status == OutboxStatus.PENDING.value,
                )
                waiting += (await self._s.execute(query)).all()
        folded: set[int] = set()
        payloads: list[dict[str, Any]] = []
        edits: list[dict[str, Any]] = []
        posts = (OutboxOp.POST.value, OutboxOp.REPLY.value)
        for row in waiting:
            index = last_edit.get((row.transport, row.chat, row.ref_key))
            if index is None:
                continue
            if row.op in posts:
                payloads.append({"b_id": row.id, "b_payload": items[index].payload})
                folded.add(index)
            elif row.op == OutboxOp.EDIT.value:
                # As in _coalesce: the newest content where the waiting edit stands in line.
                edit = {"b_id": row.id, "b_payload": items[index].payload}
                edits.append({**edit, "b_urgency": items[index].urgency})
                folded.add(index)
        if payloads:
            await self._s.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id == bindparam("b_id"))
                .values(payload=bindparam("b_payload", type_=_OUTBOX.c.payload.type)),
                payloads,
            )
        if edits:
            urgency = bindparam("b_urgency", type_=_OUTBOX.c.urgency.type)
            await self._s.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id == bindparam("b_id"))
                .values(
                    payload=bindparam("b_payload", type_=_OUTBOX.c.payload.type),
                    urgency=case((_OUTBOX.c.urgency >= urgency, _OUTBOX.c.urgency), else_=urgency),
                ),
                edits,
            )
        return folded

    # The hot reads below (every dispatch and backlog watch) select the table's columns, not
    # OutboxRow entities: the items are built from plain rows, without the ORM's instances.
    async def due_heads(self, now: datetime, limit: int) -> list[OutboxItem]:
        postgres = self._s.get_bind().dialect.name == "postgresql"
        statement = _due_heads_probed() if postgres else _due_heads()
        rows = await self._s.execute(statement, {"now": now, "limit": limit})
        return [outbox_from_row(row) for row in rows]

    async def waiting_work(
        self, transport: str, chat: str, urgency: int, now: datetime, limit: int
    ) -> list[WaitingWork]:
        # Columns only: no payload is decrypted to choose (the chosen item is read whole).
        rows = (
            await self._s.execute(
                _waiting_work(),
                {
                    "transport": transport,
                    "chat": chat,
                    "urgency": urgency,
                    "now": now,
                    "limit": limit,
                },
            )
        ).all()
        return await self._waiting_work(transport, chat, now, rows)

    async def card_backlog(self, transport: str, chat: str, limit: int) -> CardBacklog:
        waiting = (
            OutboxRow.transport == transport,
            OutboxRow.chat == chat,
            or_(OutboxRow.status.in_(_UNDELIVERED), _packed_unseen()),
            OutboxRow.op == OutboxOp.POST.value,
            OutboxRow.ref_key.startswith(_CARD),
        )
        # A case's card is one post per chat; its case row has the mentions as they are now
        # (a waiting post takes every later version of the card: enqueue folds edits in).
        listed = await self._s.execute(
            select(CaseRow.id, CaseRow.priority, CaseRow.mention_count)
            .join(OutboxRow, OutboxRow.case_id == CaseRow.id)
            .where(*waiting)
            .order_by(CaseRow.mention_count.desc(), OutboxRow.urgency.desc(), OutboxRow.id)
            .limit(limit)
        )
        totals = (
            await self._s.execute(
                select(func.count(), func.coalesce(func.sum(CaseRow.mention_count), 0))
                .join(OutboxRow, OutboxRow.case_id == CaseRow.id)
                .where(*waiting)
            )
        ).one()
        updating, added = await self._growth_waiting(transport, chat)
        return CardBacklog(
            listed=[WaitingCard(int(i), str(p), int(m)) for i, p, m in listed],
            cases=int(totals[0]),
            mentions=int(totals[1]),
            updating=updating,
            updating_mentions=added,
        )

    async def _growth_waiting(self, transport: str, chat: str) -> tuple[int, int]:
        """Cards in the chat whose redraw waits: how many, and how many mentions the redraws
        add to what the chat shows (the last version delivered)."""
        pending = await self._s.execute(
            select(OutboxRow.ref_key, CaseRow.mention_count)
            .join(CaseRow, CaseRow.id == OutboxRow.case_id)
            .where(
                OutboxRow.transport == transport,
                OutboxRow.chat == chat,
                OutboxRow.status.in_(_UNDELIVERED),
                OutboxRow.op == OutboxOp.EDIT.value,
                OutboxRow.ref_key.startswith(_CARD),
            )
        )
        now_counts = {str(ref): int(count) for ref, count in pending}
        if not now_counts:
            return 0, 0
        shown = await self._shown_counts(transport, chat, now_counts)
        # A card not delivered at all is in hand or waiting: counted among the waiting.
        growth = [now_counts[ref] - count for ref, count in shown.items()]
        grown = [g for g in growth if g > 0]
        return len(grown), sum(grown)

    async def _shown_counts(
        self, transport: str, chat: str, refs: Collection[str]
    ) -> dict[str, int]:
        """The mentions each card shows in the chat now: its last version that reached the
        chat (a card is edited many times). A card not there at all is left out."""
        shown: dict[str, int] = {}
        for chunk in chunks(sorted(refs)):
            latest = (
                select(func.max(OutboxRow.id))
                .where(
                    OutboxRow.transport == transport,
                    OutboxRow.chat == chat,
                    one_of(self._s, OutboxRow.ref_key, chunk),
                    # A line of a pack in the chat shows the card as it was packed.
                    or_(OutboxRow.status == OutboxStatus.DELIVERED.value, _packed_shown()),
                    OutboxRow.op.in_((OutboxOp.POST.value, OutboxOp.EDIT.value)),
                )
                .group_by(OutboxRow.ref_key)
            )
            delivered = await self._s.execute(
                select(OutboxRow.ref_key, OutboxRow.payload).where(OutboxRow.id.in_(latest))
            )
            for ref, payload in delivered:
                if isinstance(payload, dict) and isinstance(payload.get("case"), dict):
                    shown[str(ref)] = int(payload["case"].get("mention_count", 1))
        return shown

    async def _waiting_work(
        self, transport: str, chat: str, now: datetime, rows: Sequence[Any]
    ) -> list[WaitingWork]:
        edits = {
            str(r.ref_key)
            for r in rows
            if r.op == OutboxOp.EDIT.value and str(r.ref_key).startswith(_CARD)
        }
        shown = await self._shown_counts(transport, chat, edits)
        pack_edits = sorted(
            str(r.ref_key)
            for r in rows
            if str(r.ref_key).startswith(_PACK) and r.op == OutboxOp.EDIT.value
        )
        grown = await self._grown_on_packs(transport, chat, pack_edits)
        packs = sorted(
            str(r.ref_key)
            for r in rows
            if str(r.ref_key).startswith(_PACK) and r.op == OutboxOp.POST.value
        )
        # A pack shows the mentions of the cases packed on it, waiting since their cards
        # were queued.
        packed: dict[str, list[tuple[int, datetime]]] = {}
        for chunk in chunks(packs):
            on_pack = await self._s.execute(
                select(OutboxRow.external_ref, CaseRow.mention_count, OutboxRow.created_at)
                .join(CaseRow, CaseRow.id == OutboxRow.case_id)
                .where(
                    *_posts(transport, chat, OutboxStatus.PACKED),
                    one_of(self._s, OutboxRow.external_ref, chunk),
                )
            )
            for ref, n, at in on_pack.all():
                packed.setdefault(str(ref), []).append((int(n), _utc(at)))
        work: list[WaitingWork] = []
        for row in rows:
            ref, count, since = str(row.ref_key), int(row.mention_count or 1), _utc(row.created_at)
            redraw = row.op == OutboxOp.EDIT.value and (ref.startswith(_PACK) or ref in shown)
            parts: tuple[tuple[int, datetime], ...] = ()
            if ref.startswith(_PACK) and row.op == OutboxOp.EDIT.value:
                if ref not in grown:
                    continue  # a redraw that counts nothing new (a case on its own card now)
                reveals, since = grown[ref]
            elif ref.startswith(_PACK):
                parts = tuple(packed.get(ref, ()))
                reveals = sum(n for n, _ in parts)
                since = min([since, *(at for _, at in parts)])
            elif row.op == OutboxOp.EDIT.value:
                # A card not in the chat yet (its post in hand, or refused) shows all of it.
                reveals = max(0, count - shown.get(ref, 0))
            else:
                reveals = count
            work.append(
                WaitingWork(int(row.id), OutboxOp(row.op), ref, reveals, since, redraw, parts)
            )
        return work

    async def _grown_on_packs(
        self, transport: str, chat: str, refs: Collection[str]
    ) -> dict[str, tuple[int, datetime]]:
        """Per pack: the card edits that went onto it (delivery.py _onto_pack) since it was
        last drawn in the chat, each a mention or more its redraw counts newly, and since when
        the oldest waits."""
        drawn = _DRAWN
        last_drawn = (
            select(func.max(drawn.delivered_at))
            .where(
                drawn.transport == transport,
                drawn.chat == chat,
                drawn.ref_key == OutboxRow.external_ref,
                drawn.status == OutboxStatus.DELIVERED.value,
            )
            .scalar_subquery()
        )
        grown: dict[str, tuple[int, datetime]] = {}
        for chunk in chunks(sorted(refs)):
            result = await self._s.execute(
                select(OutboxRow.external_ref, func.count(), func.min(OutboxRow.created_at))
                .where(
                    OutboxRow.transport == transport,
                    OutboxRow.chat == chat,
                    OutboxRow.status == OutboxStatus.PACKED.value,
                    OutboxRow.op == OutboxOp.EDIT.value,
                    one_of(self._s, OutboxRow.external_ref, chunk),
                    or_(last_drawn.is_(None), OutboxRow.delivered_at > last_drawn),
                )
                .group_by(OutboxRow.external_ref)
            )
            grown.update({str(ref): (int(n), _utc(at)) for ref, n, at in result.all()})
        return grown

    # --- pack cards (bot/messages/delivery.py _pack_cards) -------------------------------

    async def packable_cards(
        self, transport: str, chat: str, max_mentions: int, limit: int
    ) -> list[OutboxItem]:
        rows = await self._s.execute(
            _packable_cards(),
            {"transport": transport, "chat": chat, "max_mentions": max_mentions, "limit": limit},
        )
        return [outbox_from_row(row) for row in rows]

    async def waiting_packs(
        self, transport: str, chat: str, thread: str | None
    ) -> list[OutboxItem]:
        where = {"transport": transport, "chat": chat}
        if thread is not None:
            where["thread"] = thread
        rows = await self._s.execute(_waiting_packs(thread is None), where)
        return [outbox_from_row(row) for row in rows]

    async def hold_waiting(self, item_id: int) -> bool:
        held = await self._s.scalar(_hold_waiting(), {"item_id": item_id})
        return held is not None

    async def repack_many(self, packs: Sequence[tuple[int, View, int]]) -> None:
        if not packs:
            return
        await self._s.execute(
            update(_OUTBOX)
            .where(
                _OUTBOX.c.id == bindparam("b_id"), _OUTBOX.c.status == OutboxStatus.PENDING.value
            )
            .values(
                payload=bindparam("b_payload", type_=_OUTBOX.c.payload.type),
                urgency=bindparam("b_urgency", type_=_OUTBOX.c.urgency.type),
            ),
            [{"b_id": i, "b_payload": payload, "b_urgency": u} for i, payload, u in packs],
        )

    async def mark_packed_many(
        self, groups: Sequence[tuple[Sequence[int], str]]
    ) -> list[list[int]]:
        connection = await self._s.connection()
        if connection.dialect.name != "postgresql":
            return [await self.mark_packed(ids, ref) for ids, ref in groups]
        pairs = [(item_id, index) for index, (ids, _) in enumerate(groups) for item_id in ids]
        if not pairs:
            return [[] for _ in groups]
        # One statement for every group: each item with its pack's ref, from two arrays.
        result = await connection.exec_driver_sql(
            driver_sql(connection.dialect, _MARK_PACKED),
            (
                OutboxStatus.PACKED.value,
                [item_id for item_id, _ in pairs],
                [groups[index][1] for _, index in pairs],
                OutboxStatus.PENDING.value,
            ),
        )
        group_of = dict(pairs)
        packed: list[list[int]] = [[] for _ in groups]
        for (item_id,) in result.all():
            packed[group_of[int(item_id)]].append(int(item_id))
        return [sorted(ids) for ids in packed]

    async def mark_packed(self, item_ids: Sequence[int], pack_ref: str) -> list[int]:
        packed: list[int] = []
        for chunk in chunks(list(item_ids)):
            result = await self._s.execute(
                update(_OUTBOX)
                .where(
                    one_of(self._s, _OUTBOX.c.id, chunk),
                    _OUTBOX.c.status == OutboxStatus.PENDING.value,
                )
                .values(status=OutboxStatus.PACKED.value, external_ref=pack_ref)
                .returning(_OUTBOX.c.id)
            )
            packed += [int(i) for i in result.scalars()]
        return sorted(packed)

    async def packed_card(self, transport: str, chat: str, ref_key: str) -> OutboxItem | None:
        rows = await self._s.execute(
            _packed_card(), {"transport": transport, "chat": chat, "ref_key": ref_key}
        )
        row = rows.first()
        return None if row is None else outbox_from_row(row)

    async def packed_card_edits(self, transport: str, chat: str, limit: int) -> list[OutboxItem]:
        rows = await self._s.execute(
            _packed_card_edits(), {"transport": transport, "chat": chat, "limit": limit}
        )
        return [outbox_from_row(row) for row in rows]

    async def onto_pack(self, item_id: int, pack_ref: str, now: datetime) -> bool:
        # delivered_at: when the pack took it, so its next redraw (pack_changes) sees it
        # however long the edit waited before.
        result = await self._s.execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.id == item_id, _OUTBOX.c.status == OutboxStatus.PENDING.value)
            .values(status=OutboxStatus.PACKED.value, external_ref=pack_ref, delivered_at=now)
        )
        return rowcount(result) == 1

    async def pack_changes(self, transport: str, since: datetime | None) -> list[PackChange]:
        newer = _NEWER
        changed = (
            select(OutboxRow.chat, OutboxRow.external_ref, OutboxRow.case_id, func.max(newer.id))
            .join(
                newer,
                and_(
                    newer.transport == OutboxRow.transport,
                    newer.chat == OutboxRow.chat,
                    newer.ref_key == OutboxRow.ref_key,
                    newer.id > OutboxRow.id,
                    newer.op.in_((OutboxOp.POST.value, OutboxOp.EDIT.value)),
                ),
            )
            .where(
                OutboxRow.transport == transport,
                OutboxRow.status == OutboxStatus.PACKED.value,
            )
            .group_by(OutboxRow.chat, OutboxRow.external_ref, OutboxRow.case_id)
        )
        if since is not None:
            # An edit folded into a waiting one (enqueue) keeps that one's creation time: a
            # change is one queued since, or folded into an item still waiting or delivered since.
            changed = changed.where(
                or_(
                    newer.created_at >= since,
                    newer.status.in_(_UNDELIVERED),
                    newer.delivered_at >= since,
                )
            )
        latest_cards: dict[tuple[str, str], dict[int, int]] = {}
        for chat, pack_ref, case_id, card_id in (await self._s.execute(changed)).all():
            latest_cards.setdefault((str(chat), str(pack_ref)), {})[int(case_id)] = int(card_id)
        changes: list[PackChange] = []
        for (chat, pack_ref), card_ids in sorted(latest_cards.items()):
            pack = await self._s.scalar(
                select(OutboxRow)
                .where(
                    OutboxRow.transport == transport,
                    OutboxRow.chat == chat,
                    OutboxRow.ref_key == pack_ref,
                )
                .order_by(OutboxRow.id.desc())
                .limit(1)
            )
            if pack is None:
                continue
            cards = (
                await self._s.scalars(
                    select(OutboxRow).where(
                        one_of(self._s, OutboxRow.id, sorted(card_ids.values()))
                    )
                )
            ).all()
            changes.append(
                PackChange(
                    transport=transport,
                    chat=chat,
                    ref_key=pack_ref,
                    thread=pack.thread,
                    payload=as_view(pack.payload),
                    cards={int(c.case_id or 0): as_view(c.payload) for c in cards},
                    on_pack=frozenset(
                        int(c.case_id or 0) for c in cards if c.status == OutboxStatus.PACKED.value
                    ),
                )
            )
        return changes

    async def unpack_lost(self, transport: str) -> int:
        pack = _PACK_POST
        waiting = select(pack.id).where(
            pack.transport == OutboxRow.transport,
            pack.chat == OutboxRow.chat,
            pack.ref_key == OutboxRow.external_ref,
            pack.status.in_(_UNDELIVERED),
        )
        delivered = _DELIVERED
        shown = select(delivered.id).where(
            delivered.transport == OutboxRow.transport,
            delivered.chat == OutboxRow.chat,
            delivered.ref_key == OutboxRow.external_ref,
            delivered.status == OutboxStatus.DELIVERED.value,
        )
        lost = await self._s.scalars(
            select(OutboxRow.id).where(
                OutboxRow.transport == transport,
                OutboxRow.status == OutboxStatus.PACKED.value,
                ~waiting.exists(),
                ~shown.exists(),
            )
        )
        ids = list(lost)
        for chunk in chunks(ids):
            await self._s.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_(chunk), _OUTBOX.c.status == OutboxStatus.PACKED.value)
                .values(status=OutboxStatus.PENDING.value, external_ref=None, last_error=UNPACKED)
            )
        return len(ids)

    async def replies_of(self, case_id: int, ref_key: str) -> dict[str, OutboxStatus]:
        # On ix_outbox_case, two columns: no payload is decrypted for a count.
        rows = await self._s.execute(
            select(OutboxRow.ref_key, OutboxRow.status).where(
                OutboxRow.case_id == case_id,
                OutboxRow.op == OutboxOp.REPLY.value,
                or_(OutboxRow.ref_key == ref_key, OutboxRow.ref_key.startswith(f"{ref_key}:")),
            )
        )
        return {ref: OutboxStatus(status) for ref, status in rows.all() if ref is not None}

    async def backlog(self, transport: str) -> dict[str, int]:
        """Undelivered items per chat of one transport, the queue message's own not counted
        (it may be delivered or waiting: either way it is not what waits)."""
        rows = await self._s.execute(_backlog(), {"transport": transport})
        return {chat: int(count) for chat, count in rows.all()}

    async def shown_queues(self, transport: str) -> dict[str, datetime]:
        """Chats whose latest queue message item is not its removal, with when it was queued:
        the queue messages shown now (or on their way), whoever queued them."""
        latest = (
            select(func.max(OutboxRow.id))
            .where(OutboxRow.transport == transport, OutboxRow.ref_key.startswith(_QUEUE))
            .group_by(OutboxRow.chat)
        )
        rows = await self._s.execute(
            select(OutboxRow.chat, OutboxRow.created_at).where(
                OutboxRow.id.in_(latest), OutboxRow.op != OutboxOp.DELETE.value
            )
        )
        return {chat: _utc(at) for chat, at in rows.all()}

    async def claim(
        self,
        item_id: int,
        now: datetime,
        owner: str | None = None,
        lease_until: datetime | None = None,
    ) -> bool:
        result = await self._s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == item_id, OutboxRow.status == OutboxStatus.PENDING.value)
            .values(
                status=OutboxStatus.SENDING.value,
                attempts=OutboxRow.attempts + 1,
                claimed_by=owner,
                lease_until=lease_until,
            )
        )
        return rowcount(result) == 1

    async def claim_heads(
        self, heads: Sequence[OutboxItem], owner: str, now: datetime, lease_until: datetime
    ) -> set[int]:
        """Claim chats' heads (read by due_heads) for `owner`: pending -> sending, with the
        owner and the lease. Returns the ids claimed.

        One sender per chat across instances: a head is claimed only while no other owner
        holds a live claim in its chat. Checking that in the claiming statement is not enough
        on PostgreSQL: the statement's snapshot may predate another instance's claim that
        commits a moment later, and a row lock on the head does not help when the two read
        different heads (a more urgent item came in between). So each chat is serialised by
        a transaction-scoped advisory lock taken first, with try (never waiting: a chat
        another instance is claiming right now is skipped this cycle); the claim that follows
        is a new statement, whose snapshot sees every claim committed before the lock was
        free. The claim then skips rows other transactions hold (FOR UPDATE SKIP LOCKED).
        SQLite has one writer at a time and one process: the same statement, without locks.
        """
        if not heads:
            return set()
        postgres = self._s.get_bind().dialect.name == "postgresql"
        if postgres:
            free = await self._lock_chats({(h.transport, h.chat) for h in heads})
            heads = [h for h in heads if _chat_lock_key(h.transport, h.chat) in free]
        ids = [h.id for h in heads if h.id is not None]
        if not ids:
            return set()
        held, sender = _HELD, _SENDER
        pending = (
            select(held.c.id)
            .where(one_of(self._s, held.c.id, ids), held.c.status == OutboxStatus.PENDING.value)
            .with_for_update(skip_locked=True)
        )
        live_sender = (
            select(sender.c.id)
            .where(
                sender.c.status == OutboxStatus.SENDING.value,
                sender.c.transport == _OUTBOX.c.transport,
                sender.c.chat == _OUTBOX.c.chat,
                sender.c.claimed_by != owner,
                sender.c.lease_until > now,
            )
            .exists()
        )
        claimed = await self._s.execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(pending.scalar_subquery()), ~live_sender)
            .values(
                status=OutboxStatus.SENDING.value,
                attempts=_OUTBOX.c.attempts + 1,
                claimed_by=owner,
                lease_until=lease_until,
            )
            .returning(_OUTBOX.c.id)
        )
        return {int(i) for i in claimed.scalars()}

    async def _lock_chats(self, chats: Collection[tuple[str, str]]) -> set[int]:
        """Try each chat's advisory lock for this transaction; the keys of those taken."""
        keys = sorted({_chat_lock_key(transport, chat) for transport, chat in chats})
        taken = await self._s.execute(
            text(
                "SELECT k FROM unnest(CAST(:keys AS integer[])) AS k "
                "WHERE pg_try_advisory_xact_lock(:space, k)"
            ),
            {"keys": keys, "space": _CHAT_LOCK_SPACE},
        )
        return {int(k) for k in taken.scalars()}

    async def renew_claims(
        self, item_ids: Collection[int], owner: str, lease_until: datetime
    ) -> int:
        """Extend `owner`'s live claims on these items (a slow upload keeps its chat)."""
        renewed = 0
        for chunk in chunks(sorted(item_ids)):
            result = await self._s.execute(
                update(OutboxRow)
                .where(
                    one_of(self._s, OutboxRow.id, chunk),
                    OutboxRow.status == OutboxStatus.SENDING.value,
                    OutboxRow.claimed_by == owner,
                )
                .values(lease_until=lease_until)
            )
            renewed += int(rowcount(result) or 0)
        return renewed

    async def mark_delivered(
        self, item_id: int, now: datetime, external_ref: str | None, owner: str | None = None
    ) -> None:
        await self.mark_delivered_many([(item_id, external_ref)], now, owner)

    async def mark_delivered_many(
        self, delivered: Sequence[tuple[int, str | None]], now: datetime, owner: str | None = None
    ) -> None:
        if not delivered:
            return
        settle = update(_OUTBOX).where(_OUTBOX.c.id == bindparam("b_id"))
        if owner is not None:
            settle = settle.where(_still_owned(owner))
        await self._s.execute(
            settle.values(
                claimed_by=None,
                lease_until=None,
                status=OutboxStatus.DELIVERED.value,
                delivered_at=now,
                external_ref=bindparam("b_ref", type_=_OUTBOX.c.external_ref.type),
                last_error=None,
            ),
            [{"b_id": item_id, "b_ref": ref} for item_id, ref in delivered],
        )

    async def mark_retry(
        self, item_id: int, next_attempt_at: datetime, error: str, owner: str | None = None
    ) -> None:
        await self._set(
            item_id,
            owner,
            status=OutboxStatus.PENDING.value,
            next_attempt_at=next_attempt_at,
            last_error=error,
        )

    async def mark_failed(
        self, item_id: int, now: datetime, error: str, owner: str | None = None
    ) -> None:
        await self._set(
            item_id, owner, status=OutboxStatus.FAILED.value, delivered_at=now, last_error=error
        )

    async def requeue_in_flight(
        self, keep: Collection[int] = (), expired_at: datetime | None = None
    ) -> int:
        in_flight = select(OutboxRow.id).where(OutboxRow.status == OutboxStatus.SENDING.value)
        if expired_at is not None:
            # A claim without a lease was made before leases existed: its owner is gone.
            in_flight = in_flight.where(
                or_(OutboxRow.lease_until.is_(None), OutboxRow.lease_until <= expired_at)
            )
        ids = [i for i in await self._s.scalars(in_flight) if i not in keep]
        count = 0
        for chunk in chunks(ids):
            requeue = update(OutboxRow).where(
                OutboxRow.id.in_(chunk), OutboxRow.status == OutboxStatus.SENDING.value
            )
            if expired_at is not None:  # renewed since it was read: its owner is alive
                requeue = requeue.where(
                    or_(OutboxRow.lease_until.is_(None), OutboxRow.lease_until <= expired_at)
                )
            result = await self._s.execute(
                requeue.values(status=OutboxStatus.PENDING.value, claimed_by=None, lease_until=None)
            )
            count += int(rowcount(result) or 0)
        return count

    async def get(self, item_id: int) -> OutboxItem | None:
        row = await self._s.get(OutboxRow, item_id, populate_existing=True)
        return outbox_from_row(row) if row else None

    async def depth(self) -> int:
        count = await self._s.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.status.in_(_UNDELIVERED))
        )
        return int(count or 0)

    async def _set(self, item_id: int, owner: str | None, **values: Any) -> None:
        """Settle an item: whatever the outcome, nobody is sending it any more. With `owner`,
        only while the claim is still the owner's, or requeued and not claimed again: an
        instance that stalled past its lease must not settle (and free the chat of) a claim
        another instance took over, nor put back to pending what that one delivered."""
        settle = update(OutboxRow).where(OutboxRow.id == item_id)
        if owner is not None:
            settle = settle.where(_still_owned(owner))
        await self._s.execute(settle.values(claimed_by=None, lease_until=None, **values))


def _still_owned(owner: str) -> ColumnElement[bool]:
    """Still `owner`'s claim, or requeued and not claimed again (see _set)."""
    return or_(
        and_(_OUTBOX.c.status == OutboxStatus.SENDING.value, _OUTBOX.c.claimed_by == owner),
        and_(_OUTBOX.c.status == OutboxStatus.PENDING.value, _OUTBOX.c.claimed_by.is_(None)),
    )


_MARK_PACKED = (
    f"UPDATE {_OUTBOX.name} SET status = ?, external_ref = v.ref "
    "FROM unnest(CAST(? AS BIGINT[]), CAST(? AS VARCHAR[])) AS v(id, ref) "
    f"WHERE {_OUTBOX.name}.id = v.id AND {_OUTBOX.name}.status = ? "
    f"RETURNING {_OUTBOX.name}.id"
)


# Advisory locks of outbox chats: the two-key form, this first key, so they never meet the
# single-key locks other parts take (leadership). A 32-bit hash of the chat is the second
# key; two chats that share one only wait for each other's claim, for a transaction.
_CHAT_LOCK_SPACE = 0x4F42  # "OB"


def _chat_lock_key(transport: str, chat: str) -> int:
    value = zlib.crc32(f"{transport}:{chat}".encode())
    return value - (1 << 32) if value >= (1 << 31) else value


def _posts(
    transport: str | BindParameter[str],
    chat: str | BindParameter[str],
    status: OutboxStatus,
    row: Any = OutboxRow,
) -> tuple[ColumnElement[bool], ...]:
    """The chat's posts in this status (`row`: the outbox table or an alias of it); the chat
    as values, or as bind parameters for a statement built once."""
    return (
        row.transport == transport,
        row.chat == chat,
        row.status == status.value,
        row.op == OutboxOp.POST.value,
    )


def _utc(at: datetime) -> datetime:
    """SQLite gives naive datetimes back (UTC, as written)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _pack_in_chat() -> Any:
    """The pack a packed card post went out on (its external_ref) is in the chat."""
    return (
        select(MessageRefRow.ref_key)
        .where(
            MessageRefRow.transport == OutboxRow.transport,
            MessageRefRow.chat == OutboxRow.chat,
            MessageRefRow.ref_key == OutboxRow.external_ref,
        )
        .exists()
    )


def _packed_shown() -> ColumnElement[bool]:
    """A packed card post whose pack is in the chat: the chat shows the case as packed."""
    return and_(OutboxRow.status == OutboxStatus.PACKED.value, _pack_in_chat())


def _packed_unseen() -> ColumnElement[bool]:
    """A packed card post whose pack still waits, and whose case has no card in the chat
    either: the chat has not seen it, so the queue message counts it."""
    own_card = (
        select(MessageRefRow.ref_key)
        .where(
            MessageRefRow.transport == OutboxRow.transport,
            MessageRefRow.chat == OutboxRow.chat,
            MessageRefRow.ref_key == OutboxRow.ref_key,
        )
        .exists()
    )
    return and_(OutboxRow.status == OutboxStatus.PACKED.value, ~_pack_in_chat(), ~own_card)


# The dispatch's and the backlog watch's reads, several times a second: built once (on first
# use, after the module's names) and run with their values; building each anew cost 0.3 ms to
# a millisecond.
_TRANSPORT: BindParameter[str] = bindparam("transport")
_CHAT: BindParameter[str] = bindparam("chat")


@functools.cache
def _due_heads() -> Select[Any]:
    # Each chat's head: the most urgent undelivered item, oldest first among equals. A
    # head that is in flight or waiting for its retry time holds its whole chat.
    ranked = (
        select(
            _OUTBOX.c.id,
            func.row_number()
            .over(
                partition_by=(_OUTBOX.c.transport, _OUTBOX.c.chat),
                order_by=(_OUTBOX.c.urgency.desc(), _OUTBOX.c.id),
            )
            .label("rank"),
        )
        .where(_OUTBOX.c.status.in_(_UNDELIVERED))
        .subquery()
    )
    return (
        select(_OUTBOX)
        .join(ranked, and_(ranked.c.id == _OUTBOX.c.id, ranked.c.rank == 1))
        .where(
            _OUTBOX.c.status == OutboxStatus.PENDING.value,
            _OUTBOX.c.next_attempt_at <= bindparam("now"),
        )
        .order_by(_OUTBOX.c.urgency.desc(), _OUTBOX.c.id)
        .limit(bindparam("limit", type_=Integer))
    )


@functools.cache
def _waiting_work() -> Select[Any]:
    work = (OutboxOp.POST.value, OutboxOp.EDIT.value)
    return (
        select(
            _OUTBOX.c.id,
            _OUTBOX.c.op,
            _OUTBOX.c.ref_key,
            _OUTBOX.c.created_at,
            _CASES.c.mention_count,
        )
        .outerjoin(_CASES, _CASES.c.id == _OUTBOX.c.case_id)
        .where(
            _OUTBOX.c.transport == _TRANSPORT,
            _OUTBOX.c.chat == _CHAT,
            _OUTBOX.c.status == OutboxStatus.PENDING.value,
            _OUTBOX.c.next_attempt_at <= bindparam("now"),
            _OUTBOX.c.urgency == bindparam("urgency"),
            _OUTBOX.c.op.in_(work),
            or_(_OUTBOX.c.ref_key.startswith(_CARD), _OUTBOX.c.ref_key.startswith(_PACK)),
        )
        .order_by(_OUTBOX.c.id)
        .limit(bindparam("limit", type_=Integer))
    )


@functools.cache
def _due_heads_probed() -> TextualSelect:
    """PostgreSQL: the same heads, found by walking ix_outbox_heads one chat at a time (each
    step the next chat's first row), not by ranking every undelivered row: a backlog of
    thousands sorted at each dispatch cost the database more than the dispatch did. The
    statuses are written out so that the partial index's condition holds in any plan."""
    undelivered = ", ".join(f"'{value}'" for value in _UNDELIVERED)
    order = "transport, chat, urgency DESC, id"
    columns = ", ".join(f"outbox.{c.name}" for c in _OUTBOX.c)
    sql = f"""
        WITH RECURSIVE heads(transport, chat, id) AS (
            (SELECT transport, chat, id FROM outbox WHERE status IN ({undelivered})
             ORDER BY {order} LIMIT 1)
            UNION ALL
            SELECT following.transport, following.chat, following.id
            FROM heads CROSS JOIN LATERAL (
                SELECT transport, chat, id FROM outbox
                WHERE status IN ({undelivered})
                  AND (transport, chat) > (heads.transport, heads.chat)
                ORDER BY {order} LIMIT 1
            ) AS following
        )
        SELECT {columns} FROM outbox JOIN heads ON heads.id = outbox.id
        WHERE outbox.status = :pending AND outbox.next_attempt_at <= :now
        ORDER BY outbox.urgency DESC, outbox.id
        LIMIT :limit
    """
    return (
        text(sql)
        .bindparams(
            bindparam("pending", OutboxStatus.PENDING.value),
            bindparam("now", type_=_OUTBOX.c.next_attempt_at.type),
            bindparam("limit", type_=Integer),
        )
        .columns(*_OUTBOX.c)
    )


@functools.cache
def _packable_cards() -> Select[Any]:
    other = _OTHER
    others_waiting = select(other.id).where(
        other.transport == OutboxRow.transport,
        other.chat == OutboxRow.chat,
        other.case_id == OutboxRow.case_id,
        other.id != OutboxRow.id,
        other.status.in_(_UNDELIVERED),
    )
    in_chat = select(MessageRefRow.ref_key).where(
        MessageRefRow.transport == OutboxRow.transport,
        MessageRefRow.chat == OutboxRow.chat,
        MessageRefRow.ref_key == OutboxRow.ref_key,
    )
    return (
        select(_OUTBOX)
        .join(CaseRow, CaseRow.id == OutboxRow.case_id)
        .where(
            *_posts(_TRANSPORT, _CHAT, OutboxStatus.PENDING),
            OutboxRow.ref_key.startswith(_CARD),
            CaseRow.mention_count <= bindparam("max_mentions"),
            CaseRow.state == CaseState.NEW.value,
            # A critical case has its own card at once: all its facts and buttons.
            CaseRow.priority != Priority.CRITICAL.value,
            CaseRow.drill.is_(False),
            # A card whose pack was refused for good goes as a card: not packed again.
            or_(OutboxRow.last_error.is_(None), OutboxRow.last_error != UNPACKED),
            ~others_waiting.exists(),
            ~in_chat.exists(),
        )
        .order_by(OutboxRow.urgency.desc(), OutboxRow.id)
        .limit(bindparam("limit", type_=Integer))
    )


@functools.cache
def _waiting_packs(no_thread: bool) -> Select[Any]:
    return (
        select(_OUTBOX)
        .where(
            *_posts(_TRANSPORT, _CHAT, OutboxStatus.PENDING),
            OutboxRow.thread.is_(None) if no_thread else OutboxRow.thread == bindparam("thread"),
            OutboxRow.ref_key.startswith(_PACK),
        )
        .order_by(OutboxRow.id)
    )


@functools.cache
def _hold_waiting() -> Select[Any]:
    return (
        select(OutboxRow.id)
        .where(
            OutboxRow.id == bindparam("item_id"),
            OutboxRow.status == OutboxStatus.PENDING.value,
        )
        .with_for_update()
    )


@functools.cache
def _packed_card_edits() -> Select[Any]:
    packed = _PACKED
    on_a_pack = select(packed.id).where(
        *_posts(_TRANSPORT, _CHAT, OutboxStatus.PACKED, packed),
        packed.ref_key == OutboxRow.ref_key,
    )
    return (
        select(_OUTBOX)
        .where(
            OutboxRow.transport == _TRANSPORT,
            OutboxRow.chat == _CHAT,
            OutboxRow.status == OutboxStatus.PENDING.value,
            OutboxRow.op == OutboxOp.EDIT.value,
            OutboxRow.attempts == 0,
            OutboxRow.ref_key.startswith(_CARD),
            on_a_pack.exists(),
        )
        .order_by(OutboxRow.id)
        .limit(bindparam("limit", type_=Integer))
    )


@functools.cache
def _packed_card() -> Select[Any]:
    return (
        select(_OUTBOX)
        .where(
            *_posts(_TRANSPORT, _CHAT, OutboxStatus.PACKED),
            OutboxRow.ref_key == bindparam("ref_key"),
        )
        .order_by(OutboxRow.id.desc())
        .limit(1)
    )


@functools.cache
def _backlog() -> Select[Any]:
    return (
        select(OutboxRow.chat, func.count())
        .where(
            OutboxRow.transport == _TRANSPORT,
            OutboxRow.status.in_(_UNDELIVERED),
            or_(OutboxRow.ref_key.is_(None), ~OutboxRow.ref_key.startswith(_QUEUE)),
        )
        .group_by(OutboxRow.chat)
    )
