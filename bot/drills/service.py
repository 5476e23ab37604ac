"""Running crisis drills: start a scenario, play its timeline through the real intake, stop it
and send the drill report to the coordination chat.

A run is a row (store/repos/drills.py), so any process may start or stop one: `otklik drill
start` writes the row and the running bot's drill job (handlers/jobs/drills.py) calls `tick`,
which hands every mention that has come due to intake, tagged as a drill mention of that run.
Drill cases are cases like any other, marked DRILL everywhere, with Publish simulated, and
left out of every figure (store/queries/reports.py). A drill opens its own crisis too
(CrisisService.open_drill), card and checklist buttons marked DRILL, closed on stop; the
report's checklist is that crisis's ticks. The report is bot/reports/drill.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.clock import Clock
from bot.crisis.checklist import checklist_event, checklist_state
from bot.crisis.service import CrisisService
from bot.drills.timeline import PlannedMention, due_count, timeline
from bot.intake.intake import MentionIntake
from bot.messages.outbox import OutboxItem, OutboxOp
from bot.messages.views import View, page_view
from bot.model import Case, DrillRun, DrillTag, Identity, Mention, Sentiment
from bot.ports import UnitOfWork
from bot.reports.drill import DrillReport, drill_report, report_context
from bot.settings.drill_scenarios import DrillScenario
from bot.settings.playbook import Playbook
from bot.sla.calendar import working_time_between
from bot.staff.directory import Directory

log = logging.getLogger(__name__)

DRILL_CHANNEL = "drill"  # synthetic authors live here: no real author's history is touched
REPORT_TEMPLATE = "drill_report.html.j2"


class DrillRefusal(StrEnum):
    UNKNOWN_SCENARIO = "unknown_scenario"
    ALREADY_RUNNING = "already_running"
    NOT_RUNNING = "not_running"


@dataclass(frozen=True, slots=True)
class DrillStarted:
    run: DrillRun
    scenario: DrillScenario
    mentions: int


class DrillService:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        clock: Clock,
        playbook: Playbook,
        directory: Directory,
        locale: str,
        tz: ZoneInfo,
        intake: MentionIntake | None = None,
        on_outbox: Callable[[], None] = lambda: None,
        crises: CrisisService | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._playbook = playbook
        self._directory = directory
        self._locale = locale
        self._tz = tz
        self._intake = intake  # None in a process that only starts and stops drills (the CLI)
        self._on_outbox = on_outbox
        # Opens and closes each drill's crisis card; None: no card (as `crisis: false`).
        self._crises = crises
        self._crisis_opened: set[int] = set()  # runs whose crisis this process has seen open

    @property
    def scenarios(self) -> dict[str, DrillScenario]:
        return self._playbook.drills

    async def start(self, scenario_id: str, started_by: str) -> DrillStarted | DrillRefusal:
        """One drill at a time: a second start is refused while one runs."""
        scenario = self.scenarios.get(scenario_id.strip())
        if scenario is None:
            return DrillRefusal.UNKNOWN_SCENARIO
        async with self._uow() as uow:
            if await uow.drills.running():
                return DrillRefusal.ALREADY_RUNNING
            run = await uow.drills.add(
                DrillRun(
                    id=None,
                    scenario=scenario.id,
                    started_at=self._clock.now(),
                    started_by=started_by,
                    hour_in_minutes=scenario.hour_in_minutes,
                )
            )
            await uow.commit()
        log.info("drill %s started: %s by %s", run.id, scenario.id, started_by)
        await self._open_crisis(run, scenario)
        return DrillStarted(run, scenario, len(self.timeline(scenario)))

    async def _open_crisis(self, run: DrillRun, scenario: DrillScenario) -> None:
        """The drill's crisis card, once per run, opened by the process that plays the drill
        (the one with intake): a drill the CLI starts gets its card from the running bot's
        drill job, so two processes never race to open it. The CLI's stop closes it."""
        if self._crises is None or self._intake is None or not scenario.crisis:
            return
        if run.id is None:
            return
        if run.id in self._crisis_opened:
            return
        await self._crises.open_drill(run.id, scenario.id)
        self._crisis_opened.add(run.id)

    def timeline(self, scenario: DrillScenario) -> list[PlannedMention]:
        return timeline(scenario, self._locale)

    async def running(self) -> DrillRun | None:
        async with self._uow() as uow:
            runs = await uow.drills.running()
        return runs[0] if runs else None

    async def tick(self) -> int:
        """Hand intake every timeline mention of the running drill that has come due;
        returns how many. Safe to repeat and to race: a mention's id is its place in the run's
        timeline, and intake drops a duplicate."""
        if self._intake is None:
            raise RuntimeError("this drill service has no intake: it cannot play a drill")
        run = await self.running()
        if run is None or run.id is None:
            return 0
        scenario = self.scenarios.get(run.scenario)
        if scenario is None:  # the playbook lost the scenario since: nothing left to play
            return 0
        await self._open_crisis(run, scenario)
        planned = self.timeline(scenario)
        now = self._clock.now()
        due = due_count(planned, run.hour_in_minutes, run.started_at, now)
        fed = 0
        for mention in planned[run.injected : due]:
            await self._intake.receive(self._mention(run.id, mention, now))
            fed += 1
        if fed:
            async with self._uow() as uow:
                await uow.drills.injected(run.id, due)
                await uow.commit()
        return fed

    def _mention(self, run_id: int, planned: PlannedMention, now: datetime) -> Mention:
        department = planned.department
        if not self._directory.has_department(department):
            department = self._directory.coordination  # a scenario written for another config
        author = f"{run_id}-{planned.storyline}-{planned.number}"
        return Mention(
            source=planned.source,
            external_id=f"drill-{run_id}-{planned.index}",
            text=planned.text,
            author=Identity(DRILL_CHANNEL, author, f"Drill #{planned.number}"),
            received_at=now,
            language=self._locale,
            sentiment=Sentiment.NEGATIVE,  # a drill rehearses complaints: each opens a case
            drill=DrillTag(run_id, department),
        )

    async def stop(self, ended_by: str) -> DrillReport | DrillRefusal:
        """End the running drill and send its report to the coordination chat."""
        run = await self.running()
        if run is None:
            return DrillRefusal.NOT_RUNNING
        ended = replace(run, ended_at=self._clock.now(), ended_by=ended_by)
        assert run.id is not None
        async with self._uow() as uow:
            if not await uow.drills.end(ended):
                return DrillRefusal.NOT_RUNNING  # another process stopped it a moment ago
            # The drill is over: its cases stay as they were left (the report counts them),
            # but the SLA clock stops chasing anyone about them.
            case_ids = [c.id for c in await uow.drills.cases_of(run.id) if c.id is not None]
            pending = await uow.timers.pending_for(case_ids)
            await uow.timers.delete([t.id for ts in pending.values() for t in ts if t.id])
            await uow.commit()
        if self._crises is not None:
            await self._crises.close_drill(run.id)
        report = await self.report(ended)
        await self.announce(report)
        log.info("drill %s stopped by %s", run.id, ended_by)
        return report

    async def report_of(self, run_id: int) -> DrillReport | None:
        """The report of a finished run; None for no such run or one still running."""
        async with self._uow() as uow:
            run = await uow.drills.get(run_id)
        if run is None or run.ended_at is None:
            return None
        return await self.report(run)

    async def report(self, run: DrillRun, with_previous: bool = True) -> DrillReport:
        assert run.id is not None and run.ended_at is not None
        async with self._uow() as uow:
            cases = await uow.drills.cases_of(run.id)
            events = {c.id: await uow.events.for_case(c.id) for c in cases if c.id is not None}
            crisis = await uow.crises.of_drill(run.id)
            ticks = (
                await uow.crises.checklist_events([crisis.id], crisis.opened_at)
                if crisis is not None and crisis.id is not None
                else []
            )
            previous = await uow.drills.previous(run) if with_previous else None
        before = await self.report(previous, with_previous=False) if previous else None
        # What stood done at the end: an item unticked and ticked again counts at its last tick.
        done = sorted(checklist_state(ticks).values(), key=lambda tick: tick.at)
        checklist = [
            checklist_event(t.crisis_id, t.step, t.step_text, True, t.actor, t.at) for t in done
        ]
        return drill_report(run, cases, events, checklist, self._elapsed, before)

    def _elapsed(self, case: Case, start: datetime, end: datetime) -> timedelta:
        """As the SLA clock counts: working time on the case policy's calendar."""
        policy = self._playbook.sla.policies.get(case.sla_policy or "")
        if policy is None:
            return max(end - start, timedelta(0))
        calendar = self._playbook.calendar(policy.calendar)
        return working_time_between(calendar, start, end, self._tz)

    def report_view(self, report: DrillReport) -> View:
        return page_view(REPORT_TEMPLATE, self.context(report))

    def context(self, report: DrillReport) -> dict[str, object]:
        context = report_context(report, self._directory.department_name)
        scenario = self.scenarios.get(report.run.scenario)
        context["title"] = scenario.title.get(self._locale) if scenario else report.run.scenario
        context["started"] = _local(report.run.started_at, self._tz)
        context["ended"] = _local(report.run.ended_at, self._tz)
        context["names"] = {
            staff: self._directory.name_of(staff) or staff
            for figures in [context["overall"]]
            if isinstance(figures, dict)
            for staff in figures["actors"]
        }
        return context

    async def announce(self, report: DrillReport) -> int:
        """The report to the coordination chat, through the outbox."""
        now = self._clock.now()
        view = self.report_view(report)
        items: Sequence[OutboxItem] = [
            dest.message(
                OutboxOp.POST, view, f"drill-report:{report.run.id}", now, ref=None, urgency=1
            )
            for dest in self._directory.destinations(self._directory.coordination)
        ]
        async with self._uow() as uow:
            queued = await uow.outbox.enqueue(list(items))
            await uow.commit()
        if queued:
            self._on_outbox()
        return queued


def _local(moment: datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%d.%m.%Y %H:%M") if moment else "—"


__all__ = ["DrillRefusal", "DrillService", "DrillStarted"]
