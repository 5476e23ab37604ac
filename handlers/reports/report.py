"""`otklik report`: the cases of a period, their codes, times and outcomes, and the cards of
their authors, as xlsx (sheets Summary, Cases, Authors), html or md.

One pass over the cases: each chunk the store streams is written out and added to the
summary, so the summary is computed from exactly the rows listed. xlsx uses openpyxl's
write-only mode (rows go to disk as they come; the Summary sheet is created first and filled
last); html and md write the case rows to a temporary file and put the summary above them at
the end. File work runs in a worker thread, off the event loop.

Times are shown in the organisation's time zone; spreadsheets get them as dates without an
offset (Excel has none), the title names the zone.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell as SheetCell  # what WriteOnlyCell makes
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from bot.messages.texts import Texts
from bot.ports import UnitOfWorkFactory
from bot.reports.export import (
    ExportAuthor,
    ExportCase,
    ReportSummary,
    SummaryRow,
    add_to_summary,
    export_period,
)

__all__ = [
    "AUTHOR_COLUMNS",
    "CASE_COLUMNS",
    "SUMMARY_COLUMNS",
    "ReportFormat",
    "ReportResult",
    "write_report",
]

CHUNK = 1000
EMPTY = "—"  # a figure that does not exist (no case was touched): a dash, not 0
CASE_COLUMNS = (
    "id",
    "department",
    "priority",
    "source",
    "codes",
    "assignee",
    "state",
    "outcome",
    "created",
    "first_touched",
    "approved",
    "published",
    "closed",
    "minutes_first_touch",
    "minutes_answer",
    "sla_met",
    "escalation",
    "drill",
    "author",
)
AUTHOR_COLUMNS = (
    "id",
    "name",
    "identities",
    "labels",
    "negative",
    "neutral",
    "positive",
    "first_seen",
    "last_seen",
)
SUMMARY_COLUMNS = (
    "department",
    "cases",
    "answered",
    "open",
    "not_negative",
    "sla_share",
    "first_touch_median",
    "first_touch_p90",
    "answer_median",
    "answer_p90",
)
# The summary's two tables after the departments': cases by code, per dimension of codes.yaml
# (a source's plain codes last), and cases by assignee.
CODE_COLUMNS = ("dimension", "code", "cases")
ASSIGNEE_COLUMNS = ("assignee", "cases", "answered", "open")
HEADER_FONT = Font(bold=True)
DATE_FORMAT = "yyyy-mm-dd hh:mm"
PERCENT_FORMAT = "0%"


class ReportFormat(StrEnum):
    XLSX = "xlsx"
    HTML = "html"
    MD = "md"


@dataclass(frozen=True, slots=True)
class ReportResult:
    path: Path
    cases: int
    authors: int
    summary: ReportSummary


Cell = str | int | float | datetime | None


@dataclass(frozen=True, slots=True)
class Section:
    """A titled table of the summary: by code, by assignee."""

    title: str
    columns: list[str]
    rows: list[list[Cell]]


class _Cells:
    """Values for one locale and zone: typed for xlsx, text for html and md."""

    def __init__(
        self,
        texts: Texts,
        departments: Mapping[str, str],
        tz: ZoneInfo,
        staff: Mapping[str, str] | None = None,
        code_parts: Callable[[str], tuple[str, str]] | None = None,
    ) -> None:
        self.texts = texts
        self.departments = departments
        self.tz = tz
        self.staff = staff or {}  # staff id -> name
        self.code_parts = code_parts  # a code -> (dimension's title, code's title)
        self._labels: dict[str, str] = {}  # a few dozen names, each rendered once

    def _label(self, key: str, default: str | None = None) -> str:
        label = self._labels.get(key)
        if label is None:
            label = self._labels[key] = (
                self.texts.t(key) if default is None else self.texts.t_or(key, default)
            )
        return label

    def local(self, moment: datetime | None) -> datetime | None:
        return None if moment is None else moment.astimezone(self.tz).replace(tzinfo=None)

    def department(self, department: str | None) -> str:
        if department is None:
            return self._label("report.all_departments")
        return self.departments.get(department, department)

    def flag(self, value: bool | None) -> str | None:
        if value is None:
            return None
        return self._label("report.flag_yes" if value else "report.flag_no")

    def named(self, prefix: str, value: str | None) -> str | None:
        if value is None:
            return None
        return self._label(f"{prefix}.{value}", value)

    def case(self, case: ExportCase, now: datetime) -> list[Cell]:
        outcome = self.named("outcome", case.outcome) or self.named(
            "ignore_reason", case.ignore_reason
        )
        return [
            case.id,
            self.department(case.department),
            self.named("priority", case.priority),
            case.source,
            ", ".join(case.codes) or None,
            self.person(case.assignee),
            self.named("state", case.state),
            outcome,
            self.local(case.created_at),
            self.local(case.first_touched_at),
            self.local(case.approved_at),
            self.local(case.published_at),
            self.local(case.closed_at),
            case.minutes_to_first_touch,
            case.minutes_to_answer,
            self.flag(case.sla_met(now)),
            case.escalation_level,
            self.flag(case.drill),
            case.author_id,
        ]

    def author(self, author: ExportAuthor) -> list[Cell]:
        return [
            author.id,
            author.name,
            ", ".join(author.identities) or None,
            ", ".join(self.named("author_label", label) or label for label in author.labels)
            or None,
            author.negative_count,
            author.neutral_count,
            author.positive_count,
            self.local(author.first_seen_at),
            self.local(author.last_seen_at),
        ]

    def summary(self, row: SummaryRow) -> list[Cell]:
        return [
            self.department(row.department),
            row.cases,
            row.answered,
            row.open,
            row.not_negative,
            row.sla_share,
            row.first_touch_median,
            row.first_touch_p90,
            row.answer_median,
            row.answer_p90,
        ]

    def person(self, staff_id: str | None) -> str | None:
        return self.staff.get(staff_id, staff_id) if staff_id else None

    def code(self, dimension: str, code: str, cases: int) -> list[Cell]:
        if self.code_parts is not None:
            dimension, code = self.code_parts(f"{dimension}:{code}" if dimension else code)
        return [dimension or self._label("report.source_codes"), code, cases]

    def assignee(self, row: SummaryRow) -> list[Cell]:
        name = self.person(row.department) or self._label("report.nobody")
        return [name, row.cases, row.answered, row.open]

    def sections(self, summary: ReportSummary) -> list[Section]:
        """The tables below the departments' summary; none for a period without cases."""
        sections = [
            Section(
                self._label("report.by_code"),
                self.labels("codes", CODE_COLUMNS),
                [self.code(*row) for row in summary.code_rows()],
            ),
            Section(
                self._label("report.by_assignee"),
                self.labels("assignees", ASSIGNEE_COLUMNS),
                [self.assignee(row) for row in summary.assignee_rows()],
            ),
        ]
        return [section for section in sections if section.rows]

    def labels(self, group: str, columns: Sequence[str]) -> list[str]:
        return [self.texts.t(f"report.{group}.{column}") for column in columns]


