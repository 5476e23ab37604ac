"""Pacing of Bot API calls so that Telegram's flood limits are never hit.

Telegram publishes three limits (https://core.telegram.org/bots/faq#broadcasting-to-users):
about one message per second in a chat with short bursts, 20 messages per minute in a group,
and about 30 messages per second for the whole bot. Edits count like sends.

A 429 costs far more than waiting (the chat is frozen for `retry_after` seconds), so every
limit is enforced conservatively, as a strict sliding window: never more than N messages in
any window, since that is how the server counts. The per-chat limit is the token bucket's
shape (a burst of `per_chat_burst`, then `per_chat_per_s`) as a window of `per_chat_burst`
messages per `per_chat_burst / per_chat_per_s` seconds: a refilling bucket would allow one
message more than that window does. Telegram counts a message when it arrives, which is some
time after its slot here and before its answer: once answered (`answered`), a message counts
from its answer, so a slow way there (a loaded event loop, a slow network) cannot bring the
next ones closer than counted. Windows are also a little longer than published, for the
spread of the next request's way there.

What a person's press causes (the card's edit, the draft or prompt it posts, the answer) must
not wait behind a backlog of new cards: a group's minute holds `press_reserve` messages that
only such messages may use, waiting callers are served most urgent first, and a backlog
(more waiting than a minute takes) goes out evenly spaced beyond a short burst, so that slots come
free evenly. A backlogged group's cards thus go out at up to 17 a minute instead of 20, and a
press waits for the chat's own one-a-second window, or about one spacing (some 3.7 s) when
presses come faster than the reserve. Cards give way to presses only while presses in that
chat come faster than its minute takes both; at human speed cards keep most of it.
The reserve is held while people press in the chat: in a group nobody has pressed in for
PRESS_MEMORY windows (about three minutes), cards may use all of it but IDLE_RESERVE (19 a
minute: a storm's first minutes are when a chat needs every message, and nobody has pressed
yet). The first press there still goes at once, on the slot kept; it brings the whole reserve
back, and the next presses wait about one spacing (some 3.3 s) while cards fall back to 17.

Several instances on one PostgreSQL database share Telegram's limits: with `shared` send slots
(store/send_slots.py) a message that may go by this process's windows also asks the database
for a slot in the same windows, counted over every instance, and waits as it says. This
limiter still decides the order, the press reserve (the shared group window keeps it too) and
the pacing; the shared group window holds the whole reserve, pressed or not (an instance does
not know whether another's chat was pressed in). When the database cannot be asked, the send
waits and asks again: it never goes out unlimited. A single process (SQLite) has no shared
slots and never leaves memory.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.ports import SendSlots, SendSlotsUnavailable, SlotScope

if TYPE_CHECKING:
    from bot.settings.connections import TelegramLimitsConfig

log = logging.getLogger(__name__)

__all__ = ["LATENCY_ALLOWANCE_S", "SAFETY_MARGIN", "RateLimiter", "TelegramLimits", "is_group"]

# Every window is this much longer than published (relative, scaled with it) ...
SAFETY_MARGIN = 0.05
# ... plus this many real seconds: the spread of request latencies, which no scale shortens.
LATENCY_ALLOWANCE_S = 0.1
GROUP_WINDOW_S = 60.0
GLOBAL_WINDOW_S = 1.0
# How long a send waits before asking the shared send slots again when they could not be asked.
SHARED_RETRY_S = 1.0
# Shared windows are this much longer again: a slot is stamped by the database before the
# request leaves, and requests of several processes (a database hop, another event loop, another
# network path) reach Telegram with a wider spread than one process's sends to a chat, which
# go one after another.
SHARED_LATENCY_ALLOWANCE_S = 0.1
# Of the press reserve, what a group keeps when nobody has pressed in it for PRESS_MEMORY
# windows: the first press goes at once, and brings the whole reserve back.
IDLE_RESERVE = 1
PRESS_MEMORY = 3


@dataclass(frozen=True, slots=True)
class TelegramLimits:
    per_chat_per_s: float = 1.0
    per_chat_burst: int = 3
    per_group_per_min: int = 20
    global_per_s: float = 30.0
    scale: float = 1.0  # 10 makes every limit 10x faster: same shape, tests run quickly
    # Of a group's messages a minute, how many only presses' messages may use (see above).
    press_reserve: int = 3

    def __post_init__(self) -> None:
        for name in ("per_chat_per_s", "per_chat_burst", "per_group_per_min", "global_per_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than 0")
        if not self.scale > 0:
            raise ValueError("scale must be greater than 0")
        if not 0 <= self.press_reserve < self.per_group_per_min:
            raise ValueError("press_reserve must be at least 0 and below per_group_per_min")

    @classmethod
    def from_config(cls, config: TelegramLimitsConfig) -> TelegramLimits:
        return cls(
            per_chat_per_s=config.per_chat_per_s,
            per_chat_burst=config.per_chat_burst,
            per_group_per_min=config.per_group_per_min,
            global_per_s=config.global_per_s,
            scale=config.scale,
        )

    def span(self, published_s: float) -> float:
        """A published window in real seconds, scaled and with the safety margins."""
        return published_s / self.scale * (1 + SAFETY_MARGIN) + LATENCY_ALLOWANCE_S

    def chat_window(self) -> tuple[int, float]:
        return self.per_chat_burst, self.span(self.per_chat_burst / self.per_chat_per_s)

    def group_window(self) -> tuple[int, float]:
        return self.per_group_per_min, self.span(GROUP_WINDOW_S)

    def global_window(self) -> tuple[int, float]:
        # 30.0 per second as 30 per second; 0.5 per second as 1 per 2 seconds.
        count = max(1, math.floor(self.global_per_s))
        return count, self.span(count / self.global_per_s * GLOBAL_WINDOW_S)


def is_group(chat_id: int) -> bool:
    # Groups, supergroups and channels have negative ids; private chats positive ones.
    return chat_id < 0


class _SlidingWindow:
    """At most `limit` messages in any `span` seconds: remembers the last `limit` send times."""

    def __init__(self, limit: int, span: float, reserve: int = 0) -> None:
        self.limit = limit
        self.span = span
        self.reserve = reserve  # slots only urgent messages may take, while people press
        self._sent: deque[float] = deque(maxlen=limit)
        self._pressed_at = -math.inf

    def held(self, now: float) -> int:
        """The slots kept for urgent messages now: the whole reserve while people press in
        the chat, IDLE_RESERVE of it once nobody has for PRESS_MEMORY windows."""
        if now - self._pressed_at < PRESS_MEMORY * self.span:
            return self.reserve
        return min(self.reserve, IDLE_RESERVE)

    def wait(self, now: float, urgent: bool = True, paced: bool = True) -> float:
        """Seconds until one more message fits. One that is not urgent leaves the reserve to
        urgent ones and, in a `paced` (backlogged) chat once half of its share is used, keeps
        an even pace (see pace)."""
        held = self.held(now)
        limit = self.limit if urgent else self.limit - held
        full = 0.0
        if len(self._sent) >= limit:
            # The limit-th latest send must leave the window first.
            full = max(0.0, self._sent[-limit] + self.span - now)
        if urgent or not paced or not held or not self._sent:
            return full
        recent = sum(1 for sent in self._sent if sent > now - self.span)
        if recent < limit // 2:
            return full  # a short burst goes at the chat's own pace
        return max(full, self._sent[-1] + self.pace(now) - now)

    def pace(self, now: float) -> float:
        """A backlog's even spacing. Bursts would fill the window early and leave a press
        waiting for the first of them to expire, up to most of a minute; evenly spaced
        sends expire evenly, so a press beyond the reserve waits one spacing at most."""
        return self.span / (self.limit - self.held(now))

    def take(self, now: float, pressed: bool = False) -> None:
        self._sent.append(now)  # maxlen drops the oldest, which no longer decides anything
        if pressed:
            self._pressed_at = now

    def recount(self, taken: float, now: float) -> None:
        """The message taken at `taken` counts from `now` instead (later than every time
        kept, so the times stay in order)."""
        try:
            self._sent.remove(taken)
        except ValueError:
            return  # dropped already: `limit` later messages decide the window
        self._sent.append(now)

    def per_minute(self) -> float:
        """What the chat's backlog gets for sure: the whole reserve kept for presses (lent
        only while nobody presses, which a plan cannot count on)."""
        return (self.limit - self.reserve) / self.span * 60


@dataclass(slots=True)
class _Chat:
    windows: list[_SlidingWindow]
    # The same windows as shared send slots: for a press (the whole group window) and for
    # any other message (the group's reserve left to presses).
    shared_for_press: tuple[SlotScope, ...] = ()
    shared: tuple[SlotScope, ...] = ()
    # Waiting callers as (-urgency, arrival): the first one goes next.
    waiting: list[tuple[int, int]] = field(default_factory=list)
    # Set (and replaced) whenever the first in line changes: the others look again.
    moved: asyncio.Event = field(default_factory=asyncio.Event)


class RateLimiter:
    """Waits until a message may go to a chat without breaking any of Telegram's limits.

    One limiter per bot token: the global window counts every chat of the bot. `shared`: the
    send slots all instances of the bot share, under keys starting with `scope` (one per bot).
    """

    def __init__(
        self,
        limits: TelegramLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        *,
        shared: SendSlots | None = None,
        scope: str = "telegram",
    ) -> None:
        self.limits = limits or TelegramLimits()
        self._monotonic = monotonic
        self._sleep = sleep
        self._shared = shared
        self._scope = scope
        self._shared_down = False  # the shared slots failed last time: say so once
        self._global = _SlidingWindow(*self.limits.global_window())
        self._chats: dict[int, _Chat] = {}
        self._arrivals = itertools.count()
        self._backlogged: frozenset[int] = frozenset()  # chats whose cards go out evenly

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat_window = _SlidingWindow(*self.limits.chat_window())
            windows = [chat_window, self._global]
            names = [f"{self._scope}:chat:{chat_id}", f"{self._scope}:global"]
            if is_group(chat_id):
                group = _SlidingWindow(*self.limits.group_window(), self.limits.press_reserve)
                windows.append(group)
                names.append(f"{self._scope}:group:{chat_id}")
            named = list(zip(names, windows, strict=True))
            chat = self._chats[chat_id] = _Chat(
                windows,
                shared_for_press=tuple(_scope(n, w, urgent=True) for n, w in named),
                shared=tuple(_scope(n, w, urgent=False) for n, w in named),
            )
        return chat

    async def acquire(
        self, chat_id: int, urgency: int = 0, press: bool = False, person: bool | None = None
    ) -> float:
        """Returns when one message (send or edit) may go to the chat, and counts it; the
        slot's time, for `answered`. Callers for one chat are served most urgent first, then
        first come, first served. `press`: a message that may use the group's reserve (what a
        press caused, a crisis card); `person`: a person's press caused it, so the chat holds
        its whole reserve for a while (by default, as `press`)."""
        pressed = press if person is None else person
        chat = self._chat(chat_id)
        ticket = (-urgency, next(self._arrivals))
        heapq.heappush(chat.waiting, ticket)
        if chat.waiting[0] == ticket:
            self._moved(chat)  # a first in line sleeping on a long wait gives way
        try:
            while True:
                if chat.waiting[0] != ticket:
                    await chat.moved.wait()
                    continue
                now = self._monotonic()
                paced = chat_id in self._backlogged
                delay = max(window.wait(now, press, paced) for window in chat.windows)
                if delay <= 0 and self._shared is not None:
                    # Other instances' sends count too. Another chat may pass this process's
                    # windows while we ask: the shared windows hold it to the limits.
                    delay = await self._shared_wait(chat, press)
                    now = self._monotonic()
                if delay <= 0:
                    # Alone (no shared slots), no await between the check and the take: no
                    # other chat can slip in.
                    for window in chat.windows:
                        window.take(now, pressed)
                    return now
                moved = chat.moved
                sleeping = asyncio.ensure_future(self._sleep(delay))
                waking = asyncio.ensure_future(moved.wait())
                try:
                    await asyncio.wait((sleeping, waking), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeping.cancel()
                    waking.cancel()
        finally:
            chat.waiting.remove(ticket)
            heapq.heapify(chat.waiting)
            self._moved(chat)

    def answered(self, chat_id: int, slot: float) -> None:
        """The message sent in the slot `acquire` gave at `slot` has its answer (or failed):
        it counts from now. The shared send slots keep their time and their longer windows."""
        now = self._monotonic()
        for window in self._chat(chat_id).windows:
            window.recount(slot, now)

    async def _shared_wait(self, chat: _Chat, press: bool) -> float:
        """0 once the shared send slots have counted this message, else seconds to wait."""
        assert self._shared is not None
        try:
            wait = await self._shared.reserve(chat.shared_for_press if press else chat.shared)
        except SendSlotsUnavailable as exc:
            if not self._shared_down:
                log.warning("telegram: shared send slots unavailable, sends wait (%s)", exc)
            self._shared_down = True
            return SHARED_RETRY_S
        if self._shared_down:
            log.warning("telegram: shared send slots are back")
            self._shared_down = False
        return wait

    @staticmethod
    def _moved(chat: _Chat) -> None:
        chat.moved.set()
        chat.moved = asyncio.Event()

    def backlogs(self, waiting: Mapping[int, int]) -> None:
        """What waits in each chat's queue (the outbox worker says it every second): a group
        with more waiting than its minute takes (17) sends its cards evenly spaced. A chat
        that keeps up sends each card as it comes: pacing it would only slow it down."""
        backlog = self.limits.per_group_per_min - self.limits.press_reserve
        self._backlogged = frozenset(chat for chat, count in waiting.items() if count > backlog)

    def capacity_per_minute(self, chat_id: int) -> int:
        """How many messages the chat can take in a minute, at the sustained rate (the press
        reserve kept, lent or not)."""
        return max(1, math.floor(min(w.per_minute() for w in self._chat(chat_id).windows)))


def _scope(key: str, window: _SlidingWindow, urgent: bool) -> SlotScope:
    usable = window.limit if urgent else window.limit - window.reserve
    span = window.span + SHARED_LATENCY_ALLOWANCE_S
    return SlotScope(key, limit=window.limit, span_s=span, usable=usable)
