"""A scripted day through the real case service and the SLA engine, on SQLite and PostgreSQL:
six cases, some only taken, some replied to in public or in private, one ignored; the
digest's first-reply compliance counts only the authors who saw a reply in time. With a
reaction deadline configured, the reaction figures appear beside it, apart from SLA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import ActionRequest
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.messages.texts import texts_for
from bot.model import Action, Case, IgnoreReason, Priority, WaitReason
from bot.ports import UnitOfWorkFactory
from bot.reports.digest import DigestService
from bot.reports.evening import evening_context
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, Playbook, load_playbook
from bot.sla.calendar import plan_deadlines
from bot.sla.engine import SlaEngine
from bot.staff.directory import Directory
from store.db import Database
from tests.doubles.support import ROOT, make_config, make_mention

MONDAY = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 10:00 in Moscow; "normal": first reply 60m
EVENING = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # 19:00 in Moscow
M = timedelta(minutes=1)
TEMPLATES = ROOT / "playbooks" / "templates"


def with_reaction(playbook: Playbook, reaction: timedelta | None) -> Playbook:
    policies = dict(playbook.sla.policies)
    policies["normal"] = policies["normal"].model_copy(update={"reaction": reaction})
    sla = playbook.sla.model_copy(update={"policies": policies})
    return playbook.model_copy(update={"sla": sla})


class Day:
    def __init__(self, database: Database, tmp_path: Path, playbook: Playbook) -> None:
        self.config = make_config(tmp_path, database.url)
        self.clock = FrozenClock(MONDAY)
        self.directory = Directory(self.config, frozenset({"telegram"}), self.clock)
        self.playbook = playbook
        self.database = database
        self.cases = CaseService(
            database.uow,
            self.clock,
            self.directory,
            self.config.tz,
            coordination=self.config.coordination_department,
            sla=SlaEngine(playbook, self.config.tz),
        )

    async def open(self, n: int) -> Case:
        now = self.clock.now()
        name, due = plan_deadlines(self.playbook, "housing", Priority.NORMAL, now, self.config.tz)
        opening = CaseOpening(
            "housing",
            Priority.NORMAL,
            name,
            due.first_touch,
            due.answer,
            due.resolution,
            reaction_due_at=due.reaction,
        )
        result = await self.cases.intake(make_mention(str(n), now), opening)
        assert result.case is not None
        return result.case

    async def act(self, case: Case, minutes: int, action: Action, **fields: Any) -> Case:
        """`action` by the specialist at 10:00 + `minutes`."""
        assert case.id is not None
        self.clock.set(MONDAY + minutes * M)
        actor = self.directory.by_staff_id("spec")
        assert actor is not None
        result = await self.cases.act(case.id, ActionRequest(action, **fields), actor)
        assert result.ok and result.case is not None, result.error
        return result.case

    async def template(self, case: Case, minutes: int) -> Case:
        return await self.act(
            case,
            minutes,
            Action.USE_TEMPLATE,
            text="Здравствуйте! Видим ваше сообщение, уже разбираемся.",
            template_id="first-touch-housing",
            pre_approved=True,
        )


@pytest.mark.parametrize("reaction", [None, 15 * M], ids=["no-reaction", "reaction-15m"])
async def test_a_scripted_day_counts_only_replies_the_authors_saw(
    database: Database, tmp_path: Path, reaction: timedelta | None
) -> None:
    day = Day(database, tmp_path, with_reaction(load_playbook(DEFAULT_PLAYBOOK_DIR), reaction))
    only_taken, drafted, published, private, late, ignored = [await day.open(n) for n in range(6)]
    assert only_taken.first_touch_due_at == MONDAY + 60 * M
    assert only_taken.reaction_due_at == (MONDAY + reaction if reaction else None)

    await day.act(only_taken, 10, Action.TAKE)  # nobody wrote to the author: missed
    await day.act(drafted, 10, Action.TAKE)
    await day.act(drafted, 20, Action.DRAFT, text="Черновик ответа")  # not shown: missed
    await day.act(published, 10, Action.TAKE)
    await day.template(published, 20)
    await day.act(published, 30, Action.MARK_PUBLISHED)  # seen at 10:30: met
    await day.act(private, 10, Action.TAKE)
    await day.act(
        private, 40, Action.WAIT_FOR_AUTHOR, wait_reason=WaitReason.MOVED_TO_PRIVATE
    )  # written to in private at 10:40: met
    await day.act(private, 50, Action.AUTHOR_REPLIED)
    await day.act(late, 20, Action.TAKE)  # the only late reaction
    await day.template(late, 80)
    await day.act(late, 90, Action.MARK_PUBLISHED)  # seen at 11:30: missed
    await day.act(ignored, 5, Action.IGNORE, reason=IgnoreReason.SPAM)  # nothing owed: kept

    service = DigestService(
        cast(UnitOfWorkFactory, database.uow),
        FrozenClock(EVENING),
        day.directory,
        day.config.tz,
    )
    context = evening_context(await service.evening(), day.directory, day.config.tz)
    # Answers: the two templates are pre-approved, the ignored case owes none; 6 of 12 kept.
    assert context["sla"] == {
        "percent": 50,
        "first_touch_met": 3,
        "first_touch_due": 6,
        "answer_met": 3,
        "answer_due": 6,
        "reaction_met": 5 if reaction else 0,
        "reaction_due": 6 if reaction else 0,
    }
    # Time to the first reply: 30, 40 and 90 minutes (the ignored case had none).
    assert context["times"]["first_touch_count"] == 3
    assert context["times"]["first_touch_median"] == "0:40"
    assert context["times"]["first_touch_p90"] == "1:30"

    ru = texts_for(TEMPLATES, "ru").render("digest.html.j2", **context)
    en = texts_for(TEMPLATES, "en").render("digest.html.j2", **context)
    assert "SLA <b>50%</b>: первый ответ 3/6, ответ 3/6" in ru
    assert "SLA <b>50%</b>: first reply 3/6, answer 3/6" in en
    if reaction:
        assert "Реакция (кейс взят в работу) в срок: 5/6" in ru
        assert "Reaction (case taken) on time: 5/6" in en
    else:
        assert "Реакция" not in ru and "Reaction" not in en
