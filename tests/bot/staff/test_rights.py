"""Who may read across departments (issue 15, deliverable 5): /status and /case of every
department for the duty officer, leadership and administrators; in the coordination chat
also for the coordination centre's staff; for everyone else their own departments."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cases.grouping import CaseOpening
from bot.cases.service import CaseService
from bot.chat.answers import Answers
from bot.clock import FrozenClock
from bot.messages.texts import DEFAULT_TEMPLATES_DIR, texts_for
from bot.model import DeptRole, GlobalRole
from bot.staff.directory import Directory
from bot.staff.rights import Actor, may_see, sees_every_department
from store.db import Database
from tests.doubles.support import make_config, make_mention

COORDINATOR = Actor("coord", "Ким", {"coordination": frozenset({DeptRole.SPECIALIST})})
SPECIALIST = Actor("spec", "Анна", {"housing": frozenset({DeptRole.SPECIALIST})})
LEADER = Actor("boss", "Лев", global_roles=frozenset({GlobalRole.LEADERSHIP}))
STRANGER = Actor.stranger("tg:7777", "Пётр")


def test_who_sees_every_department() -> None:
    assert sees_every_department(LEADER) and sees_every_department(LEADER, "coordination")
    assert not sees_every_department(COORDINATOR)  # in a private chat: their own only
    assert sees_every_department(COORDINATOR, "coordination")  # in the coordination chat
    assert not sees_every_department(SPECIALIST, "coordination")
    assert may_see(SPECIALIST, "housing") and not may_see(SPECIALIST, "transport")
    assert not may_see(STRANGER, "housing", "coordination")


@pytest.mark.parametrize(
    ("actor", "chat", "expected"),
    [
        (LEADER, None, ["ЖКХ", "Транспорт", "ЦУР"]),
        (COORDINATOR, None, ["ЦУР"]),
        (COORDINATOR, "coordination", ["ЖКХ", "Транспорт", "ЦУР"]),
        (SPECIALIST, None, ["ЖКХ"]),
        (SPECIALIST, "coordination", ["ЖКХ"]),
        (SPECIALIST, "transport", ["Транспорт"]),  # a department's chat: that department
    ],
)
async def test_status_lists_only_the_departments_one_may_read(
    tmp_path: Path,
    database: Database,
    clock: FrozenClock,
    actor: Actor,
    chat: str | None,
    expected: list[str],
) -> None:
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram"}))
    cases = CaseService(database.uow, clock, directory, config.tz, coordination="coordination")
    await cases.intake(make_mention("1", clock.now()), CaseOpening("transport"))
    answers = Answers(cases, directory, texts_for(DEFAULT_TEMPLATES_DIR, "ru"))
    view = await answers.status(actor, chat)
    assert view["view"] == "page"
    assert [d["name"] for d in view["context"]["departments"]] == expected
    assert (await answers.status(STRANGER, chat))["view"] == "notice"
