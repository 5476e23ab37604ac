"""The outbox delivery worker: hands queued messages to transports, in order per chat.

Each (transport, chat) queue is delivered in order of urgency, then age, one item at a time;
a more urgent item (what a person's press caused, bot/messages/outbox.py PRESS_URGENCY) may go
while a less urgent one is still in hand, and the transport's limiter serves it first.
Different chats proceed in parallel. An item is claimed (pending -> sending) in its own transaction
before the transport is called and settled in another after, so a crash leaves at most the
in-flight items to re-send at start (`recover`). Transports that support idempotent sends
(Matrix transaction ids) get the item's idempotency key and drop such repeats themselves.

Several instances may share one PostgreSQL database. A claim names its instance and holds for
a lease (config outbox.lease_s), renewed while the delivery runs; one instance sends in a chat
at a time (store/repos/outbox.py claim_heads says how). An instance that dies lets its claims
expire: every instance requeues expired claims every few seconds (counted as lease expiries)
and, when the store is shared, touches nothing else at start.

A database error never strands an item: a delivery whose outcome cannot be written is kept
in memory and settled again on every cycle until it is (the item stays `sending`, so its chat
waits rather than overtaking it). The worker supervises itself: a failed cycle or start is
logged, backed off and retried, and `health()` says why it is failing for /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from bot.clock import Clock
from bot.messages.outbox import (
    Delivery,
    DeliveryResult,
    OutboxItem,
    OutboxOp,
    PermanentFailure,
    RetryLater,
    Transport,
)
from bot.messages.views import QueueItem, QueueView, queue_view
from bot.ports import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)

MAX_ERROR_TEXT = 500
# A reply target given as the transport's own message id rather than one of our keys.
EXTERNAL_REF = "ext:"
QUEUE_REF = "queue"
QUEUE_URGENCY = 100  # the queue message goes before everything it lists
QUEUE_REFRESH = timedelta(seconds=15)  # it costs a message of the chat's budget each time
QUEUE_LISTED = 15
BACKLOG_CHECK = timedelta(seconds=1)
_POSTS = (OutboxOp.POST, OutboxOp.REPLY, OutboxOp.PHOTO)  # ops that create a message
RESTART_CAP_S = 30.0  # a worker that keeps failing to start tries again at least this often
DEFAULT_LEASE_S = 30.0
# How often expired claims (an instance that died) are looked for and taken over.
TAKE_OVER_CHECK = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float = 1.0
    cap_s: float = 300.0
    jitter: float = 0.2  # +-20% so that many failed items don't retry in lockstep

    def delay(self, attempts: int, server_hint: float | None = None) -> float:
        if server_hint is not None:
            return max(0.0, server_hint)
        delay = min(self.cap_s, self.base_s * 2.0 ** max(0, attempts - 1))
        if self.jitter:
            delay *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return delay


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the transport answered for one claimed item, until it is written down."""

    item: OutboxItem
    delivery: Delivery
    result: DeliveryResult | None
    error: Exception | None


@dataclass(slots=True)
class DeliveryStats:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    lease_expiries: int = 0  # claims whose lease ran out, requeued by this worker


DeliveredHook = Callable[[OutboxItem, DeliveryResult], None]
# An item refused for good, with the reason, inside the transaction that records it: the
# hook may queue what tells people (the approved answer that did not reach its source).
RefusedHook = Callable[[UnitOfWork, OutboxItem, str, datetime], Awaitable[None]]
# (item, the transport's error, permanent): told of every failed attempt, retried or not.
FailedHook = Callable[[OutboxItem, Exception, bool], None]


