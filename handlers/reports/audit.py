"""`otklik audit export`: the events of a period with their chain fields, as JSON lines, CSV or
xlsx (the report's openpyxl write-only mode and header style, handlers/reports/report.py).

Every row carries prev_hash and hash, so a reader can check the exported stretch links up
without the database; redacted rows say which erasure event redacted them. Rows are read in
pages and written in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import csv
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

import orjson
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from bot.reports.figures import Period
from handlers.reports.report import DATE_FORMAT, HEADER_FONT
from store.audit import AuditRecord
from store.db import Database

PAGE = 2_000
COLUMNS = (
    "id",
    "at",
    "case_id",
    "actor",
    "kind",
    "from_state",
    "to_state",
    "payload",
    "prev_hash",
    "hash",
    "redacted_by",
)


class AuditFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    XLSX = "xlsx"


@dataclass(frozen=True, slots=True)
class AuditExport:
    path: Path
    events: int


def _cells(record: AuditRecord) -> list[Any]:
    data = record.exported()
    data["payload"] = orjson.dumps(record.payload, option=orjson.OPT_SORT_KEYS).decode()
    return [data[column] for column in COLUMNS]


class _Writer:
    def __init__(self, path: Path, fmt: AuditFormat) -> None:
        self.fmt = fmt
        self.path = path
        self._file: IO[str] | None = None
        self._csv: Any = None
        self._book: Workbook | None = None
        self._sheet: WriteOnlyWorksheet | None = None
        if fmt is AuditFormat.XLSX:
            self._book = Workbook(write_only=True)
            self._sheet = self._book.create_sheet("events")
            self._sheet.freeze_panes = "A2"
            header = []
            for column in COLUMNS:
                cell = WriteOnlyCell(self._sheet, value=column)
                cell.font = HEADER_FONT
                header.append(cell)
            self._sheet.append(header)
            return
        self._file = path.open("w", encoding="utf-8", newline="")
        if fmt is AuditFormat.CSV:
            self._csv = csv.writer(self._file)
            self._csv.writerow(COLUMNS)

    def rows(self, records: list[AuditRecord]) -> None:
        for record in records:
            if self.fmt is AuditFormat.JSONL:
                assert self._file is not None
                self._file.write(orjson.dumps(record.exported()).decode() + "\n")
            elif self.fmt is AuditFormat.CSV:
                self._csv.writerow(_cells(record))
            else:
                assert self._sheet is not None
                cells = _cells(record)
                # Excel has no time zones: UTC, as the column title says nothing else.
                moment = WriteOnlyCell(
                    self._sheet, value=record.at.astimezone(UTC).replace(tzinfo=None)
                )
                moment.number_format = DATE_FORMAT
                cells[1] = moment
                self._sheet.append(cells)

    def close(self) -> None:
        if self._book is not None:
            self._book.save(self.path)
        if self._file is not None:
            self._file.close()


async def write_audit(
    database: Database, period: Period, fmt: AuditFormat, output: Path
) -> AuditExport:
    """Write the events whose moment falls in `period` to `output`."""
    writer = await asyncio.to_thread(_Writer, output, fmt)
    count, after = 0, 0
    try:
        async with database.reader() as uow:
            while page := await uow.events.records(after, PAGE, start=period.start, end=period.end):
                await asyncio.to_thread(writer.rows, page)
                count += len(page)
                after = page[-1].id
    finally:
        await asyncio.to_thread(writer.close)
    return AuditExport(output, count)
