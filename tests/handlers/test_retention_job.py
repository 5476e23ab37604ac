"""The daily retention pass: scheduled only when a policy is set, erasing by the injected
clock what the policy says is due, once."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.cases.erasure import Erasure, months_before
from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import ActionRequest
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.model import Action, DeptRole, EventKind, IgnoreReason
from bot.settings.config import RetentionConfig
from bot.settings.playbook import load_playbook
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from handlers.jobs.retention import JOB_ID, RetentionJobs
from store.db import Database
from tests.doubles.support import make_config, make_mention

SPEC = Actor("spec", "Анна Иванова", {"housing": frozenset({DeptRole.SPECIALIST})})


async def test_the_daily_pass_erases_what_is_due_once(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    database = Database(sqlite_url)
    await database.upgrade()
    config = make_config(tmp_path, sqlite_url)
    cases = CaseService(
        database.uow,
        clock,
        Directory(config, frozenset({"telegram"})),
        config.tz,
        coordination="coordination",
        policy=load_playbook(config.playbooks.path).routing,
    )
    erasure = Erasure(database.uow, clock, cases)
    scheduler = AsyncIOScheduler(timezone=config.tz)
    try:
        off = RetentionJobs(erasure, RetentionConfig(), config.tz)
        off.schedule(scheduler)
        assert scheduler.get_job(JOB_ID) is None and await off.run() is None

        jobs = RetentionJobs(
            erasure, RetentionConfig(personal_data_months=24, cron="45 3 * * *"), config.tz
        )
        jobs.schedule(scheduler)
        job = scheduler.get_job(JOB_ID)
        assert job is not None and isinstance(job.trigger, CronTrigger)
        assert (
            str(job.trigger) == "cron[month='*', day='*', day_of_week='*', hour='3', minute='45']"
        )

        start = clock.now()
        for n, text in (("1", "Старая жалоба на подъезд"), ("2", "Новая жалоба на лифт")):
            opened = await cases.intake(
                make_mention(n, clock.now(), text=text), CaseOpening("housing")
            )
            assert opened.case and opened.case.id
            await cases.act(
                opened.case.id, ActionRequest(Action.IGNORE, reason=IgnoreReason.SPAM), SPEC
            )
            clock.set(months_before(start, -12))
        clock.set(months_before(start, -24) + timedelta(days=1))

        run = await jobs.run()
        assert run is not None and run.batches == 1 and run.counts.mentions == 1
        async with database.reader() as uow:
            old, new = await uow.mentions.for_case(1), await uow.mentions.for_case(2)
            (logged,) = await uow.events.of_kind(EventKind.RETENTION_ERASED)
            assert (await uow.events.verify()).ok
        assert old[0].text == "[erased]" and new[0].text == "Новая жалоба на лифт"
        assert logged.payload["cases"] == [1] and logged.at == clock.now()

        again = await jobs.run()
        assert again is not None and again.batches == 0
    finally:
        await database.dispose()
