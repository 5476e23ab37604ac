"""Flood control, per bot: the limits a test may tighten or relax (`Limits`, with a time
scale) and the sliding windows that answer 429 "Too Many Requests: retry after N".

Next: protocol.py, the errors and limits every area shares.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.doubles.telegram_server.state import Chat


@dataclass
class Limits:
    """Flood control, per bot. `time_scale=10` runs every window ten times faster (not the
    time to answer a press: callback_answer_timeout_s is in real seconds).

    `retry_after` is reported in scaled seconds: wait `retry_after / time_scale` real ones.
    """

    per_chat_per_s: float = 1.0
    per_chat_burst: int = 3
    per_group_per_min: int = 20
    global_per_s: int = 30
    time_scale: float = 1.0
    callback_answer_timeout_s: float = 15.0  # after this an answer gets QUERY_ID_INVALID


class FloodControl:
    """Sliding windows over scaled monotonic time: per chat, per group per minute, global."""

    def __init__(self, limits: Limits, monotonic: Callable[[], float]) -> None:
        self.limits = limits
        self._monotonic = monotonic
        self._events: dict[tuple[Any, ...], deque[float]] = {}

    def now(self) -> float:
        return self._monotonic() * self.limits.time_scale

    def _windows(self, bot_id: int, chat: Chat) -> list[tuple[tuple[Any, ...], float, int]]:
        lim = self.limits
        windows = [
            (
                ("chat", bot_id, chat.id),
                lim.per_chat_burst / lim.per_chat_per_s,
                lim.per_chat_burst,
            ),
            (("global", bot_id), 1.0, lim.global_per_s),
        ]
        if chat.type != "private":
            windows.append((("group", bot_id, chat.id), 60.0, lim.per_group_per_min))
        return windows

    def retry_after(self, bot_id: int, chat: Chat) -> int | None:
        now = self.now()
        wait = 0.0
        for key, width, limit in self._windows(bot_id, chat):
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - width:
                events.popleft()
            if len(events) >= limit:
                wait = max(wait, events[len(events) - limit] + width - now)
        return max(1, math.ceil(wait - 1e-9)) if wait > 0 else None

    def record(self, bot_id: int, chat: Chat) -> None:
        now = self.now()
        for key, _, _ in self._windows(bot_id, chat):
            self._events.setdefault(key, deque()).append(now)
