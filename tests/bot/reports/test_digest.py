"""The evening digest and the weekly report: every figure of a seeded day and week, exactly,
on SQLite and PostgreSQL; the views and both locales; scheduling keys and catch-up."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest

from bot.clock import FrozenClock
from bot.messages.outbox import Destination, OutboxOp
from bot.messages.texts import texts_for
from bot.messages.views import STORY_TEXT
from bot.model import (
    Author,
    AuthorLabel,
    Case,
    CaseState,
    ClusterCount,
    Event,
    Identity,
    IgnoreReason,
    Mention,
    Outcome,
    Priority,
    Sentiment,
    SentimentSource,
)
from bot.ports import UnitOfWorkFactory
from bot.reports.digest import EVENING, WEEKLY, DigestService
from bot.reports.evening import DigestFigures, evening_context
from bot.reports.figures import (
    AuthorSeen,
    CaseCounts,
    CodeCount,
    Correction,
    CrisisSpan,
    Durations,
    HourCount,
    OpenCase,
    Period,
    ResponseTimes,
    SlaCounts,
)
from bot.reports.periods import day_so_far, weeks
from bot.reports.weekly import weekly_context
from bot.settings.playbook import DEFAULT_PLAYBOOK_DIR, load_playbook
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from store.db import Database
from store.models import CrisisRow
from tests.doubles.support import ROOT, make_config

MSK = ZoneInfo("Europe/Moscow")
TODAY = datetime(2026, 11, 20, tzinfo=MSK)
NOW = datetime(2026, 11, 20, 19, 0, tzinfo=MSK)  # the evening digest's fire time
TEMPLATES = ROOT / "playbooks" / "templates"


def uow_of(database: Database) -> UnitOfWorkFactory:
    # SqlUnitOfWork is a UnitOfWork; mypy reads the Protocol's attributes as invariant.
    return cast(UnitOfWorkFactory, database.uow)


def at(hour: int, minute: int = 0, days: int = 0) -> datetime:
    """A local time today (or `days` later/earlier), as UTC."""
    return (TODAY + timedelta(days=days, hours=hour, minutes=minute)).astimezone(UTC)


@dataclass
class Seeded:
    ids: dict[str, int]  # case name -> id
    authors: dict[str, int]


class Seeder:
    """Writes cases, authors, mentions, events and crises through the store, as services do."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.ids: dict[str, int] = {}
        self.authors: dict[str, int] = {}
        self._mentions = 0

    async def author(
        self, name: str, labels: frozenset[AuthorLabel] = frozenset(), last_seen: datetime = NOW
    ) -> int:
        async with self.database.uow() as uow:
            author = await uow.authors.add(
                Author(
                    None,
                    name,
                    (Identity("vk", f"vk-{name}", name),),
                    labels=labels,
                    first_seen_at=last_seen - timedelta(days=30),
                    last_seen_at=last_seen,
                )
            )
            await uow.commit()
        assert author.id is not None
        self.authors[name] = author.id
        return author.id

    async def case(self, name: str, **fields: Any) -> int:
        fields.setdefault("priority", Priority.NORMAL)
        fields.setdefault("source", "vk")
        async with self.database.uow() as uow:
            case = await uow.cases.add(Case(id=None, **fields))
            await uow.commit()
        assert case.id is not None
        self.ids[name] = case.id
        return case.id

    async def mention(
        self,
        received_at: datetime,
        author: int,
        case: str | None = None,
        sentiment: Sentiment = Sentiment.NEGATIVE,
        source: SentimentSource = SentimentSource.SOURCE,
    ) -> None:
        self._mentions += 1
        async with self.database.uow() as uow:
            await uow.mentions.add(
                Mention(
                    source="vk",
                    external_id=f"m{self._mentions}",
                    text="Нет отопления",
                    author=Identity("vk", f"a{author}"),
                    received_at=received_at,
                    sentiment=sentiment,
                    sentiment_source=source,
                    author_id=author,
                    case_id=self.ids[case] if case else None,
                )
            )
            await uow.commit()

    async def event(self, case: str, kind: str, at_: datetime, actor: str, **payload: Any) -> None:
        async with self.database.uow() as uow:
            await uow.events.append(
                [Event(self.ids[case], at_, actor, kind, None, None, dict(payload))]
            )
            await uow.commit()

    async def crisis(self, **fields: Any) -> None:
        async with self.database.uow() as uow:
            fields.setdefault("threshold_id", "department_surge")
            fields.setdefault("scope", "department")
            fields.setdefault("key", "housing")
            fields.setdefault("count_at_open", 5)
            fields.setdefault("limit", 5.0)
            fields.setdefault("below_since", None)
            fields.setdefault("drill", False)
            fields.setdefault("timeline", [])
            uow.session.add(CrisisRow(**fields))
            await uow.commit()