def as_text(value: Cell) -> str:
    if value is None:
        return EMPTY
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.0%}"
    return str(value)


def md_cell(value: Cell) -> str:
    """A Markdown table cell: a pipe would end the cell, a line break the row."""
    return " ".join(as_text(value).replace("\\", "\\\\").replace("|", "\\|").split())


# --- writers -----------------------------------------------------------------------------------


class _Writer:
    def start(self, case_labels: list[str]) -> None: ...
    def cases(self, rows: list[list[Cell]]) -> None: ...
    def authors_start(self, author_labels: list[str]) -> None: ...
    def authors(self, rows: list[list[Cell]]) -> None: ...
    def finish(
        self,
        summary_labels: list[str],
        summary: list[list[Cell]],
        drill_note: str | None,
        sections: Sequence[Section] = (),
    ) -> None: ...
    def close(self) -> None: ...


class _XlsxWriter(_Writer):
    def __init__(self, path: Path, texts: Texts, title: str) -> None:
        self.path = path
        self.title = title
        self.book = Workbook(write_only=True)
        # Created in this order so Summary is the first tab; written last.
        self.summary_sheet = self._sheet(texts.t("report.sheet_summary"))
        self.case_sheet = self._sheet(texts.t("report.sheet_cases"))
        self.author_sheet = self._sheet(texts.t("report.sheet_authors"))

    def _sheet(self, title: str) -> WriteOnlyWorksheet:
        sheet: WriteOnlyWorksheet = self.book.create_sheet(title[:31])  # Excel's limit
        return sheet

    def _header(self, sheet: WriteOnlyWorksheet, labels: list[str], freeze: bool = True) -> None:
        if freeze:  # only before the first row, in write-only mode
            sheet.freeze_panes = "A2"
        cells = []
        for label in labels:
            cell = WriteOnlyCell(sheet, value=label)
            cell.font = HEADER_FONT
            cells.append(cell)
        sheet.append(cells)

    def _rows(
        self,
        sheet: WriteOnlyWorksheet,
        rows: list[list[Cell]],
        kind: type[datetime | float] = datetime,
        number_format: str = DATE_FORMAT,
    ) -> None:
        """Append rows; values of `kind` get `number_format`."""
        for row in rows:
            cells: list[Cell | SheetCell] = []
            for value in row:
                if isinstance(value, kind):
                    cell = WriteOnlyCell(sheet, value=value)
                    cell.number_format = number_format
                    cells.append(cell)
                else:
                    cells.append(value)
            sheet.append(cells)

    def start(self, case_labels: list[str]) -> None:
        self._header(self.case_sheet, case_labels)

    def cases(self, rows: list[list[Cell]]) -> None:
        self._rows(self.case_sheet, rows)

    def authors_start(self, author_labels: list[str]) -> None:
        self._header(self.author_sheet, author_labels)

    def authors(self, rows: list[list[Cell]]) -> None:
        self._rows(self.author_sheet, rows)

    def finish(
        self,
        summary_labels: list[str],
        summary: list[list[Cell]],
        drill_note: str | None,
        sections: Sequence[Section] = (),
    ) -> None:
        sheet = self.summary_sheet
        title = WriteOnlyCell(sheet, value=self.title)
        title.font = HEADER_FONT
        sheet.append([title])
        self._header(sheet, summary_labels, freeze=False)
        self._rows(sheet, summary, float, PERCENT_FORMAT)
        if drill_note:
            sheet.append([])
            sheet.append([drill_note])
        for section in sections:
            sheet.append([])
            title = WriteOnlyCell(sheet, value=section.title)
            title.font = HEADER_FONT
            sheet.append([title])
            self._header(sheet, section.columns, freeze=False)
            self._rows(sheet, section.rows)
        self.book.save(self.path)

    def close(self) -> None:
        self.book.close()


