"""`otklik report`: the export read back (xlsx with openpyxl, html, md), the period's edges in
the organisation's time zone, the summary computed from exactly the rows listed, both locales,
and the command line with its errors."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from bot.messages.texts import DEFAULT_TEMPLATES_DIR, texts_for
from bot.model import (
    Author,
    AuthorLabel,
    Case,
    CaseState,
    Identity,
    IgnoreReason,
    Mention,
    Outcome,
    Priority,
    Sentiment,
)
from bot.reports.export import export_period
from handlers.cli import app
from handlers.reports.report import ReportFormat, write_report
from store.db import Database
from tests.doubles.support import make_config

TZ = ZoneInfo("Europe/Moscow")  # UTC+3, no DST
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
FIRST, LAST = date(2026, 11, 19), date(2026, 11, 20)
START = datetime(2026, 11, 18, 21, 0, tzinfo=UTC)  # 19 Nov 00:00 in Moscow
END = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)  # 21 Nov 00:00 in Moscow
NAMES = {"housing": "ЖКХ", "transport": "Транспорт", "coordination": "ЦУР"}
STAFF = {"spec": "Анна Иванова"}
MIN = timedelta(minutes=1)
T6 = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)


async def seed(db: Database) -> None:
    """Seven cases around a two-day period; four authors.

    in:  #1 housing, at the first instant, answered and in time (author A)
         #2 housing, at the last minute, untouched past its deadline (author B)
         #5 transport drill (author C)
         #6 housing, ignored as not negative (author A again)
         #7 transport, touched late, closed with no action (author B)
    out: #3 at the first instant after the period (author D), #4 just before it (author D)
    """
    t1 = START
    t5 = datetime(2026, 11, 19, 10, 0, tzinfo=UTC)
    t6 = T6
    t7 = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
    cases = [
        Case(None, "housing", CaseState.PUBLISHED, Priority.HIGH, t1, "vk",
             first_touch_due_at=t1 + 60 * MIN, answer_due_at=t1 + 240 * MIN,
             first_touched_at=t1 + 30 * MIN, approved_at=t1 + 120 * MIN,
             published_at=t1 + 150 * MIN, codes=("heating", "water", "topic:heating"),
             escalation_level=1, assignee="spec"),
        Case(None, "housing", CaseState.NEW, Priority.NORMAL, END - MIN, "telegram:press",
             first_touch_due_at=END + 59 * MIN, codes=("roads|pits",)),
        Case(None, "transport", CaseState.NEW, Priority.NORMAL, END, "vk"),
        Case(None, "transport", CaseState.NEW, Priority.NORMAL, START - MIN, "vk"),
        Case(None, "transport", CaseState.TAKEN, Priority.LOW, t5, "vk", drill=True,
             first_touch_due_at=t5 + 60 * MIN, first_touched_at=t5 + 5 * MIN),
        Case(None, "housing", CaseState.IGNORED, Priority.NORMAL, t6, "vk",
             first_touch_due_at=t6 + 60 * MIN, first_touched_at=t6 + 10 * MIN,
             closed_at=t6 + 10 * MIN, ignore_reason=IgnoreReason.NOT_NEGATIVE),
        Case(None, "transport", CaseState.CLOSED, Priority.NORMAL, t7, "rss:news",
             first_touch_due_at=t7 + 10 * MIN, first_touched_at=t7 + 20 * MIN,
             closed_at=t7 + 60 * MIN, outcome=Outcome.NO_ACTION),
    ]  # fmt: skip
    authors = [
        Author(None, "Пётр Сидоров", (Identity("vk", "id1", "Пётр"), Identity("email", "p@x.ru")),
               labels=frozenset({AuthorLabel.SYSTEMATIC_CRITIC}), negative_count=5,
               neutral_count=1, first_seen_at=START - 30 * 24 * 60 * MIN, last_seen_at=t6),
        Author(None, "Anna | K", (Identity("telegram", "42", "Anna"),), negative_count=2,
               first_seen_at=t7, last_seen_at=END - MIN),
        Author(None, "Учения", (Identity("vk", "drill"),), first_seen_at=t5, last_seen_at=t5),
        Author(None, "Вне периода", (Identity("vk", "out"),)),
    ]  # fmt: skip
    # case index -> authors of its mentions, first one first
    mentions = {0: [0, 3], 1: [1], 2: [3], 3: [3], 4: [2], 5: [0], 6: [1]}
    async with db.uow() as uow:
        stored_cases = [await uow.cases.add(case) for case in cases]
        stored_authors = [await uow.authors.add(author) for author in authors]
        n = 0
        for index, who in mentions.items():
            for author in who:
                n += 1
                case = stored_cases[index]
                await uow.mentions.add(
                    Mention(
                        source="vk",
                        external_id=f"m{n}",
                        text="…",
                        author=stored_authors[author].identities[0],
                        received_at=case.created_at,
                        sentiment=Sentiment.NEGATIVE,
                        author_id=stored_authors[author].id,
                        case_id=case.id,
                    )
                )
        await uow.commit()
    assert [c.id for c in stored_cases] == [1, 2, 3, 4, 5, 6, 7]
    assert [a.id for a in stored_authors] == [1, 2, 3, 4]


def local(moment: datetime) -> datetime:
    return moment.astimezone(TZ).replace(tzinfo=None)


def test_the_period_is_whole_local_days() -> None:
    period = export_period(FIRST, LAST, TZ)
    assert (period.start, period.end) == (START, END)
    with pytest.raises(ValueError, match="before it starts"):
        export_period(LAST, FIRST, TZ)


async def test_xlsx_has_summary_cases_and_authors(database: Database, tmp_path: Path) -> None:
    await seed(database)
    texts = texts_for(DEFAULT_TEMPLATES_DIR, "ru")
    path = tmp_path / "report.xlsx"
    result = await write_report(
        database.uow, texts, NAMES, TZ, FIRST, LAST, ReportFormat.XLSX, path, NOW, STAFF
    )
    assert (result.cases, result.authors) == (5, 3)

    book = load_workbook(path)
    assert book.sheetnames == ["Сводка", "Кейсы", "Авторы"]
    summary = [list(row) for row in book["Сводка"].iter_rows(values_only=True)]
    assert summary[0][0] == "Кейсы с 2026-11-19 по 2026-11-20 (Europe/Moscow)"
    assert summary[1] == [
        "Отдел", "Кейсов", "Отвечено", "Открыто", "Не негатив", "Соблюдение SLA",
        "Первый ответ, медиана (мин)", "Первый ответ, p90 (мин)",
        "Ответ, медиана (мин)", "Ответ, p90 (мин)",
    ]  # fmt: skip
    assert summary[2] == ["ЖКХ", 3, 1, 2, 1, pytest.approx(2 / 3), 10, 30, 120, 120]
    assert summary[3] == ["Транспорт", 1, 0, 0, 0, 0, 20, 20, None, None]
    assert summary[4] == ["Все отделы", 4, 1, 2, 1, 0.5, 20, 30, 120, 120]
    assert summary[6] == ["Учебные кейсы (в таблице, но не в сводке): 1"] + [None] * 9
    # Cases by code (a chat-set code by its dimension, then the sources' codes) and by
    # assignee; drill cases in neither. Without the playbook, codes go by their ids.
    rest = [[cell for cell in row if cell is not None] for row in summary[7:]]
    assert rest == [
        [], ["По кодам"], ["Измерение", "Код", "Кейсов"],
        ["topic", "heating", 1],
        ["Коды источников", "heating", 1],
        ["Коды источников", "roads|pits", 1],
        ["Коды источников", "water", 1],
        [], ["По ответственным"], ["Ответственный", "Кейсов", "Отвечено", "Открыто"],
        ["Никто не взял", 3, 0, 1],
        ["Анна Иванова", 1, 1, 1],
    ]  # fmt: skip
    assert book["Сводка"]["F3"].number_format == "0%"

    cases = [list(row) for row in book["Кейсы"].iter_rows(values_only=True)]
    assert cases[0][:4] == ["Кейс", "Отдел", "Приоритет", "Источник"]
    assert [row[0] for row in cases[1:]] == [1, 2, 5, 6, 7]  # #3 and #4 lie outside
    assert cases[1] == [
        1, "ЖКХ", "Высокий", "vk", "heating, water, topic:heating", "Анна Иванова",
        "Опубликован", None,
        local(START), local(START + 30 * MIN), local(START + 120 * MIN),
        local(START + 150 * MIN), None, 30, 120, "да", 1, "нет", 1,
    ]  # fmt: skip
    assert cases[1][8] == datetime(2026, 11, 19, 0, 0)  # shown in Moscow time
    assert cases[2][7] is None and cases[2][13:16] == [None, None, "нет"]
    assert cases[3][17] == "да" and cases[3][18] == 3  # the drill case, flagged
    assert cases[4][7] == "Не негатив" and cases[4][15] == "да"
    assert cases[5][7] == texts.t("outcome.no_action") and cases[5][15] == "нет"

    authors = [list(row) for row in book["Авторы"].iter_rows(values_only=True)]
    assert authors[0] == [
        "Автор", "Имя", "Аккаунты", "Метки", "Негатив", "Нейтрально", "Позитив",
        "Впервые", "Последний раз",
    ]  # fmt: skip
    assert [row[0] for row in authors[1:]] == [1, 2, 3]  # not #4: first on no listed case
    assert authors[1] == [
        1, "Пётр Сидоров", "vk:id1, email:p@x.ru", texts.t("author_label.systematic_critic"),
        5, 1, 0, local(START - 30 * 24 * 60 * MIN), local(T6),
    ]  # fmt: skip


async def test_html_and_md_in_english(sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await db.upgrade()
    try:
        await seed(db)
        texts = texts_for(DEFAULT_TEMPLATES_DIR, "en")
        page = tmp_path / "report.html"
        await write_report(db.uow, texts, NAMES, TZ, FIRST, LAST, ReportFormat.HTML, page, NOW)
        md = tmp_path / "report.md"
        await write_report(db.uow, texts, NAMES, TZ, FIRST, LAST, ReportFormat.MD, md, NOW)
    finally:
        await db.dispose()

    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "<h1>Cases from 2026-11-19 to 2026-11-20 (Europe/Moscow)</h1>" in html
    assert (
        html.index("<h2>Summary</h2>")
        < html.index("<h2>Cases</h2>")
        < html.index("<h2>Authors</h2>")
    )
    assert '<tr class="total"><td>All departments</td><td>4</td><td>1</td><td>2</td><td>1</td>' \
        "<td>50%</td><td>20</td><td>30</td><td>120</td><td>120</td></tr>" in html  # fmt: skip
    assert "<td>Anna | K</td>" in html and "Anna | K" not in html.replace("<td>Anna | K</td>", "")
    assert "<td>2026-11-19 00:00</td>" in html  # local time
    # cases, authors, two summary rows, four codes, two assignees
    assert html.count("<tr><td>") == 5 + 3 + 2 + 4 + 2
    assert "<h2>By code</h2>" in html and "<h2>By assignee</h2>" in html
    assert "Drill cases (listed, not counted in the summary): 1" in html

    text = md.read_text(encoding="utf-8")
    assert text.startswith("# Cases from 2026-11-19 to 2026-11-20 (Europe/Moscow)\n")
    assert "| **All departments** | **4** | **1** | **2** | **1** | **50%** |" in text
    # A pipe inside a value must not split the cell.
    assert "| 2 | Anna \\| K | telegram:42 |" in text
    assert "roads\\|pits" in text
    rows = [line for line in text.splitlines() if re.match(r"^\| \d+ \|", line)]
    assert len(rows) == 5 + 3
    assert all(line.count(" | ") == 18 for line in rows[:5])  # 19 cells per case
    assert "| topic | heating | 1 |" in text and "| spec | 1 | 1 | 1 |" in text


async def test_an_empty_period_still_writes_every_sheet(database: Database, tmp_path: Path) -> None:
    texts = texts_for(DEFAULT_TEMPLATES_DIR, "en")
    path = tmp_path / "empty.xlsx"
    result = await write_report(
        database.uow, texts, NAMES, TZ, FIRST, FIRST, ReportFormat.XLSX, path, NOW
    )
    assert (result.cases, result.authors) == (0, 0)
    book = load_workbook(path)
    assert book.sheetnames == ["Summary", "Cases", "Authors"]
    assert list(book["Summary"].iter_rows(values_only=True))[-1] == (
        "All departments", 0, 0, 0, 0, None, None, None, None, None,
    )  # fmt: skip
    assert book["Cases"].max_row == 1 and book["Authors"].max_row == 1


# --- the command line ------------------------------------------------------------------------

runner = CliRunner()


def test_cli_writes_the_report(tmp_path: Path, sqlite_url: str) -> None:
    config = make_config(tmp_path, sqlite_url)
    assert config.locale == "ru"

    async def seeded() -> None:
        db = Database(sqlite_url)
        await db.upgrade()
        await seed(db)
        await db.dispose()

    asyncio.run(seeded())  # the command runs its own event loop: this test has none
    out = tmp_path / "out.xlsx"
    args = ["report", "--from", "2026-11-19", "--to", "2026-11-20", "--format", "xlsx"]
    result = runner.invoke(
        app, [*args, "-o", str(out), "-c", str(tmp_path / "config.yaml")], env={}
    )
    assert result.exit_code == 0, result.output
    assert "5 case(s), 3 author(s)" in " ".join(result.output.split())  # rich wraps lines
    assert load_workbook(out).sheetnames == ["Сводка", "Кейсы", "Авторы"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "19.11.2026", "--to", "2026-11-20"], "--from: expected a date like"),
        (["--from", "2026-11-19", "--to", "2026-02-30"], "--to: expected a date like"),
        (["--from", "2026-11-20", "--to", "2026-11-19"], "is before --from"),
        (["--from", "2026-11-19", "--to", "2026-11-20", "--format", "pdf"], "expected one of"),
    ],
)
def test_cli_refuses_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["report", *args, "-c", str(tmp_path / "none.yaml")], env={})
    assert result.exit_code == 2
    assert message in result.output
