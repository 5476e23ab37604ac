"""Reading an import file: rows in, validated mentions out, in batches.

A CSV or the first sheet of an .xlsx is streamed, each row mapped (bot.intake.mapping) and validated
like an API request (MentionIn). A row that cannot be imported comes out with its row number
as a spreadsheet shows it (titles are row 1) and its problems; the rest go on.

Reading a row costs about as much as storing it, so big files are read in a process of their
own (RowProcess) while the importing process stores: batches go over a pipe as flat tuples
(MentionIn.packed). Small files are read in place (RowsInPlace): a process would take longer
to start than it saves.

Light on purpose: the reading process imports this module, not the importer's.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import csv
import gc
import io
import os
import pickle
import signal
import struct
import sys
import traceback
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import IO, Any, Protocol

from pydantic import ValidationError

from bot.intake.mapping import ALL_FIELDS, REQUIRED_FIELDS, MappingError, RecordMapper
from bot.settings.connections import SourceMapping
from bot.settings.errors import error_path, with_input
from handlers.ingest.schema import MentionIn, Packed

DELIMITERS = (",", ";", "\t")

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


# --- reading ---------------------------------------------------------------------------------


@dataclass
class Table:
    """A file as column titles and a stream of (row number, values)."""

    titles: Sequence[object]  # the first row as read: a sheet's may hold numbers or blanks
    rows: Iterator[tuple[int, Sequence[object]]]
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


def file_size(path: Path) -> int:
    """Bytes in the file; 0 if there is none (open_table says what is wrong)."""
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0


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

    def rows() -> Iterator[tuple[int, Sequence[object]]]:
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


def _problems(error: ValidationError) -> list[str]:
    found = []
    for item in error.errors(include_url=False):
        where = error_path(item["loc"]) or "row"
        found.append(f"{where}: {with_input(item['msg'], item.get('input'))}")
    return found


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


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
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


# --- batches ---------------------------------------------------------------------------------

Reject = tuple[int, list[str], Sequence[object]]  # row number, problems, the row's values


@dataclass(frozen=True, slots=True)
class Opened:
    """What the importer learns about a file before its rows."""

    titles: list[str]
    notes: list[str]  # warnings about columns
    delimiter: str  # for the .rejected.csv
    total: int | None  # units of Batch.position, if known


@dataclass(frozen=True, slots=True)
class Batch:
    rows: int  # data rows read so far, blank ones included
    position: int  # how far into the file (bytes of a CSV, rows of a sheet)
    mentions: list[Packed]
    rejects: list[Reject]


class Reader:
    """A file opened for import: its titles checked against the mapping, its rows to come."""

    def __init__(
        self, path: Path, mapping: SourceMapping | None, tz: tzinfo, batch_size: int
    ) -> None:
        mapper = RecordMapper(mapping, tz)
        self._table = table = open_table(path)
        try:
            titles = _titles(table, path)
            notes, _ = _check_columns(mapper, titles, path)
        except BaseException:
            table.close()
            raise
        self.opened = Opened(titles, notes, table.delimiter, table.total)
        self._mapper = mapper.for_columns(titles)
        self._batch_size = batch_size

    def batches(self) -> Iterator[Batch]:
        """batch_size rows a batch, whatever becomes of them: a file of rejected rows still
        shows progress."""
        table, size = self._table, self._batch_size
        mentions: list[Packed] = []
        rejects: list[Reject] = []
        read = 0
        for number, values in table.rows:
            read += 1
            self._take(number, values, mentions, rejects)
            if not read % size:
                yield Batch(read, table.position(), mentions, rejects)
                mentions, rejects = [], []
        yield Batch(read, table.position(), mentions, rejects)

    def _take(
        self, number: int, values: Sequence[object], mentions: list[Packed], rejects: list[Reject]
    ) -> None:
        titles = self.opened.titles
        if not any(v is not None and v != "" for v in values):
            return  # a blank row: nothing to import, nothing wrong
        if len(values) > len(titles) and any(v not in (None, "") for v in values[len(titles) :]):
            rejects.append((number, [say("too_many_values")], values))
            return
        try:
            mapped = self._mapper(dict(zip(titles, values, strict=False)))
        except MappingError as error:
            rejects.append((number, _mapping_problems(error), values))
            return
        linked = mapped.pop("identities", None)
        try:
            item = _validate(mapped)
        except ValidationError as error:
            rejects.append((number, _problems(error), values))
            return
        if linked:
            name = item.author.name
            mentions.append(item.packed(tuple((i["channel"], i["id"], name) for i in linked)))
        else:
            mentions.append(item.packed())

    def close(self) -> None:
        self._table.close()


_validate = MentionIn.model_validate


class Rows(Protocol):
    """A file's batches, read in place or in a process of its own."""

    opened: Opened

    def batches(self) -> AsyncIterator[Batch]: ...
    async def close(self) -> None: ...