async def seed_day(database: Database) -> Seeder:
    """One Friday in two departments (see the comments for what each case stands for)."""
    s = Seeder(database)
    critic = await s.author("Критик", frozenset({AuthorLabel.SYSTEMATIC_CRITIC}))
    leader = await s.author("Блогер", frozenset({AuthorLabel.OPINION_LEADER}))
    quiet_critic = await s.author(
        "Вчерашний", frozenset({AuthorLabel.SYSTEMATIC_CRITIC}), last_seen=at(10, days=-1)
    )
    plain = await s.author("Житель")

    # Published on time: new, answered; both deadlines met.
    await s.case(
        "c1", department="housing", state=CaseState.PUBLISHED, created_at=at(9),
        first_touch_due_at=at(10), first_touched_at=at(9, 20), answer_due_at=at(13),
        approved_at=at(11), published_at=at(11, 30), codes=("heating", "water"),
    )  # fmt: skip
    # Touched and approved late, waiting to be published: both deadlines missed.
    await s.case(
        "c2", department="housing", state=CaseState.APPROVED, created_at=at(10),
        first_touch_due_at=at(11), first_touched_at=at(11, 30), answer_due_at=at(14),
        approved_at=at(15), resolution_due_at=at(20), assignee="spec", codes=("heating",),
    )  # fmt: skip
    # Nobody took it: overdue, both deadlines missed.
    await s.case(
        "c3", department="housing", state=CaseState.NEW, created_at=at(12),
        first_touch_due_at=at(13), answer_due_at=at(16), codes=("heating",),
    )  # fmt: skip
    # "Not negative", from Telegram: counts as a correction; the deadlines were kept.
    await s.case(
        "c4", department="housing", source="telegram", state=CaseState.IGNORED,
        created_at=at(13), first_touch_due_at=at(14), first_touched_at=at(13, 10),
        answer_due_at=at(17), closed_at=at(13, 10), ignore_reason=IgnoreReason.NOT_NEGATIVE,
        codes=("water",),
    )  # fmt: skip
    # Opened yesterday, approved and closed as resolved today: answered today.
    await s.case(
        "c5", department="housing", state=CaseState.CLOSED, created_at=at(15, days=-1),
        first_touch_due_at=at(16, days=-1), first_touched_at=at(15, 30, days=-1),
        answer_due_at=at(10), approved_at=at(9, 30), closed_at=at(12),
        outcome=Outcome.RESOLVED,
    )  # fmt: skip
    # A drill: handled like any case, counted nowhere.
    await s.case(
        "c6", department="housing", state=CaseState.TAKEN, created_at=at(11), drill=True,
        first_touch_due_at=at(12), first_touched_at=at(11, 5), answer_due_at=at(15),
        codes=("heating",),
    )  # fmt: skip
    # Taken, no answer by its deadline: overdue.
    await s.case(
        "t1", department="transport", state=CaseState.TAKEN, created_at=at(14),
        first_touch_due_at=at(15), first_touched_at=at(14, 30), answer_due_at=at(18),
        codes=("roads",),
    )  # fmt: skip
    # Two days old and untouched: the oldest open case.
    await s.case(
        "t2", department="transport", state=CaseState.NEW, created_at=at(10, days=-2),
        first_touch_due_at=at(11, days=-2), answer_due_at=at(14, days=-2),
    )  # fmt: skip
    # Just arrived: its deadline is still ahead, so it is not in the SLA figures.
    await s.case(
        "t3", department="transport", state=CaseState.NEW, created_at=at(18, 30),
        first_touch_due_at=at(19, 30), answer_due_at=at(22), codes=("roads", "bus"),
    )  # fmt: skip
    # Closed with no action, by e-mail: not "answered".
    await s.case(
        "t4", department="transport", source="email", state=CaseState.CLOSED,
        created_at=at(16), first_touch_due_at=at(17), first_touched_at=at(16, 5),
        answer_due_at=at(20), closed_at=at(16, 30), outcome=Outcome.NO_ACTION,
    )  # fmt: skip

    await s.mention(at(9), critic, "c1")
    await s.mention(at(9, 40), critic, "c1")
    await s.mention(at(10), plain, "c2")
    await s.mention(at(12), plain, "c3")
    # Corrected by staff: no longer negative.
    await s.mention(at(13), plain, "c4", Sentiment.NEUTRAL, SentimentSource.STAFF)
    await s.mention(at(11), plain, "c6")  # drill
    await s.mention(at(14), leader, "t1")
    await s.mention(at(18, 30), plain, "t3")
    await s.mention(at(16), plain, "t4")
    await s.mention(at(12, 45), plain)  # negative, no case
    await s.mention(at(12, 30), plain, sentiment=Sentiment.NEUTRAL)
    await s.mention(at(10, days=-1), quiet_critic, "t2")
    await s.mention(at(15, days=-1), plain, "c5")
    await s.mention(at(23, 59, days=-1), plain)  # yesterday, just before midnight

    await s.event("c4", "ignore", at(13, 10), "spec", reason="not_negative")

    await s.crisis(
        opened_at=at(9, 30), peak_count=8, peak_at=at(10, 15), closed_at=at(12),
        timeline=[
            {"at": at(9, 30).isoformat(), "event": "opened", "count": 5},
            {"at": at(10, 15).isoformat(), "event": "peak", "count": 8},
            {"at": at(11).isoformat(), "event": "below", "count": 3},
            {"at": at(12).isoformat(), "event": "closed", "count": 1},
        ],
    )  # fmt: skip
    await s.crisis(opened_at=at(9, days=-1), peak_count=6, peak_at=at(9, 30, days=-1),
                   closed_at=at(11, days=-1))  # fmt: skip
    await s.crisis(opened_at=at(11), peak_count=9, peak_at=at(11), drill=True)
    return s


