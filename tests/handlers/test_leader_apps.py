"""Two whole Apps on one PostgreSQL database (issue 21): one leads and runs the scheduled jobs,
the other follows; when the leader stops the follower takes over, catches up, and the evening
digest due meanwhile is sent once whoever sends it. Also /healthz on a dead scheduler and the
instance lines of /metrics (SQLite: the single process leads)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from bot.clock import FrozenClock
from bot.settings.config import Config, load_config
from bot.settings.playbook import load_playbook
from handlers.app import App
from handlers.jobs import add_job
from handlers.jobs.heartbeat import SchedulerHeartbeat
from store.models import OutboxRow
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP
from tests.doubles.fakes import RecordingTransport
from tests.doubles.support import API_TOKENS, CONFIG_YAML, ROOT
from tests.handlers.ingest.test_api_hostile import own_postgres_database
from tests.handlers.test_outbox_failures import healthz

PATIENCE_S = 60.0  # a bound for waiting, not a speed requirement
CHECK_S = 2.0  # the server ends a session silent for three: building an App blocks the loop
LEADERS_CHAT = -100999  # the coordination chat gets the digest
# 19:00 Moscow: the clock fixture stands at 16:30 Moscow, before it.
DIGEST = f"""
digest:
  evening_cron: "0 19 * * *"
  weekly_cron: "0 10 29 2 *"
  recipients: {{telegram_chat_ids: [{LEADERS_CHAT}]}}
"""


def config_for(tmp_path: Path, url: str, name: str) -> Config:
    path = tmp_path / f"{name}.yaml"
    instance = f"instance: {{name: {name}, leader_check_s: {CHECK_S}}}\n"
    path.write_text(
        CONFIG_YAML.format(url=url, root=ROOT, port=0) + DIGEST + instance, encoding="utf-8"
    )
    return load_config(path, env=API_TOKENS)


class Runs:
    """A job of the test's own, on an App's scheduler like every scheduled job."""

    def __init__(self, app: App) -> None:
        self.count = 0
        add_job(app.scheduler, self.run, "interval", job_id="test-runs", seconds=0.05)

    async def run(self) -> None:
        self.count += 1


async def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


async def digests_queued(app: App) -> list[str]:
    async with app.database.engine.connect() as conn:
        keys = await conn.scalars(
            select(OutboxRow.idempotency_key).where(
                OutboxRow.idempotency_key.like("%:digest:evening:%")
            )
        )
        # A digest may be several messages (the chart, the text): the fire times queued.
        return sorted({key.split(":digest:evening:")[1][:16] for key in keys})


@pytest.fixture
async def url() -> AsyncIterator[str]:
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    async with own_postgres_database() as fresh:
        yield fresh


@pytest.mark.postgres
async def test_jobs_run_on_the_leader_and_move_to_the_follower_with_the_digest_sent_once(
    tmp_path: Path, url: str, clock: FrozenClock
) -> None:
    playbook_path = config_for(tmp_path, url, "a").playbooks.path
    playbook = load_playbook(playbook_path)
    sent_a, sent_b = RecordingTransport(), RecordingTransport()
    a = App(config_for(tmp_path, url, "a"), playbook, clock, {"telegram": sent_a})
    b = App(config_for(tmp_path, url, "b"), playbook, clock, {"telegram": sent_b})
    await a.start()
    await b.start()
    try:
        assert (a.leadership.leading, b.leadership.leading) == (True, False)
        runs_a, runs_b = Runs(a), Runs(b)
        await eventually(lambda: runs_a.count >= 5, "the leader's job ran")
        assert runs_b.count == 0  # due on the follower too, and skipped there
        assert b'otklik_leader{instance="a"} 1.0' in a.metrics.render(0)
        assert b'otklik_leader{instance="b"} 0.0' in b.metrics.render(0)
        assert b.health() is None  # a follower is healthy
        assert await digests_queued(a) == []  # 16:30 in Moscow: not due yet

        # 19:05: the digest fell due while the scheduler's cron (on the wall clock) did not
        # fire; the leader stops, and the follower catches it up on taking over.
        clock.advance(timedelta(hours=2, minutes=35))
        await a.stop()
        await eventually(lambda: b.leadership.leading, "the follower leads")
        before = runs_b.count
        await eventually(lambda: runs_b.count > before + 3, "the new leader's job ran")
        await eventually(lambda: bool(sent_b.posts()), "the digest was delivered")
        assert await digests_queued(b) == ["2026-11-20T19:00"]

        # The old leader comes back as a follower; the leader goes: the catch-up on taking
        # over again finds the digest sent and queues nothing.
        a = App(config_for(tmp_path, url, "a"), playbook, clock, {"telegram": sent_a})
        await a.start()
        assert not a.leadership.leading
        await b.stop()
        await eventually(lambda: a.leadership.leading, "the old leader leads again")
        await asyncio.sleep(CHECK_S)
        assert await digests_queued(a) == ["2026-11-20T19:00"]

        # Both believing they lead at the same moment (a partition): the next day's digest
        # run on both at once is still queued once.
        b = App(config_for(tmp_path, url, "b"), playbook, clock, {"telegram": sent_b})
        await b.start()
        clock.advance(timedelta(days=1))
        await asyncio.gather(a.digest_jobs.run("evening"), b.digest_jobs.run("evening"))
        assert await digests_queued(a) == ["2026-11-20T19:00", "2026-11-21T19:00"]
        delivered = [s.key for s in sent_a.sent + sent_b.sent]
        assert sorted(set(delivered)) == sorted(delivered)  # nothing delivered twice
    finally:
        await a.stop()
        await b.stop()


async def test_healthz_names_a_dead_outbox_worker_and_a_dead_or_stalled_scheduler(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    config = config_for(tmp_path, sqlite_url, "solo")
    app = App(
        config, load_playbook(config.playbooks.path), clock, {"telegram": RecordingTransport()}
    )
    app.heartbeat = SchedulerHeartbeat(every_s=0.1)
    await app.start()
    base = f"http://127.0.0.1:{_api_port(app)}"
    try:
        assert app.leadership.leading  # SQLite: the single process leads
        assert (await healthz(base))[0] == 200

        # The metrics name the instance and its leadership.
        assert app.metrics_address is not None
        host, port = app.metrics_address
        token = API_TOKENS["METRICS_TOKEN"]
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"http://{host}:{port}/metrics", headers={"Authorization": f"Bearer {token}"}
            ) as response,
        ):
            metrics = await response.text()
        assert 'otklik_instance_info{instance="solo"} 1.0' in metrics
        assert 'otklik_leader{instance="solo"} 1.0' in metrics
        assert "otklik_outbox_depth " in metrics

        # A scheduler whose jobs no longer run (paused here; a blocked one looks the same).
        app.scheduler.pause()
        await asyncio.sleep(0.5)
        status, body = await healthz(base)
        assert status == 503
        assert body["reason"].startswith("scheduler stalled")
        app.scheduler.resume()
        await eventually(lambda: app.health() is None, "the heartbeat came back")

        app.scheduler.shutdown(wait=False)
        status, body = await healthz(base)
        assert (status, body["reason"]) == (503, "scheduler is not running")

        worker = app._worker_task
        assert worker is not None
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        app._worker_task = None  # stop() would wait for it
        status, body = await healthz(base)
        assert (status, body["reason"]) == (503, "outbox worker is not running")
    finally:
        await app.stop()


def _api_port(app: App) -> int:
    assert app._runner is not None
    for address in app._runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise AssertionError("the API listens nowhere")
