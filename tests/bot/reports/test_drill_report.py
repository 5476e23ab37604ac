"""The drill report's figures, computed from cases and events with known timings."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.messages.texts import texts_for
from bot.model import (
    SYSTEM_ACTOR,
    Action,
    Case,
    CaseState,
    DrillRun,
    Event,
    EventKind,
    Priority,
)
from bot.reports.drill import CHECKLIST_DONE, Timing, drill_report, report_context
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, load_playbook
from bot.sla.calendar import working_time_between
from tests.doubles.support import ROOT

MOSCOW = ZoneInfo("Europe/Moscow")
WORKING = load_playbook(DEFAULT_PLAYBOOK_DIR).calendar("working")  # lunch 13:00-13:45


def at(hh: int, mm: int) -> datetime:
    return datetime(2026, 12, 7, hh, mm, tzinfo=MOSCOW)  # a Monday


def elapsed(case: Case, start: datetime, end: datetime) -> timedelta:
    return working_time_between(WORKING, start, end, MOSCOW)


RUN = DrillRun(1, "storm", at(9, 0), "duty", 60.0, ended_at=at(15, 0), ended_by="duty")


def case(id_: int, department: str, created: datetime, **fields: object) -> Case:
    fields.setdefault("state", CaseState.NEW)
    return Case(
        id=id_,
        department=department,
        priority=Priority.NORMAL,
        created_at=created,
        source="drill",
        drill=True,
        drill_run_id=1,
        **fields,  # type: ignore[arg-type]
    )


def event(case_id: int | None, when: datetime, actor: str, kind: str, **payload: object) -> Event:
    return Event(case_id, when, actor, kind, None, None, dict(payload))


CASES = [
    # Touched after 12 min, approved after 40: both within the SLA, then published.
    case(
        1, "housing", at(9, 0), state=CaseState.PUBLISHED,
        first_touch_due_at=at(9, 45), answer_due_at=at(12, 0),
        first_touched_at=at(9, 12), approved_at=at(9, 40),
    ),
    # Opened at 12:50, touched at 13:55: 20 working minutes (lunch is not counted), late;
    # no answer by its 14:00 deadline; escalated twice, still open.
    case(
        2, "housing", at(12, 50), state=CaseState.TAKEN, escalation_level=2,
        first_touch_due_at=at(13, 50), answer_due_at=at(14, 0), first_touched_at=at(13, 55),
    ),
    # Untouched past its first-touch deadline; its answer is due after the drill ended.
    case(
        3, "transport", at(9, 5), escalation_level=1,
        first_touch_due_at=at(9, 50), answer_due_at=at(18, 0),
    ),
]  # fmt: skip
EVENTS = {
    1: [
        event(1, at(9, 12), "spec", Action.TAKE.value),
        event(1, at(9, 40), "appr", Action.APPROVE.value),
        event(1, at(9, 41), "spec", Action.PUBLISH.value, note="simulated"),
        event(1, at(9, 41), SYSTEM_ACTOR, EventKind.REMINDED.value),
    ],
    2: [
        event(2, at(13, 55), "spec2", Action.TAKE.value),
        event(2, at(14, 0), "duty", Action.ESCALATE.value, level=1),
        event(2, at(14, 30), SYSTEM_ACTOR, EventKind.ESCALATED.value, level=2),
    ],
    3: [event(3, at(10, 0), SYSTEM_ACTOR, EventKind.ESCALATED.value, level=1)],
}
TICKS = [
    event(None, at(9, 30), "duty", CHECKLIST_DONE, crisis=7, step=0, step_text="Convene"),
    event(None, at(9, 20), "lead", CHECKLIST_DONE, crisis=7, step=1, step_text="Holding line"),
    event(None, at(8, 0), "lead", CHECKLIST_DONE, crisis=6, step=2, step_text="Before"),
]


def test_figures_per_department_and_overall() -> None:
    report = drill_report(RUN, CASES, EVENTS, TICKS, elapsed)
    housing, transport = report.departments
    assert housing.department == "housing" and housing.cases == 2
    assert housing.first_touch == Timing(
        done=2, average_min=16.0, longest_min=20.0, met=1, breached=1
    )
    assert housing.answer == Timing(done=1, average_min=40.0, longest_min=40.0, met=1, breached=1)
    assert (housing.escalations, housing.escalated_cases, housing.highest_level) == (2, 1, 2)
    assert housing.left_open == 1
    assert housing.actors == {"spec": 2, "appr": 1, "spec2": 1, "duty": 1}

    assert transport.first_touch == Timing(breached=1)
    assert transport.answer == Timing()  # due after the drill ended: no breach
    assert (transport.escalations, transport.highest_level, transport.left_open) == (1, 1, 1)
    assert transport.actors == {}

    overall = report.overall
    assert overall.department is None and overall.cases == 3
    assert overall.first_touch.average_min == 16.0 and overall.first_touch.breached == 2
    assert overall.breaches == 3
    assert overall.cases_by_level == {1: 1, 2: 1}
    assert (overall.escalations, overall.highest_level, overall.left_open) == (3, 2, 2)


def test_checklist_ticks_in_the_drill_window_in_order() -> None:
    report = drill_report(RUN, CASES, EVENTS, TICKS, elapsed)
    assert [(t.step, t.text, t.actor, t.minutes, t.crisis) for t in report.checklist] == [
        (1, "Holding line", "lead", 20.0, 7),
        (0, "Convene", "duty", 30.0, 7),
    ]


def test_deltas_against_the_previous_drill() -> None:
    earlier_run = replace(RUN, id=0)
    slower = [replace(CASES[0], first_touched_at=at(9, 30)), *CASES[1:]]
    earlier = drill_report(earlier_run, slower, EVENTS, [], elapsed)
    assert earlier.overall.first_touch.average_min == 25.0  # (30 + 20) / 2
    report = drill_report(RUN, CASES, EVENTS, TICKS, elapsed, previous=earlier)
    assert report.deltas() == {
        "cases": 0,
        "first_touch_average_min": -9.0,
        "answer_average_min": 0.0,
        "breaches": 0,
        "escalations": 0,
        "highest_level": 0,
        "left_open": 0,
        "checklist_done": 2,
    }
    assert drill_report(RUN, CASES, EVENTS, TICKS, elapsed).deltas() is None
    context = report_context(report, {"housing": "ЖКХ", "transport": "Транспорт"}.__getitem__)
    assert context["previous_id"] == 0
    assert context["departments"][0]["department_name"] == "ЖКХ"
    assert context["overall"]["first_touch"]["average_min"] == 16.0
    assert context["overall"]["cases_by_level"] == {"1": 1, "2": 1}


def test_reaction_figures_only_when_a_reaction_deadline_was_set() -> None:
    assert drill_report(RUN, CASES, EVENTS, TICKS, elapsed).overall.reaction is None
    # Case 1 taken at 9:12 against 9:15; case 2 at 13:55 against 13:05; case 3 never, due 9:20.
    reacting = [
        replace(CASES[0], reaction_due_at=at(9, 15), reacted_at=at(9, 12)),
        replace(CASES[1], reaction_due_at=at(13, 5), reacted_at=at(13, 55)),
        replace(CASES[2], reaction_due_at=at(9, 20)),
    ]
    report = drill_report(RUN, reacting, EVENTS, TICKS, elapsed)
    # 12 and 20 working minutes (lunch is not counted); not a breach of what citizens see.
    assert report.overall.reaction == Timing(
        done=2, average_min=16.0, longest_min=20.0, met=1, breached=2
    )
    assert report.overall.breaches == 3
    context = report_context(report, {"housing": "ЖКХ", "transport": "Транспорт"}.__getitem__)
    assert context["overall"]["reaction"]["breached"] == 2
    texts = texts_for(ROOT / "playbooks" / "templates", "ru")
    shown = texts.render(
        "drill_report.html.j2", **context, title="t", started="s", ended="e", names={}
    )
    assert "Реакция: 2 · в среднем 16.0 мин · максимум 20.0 мин · в срок 1 · просрочено 2" in shown
    assert "Первый ответ: 2 · в среднем 16.0 мин" in shown