def minutes(*values: int) -> float:
    return float(sum(values) * 60)


async def test_every_figure_of_a_day(database: Database) -> None:
    s = await seed_day(database)
    period = day_so_far(NOW, MSK)
    assert period == Period(at(0), NOW)
    async with database.uow() as uow:
        r = uow.reports
        counts = await r.case_counts(period, NOW)
        sla = await r.sla(period, NOW)
        times = await r.response_times(period)
        hourly = await r.negative_by_hour(period)
        negative = await r.negative_mentions(period)
        codes = await r.top_codes(period, 10)
        crises = await r.crises(period)
        people = await r.labelled_authors(
            period, [AuthorLabel.SYSTEMATIC_CRITIC, AuthorLabel.OPINION_LEADER], 10
        )
        oldest = await r.oldest_open(10)
        corrections = await r.not_negative(period, 10)

    assert counts == [
        CaseCounts("housing", "telegram", new=1, not_negative=1),
        CaseCounts("housing", "vk", new=3, answered=2, open=3, overdue=1),
        CaseCounts("transport", "email", new=1),
        CaseCounts("transport", "vk", new=2, open=3, overdue=2),
    ]
    assert sla == [
        SlaCounts("housing", first_touch_due=4, first_touch_met=2, answer_due=5, answer_met=3),
        SlaCounts("transport", first_touch_due=2, first_touch_met=2, answer_due=1, answer_met=0),
    ]
    assert times == [
        ResponseTimes(
            "housing",
            Durations(3, minutes(20), minutes(90)),
            Durations(3, minutes(300), minutes(1110)),
        ),
        ResponseTimes("transport", Durations(2, minutes(5), minutes(30)), Durations()),
        ResponseTimes(
            None, Durations(5, minutes(20), minutes(90)), Durations(3, minutes(300), minutes(1110))
        ),
    ]
    assert hourly == [
        HourCount(None, 12, 1),
        HourCount("housing", 9, 2),
        HourCount("housing", 10, 1),
        HourCount("housing", 12, 1),
        HourCount("transport", 14, 1),
        HourCount("transport", 16, 1),
        HourCount("transport", 18, 1),
    ]
    assert negative == 8
    assert codes == [
        CodeCount("heating", 3),
        CodeCount("roads", 2),
        CodeCount("water", 2),
        CodeCount("bus", 1),
    ]
    assert [(c.opened_at, c.peak_count, c.closed_at) for c in crises] == [(at(9, 30), 8, at(12))]
    assert [step["event"] for step in crises[0].timeline] == ["opened", "peak", "below", "closed"]
    assert people == [
        AuthorSeen(s.authors["Критик"], "Критик", frozenset({AuthorLabel.SYSTEMATIC_CRITIC}), 2, 2),
        AuthorSeen(s.authors["Блогер"], "Блогер", frozenset({AuthorLabel.OPINION_LEADER}), 1, 1),
    ]
    assert [c.id for c in oldest] == [s.ids[n] for n in ("t2", "c1", "c2", "c3", "t1", "t3")]
    assert oldest[0].created_at == at(10, days=-2)
    assert [(c.case_id, c.actor, c.at) for c in corrections] == [(s.ids["c4"], "spec", at(13, 10))]


