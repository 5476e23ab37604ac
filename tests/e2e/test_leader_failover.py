"""Issue 21, done when: two `otklik run` processes on one PostgreSQL database, Telegram at the
project's test server; kill -9 of the leader, and the other runs the scheduled jobs within 30 s
while the evening digest is sent once.

The evening digest (cron at midnight) falls due before either starts: the first leader sends
it on its start-up catch-up. The weekly report's cron is set to a minute after the kill: the
new leader sends it, once. Each process serves /metrics with `otklik_leader`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import POSTGRES_SKIP, POSTGRES_UP
from tests.doubles.instances import PATIENCE_S, Instance
from tests.doubles.support import ROOT
from tests.doubles.synapse import free_port
from tests.doubles.telegram_server.flood import Limits
from tests.doubles.telegram_server.server import TelegramServer
from tests.handlers.ingest.test_api_hostile import own_postgres_database

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
TAKEOVER_S = 30.0  # the figure
CHECK_S = 2
MOSCOW = ZoneInfo("Europe/Moscow")

CONFIG = """
locale: ru
timezone: Europe/Moscow
database: {{url: "{url}"}}
playbooks: {{path: "{root}/playbooks/default", templates: "{root}/playbooks/templates"}}
telegram: {{token: "{token}", api_base: "{api_base}"}}
api: {{listen: "127.0.0.1:{api_port}"}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
instance: {{name: {name}, leader_check_s: {check_s}}}
departments:
  - {{id: housing, name: ЖКХ, telegram: {{chat_id: {housing}}}}}
  - {{id: transport, name: Транспорт}}
  - {{id: health, name: Здравоохранение}}
  - {{id: education, name: Образование}}
  - {{id: social, name: Соцзащита}}
  - {{id: coordination, name: ЦУР, telegram: {{chat_id: {coordination}}}}}
coordination_department: coordination
staff:
  - {{id: boss, name: Ирина, telegram_id: 1009, global_roles: [leadership]}}
  - {{id: press, name: Зоя, telegram_id: 1008, global_roles: [press_secretary]}}
digest:
  evening_cron: "0 0 * * *"
  weekly_cron: "{weekly_cron}"
  recipients: {{telegram_chat_ids: [{leaders}]}}
"""


@pytest.fixture
async def url() -> AsyncIterator[str]:
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    async with own_postgres_database() as fresh:
        yield fresh


@pytest.mark.postgres
@pytest.mark.timeout(300)
async def test_kill_9_of_the_leader_moves_the_scheduled_jobs_and_the_digest_goes_once(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    telegram = TelegramServer(Limits(time_scale=10))
    await telegram.start()
    telegram.add_bot(TOKEN, "otklik_bot")
    boss = telegram.create_user("Ирина", id=1009)
    housing = telegram.create_chat("supergroup", "ЖКХ").id
    coordination = telegram.create_chat("supergroup", "ЦУР").id
    leaders = telegram.create_chat("supergroup", "Руководство").id
    telegram.add_member(leaders, boss, announce=False)
    # The weekly report falls due at the first whole minute at least 45 s on: after the
    # kill below (start-up and the evening digest take some 15 s).
    soon = datetime.now(UTC) + timedelta(seconds=45 + 59)
    weekly_at = soon.replace(second=0, microsecond=0).astimezone(MOSCOW)
    weekly_cron = f"{weekly_at.minute} {weekly_at.hour} * * *"

    instances: dict[str, Instance] = {}
    for name in ("a", "b"):
        metrics_port = free_port()
        config = tmp_path / f"{name}.yaml"
        config.write_text(
            CONFIG.format(
                url=url,
                root=ROOT,
                token=TOKEN,
                api_base=telegram.api_base,
                api_port=free_port(),
                metrics_port=metrics_port,
                name=name,
                check_s=CHECK_S,
                housing=housing,
                coordination=coordination,
                leaders=leaders,
                weekly_cron=weekly_cron,
            ),
            encoding="utf-8",
        )
        instances[name] = Instance(name, config, tmp_path / f"{name}.log", metrics_port)

    def bot_texts() -> list[str]:
        return [
            m.text or m.caption or ""
            for m in telegram.messages(leaders)
            if m.from_user and m.from_user.is_bot
        ]

    def evening() -> list[str]:
        return [t for t in bot_texts() if "Сводка за" in t]

    def weekly() -> list[str]:
        return [t for t in bot_texts() if "Неделя" in t]

    loop = asyncio.get_running_loop()
    try:
        # One after the other: the first to start leads (and migrates the database).
        a, b = instances["a"], instances["b"]
        await a.start()
        deadline = loop.time() + PATIENCE_S
        while await a.leading() is not True:
            assert a.process is not None and a.process.returncode is None, a.said()[-3000:]
            assert loop.time() < deadline, a.said()[-3000:]
            await asyncio.sleep(0.2)
        await b.start()
        while await b.leading() is None:
            assert b.process is not None and b.process.returncode is None, b.said()[-3000:]
            assert loop.time() < deadline, b.said()[-3000:]
            await asyncio.sleep(0.2)
        assert await b.leading() is False

        # The leader's start-up catch-up sent tonight's digest (the chart and the text).
        await telegram.wait_for(lambda: len(evening()) >= 2, timeout=PATIENCE_S)
        assert not weekly()
        assert datetime.now(UTC) < weekly_at, "start-up took too long for this test's plan"

        assert a.process is not None
        a.process.send_signal(signal.SIGKILL)
        await a.process.wait()
        killed_at = loop.time()
        while await b.leading() is not True:
            assert loop.time() - killed_at < TAKEOVER_S, b.said()[-3000:]
            await asyncio.sleep(0.2)
        took_over_s = loop.time() - killed_at
        with capsys.disabled():  # the figure the issue asks for, shown in the test's output
            sys.stdout.write(f"\nleader failover: took over {took_over_s:.1f} s after kill -9\n")

        # The weekly report's minute comes: the new leader sends it, once.
        await telegram.wait_for(lambda: bool(weekly()), timeout=3 * 60)
        await asyncio.sleep(3 * CHECK_S)  # anything twice would have come by now
        assert len(weekly()) == 1, bot_texts()
        assert len(evening()) == 2, bot_texts()  # not again after the takeover
        said = b.said()
        assert "instance b: leading" in said and "Traceback" not in said, said[-3000:]
    finally:
        for instance in instances.values():
            await instance.stop()
        await telegram.stop()
