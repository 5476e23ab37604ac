"""Pacing of Bot API calls so that Telegram's flood limits are never hit.

Telegram publishes three limits (https://core.telegram.org/bots/faq#broadcasting-to-users):
about one message per second in a chat with short bursts, 20 messages per minute in a group,
and about 30 messages per second for the whole bot. Edits count like sends.

A 429 costs far more than waiting (the chat is frozen for `retry_after` seconds), so every
limit is enforced conservatively, as a strict sliding window: never more than N messages in
any window, since that is how the server counts. The per-chat limit is the token bucket's
shape (a burst of `per_chat_burst`, then `per_chat_per_s`) as a window of `per_chat_burst`
messages per `per_chat_burst / per_chat_per_s` seconds: a refilling bucket would allow one
message more than that window does. Windows are also a little longer than published, because
a request stamped here at t reaches the server a moment later.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.settings.connections import TelegramLimitsConfig

__all__ = ["LATENCY_ALLOWANCE_S", "SAFETY_MARGIN", "RateLimiter", "TelegramLimits", "is_group"]

# Every window is this much longer than published (relative, scaled with it) ...
SAFETY_MARGIN = 0.05
# ... plus this many real seconds: the spread of request latencies, which no scale shortens.
LATENCY_ALLOWANCE_S = 0.1
GROUP_WINDOW_S = 60.0
GLOBAL_WINDOW_S = 1.0


@dataclass(frozen=True, slots=True)
class TelegramLimits:
    per_chat_per_s: float = 1.0
    per_chat_burst: int = 3
    per_group_per_min: int = 20
    global_per_s: float = 30.0
    scale: float = 1.0  # 10 makes every limit 10x faster: same shape, tests run quickly

    def __post_init__(self) -> None:
        for name in ("per_chat_per_s", "per_chat_burst", "per_group_per_min", "global_per_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than 0")
        if not self.scale > 0:
            raise ValueError("scale must be greater than 0")

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

    def __init__(self, limit: int, span: float) -> None:
        self.limit = limit
        self.span = span
        self._sent: deque[float] = deque(maxlen=limit)

    def wait(self, now: float) -> float:
        """Seconds until one more message fits."""
        if len(self._sent) < self.limit:
            return 0.0
        return max(0.0, self._sent[0] + self.span - now)

    def take(self, now: float) -> None:
        self._sent.append(now)  # maxlen drops the oldest, which no longer decides anything

    def per_minute(self) -> float:
        return self.limit / self.span * 60


@dataclass(slots=True)
class _Chat:
    windows: list[_SlidingWindow]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # FIFO: callers keep their order


class RateLimiter:
    """Waits until a message may go to a chat without breaking any of Telegram's limits.

    One limiter per bot token: the global window counts every chat of the bot.
    """

    def __init__(
        self,
        limits: TelegramLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.limits = limits or TelegramLimits()
        self._monotonic = monotonic
        self._sleep = sleep
        self._global = _SlidingWindow(*self.limits.global_window())
        self._chats: dict[int, _Chat] = {}

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            windows = [_SlidingWindow(*self.limits.chat_window()), self._global]
            if is_group(chat_id):
                windows.append(_SlidingWindow(*self.limits.group_window()))
            chat = self._chats[chat_id] = _Chat(windows)
        return chat

    async def acquire(self, chat_id: int) -> None:
        """Returns when one message (send or edit) may go to the chat, and counts it.
        Callers for one chat are served first come, first served."""
        chat = self._chat(chat_id)
        async with chat.lock:
            while True:
                now = self._monotonic()
                delay = max(window.wait(now) for window in chat.windows)
                if delay <= 0:
                    # No await between the check and the take: no other chat can slip in.
                    for window in chat.windows:
                        window.take(now)
                    return
                await self._sleep(delay)

    def capacity_per_minute(self, chat_id: int) -> int:
        """How many messages the chat can take in a minute, at the sustained rate."""
        return max(1, math.floor(min(w.per_minute() for w in self._chat(chat_id).windows)))
