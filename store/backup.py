"""`otklik backup` and `otklik restore`.

SQLite: SQLite's online backup API (sqlite3's Connection.backup) copies the database in one
step under a read transaction, so the copy is consistent while the bot keeps writing (in WAL
mode a reader never blocks the writer). Copying the file itself is not safe: the newest pages
may still be in the -wal file. The copy is one self-contained file (journal mode DELETE).

PostgreSQL: pg_dump does the same job better than we could; `backup` runs it when it is on
PATH (custom format, the URL's host, port, user and database; the password through
PGPASSWORD, never the command line) and otherwise says how. Restoring a dump is pg_restore's
work, with the bot stopped; the next start (or `otklik db upgrade`) runs the migrations.

Personal data is encrypted with keys that are not in the database (store/crypto.py): a
backup without its keys cannot be read, and that is said every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import make_url

from store import crypto
from store.db import alembic_config, private_file
from store.rotation import encrypted_columns

_SQLITE_MAGIC = b"SQLite format 3\x00"
# Rows in any of these make a database "not empty": restoring over it needs --force.
_CONTENT_TABLES = ("mentions", "cases", "events", "authors")
_SAMPLES_PER_COLUMN = 3


class BackupError(Exception):
    """The backup or restore cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class SqliteBackup:
    path: Path
    revision: str
    size: int


# --- SQLite: backup ---------------------------------------------------------------------------


async def backup_sqlite(source: Path, target: Path) -> SqliteBackup:
    """Copy the live database at `source` to `target` (mode 0600), in a worker thread."""
    return await asyncio.to_thread(_backup_sqlite, source, target)


def _backup_sqlite(source: Path, target: Path) -> SqliteBackup:
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if target.resolve() == source.resolve():
        raise BackupError("the backup file is the database itself")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    private_file(partial)  # it holds what the database holds: 0600 from the first byte
    try:
        with (
            contextlib.closing(sqlite3.connect(source, timeout=30)) as live,
            contextlib.closing(sqlite3.connect(partial)) as copy,
        ):
            # pages=-1 (the default): all pages in one step, one consistent snapshot.
            live.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal beside it
            revision = _revision(copy)
            if revision is None:
                raise BackupError(f"{source} is not an Otklik database (no alembic revision)")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return SqliteBackup(target, revision, target.stat().st_size)


# --- SQLite: restore --------------------------------------------------------------------------


def inspect_backup(file: Path) -> str:
    """The Alembic revision of an Otklik backup; BackupError if it is not one, or is from a
    newer Otklik than this one (its migrations are unknown here)."""
    try:
        with file.open("rb") as handle:
            magic = handle.read(len(_SQLITE_MAGIC))
    except OSError as error:
        raise BackupError(f"cannot read {file}: {error.strerror}") from None
    if magic != _SQLITE_MAGIC:
        hint = " (a pg_dump file? restore it with pg_restore)" if magic[:5] == b"PGDMP" else ""
        raise BackupError(f"{file} is not an SQLite database{hint}")
    with contextlib.closing(sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)) as db:
        revision = _revision(db)
    if revision is None:
        raise BackupError(f"{file} is not an Otklik database (no alembic revision)")
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        known = None
    if known is None:
        raise BackupError(
            f"{file} is at database revision {revision}, which this Otklik does not know: "
            "it was made by a newer version; restore it with that version"
        )
    return revision


def has_content(path: Path) -> bool:
    """Whether the database at `path` holds any mention, case, event or author."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return any(
            db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None
            for table in _CONTENT_TABLES
            if table in tables
        )


def check_keys(file: Path, keyring: crypto.Keyring) -> None:
    """BackupError unless `keyring` opens the encrypted values sampled from the backup."""
    with contextlib.closing(sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, columns in encrypted_columns().items():
            if table.name not in tables:
                continue
            # A backup of an older revision may keep them in other columns (0020: a
            # mention's values in one record): what it has of them is sampled.
            present = {row[1] for row in db.execute(f"PRAGMA table_info({table.name})")}
            for column in (c for c in columns if c in present):
                rows = db.execute(
                    f"SELECT {column} FROM {table.name} "
                    f"WHERE {column} IS NOT NULL LIMIT {_SAMPLES_PER_COLUMN}"
                ).fetchall()
                for (value,) in rows:
                    try:
                        if isinstance(value, bytes):
                            keyring.decrypt_bytes(value)
                        else:
                            keyring.decrypt(str(value))
                    except crypto.KeyringError as error:
                        raise BackupError(
                            f"the keys ({keyring.origin}) do not open the backup's personal "
                            f"data ({table.name}.{column}: {error}): restore with the keys the "
                            "backed-up database was encrypted with"
                        ) from None


def restore_sqlite(file: Path, target: Path, keyring: crypto.Keyring, *, force: bool) -> str:
    """Put the backup `file` in place of the database at `target`; its revision. The bot must
    be stopped. The caller then migrates it to head."""
    revision = inspect_backup(file)
    if file.resolve() == target.resolve():
        raise BackupError("the backup file is the database itself")
    if has_content(target) and not force:
        raise BackupError(
            f"{target} already holds data: stop the bot and add --force to replace it"
        )
    check_keys(file, keyring)
    private_file(target)
    with (
        contextlib.closing(sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)) as src,
        contextlib.closing(sqlite3.connect(target, timeout=30)) as dst,
    ):
        # Through SQLite, not a file copy: an old -wal beside the target is dealt with too.
        src.backup(dst)
    return revision


def _revision(db: sqlite3.Connection) -> str | None:
    try:
        row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return None if row is None else str(row[0])


# --- PostgreSQL -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgCommand:
    """A pg_dump or pg_restore call: the arguments and the environment it needs."""

    args: list[str]
    env: dict[str, str]

    def shown(self) -> str:
        """The command as a person would type it (the password left out)."""
        return " ".join(self.args)


def pg_command(program: str, url: str, *extra: str) -> PgCommand:
    """`program` (pg_dump, pg_restore) pointed at the database of a postgresql+asyncpg URL."""
    parsed = make_url(url)
    args = [program]
    if parsed.host:
        args += ["--host", parsed.host]
    if parsed.port:
        args += ["--port", str(parsed.port)]
    if parsed.username:
        args += ["--username", parsed.username]
    args += ["--dbname", parsed.database or "postgres", *extra]
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    return PgCommand(args, {str(k): str(v) for k, v in env.items()})


def pg_dump_available() -> bool:
    return shutil.which("pg_dump") is not None


async def pg_dump(url: str, target: Path, environ: Mapping[str, str]) -> None:
    """pg_dump of the database at `url` into `target` (custom format, for pg_restore)."""
    command = pg_command("pg_dump", url, "--format=custom", "--file", str(target))

    def run() -> subprocess.CompletedProcess[str]:
        private_file(target)  # pg_dump keeps an existing file's mode: 0600 from the start
        done = subprocess.run(
            command.args,
            env={**environ, **command.env},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            target.unlink(missing_ok=True)
        return done

    done = await asyncio.to_thread(run)
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed ({done.returncode}): {done.stderr.strip()}")