class _PageWriter(_Writer):
    """html and md: the template's parts in order; case rows wait in a temporary file until
    the summary, which goes above them, is known."""

    def __init__(
        self,
        path: Path,
        texts: Texts,
        template: str,
        cell: Callable[[Cell], str],
        title: str,
        generated_at: str,
    ) -> None:
        self.path = path
        self.texts = texts
        self.template = template
        self.cell = cell
        self.title = title
        self.generated_at = generated_at
        self.case_labels: list[str] = []
        # Closed in close(), which write_report calls whatever happens.
        self.body: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115

    def _part(self, part: str, **context: Any) -> str:
        text = self.texts.render(self.template, part=part, **context)
        # Jinja drops a template's last newline; the next part starts on a line of its own.
        return text if not text or text.endswith("\n") else text + "\n"

    def _text(self, rows: list[list[Cell]]) -> list[list[str]]:
        return [[self.cell(value) for value in row] for row in rows]

    def start(self, case_labels: list[str]) -> None:
        self.case_labels = case_labels

    def cases(self, rows: list[list[Cell]]) -> None:
        self.body.write(self._part("cases", rows=self._text(rows)))

    def authors_start(self, author_labels: list[str]) -> None:
        self.body.write(self._part("authors_head", author_columns=author_labels))

    def authors(self, rows: list[list[Cell]]) -> None:
        self.body.write(self._part("authors", rows=self._text(rows)))

    def finish(
        self,
        summary_labels: list[str],
        summary: list[list[Cell]],
        drill_note: str | None,
        sections: Sequence[Section] = (),
    ) -> None:
        head = self._part(
            "head",
            title=self.title,
            generated_at=self.generated_at,
            summary_columns=summary_labels,
            summary=self._text(summary),
            drill_note=drill_note,
            case_columns=self.case_labels,
            sections=[
                {"title": x.title, "columns": x.columns, "rows": self._text(x.rows)}
                for x in sections
            ],
        )
        with self.path.open("w", encoding="utf-8") as out:
            out.write(head)
            self.body.seek(0)
            shutil.copyfileobj(self.body, out)
            out.write(self._part("foot"))

    def close(self) -> None:
        self.body.close()


