"""APScheduler jobs: the SLA clock, crisis watch, digests, drills, retention, the calendar
and the model. Each is added with `add_job`.

With several instances on one database the scheduler of each is a `LeaderScheduler`: every
instance schedules every job, and a job comes due everywhere, but it runs only where the
instance leads (bot/leadership.py); elsewhere the run is skipped. Jobs that every instance runs
(the SLA clock, whose timers are claimed one by one; the scheduler's heartbeat) are named
by id. A run skipped on a follower is not made up when it becomes the leader, except what
handlers/app.py catches up on gaining (the digest, which keeps a mark of what it sent).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import BaseScheduler

from bot.leadership import Leadership

log = logging.getLogger(__name__)


# How long runs in progress get to end when the scheduler stops (a digest half queued, a
# retention sweep mid-batch): well inside the ten seconds a container runtime gives a
# stopping process before it kills it.
STOP_GRACE_S = 5.0


class LeaderScheduler(AsyncIOScheduler):  # type: ignore[misc]  # APScheduler 3 is untyped
    """An asyncio scheduler whose jobs run only while this instance leads, except those in
    `every_instance` (job ids), and whose `stop` lets the runs in progress end."""

    def __init__(
        self, leadership: Leadership, every_instance: Collection[str] = (), **options: Any
    ) -> None:
        super().__init__(**options)
        self.leadership = leadership
        self.every_instance = frozenset(every_instance)
        self._runs: set[asyncio.Task[Any]] = set()
        self._stopping = False

    def add_job(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        leader_only = kwargs.get("id") not in self.every_instance
        return super().add_job(self._run(func, leader_only), *args, **kwargs)

    def _run(self, func: Callable[..., Any], leader_only: bool) -> Callable[..., Any]:
        """`func` as a coroutine (on the event loop: a plain function of ours is quick, the
        scheduler would otherwise give it a thread) that `stop` can wait for, and that runs
        only while this instance leads if `leader_only`."""
        name = getattr(func, "__qualname__", repr(func))

        @functools.wraps(func)
        async def run(*args: Any, **kwargs: Any) -> Any:
            if leader_only and not self.leadership.leading:
                log.debug("not leading: skipping %s", name)
                return None
            task = asyncio.current_task()
            if task is not None:
                self._runs.add(task)
            try:
                result = func(*args, **kwargs)
                return await result if inspect.isawaitable(result) else result
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                # Cut short by stop() after its grace: said here once, rather than as the
                # scheduler's "raised an exception" with a traceback.
                log.warning("scheduler stopping: %s cut short", name)
                return None
            finally:
                if task is not None:
                    self._runs.discard(task)

        return run

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """No new runs; the runs in progress get `grace_s` seconds to end and are then
        cancelled; then the scheduler shuts down."""
        if not self.running:
            return
        self.pause()
        self._stopping = True
        if self._runs:
            _, late = await asyncio.wait(set(self._runs), timeout=grace_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=grace_s)  # a run that ignores it is left
        self.shutdown(wait=False)
        await asyncio.sleep(0)  # AsyncIOScheduler shuts down on the loop's next turn


def add_job(
    scheduler: BaseScheduler,
    func: Callable[..., Any],
    trigger: Any,
    *,
    job_id: str,
    name: str | None = None,
    args: Sequence[Any] = (),
    misfire_grace_s: int | None = None,
    **trigger_args: Any,
) -> None:
    """A job of ours: one run at a time, a missed run made up once rather than many times
    (after a pause: laptop asleep, long GC), a job of the same id replaced. `trigger`:
    APScheduler's ("interval" with `seconds=`, or a trigger object)."""
    options: dict[str, Any] = {"name": name} if name else {}
    if misfire_grace_s is not None:
        options["misfire_grace_time"] = misfire_grace_s
    scheduler.add_job(
        func,
        trigger,
        args=list(args),
        id=job_id,
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        **options,
        **trigger_args,
    )