async def test_percentiles_are_nearest_rank_on_both_backends(database: Database) -> None:
    """Ten cases touched after 1..10 minutes: median is the 5th value, p90 the 9th."""
    s = Seeder(database)
    for n in range(1, 11):
        await s.case(
            f"x{n}", department="housing", state=CaseState.TAKEN, created_at=at(9),
            first_touch_due_at=at(10), first_touched_at=at(9, n),
        )  # fmt: skip
    async with database.uow() as uow:
        times = await uow.reports.response_times(day_so_far(NOW, MSK))
    assert times[-1].first_touch == Durations(10, minutes(5), minutes(9))


async def test_a_day_across_a_dst_change_counts_hours_from_local_midnight(
    database: Database,
) -> None:
    """Berlin, 29 March 2026: 23 hours. A mention at 12:00 local is in hour bucket 11."""
    berlin = ZoneInfo("Europe/Berlin")
    s = Seeder(database)
    author = await s.author("Житель")
    await s.case("d", department="housing", state=CaseState.NEW, created_at=at(9))
    noon = datetime(2026, 3, 29, 12, 0, tzinfo=berlin)
    await s.mention(noon, author, "d")
    async with database.uow() as uow:
        hourly = await uow.reports.negative_by_hour(day_so_far(noon + timedelta(hours=1), berlin))
    assert hourly == [HourCount("housing", 11, 1)]


async def seed_weeks(database: Database) -> Seeder:
    """Two weeks before Monday 23 November 2026: one case a day this week in housing, every
    other day last week; a recurring author with three negative mentions this week."""
    s = Seeder(database)
    loud = await s.author("Постоянный", frozenset({AuthorLabel.SYSTEMATIC_CRITIC}))
    once = await s.author("Разовый")
    monday = datetime(2026, 11, 23, tzinfo=MSK)
    for day in range(14):
        start = monday - timedelta(days=14 - day)
        this_week = day >= 7
        if not this_week and day % 2:
            continue
        name = f"w{day}"
        late = day in (8, 9)  # two missed first replies this week
        await s.case(
            name, department="housing" if this_week or day < 4 else "transport",
            state=CaseState.PUBLISHED, created_at=start + timedelta(hours=10),
            first_touch_due_at=start + timedelta(hours=11),
            first_touched_at=start + timedelta(hours=12 if late else 10, minutes=30),
            answer_due_at=start + timedelta(hours=14),
            approved_at=start + timedelta(hours=13),
            published_at=start + timedelta(hours=13, minutes=30),
            codes=("heating",) if this_week else ("roads",),
        )  # fmt: skip
        author = loud if this_week and day % 3 == 0 else once
        await s.mention(start + timedelta(hours=10), author, name)
    return s


