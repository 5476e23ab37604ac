"""`otklik drill report N --format md|html|xlsx`: the drill report (bot/reports/drill.py) as
a file. md and html through the locale's templates, xlsx with openpyxl as in report.py; the
same rows everywhere (drill_rows)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from bot.messages.texts import Texts

HEADER_FONT = Font(bold=True)
_FIGURES = (
    ("cases", ("cases",)),
    ("first_touch_done", ("first_touch", "done")),
    ("first_touch_average", ("first_touch", "average_min")),
    ("first_touch_longest", ("first_touch", "longest_min")),
    ("first_touch_met", ("first_touch", "met")),
    ("first_touch_breached", ("first_touch", "breached")),
    ("answer_done", ("answer", "done")),
    ("answer_average", ("answer", "average_min")),
    ("answer_longest", ("answer", "longest_min")),
    ("answer_met", ("answer", "met")),
    ("answer_breached", ("answer", "breached")),
    ("escalations", ("escalations",)),
    ("escalated_cases", ("escalated_cases",)),
    ("highest_level", ("highest_level",)),
    ("left_open", ("left_open",)),
)
_CHECKLIST = ("step", "text", "at", "actor", "minutes")
Cell = str | int | float | None


class DrillReportFormat(StrEnum):
    MD = "md"
    HTML = "html"
    XLSX = "xlsx"


def drill_rows(context: dict[str, Any], texts: Texts) -> dict[str, Any]:
    """Headers and rows of the summary (one per department, then all of them) and of the
    checklist, and the deltas against the previous drill."""
    names: dict[str, str] = context.get("names", {})

    def col(key: str) -> str:
        return texts.t(f"drill_report.columns.{key}")

    def figures_row(figures: dict[str, Any], label: str) -> list[Cell]:
        row: list[Cell] = [label]
        for _, path in _FIGURES:
            value: Any = figures
            for part in path:
                value = value[part]
            row.append(value)
        actors = ", ".join(f"{names.get(s, s)} ({n})" for s, n in figures["actors"].items())
        row.append(actors)
        return row

    summary = [
        figures_row(f, f["department_name"] or f["department"]) for f in context["departments"]
    ]
    summary.append(figures_row(context["overall"], texts.t("drill_report.overall")))
    checklist = [
        [t["step"] + 1, t["text"], t["at"], names.get(t["actor"], t["actor"]), t["minutes"]]
        for t in context["checklist"]
    ]
    deltas = context.get("deltas") or {}
    return {
        "summary_columns": [col("department"), *(col(k) for k, _ in _FIGURES), col("actors")],
        "summary": summary,
        "checklist_columns": [col(k) for k in _CHECKLIST],
        "checklist": checklist,
        "delta_columns": [col("measure"), col("delta")],
        "deltas": [[key, value] for key, value in deltas.items()],
    }


def write_drill_report(
    context: dict[str, Any], texts: Texts, kind: DrillReportFormat, path: Path
) -> None:
    run = context["run"]
    title = texts.t("drill_report.title", run_id=run["id"], title=context["title"])
    tables = drill_rows(context, texts)
    if kind is DrillReportFormat.XLSX:
        _write_xlsx(title, tables, context, texts, path)
        return
    template = "drill_report.md.j2" if kind is DrillReportFormat.MD else "drill_export.html.j2"
    page = texts.render(template, **{**context, **tables, "title": title})
    path.write_text(page + "\n", encoding="utf-8")


def _write_xlsx(
    title: str, tables: dict[str, Any], context: dict[str, Any], texts: Texts, path: Path
) -> None:
    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = texts.t("drill_report.summary")[:31]
    summary.append([title])
    summary["A1"].font = HEADER_FONT
    summary.append([f"{context['started']} — {context['ended']}"])
    summary.append(tables["summary_columns"])
    for row in tables["summary"]:
        summary.append(row)
    if tables["deltas"]:
        summary.append([])
        summary.append([texts.t("drill_report.compared", run_id=context["previous_id"])])
        summary.append(tables["delta_columns"])
        for row in tables["deltas"]:
            summary.append(row)
    checklist = book.create_sheet(texts.t("drill_report.checklist")[:31])
    checklist.append(tables["checklist_columns"])
    for row in tables["checklist"]:
        checklist.append(row)
    book.save(path)
