"""APScheduler jobs: the SLA clock, crisis watch, digests, drills, retention, the calendar
and the model. Each is added with `add_job`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from apscheduler.schedulers.base import BaseScheduler


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