async def test_weekly_figures_and_trends(database: Database, tmp_path: Path) -> None:
    s = await seed_weeks(database)
    monday_morning = datetime(2026, 11, 23, 10, 0, tzinfo=MSK)
    this, previous = weeks(monday_morning, MSK)
    assert this.start == datetime(2026, 11, 16, tzinfo=MSK)
    assert this.end == previous.end + timedelta(days=7) == datetime(2026, 11, 23, tzinfo=MSK)
    config = make_config(tmp_path, "sqlite+aiosqlite:///unused.db")
    directory = Directory(config, frozenset({"telegram"}))
    service = DigestService(uow_of(database), FrozenClock(monday_morning), directory, MSK)
    figures = await service.weekly()
    assert figures.this.total("new") == 7 and figures.previous.total("new") == 4
    assert figures.this.negative == 7 and figures.previous.negative == 4
    # This week is days 7..13: the loud author wrote on days 9 and 12, the other on five.
    assert [(a.display_name, a.negative, a.mentions) for a in figures.authors] == [
        ("Разовый", 5, 5),
        ("Постоянный", 2, 2),
    ]
    assert figures.authors[1].id == s.authors["Постоянный"]
    context = weekly_context(figures, directory, MSK)
    assert context["from"] == "16.11" and context["to"] == "22.11"
    trends = {t["name"]: t for t in context["trends"]}
    assert trends["new"] == {"name": "new", "this": "7", "previous": "4", "delta": 3}
    # This week 5 of 7 first replies and 7 of 7 answers on time: 12/14 = 86 %; last week all.
    assert trends["sla"] == {"name": "sla", "this": "86", "previous": "100", "delta": -14}
    assert trends["answer_median"]["this"] == "3:00"
    ranking = context["ranking"]
    assert [(r["place"], r["name"], r["sla"]) for r in ranking] == [(1, "ЖКХ", 86)]
    assert context["codes"] == [{"code": "heating", "cases": 7, "previous": 0}]
    # Leadership reads codes by their titles (routing.yaml code_titles), not their ids.
    titled = weekly_context(figures, directory, MSK, code_title={"heating": "Отопление"}.get)
    assert titled["codes"] == [{"code": "Отопление", "cases": 7, "previous": 0}]
    for locale in ("ru", "en"):
        text = texts_for(TEMPLATES, locale).render("weekly.html.j2", **context)
        assert "16.11–22.11" in text and "ЖКХ" in text and "86%" in text


def actor(*roles: str) -> Actor:
    from bot.model import GlobalRole

    return Actor("x", "X", global_roles=frozenset(GlobalRole(r) for r in roles))


