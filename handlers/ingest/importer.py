"""`otklik import`: mentions from a .csv or .xlsx file, in bulk.

Rows are streamed, mapped (bot.intake.mapping) and validated like API requests (MentionIn) by
handlers.ingest.import_rows, in a process of its own for big files, and stored in batches through
bot.intake.bulk: one transaction per batch. A malformed row is reported with its row number as a
spreadsheet shows it (titles are row 1) and skipped. A re-run counts what is already stored
as duplicates and changes nothing.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from bot.cases.replies import ReplyCatalog
from bot.cases.service import CaseService
from bot.clock import Clock, SystemClock
from bot.intake.bulk import BulkIntake
from bot.intake.intake import MentionIntake
from bot.intake.lemmas import Lemmatiser
from bot.intake.mapping import check_mapping
from bot.intake.official import Officials
from bot.intake.sentiment.analyser import SentimentClassifier
from bot.intake.sentiment.lexicon import lexicon_dir, load_lexicon
from bot.intake.sentiment.model import load_model_classifier
from bot.model import Priority
from bot.settings.config import Config
from bot.settings.connections import reserved_source_name
from bot.settings.playbook import Playbook
from bot.sla.calendar import Deadlines, plan_deadlines
from bot.staff.directory import Directory
from handlers.ingest.import_rows import (
    MESSAGES,
    ImportSetupError,
    Reader,
    RowProcess,
    Rows,
    RowsInPlace,
    file_size,
    quiet_gc,
    say,
)
from handlers.ingest.schema import unpack
from store.db import Database

if TYPE_CHECKING:
    from _csv import Writer  # what csv.writer returns; the csv module does not name it

__all__ = ["MESSAGES", "ImportReport", "ImportSetupError", "import_file", "run_import", "say"]

BATCH = 5_000  # rows a transaction: per batch costs (statements, author cards) shrink with more
# From this size on a file is read in a process of its own: it starts in about 0.3 s.
READING_PROCESS_FROM = 1 << 20
IMPORT_CACHE_MIB = 64  # SQLite's page cache for the import's connection
LISTED_REJECTS = 20  # the summary lists this many; the .rejected.csv has them all
ROW_COLUMN, PROBLEMS_COLUMN = "import_row", "import_problems"


@dataclass(frozen=True, slots=True)
class Rejected:
    row: int  # as a spreadsheet numbers it: the titles are row 1
    problems: tuple[str, ...]


@dataclass
class ImportReport:
    rows: int = 0  # data rows read, blank ones included
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    cases: int = 0
    unopened: int = 0
    first_rejects: list[Rejected] = field(default_factory=list)
    rejected_file: Path | None = None
    notes: list[str] = field(default_factory=list)  # warnings about columns
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


# --- importing -------------------------------------------------------------------------------


class _Rejects:
    """Rejected rows: the first few kept for the summary, all written next to the input."""

    def __init__(self, target: Path, titles: list[str], delimiter: str) -> None:
        self.target = target
        self._titles = titles
        self._delimiter = delimiter
        self._file: IO[str] | None = None
        self._writer: Writer | None = None
        self.first: list[Rejected] = []
        self.count = 0

    def add(self, row: int, problems: list[str], values: Sequence[object]) -> None:
        self.count += 1
        if len(self.first) < LISTED_REJECTS:
            self.first.append(Rejected(row, tuple(problems)))
        if self._writer is None:
            # utf-8-sig: Excel then opens Cyrillic text correctly.
            self._file = self.target.open("w", encoding="utf-8-sig", newline="")
            self._writer = csv.writer(self._file, delimiter=self._delimiter)
            self._writer.writerow([ROW_COLUMN, PROBLEMS_COLUMN, *self._titles])
        cells = [
            "" if v is None else v.isoformat() if isinstance(v, datetime) else v for v in values
        ]
        self._writer.writerow([row, "; ".join(problems), *cells])

    def close(self) -> Path | None:
        if self._file is not None:
            self._file.close()
            return self.target
        # A clean run: a list left by an earlier run would describe rows that are now in.
        self.target.unlink(missing_ok=True)
        return None


def rejected_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rejected.csv")


def build_bulk(config: Config, playbook: Playbook, database: Database, clock: Clock) -> BulkIntake:
    """Services as App builds them, without transports: cards queued here are delivered by
    the running bot, to the chats its config enables."""
    configured = frozenset(
        name
        for name, enabled in (
            ("telegram", config.telegram_enabled),
            ("matrix", config.matrix_enabled),
        )
        if enabled
    )
    directory = Directory(config, configured)
    cases = CaseService(
        database.uow,
        clock,
        directory,
        config.tz,
        replies=ReplyCatalog(playbook, config.locale, config.organisation, directory),
        coordination=config.coordination_department,
        policy=playbook.routing,
    )

    def plan(
        department: str, priority: Priority, opened_at: datetime, policy: str | None
    ) -> tuple[str, Deadlines]:
        name, due = plan_deadlines(playbook, department, priority, opened_at, config.tz, policy)
        return name, due

    # As App builds it: sources without sentiment are classified, keywords match lemmas.
    classifier = SentimentClassifier(load_lexicon(lexicon_dir(config)))
    intake = MentionIntake(
        cases,
        playbook,
        clock,
        plan,
        classifier=classifier,
        lemmatiser=Lemmatiser(),
        officials=Officials.from_config(config),
        model=load_model_classifier(playbook, classifier, config.model.path),
    )
    return BulkIntake(database.uow, intake, cases, clock, playbook.routing.author_labels)


OnBatch = Callable[[ImportReport, int, int | None], None]  # report so far, position, total


async def import_file(
    path: Path,
    *,
    config: Config,
    playbook: Playbook,
    source: str,
    mapping: str | None = None,
    open_cases: bool = False,
    clock: Clock | None = None,
    progress: OnBatch | None = None,
    batch_size: int = BATCH,
    reading_process: bool | None = None,
) -> ImportReport:
    """Import one file. Raises ImportSetupError before anything is stored if the file, the
    mapping or the options cannot be used. `reading_process`: read the file in a process of
    its own (None: when it is big enough to gain from it)."""
    if not source or len(source) > 64 or any(c.isspace() for c in source):
        raise ImportSetupError(say("bad_source", source=source))
    reserved = reserved_source_name(source)
    if reserved is not None:  # rows must not pass for the bot's own messengers' mentions
        raise ImportSetupError(f"--source {reserved}")
    chosen = None
    if mapping is not None:
        chosen = config.mappings.get(mapping)
        if chosen is None:
            known = ", ".join(sorted(config.mappings)) or "none"
            raise ImportSetupError(say("unknown_mapping", name=mapping, known=known))
        problems = check_mapping(chosen)
        if problems:
            raise ImportSetupError(
                "\n".join(say("bad_mapping", name=mapping, path=p, message=m) for p, m in problems)
            )
    if reading_process is None:
        reading_process = file_size(path) >= READING_PROCESS_FROM
    # The reading process starts (and checks the file) while the database is made ready.
    rows: Rows
    if reading_process:
        rows = await RowProcess.start(path, chosen, config.tz, batch_size)
    else:
        rows = RowsInPlace(Reader(path, chosen, config.tz, batch_size))
    try:
        opened = rows.opened
        report = ImportReport(notes=list(opened.notes))
        clock = clock or SystemClock()
        # A batch touches index pages all over the mentions table: beyond SQLite's 2 MiB
        # page cache each is read again from the file (a quarter of the import's SQL time).
        database = Database(config.database.url, sqlite_cache_mib=IMPORT_CACHE_MIB)
        try:
            await database.upgrade()
            bulk = build_bulk(config, playbook, database, clock)
            rejects = _Rejects(rejected_path(path), opened.titles, opened.delimiter)
            try:
                with quiet_gc():
                    await _run(rows, bulk, source, open_cases, clock, report, rejects, progress)
            finally:
                report.first_rejects = rejects.first
                report.rejected_file = rejects.close()
        finally:
            await database.dispose()
    finally:
        await rows.close()
    return report


async def _run(
    rows: Rows,
    bulk: BulkIntake,
    source: str,
    open_cases: bool,
    clock: Clock,
    report: ImportReport,
    rejects: _Rejects,
    progress: OnBatch | None,
) -> None:
    started = time.perf_counter()
    async for batch in rows.batches():
        for number, problems, values in batch.rejects:
            rejects.add(number, problems, values)
        if batch.mentions:
            now = clock.now()
            mentions = [unpack(packed, source, now) for packed in batch.mentions]
            result = await bulk.receive_many(mentions, open_cases=open_cases)
            report.imported += result.stored
            report.duplicates += result.duplicates
            report.cases += result.cases
            report.unopened += result.unopened
        report.rows = batch.rows
        report.rejected = rejects.count
        report.seconds = time.perf_counter() - started
        if progress is not None:
            progress(report, batch.position, rows.opened.total)


# --- the command -----------------------------------------------------------------------------


def print_report(console: Console, report: ImportReport) -> None:
    for note in report.notes:
        console.print(note, highlight=False, soft_wrap=True)
    console.print(
        say(
            "summary",
            imported=report.imported,
            duplicates=report.duplicates,
            rejected=report.rejected,
            rows=report.rows,
            seconds=report.seconds,
            rate=report.rate,
        ),
        highlight=False,
        soft_wrap=True,
    )
    if report.cases:
        console.print(say("cases", cases=report.cases), highlight=False, soft_wrap=True)
    if report.unopened:
        console.print(say("unopened", unopened=report.unopened), highlight=False, soft_wrap=True)
    if report.first_rejects:
        console.print(say("rejected_head"), highlight=False, soft_wrap=True)
        for reject in report.first_rejects:
            problems = "; ".join(reject.problems)
            console.print(
                say("rejected_row", row=reject.row, problems=problems),
                highlight=False,
                soft_wrap=True,
            )
        if report.rejected > len(report.first_rejects):
            more = report.rejected - len(report.first_rejects)
            console.print(say("rejected_more", more=more), highlight=False, soft_wrap=True)
    if report.rejected_file is not None:
        console.print(
            say("rejected_file", path=report.rejected_file), highlight=False, soft_wrap=True
        )


def run_import(
    config: Config,
    playbook: Playbook,
    path: Path,
    *,
    source: str,
    mapping: str | None,
    open_cases: bool,
    out: Console,
    err: Console,
) -> int:
    """The `otklik import` command: 0 when the run completed (rejected rows included), 2 when
    the file or the options cannot be used."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=out,
        disable=not out.is_terminal,
        transient=True,
    )
    task = bar.add_task(say("reading", name=path.name), total=None, counts="")
    report = ImportReport()

    def advance(current: ImportReport, position: int, total: int | None) -> None:
        nonlocal report
        report = current
        counts = f"{current.imported:,} new · {current.duplicates:,} dup · {current.rejected:,} bad"
        bar.update(task, completed=position, total=total, counts=counts)

    try:
        with bar:
            report = asyncio.run(
                import_file(
                    path,
                    config=config,
                    playbook=playbook,
                    source=source,
                    mapping=mapping,
                    open_cases=open_cases,
                    progress=advance,
                )
            )
    except ImportSetupError as error:
        err.print(str(error), highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print(say("interrupted", imported=report.imported), highlight=False, soft_wrap=True)
        return 130
    print_report(out, report)
    return 0
