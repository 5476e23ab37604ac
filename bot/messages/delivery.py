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
import hashlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from bot.clock import Clock, speed
from bot.group_commit import GroupCommit, GroupFailed
from bot.messages.outbox import (
    PRESS_URGENCY,
    Delivery,
    DeliveryResult,
    OutboxItem,
    OutboxOp,
    PackChange,
    PermanentFailure,
    RetryLater,
    Transport,
    WaitingWork,
    caused_by_press,
)
from bot.messages.views import (
    CardView,
    PackLine,
    QueueItem,
    QueueView,
    View,
    pack_line,
    pack_ref,
    pack_takeable,
    pack_view,
    queue_view,
)
from bot.model import CaseState, Priority
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
BACKLOG_RECHECK = timedelta(seconds=0.1)  # sooner after a commit queued messages
_POSTS = (OutboxOp.POST, OutboxOp.REPLY, OutboxOp.PHOTO)  # ops that create a message
RESTART_CAP_S = 30.0  # a worker that keeps failing to start tries again at least this often
DEFAULT_LEASE_S = 30.0
# How often expired claims (an instance that died) are looked for and taken over.
TAKE_OVER_CHECK = timedelta(seconds=5)
# Pack cards (_pack_cards). Eight lines of ~200 characters with their marks and numbers stay
# far below Telegram's 4,096, and eight take buttons (one per row) stay a keyboard one reads.
PACK_SIZE = 8
# A backlog of more single cases than PACK_SIZE a pack fills in a quarter of the chat's minute
# grows the packs, up to this. A storm's long tail (a hundred unrelated complaints a minute in
# one chat) needs it: fourteen lines a pack took most of the chat's minute. Past about fourteen
# the renderer cuts every line's text alike to fit 4,096 (at twenty, some 150 characters of a
# plain line, 70 of the longest a line can be: the gist; the whole text is one /case away),
# and the keyboard goes two a row.
PACK_MAX = 20
# How much of a backlogged chat's items the next one is chosen from (_choose): the oldest.
CHOICE_WINDOW = 200
# How often a redraw that shows no waiting mention may take a backlogged chat's message
# (_choose), whichever message it redraws: as often as the queue message is refreshed, and
# at most one in ROUTINE_SHARE of the chat's messages (a Telegram group's every 30 s, a
# slower chat's less often): every 15 s, the queue message took 4 of a group's 17 a minute
# while a storm's mentions waited for them, and more of a slower chat's.
REDRAW_PAUSE = QUEUE_REFRESH
ROUTINE_SHARE = 8


def redraw_pause(per_minute: float) -> timedelta:
    """How long routine redraws wait after one in a backlogged chat that takes `per_minute`
    messages a minute (of the clock's)."""
    return max(REDRAW_PAUSE, timedelta(seconds=ROUTINE_SHARE * 60.0 / max(1.0, per_minute)))