async def test_evening_view_in_both_languages_and_rights(
    database: Database, tmp_path: Path
) -> None:
    await seed_day(database)
    config = make_config(tmp_path, "sqlite+aiosqlite:///unused.db")
    directory = Directory(config, frozenset({"telegram"}))
    service = DigestService(uow_of(database), FrozenClock(NOW), directory, MSK)
    figures = await service.evening()
    context = evening_context(figures, directory, MSK)
    assert context["totals"] == {
        "new": 7, "answered": 2, "overdue": 3, "open": 6, "not_negative": 1, "negative": 8,
    }  # fmt: skip
    assert context["sla"] == {
        "percent": 58, "first_touch_met": 4, "first_touch_due": 6, "answer_met": 3,
        "answer_due": 6, "reaction_met": 0, "reaction_due": 0,
    }  # fmt: skip
    assert context["times"] == {
        "first_touch_count": 5, "first_touch_median": "0:20", "first_touch_p90": "1:30",
        "answer_count": 3, "answer_median": "5:00", "answer_p90": "18:30",
    }  # fmt: skip
    assert [(d["name"], d["overdue"], d["sla"]) for d in context["departments"]] == [
        ("Транспорт", 2, 67),
        ("ЖКХ", 1, 56),
    ]
    assert context["oldest"][0]["age"] == {"days": 2, "hours": 9}
    assert context["corrections"][0]["actor"] == "Анна Иванова"
    assert context["crises"][0]["subject"] == "ЖКХ"
    assert [c["code"] for c in context["codes"]] == ["heating", "roads", "water", "bus"]
    titles = {"heating": "Отопление", "roads": "Дороги"}
    titled = evening_context(figures, directory, MSK, code_title=lambda c: titles.get(c, c))
    assert [c["code"] for c in titled["codes"]] == ["Отопление", "Дороги", "water", "bus"]
    # A code set from the chat (codes.yaml) is named with its dimension.
    coded = replace(figures, codes=[CodeCount("district:south", 2), *figures.codes])
    playbook = load_playbook(DEFAULT_PLAYBOOK_DIR)
    named = evening_context(
        coded, directory, MSK, code_title=lambda c: playbook.code_title(c, "ru")
    )
    assert [c["code"] for c in named["codes"]][:2] == ["Район: Южный", "Отопление"]

    ru = texts_for(TEMPLATES, "ru").render("digest.html.j2", **context)
    en = texts_for(TEMPLATES, "en").render("digest.html.j2", **context)
    assert ru.startswith("<b>📊 Сводка за 20.11.2026</b>")
    assert "Новых <b>7</b> · отвечено <b>2</b> · просрочено <b>3</b> · открыто <b>6</b>" in ru
    assert "SLA <b>58%</b>: первый ответ 4/6, ответ 3/6" in ru
    assert "Первый ответ: медиана 0:20, p90 1:30" in ru
    assert "Реакция" not in ru and "Reaction" not in en  # no policy sets a reaction deadline
    assert "🔥 Транспорт: 3/0/2/3 · SLA 67%" in ru
    assert "09:30 начало (5) · 10:15 пик (8)" in ru
    assert "<b>Систематические критики</b>: Критик (2/2)" in ru
    assert "<code>/case " in ru and "Анна Иванова, 13:10" in ru
    assert en.startswith("<b>📊 Digest for 20.11.2026</b>")
    assert "New <b>7</b> · answered <b>2</b> · overdue <b>3</b> · open <b>6</b>" in en
    assert "09:30 opened (5) · 10:15 peak (8)" in en
    assert len(ru) < 4096 and len(en) < 4096

    chart = service.chart_data(figures)
    assert chart.hourly["ЖКХ"][9] == 2 and sum(chart.hourly["ЖКХ"]) == 4
    assert sum(chart.hourly["Транспорт"]) == 3 and len(chart.hourly["Транспорт"]) == 24
    assert chart.compliance == {"ЖКХ": 5 / 9, "Транспорт": 2 / 3, "ЦУР": None}

    assert (await service.reader_view(actor("leadership")))["template"] == "digest.html.j2"
    assert (await service.reader_view(actor("duty")))["template"] == "digest.html.j2"
    assert (await service.reader_view(actor("admin")))["key"] == "ui.no_rights"
    assert (await service.reader_view(Actor.stranger("tg:1")))["key"] == "ui.not_staff"


async def test_sending_is_idempotent_per_fire_time(database: Database, tmp_path: Path) -> None:
    config = make_config(tmp_path, "sqlite+aiosqlite:///unused.db")
    directory = Directory(config, frozenset({"telegram", "matrix"}))
    recipients = [Destination("telegram", "-100500"), Destination("matrix", "!lead:example.org")]
    clock = FrozenClock(NOW)
    service = DigestService(uow_of(database), clock, directory, MSK, recipients)
    view = service.evening_view(await service.evening())
    assert await service.send(EVENING, view, NOW) == 2
    clock.advance(timedelta(minutes=3))  # a restart a few minutes later
    assert await service.send(EVENING, view, NOW) == 0
    assert await service.send(WEEKLY, view, NOW) == 2  # another kind, another key
    async with database.uow() as uow:
        heads = await uow.outbox.due_heads(clock.now(), 10)
    assert {(i.transport, i.op, i.idempotency_key) for i in heads} == {
        ("telegram", OutboxOp.POST, "telegram:-100500:digest:evening:2026-11-20T19:00:text"),
        ("matrix", OutboxOp.POST, "matrix:!lead:example.org:digest:evening:2026-11-20T19:00:text"),
    }


