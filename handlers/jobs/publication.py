"""Running the card progress of a cluster's answer (bot/cases/progress.py) while replies go out.

The outbox worker's hook marks a case per delivered public reply; a burst of them becomes one
count TICK_S later, and counting goes on every TICK_S while a case stays marked. The core
decides which cards are due (at most once per REFRESH each, and when the last reply settled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.cases.progress import PublicationProgress
from bot.messages.outbox import DeliveryResult, OutboxItem

log = logging.getLogger(__name__)

TICK_S = 2.0


class PublicationJobs:
    def __init__(self, progress: PublicationProgress, tick_s: float = TICK_S) -> None:
        self._progress = progress
        self._tick_s = tick_s
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def delivered(self, item: OutboxItem, result: DeliveryResult) -> None:
        """The outbox worker's on_delivered hook (on the event loop)."""
        marked = self._progress.delivered(item, result) and not self._stopped
        if marked and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._progress.pending and not self._stopped:
            await asyncio.sleep(self._tick_s)
            try:
                await self._progress.refresh()
            except Exception:  # a database hiccup: the next tick counts again
                log.exception("publication progress: refresh failed")

    async def stop(self) -> None:
        """After the outbox worker stopped: its last deliveries are counted now, not lost
        with the marks (they live in memory; the next delivery would mark the case again)."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._progress.pending:
            try:
                await self._progress.refresh(force=True)
            except Exception:
                log.exception("publication progress: the last count failed")

    def start(self) -> None:
        self._stopped = False
