"""Stopping the scheduler lets the runs in progress end (a digest half queued, a retention
sweep mid-batch) instead of cancelling them under the scheduler's traceback, and cuts short,
with one warning, a run that outlasts its grace."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.clock import FrozenClock
from bot.leadership import Leadership
from bot.settings.playbook import load_playbook
from handlers.app import App
from handlers.jobs import LeaderScheduler, add_job
from tests.doubles.fakes import RecordingTransport
from tests.handlers.test_leader_apps import config_for

PATIENCE_S = 30.0  # a bound for waiting, not a speed requirement


class SlowRun:
    """A job whose first run is still reading the database when the App is told to stop."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.started = asyncio.Event()
        self.read: int | None = None
        add_job(app.scheduler, self.run, "interval", job_id="test-slow", seconds=0.05)

    async def run(self) -> None:
        if self.started.is_set():
            return
        self.started.set()
        await self.app._stop.wait()  # still running once the App is told to stop
        await asyncio.sleep(0.2)
        async with self.app.database.engine.connect() as conn:
            self.read = (await conn.execute(text("SELECT 42"))).scalar_one()


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_run_in_progress_ends_before_the_app_stops(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    config = config_for(tmp_path, sqlite_url, "solo")
    app = App(
        config, load_playbook(config.playbooks.path), clock, {"telegram": RecordingTransport()}
    )
    await app.start()
    try:
        slow = SlowRun(app)
        await asyncio.wait_for(slow.started.wait(), PATIENCE_S)
    finally:
        await app.stop()
    assert slow.read == 42  # it read the database before the database went
    assert errors(caplog) == []


async def test_a_run_that_outlasts_its_grace_is_cut_short_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = LeaderScheduler(Leadership(), timezone="UTC")
    scheduler.start()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    add_job(scheduler, stuck, "interval", job_id="stuck", seconds=0.05)
    await asyncio.wait_for(started.wait(), PATIENCE_S)
    with caplog.at_level(logging.WARNING):
        await scheduler.stop(grace_s=0.1)
    assert cancelled.is_set() and not scheduler.running
    assert errors(caplog) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w for w in warnings if "cut short" in w] == [
        "scheduler stopping: test_a_run_that_outlasts_its_grace_is_cut_short_with_one_warning"
        ".<locals>.stuck cut short"
    ]


async def test_a_follower_skips_leader_jobs_and_runs_its_own() -> None:
    leadership = Leadership(leading=False)
    scheduler = LeaderScheduler(leadership, every_instance={"own"}, timezone="UTC")
    scheduler.start()
    runs: list[str] = []
    own, led = asyncio.Event(), asyncio.Event()

    def leaders() -> None:  # a plain function runs on the loop, as a coroutine would
        runs.append("leader")
        led.set()

    def every() -> None:
        runs.append("own")
        own.set()

    add_job(scheduler, leaders, "interval", job_id="leaders", seconds=0.05)
    add_job(scheduler, every, "interval", job_id="own", seconds=0.05)
    try:
        await asyncio.wait_for(own.wait(), PATIENCE_S)
        await asyncio.sleep(0.2)
        assert "leader" not in runs
        leadership.set(True)
        await asyncio.wait_for(led.wait(), PATIENCE_S)
    finally:
        await scheduler.stop()