class OutboxWorker:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        transports: Mapping[str, Transport],
        clock: Clock,
        policy: RetryPolicy | None = None,
        poll_interval_s: float = 1.0,
        batch_size: int = 200,
        on_delivered: DeliveredHook | None = None,
        queue_chats: Callable[[str, str], bool] | None = None,
        on_refused: RefusedHook | None = None,
        on_failed: FailedHook | None = None,
        *,
        instance: str = "local",
        lease_s: float = DEFAULT_LEASE_S,
        shared: bool = False,
        leading: Callable[[], bool] | None = None,
    ) -> None:
        if lease_s <= 0:
            raise ValueError("the lease must be positive")
        self._uow = uow_factory
        self.instance = instance  # the owner its claims name (config instance.name)
        self._lease = timedelta(seconds=lease_s)
        # Other instances may use the store (PostgreSQL): recovery at start takes over expired
        # claims only. False: this process alone (SQLite), everything `sending` is a leftover.
        self._shared = shared
        self._taken_over_at: datetime | None = None
        self._renewed_at: datetime | None = None
        self._on_failed = on_failed
        self._transports = dict(transports)
        self._clock = clock
        self._policy = policy or RetryPolicy()
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._on_delivered = on_delivered
        # Where a backlog may be shown as a queue message: staff chats. A public chat the bot
        # answers citizens in (a cluster's replies back up there) never gets one. None: all.
        self._queue_chats = queue_chats
        self.on_refused = on_refused  # the composition root sets it once the services exist
        self._wake = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        # Posts in hand until written down, by item id: (transport, chat, ref). A more urgent
        # edit of the same message (a press) waits for its id instead of posting it again.
        self._posting: dict[int, tuple[str, str, str]] = {}
        self._queues: dict[tuple[str, str], datetime] = {}  # chats showing a queue message
        # Queue messages are kept by one instance, the leader: each instance remembers the
        # ones it shows in memory, so two would each post their own. None: always (alone).
        self._leading = leading
        # Whether _queues holds what the store says is shown: taken over on gaining the lead
        # (and at start), as the previous leader (or this process before a restart) left it.
        self._queues_known: set[str] = set()
        self._watched_at: datetime | None = None
        # Delivered (or refused) but not yet written down: the database failed meanwhile.
        self._unsettled: dict[int, _Outcome] = {}
        self._settling = asyncio.Lock()
        self._failure: str | None = None  # why the last cycle or settlement failed
        self.restarts = 0  # how often the worker started again after a failure
        self._restart_streak = 0  # restarts since the last good start: the backoff grows
        self.stats = DeliveryStats()

    @property
    def claims_in_flight(self) -> int:
        """Items this worker holds claimed: in the transport's hands or not yet recorded."""
        return len(set(self._in_flight) | set(self._unsettled))

    def health(self) -> str | None:
        """None while the worker delivers; otherwise why it cannot (for /healthz)."""
        if self._failure is not None:
            return self._failure
        if self._unsettled:
            return f"{len(self._unsettled)} delivered message(s) not yet recorded"
        return None

    def _failed(self, what: str, error: BaseException) -> None:
        self._failure = f"{what}: {type(error).__name__}: {error}"[:MAX_ERROR_TEXT]

    def wake(self) -> None:
        """Called after a commit that queued messages, so they go out without waiting a poll."""
        self._wake.set()

    async def recover(self) -> int:
        """Items left `sending` by a crash (or by a cycle this worker lost) go back to pending,
        except those this worker still has in hand. On a shared store only the claims whose
        lease ran out: the others belong to live instances."""
        if self._shared:
            return await self._take_over_expired(self._clock.now())
        keep = set(self._in_flight) | set(self._unsettled)
        async with self._uow() as uow:
            count = await uow.outbox.requeue_in_flight(keep)
            await uow.commit()
        self._taken_over_at = self._clock.now()
        if count:
            log.warning(
                "outbox: %d message(s) were in flight at the last stop; sending again", count
            )
        return count

    async def _take_over_expired(self, now: datetime) -> int:
        """Requeue the claims whose lease ran out (their instance died or lost the database):
        the chat they hold is served again, by whichever instance claims its head first."""
        self._taken_over_at = now
        keep = set(self._in_flight) | set(self._unsettled)
        async with self._uow() as uow:
            count = await uow.outbox.requeue_in_flight(keep, expired_at=now)
            await uow.commit()
        if count:
            self.stats.lease_expiries += count
            log.warning("outbox: %d claim(s) expired; their messages are sent again", count)
        return count

    async def _renew_leases(self, now: datetime) -> None:
        """The heartbeat: every third of the lease, the claims in hand are extended, so a
        slow delivery (a large upload, a transport's pacing) is not taken over."""
        held = set(self._in_flight) | set(self._unsettled)
        if not held:
            self._renewed_at = None
            return
        if self._renewed_at is not None and now - self._renewed_at < self._lease / 3:
            return
        async with self._uow() as uow:
            await uow.outbox.renew_claims(held, self.instance, now + self._lease)
            await uow.commit()
        self._renewed_at = now

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop`. Supervised: whatever escapes a cycle (a database that is down
        or read-only at start) is logged and the worker starts again after a backoff."""
        while not stop.is_set():
            try:
                await self._serve(stop)
            except Exception as error:
                self.restarts += 1
                self._restart_streak += 1
                self._failed("outbox worker stopped", error)
                delay = min(RESTART_CAP_S, self._policy.delay(self._restart_streak))
                log.exception("outbox: worker failed; restarting in %.1f s", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        await self.drain()
        try:  # what the database refused until now; else it is sent again at the next start
            await self._settle_unsettled()
        except Exception:
            log.exception("outbox: %d delivered message(s) left unrecorded", len(self._unsettled))

    async def _serve(self, stop: asyncio.Event) -> None:
        await self.recover()
        self._restart_streak = 0
        failures = 0
        while not stop.is_set():
            self._wake.clear()  # before dispatching, so a wake-up during it is not lost
            try:
                await self._dispatch()
            except Exception as error:  # the loop must survive a database hiccup
                failures += 1
                self._failed("outbox dispatch failed", error)
                log.exception("outbox: dispatch failed (%d in a row)", failures)
            else:
                failures = 0
                if not self._unsettled:
                    self._failure = None
            stopping = asyncio.ensure_future(stop.wait())
            waiters: list[asyncio.Future[Any]] = [stopping]
            timeout = self._poll_interval_s
            if self._in_flight:  # the heartbeat is due every third of the lease, at the latest
                timeout = min(timeout, self._lease.total_seconds() / 3)
            if failures:  # a failing database is asked again after a backoff, not at every wake
                timeout = min(RESTART_CAP_S, self._policy.delay(failures))
            else:
                waiters.append(asyncio.ensure_future(self._wake.wait()))
                waiters.extend(self._in_flight.values())
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not failures:
                waiters[1].cancel()
        await self.drain()

    async def run_once(self) -> int:
        """Deliver every item that is due now, chat by chat, until nothing is due. For tests."""
        await self._settle_unsettled()
        before = self.stats.delivered + self.stats.failed + self.stats.retried
        while await self._dispatch():
            await self.drain()
        await self.drain()
        return self.stats.delivered + self.stats.failed + self.stats.retried - before

    async def drain(self) -> None:
        if self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    async def _dispatch(self) -> int:
        """Claim the due head of every idle chat queue and start delivering it."""
        await self._settle_unsettled()  # raises while the database still fails
        now = self._clock.now()
        if self._taken_over_at is None or now - self._taken_over_at >= TAKE_OVER_CHECK:
            await self._take_over_expired(now)
        await self._renew_leases(now)
        if self._watched_at is None or now - self._watched_at >= BACKLOG_CHECK:
            self._watched_at = now
            await self._watch_backlogs(now)
        async with self._uow() as uow:
            heads = await uow.outbox.due_heads(now, self._batch_size)
            claimed: list[tuple[OutboxItem, Delivery]] = []
            posting = set(self._posting.values())
            wanted = [
                item
                for item in heads
                if item.id not in self._in_flight
                # An edit of a post in hand: the post settles first; looked at again then.
                and not (
                    item.op is OutboxOp.EDIT
                    and (item.transport, item.chat, item.ref_key) in posting
                )
            ]
            taken = await uow.outbox.claim_heads(wanted, self.instance, now, now + self._lease)
            if taken and self._renewed_at is None:
                self._renewed_at = now  # the heartbeat counts from the first claim in hand
            for item in wanted:
                assert item.id is not None
                if item.id not in taken:
                    continue  # another instance holds the item or its chat
                if item.op in _POSTS and item.ref_key:
                    self._posting[item.id] = (item.transport, item.chat, item.ref_key)
                item = replace(item, attempts=item.attempts + 1)
                claimed.append((item, await self._resolve(uow, item)))
            await uow.commit()
        for item, delivery in claimed:
            assert item.id is not None
            task = asyncio.create_task(self._deliver(item, delivery))
            self._in_flight[item.id] = task
            task.add_done_callback(partial(self._forget, item.id))
        return len(claimed)

    def _forget(self, item_id: int, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(item_id, None)
        if item_id not in self._unsettled:  # settled, or cancelled: in hand no longer
            self._posting.pop(item_id, None)

    async def _watch_backlogs(self, now: datetime) -> None:
        """A chat that cannot take its backlog within about a minute gets one "queue" message,
        kept up to date, listing what waits, the largest clusters and most urgent first, and
        counting every case and mention it does not list; it goes away once the backlog is
        gone. Cards keep going out at the rate the chat allows."""
        async with self._uow() as uow:
            for name, transport in self._transports.items():
                capacity = getattr(transport, "capacity_per_minute", None)
                if capacity is None:
                    continue
                backlog = await uow.outbox.backlog(name)
                pacing = getattr(transport, "backlogs", None)
                if pacing is not None:  # a transport that paces a backlogged chat
                    pacing(backlog)
                if self._leading is not None and not self._leading():
                    # A follower paces its own sends (above) and leaves queue messages to
                    # the leader; what it showed while it led is the new leader's now.
                    self._queues = {k: v for k, v in self._queues.items() if k[0] != name}
                    self._queues_known.discard(name)
                    continue
                if name not in self._queues_known:
                    for chat, queued_at in (await uow.outbox.shown_queues(name)).items():
                        self._queues.setdefault((name, chat), queued_at)
                    self._queues_known.add(name)
                for chat in set(backlog) | {c for t, c in self._queues if t == name}:
                    if self._queue_chats is not None and not self._queue_chats(name, chat):
                        continue
                    waiting = backlog.get(chat, 0)  # the queue message itself not counted
                    await self._update_queue(uow, name, chat, waiting, capacity(chat), now)
            await uow.commit()

    async def _update_queue(
        self,
        uow: UnitOfWork,
        transport: str,
        chat: str,
        waiting: int,
        capacity: int,
        now: datetime,
    ) -> None:
        key = (transport, chat)
        shown_at = self._queues.get(key)
        ref = f"{QUEUE_REF}:{chat}"
        # Once shown, it is kept true until the backlog is gone: a stale count would say
        # mentions wait that are on cards already, or miss the ones that joined since.
        if waiting > capacity or (shown_at is not None and waiting > 0):
            if shown_at is not None and now - shown_at < QUEUE_REFRESH:
                return
            # Counted in cases and mentions, so none the chat has not seen goes unaccounted.
            cards = await uow.outbox.card_backlog(transport, chat, QUEUE_LISTED)
            items: list[QueueItem] = [
                {"case_id": c.case_id, "priority": c.priority, "mentions": c.mentions}
                for c in cards.listed
            ]
            view: QueueView = queue_view(
                waiting,
                items,
                cards.unlisted,
                cases=cards.cases,
                mentions=cards.mentions,
                more_mentions=cards.unlisted_mentions,
                updating=cards.updating,
                updating_mentions=cards.updating_mentions,
            )
            op = OutboxOp.EDIT  # becomes a post while there is no queue message yet
            self._queues[key] = now
        elif shown_at is not None and waiting == 0:
            view, op = {"view": "queue"}, OutboxOp.DELETE
            del self._queues[key]
        else:
            return
        await uow.outbox.enqueue(
            [
                OutboxItem(
                    transport=transport,
                    chat=chat,
                    op=op,
                    payload=view,
                    ref_key=ref,
                    idempotency_key=f"{transport}:{chat}:{ref}:{op.value}:{now.isoformat()}",
                    urgency=QUEUE_URGENCY,
                    created_at=now,
                )
            ]
        )

    async def _resolve(self, uow: UnitOfWork, item: OutboxItem) -> Delivery:
        refs = uow.refs
        target = reply_to = None
        if item.op in (OutboxOp.EDIT, OutboxOp.DELETE) and item.ref_key:
            target = await refs.get(item.transport, item.chat, item.ref_key)
        if item.reply_to_key and item.reply_to_key.startswith(EXTERNAL_REF):
            reply_to = item.reply_to_key.removeprefix(EXTERNAL_REF)
        elif item.reply_to_key:
            reply_to = await refs.get(item.transport, item.chat, item.reply_to_key)
        if item.op is OutboxOp.DELETE and target is None:
            return Delivery(item=item)  # nothing to delete: settled without calling anyone
        if item.op is OutboxOp.EDIT and target is None:
            # The original never arrived (failed for good earlier): post the latest version.
            item = replace(item, op=OutboxOp.POST)
        photo = None
        if item.op is OutboxOp.PHOTO:  # no picture: refused for good in _deliver
            photo = await uow.blobs.get(str(item.payload.get("blob") or ""))
        return Delivery(item=item, target_ref=target, reply_to_ref=reply_to, photo=photo)

    async def _deliver(self, item: OutboxItem, delivery: Delivery) -> None:
        assert item.id is not None
        transport = self._transports.get(item.transport)
        result: DeliveryResult | None = None
        error: Exception | None = None
        if delivery.item.op is OutboxOp.DELETE and delivery.target_ref is None:
            result = DeliveryResult()
        elif transport is None:
            error = PermanentFailure(f"transport {item.transport!r} is not configured")
        elif delivery.item.op is OutboxOp.PHOTO and delivery.photo is None:
            error = PermanentFailure(f"picture {item.payload.get('blob')!r} is not stored")
        else:
            try:
                result = await transport.deliver(delivery)
            except (RetryLater, PermanentFailure) as exc:
                error = exc
            except Exception as exc:
                log.exception("outbox: %s delivery of item %d raised", item.transport, item.id)
                error = exc
        outcome = _Outcome(item, delivery, result, error)
        try:
            await self._settle(outcome)
        except Exception as failure:
            # Kept: the next cycle writes it down; the item stays `sending` meanwhile.
            self._unsettled[item.id] = outcome
            self._failed(f"outbox could not record item {item.id}", failure)
            log.exception("outbox: item %d was delivered but could not be recorded", item.id)

    async def _settle_unsettled(self) -> None:
        """Write down the outcomes a failing database refused earlier, oldest first."""
        async with self._settling:  # run_once and the running loop may both get here
            for item_id in sorted(self._unsettled):
                await self._settle(self._unsettled[item_id])
                del self._unsettled[item_id]
                log.info("outbox: item %d recorded after a database failure", item_id)

    async def _settle(self, outcome: _Outcome) -> None:
        item, delivery, result, error = (
            outcome.item,
            outcome.delivery,
            outcome.result,
            outcome.error,
        )
        assert item.id is not None
        now = self._clock.now()
        async with self._uow() as uow:
            if result is not None:
                sent = delivery.item
                if (
                    sent.op in (OutboxOp.POST, OutboxOp.REPLY, OutboxOp.PHOTO)
                    and sent.ref_key
                    and result.external_ref
                ):
                    await uow.refs.put(item.transport, item.chat, sent.ref_key, result.external_ref)
                await uow.outbox.mark_delivered(item.id, now, result.external_ref, self.instance)
            elif isinstance(error, PermanentFailure):
                await uow.outbox.mark_failed(
                    item.id, now, str(error)[:MAX_ERROR_TEXT], self.instance
                )
                if self.on_refused is not None:
                    await self.on_refused(uow, item, str(error)[:MAX_ERROR_TEXT], now)
            else:
                hint = error.after if isinstance(error, RetryLater) else None
                delay = self._policy.delay(item.attempts, hint)
                reason = f"{type(error).__name__}: {error}"[:MAX_ERROR_TEXT]
                await uow.outbox.mark_retry(
                    item.id, now + timedelta(seconds=delay), reason, self.instance
                )
            await uow.commit()
        self._posting.pop(item.id, None)
        if isinstance(error, PermanentFailure) and self.on_refused is not None:
            self._wake.set()  # what the hook queued goes out now
        if result is not None:
            self.stats.delivered += 1
            if self._on_delivered is not None:
                self._on_delivered(item, result)
        elif isinstance(error, PermanentFailure):
            self.stats.failed += 1
            if self._on_failed is not None:
                self._on_failed(item, error, True)
            log.error(
                "outbox: item %d to %s:%s refused for good: %s",
                item.id,
                item.transport,
                item.chat,
                error,
            )
        else:
            self.stats.retried += 1
            if self._on_failed is not None and error is not None:
                self._on_failed(item, error, False)
            log.warning(
                "outbox: item %d to %s:%s will be retried: %s",
                item.id,
                item.transport,
                item.chat,
                error,
            )
