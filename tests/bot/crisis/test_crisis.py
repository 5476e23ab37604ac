"""Crisis mode: counting in the database, opening, peaks, cool-down and closing, the card.

The clock is injected; mentions are stored as rows at chosen times on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cases.service import CaseService
from bot.chat.answers import Answers
from bot.clock import FrozenClock
from bot.crisis.service import CrisisService, crisis_ref
from bot.crisis.thresholds import (
    CountWindow,
    Crisis,
    CrisisEventKind,
    Reading,
    WindowCounts,
    decide,
    limit_of,
)
from bot.messages.outbox import Destination, OutboxItem, OutboxOp, OutboxStatus
from bot.messages.texts import texts_for
from bot.model import GlobalRole
from bot.settings.config import Config, StaffMember
from bot.settings.crisis_rules import CrisisThreshold, ThresholdScope
from bot.settings.playbook import Playbook, load_playbook
from bot.staff.directory import Directory
from handlers.matrix.render import MatrixRenderer
from store.db import Database
from store.models import AuthorRow, CaseRow, MentionRow, OutboxRow
from tests.doubles.support import make_config

MINUTE = timedelta(minutes=1)
_ids = itertools.count(1)


# --- pure decisions -------------------------------------------------------------------------


def threshold(**fields: Any) -> CrisisThreshold:
    return CrisisThreshold.model_validate({"id": "t", "scope": "all", "window": "1h", **fields})


def test_limit_is_the_count_or_ratio_times_baseline_but_at_least_min_count() -> None:
    assert limit_of(threshold(count=15), None) == 15
    ratio = threshold(ratio=1.5, baseline_days=7, min_count=10)
    assert limit_of(ratio, 12.0) == 18.0
    assert limit_of(ratio, 2.0) == 10.0  # 3 instead of 2 is no crisis
    assert limit_of(ratio, None) == 10.0


def test_decide_opens_follows_the_peak_and_closes_after_a_whole_cool_down() -> None:
    t = threshold(count=3)
    start = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
    cool = timedelta(minutes=30)

    def step(count: int, at: datetime, crises: Sequence[Crisis]) -> list[Crisis]:
        changes = decide([Reading(t, count, 3.0)], crises, at, cool)
        merged = {c.threshold_id: c for c in crises}
        merged.update({c.after.threshold_id: c.after for c in changes})
        return [c for c in merged.values() if c.is_open] + [c.after for c in changes if c.closed]

    assert decide([Reading(t, 2, 3.0)], [], start, cool) == []
    crises = step(3, start, [])
    assert crises[0].count_at_open == 3 and crises[0].peak_count == 3
    crises = step(5, start + MINUTE, crises)
    assert (crises[0].peak_count, crises[0].peak_at) == (5, start + MINUTE)
    assert decide([Reading(t, 4, 3.0)], crises, start + 2 * MINUTE, cool) == []  # nothing new
    crises = step(2, start + 10 * MINUTE, crises)
    assert crises[0].below_since == start + 10 * MINUTE
    crises = step(1, start + 39 * MINUTE, crises)
    assert crises[0].is_open  # 29 minutes below: not yet
    crises = step(3, start + 40 * MINUTE, crises)  # back at the limit: the wait starts over
    assert crises[0].below_since is None
    crises = step(0, start + 41 * MINUTE, crises)
    crises = step(0, start + 70 * MINUTE, crises)
    assert crises[0].is_open
    crises = step(0, start + 71 * MINUTE, crises)
    assert crises[0].closed_at == start + 71 * MINUTE
    kinds = [e.kind for e in crises[0].timeline]
    assert kinds == [
        CrisisEventKind.OPENED,
        CrisisEventKind.PEAK,
        CrisisEventKind.BELOW,
        CrisisEventKind.ABOVE,
        CrisisEventKind.BELOW,
        CrisisEventKind.CLOSED,
    ]


def test_small_peak_rises_are_stored_but_announced_only_in_steps() -> None:
    t = threshold(count=10)
    at = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
    cool = timedelta(hours=1)
    (opened,) = decide([Reading(t, 10, 10.0)], [], at, cool)
    (to_11,) = decide([Reading(t, 11, 10.0)], [opened.after], at + MINUTE, cool)
    assert [e.kind for e in to_11.events] == [CrisisEventKind.PEAK]  # 10 % up
    (to_12,) = decide([Reading(t, 12, 10.0)], [to_11.after], at + 2 * MINUTE, cool)
    assert to_12.events == () and to_12.after.peak_count == 12  # stored, no card edit
    assert to_12.after.version == to_11.after.version
    (to_13,) = decide([Reading(t, 13, 10.0)], [to_12.after], at + 3 * MINUTE, cool)
    assert [e.count for e in to_13.events] == [13]


def test_a_threshold_removed_from_the_playbook_closes_its_crisis() -> None:
    at = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
    crisis = Crisis("gone", ThresholdScope.ALL, None, at, 5, 5.0, 5, at, id=1)
    (change,) = decide([], [crisis], at + MINUTE, timedelta(hours=1))
    assert change.closed and change.after.closed_at == at + MINUTE


def test_window_counts_pick_the_scope() -> None:
    counts = WindowCounts(7, {"housing": 4}, {"heating": 3})
    assert counts.of(ThresholdScope.ALL, None) == 7
    assert counts.of(ThresholdScope.DEPARTMENT, "housing") == 4
    assert counts.of(ThresholdScope.DEPARTMENT, "health") == 0
    assert counts.of(ThresholdScope.CODE, "Heating") == 3


# --- the database and the service -----------------------------------------------------------


@dataclass
class Setup:
    config: Config
    database: Database
    clock: FrozenClock
    directory: Directory
    playbook: Playbook

    def service(
        self,
        thresholds: list[dict[str, Any]],
        cool_down: str = "30m",
        leadership: Sequence[Destination] = (),
    ) -> CrisisService:
        crisis = self.playbook.crisis.model_copy(
            update={
                "thresholds": tuple(CrisisThreshold.model_validate(t) for t in thresholds),
                "cool_down": timedelta(minutes=int(cool_down.rstrip("m"))),
            }
        )
        playbook = self.playbook.model_copy(update={"crisis": crisis})
        return CrisisService(
            self.database.uow,
            self.clock,
            self.directory,
            playbook,
            self.config.tz,
            "Администрация Энской области",
            leadership=leadership,
        )

    async def mention(
        self,
        at: datetime,
        department: str | None = "housing",
        codes: Sequence[str] = (),
        sentiment: str = "negative",
        drill: bool = False,
        count: int = 1,
    ) -> None:
        """Negative mentions as intake stores them: each opened a case of `department`."""
        async with self.database.uow() as uow:
            session = uow.session
            for _ in range(count):
                n = next(_ids)
                author = AuthorRow(display_name=f"Автор {n}")
                session.add(author)
                await session.flush()
                case_id = None
                if department is not None:
                    case = CaseRow(
                        department=department,
                        state="new",
                        priority="normal",
                        created_at=at,
                        source="vk",
                        drill=drill,
                        codes=list(codes),
                    )
                    session.add(case)
                    await session.flush()
                    case_id = case.id
                session.add(
                    MentionRow(
                        source="vk",
                        external_id=f"m{n}",
                        author_id=author.id,
                        identity_channel="vk",
                        identity_hash=f"id{n}",
                        text="Нет отопления",
                        received_at=at,
                        sentiment=sentiment,
                        sentiment_source="source",
                        codes=list(codes),
                        case_id=case_id,
                    )
                )
            await uow.commit()

    async def deliver(self) -> None:
        """As the worker would: otherwise a waiting post simply takes the newer version."""
        async with self.database.uow() as uow:
            for item in await self.outbox():
                if item.id is not None and item.status is OutboxStatus.PENDING:
                    await uow.outbox.mark_delivered(item.id, self.clock.now(), f"m{item.id}")
            await uow.commit()

    async def outbox(self) -> list[OutboxItem]:
        from sqlalchemy import select

        async with self.database.uow() as uow:
            ids = (await uow.session.scalars(select(OutboxRow.id).order_by(OutboxRow.id))).all()
            items = [await uow.outbox.get(i) for i in ids]
        return [i for i in items if i is not None]


@pytest.fixture
def setup(tmp_path: Path, database: Database, clock: FrozenClock) -> Setup:
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram", "matrix"}), clock)
    return Setup(config, database, clock, directory, load_playbook(config.playbooks.path))


async def test_counts_per_department_per_code_and_in_all(setup: Setup) -> None:
    now = setup.clock.now()
    await setup.mention(now - 30 * MINUTE, "housing", ["heating"], count=2)
    await setup.mention(now - 20 * MINUTE, "transport", ["roads", "Heating"])
    await setup.mention(now - 10 * MINUTE, None, ["heating"])  # no case: counts in all
    await setup.mention(now - 5 * MINUTE, "housing", sentiment="positive")
    await setup.mention(now - 5 * MINUTE, "housing", ["heating"], drill=True)
    await setup.mention(now - 61 * MINUTE, "housing", ["heating"])  # before the window
    await setup.mention(now, "housing", ["heating"])  # the window ends before now

    async with setup.database.uow() as uow:
        (counts, empty) = await uow.crises.window_counts(
            [CountWindow(now - 60 * MINUTE, now), CountWindow(now - 3 * MINUTE, now)]
        )
    assert counts.total == 4
    assert counts.by_department == {"housing": 2, "transport": 1}
    assert counts.by_code == {"heating": 4, "roads": 1}
    assert empty == WindowCounts(0, {}, {})

    service = setup.service(
        [
            {"id": "all", "scope": "all", "window": "1h", "count": 4},
            {"id": "housing", "scope": "department", "key": "housing", "window": "1h", "count": 2},
            {"id": "heat", "scope": "code", "key": "heating", "window": "1h", "count": 4},
            {"id": "roads", "scope": "code", "key": "roads", "window": "1h", "count": 2},
            {"id": "health", "scope": "department", "key": "transport", "window": "1h", "count": 2},
        ]
    )
    changes = await service.evaluate()
    assert sorted(c.after.threshold_id for c in changes if c.opened) == ["all", "heat", "housing"]
    assert await service.evaluate() == []  # nothing new: nothing written


async def test_absolute_threshold_opens_peaks_and_closes_after_the_cool_down(
    setup: Setup,
) -> None:
    service = setup.service(
        [
            {
                "id": "housing-spike",
                "scope": "department",
                "key": "housing",
                "window": "1h",
                "count": 3,
            }
        ]
    )
    t0 = setup.clock.now()
    await setup.mention(t0 - 10 * MINUTE, count=2)
    assert await service.evaluate() == []

    await setup.mention(t0 - MINUTE)
    (opened,) = await service.evaluate()
    crisis = opened.after
    assert opened.opened and crisis.id is not None
    assert (crisis.count_at_open, crisis.limit, crisis.opened_at) == (3, 3.0, t0)

    # The card goes to the coordination chat, on every transport it has (Telegram here).
    (card,) = await setup.outbox()
    assert (card.transport, card.chat, card.op) == ("telegram", "-100999", OutboxOp.POST)
    assert card.ref_key == crisis_ref(crisis.id)
    assert card.payload["template"] == "crisis.html.j2"
    await setup.deliver()

    setup.clock.advance(MINUTE)
    await setup.mention(t0, count=2)
    (peak,) = await service.evaluate()
    assert peak.after.peak_count == 5 and peak.after.peak_at == t0 + MINUTE
    edit = (await setup.outbox())[-1]
    assert edit.op is OutboxOp.EDIT and edit.ref_key == card.ref_key
    assert edit.payload["context"]["crisis"]["peak_count"] == 5
    await setup.deliver()

    # An hour on only the two at t0 are in the window: below the limit, the cool-down starts.
    setup.clock.set(t0 + 60 * MINUTE)
    (below,) = await service.evaluate()
    assert below.after.below_since == t0 + 60 * MINUTE and below.after.is_open
    await setup.deliver()

    # A new wave before the cool-down ends starts it over.
    setup.clock.set(t0 + 84 * MINUTE)
    await setup.mention(t0 + 83 * MINUTE, count=3)
    (above,) = await service.evaluate()
    assert above.after.below_since is None and above.after.is_open
    await setup.deliver()

    setup.clock.set(t0 + 144 * MINUTE)  # the wave has left the window
    await service.evaluate()
    await setup.deliver()
    setup.clock.set(t0 + 173 * MINUTE)
    assert await service.evaluate() == []  # 29 minutes below
    assert (await service.open_crises())[0].is_open
    setup.clock.set(t0 + 174 * MINUTE)
    (closed,) = await service.evaluate()
    assert closed.closed and closed.after.closed_at == t0 + 174 * MINUTE
    assert await service.open_crises() == []
    assert [e.kind.value for e in closed.after.timeline] == [
        "opened",
        "peak",
        "below",
        "above",
        "below",
        "closed",
    ]

    # One post, then one edit per change; all keys distinct, so re-runs post nothing twice.
    items = await setup.outbox()
    assert [i.op for i in items] == [OutboxOp.POST] + [OutboxOp.EDIT] * 5
    assert len({i.idempotency_key for i in items}) == len(items)
    texts = texts_for(setup.config.playbooks.templates, "ru")
    last = texts.render(items[-1].payload["template"], **items[-1].payload["context"])
    assert "Кризис закрыт: ЖКХ" in last and "пик 5" in last

    # The digest reads the whole story back.
    async with setup.database.uow() as uow:
        (stored,) = await uow.crises.between(t0 - MINUTE, t0 + 200 * MINUTE)
    assert stored.timeline == closed.after.timeline and stored.peak_count == 5


async def test_ratio_threshold_compares_with_the_same_window_on_previous_days(
    setup: Setup,
) -> None:
    service = setup.service(
        [
            {
                "id": "heating-surge",
                "scope": "code",
                "key": "heating",
                "window": "1h",
                "ratio": 2,
                "baseline_days": 3,
                "min_count": 3,
            },
            {
                "id": "water-surge",
                "scope": "code",
                "key": "water",
                "window": "1h",
                "ratio": 2,
                "baseline_days": 3,
                "min_count": 3,
            },
        ]
    )
    now = setup.clock.now()
    day = timedelta(days=1)
    # Baseline for heating: 4, 2 and 0 in the same hour of the last three days: 2 on average.
    await setup.mention(now - day - 30 * MINUTE, codes=["heating"], count=4)
    await setup.mention(now - 2 * day - 30 * MINUTE, codes=["heating"], count=2)
    await setup.mention(now - day - 2 * 60 * MINUTE, codes=["heating"], count=5)  # other hour
    await setup.mention(now - 10 * MINUTE, codes=["heating"], count=3)
    await setup.mention(now - 10 * MINUTE, codes=["water"], count=2)
    assert await service.evaluate() == []  # 3 < 2 × 2; water: 2 < min_count 3

    await setup.mention(now - 5 * MINUTE, codes=["heating"])
    await setup.mention(now - 5 * MINUTE, codes=["water"])
    changes = {c.after.threshold_id: c.after for c in await service.evaluate()}
    assert changes["heating-surge"].limit == 4.0 and changes["heating-surge"].count_at_open == 4
    assert changes["water-surge"].limit == 3.0  # no baseline at all: min_count


async def test_crisis_card_in_both_locales_and_leadership_is_told(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    base = make_config(tmp_path, database.url)
    boss = StaffMember(
        id="boss", name="Ирина Белова", telegram_id=1010, global_roles=[GlobalRole.LEADERSHIP]
    )
    config = base.model_copy(update={"staff": [*base.staff, boss]})
    directory = Directory(config, frozenset({"telegram", "matrix"}), clock)
    setup = Setup(config, database, clock, directory, load_playbook(config.playbooks.path))
    service = setup.service(
        [
            {
                "id": "housing-spike",
                "scope": "department",
                "key": "housing",
                "window": "1h",
                "count": 2,
            }
        ],
        # Leadership's chats (the digest recipients); the coordination chat has the card.
        leadership=[
            Destination("telegram", "-100777"),
            Destination("telegram", "-100999"),
            Destination("matrix", "!leaders:example.org"),
        ],
    )
    await setup.mention(clock.now() - MINUTE, count=2)
    await service.evaluate()
    card, *notices = await setup.outbox()
    assert card.chat == "-100999"  # the coordination chat
    assert [(n.transport, n.chat) for n in notices] == [
        ("telegram", "-100777"),
        ("matrix", "!leaders:example.org"),
    ]
    notice = notices[0]

    ru = texts_for(config.playbooks.templates, "ru")
    en = texts_for(config.playbooks.templates, "en")
    text_ru = ru.render(card.payload["template"], **card.payload["context"])
    text_en = en.render(card.payload["template"], **card.payload["context"])
    # Opened 13:30 UTC = 16:30 Moscow; checklist due times count from then.
    assert "КРИЗИС: ЖКХ" in text_ru and "Негативных упоминаний за 1 час: 2" in text_ru
    assert "Собрать кризисную группу" in text_ru and "(Дарья Морозова), до 20.11 16:45" in text_ru
    assert "Приостановите все запланированные публикации" in text_ru
    assert "Первое заявление" in text_ru
    assert "CRISIS: ЖКХ" in text_en and "Assemble the crisis team" in text_en
    assert "(Ирина Белова)" in text_en and "Pause all scheduled posts" in text_en
    assert "Holding statement" in text_en
    # Matrix renders the same view for the coordination room.
    matrix = MatrixRenderer(en).render(card.payload)
    assert "CRISIS: ЖКХ" in matrix.body and "<b>Action plan</b>" in (matrix.formatted_body or "")
    holding = card.payload["context"]["holding_statement"]
    assert holding["ru"] and holding["en"] and holding["ru"] in text_ru.replace("&#34;", '"')

    assert notice.payload["key"] == "crisis.opened"
    assert ru.t("crisis.opened", **notice.payload["params"]).startswith(
        "🚨 Кризис (ЖКХ): за 1 час негативных упоминаний — 2 при пороге 2. Карточка с планом "
        "действий — в чате «ЦУР»."
    )
    assert en.t("crisis.opened", **notice.payload["params"]).startswith("🚨 Crisis (ЖКХ): 2")

    # /status puts open crises on top, in either locale.
    cases = CaseService(database.uow, clock, directory, config.tz)
    duty = directory.by_staff_id("duty")
    assert duty is not None
    for texts, word in ((ru, "Кризис: ЖКХ"), (en, "Crisis: ЖКХ")):
        view = await Answers(cases, directory, texts, service).status(duty, None)
        page = texts.render(view["template"], **view["context"])
        assert page.startswith(f"🚨 <b>{word}</b>")


# --- a drill's crisis counts nowhere ---------------------------------------------------------


def test_a_drill_crisis_neither_blocks_nor_merges_with_nor_is_closed_by_a_threshold() -> None:
    t = threshold(id="housing-spike", count=3)
    at = datetime.fromisoformat("2026-11-20T10:00:00+00:00")
    cool = timedelta(minutes=30)
    # A drill crisis carrying the very threshold id a real one would: still no reading of it.
    drill = Crisis("housing-spike", ThresholdScope.ALL, None, at, 0, 0.0, 0, at, drill=True, id=1)
    (opened,) = decide([Reading(t, 3, 3.0)], [drill], at + MINUTE, cool)
    assert opened.opened and not opened.after.drill and opened.after.id is None
    # Below its limit, or with no threshold at all, nothing touches the drill's crisis.
    assert decide([Reading(t, 0, 3.0)], [drill], at + MINUTE, cool) == []
    assert decide([], [drill], at + MINUTE, cool) == []


async def test_a_drill_crisis_is_left_out_of_digests_status_and_thresholds(
    setup: Setup,
) -> None:
    from bot.model import DrillRun
    from bot.reports.periods import day_so_far

    service = setup.service(
        [
            {
                "id": "housing-spike",
                "scope": "department",
                "key": "housing",
                "window": "1h",
                "count": 2,
            }
        ]
    )
    now = setup.clock.now()
    async with setup.database.uow() as uow:
        run = await uow.drills.add(DrillRun(None, "outage", now, "duty", 60.0))
        await uow.commit()
    assert run.id is not None

    drill = await service.open_drill(run.id, "outage")
    assert drill.drill and drill.drill_run_id == run.id and drill.is_open
    assert await service.open_drill(run.id, "outage") == drill  # once per run
    (card,) = await setup.outbox()  # the card only: leadership hears nothing of a drill
    assert drill.id is not None and card.ref_key == crisis_ref(drill.id)
    ru = texts_for(setup.config.playbooks.templates, "ru")
    en = texts_for(setup.config.playbooks.templates, "en")
    text_ru = ru.render(card.payload["template"], **card.payload["context"])
    assert "🧪 <b>УЧЕНИЯ / DRILL</b>" in text_ru and "Собрать кризисную группу" in text_ru
    assert "Приостановите" not in text_ru  # nothing real is paused for a drill
    assert "🧪 <b>DRILL</b>" in en.render(card.payload["template"], **card.payload["context"])
    await setup.deliver()

    # Real mentions cross the threshold while the drill crisis is open: a real crisis of its
    # own opens, as if there were no drill.
    await setup.mention(now - MINUTE, count=2)
    (opened,) = await service.evaluate()
    assert opened.opened and opened.after.id not in (None, drill.id)
    assert [c.id for c in await service.open_crises()] == [opened.after.id]
    assert [line["id"] for line in await service.status_lines()] == [opened.after.id]

    period = day_so_far(now + MINUTE, setup.config.tz)  # up to a minute after it opened
    assert [c.id for c in await service.crises_between(period.start, period.end)] == [
        opened.after.id
    ]
    async with setup.database.uow() as uow:
        spans = await uow.reports.crises(period)
        assert [span.id for span in spans] == [opened.after.id]
        assert await uow.crises.of_drill(run.id) == drill

    closed = await service.close_drill(run.id)
    assert closed is not None and closed.closed_at == now
    assert await service.close_drill(run.id) is None  # closed already
    assert [c.id for c in await service.open_crises()] == [opened.after.id]  # the real one stays
    *_, edit = await setup.outbox()
    assert (edit.op, edit.ref_key) == (OutboxOp.EDIT, crisis_ref(drill.id))
    assert "Учебный кризис закрыт" in ru.render(edit.payload["template"], **edit.payload["context"])
