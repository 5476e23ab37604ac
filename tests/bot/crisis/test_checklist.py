"""The crisis checklist that can be ticked: who may, what is recorded, how the card and the
digest show it. The clock is injected; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiogram.types import InlineKeyboardMarkup

from bot.cases.lifecycle import NoRight, StaleCard
from bot.cases.outcomes import WrongChat
from bot.clock import FrozenClock
from bot.crisis.checklist import ChecklistTick, checklist_state
from bot.crisis.service import (
    CRISIS_URGENCY,
    TICK_URGENCY,
    ChecklistDoneAlready,
    ChecklistNotDone,
    ChecklistNotYours,
    CrisisService,
    UnknownCrisis,
)
from bot.messages.outbox import Destination, OutboxOp
from bot.messages.texts import texts_for
from bot.model import EventKind
from bot.reports.digest import DigestService
from bot.settings.playbook import load_playbook
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from handlers.matrix.render import MatrixRenderer
from handlers.telegram.render import TelegramRenderer
from store.db import Database
from tests.bot.crisis.test_crisis import Setup
from tests.doubles.support import make_config

MINUTE = timedelta(minutes=1)
COORDINATION = Destination("telegram", "-100999")
HOUSING_CHAT = Destination("telegram", "-100111", "7")
HOUSING_SPIKE = {
    "id": "housing-spike",
    "scope": "department",
    "key": "housing",
    "window": "1h",
    "count": 2,
}


@pytest.fixture
def setup(tmp_path: Path, database: Database, clock: FrozenClock) -> Setup:
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram"}), clock)
    return Setup(config, database, clock, directory, load_playbook(config.playbooks.path))


async def _open(setup: Setup) -> tuple[CrisisService, int]:
    service = setup.service([HOUSING_SPIKE])
    await setup.mention(setup.clock.now() - MINUTE, count=2)
    (opened,) = await service.evaluate()
    assert opened.after.id is not None
    await setup.deliver()
    return service, opened.after.id


def _staff(setup: Setup, staff_id: str) -> Actor:
    actor = setup.directory.by_staff_id(staff_id)
    assert actor is not None
    return actor


async def _denied(database: Database) -> list[dict[str, object]]:
    async with database.uow() as uow:
        return [e.payload for e in await uow.events.of_kind(EventKind.DENIED.value)]


async def test_a_tick_is_an_event_and_redraws_the_card(setup: Setup, clock: FrozenClock) -> None:
    service, crisis_id = await _open(setup)
    (card,) = await setup.outbox()
    assert card.payload["checklist"]["version"] == 1  # opened: one timeline event, no ticks
    assert card.payload["checklist"]["crisis"] == crisis_id
    assert [s["done"] for s in card.payload["checklist"]["steps"]] == [False] * 7

    clock.advance(5 * MINUTE)
    duty = _staff(setup, "duty")
    result = await service.tick(
        crisis_id, 0, duty, done=True, where=COORDINATION, expected_version=1
    )
    assert result.error is None and result.tick is not None
    assert result.tick.at == clock.now() and result.tick.actor == "duty"

    # The event carries the contract the drill report reads.
    async with setup.database.uow() as uow:
        (event,) = await uow.events.of_kind(EventKind.CHECKLIST_DONE.value)
    assert event.case_id is None and event.actor == "duty" and event.at == clock.now()
    assert event.payload == {
        "crisis": crisis_id,
        "step": 0,
        "step_text": "Собрать кризисную группу (дежурный, руководитель пресс-службы, "
        "руководитель отдела)",
    }

    # The same message is edited: the item shows who and when, the button now unticks.
    edit = (await setup.outbox())[-1]
    assert edit.op is OutboxOp.EDIT and edit.ref_key == card.ref_key
    # A person's press: ahead of the card's routine redraws, and not paced with them.
    assert edit.urgency == TICK_URGENCY > card.urgency == CRISIS_URGENCY
    assert edit.payload["checklist"]["version"] == 2
    assert edit.payload["checklist"]["steps"][0]["done"] is True
    ru = texts_for(setup.config.playbooks.templates, "ru")
    en = texts_for(setup.config.playbooks.templates, "en")
    page = ru.render(edit.payload["template"], **edit.payload["context"])
    assert "✅ Дарья Морозова, 20.11 16:35" in page  # 13:35 UTC in Moscow
    assert "выполнено 1 из 7" in page
    assert "1 of 7 done" in en.render(edit.payload["template"], **edit.payload["context"])

    # The read function a drill report reuses.
    assert await service.checklist(crisis_id) == [result.tick]
    assert await service.checklist(crisis_id + 1) == []


async def test_refusals_change_nothing_and_rights_refusals_are_audited(
    setup: Setup, clock: FrozenClock
) -> None:
    service, crisis_id = await _open(setup)
    duty, spec, lead = (_staff(setup, s) for s in ("duty", "spec", "lead"))
    stranger = Actor.stranger("tg:6666", "Тролль")

    async def tick(actor: Actor, step: int = 0, done: bool = True, **kwargs: object):  # type: ignore[no-untyped-def]
        arguments = {"where": COORDINATION, **kwargs}
        return await service.tick(crisis_id, step, actor, done=done, **arguments)  # type: ignore[arg-type]

    assert isinstance((await tick(stranger)).error, NoRight)
    # A housing specialist sees the coordination chat, but the plan is not theirs to run.
    assert isinstance((await tick(spec)).error, NoRight)
    assert isinstance((await tick(duty, where=HOUSING_CHAT)).error, WrongChat)
    assert isinstance((await tick(duty, expected_version=0)).error, StaleCard)
    assert isinstance((await service.tick(crisis_id + 9, 0, duty, done=True)).error, UnknownCrisis)
    assert await service.checklist(crisis_id) == []
    reasons = [(d["action"], d["reason"], d["crisis"]) for d in await _denied(setup.database)]
    assert reasons == [
        ("checklist_done", "no_right", crisis_id),
        ("checklist_done", "no_right", crisis_id),
        ("checklist_done", "wrong_chat", crisis_id),
        ("checklist_done", "stale", crisis_id),
        ("checklist_done", "unknown_crisis", crisis_id + 9),
    ]

    # The crisis department's lead may tick (the official post is theirs).
    assert (await tick(lead, step=4, expected_version=1)).error is None
    clock.advance(MINUTE)
    assert (await tick(duty, step=0, expected_version=2)).error is None
    done_already = (await tick(duty, step=4)).error
    assert isinstance(done_already, ChecklistDoneAlready)
    assert done_already.params == {"who": "Глеб Смирнов", "at": "20.11 16:30"}
    assert isinstance((await tick(duty, step=3, done=False)).error, ChecklistNotDone)
    # Unticking: whoever ticked it, or the duty officer; not another person.
    assert isinstance((await tick(lead, step=0, done=False)).error, ChecklistNotYours)
    assert (await tick(duty, step=4, done=False)).error is None
    assert len(await _denied(setup.database)) == 6  # the lead's untick; mistakes are not

    ticks = await service.checklist(crisis_id)
    assert [(t.step, t.done, t.actor) for t in ticks] == [
        (4, True, "lead"),
        (0, True, "duty"),
        (4, False, "duty"),
    ]
    assert list(checklist_state(ticks)) == [0]
    async with setup.database.uow() as uow:
        (undone,) = await uow.events.of_kind(EventKind.CHECKLIST_UNDONE.value)
    assert undone.payload["step"] == 4 and undone.actor == "duty"


def test_the_last_event_of_each_item_wins() -> None:
    at = datetime(2026, 11, 20, 13, 30, tzinfo=UTC)
    ticks = [
        ChecklistTick(1, 2, "b", True, "duty", at),
        ChecklistTick(1, 0, "a", True, "duty", at + MINUTE),
        ChecklistTick(1, 2, "b", False, "duty", at + 2 * MINUTE),
        ChecklistTick(1, 2, "b", True, "admin", at + 3 * MINUTE),
    ]
    state = checklist_state(ticks)
    assert sorted(state) == [0, 2] and state[2].actor == "admin"


async def test_the_digest_says_how_much_of_the_checklist_was_done_and_when(
    setup: Setup, clock: FrozenClock
) -> None:
    service, crisis_id = await _open(setup)
    duty = _staff(setup, "duty")
    for minutes, step in ((12, 0), (30, 1), (70, 3)):
        clock.set(clock.now().replace(hour=13, minute=30) + minutes * MINUTE)
        assert (await service.tick(crisis_id, step, duty, done=True)).error is None
    # Unticked later: not done, and its time is not counted.
    assert (await service.tick(crisis_id, 1, duty, done=False)).error is None

    digests = DigestService(
        setup.database.uow,
        clock,
        setup.directory,
        setup.config.tz,
        checklist_steps=len(setup.playbook.crisis.checklist),
    )
    figures = await digests.evening()
    (span,) = figures.crises
    assert [clock_time.minute for clock_time in span.checklist_done_at] == [42, 40]
    view = digests.evening_view(figures)
    for locale, line in (
        ("ru", "План действий: выполнено 2/7, первый пункт в 16:42, последний в 17:40"),
        ("en", "Checklist: 2/7 done, first at 16:42, last at 17:40"),
    ):
        texts = texts_for(setup.config.playbooks.templates, locale)
        assert line in texts.render(view["template"], **view["context"])  # type: ignore[typeddict-item]


async def test_each_transport_draws_the_items_as_its_own_buttons(setup: Setup) -> None:
    service, crisis_id = await _open(setup)
    duty = _staff(setup, "duty")
    assert (await service.tick(crisis_id, 1, duty, done=True, expected_version=1)).error is None
    edit = (await setup.outbox())[-1]
    en = texts_for(setup.config.playbooks.templates, "en")

    rendered = TelegramRenderer(en).render(edit.payload)
    assert isinstance(rendered.markup, InlineKeyboardMarkup)
    rows = rendered.markup.inline_keyboard
    assert [len(row) for row in rows] == [1] * 7
    # The start of each item (the card above has it whole), ticked or not.
    assert rows[0][0].text == "⬜ 1. Assemble the crisis team (duty officer,…"
    assert rows[1][0].text.startswith("✅ 2. Publish a holding statement")
    assert rows[2][0].text == "⬜ 3. Pause all scheduled posts"
    assert rows[1][0].callback_data == f"k:{crisis_id}:2:1:0"  # pressing it unticks
    assert all(len((b.callback_data or "").encode()) <= 64 for row in rows for b in row)

    matrix = MatrixRenderer(en).render(edit.payload)
    assert matrix.reactions == ["1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣"]
    assert matrix.card == {"crisis": crisis_id, "version": 2}
    assert "✅ Дарья Морозова, 20.11 16:30" in matrix.body
