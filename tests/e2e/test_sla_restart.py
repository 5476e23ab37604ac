"""Re-arm after restart: the real App on a SQLite file with a fake clock. Timers missed while
it was down fire once at start; later ones stay armed in ONE scheduler job; none fires twice."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.cases.grouping import CaseOpening
from bot.clock import FrozenClock
from bot.model import EventKind, Priority
from bot.settings.playbook import load_playbook
from bot.sla.calendar import plan_deadlines
from handlers.app import App
from handlers.jobs.sla import JOB_ID
from tests.doubles.fakes import RecordingTransport
from tests.doubles.support import make_config, make_mention
from tests.handlers.test_cli import free_port

M = timedelta(minutes=1)


def make_app(tmp_path: Path, url: str, clock: FrozenClock) -> tuple[App, RecordingTransport]:
    config = make_config(tmp_path, url, free_port())
    transport = RecordingTransport()
    app = App(config, load_playbook(config.playbooks.path), clock, {"telegram": transport})
    return app, transport


async def reminded(app: App, case_id: int) -> list[str]:
    thread = await app.cases.thread(case_id)
    assert thread is not None
    return [e.payload["point"] for e in thread.events if e.kind == EventKind.REMINDED]


async def test_missed_timers_fire_once_at_start_and_later_ones_stay_armed(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    app, _ = make_app(tmp_path, sqlite_url, clock)
    await app.start()
    opened = clock.now()
    try:
        name, due = plan_deadlines(
            app.playbook, "housing", Priority.CRITICAL, opened, app.config.tz
        )
        opening = CaseOpening(
            "housing", Priority.CRITICAL, name, due.first_touch, due.answer, due.resolution
        )
        result = await app.cases.intake(make_mention("1", opened), opening)
        assert result.case is not None and result.case.id is not None
        case_id = result.case.id
        # One job for the whole clock, armed for the first reminder (50% of 30 minutes).
        job = app.scheduler.get_job(JOB_ID)
        assert job is not None and app.sla_jobs.armed_for == opened + 15 * M
        assert [j.id for j in app.scheduler.get_jobs()].count(JOB_ID) == 1
    finally:
        await app.stop()

    # Down for 22 minutes: the 50% (15 min) and -10m (20 min) reminders are missed.
    clock.set(opened + 22 * M)
    app, _ = make_app(tmp_path, sqlite_url, clock)
    await app.start()
    try:
        assert await reminded(app, case_id) == ["50%", "-10m"]
        assert app.sla_jobs.armed_for == opened + 24 * M  # 80% is still ahead: armed
    finally:
        await app.stop()

    # A restart at the same moment fires nothing again.
    app, _ = make_app(tmp_path, sqlite_url, clock)
    await app.start()
    try:
        assert await reminded(app, case_id) == ["50%", "-10m"]
        # The armed job comes due: the 80% reminder fires on time, once.
        clock.set(opened + 24 * M)
        assert await app.sla_jobs.run() == 1
        assert await app.sla_jobs.run() == 0
        assert await reminded(app, case_id) == ["50%", "-10m", "80%"]
        assert app.sla_jobs.armed_for == opened + 30 * M  # the breach
    finally:
        await app.stop()
