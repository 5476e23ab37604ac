"""The storm on the crisis card: the largest clusters of the crisis's scope with people and
trend, new clusters marked, redraws at most once a refresh. The clock is injected; mentions
are stored as rows at chosen times on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FrozenClock
from bot.crisis.service import CrisisService
from bot.crisis.storm import (
    STORM_REFRESH,
    TREND_WINDOW,
    storm_lines,
    trend_of,
)
from bot.crisis.thresholds import Crisis
from bot.messages.outbox import OutboxItem, OutboxOp
from bot.messages.texts import texts_for
from bot.messages.views import STORY_TEXT
from bot.model import ClusterCount, TrendWindows
from bot.settings.crisis_rules import ThresholdScope
from bot.settings.playbook import load_playbook
from bot.staff.directory import Directory
from handlers.telegram.render import TelegramRenderer, fits
from store.db import Database
from store.models import AuthorRow, CaseRow, MentionRow
from tests.bot.crisis.test_crisis import Setup
from tests.doubles.support import make_config

MINUTE = timedelta(minutes=1)
_ids = itertools.count(10_000)
T0 = datetime.fromisoformat("2026-11-20T10:00:00+00:00")


@pytest.fixture
def setup(tmp_path: Path, database: Database, clock: FrozenClock) -> Setup:
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram", "matrix"}), clock)
    return Setup(config, database, clock, directory, load_playbook(config.playbooks.path))


def cluster(case_id: int, mentions: int, recent: int = 0, previous: int = 0) -> ClusterCount:
    return ClusterCount(case_id, "housing", mentions, mentions, T0, T0, recent, previous)


def test_trend_compares_the_last_window_with_the_one_before() -> None:
    assert (trend_of(5, 2), trend_of(2, 5), trend_of(3, 3)) == ("up", "down", "flat")
    windows = TrendWindows.ending(T0, TREND_WINDOW)
    assert windows.recent_start == T0 - 15 * MINUTE and windows.previous_start == T0 - 30 * MINUTE


def test_the_largest_clusters_first_then_new_ones_beyond_them() -> None:
    clusters = [cluster(i, 10 + i) for i in range(1, 9)] + [cluster(50, 2, recent=2)]
    names = {"housing": "ЖКХ"}.__getitem__
    first = storm_lines(clusters, None, names)
    # The five largest; the first drawing marks nothing new.
    assert [c["case_id"] for c in first] == [8, 7, 6, 5, 4]
    assert not any(c["new"] for c in first) and first[0]["department"] == "ЖКХ"
    later = storm_lines(clusters, {8, 7, 6, 5, 4}, names)
    # Then the five largest, and up to three new ones not among them (largest first).
    assert [c["case_id"] for c in later] == [8, 7, 6, 5, 4, 3, 2, 1]
    assert [c["new"] for c in later] == [False] * 5 + [True] * 3
    assert later[0]["trend"] == "flat" and storm_lines([clusters[-1]], set(), names)[0]["new"]


async def _case(setup: Setup, department: str = "housing", drill: bool = False) -> int:
    async with setup.database.uow() as uow:
        row = CaseRow(
            department=department,
            state="new",
            priority="normal",
            created_at=setup.clock.now(),
            source="vk",
            drill=drill,
            codes=[],
        )
        uow.session.add(row)
        await uow.commit()
        return row.id


async def _mentions(
    setup: Setup, case_id: int, at: datetime, count: int, authors: int | None = None
) -> None:
    """`count` negative mentions of one case at `at`, from `authors` people (default: each
    its own)."""
    async with setup.database.uow() as uow:
        people = []
        for _ in range(authors or count):
            author = AuthorRow(display_name=f"Автор {next(_ids)}")
            uow.session.add(author)
            people.append(author)
        await uow.session.flush()
        for index in range(count):
            n = next(_ids)
            uow.session.add(
                MentionRow(
                    source="vk",
                    external_id=f"s{n}",
                    author_id=people[index % len(people)].id,
                    identity_channel="vk",
                    identity_hash=f"sid{n}",
                    text="Автобус 41 опять не пришёл",
                    received_at=at,
                    sentiment="negative",
                    sentiment_source="source",
                    codes=[],
                    case_id=case_id,
                )
            )
        await uow.commit()


async def test_clusters_are_counted_per_case_in_the_scope_with_people_and_trend(
    setup: Setup,
) -> None:
    now = setup.clock.now()
    bus = await _case(setup)
    await _mentions(setup, bus, now - 20 * MINUTE, 4, authors=3)  # the window before
    await _mentions(setup, bus, now - 5 * MINUTE, 9)  # the last 15 minutes
    lone = await _case(setup)
    await _mentions(setup, lone, now - 5 * MINUTE, 1)  # one mention: no cluster
    other = await _case(setup, department="transport")
    await _mentions(setup, other, now - 5 * MINUTE, 3)
    drill = await _case(setup, drill=True)
    await _mentions(setup, drill, now - 5 * MINUTE, 30)
    trend = TrendWindows.ending(now, TREND_WINDOW)
    async with setup.database.uow() as uow:
        housing = await uow.crises.clusters(
            now - 60 * MINUTE, trend, scope=ThresholdScope.DEPARTMENT, key="housing"
        )
        everything = await uow.crises.clusters(now - 60 * MINUTE, trend)
    assert [(c.case_id, c.mentions, c.people, c.recent, c.previous) for c in housing] == [
        (bus, 13, 12, 9, 4)
    ]
    assert [c.case_id for c in everything] == [bus, other]  # drills count nowhere


def _storm_of(item: OutboxItem) -> list[dict[str, object]]:
    storm: list[dict[str, object]] = item.payload["context"]["storm"]
    return storm


async def test_the_crisis_card_shows_the_storm_and_is_redrawn_once_a_refresh(
    setup: Setup,
) -> None:
    service: CrisisService = setup.service(
        [{"id": "housing", "scope": "department", "key": "housing", "window": "1h", "count": 10}]
    )
    now = setup.clock.now()
    bus = await _case(setup)
    await _mentions(setup, bus, now - 20 * MINUTE, 10)
    await _mentions(setup, bus, now - 2 * MINUTE, 20, authors=15)
    await service.evaluate()
    (card,) = await setup.outbox()
    assert card.op is OutboxOp.POST
    (line,) = _storm_of(card)
    assert line == {
        "case_id": bus,
        "department": "ЖКХ",
        "story": "Автобус 41 опять не пришёл",  # the first mention's text
        "mentions": 30,
        "people": 25,
        "recent": 20,
        "previous": 10,
        "trend": "up",
        "new": False,  # the first drawing: everything on it is the storm itself
    }
    ru = texts_for(setup.config.playbooks.templates, "ru")
    en = texts_for(setup.config.playbooks.templates, "en")
    text_ru = ru.render(card.payload["template"], **card.payload["context"])
    text_en = en.render(card.payload["template"], **card.payload["context"])
    story = f"<code>/case {bus}</code> (ЖКХ) «Автобус 41 опять не пришёл»"
    assert f"{story} — 30 упоминаний, 25 чел. ↑ 20/10" in text_ru
    assert f"{story} — 30 mentions, 25 people ↑ 20/10" in text_en
    assert text_ru.index("Шторм") < text_ru.index("План действий")
    await setup.deliver()

    # A new story within the refresh: counted, but the card is not edited yet.
    school = await _case(setup)
    # (30 to 32 is no step of the peak either: no edit for the timeline.)
    await _mentions(setup, school, setup.clock.now() - timedelta(seconds=1), 2)
    await service.evaluate()
    assert len(await setup.outbox()) == 1
    setup.clock.advance(STORM_REFRESH)
    await service.evaluate()
    edit = (await setup.outbox())[-1]
    assert edit.op is OutboxOp.EDIT
    bus_line, school_line = _storm_of(edit)
    assert (bus_line["case_id"], bus_line["new"]) == (bus, False)
    assert (school_line["case_id"], school_line["mentions"], school_line["new"]) == (
        school,
        2,
        True,
    )
    text = ru.render(edit.payload["template"], **edit.payload["context"])
    assert f"🆕 <code>/case {school}</code>" in text
    await setup.deliver()

    # Nothing moved: no edit. A refresh later the new mark is gone.
    setup.clock.advance(STORM_REFRESH)
    count = len(await setup.outbox())
    await service.evaluate()
    after = await setup.outbox()
    assert len(after) == count + 1 and not any(c["new"] for c in _storm_of(after[-1]))
    setup.clock.advance(STORM_REFRESH)
    await service.evaluate()
    assert len(await setup.outbox()) == count + 1


def test_the_longest_storm_leaves_the_checklist_on_one_telegram_message(setup: Setup) -> None:
    """Eight lines (five largest, three new), the longest names and stories: nothing cut."""
    clusters = [cluster(10**9 + i, 99_999 - i, 9_999, 9_999) for i in range(20)]
    lines = storm_lines(clusters, set(range(10**9, 10**9 + 5)), lambda _: "Ж" * 256)
    assert len(lines) == 8 and all(len(line["department"]) <= 40 for line in lines)
    for line in lines:
        line["story"] = "Ж" * (STORY_TEXT - 1) + "…"
    service = setup.service([{"id": "all", "scope": "all", "window": "1h", "count": 10}])
    now = setup.clock.now()
    crisis = Crisis("all", ThresholdScope.ALL, None, now, 99_999, 10.0, 99_999, now, id=1)
    card = service.card(crisis, (), lines)
    assert card["view"] == "page"
    for locale in ("ru", "en"):
        texts = texts_for(setup.config.playbooks.templates, locale)
        page = texts.render(card["template"], **card["context"])
        assert fits(page), locale  # so the renderer cuts nothing: the checklist stays
        shown = TelegramRenderer(texts).render(card).text
        last_step = service.config.checklist[-1].step.get(locale)
        assert shown.count("ЖЖЖ") >= 16 and last_step[:20] in shown
