"""Which instance leads: the one that runs what must run once (scheduled jobs, Telegram long
polling, the Matrix sync) when several processes share one PostgreSQL database.

This is only the state and the waiting on it; who sets it is the composition root (an
advisory lock on PostgreSQL; a single process on SQLite always leads). Work that belongs to
the leader waits for `until_leading`, and stops at `until_lost`.
"""

from __future__ import annotations

import asyncio


class Leadership:
    def __init__(self, leading: bool = True) -> None:
        self._leading = leading
        self._changed = asyncio.Event()

    @property
    def leading(self) -> bool:
        return self._leading

    def set(self, leading: bool) -> None:
        if leading != self._leading:
            self._leading = leading
            # Wake every waiter, then arm again for the next change.
            self._changed.set()
            self._changed = asyncio.Event()

    async def until_leading(self) -> None:
        while not self._leading:
            await self._changed.wait()

    async def until_lost(self) -> None:
        while self._leading:
            await self._changed.wait()
