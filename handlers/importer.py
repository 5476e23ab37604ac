"""`otklik import`: mentions from a .csv or .xlsx file, in bulk.

Rows are streamed, mapped (bot.mapping) and validated like API requests (MentionIn), and
stored in batches through bot.bulk: one transaction per batch. A malformed row is reported
with its row number as a spreadsheet shows it (titles are row 1) and skipped. A re-run counts
what is already stored as duplicates and changes nothing.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import gc
import io
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from bot.bulk import BulkIntake
from bot.clock import Clock, SystemClock
from bot.config import Config
from bot.directory import Directory
from bot.intake import MentionIntake
from bot.lemmas import Lemmatiser
from bot.mapping import (
    ALL_FIELDS,
    REQUIRED_FIELDS,
    MappingError,
    RecordMapper,
    check_mapping,
)
from bot.model import Identity, Mention, Priority
from bot.playbook import Playbook
from bot.ports import UnitOfWorkFactory
from bot.replies import ReplyCatalog
from bot.sentiment import SentimentClassifier, lexicon_dir, load_lexicon
from bot.services import CaseService
from bot.sla import plan_deadlines
from handlers.api import MentionIn
from store.db import Database

BATCH = 2_000
IMPORT_CACHE_MIB = 64  # SQLite's page cache for the import's connection
LISTED_REJECTS = 20  # the summary lists this many; the .rejected.csv has them all
DELIMITERS = (",", ";", "\t")
ROW_COLUMN, PROBLEMS_COLUMN = "import_row", "import_problems"

# Everything the command says, in one place (an admin tool: plain English).
MESSAGES = {
    "no_file": "{path}: file not found",
    "unreadable": "{path}: cannot read the file: {reason}",
    "bad_format": "{path}: only .csv and .xlsx files can be imported (got '{suffix}'); "
    "save the sheet as .xlsx or .csv",
    "not_xlsx": "{path}: not a readable .xlsx workbook ({reason})",
    "empty": "{path}: the file is empty; the first row must hold the column titles",
    "no_titles": "{path}: the first row must hold the column titles",
    "duplicate_title": "{path}: column title {title!r} appears twice in the first row",
    "bad_source": "--source {source!r}: use 1-64 characters without spaces "
    "(the source name stored with every mention, e.g. 'vk' or 'monitoring')",
    "unknown_mapping": "--mapping {name!r}: no such mapping in the config (defined: {known})",
    "bad_mapping": "mappings.{name}.{path}: {message}",
    "missing_column": "{path}: no column {title!r} for the required field {field}{hint}; "
    "the first row has: {titles}",
    "absent_column": "column {title!r} for {field} is not in the file: the field stays empty",
    "ignored_columns": "columns not imported: {titles}",
    "did_you_mean": " (did you mean {close!r}?)",
    "too_many_values": "more values than column titles",
    "reading": "Importing {name}",
    "summary": "{imported} imported, {duplicates} duplicates, {rejected} rejected "
    "of {rows} rows in {seconds:.1f} s ({rate:,.0f} rows/s)",
    "cases": "{cases} case(s) opened or joined for negative or urgent mentions",
    "unopened": "history: {unopened} negative mention(s) stored without cases; "
    "--open-cases opens cases for negative and urgent mentions",
    "rejected_head": "Rejected rows (row: problems):",
    "rejected_row": "  {row}: {problems}",
    "rejected_more": "  … and {more} more",
    "rejected_file": "All rejected rows, with their problems: {path}",
    "interrupted": "Interrupted: {imported} rows were imported; run the same command again "
    "to continue (rows already imported count as duplicates)",
}


def say(key: str, **values: Any) -> str:
    return MESSAGES[key].format(**values)


class ImportSetupError(Exception):
    """The file, the mapping or the options cannot be used: nothing was imported."""


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


# --- reading ---------------------------------------------------------------------------------


@dataclass
class Table:
    """A file as column titles and a stream of (row number, values)."""

    titles: list[str]
    rows: Iterator[tuple[int, list[Any]]]
    total: int | None  # units of `position` (bytes of a CSV, rows of a sheet), if known
    position: Callable[[], int]
    delimiter: str  # for the .rejected.csv: the input's own, or ';' (Excel in Russia)
    close: Callable[[], None]


def open_table(path: Path) -> Table:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ImportSetupError(say("no_file", path=path))
    if suffix == ".csv":
        return _open_csv(path)
    if suffix == ".xlsx":
        return _open_xlsx(path)
    raise ImportSetupError(say("bad_format", path=path, suffix=suffix or "no extension"))


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 (Excel's "Unicode text"), else Windows-1251: what
    Russian Excel and monitoring exports write. The whole file is checked, not a sample: a
    cp1251 letter on row 90,000 would otherwise stop the import half-way."""
    with path.open("rb") as raw:
        start = raw.read(4)
        if start.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        raw.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := raw.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "cp1251"
    return "utf-8"


