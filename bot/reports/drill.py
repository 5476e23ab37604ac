"""The drill report: how a crisis drill went, per department and overall. Pure: fed by
bot/drills/service.py with the run's cases and events (store/repos/drills.py), rendered by
templates (drill_report.*.j2) and handlers/reports/drill_export.py.

Times are minutes from a case's opening to its first reply (the first contact the author saw)
and to its approved answer, and to its reaction (somebody took it) where a reaction deadline
is set,
counted as the SLA engine counts them (working time on the case policy's calendar: the
caller's `elapsed`). "Met" compares with the deadlines the SLA engine set at intake; a
deadline that passed before the drill ended with nothing done is a breach too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.model import SYSTEM_ACTOR, Action, Case, CaseState, DrillRun, Event, EventKind

CHECKLIST_DONE = "checklist_done"  # payload: crisis, step (index), step_text; actor: who
ANSWERED_STATES = frozenset({CaseState.PUBLISHED, CaseState.CLOSED, CaseState.IGNORED})
_ACTIONS = frozenset(a.value for a in Action)
_ESCALATIONS = frozenset({Action.ESCALATE.value, EventKind.ESCALATED.value})

# (case, from, to) -> time the SLA clock counts between them.
Elapsed = Callable[[Case, datetime, datetime], timedelta]


@dataclass(frozen=True, slots=True)
class Timing:
    """One SLA moment (reaction, first reply, or approved answer) over a set of cases."""

    done: int = 0  # cases where it happened
    average_min: float | None = None
    longest_min: float | None = None
    met: int = 0  # happened by its deadline
    breached: int = 0  # late, or not done by the end of the drill though due


@dataclass(frozen=True, slots=True)
class DrillFigures:
    department: str | None  # None: every department
    cases: int
    first_touch: Timing
    answer: Timing
    escalated_cases: int
    escalations: int  # escalation events, by people and by the SLA clock
    highest_level: int
    cases_by_level: dict[int, int]  # escalation level reached -> cases
    left_open: int  # neither published, closed nor ignored when the drill ended
    actors: dict[str, int]  # staff id -> actions taken on these cases
    # Over the cases with a reaction deadline; None when no policy set one. Not a breach of
    # what the citizen sees, so not in `breaches`.
    reaction: Timing | None = None

    @property
    def breaches(self) -> int:
        return self.first_touch.breached + self.answer.breached


@dataclass(frozen=True, slots=True)
class ChecklistTick:
    step: int  # index in the crisis checklist
    text: str
    at: datetime
    actor: str
    minutes: float  # since the drill started
    crisis: int | None = None


@dataclass(frozen=True, slots=True)
class DrillReport:
    run: DrillRun
    overall: DrillFigures
    departments: tuple[DrillFigures, ...]
    checklist: tuple[ChecklistTick, ...]
    previous: DrillReport | None = None
    case_ids: tuple[int, ...] = field(default=())

    def deltas(self) -> dict[str, float | int | None] | None:
        """This drill minus the previous one of the same scenario, overall; None without one."""
        if self.previous is None:
            return None
        now, then = self.overall, self.previous.overall
        return {
            "cases": now.cases - then.cases,
            "first_touch_average_min": _minus(
                now.first_touch.average_min, then.first_touch.average_min
            ),
            "answer_average_min": _minus(now.answer.average_min, then.answer.average_min),
            "breaches": now.breaches - then.breaches,
            "escalations": now.escalations - then.escalations,
            "highest_level": now.highest_level - then.highest_level,
            "left_open": now.left_open - then.left_open,
            "checklist_done": len(self.checklist) - len(self.previous.checklist),
        }


def drill_report(
    run: DrillRun,
    cases: Sequence[Case],
    events: Mapping[int, Sequence[Event]],
    checklist_events: Iterable[Event],
    elapsed: Elapsed,
    previous: DrillReport | None = None,
) -> DrillReport:
    """`events`: each case's events by case id. The run must have ended (its end is the
    moment open deadlines are judged at)."""
    assert run.ended_at is not None, "a drill report is made once the drill has ended"
    end = run.ended_at
    departments = sorted({c.department for c in cases})
    per_department = tuple(
        _figures(dept, [c for c in cases if c.department == dept], events, elapsed, end)
        for dept in departments
    )
    ticks = tuple(
        ChecklistTick(
            step=int(e.payload.get("step", 0)),
            text=str(e.payload.get("step_text", "")),
            at=e.at,
            actor=e.actor,
            minutes=_minutes(e.at - run.started_at),
            crisis=_int_or_none(e.payload.get("crisis")),
        )
        for e in sorted(checklist_events, key=lambda e: (e.at, e.id or 0))
        if e.kind == CHECKLIST_DONE and run.started_at <= e.at <= end
    )
    return DrillReport(
        run=run,
        overall=_figures(None, list(cases), events, elapsed, end),
        departments=per_department,
        checklist=ticks,
        previous=previous,
        case_ids=tuple(c.id for c in cases if c.id is not None),
    )


def report_context(report: DrillReport, department_name: Callable[[str], str]) -> dict[str, Any]:
    """What the report templates and the exports are given: JSON-able, times as ISO text."""

    def figures(f: DrillFigures) -> dict[str, Any]:
        return {
            "department": f.department,
            "department_name": department_name(f.department) if f.department else None,
            "cases": f.cases,
            "first_touch": _timing(f.first_touch),
            "answer": _timing(f.answer),
            "reaction": _timing(f.reaction) if f.reaction is not None else None,
            "breaches": f.breaches,
            "escalated_cases": f.escalated_cases,
            "escalations": f.escalations,
            "highest_level": f.highest_level,
            "cases_by_level": {str(k): v for k, v in sorted(f.cases_by_level.items())},
            "left_open": f.left_open,
            "actors": dict(sorted(f.actors.items())),
        }

    run = report.run
    return {
        "run": {
            "id": run.id,
            "scenario": run.scenario,
            "started_at": run.started_at.isoformat(),
            "ended_at": run.ended_at.isoformat() if run.ended_at else None,
            "started_by": run.started_by,
            "hour_in_minutes": run.hour_in_minutes,
        },
        "overall": figures(report.overall),
        "departments": [figures(f) for f in report.departments],
        "checklist": [
            {
                "step": t.step,
                "text": t.text,
                "at": t.at.isoformat(),
                "actor": t.actor,
                "minutes": t.minutes,
                "crisis": t.crisis,
            }
            for t in report.checklist
        ],
        "previous_id": report.previous.run.id if report.previous else None,
        "deltas": report.deltas(),
    }


def _timing(t: Timing) -> dict[str, Any]:
    return {
        "done": t.done,
        "average_min": t.average_min,
        "longest_min": t.longest_min,
        "met": t.met,
        "breached": t.breached,
    }


def _figures(
    department: str | None,
    cases: Sequence[Case],
    events: Mapping[int, Sequence[Event]],
    elapsed: Elapsed,
    end: datetime,
) -> DrillFigures:
    actors: Counter[str] = Counter()
    escalations = 0
    for case in cases:
        for event in events.get(case.id or 0, ()):
            if event.kind in _ESCALATIONS:
                escalations += 1
            if event.actor != SYSTEM_ACTOR and event.kind in _ACTIONS:
                actors[event.actor] += 1
    levels = Counter(c.escalation_level for c in cases if c.escalation_level > 0)
    with_reaction = [c for c in cases if c.reaction_due_at is not None]
    return DrillFigures(
        department=department,
        cases=len(cases),
        first_touch=_timing_of(
            cases, lambda c: c.first_touched_at, lambda c: c.first_touch_due_at, elapsed, end
        ),
        answer=_timing_of(cases, lambda c: c.approved_at, lambda c: c.answer_due_at, elapsed, end),
        escalated_cases=sum(levels.values()),
        escalations=escalations,
        highest_level=max(levels, default=0),
        cases_by_level=dict(levels),
        left_open=sum(1 for c in cases if c.state not in ANSWERED_STATES),
        actors=dict(actors),
        reaction=(
            _timing_of(
                with_reaction,
                lambda c: c.reacted_at,
                lambda c: c.reaction_due_at,
                elapsed,
                end,
            )
            if with_reaction
            else None
        ),
    )


def _timing_of(
    cases: Sequence[Case],
    done_at: Callable[[Case], datetime | None],
    due_at: Callable[[Case], datetime | None],
    elapsed: Elapsed,
    end: datetime,
) -> Timing:
    minutes: list[float] = []
    met = breached = 0
    for case in cases:
        done, due = done_at(case), due_at(case)
        if done is not None:
            minutes.append(_minutes(elapsed(case, case.created_at, done)))
            if due is None or done <= due:
                met += 1
            else:
                breached += 1
        elif due is not None and due < end:
            breached += 1
    if not minutes:
        return Timing(met=met, breached=breached)
    return Timing(
        done=len(minutes),
        average_min=round(sum(minutes) / len(minutes), 1),
        longest_min=max(minutes),
        met=met,
        breached=breached,
    )


def _minutes(delta: timedelta) -> float:
    return round(delta.total_seconds() / 60, 1)


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 1)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None
