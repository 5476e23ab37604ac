"""The digest shows the day's clusters: "the bus 42 story: 30 mentions from 30 people" instead
of thirty lines. Mentions come in through the real intake (similar texts join one case), on
SQLite and PostgreSQL; the clock is injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

from bot.cases.grouping import CaseOpening
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.messages.texts import texts_for
from bot.ports import UnitOfWorkFactory
from bot.reports.digest import DigestService
from bot.reports.evening import MAX_CLUSTERS, evening_context
from bot.settings.playbook import load_playbook
from bot.staff.directory import Directory
from store.db import Database
from tests.doubles.support import ROOT, make_config, make_mention

MSK = ZoneInfo("Europe/Moscow")
MORNING = datetime(2026, 11, 20, 9, 0, tzinfo=MSK).astimezone(UTC)
TEMPLATES = ROOT / "playbooks" / "templates"
BUS = (
    "Автобус 42 опять не пришёл, стоим на остановке на улице Мицкевича уже час",
    "42-й автобус так и не пришел на остановку Мицкевича, стоим уже час",
    "Автобус 42 не пришёл, на остановке улицы Мицкевича ждём целый час",
)
TRASH = "Во дворе дома на Ленина 5 не вывозят мусор уже вторую неделю, баки переполнены"
ALONE = "В парке Победы сломаны все фонари, вечером там совсем темно"


async def test_the_digest_lists_the_days_largest_clusters_in_both_languages(
    tmp_path: Path, database: Database
) -> None:
    clock = FrozenClock(MORNING)
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram"}))
    routing = load_playbook(config.playbooks.path).routing
    cases = CaseService(database.uow, clock, directory, config.tz, policy=routing)
    transport, housing = CaseOpening("transport"), CaseOpening("housing")
    for n in range(30):  # thirty people, three wordings, over two and a half hours
        text = BUS[n % 3] + "!" * (n % 4)
        await cases.intake(make_mention(f"bus-{n}", clock.now(), text=text), transport)
        clock.advance(timedelta(minutes=5))
    for n in range(4):  # four complaints from three people
        author = f"tenant-{n % 3}"
        mention = make_mention(f"trash-{n}", clock.now(), text=TRASH + "!" * n, author=author)
        await cases.intake(mention, housing)
    await cases.intake(make_mention("alone", clock.now(), text=ALONE), housing)

    uow = cast(UnitOfWorkFactory, database.uow)
    service = DigestService(uow, FrozenClock(clock.now() + timedelta(hours=1)), directory, MSK)
    context = evening_context(await service.evening(), directory, MSK)
    bus, trash = context["clusters"]  # one mention alone is no cluster
    assert {k: v for k, v in bus.items() if k != "case_id"} == {
        "department": "Транспорт",
        "story": "Автобус 42 опять не пришёл, стоим на остановке на улице Мицкевича уже…",  # a line
        "mentions": 30,
        "people": 30,
        "first": "09:00",
        "last": "11:25",
    }
    assert (trash["department"], trash["mentions"], trash["people"]) == ("ЖКХ", 4, 3)
    assert context["clusters_more"] == 0 and MAX_CLUSTERS == 3

    ru = texts_for(TEMPLATES, "ru").render("digest.html.j2", **context)
    en = texts_for(TEMPLATES, "en").render("digest.html.j2", **context)
    story = f"<code>/case {bus['case_id']}</code> Транспорт «Автобус 42 опять не пришёл"
    assert "<b>🌪 Крупнейшие сюжеты</b>" in ru
    assert story in ru and "»: 30 упоминаний от 30 чел., 09:00–11:25" in ru
    assert "»: 4 упоминания от 3 чел." in ru
    assert "<b>🌪 The largest stories</b>" in en
    assert "»: 30 mentions from 30 people, 09:00–11:25" in en
    assert ALONE not in ru  # a single mention stays a count in the totals
