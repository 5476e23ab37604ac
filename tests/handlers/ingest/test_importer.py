"""`otklik import` as an administrator meets it, and the bulk intake underneath it."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner, Result

from bot.cases.grouping import IntakeResult
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.intake.bulk import BulkIntake
from bot.intake.intake import MentionIntake
from bot.model import Author, AuthorLabel, Identity, Mention, Sentiment
from bot.ports import ConcurrentUpdate
from bot.settings.playbook import load_playbook
from bot.sla.calendar import Deadlines
from bot.staff.directory import Directory
from handlers.cli import app
from store import crypto
from store.db import Database
from store.repos.mentions import SqlMentionRepository
from tests.doubles.support import make_config, make_mention
from tests.handlers.test_cli import example_copy

runner = CliRunner()
TELEGRAM = {"OTKLIK_TELEGRAM_TOKEN": "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"}
TITLES = ["external_id", "text", "author.id", "author.name", "sentiment", "url", "published_at"]


def run(config: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, ["import", *args, "-c", str(config)], env=env or {})


def write_csv(
    path: Path, rows: list[list[Any]], delimiter: str = ",", encoding: str = "utf-8"
) -> Path:
    with path.open("w", encoding=encoding, newline="") as file:
        csv.writer(file, delimiter=delimiter).writerows(rows)
    return path


def row(n: int, text: str = "Спасибо за ремонт двора", **fields: Any) -> list[Any]:
    values = {
        "external_id": f"m{n}",
        "text": text,
        "author.id": f"a{n}",
        "author.name": "Ольга",
        "sentiment": "positive",
        "url": f"https://vk.com/wall-1_{n}",
        "published_at": "2024-01-10 08:00",
        **fields,
    }
    return [values[t] for t in TITLES]


def state(tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Everything an import touches, read straight from the SQLite file (personal data
    decrypted with the store's keys)."""
    keyring = crypto.keyring()
    reads = {table: f"SELECT * FROM {table} ORDER BY 1" for table in TABLES}
    reads["mentions"] = MENTIONS
    with sqlite3.connect(tmp_path / "otklik.db") as db:
        found = {
            table: [
                tuple(keyring.decrypt(v) if isinstance(v, str) else v for v in row)
                for row in db.execute(read)
            ]
            for table, read in reads.items()
        }
    found["mentions"] = [mention_columns(row) for row in found["mentions"]]
    return found


TABLES = ("mentions", "authors", "author_identities", "cases", "outbox")
# A mention with the identity it came through (m[6], m[7]: its id and name), found by hash;
# m.personal is its sealed record [external_id, url, text, story_id, reply_to_url].
MENTIONS = (
    "SELECT m.id, m.source, m.personal, m.author_id, m.identity_channel, "
    "i.external_id, i.display_name, m.language, m.published_at, m.received_at, "
    "m.sentiment, m.sentiment_source, m.sentiment_score, m.reach, m.codes, "
    "m.case_id FROM mentions AS m LEFT JOIN author_identities AS i "
    "ON i.channel = m.identity_channel AND i.external_id_hash = m.identity_hash ORDER BY m.id"
)


