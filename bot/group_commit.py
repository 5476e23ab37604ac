"""Group commit: what arrives at the same moment is written in one transaction.

Each caller hands in its one item and gets its own result once the transaction holding it
has committed. Single mentions posted to the API together (bot/intake/bulk.py) and deliveries
that finish together (bot/messages/delivery.py) go through it: each alone would cost a
transaction of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

_log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class GroupFailed(Exception):
    """A group could not be written: none of it was (one transaction)."""

    def __init__(self, size: int, cause: Exception) -> None:
        super().__init__(f"a group of {size} was not written: {cause!r}")
        self.cause = cause


class GroupCommit(Generic[T, R]):
    """Items that arrive within `window_s` of the first, or while the group before them is
    written, go to `write` together (at most `limit` at a time), which returns each one's
    result in order. When a group fails as a whole, nothing of it was written and every
    caller gets GroupFailed: the caller decides what to do (write its own alone)."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        window_s: float,
        limit: int,
        what: str,
    ) -> None:
        self._write = write
        self._window_s = window_s
        self._limit = limit
        self._what = what  # for the log: "mentions", "deliveries"
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._pending = 0
        self.groups = 0  # committed, for tests and figures
        self.largest = 0

    @property
    def pending(self) -> int:
        """Items received and not yet answered (waiting, or in the group being written)."""
        return self._pending

    async def receive(self, item: T) -> R:
        """The item's result once its group has committed; GroupFailed if it did not."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, answer))
        if self._committer is None:
            self._committer = loop.create_task(self._commit_groups(), name="group-commit")
        self._pending += 1
        try:
            return await answer
        finally:
            self._pending -= 1

    async def _commit_groups(self) -> None:
        group: list[tuple[T, asyncio.Future[R]]] = []
        try:
            await asyncio.sleep(self._window_s)
            while self._waiting:
                group, self._waiting = self._waiting[: self._limit], self._waiting[self._limit :]
                await self._commit(group)
                group = []
        finally:
            # Cancelled (the bot stops): nobody is left waiting for an answer that never comes.
            for _, answer in (*group, *self._waiting):
                answer.cancel()
            self._waiting = []
            self._committer = None

    async def _commit(self, group: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._write([item for item, _ in group])
        except Exception as error:
            _log.warning("group commit of %d %s failed: %r", len(group), self._what, error)
            for _, answer in group:
                if not answer.done():  # a caller that went away no longer waits
                    answer.set_exception(GroupFailed(len(group), error))
            return
        self.groups += 1
        self.largest = max(self.largest, len(group))
        for (_, answer), result in zip(group, results, strict=True):
            if not answer.done():
                answer.set_result(result)
