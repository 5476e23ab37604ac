"""Coding, priority and assignment (issue 18, item 4): the pure lifecycle, the playbook's code
lists as a department sees them, and the case service's checks, SLA and audit over SQLite."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.cases.cards import card_view, menu_options
from bot.cases.codes import CodeBook, code_of_arg, toggle
from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import (
    ActionRequest,
    InvalidInput,
    InvalidTransition,
    MissingInput,
    NoRight,
    NotAssignee,
    transition,
)
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.model import Action, CaseState, EventKind, Priority, WaitReason
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, load_playbook
from bot.sla.calendar import plan_deadlines
from bot.sla.engine import SlaEngine
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from handlers.telegram.callbacks import CaseAction, CaseMenu
from store.db import Database
from tests.bot.cases.stories import DUTY, LEAD, SPEC, SPEC2, T0, A, S, Story, story_in
from tests.doubles.support import make_config, make_mention

PLAYBOOK = load_playbook(DEFAULT_PLAYBOOK_DIR)
CODES = CodeBook(PLAYBOOK.codes, "ru")


# --- the lifecycle: pure ----------------------------------------------------------------------


def test_a_code_toggles_and_a_single_choice_dimension_replaces_its_code() -> None:
    s = Story()
    t = s.do(A.SET_CODE, SPEC, code="district:north")  # a new case: any of its staff
    assert t.case.codes == ("district:north",)
    assert t.case.state is S.NEW and t.case.reacted_at is None  # coding is no reaction
    t = s.do(A.SET_CODE, SPEC, code="district:south")  # one district: it replaces
    assert t.case.codes == ("district:south",)
    assert t.events[0].payload == {
        "code": "district:south",
        "added": True,
        "replaced": ["district:north"],
    }
    s.do(A.SET_CODE, SPEC, code="topic:heating", code_multiple=True)
    t = s.do(A.SET_CODE, SPEC, code="topic:water", code_multiple=True)  # several topics
    assert t.case.codes == ("district:south", "topic:heating", "topic:water")
    t = s.do(A.SET_CODE, SPEC, code="topic:heating", code_multiple=True)  # again: removed
    assert t.case.codes == ("district:south", "topic:water")
    assert t.events[0].payload == {"code": "topic:heating", "added": False}


def test_codes_a_source_gave_are_left_alone() -> None:
    assert toggle(("heating",), "topic:heating", multiple=False).codes == (
        "heating",
        "topic:heating",
    )
    s = Story()
    s.refuse(A.SET_CODE, SPEC, InvalidInput, code="heating")  # no dimension: not ours to set
    s.refuse(A.SET_CODE, SPEC, MissingInput, code="")


def test_once_owned_only_the_owner_or_the_lead_codes() -> None:
    s = story_in(S.TAKEN)  # spec owns it
    s.refuse(A.SET_CODE, SPEC2, NotAssignee, code="topic:heating")
    s.do(A.SET_CODE, LEAD, code="topic:heating")
    s.do(A.SET_CODE, SPEC, code="district:south")
    assert s.case.codes[-2:] == ("topic:heating", "district:south")


def test_priority_by_the_lead_or_the_duty_officer_only() -> None:
    s = story_in(S.TAKEN)
    s.refuse(A.SET_PRIORITY, SPEC, NoRight, priority=Priority.HIGH)
    t = s.do(A.SET_PRIORITY, DUTY, priority=Priority.HIGH)
    assert t.case.priority is Priority.HIGH
    assert t.events[0].payload == {"previous": "normal", "priority": "high"}
    s.refuse(A.SET_PRIORITY, LEAD, InvalidInput, priority=Priority.HIGH)  # no change
    assert s.do(A.SET_PRIORITY, LEAD, priority=Priority.LOW).case.priority is Priority.LOW


def test_assigning_takes_a_new_case_in_the_colleagues_name() -> None:
    s = Story()
    s.refuse(A.ASSIGN, SPEC, NoRight, assignee="spec2")
    s.refuse(A.ASSIGN, DUTY, NoRight, assignee="spec2")
    t = s.do(A.ASSIGN, LEAD, assignee="spec2")
    assert (t.case.state, t.case.assignee) == (S.TAKEN, "spec2")
    assert t.events[0].payload == {"assignee": "spec2"}
    t = s.do(A.ASSIGN, LEAD, assignee="spec")  # reassigned: the state stays
    assert (t.case.state, t.case.assignee) == (S.TAKEN, "spec")
    assert t.events[0].payload == {"previous": "spec2", "assignee": "spec"}
    s.refuse(A.ASSIGN, LEAD, InvalidInput, assignee="spec")
    s.refuse(A.ASSIGN, LEAD, MissingInput, assignee="")


def test_nothing_of_it_on_a_closed_case() -> None:
    closed = story_in(S.CLOSED).case
    for action, fields in (
        (A.SET_CODE, {"code": "topic:heating"}),
        (A.SET_PRIORITY, {"priority": Priority.HIGH}),
        (A.ASSIGN, {"assignee": "spec"}),
    ):
        with pytest.raises(InvalidTransition):
            transition(closed, ActionRequest(action, **fields), LEAD, T0)  # type: ignore[arg-type]


# --- the playbook's lists ---------------------------------------------------------------------


def test_dimensions_and_codes_as_a_department_sees_them() -> None:
    assert [d.id for d in CODES.dimensions("housing")] == ["topic", "object", "district"]
    housing = [code for code, _ in CODES.codes("object", "housing")]
    transport = [code for code, _ in CODES.codes("object", "transport")]
    assert "object:route" not in housing and "object:route" in transport
    assert CODES.offered("object:route", "transport")
    assert not CODES.offered("object:route", "housing")
    assert not CODES.offered("topic:nonsense", "housing")
    assert CODES.multiple("topic") and not CODES.multiple("district")
    assert CODES.shown(("heating", "district:south", "topic:heating", "topic:gone")) == [
        {"dimension": "Тема", "codes": ["Отопление", "gone"]},
        {"dimension": "Район", "codes": ["Южный"]},
    ]
    assert PLAYBOOK.code_title("topic:heating", "en") == "Topic: Heating"
    assert CODES.title("district:south") == "Район: Южный"
    assert CODES.title("topic:gone") == "topic:gone"
    assert PLAYBOOK.code_parts("district:south", "ru") == ("Район", "Южный")


def test_menus_two_levels_and_every_button_fits_telegrams_64_bytes(tmp_path: Path) -> None:
    config = make_config(tmp_path, "sqlite+aiosqlite:///:memory:")
    directory = Directory(config)
    case = replace(story_in(S.TAKEN).case, id=9_999_999, version=9_999, codes=("topic:water",))
    dimensions = menu_options(A.SET_CODE, case, directory, [], CODES)
    assert [o["menu"] for o in dimensions] == [
        "set_code.topic",
        "set_code.object",
        "set_code.district",
    ]
    topics = menu_options(A.SET_CODE, case, directory, [], CODES, "topic")
    assert {"arg": "topic.water", "label": "✓ Водоснабжение", "action": "set_code"} in topics
    assert code_of_arg("topic.water") == "topic:water"
    assignable = menu_options(A.ASSIGN, case, directory, [], CODES)
    assert [o["arg"] for o in assignable] == ["spec2", "appr", "lead"]  # not spec, who has it
    priorities = menu_options(A.SET_PRIORITY, case, directory, [], CODES)
    assert [o["arg"] for o in priorities] == ["critical", "high", "low"]
    longest = max(
        (code for d in PLAYBOOK.codes.dimensions for code, _ in CODES.codes(d.id, "transport")),
        key=len,
    )
    CaseAction(case=case.id, v=case.version, a="set_code", x=longest.replace(":", ".")).pack()
    CaseMenu(case=case.id, v=case.version, menu="set_code.district").pack()
    # No codes in the playbook: no «Коды ▸» on the card.
    mention = make_mention("1", T0)
    with_codes = card_view(case, mention, None, directory, config.tz, codes=CODES)
    without = card_view(case, mention, None, directory, config.tz)
    assert "set_code" in with_codes["actions"] and "set_code" not in without["actions"]
    assert with_codes["codes"] == [{"dimension": "Тема", "codes": ["Водоснабжение"]}]


# --- the case service: the config's staff, the playbook's codes, the SLA policy ------------------


@pytest.fixture
async def service(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> tuple[CaseService, Directory]:
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram"}))
    engine = SlaEngine(PLAYBOOK, config.tz)
    cases = CaseService(database.uow, clock, directory, config.tz, sla=engine, codes=CODES)
    return cases, directory


def _actor(directory: Directory, staff_id: str) -> Actor:
    actor = directory.by_staff_id(staff_id)
    assert actor is not None
    return actor


async def _open(cases: CaseService, clock: FrozenClock) -> int:
    name, due = plan_deadlines(PLAYBOOK, "housing", Priority.NORMAL, clock.now(), cases.tz)
    opening = CaseOpening(
        "housing",
        sla_policy=name,
        first_touch_due_at=due.first_touch,
        answer_due_at=due.answer,
        resolution_due_at=due.resolution,
    )
    result = await cases.intake(make_mention("1", clock.now()), opening)
    assert result.case is not None and result.case.id is not None
    return result.case.id


async def test_the_service_checks_codes_and_colleagues_against_the_config(
    service: tuple[CaseService, Directory], clock: FrozenClock, database: Database
) -> None:
    cases, directory = service
    case_id = await _open(cases, clock)
    lead, tspec = _actor(directory, "lead"), _actor(directory, "tspec")
    # A code of another department's list, or none at all: refused, nothing changes.
    refused = await cases.act(case_id, ActionRequest(A.SET_CODE, code="object:route"), lead)
    assert isinstance(refused.error, InvalidInput)
    done = await cases.act(case_id, ActionRequest(A.SET_CODE, code="topic:heating"), lead)
    assert done.error is None and done.case is not None
    assert done.case.codes == ("topic:heating",)
    # Only staff of the department: tspec works in transport.
    refused = await cases.act(case_id, ActionRequest(A.ASSIGN, assignee="tspec"), lead)
    assert isinstance(refused.error, InvalidInput)
    refused = await cases.act(case_id, ActionRequest(A.ASSIGN, assignee="spec"), tspec)
    assert isinstance(refused.error, NoRight)
    done = await cases.act(case_id, ActionRequest(A.ASSIGN, assignee="spec2"), lead)
    assert done.case is not None and done.case.assignee == "spec2"
    thread = await cases.thread(case_id)
    assert thread is not None
    denied = [e for e in thread.events if e.kind == EventKind.DENIED]
    assert [(e.actor, e.payload["action"]) for e in denied] == [("tspec", "assign")]

    # A code the playbook has since dropped is never set again, but may be removed.
    async with database.uow() as uow:
        stored = await uow.cases.get(case_id)
        assert stored is not None
        dropped = replace(stored, codes=(*stored.codes, "topic:gone"), version=stored.version + 1)
        await uow.cases.save(dropped, expected_version=stored.version)
        await uow.commit()
    removed = await cases.act(case_id, ActionRequest(A.SET_CODE, code="topic:gone"), lead)
    assert removed.case is not None and removed.case.codes == ("topic:heating",)
    again = await cases.act(case_id, ActionRequest(A.SET_CODE, code="topic:gone"), lead)
    assert isinstance(again.error, InvalidInput)


async def test_a_new_priority_brings_its_sla_policy_and_deadlines(
    service: tuple[CaseService, Directory], clock: FrozenClock, database: Database
) -> None:
    cases, directory = service
    case_id = await _open(cases, clock)
    before = await cases.get(case_id)
    assert before is not None and before.sla_policy == "normal"
    clock.advance(timedelta(minutes=10))
    raised = await cases.act(
        case_id,
        ActionRequest(A.SET_PRIORITY, priority=Priority.CRITICAL),
        _actor(directory, "duty"),
    )
    case = raised.case
    assert raised.error is None and case is not None
    # Counted from the opening on the critical policy (24x7: 30 minutes to the first reply).
    _, due = plan_deadlines(PLAYBOOK, "housing", Priority.CRITICAL, before.created_at, cases.tz)
    assert (case.sla_policy, case.first_touch_due_at) == ("critical", due.first_touch)
    assert case.first_touch_due_at < before.first_touch_due_at  # type: ignore[operator]
    (event,) = raised.events
    assert event.payload["sla_policy"] == "critical"
    assert event.payload["first_touch_due_at"] == due.first_touch.isoformat()
    assert (case.reacted_at, case.state) == (None, CaseState.NEW)  # nobody's reaction
    async with database.uow() as uow:
        pending = (await uow.timers.pending_for([case_id]))[case_id]
    # The SLA clock is re-armed: the breach of the new deadline is pending.
    assert due.first_touch in {t.due_at for t in pending}

    # A deadline met stays as it was (whether it was kept is history); the others follow.
    lead = _actor(directory, "lead")
    await cases.act(case_id, ActionRequest(Action.TAKE), lead)
    asked = ActionRequest(Action.WAIT_FOR_AUTHOR, wait_reason=WaitReason.DETAILS_REQUESTED)
    touched = (await cases.act(case_id, asked, lead)).case
    assert touched is not None and touched.first_touched_at is not None
    lowered = await cases.act(case_id, ActionRequest(A.SET_PRIORITY, priority=Priority.LOW), lead)
    assert lowered.case is not None
    _, low = plan_deadlines(PLAYBOOK, "housing", Priority.LOW, before.created_at, cases.tz)
    assert lowered.case.first_touch_due_at == touched.first_touch_due_at
    assert lowered.case.answer_due_at == low.answer
