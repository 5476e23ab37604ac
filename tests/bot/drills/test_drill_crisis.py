"""A drill's crisis card: opened when the playing bot starts the drill, once, closed on stop,
and skipped for a scenario that says `crisis: false`."""

from __future__ import annotations

from pathlib import Path

from bot.clock import FrozenClock
from bot.drills.service import DrillStarted
from bot.settings.playbook import load_playbook
from handlers.app import App
from tests.doubles.support import make_config


async def test_a_drill_opens_its_crisis_once_unless_the_scenario_says_crisis_false(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> None:
    config = make_config(tmp_path, sqlite_url)
    playbook = load_playbook(config.playbooks.path)
    storm = playbook.drills["utility-outage-storm"]
    quiet = storm.model_copy(update={"id": "quiet", "crisis": False})
    playbook = playbook.model_copy(update={"drills": {storm.id: storm, "quiet": quiet}})
    app = App(config, playbook, clock, transports={})
    await app.database.upgrade()
    try:
        started = await app.drills.start(storm.id, "duty")
        assert isinstance(started, DrillStarted) and started.run.id == 1
        await app.drill_jobs.run()  # the job finds the card there: no second one
        async with app.database.uow() as uow:
            crisis = await uow.crises.of_drill(1)
            assert crisis is not None and crisis.drill and crisis.is_open
            assert crisis.threshold_id == "drill:utility-outage-storm"
            assert await uow.crises.open() == []  # no real crisis open
        await app.drills.stop("duty")
        async with app.database.uow() as uow:
            closed = await uow.crises.of_drill(1)
            assert closed is not None and closed.id == crisis.id and not closed.is_open

        quiet_run = await app.drills.start("quiet", "duty")
        assert isinstance(quiet_run, DrillStarted) and quiet_run.run.id == 2
        await app.drill_jobs.run()
        async with app.database.uow() as uow:
            assert await uow.crises.of_drill(2) is None
        report = await app.drills.stop("duty")
        assert not isinstance(report, str) and report.checklist == ()
    finally:
        await app.database.dispose()