def mention_columns(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A MENTIONS row (decrypted) with its record spread out: id, source, external_id, url,
    author_id, identity_channel, identity id and name, text, language, published_at,
    received_at, sentiment, its source and score, reach, codes, story_id, reply_to_url,
    case_id."""
    external_id, url, text, story_id, reply_to_url = json.loads(row[2])
    return (
        *row[:2],
        external_id,
        url,
        *row[3:7],
        text,
        *row[7:15],
        story_id,
        reply_to_url,
        row[15],
    )


def rejected(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        return list(csv.reader(file))


def test_csv_rows_are_imported_broken_ones_listed_and_a_rerun_changes_nothing(
    tmp_path: Path,
) -> None:
    config = example_copy(tmp_path)
    data = write_csv(
        tmp_path / "mentions.csv",
        [
            TITLES,
            row(1, "Третий день нет отопления", sentiment="negative", **{"author.id": "olga"}),
            row(2, **{"author.id": "olga"}),
            row(3, ""),  # no text
            row(4, published_at="завтра"),
            row(5, url="ftp://example.org/5"),
            [],  # a blank row still has a row number
            row(6, "Двор убрали,\nспасибо", sentiment="neutral"),  # a line break inside a cell
            row(7, published_at="вчера", url="file:///etc"),  # two problems, both reported
        ],
    )
    first = run(config, str(data), "--source", "vk")
    assert first.exit_code == 0, first.output
    assert "3 imported, 0 duplicates, 4 rejected of 8 rows" in first.output
    assert "  4: text: missing (looked for 'text')" in first.output
    assert "  5: published_at: 'завтра' is not a date" in first.output
    assert "  6: url: String should match pattern '^https?://' (got 'ftp://example.org/5')" in (
        first.output
    )
    assert "history: 1 negative mention(s) stored without cases" in first.output

    listed = rejected(tmp_path / "mentions.rejected.csv")
    assert listed[0] == ["import_row", "import_problems", *TITLES]
    assert [r[0] for r in listed[1:]] == ["4", "5", "6", "9"]
    assert listed[4][1].startswith("published_at: 'вчера' is not a date")
    assert "; url: String should match pattern" in listed[4][1]
    assert listed[2][2:] == row(4, published_at="завтра")  # the row as it was, to fix

    stored = state(tmp_path)
    assert [(m[1], m[2]) for m in stored["mentions"]] == [("vk", "m1"), ("vk", "m2"), ("vk", "m6")]
    olga = [a for a in stored["authors"] if a[1] == "Ольга"]
    assert len(stored["authors"]) == 2 and len(olga) == 2  # olga and a6
    counts = sorted(a[3:6] for a in stored["authors"])  # negative, neutral, positive
    assert counts == [(0, 1, 0), (1, 0, 1)]
    assert stored["cases"] == [] and stored["outbox"] == []

    again = run(config, str(data), "--source", "vk")
    assert again.exit_code == 0, again.output
    assert "0 imported, 3 duplicates, 4 rejected of 8 rows" in again.output
    assert state(tmp_path) == stored


def test_xlsx_first_sheet_titles_in_row_one_numbers_and_dates_as_cells(tmp_path: Path) -> None:
    config = example_copy(tmp_path)
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["external_id", "text", "author.id", "published_at", "reach", "codes"])
    sheet.append([1001, "Яма на дороге у школы", 42, datetime(2024, 3, 1, 9, 30), 1500, "roads"])
    sheet.append([1002, "Всё хорошо", 43.0, datetime(2024, 3, 2), None, "a; b"])
    sheet.append([None, None, None, None, None, None])
    sheet.append([1003, "Ответ", 44, "2024-03-02", -5, None])  # reach below zero
    book.create_sheet("notes").append(["ignored", "sheet"])
    path = tmp_path / "export.xlsx"
    book.save(path)

    result = run(config, str(path), "--source", "vk")
    assert result.exit_code == 0, result.output
    assert "2 imported, 0 duplicates, 1 rejected of 4 rows" in result.output
    assert "  5: reach: Input should be greater than or equal to 0 (got -5)" in result.output
    mentions = state(tmp_path)["mentions"]
    assert [(m[2], m[6], m[16]) for m in mentions] == [
        ("1001", "42", '["roads"]'),
        ("1002", "43", '["a","b"]'),
    ]
    assert mentions[0][10] == "2024-03-01 06:30:00.000000"  # 09:30 in Moscow, stored in UTC


def test_a_named_mapping_with_dotted_titles_constants_and_linked_e_mail(tmp_path: Path) -> None:
    config = example_copy(tmp_path)
    config.write_text(
        config.read_text(encoding="utf-8")
        + """
mappings:
  crm:
    fields:
      external_id: "№"
      text: "Обращение"
      author.id: "Автор.ID"
      author.name: "Автор.Имя"
      author.email: "E-mail"
      published_at: "Дата"
      sentiment: "Тональность"
    constants: {author.channel: crm, language: ru, codes: "crm-import"}
    date_format: "%d.%m.%Y"
    sentiment_values: {негатив: negative, нейтрально: neutral, позитив: positive}
""",
        encoding="utf-8",
    )
    titles = ["№", "Обращение", "Автор.ID", "Автор.Имя", "E-mail", "Дата", "Тональность", "Прим."]
    data = write_csv(
        tmp_path / "crm.csv",
        [
            titles,
            [
                "1",
                "Не вывозят мусор",
                "c-1",
                "Пётр",
                "Petr@Example.org",
                "05.03.2024",
                "Негатив",
                "",
            ],
            [
                "2",
                "Вывезли, спасибо",
                "c-2",
                "П. С.",
                "petr@example.org",
                "06.03.2024",
                "позитив",
                "",
            ],
            ["3", "Когда ремонт?", "c-3", "Анна", "", "2024-03-07", "нейтрально", ""],
        ],
    )
    result = run(config, str(data), "--source", "crm", "--mapping", "crm")
    assert result.exit_code == 0, result.output
    assert "2 imported, 0 duplicates, 1 rejected of 3 rows" in result.output
    assert "  4: published_at: '2024-03-07' is not a date (%d.%m.%Y)" in result.output
    assert "columns not imported: Прим." in result.output
    stored = state(tmp_path)
    # One card for both rows: the same e-mail links the two CRM ids.
    assert [a[1:6] for a in stored["authors"]] == [("Пётр", "[]", 1, 0, 1)]
    assert sorted(i[2:4] for i in stored["author_identities"]) == [
        ("crm", "c-1"),
        ("crm", "c-2"),
        ("email", "petr@example.org"),
    ]
    assert {(m[5], m[9], m[16]) for m in stored["mentions"]} == {("crm", "ru", '["crm-import"]')}


def test_windows_1251_with_semicolons(tmp_path: Path) -> None:
    config = example_copy(tmp_path)
    data = write_csv(
        tmp_path / "excel.csv",
        [TITLES, row(1, "Ёлка во дворе, спасибо!"), row(2, "Сломана лавочка; починит кто?")],
        delimiter=";",
        encoding="cp1251",
    )
    result = run(config, str(data), "--source", "vk")
    assert result.exit_code == 0, result.output
    assert "2 imported" in result.output
    texts = [m[8] for m in state(tmp_path)["mentions"]]
    assert texts == ["Ёлка во дворе, спасибо!", "Сломана лавочка; починит кто?"]


def test_cases_only_with_open_cases(tmp_path: Path) -> None:
    config = example_copy(tmp_path)
    history = write_csv(
        tmp_path / "history.csv",
        [TITLES, row(1, "Нет отопления", sentiment="negative"), row(2)],
    )
    result = run(config, str(history), "--source", "vk", env=TELEGRAM)
    assert result.exit_code == 0, result.output
    assert state(tmp_path)["cases"] == [] and state(tmp_path)["outbox"] == []

    fresh = write_csv(
        tmp_path / "fresh.csv",
        [
            TITLES,
            row(3, "Третий день нет отопления, батареи ледяные", sentiment="negative"),
            row(4, "Автобус 12 не пришёл, ждали час", sentiment="negative"),
            row(5),
        ],
    )
    result = run(config, str(fresh), "--source", "vk", "--open-cases", env=TELEGRAM)
    assert result.exit_code == 0, result.output
    assert "3 imported" in result.output and "2 case(s) opened" in result.output
    stored = state(tmp_path)
    assert {c[1] for c in stored["cases"]} == {"housing", "transport"}
    posts = [o for o in stored["outbox"] if o[5] == "post"]
    assert len(posts) == 2 and {o[2] for o in posts} == {"telegram"}


@pytest.mark.parametrize(
    ("file", "args", "message"),
    [
        ("missing.csv", [], "file not found"),
        ("old.xls", [], "only .csv and .xlsx files can be imported"),
        ("ok.csv", ["--mapping", "nope"], "--mapping 'nope': no such mapping"),
        ("ok.csv", ["--source", "two words"], "use 1-64 characters without spaces"),
        # Fault 7: imported rows must not pass for the bot's own Telegram comments.
        ("ok.csv", ["--source", "telegram"], "'telegram' is the name of a built-in channel"),
        ("ok.csv", ["--source", "rss:news"], "names starting with 'rss:' are the feeds' own"),
        ("short.csv", [], "no column 'text' for the required field text (did you mean 'Text'?)"),
        ("broken.xlsx", [], "not a readable .xlsx workbook"),
    ],
)
def test_unusable_files_and_options_exit_2(
    tmp_path: Path, file: str, args: list[str], message: str
) -> None:
    config = example_copy(tmp_path)
    write_csv(tmp_path / "ok.csv", [TITLES, row(1)])
    write_csv(tmp_path / "short.csv", [["external_id", "Text", "author.id"], ["1", "x", "a"]])
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / "broken.xlsx").write_bytes(b"not a zip")
    result = run(config, str(tmp_path / file), "--source", "vk", *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "otklik.db").exists() or state(tmp_path)["mentions"] == []


# --- the bulk path against the single path ---------------------------------------------------


def build(
    directory: Path,
    database: Database,
    clock: FrozenClock,
    observe: Callable[[Mention, IntakeResult], None] | None = None,
) -> tuple[CaseService, BulkIntake]:
    config = make_config(directory, database.url)
    playbook = load_playbook(config.playbooks.path)
    uow = database.uow
    cases = CaseService(
        uow,
        clock,
        Directory(config, frozenset({"telegram"})),
        config.tz,
        coordination="coordination",
        policy=playbook.routing,
    )

    def plan(*_: Any) -> tuple[str, Deadlines]:
        now = clock.now()
        due = Deadlines(now + timedelta(hours=1), now + timedelta(hours=4), now + timedelta(1))
        return "standard", due

    intake = MentionIntake(cases, playbook, clock, plan)
    labels = playbook.routing.author_labels
    return cases, BulkIntake(uow, intake, cases, clock, labels, observe)


def history(clock: FrozenClock) -> list[Mention]:
    """Mentions that exercise author cards: repeats, a critic, a leader, linked identities
    that join two cards stored earlier."""
    now = clock.now()
    email = Identity("email", "petr@example.org", "Пётр")
    mentions = [make_mention(f"c{n}", now, author="critic") for n in range(5)]
    mentions += [
        replace(
            make_mention("lead", now, author="blogger", sentiment=Sentiment.POSITIVE), reach=50_000
        ),
        replace(make_mention("p1", now, author="vk-petr"), linked=(email,)),
        replace(make_mention("p2", now, sentiment=Sentiment.NEUTRAL), author=email),
        replace(
            make_mention("p3", now, sentiment=Sentiment.POSITIVE),
            author=Identity("telegram", "555", "P"),
            linked=(Identity("phone", "+79990001122"), email),
        ),
        make_mention("n1", now, author="newbie", sentiment=Sentiment.NEUTRAL),
        make_mention("n2", now, author="newbie", sentiment=Sentiment.POSITIVE),
    ]
    return mentions


CARDS = [
    Identity("vk", "critic"),
    Identity("vk", "blogger"),
    Identity("vk", "vk-petr"),
    Identity("telegram", "555"),
    Identity("vk", "newbie"),
    Identity("vk", "early"),
]


async def authors(database: Database) -> list[tuple[Any, ...]]:
    """Author cards, compared by content: ids may differ between the two paths."""
    async with database.uow() as uow:
        found = {_card(a) for i in CARDS if (a := await uow.authors.find_by_identity(i))}
    return sorted(found, key=repr)


def _card(author: Author) -> tuple[Any, ...]:
    return (
        author.display_name,
        frozenset((i.channel, i.external_id) for i in author.identities),
        author.labels,
        author.negative_count,
        author.neutral_count,
        author.positive_count,
        author.first_seen_at,
        author.last_seen_at,
    )


async def test_bulk_gives_the_author_cards_the_single_path_gives(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    reference = Database(f"sqlite+aiosqlite:///{tmp_path / 'reference.db'}")
    await reference.upgrade()
    try:
        (tmp_path / "reference").mkdir()
        single, _ = build(tmp_path / "reference", reference, clock)
        cases, bulk = build(tmp_path, database, clock)
        # Cards both databases have before the import, including two that the import links.
        earlier = [
            make_mention("e1", clock.now(), author="early", sentiment=Sentiment.POSITIVE),
            replace(make_mention("e2", clock.now()), author=Identity("telegram", "555", "P")),
            make_mention("e3", clock.now(), author="vk-petr", sentiment=Sentiment.NEUTRAL),
        ]
        for mention in earlier:
            await single.intake(mention, None)
            await cases.intake(mention, None)
        clock.advance(timedelta(hours=1))
        for mention in history(clock):
            await single.intake(mention, None)
        result = await bulk.receive_many(history(clock), open_cases=False)
        assert (result.stored, result.duplicates, result.cases, result.unopened) == (11, 0, 0, 6)
        assert await authors(database) == await authors(reference)
        critic = next(a for a in await authors(database) if a[0] == "Пётр Сидоров" and a[3] == 5)
        assert critic[2] == {AuthorLabel.SYSTEMATIC_CRITIC}
        assert any(a[2] == {AuthorLabel.OPINION_LEADER} for a in await authors(database))

        again = await bulk.receive_many(history(clock), open_cases=False)
        assert (again.stored, again.duplicates) == (0, 11)
        assert await authors(database) == await authors(reference)
    finally:
        await reference.dispose()


async def test_a_batch_from_the_api_opens_cases_in_order(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    seen: list[tuple[str, IntakeResult]] = []
    cases, bulk = build(tmp_path, database, clock, lambda m, r: seen.append((m.external_id, r)))
    await cases.intake(make_mention("old", clock.now(), sentiment=Sentiment.NEUTRAL), None)
    now = clock.now()
    batch = [
        make_mention("1", now, text="Спасибо за новый маршрут", sentiment=Sentiment.POSITIVE),
        make_mention("2", now, text="Нет отопления третий день"),  # negative: a case
        make_mention("1", now, text="repeated in the batch"),
        make_mention("old", now),  # stored before
        # No sentiment from the source, and an urgent word: a case all the same.
        replace(make_mention("3", now, text="Прорыв трубы, заливает подвал"), sentiment=None),
    ]
    result = await bulk.receive_many(batch, open_cases=True)
    flags = [(r.duplicate, r.case is not None) for r in result.results]
    assert flags == [(False, False), (False, True), (True, False), (True, False), (False, True)]
    assert result.results[0].mention is not None and result.results[0].mention.id
    assert result.results[4].mention and result.results[4].mention.sentiment is Sentiment.NEUTRAL
    assert [external_id for external_id, _ in seen] == ["1", "2", "1", "old", "3"]


async def test_a_batch_that_loses_a_race_is_run_again(
    tmp_path: Path, database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases, bulk = build(tmp_path, database, clock)
    async with database.uow() as uow:
        author = await uow.authors.add(Author(None, "A", (Identity("vk", "a"),)))
        stored = replace(make_mention("1", clock.now(), author="a"), author_id=author.id)
        await uow.mentions.add(stored)
        with pytest.raises(ConcurrentUpdate):
            await uow.mentions.add_many([replace(stored, text="again")], [author.id])
    # Another writer stores "1" between the batch's look-up and its insert: the batch reads
    # again and counts it as a duplicate instead of failing or counting it twice.
    await cases.intake(make_mention("1", clock.now(), author="a"), None)
    looks: list[set[str]] = []
    original = SqlMentionRepository.known

    async def blind_once(self: SqlMentionRepository, source: str, ids: Any) -> set[str]:
        looks.append(await original(self, source, ids))
        return set() if len(looks) == 1 else looks[-1]

    monkeypatch.setattr(SqlMentionRepository, "known", blind_once)
    result = await bulk.receive_many(
        [make_mention("1", clock.now(), author="a"), make_mention("2", clock.now(), author="a")],
        open_cases=False,
    )
    assert [r.duplicate for r in result.results] == [True, False]
    assert looks == [{"1"}, {"1"}]
    async with database.uow() as uow:
        card = await uow.authors.find_by_identity(Identity("vk", "a"))
    assert card is not None and card.negative_count == 2  # "1" once, "2" once


def related_stream(clock: FrozenClock) -> list[Mention]:
    """Negative mentions (routed to housing) that group every way: the same story, replies
    under one post and under a mention's own URL, the same author twice, and loners."""
    now = clock.now()
    post = "https://vk.com/wall-1_900"
    stream = [
        replace(make_mention("s1", now), story_id="story-1"),
        replace(make_mention("t1", now), reply_to_url=post),
        make_mention("a1", now, author="anna"),
        replace(make_mention("s2", now), story_id="story-1"),
        replace(make_mention("t2", now), reply_to_url=post),
        replace(make_mention("r1", now), reply_to_url="https://vk.com/wall-1_a1"),
        make_mention("a2", now, author="anna"),
        make_mention("lone", now),
        make_mention("calm", now, sentiment=Sentiment.NEUTRAL),
    ]
    return stream


async def grouping(cases: CaseService, mentions: Sequence[Mention]) -> list[tuple[Any, ...]]:
    """Which mentions share a case, each case's count and thread, without database ids."""
    shape = []
    for mention in mentions:
        async with cases._uow() as uow:  # a read-only look at the result
            stored = await uow.mentions.get_by_external(mention.source, mention.external_id)
        assert stored is not None
        if stored.case_id is None:
            shape.append((mention.external_id, None))
            continue
        thread = await cases.thread(stored.case_id)
        assert thread is not None
        shape.append(
            (
                mention.external_id,
                tuple(m.external_id for m in thread.mentions),
                thread.case.mention_count,
                tuple(e.kind for e in thread.events),
            )
        )
    return shape


async def test_a_batch_groups_related_mentions_as_one_by_one_intake_does(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    reference = Database(f"sqlite+aiosqlite:///{tmp_path / 'reference.db'}")
    await reference.upgrade()
    try:
        (tmp_path / "reference").mkdir()
        single, single_intake = build(tmp_path / "reference", reference, clock)
        cases, bulk = build(tmp_path, database, clock)
        # An open case both databases have: the batch's story-2 mention joins it.
        before = replace(make_mention("s0", clock.now()), story_id="story-2")
        await single_intake.receive_many([before])
        await bulk.receive_many([before])
        stream = [
            *related_stream(clock),
            replace(make_mention("s3", clock.now()), story_id="story-2"),
        ]

        one_by_one = [await single_intake.receive_many([m]) for m in stream]
        batch = await bulk.receive_many(stream)

        assert [r.results[0].case is not None for r in one_by_one] == [
            r.case is not None for r in batch.results
        ]
        expected = await grouping(single, [before, *stream])
        assert await grouping(cases, [before, *stream]) == expected
        by_id = {row[0]: row for row in expected}
        assert by_id["s2"][1] == ("s1", "s2") and by_id["t2"][1] == ("t1", "t2")
        assert by_id["a2"][1] == ("a1", "r1", "a2")  # r1 replies under a1's own post
        assert by_id["s3"][1:3] == (("s0", "s3"), 2) and by_id["calm"][1] is None
        # One card post per case, carrying the batch's count: s0's card was not out yet, so
        # its "+1 related" edit folded into its waiting post.
        async with database.uow() as uow:
            items = [i for n in range(1, 200) if (i := await uow.outbox.get(n))]
        cards = sorted((i.op.value, i.payload["case"]["mention_count"]) for i in items)
        assert cards == [("post", 1), ("post", 2), ("post", 2), ("post", 2), ("post", 3)]
    finally:
        await reference.dispose()