def sniff_delimiter(sample: str) -> str:
    """The delimiter that splits the title row into most columns and the following rows into
    as many. csv.Sniffer guesses wrong on short samples with commas inside quoted text."""
    lines = sample.splitlines()[:50]
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        rows = [r for r in csv.reader(lines, delimiter=delimiter) if r]
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        body = rows[1:] or rows
        score = (sum(len(r) == width for r in body) / len(body), width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _open_csv(path: Path) -> Table:
    try:
        encoding = detect_encoding(path)
        raw = path.open("rb")
    except OSError as error:
        raise ImportSetupError(say("unreadable", path=path, reason=error.strerror)) from None
    total = path.stat().st_size
    # cp1251 leaves 0x98 undefined; one odd byte must not stop an import.
    errors = "replace" if encoding == "cp1251" else "strict"
    text = io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline="")
    sample = text.read(64 * 1024)
    if len(sample) == 64 * 1024:
        sample = sample.rpartition("\n")[0]  # the last line may be cut
    text.seek(0)
    delimiter = sniff_delimiter(sample)
    reader = csv.reader(text, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raw.close()
        raise ImportSetupError(say("empty", path=path))
    rows = ((number, row) for number, row in enumerate(reader, start=2))

    def position() -> int:
        return total if raw.closed else raw.tell()

    # `text` closes `raw` when it goes: the table holds on to it until the import is done.
    return Table(header, rows, total, position, delimiter, text.close)


def _open_xlsx(path: Path) -> Table:
    import openpyxl  # only for spreadsheets: it takes a while to import
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as error:
        raise ImportSetupError(say("not_xlsx", path=path, reason=error)) from None
    sheet = book.worksheets[0]
    stream = sheet.iter_rows(values_only=True)
    header = next(stream, None)
    if header is None:
        book.close()
        raise ImportSetupError(say("empty", path=path))
    done = [1]

    def rows() -> Iterator[tuple[int, list[Any]]]:
        for number, values in enumerate(stream, start=2):
            done[0] = number
            yield number, list(values)

    return Table(list(header), rows(), sheet.max_row, lambda: done[0], ";", book.close)


def _titles(table: Table, path: Path) -> list[str]:
    titles = ["" if t is None else str(t).strip() for t in table.titles]
    if not any(titles):
        raise ImportSetupError(say("no_titles", path=path))
    seen: set[str] = set()
    for title in titles:
        if title and title in seen:
            raise ImportSetupError(say("duplicate_title", path=path, title=title))
        seen.add(title)
    return titles


def _check_columns(
    mapper: RecordMapper, titles: list[str], path: Path
) -> tuple[list[str], list[str]]:
    """Refuse a file that lacks a required column (every row would be rejected); note mapped
    columns that are absent and columns nobody imports."""
    import difflib

    present = {t for t in titles if t}
    mapping = mapper.mapping
    constants = mapping.constants if mapping else {}
    mapped = mapping.fields if mapping else {}
    notes: list[str] = []
    for name in ALL_FIELDS:
        title = mapper.paths[name]
        if title in present or name in constants:
            continue
        if name in REQUIRED_FIELDS:
            close = difflib.get_close_matches(title, sorted(present), n=1)
            hint = say("did_you_mean", close=close[0]) if close else ""
            raise ImportSetupError(
                say(
                    "missing_column",
                    path=path,
                    title=title,
                    field=name,
                    hint=hint,
                    titles=", ".join(t for t in titles if t),
                )
            )
        if name in mapped:
            notes.append(say("absent_column", title=title, field=name))
    used = set(mapper.paths.values())
    ignored = [t for t in titles if t and t not in used]
    if ignored:
        notes.append(say("ignored_columns", titles=", ".join(ignored)))
    return notes, ignored


# --- importing -------------------------------------------------------------------------------


class _Rejects:
    """Rejected rows: the first few kept for the summary, all written next to the input."""

    def __init__(self, target: Path, titles: list[str], delimiter: str) -> None:
        self.target = target
        self._titles = titles
        self._delimiter = delimiter
        self._file: IO[str] | None = None
        self._writer: Any = None
        self.first: list[Rejected] = []
        self.count = 0

    def add(self, row: int, problems: list[str], values: list[Any]) -> None:
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


@contextlib.contextmanager
def _quiet_gc() -> Iterator[None]:
    """An import allocates a few dozen objects per row, and the collector's full passes
    would walk every object of the process each time: a fifth of the run. The long-lived
    set-up (playbook, lexicon, SQLAlchemy) is frozen out of the passes and young objects
    are collected less often; both are restored afterwards."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def rejected_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rejected.csv")


def _problems(error: ValidationError) -> list[str]:
    found = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "row"
        got = item.get("input")
        shown = ""
        if isinstance(got, str):
            shown = f" (got {got[:60]!r})"
        elif isinstance(got, int | float):
            shown = f" (got {got!r})"
        found.append(f"{where}: {item['msg']}{shown}")
    return found


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
    # SqlUnitOfWork is a UnitOfWork; mypy reads the Protocol's attributes as invariant.
    uow = cast(UnitOfWorkFactory, database.uow)
    cases = CaseService(
        uow,
        clock,
        directory,
        config.tz,
        replies=ReplyCatalog(playbook, config.locale, config.organisation, directory),
        coordination=config.coordination_department,
        policy=playbook.routing,
    )

    def plan(
        department: str, priority: Priority, opened_at: datetime, policy: str | None
    ) -> tuple[str, datetime, datetime, datetime]:
        name, due = plan_deadlines(playbook, department, priority, opened_at, config.tz, policy)
        return name, due.first_touch, due.answer, due.resolution

    # As App builds it: sources without sentiment are classified, keywords match lemmas.
    intake = MentionIntake(
        cases,
        playbook,
        clock,
        plan,
        classifier=SentimentClassifier(load_lexicon(lexicon_dir(config))),
        lemmatiser=Lemmatiser(),
    )
    return BulkIntake(uow, intake, cases, clock, playbook.routing.author_labels)


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
) -> ImportReport:
    """Import one file. Raises ImportSetupError before anything is stored if the file, the
    mapping or the options cannot be used."""
    if not source or len(source) > 64 or any(c.isspace() for c in source):
        raise ImportSetupError(say("bad_source", source=source))
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
    mapper = RecordMapper(chosen, config.tz)
    table = open_table(path)
    try:
        titles = _titles(table, path)
        report = ImportReport()
        report.notes, _ = _check_columns(mapper, titles, path)
        mapper = mapper.for_columns(titles)
        clock = clock or SystemClock()
        # A batch touches index pages all over the mentions table: beyond SQLite's 2 MiB
        # page cache each is read again from the file (a quarter of the import's SQL time).
        database = Database(config.database.url, sqlite_cache_mib=IMPORT_CACHE_MIB)
        try:
            await database.upgrade()
            bulk = build_bulk(config, playbook, database, clock)
            rejects = _Rejects(rejected_path(path), titles, table.delimiter)
            try:
                with _quiet_gc():
                    await _run(
                        table,
                        titles,
                        mapper,
                        bulk,
                        source,
                        open_cases,
                        clock,
                        report,
                        rejects,
                        progress,
                        batch_size,
                    )
            finally:
                report.first_rejects = rejects.first
                report.rejected_file = rejects.close()
        finally:
            await database.dispose()
    finally:
        table.close()
    return report


async def _run(
    table: Table,
    titles: list[str],
    mapper: RecordMapper,
    bulk: BulkIntake,
    source: str,
    open_cases: bool,
    clock: Clock,
    report: ImportReport,
    rejects: _Rejects,
    progress: OnBatch | None,
    batch_size: int,
) -> None:
    """Reading and storing overlap: while SQLite works on one batch in its thread, the next
    is parsed here. The queue holds one batch, so memory stays flat."""
    started = time.perf_counter()
    queue: asyncio.Queue[list[Mention] | None] = asyncio.Queue(maxsize=1)
    failure: list[BaseException] = []

    async def read() -> None:
        try:
            async for batch in _batches(
                table, titles, mapper, source, clock, report, rejects, batch_size
            ):
                await queue.put(batch)
        except Exception as error:  # raised again below, once the writer has stopped
            failure.append(error)
        await queue.put(None)

    reader = asyncio.create_task(read())
    try:
        while (batch := await queue.get()) is not None:
            result = await bulk.receive_many(batch, open_cases=open_cases)
            report.imported += result.stored
            report.duplicates += result.duplicates
            report.cases += result.cases
            report.unopened += result.unopened
            report.rejected = rejects.count
            report.seconds = time.perf_counter() - started
            if progress is not None:
                progress(report, table.position(), table.total)
    finally:
        if not reader.done():
            reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    if failure:
        raise failure[0]
    report.rejected = rejects.count
    report.seconds = time.perf_counter() - started


async def _batches(
    table: Table,
    titles: list[str],
    mapper: RecordMapper,
    source: str,
    clock: Clock,
    report: ImportReport,
    rejects: _Rejects,
    batch_size: int,
) -> AsyncIterator[list[Mention]]:
    width = len(titles)
    validate = MentionIn.model_validate
    batch: list[Mention] = []
    now = clock.now()
    for number, values in table.rows:
        report.rows += 1
        if not report.rows % 200:
            await asyncio.sleep(0)  # let the writer send its next statement to SQLite
        if not any(v is not None and v != "" for v in values):
            continue  # a blank row: nothing to import, nothing wrong
        if len(values) > width and any(v not in (None, "") for v in values[width:]):
            rejects.add(number, [say("too_many_values")], values)
            continue
        try:
            mapped = mapper(dict(zip(titles, values, strict=False)))
        except MappingError as error:
            rejects.add(number, _mapping_problems(error), values)
            continue
        linked = mapped.pop("identities", None)
        try:
            item = validate(mapped)
        except ValidationError as error:
            rejects.add(number, _problems(error), values)
            continue
        mention = item.to_domain(source, now)
        if linked:
            name = item.author.name
            mention = replace(
                mention, linked=tuple(Identity(i["channel"], i["id"], name) for i in linked)
            )
        batch.append(mention)
        if len(batch) >= batch_size:
            yield batch
            batch = []
            now = clock.now()
    if batch:
        yield batch


def _mapping_problems(error: MappingError) -> list[str]:
    """The mapping's problems, and MentionIn's about the fields that did map (a bad date and
    a bad URL in one row are both reported)."""
    problems = [f"{field}: {message}" for field, message in error.problems]
    failed = {field for field, _ in error.problems}
    try:
        MentionIn.model_validate(error.partial)
    except ValidationError as more:
        for item in _problems(more):
            if item.partition(":")[0] not in failed:
                problems.append(item)
    return problems


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