@pytest.mark.parametrize("hour, expected", [(18, None), (19, "19:00"), (23, "19:00")])
def test_last_fire_is_today_only(hour: int, expected: str | None, tmp_path: Path) -> None:
    from handlers.jobs.digest import DigestJobs

    config = make_config(tmp_path, "sqlite+aiosqlite:///unused.db")
    directory = Directory(config, frozenset())
    service = DigestService(lambda: None, FrozenClock(NOW), directory, MSK)  # type: ignore[arg-type, return-value]
    jobs = DigestJobs(service, texts_for(TEMPLATES, "ru"), config.digest)
    fire = jobs.last_fire(EVENING, TODAY + timedelta(hours=hour, minutes=30))
    assert (fire.astimezone(MSK).strftime("%H:%M") if fire else None) == expected
    # The weekly report (Mondays 10:00) did not fire on this Friday.
    assert jobs.last_fire(WEEKLY, NOW) is None


async def test_both_digests_are_scheduled_in_the_digest_time_zone(tmp_path: Path) -> None:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from handlers.jobs.digest import DigestJobs

    config = make_config(tmp_path, "sqlite+aiosqlite:///unused.db")
    samara = ZoneInfo("Europe/Samara")
    service = DigestService(lambda: None, FrozenClock(NOW), Directory(config, frozenset()), samara)  # type: ignore[arg-type, return-value]
    scheduler = AsyncIOScheduler(timezone=MSK)
    DigestJobs(service, texts_for(TEMPLATES, "ru"), config.digest).schedule(scheduler)
    scheduler.start(paused=True)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"digest:evening", "digest:weekly"}
        evening = jobs["digest:evening"]
        assert evening.trigger.timezone == samara and evening.misfire_grace_time == 3600
        fire = evening.trigger.get_next_fire_time(None, NOW - timedelta(hours=2))  # 17:00 MSK
        assert fire == datetime(2026, 11, 20, 19, 0, tzinfo=samara)  # 18:00 in Moscow
    finally:
        scheduler.shutdown(wait=False)


def test_the_longest_digest_still_fits_one_telegram_message(tmp_path: Path) -> None:
    """Every list at its longest, every name at the longest the config allows."""
    config = make_config(tmp_path, "sqlite+aiosqlite:///unused.db")
    directory = Directory(config, frozenset({"telegram"}))
    long = "Ж" * 256
    depts = [f"d{i}" for i in range(30)]
    timeline = tuple(
        {"at": at(9, i).isoformat(), "event": "peak", "count": 100 + i} for i in range(20)
    )
    figures = DigestFigures(
        period=day_so_far(NOW, MSK),
        now=NOW,
        counts=[
            CaseCounts(d, f"source-{i}-{'x' * 50}", 999, 999, 999, 9999, 9999)
            for i, d in enumerate(depts)
        ],
        sla=[SlaCounts(d, 999, 500, 999, 500) for d in depts],
        times=[ResponseTimes(None, Durations(9, 99999.0, 99999.0), Durations(9, 1.0, 2.0))],
        hourly=[],
        negative=99999,
        codes=[CodeCount("c" * 64, 999) for _ in range(20)],
        crises=[
            CrisisSpan(i, "t", "code", "k" * 64, at(9), 5, 5.0, 99, at(10), None, None, timeline)
            for i in range(20)
        ],
        people=[AuthorSeen(i, long, frozenset(AuthorLabel), 999, 999) for i in range(20)],
        oldest=[
            OpenCase(10**9 + i, "d1", "vk", "new", "high", at(0, days=-400), ()) for i in range(20)
        ],
        corrections=[Correction(10**9 + i, "d1", "vk", at(12), "spec") for i in range(20)],
        clusters=[
            ClusterCount(10**9 + i, "d1", 99999, 99999, at(0), at(23), 0, 0) for i in range(20)
        ],
        stories={10**9 + i: "Ж" * (STORY_TEXT - 1) + "…" for i in range(20)},
    )
    context = evening_context(figures, directory, MSK)
    for locale in ("ru", "en"):
        text = texts_for(TEMPLATES, locale).render("digest.html.j2", **context)
        assert len(text.encode("utf-16-le")) // 2 < 4096, locale