class RowsInPlace:
    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self.opened = reader.opened

    async def batches(self) -> AsyncIterator[Batch]:
        for batch in self._reader.batches():
            yield batch

    async def close(self) -> None:
        self._reader.close()


# --- the reading process ---------------------------------------------------------------------

_FRAME = struct.Struct(">Q")  # the length of the pickle that follows
_GO = b"go"
_PIPE_LIMIT = 4 << 20  # bytes the importer buffers from the pipe: a few batches
# `-c`, not `-m`: a module run as __main__ would be a second copy of this one, and batches
# pickled in it would name classes the importer cannot find.
_SERVE = "from handlers.ingest.import_rows import serve; serve()"
_PROJECT = str(Path(__file__).resolve().parents[2])


class ReaderFailed(RuntimeError):
    """The reading process ended without finishing the file and without saying why."""


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _FRAME.pack(len(data)) + data


def _read_frame(stream: IO[bytes]) -> Any:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None  # the importer closed the pipe
    return pickle.loads(stream.read(_FRAME.unpack(head)[0]))


def serve() -> None:
    """The reading process: (path, mapping, tz, batch_size) comes in on stdin, then "go";
    ("ready", Opened) or ("refused", message) goes out on stdout, then ("batch", Batch) …
    and ("done",), or ("failed", exception, traceback)."""
    # The importer decides what Ctrl-C stops; this process ends with its pipes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inbox, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the frames

    def send(*message: object) -> None:
        out.write(_frame(message))
        out.flush()

    try:
        job = _read_frame(inbox)
        if job is None:
            return
        path, mapping, tz, batch_size = job
        try:
            reader = Reader(path, mapping, tz, batch_size)
        except ImportSetupError as error:
            send("refused", str(error))
            return
        with contextlib.closing(reader), quiet_gc():
            send("ready", reader.opened)
            if _read_frame(inbox) != _GO:
                return  # the importer gave up before the rows
            for batch in reader.batches():
                send("batch", batch)
        send("done")
    except BrokenPipeError:
        os._exit(0)  # the importer is gone: leave without flushing into a closed pipe
    except Exception as error:
        try:
            pickle.dumps(error)
        except Exception:
            error = RuntimeError(f"{type(error).__name__}: {error}")
        send("failed", error, traceback.format_exc())


class RowProcess:
    """The importer's side of the reading process."""

    def __init__(self, process: asyncio.subprocess.Process, opened: Opened) -> None:
        self._process = process
        self.opened = opened
        self._errors = asyncio.ensure_future(_drain(process.stderr))

    @classmethod
    async def start(
        cls, path: Path, mapping: SourceMapping | None, tz: tzinfo, batch_size: int
    ) -> RowProcess:
        """Start reading `path`; raises ImportSetupError if the file cannot be imported. No
        row is read before `batches`."""
        # The importer's own code, wherever it was imported from.
        paths = [_PROJECT, *filter(None, [os.environ.get("PYTHONPATH")])]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _SERVE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
            limit=_PIPE_LIMIT,
        )
        rows = cls(process, Opened([], [], ",", None))
        try:
            assert process.stdin is not None
            process.stdin.write(_frame((path, mapping, tz, batch_size)))
            kind, *details = await rows._receive()
            if kind == "refused":
                raise ImportSetupError(details[0])
            rows.opened = details[0]
        except BaseException:
            await rows.close()
            raise
        return rows

    async def batches(self) -> AsyncIterator[Batch]:
        assert self._process.stdin is not None
        self._process.stdin.write(_frame(_GO))
        while True:
            kind, *details = await self._receive()
            if kind == "done":
                return
            yield details[0]

    async def _receive(self) -> tuple[Any, ...]:
        stream = self._process.stdout
        assert stream is not None
        try:
            size = _FRAME.unpack(await stream.readexactly(_FRAME.size))[0]
            message: tuple[Any, ...] = pickle.loads(await stream.readexactly(size))
        except asyncio.IncompleteReadError:
            code = await self._process.wait()
            said = (await self._errors).decode(errors="replace").strip()
            raise ReaderFailed(
                f"the import's reading process stopped (exit code {code})"
                + (f":\n{said}" if said else "")
            ) from None
        if message[0] == "failed":
            error, where = message[1], message[2]
            error.add_note(f"raised in the import's reading process:\n{where}")
            raise error
        return message

    async def close(self) -> None:
        process = self._process
        if process.stdin is not None:
            process.stdin.close()
        if process.returncode is None:
            process.kill()
        await process.wait()
        await self._errors


async def _drain(stream: asyncio.StreamReader | None) -> bytes:
    """What the reading process writes to stderr (only when something went badly wrong),
    read as it comes so the process never waits for the pipe."""
    return await stream.read() if stream is not None else b""