# A small cluster goes on a pack too: its line shows the first mention's text, the count
# ("+2 similar") and its spread (people, first to last time), which is all a person needs to
# take a handful of mentions. Beyond five a cluster is a storyline: its card shows the sources,
# the split and the answer-to-all progress a line cannot, and one card edit a minute keeps its
# count. Five also keeps a pack honest: twenty lines count at most a hundred mentions.
PACK_CLUSTER_MAX = 5
# A pack that is not full goes once its oldest case has waited this long: long enough to fill
# up in a storm, short enough that the pack is in the chat well within the minute.
PACK_WAIT = timedelta(seconds=20)
# Bounds one watch's transaction (a few hundred rows); the next watch a second later packs on.
# Generous: what a watch leaves unpacked of a burst may go out card by card meanwhile.
PACKS_PER_WATCH = 32
# A pack goes as urgently as its most urgent case, and at least as a normal card does: ahead
# of low-priority cards, in turn by age with cards and redraws of its priority (a cluster's
# redraw shows more mentions than a pack's eight lines: it must not starve behind packs),
# behind critical cards (never packed), presses (PRESS_URGENCY) and the queue message.
PACK_URGENCY = Priority.NORMAL.rank
PACK_REDRAW = timedelta(seconds=5)  # how often packs are checked for cases that changed
PACK_LOOKBACK = timedelta(minutes=1)  # a change committed late is still seen


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
        # The chat and urgency of each item in hand: a chat takes one more only if it is
        # more urgent (_dispatch), whichever item _choose picked.
        self._held: dict[int, tuple[str, str, int]] = {}
        self._waiting: dict[tuple[str, str], int] = {}  # per chat, at the last backlog watch
        # When each chat last got a message that shows no waiting mention (_paused).
        self._redrawn: dict[tuple[str, str], datetime] = {}
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
        # Messages were queued since the last backlog watch: a burst is packed before its
        # first cards go one by one (BACKLOG_RECHECK).
        self._queued_since_watch = False
        self._packing: set[tuple[str, str]] = set()  # chats packing until their backlog is gone
        self._packs_redrawn_at: datetime | None = None  # None: check every pack (at start)
        # Delivered (or refused) but not yet written down: the database failed meanwhile.
        self._unsettled: dict[int, _Outcome] = {}
        self._settling = asyncio.Lock()
        # Deliveries that finish together are written down in one transaction (each alone
        # costs a transaction of its own, four round trips on PostgreSQL).
        self._recorder = GroupCommit(
            self._settle_delivered, window_s=0.0, limit=batch_size, what="deliveries"
        )
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
        self._queued_since_watch = True

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
        if self._backlogs_due(now):
            self._watched_at = now
            self._queued_since_watch = False
            await self._watch_backlogs(now)
        async with self._uow() as uow:
            heads = await uow.outbox.due_heads(now, self._batch_size)
            claimed: list[tuple[OutboxItem, Delivery]] = []
            posting = set(self._posting.values())
            # One at a time per chat: only a more urgent item may join one in hand.
            held = {(t, c, u) for t, c, u in self._held.values()}
            free = [
                head
                for head in heads
                if not any(
                    h[:2] == (head.transport, head.chat) and h[2] >= head.urgency for h in held
                )
            ]
            chosen = [await self._choose(uow, head, posting, now) for head in free]
            wanted = [
                item
                for item in chosen
                if item is not None
                and item.id not in self._in_flight
                and not any(
                    h[:2] == (item.transport, item.chat) and h[2] >= item.urgency for h in held
                )
                # An edit of a post in hand: the post settles first; looked at again then.
                and not (
                    item.op is OutboxOp.EDIT
                    and (item.transport, item.chat, item.ref_key) in posting
                )
            ]
            # Claimed or not in this transaction: a restart keeps either, never both.
            wanted = [item for item in wanted if not await self._onto_pack(uow, item, now)]
            taken = await uow.outbox.claim_heads(wanted, self.instance, now, now + self._lease)
            if taken and self._renewed_at is None:
                self._renewed_at = now  # the heartbeat counts from the first claim in hand
            for item in wanted:
                assert item.id is not None
                if item.id not in taken:
                    continue  # another instance holds the item or its chat
                if item.op in _POSTS and item.ref_key:
                    self._posting[item.id] = (item.transport, item.chat, item.ref_key)
                self._held[item.id] = (item.transport, item.chat, item.urgency)
                item = replace(item, attempts=item.attempts + 1)
                delivery = await self._resolve(uow, item)
                self._posting_edit(item, delivery)
                claimed.append((item, delivery))
            await uow.commit()
        for item, delivery in claimed:
            assert item.id is not None
            task = asyncio.create_task(self._deliver(item, delivery))
            self._in_flight[item.id] = task
            task.add_done_callback(partial(self._forget, item.id))
        return len(claimed)

    async def _onto_pack(self, uow: UnitOfWork, item: OutboxItem, now: datetime) -> bool:
        """A packed case whose card edit only counts more mentions, still a small cluster
        (PACK_CLUSTER_MAX): the edit goes onto the pack instead of posting the case's own
        card, and _redraw_packs redraws its line with the count (one pack edit for all its
        lines). Anything else (taken, rerouted, reprioritised, answered, grown past the
        bound) posts the case's own card (_resolve), as it always did."""
        if item.op is not OutboxOp.EDIT or item.id is None or not item.ref_key:
            return False
        if item.attempts:  # tried as the case's own card already (_resolve): it stays one
            return False
        if not item.ref_key.startswith("card:") or item.payload["view"] != "card":
            return False
        packed = await uow.outbox.packed_card(item.transport, item.chat, item.ref_key)
        if packed is None or packed.external_ref is None or packed.payload["view"] != "card":
            return False
        if not _counts_only(packed.payload, item.payload):
            return False
        if await uow.refs.get(item.transport, item.chat, item.ref_key) is not None:
            return False  # the case has its own card already: its edits go there
        return await uow.outbox.onto_pack(item.id, packed.external_ref, now)

    async def _choose(
        self,
        uow: UnitOfWork,
        head: OutboxItem,
        posting: set[tuple[str, str, str]],
        now: datetime,
    ) -> OutboxItem | None:
        """What a backlogged chat spends its next message on (None: nothing now). Of the card
        posts, card edits and pack posts waiting at the head's urgency (and at the next lower
        urgency with work, when all that waits at the head's only redraws cards the chat
        shows: see below), the one that ends the most waiting: the mentions it newly shows,
        weighted by how long they have waited (see _worth). A cluster's redraw that counts
        forty more beats a card of one; a pack of eight new cases beats a card of one; a
        mention that keeps waiting weighs more each second, so none starves. A redraw that
        shows no waiting mention (a crisis card's counts, the queue message) and not caused
        by a press goes at most every redraw_pause while such work waits: waiting edits fold
        into it, so it shows the latest when it goes. Presses and anything else keep their
        place in line (urgency, then age); so does a chat that keeps up."""
        key = (head.transport, head.chat)
        if self._waiting.get(key, 0) <= 1:
            return head
        transport = self._transports.get(head.transport)
        capacity = getattr(transport, "capacity_per_minute", None)
        per_minute = capacity(head.chat) / speed(self._clock) if capacity is not None else 60
        if _is_work(head) and head.urgency < PRESS_URGENCY:
            tiers = [head.urgency]
        elif self._paused(head, now, redraw_pause(per_minute)):
            tiers = list(range(PRESS_URGENCY - 1, -1, -1))  # the most urgent work there is
        else:
            return head
        for urgency in tiers:
            found = await uow.outbox.waiting_work(
                head.transport, head.chat, urgency, now, CHOICE_WINDOW
            )
            if found:
                break
        else:
            return head  # no work waits: the redraw goes
        if all(w.redraw for w in found):
            # Urgency orders what people have not seen: a more urgent case's card goes first.
            # Counts grown on cards they see already (a cluster's "+40") compete by worth with
            # the less urgent cases nobody has seen yet; else a storm's urgent clusters,
            # redrawn for a few more mentions each, keep its tail off the chat for minutes.
            for lower in range(urgency - 1, -1, -1):
                below = await uow.outbox.waiting_work(
                    head.transport, head.chat, lower, now, CHOICE_WINDOW
                )
                if below:
                    found = [*found, *below]
                    break
        work = [
            w
            for w in found
            if w.item_id not in self._in_flight
            and not (w.op is OutboxOp.EDIT and (head.transport, head.chat, w.ref_key) in posting)
        ]
        if not work:
            return None  # what waits is in hand already: after it
        slot = 60.0 / max(1, per_minute)
        best = max(work, key=lambda w: _worth(w, now, slot))  # the oldest among equals
        if best.item_id == head.id:
            return head
        return await uow.outbox.get(best.item_id) or head

    def _paused(self, item: OutboxItem, now: datetime, pause: timedelta) -> bool:
        """A redraw that shows no waiting mention, not caused by a press (PRESS_URGENCY plus
        the case's priority rank, or PRESSED_REDRAW_URGENCY: a crisis checklist's tick), in a
        chat that got one less than `pause` ago (redraw_pause): such redraws (several crisis
        cards, the queue message) share one every `pause`."""
        if item.op is not OutboxOp.EDIT or _is_work(item) or not item.ref_key:
            return False
        if caused_by_press(item.urgency):  # a card's redraw a press caused, a checklist tick
            return False
        drawn = self._redrawn.get((item.transport, item.chat))
        return drawn is not None and now - drawn < pause

    def _backlogs_due(self, now: datetime) -> bool:
        if self._watched_at is None or now - self._watched_at >= BACKLOG_CHECK:
            return True
        return self._queued_since_watch and now - self._watched_at >= BACKLOG_RECHECK

    def _posting_edit(self, item: OutboxItem, delivery: Delivery) -> None:
        """An edit that goes out as a post (its card was packed, or refused earlier) is a post
        in hand too: a more urgent edit of it (a press) must wait for its id."""
        if item.id is not None and item.ref_key and delivery.item.op in _POSTS:
            self._posting[item.id] = (item.transport, item.chat, item.ref_key)

    def _forget(self, item_id: int, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(item_id, None)
        if item_id not in self._unsettled:  # settled, or cancelled: in hand no longer
            self._posting.pop(item_id, None)
            self._held.pop(item_id, None)

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
                self._waiting = {k: v for k, v in self._waiting.items() if k[0] != name}
                self._waiting.update({(name, chat): n for chat, n in backlog.items()})
                pacing = getattr(transport, "backlogs", None)
                if pacing is not None:  # a transport that paces a backlogged chat
                    pacing(backlog)
                if self._leading is not None and not self._leading():
                    # A follower paces its own sends (above) and leaves queue messages and
                    # packing to the leader; what it showed while it led is the new leader's now.
                    self._queues = {k: v for k, v in self._queues.items() if k[0] != name}
                    self._packing = {k for k in self._packing if k[0] != name}
                    self._queues_known.discard(name)
                    continue
                if name not in self._queues_known:
                    for chat, queued_at in (await uow.outbox.shown_queues(name)).items():
                        self._queues.setdefault((name, chat), queued_at)
                    self._queues_known.add(name)
                shown = {c for t, c in self._queues if t == name}
                packing = {c for t, c in self._packing if t == name}
                for chat in set(backlog) | shown | packing:
                    if self._queue_chats is not None and not self._queue_chats(name, chat):
                        continue
                    waiting = backlog.get(chat, 0)  # the queue message itself not counted
                    # The chat's minute on the clock: a scaled clock's is shorter.
                    per_minute = max(1, int(capacity(chat) / speed(self._clock)))
                    if self._packs(name, transport, chat, waiting, per_minute):
                        waiting -= await self._pack_cards(uow, name, chat, now, per_minute)
                    await self._update_queue(uow, name, chat, waiting, per_minute, now)
            await self._redraw_packs(uow, now)
            await uow.commit()

    def _packs(
        self, name: str, transport: Transport, chat: str, waiting: int, capacity: int
    ) -> bool:
        """Whether a chat packs: from when more waits than it clears in about a minute (the
        queue message's condition) until its backlog is gone, as
        the queue message stays: the tail of a storm is packed too, not sent card by card
        into a minute the packs have used up. Only transports that draw a take button on
        each line of a pack get packs."""
        key = (name, chat)
        if not getattr(transport, "packs_cards", False):
            return False
        if waiting > capacity:
            self._packing.add(key)
        elif waiting == 0:
            self._packing.discard(key)
        return key in self._packing

    async def _pack_cards(
        self,
        uow: UnitOfWork,
        transport: str,
        chat: str,
        now: datetime,
        capacity: int = 0,
    ) -> int:
        """In a backlogged chat, waiting first cards of small cases (up to PACK_CLUSTER_MAX
        mentions) go out as pack cards, PACK_SIZE cases a message or more (pack_size; a pack
        still waiting takes new ones up to PACK_MAX), each with its own take button: every
        mention is in front of a person within the minute instead of waiting its turn behind
        the card budget. Most urgent, then oldest, first. The packed posts leave the queue in
        this transaction (status packed), so a restart neither loses nor posts them again; a
        grown count goes onto the pack (_onto_pack), any other change of a case posts its own
        card (_resolve). Returns how many fewer messages wait."""
        candidates = await uow.outbox.packable_cards(
            transport, chat, PACK_CLUSTER_MAX, PACK_MAX * PACKS_PER_WATCH
        )
        size = pack_size(len(candidates), capacity)
        by_thread: dict[str | None, list[OutboxItem]] = {}  # a forum topic per department
        for item in candidates:
            by_thread.setdefault(item.thread, []).append(item)
        # Counts grown on packed small clusters go onto their packs now, not when each edit's
        # turn comes: the pack's next redraw shows them all.
        saved = 0
        for edit in await uow.outbox.packed_card_edits(transport, chat, PACK_MAX * PACKS_PER_WATCH):
            saved += await self._onto_pack(uow, edit, now)
        # Written together once the chat is planned (a statement each, not one per pack):
        # nothing below reads them back, and the packs held for topping up stay held.
        repacks: list[tuple[int, View, int]] = []
        groups: list[Sequence[OutboxItem]] = []
        for thread, items in by_thread.items():
            # A pack still waiting for its slot takes them first, up to PACK_MAX: in a chat
            # that waits longer, packs grow instead of queueing more of them.
            for pack in await uow.outbox.waiting_packs(transport, chat, thread):
                room = (
                    PACK_MAX - len(pack.payload["items"]) if pack.payload["view"] == "pack" else 0
                )
                if items and room > 0:
                    added = await self._top_up(uow, pack, items[:room], repacks)
                    saved += added
                    items = items[room:] if added else items
            for start in range(0, len(items), size):
                group = items[start : start + size]
                oldest = min(item.created_at or now for item in group)
                # A pack not full goes once its oldest waited PACK_WAIT, or at once with
                # full ones: the rest of a burst, which no later mention would fill sooner
                # than the cards ahead of it go.
                partial = len(group) < size and start == 0
                if len(group) < 2 or (partial and now - oldest < PACK_WAIT):
                    break  # the rest waits to fill a pack (or goes as cards)
                groups.append(group)
        await uow.outbox.repack_many(repacks)
        return saved + await self._pack(uow, transport, chat, groups, now)

    async def _pack(
        self,
        uow: UnitOfWork,
        transport: str,
        chat: str,
        groups: Sequence[Sequence[OutboxItem]],
        now: datetime,
    ) -> int:
        """A pack card of each group, its cards marked packed (those still waiting). Returns
        how many fewer messages wait."""
        if not groups:
            return 0
        cards = [
            {item.id: item for item in group if item.payload["view"] == "card"} for group in groups
        ]
        refs = [pack_ref([item.case_id or 0 for item in each.values()]) for each in cards]
        marked = await uow.outbox.mark_packed_many(
            [
                (sorted(i for i in each if i is not None), ref)
                for each, ref in zip(cards, refs, strict=True)
            ]
        )
        packs: list[OutboxItem] = []
        saved = 0
        for group, each, ref, packed in zip(groups, cards, refs, marked, strict=True):
            lines: list[PackLine] = []
            for item in group:  # in the queue's order: most urgent, then oldest
                card = item.payload
                if item.id in packed and card["view"] == "card":
                    lines.append(pack_line(card))
            if not lines:
                continue
            packs.append(
                OutboxItem(
                    transport=transport,
                    chat=chat,
                    thread=group[0].thread,
                    op=OutboxOp.POST,
                    payload=pack_view(lines),
                    ref_key=ref,
                    # The cases name it; the time tells a pack apart from the one that
                    # failed before it (its cases were given back, _redraw_packs).
                    idempotency_key=f"{transport}:{chat}:{ref}:post:{now.isoformat()}",
                    urgency=max(PACK_URGENCY, *(each[i].urgency for i in packed)),
                    created_at=now,
                )
            )
            saved += len(lines) - 1
        if packs:
            await uow.outbox.enqueue(packs)
        return saved

    async def _top_up(
        self,
        uow: UnitOfWork,
        pack: OutboxItem,
        group: Sequence[OutboxItem],
        repacks: list[tuple[int, View, int]],
    ) -> int:
        """Add waiting single cards to a pack that has not gone yet, in this transaction (the
        pack is held against a claim meanwhile); its new payload goes into `repacks`. Returns
        how many it took."""
        assert pack.id is not None and pack.ref_key is not None
        if pack.payload["view"] != "pack" or not await uow.outbox.hold_waiting(pack.id):
            return 0  # claimed meanwhile: the cards go on another pack
        cards = {item.id: item for item in group if item.payload["view"] == "card"}
        packed = await uow.outbox.mark_packed(
            sorted(i for i in cards if i is not None), pack.ref_key
        )
        added: list[PackLine] = []
        for item_id in packed:
            card = cards[item_id].payload
            if card["view"] == "card":
                added.append(pack_line(card))
        if not added:
            return 0
        # Most urgent first, then in the order they were queued (sorted keeps it).
        lines = sorted(
            [*pack.payload["items"], *added], key=lambda line: -Priority(line["priority"]).rank
        )
        urgency = max(pack.urgency, *(cards[i].urgency for i in packed))
        repacks.append((pack.id, pack_view(lines), urgency))
        return len(added)

    async def _redraw_packs(self, uow: UnitOfWork, now: datetime) -> None:
        """A packed case that changed (taken from its pack, joined by a similar mention,
        rerouted, closed, erased) has its card queued again; its pack line then says so and
        loses its take button. Packs refused for good give their cases back to the queue."""
        if self._packs_redrawn_at is not None and now - self._packs_redrawn_at < PACK_REDRAW:
            return
        since = None if self._packs_redrawn_at is None else self._packs_redrawn_at - PACK_LOOKBACK
        self._packs_redrawn_at = now
        for name, transport in self._transports.items():
            if not getattr(transport, "packs_cards", False):
                continue  # packs are made only where each line can have its take button
            lost = await uow.outbox.unpack_lost(name)
            if lost:
                log.warning("outbox: %d packed card(s) lost their pack; queued again", lost)
            for change in await uow.outbox.pack_changes(name, since):
                edit = _redrawn_pack(change, now)
                if edit is not None:
                    await uow.outbox.enqueue([edit])

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
        # An edit of a card never delivered (refused for good, or packed) posts it instead.
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
            if result is not None:
                await self._record(outcome)
            else:
                await self._settle(outcome)
        except Exception as failure:
            # Kept: the next cycle writes it down; the item stays `sending` meanwhile.
            self._unsettled[item.id] = outcome
            self._failed(f"outbox could not record item {item.id}", failure)
            log.exception("outbox: item %d was delivered but could not be recorded", item.id)

    async def _record(self, outcome: _Outcome) -> None:
        """Write down a delivery with the others that finish at the same moment. When their
        transaction fails, each is written alone (_settle), so one the database refuses keeps
        no other unrecorded."""
        try:
            await self._recorder.receive(outcome)
        except GroupFailed:
            await self._settle(outcome)

    async def _settle_delivered(self, outcomes: Sequence[_Outcome]) -> list[None]:
        now = self._clock.now()
        refs: list[tuple[str, str, str, str]] = []
        delivered: list[tuple[int, str | None]] = []
        for outcome in outcomes:
            item, sent, result = outcome.item, outcome.delivery.item, outcome.result
            assert item.id is not None and result is not None
            if sent.op in _POSTS and sent.ref_key and result.external_ref:
                refs.append((item.transport, item.chat, sent.ref_key, result.external_ref))
            delivered.append((item.id, result.external_ref))
        async with self._uow() as uow:
            await uow.refs.put_many(refs)
            await uow.outbox.mark_delivered_many(delivered, now, self.instance)
            await uow.commit()
        for outcome in outcomes:
            self._settled(outcome, now)
        return [None] * len(outcomes)

    async def _settle_unsettled(self) -> None:
        """Write down the outcomes a failing database refused earlier, oldest first."""
        async with self._settling:  # run_once and the running loop may both get here
            for item_id in sorted(self._unsettled):
                await self._settle(self._unsettled[item_id])
                del self._unsettled[item_id]
                self._held.pop(item_id, None)
                log.info("outbox: item %d recorded after a database failure", item_id)

    async def _settle(self, outcome: _Outcome) -> None:
        if outcome.result is not None:
            await self._settle_delivered([outcome])
            return
        item, error = outcome.item, outcome.error
        assert item.id is not None
        now = self._clock.now()
        async with self._uow() as uow:
            if isinstance(error, PermanentFailure):
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
        self._settled(outcome, now)

    def _settled(self, outcome: _Outcome, now: datetime) -> None:
        """What follows an outcome once it is written down."""
        item, result, error = outcome.item, outcome.result, outcome.error
        assert item.id is not None
        self._posting.pop(item.id, None)
        if result is not None and item.op is OutboxOp.EDIT and not _is_work(item):
            self._redrawn[(item.transport, item.chat)] = now
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


def pack_size(waiting: int, capacity: int) -> int:
    """Cases a pack holds: PACK_SIZE, more when more single cases wait than PACK_SIZE-case packs
    take in a quarter of the chat's minute (`capacity` messages), at most PACK_MAX."""
    packs = max(1, capacity // 4)
    return min(PACK_MAX, max(PACK_SIZE, -(-waiting // packs)))


def _is_work(item: OutboxItem) -> bool:
    """A card's post or edit, or a pack's post: what shows waiting mentions (_choose). A
    pack's edit is a redraw, paced as others are, unless it counts what joined its small
    clusters: then waiting_work offers it as work (one message for all its lines)."""
    ref = item.ref_key or ""
    if ref.startswith("card:"):
        return item.op in (OutboxOp.POST, OutboxOp.EDIT)
    return ref.startswith("pack:") and item.op is OutboxOp.POST


def _counts_only(packed: CardView, card: CardView) -> bool:
    """Whether a packed case's newer card differs from the one packed only by what joining
    mentions change (its version, count, spread, author's tallies, buttons), and is still a
    small cluster a pack line may carry."""
    case = card["case"]
    if case["mention_count"] > PACK_CLUSTER_MAX or case["drill"]:
        return False
    if case["state"] != CaseState.NEW.value or case["priority"] == Priority.CRITICAL.value:
        return False
    return _person_facts(card) == _person_facts(packed)


def _person_facts(card: CardView) -> tuple[object, ...]:
    """What a card tells a person about its case besides how many wrote (_counts_only)."""
    case = card["case"]
    return (
        case["state"],
        case["priority"],
        case["department"],
        case["escalation_level"],
        card["source"],
        card["text"],
        card["assignee_name"],
        card["draft"],
        card["moved_to"],
        card["menu"],
    )


def _worth(work: WaitingWork, now: datetime, slot: float) -> float:
    """What a delivery is worth: each mention it newly shows, by the square of how long it
    has waited plus the one slot (the chat's spacing) it would wait more if passed over. More
    mentions win among the fresh; the square lets a mention near its minute overtake a larger
    but fresher redraw (the waits that matter are the long ones). A pack counts each case's
    own wait; a card's edit, whose mentions' times the outbox does not keep, counts them all
    at its oldest's. A redraw that shows no more counts as one mention: it is not starved."""

    def weighed(mentions: int, since: datetime) -> float:
        return mentions * (max(0.0, (now - since).total_seconds()) + slot) ** 2

    if work.parts:
        return sum(weighed(mentions, since) for mentions, since in work.parts)
    return weighed(max(1, work.reveals), work.since)


def _redrawn_pack(change: PackChange, now: datetime) -> OutboxItem | None:
    """The edit of a pack whose cases changed, each changed line drawn from the case's latest
    card; None when nothing the pack shows changed."""
    pack = change.payload
    if pack["view"] != "pack":
        return None
    lines: list[PackLine] = []
    for line in pack["items"]:
        card = change.cards.get(line["case_id"])
        if card is not None and card["view"] == "card":
            line = {**pack_line(card), "carded": line["case_id"] not in change.on_pack}
        lines.append(line)
    if _shown(lines) == _shown(pack["items"]):
        return None  # an edit costs a message of the chat's minute: only for what it shows
    digest = hashlib.sha256(json.dumps(lines, sort_keys=True).encode()).hexdigest()[:16]
    ref = change.ref_key
    return OutboxItem(
        transport=change.transport,
        chat=change.chat,
        thread=change.thread,
        op=OutboxOp.EDIT,
        payload=pack_view(lines),
        ref_key=ref,
        idempotency_key=f"{change.transport}:{change.chat}:{ref}:edit:{digest}:{now.isoformat()}",
        urgency=max(PACK_URGENCY, *(Priority(line["priority"]).rank for line in lines)),
        created_at=now,
    )


def _shown(lines: Sequence[PackLine]) -> list[tuple[object, ...]]:
    """What a pack shows of its lines: a line without its button shows no version."""
    return [
        (
            line["case_id"],
            line["priority"],
            line["state"],
            line["source"],
            line["text"],
            line["mentions"],
            line["carded"],
            line["version"] if pack_takeable(line) else None,
        )
        for line in lines
    ]
