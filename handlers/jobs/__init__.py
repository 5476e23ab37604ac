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

import functools
import inspect
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import BaseScheduler

from bot.leadership import Leadership

log = logging.getLogger(__name__)


class LeaderScheduler(AsyncIOScheduler):  # type: ignore[misc]  # APScheduler 3 is untyped
    """An asyncio scheduler whose jobs run only while this instance leads, except those in
    `every_instance` (job ids)."""

    def __init__(
        self, leadership: Leadership, every_instance: Collection[str] = (), **options: Any
    ) -> None:
        super().__init__(**options)
        self.leadership = leadership
        self.every_instance = frozenset(every_instance)

    def add_job(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("id") not in self.every_instance:
            func = _on_leader(func, self.leadership)
        return super().add_job(func, *args, **kwargs)


def _on_leader(func: Callable[..., Any], leadership: Leadership) -> Callable[..., Any]:
    """`func` as a coroutine that runs only while this instance leads (on the event loop: a
    plain function of ours is quick, the scheduler would otherwise give it a thread)."""

    @functools.wraps(func)
    async def run_if_leading(*args: Any, **kwargs: Any) -> Any:
        if not leadership.leading:
            log.debug("not leading: skipping %s", getattr(func, "__qualname__", func))
            return None
        result = func(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    return run_if_leading


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