# --- the report --------------------------------------------------------------------------------


async def write_report(
    uow_factory: UnitOfWorkFactory,
    texts: Texts,
    departments: Mapping[str, str],
    tz: ZoneInfo,
    first: date,
    last: date,
    fmt: ReportFormat,
    output: Path,
    now: datetime,
    staff: Mapping[str, str] | None = None,
    code_parts: Callable[[str], tuple[str, str]] | None = None,
) -> ReportResult:
    """Write the report of cases created from `first` through `last` (local dates) to
    `output`. `departments` maps ids to display names, `staff` staff ids to names;
    `code_parts` names a code's dimension and the code (Playbook.code_parts), ids without
    it; `now` decides deadlines still ahead."""
    period = export_period(first, last, tz)
    cells = _Cells(texts, departments, tz, staff, code_parts)
    title = texts.t("report.title", start=first.isoformat(), end=last.isoformat(), tz=str(tz))
    writer: _Writer
    if fmt is ReportFormat.XLSX:
        writer = await asyncio.to_thread(_XlsxWriter, output, texts, title)
    else:
        template, cell = (
            ("report.html.j2", as_text) if fmt is ReportFormat.HTML else ("report.md.j2", md_cell)
        )
        generated = as_text(cells.local(now))
        writer = await asyncio.to_thread(
            _PageWriter, output, texts, template, cell, title, generated
        )
    summary = ReportSummary(period)
    case_count = author_count = 0
    try:
        writer.start(cells.labels("case", CASE_COLUMNS))
        async with uow_factory() as uow:
            async for cases in uow.export.cases(period, CHUNK):
                add_to_summary(summary, cases, now)
                case_count += len(cases)
                await asyncio.to_thread(writer.cases, [cells.case(c, now) for c in cases])
            writer.authors_start(cells.labels("author", AUTHOR_COLUMNS))
            async for authors in uow.export.authors(period, CHUNK):
                author_count += len(authors)
                await asyncio.to_thread(writer.authors, [cells.author(a) for a in authors])
        drill = texts.t("report.drill_note", count=summary.drill) if summary.drill else None
        await asyncio.to_thread(
            writer.finish,
            cells.labels("summary", SUMMARY_COLUMNS),
            [cells.summary(row) for row in summary.rows()],
            drill,
            cells.sections(summary),
        )
    finally:
        writer.close()
    return ReportResult(output, case_count, author_count, summary)
