"""`otklik import` with the file read in a process of its own (big files): the same result as
reading in place, rows and their numbers right across batches, errors of that process
reported, re-runs idempotent. Real files, real SQLite databases, a real child process."""

from __future__ import annotations

import csv
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bot.settings.config import Config, load_config
from bot.settings.playbook import Playbook, load_playbook
from handlers.ingest.import_rows import ImportSetupError, RowProcess
from handlers.ingest.importer import ImportReport, import_file
from store import crypto
from store.models import MENTION_PERSONAL
from tests.handlers.test_cli import example_copy

TITLES = ["external_id", "text", "author.id", "author.name", "sentiment", "url", "author.email"]


def setup(directory: Path, extra: str = "") -> tuple[Config, Playbook]:
    directory.mkdir(exist_ok=True)
    path = example_copy(directory)
    path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
    config = load_config(path, env={})
    return config, load_playbook(config.playbooks.path)


def write_csv(path: Path, rows: list[list[Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file).writerows(rows)
    return path


def mixed_rows() -> list[list[Any]]:
    """Good rows, bad rows and blank rows spread over batches of 4, with repeated authors and
    an e-mail that links two of them."""
    rows: list[list[Any]] = [TITLES]
    for n in range(1, 31):
        sentiment = ("negative", "neutral", "positive")[n % 3]
        rows.append(
            [f"m{n}", f"Обращение {n}", f"a{n % 7}", "Житель", sentiment, f"https://vk.com/{n}", ""]
        )
    rows[5][1] = ""  # row 6: no text
    rows[9][5] = "ftp://example.org"  # row 10: a bad URL
    rows[12] = []  # row 13: blank
    rows[17][4] = "злой"  # row 18: an unknown sentiment
    rows[20] = [*rows[20], "extra"]  # row 21: more values than titles
    rows[22][6] = "Petr@Example.org"  # rows 23 and 25: two author ids, one e-mail
    rows[24][6] = "petr@example.org"
    rows[27][6] = "not-an-address"  # row 28
    return rows


def stored(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What an import leaves, without the ids and moments that differ from run to run;
    personal data decrypted with the store's keys, and sorted here (the database cannot
    order ciphertext)."""
    with sqlite3.connect(database) as db:
        mentions = [
            (*personal(record, "external_id", "text"), sentiment, *personal(record, "url"), *rest)
            for record, sentiment, *rest in db.execute(
                "SELECT m.personal, m.sentiment, a.display_name, "
                "a.negative_count, a.neutral_count, a.positive_count FROM mentions m "
                "JOIN authors a ON a.id = m.author_id"
            )
        ]
        identities = db.execute(
            "SELECT i.channel, i.external_id, count(*) OVER (PARTITION BY i.author_id) "
            "FROM author_identities i"
        ).fetchall()
    return {
        "mentions": sorted(map(_clear, mentions)),
        "identities": sorted(map(_clear, identities)),
    }


def personal(record: str, *fields: str) -> list[Any]:
    """Values of a mention's sealed record (mentions.personal), decrypted."""
    values = json.loads(crypto.keyring().decrypt(record))
    return [values[MENTION_PERSONAL.index(name)] for name in fields]


def _clear(row: tuple[Any, ...]) -> tuple[Any, ...]:
    keyring = crypto.keyring()
    return tuple(keyring.decrypt(v) if isinstance(v, str) else v for v in row)


def summary(report: ImportReport) -> tuple[Any, ...]:
    firsts = [(r.row, r.problems) for r in report.first_rejects]
    return (report.rows, report.imported, report.duplicates, report.rejected, firsts)


async def test_reading_in_a_process_imports_what_reading_in_place_does(tmp_path: Path) -> None:
    results = {}
    for in_process in (False, True):
        directory = tmp_path / ("process" if in_process else "in-place")
        config, playbook = setup(directory)
        data = write_csv(directory / "mentions.csv", mixed_rows())
        report = await import_file(
            data,
            config=config,
            playbook=playbook,
            source="vk",
            batch_size=4,
            reading_process=in_process,
        )
        listed = (directory / "mentions.rejected.csv").read_text(encoding="utf-8-sig")
        results[in_process] = (summary(report), stored(directory / "otklik.db"), listed)

    assert results[True] == results[False]
    (rows, imported, duplicates, rejected, firsts), state, _ = results[True]
    assert (rows, imported, duplicates, rejected) == (30, 24, 0, 5)
    assert [row for row, _ in firsts] == [6, 10, 18, 21, 28]
    assert firsts[3][1] == ("more values than column titles",)
    assert ("email", "petr@example.org", 3) in state["identities"]  # a1, a3 and the e-mail


async def test_a_rerun_through_the_process_counts_duplicates_and_stores_nothing_twice(
    tmp_path: Path,
) -> None:
    config, playbook = setup(tmp_path)
    data = write_csv(tmp_path / "mentions.csv", mixed_rows())
    seen: list[tuple[int, int, int | None]] = []

    def progress(report: ImportReport, position: int, total: int | None) -> None:
        seen.append((report.rows, position, total))

    first = await import_file(
        data, config=config, playbook=playbook, source="vk", batch_size=7, reading_process=True
    )
    before = stored(tmp_path / "otklik.db")
    again = await import_file(
        data,
        config=config,
        playbook=playbook,
        source="vk",
        batch_size=7,
        reading_process=True,
        progress=progress,
    )
    assert (first.imported, first.duplicates) == (24, 0)
    assert (again.imported, again.duplicates, again.rejected) == (0, 24, 5)
    assert stored(tmp_path / "otklik.db") == before
    # Progress after every batch, through the whole file.
    size = data.stat().st_size
    assert [rows for rows, _, _ in seen] == [7, 14, 21, 28, 30]
    assert seen[-1][1:] == (size, size)


async def test_a_mapping_and_a_spreadsheet_go_through_the_process(tmp_path: Path) -> None:
    config, playbook = setup(
        tmp_path,
        """
mappings:
  crm:
    fields: {external_id: "№", text: "Обращение", author.id: "Автор", published_at: "Дата"}
    constants: {author.channel: crm}
""",
    )
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["№", "Обращение", "Автор", "Дата"])
    sheet.append([1, "Яма на дороге", 42, datetime(2024, 3, 1, 9, 30)])
    sheet.append([2, "Спасибо", 42.0, "вчера"])
    sheet.append([3, "Ответ", 43, None])
    path = tmp_path / "export.xlsx"
    book.save(path)

    report = await import_file(
        path, config=config, playbook=playbook, source="crm", mapping="crm", reading_process=True
    )
    assert summary(report)[:4] == (3, 2, 0, 1)
    assert report.first_rejects[0].row == 3
    with sqlite3.connect(tmp_path / "otklik.db") as db:
        rows = [
            _clear((*personal(record, "external_id"), *rest))
            for record, *rest in db.execute(
                "SELECT m.personal, m.identity_channel, i.external_id, m.published_at "
                "FROM mentions AS m JOIN author_identities AS i ON i.channel = "
                "m.identity_channel AND i.external_id_hash = m.identity_hash ORDER BY m.id"
            )
        ]
    assert rows == [("1", "crm", "42", "2024-03-01 06:30:00.000000"), ("3", "crm", "43", None)]


async def test_a_file_the_process_refuses_stores_nothing(tmp_path: Path) -> None:
    config, playbook = setup(tmp_path)
    data = write_csv(
        tmp_path / "short.csv", [["external_id", "Text", "author.id"], ["1", "x", "a"]]
    )
    with pytest.raises(ImportSetupError, match="no column 'text' for the required field text"):
        await import_file(data, config=config, playbook=playbook, source="vk", reading_process=True)
    assert not (tmp_path / "otklik.db").exists()


async def test_an_error_in_the_reading_process_stops_the_import_and_says_where(
    tmp_path: Path,
) -> None:
    config, playbook = setup(tmp_path)
    rows = mixed_rows()[:9]
    # Row 10 has a cell longer than the csv module reads: it raises, in the reading process.
    rows.append(["m-huge", "x" * (csv.field_size_limit() + 1), "a1", "", "", "", ""])
    rows += mixed_rows()[9:]
    data = write_csv(tmp_path / "mentions.csv", rows)
    with pytest.raises(csv.Error, match="field larger than field limit") as raised:
        await import_file(
            data, config=config, playbook=playbook, source="vk", batch_size=4, reading_process=True
        )
    assert "raised in the import's reading process" in "\n".join(raised.value.__notes__)
    # The batches read before it are stored (rows 2-9, one of them rejected).
    with sqlite3.connect(tmp_path / "otklik.db") as db:
        assert db.execute("SELECT count(*) FROM mentions").fetchone() == (7,)


async def test_a_reading_process_that_dies_is_reported(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)
    data = write_csv(tmp_path / "mentions.csv", mixed_rows())
    rows = await RowProcess.start(data, None, config.tz, 4)
    try:
        rows._process.kill()  # as the kernel's OOM killer would
        with pytest.raises(RuntimeError, match=r"reading process stopped \(exit code -9\)"):
            async for _ in rows.batches():
                pass
    finally:
        await rows.close()
