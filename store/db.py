"""Engine, sessions and migrations for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util import CommandError
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from store import crypto
from store.uow import SqlUnitOfWork, WriteGate

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, cache_mib: int | None = None) -> None:
    # WAL lets readers work while the worker writes; FKs are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    if cache_mib is not None:
        cursor.execute(f"PRAGMA cache_size=-{int(cache_mib) * 1024}")  # negative: KiB
    cursor.close()


def private_file(path: Path) -> None:
    """The SQLite file, created readable by the bot's user alone (0600): it holds citizens'
    personal data. SQLite gives its -wal and -shm files the database file's mode. A file an
    older version left world-readable is tightened."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        # Not ours to change (another user's file, read only): SQLite decides as before.
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if part.stat().st_mode & 0o077:
                part.chmod(0o600)


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (a URI filename names it after "file:"); None for
    PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    uri = bool(parsed.query.get("uri"))
    return Path(parsed.database.removeprefix("file:") if uri else parsed.database)


class StoreInUse(Exception):
    """Another process runs the bot on this SQLite file."""


def hold_sqlite_file(url: str) -> int | None:
    """Claim an SQLite database for this process alone, before anything touches it: the
    descriptor returned holds an exclusive lock until the process ends. SQLite's own locks
    are per transaction; two bots on one file would each post every card. flock() locks are
    apart from SQLite's POSIX locks, so the bot's own connections are not in the way.
    None for PostgreSQL, where several instances are expected."""
    path = sqlite_file(url)
    if path is None or make_url(url).query.get("mode") == "ro":
        return None
    private_file(path)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise StoreInUse(
            f"another Otklik process is running on the SQLite database {path}. SQLite is a "
            "single-process store: stop the other process, or move to PostgreSQL to run "
            'several instances (README, "Running several instances").'
        ) from None
    return descriptor


def alembic_config(url: str | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _json_text(value: Any) -> str:
    # orjson: every event, outbox item and timer carries a JSON payload, and the stdlib's
    # encoder and decoder were a fifth of the SLA clock's time firing a burst. Non-string
    # keys become strings, as the stdlib makes them.
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _known_revision(revision: str) -> bool:
    scripts = ScriptDirectory.from_config(alembic_config())
    try:
        return scripts.get_revision(revision) is not None
    except (ResolutionError, CommandError):
        return False


class Database:
    def __init__(
        self,
        url: str,
        echo: bool = False,
        *,
        sqlite_cache_mib: int | None = None,
        keyring: crypto.Keyring | None = None,
        **engine_options: Any,
    ) -> None:
        """`sqlite_cache_mib`: SQLite's page cache per connection (its default is 2 MiB).
        `keyring`: the keys for personal data; by default from the environment, or the key
        file beside an SQLite file (store/crypto.py, load_keyring)."""
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        path = sqlite_file(url)
        # A read-only file (`file:/path?mode=ro`, with uri=true) is opened as it is, never created.
        if path is not None and parsed.query.get("mode") != "ro":
            private_file(path)
        if not crypto.pinned():
            crypto.install(keyring or crypto.load_keyring(url, os.environ))
        self.keyring = crypto.keyring()
        if not self.is_sqlite:
            # The connection returned last is taken first: the few a steady load needs stay in
            # use, each with its prepared statements, instead of every pooled one in turn
            # preparing each statement again.
            engine_options.setdefault("pool_use_lifo", True)
        self.engine: AsyncEngine = create_async_engine(
            url,
            echo=echo,
            pool_pre_ping=not self.is_sqlite,
            json_serializer=_json_text,
            json_deserializer=orjson.loads,
            **engine_options,
        )
        if self.is_sqlite:
            event.listen(
                self.engine.sync_engine,
                "connect",
                functools.partial(_sqlite_pragmas, cache_mib=sqlite_cache_mib),
            )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # PostgreSQL has row locks and many writers; SQLite has one writer at a time.
        self._gate = WriteGate() if self.is_sqlite else None

    def uow(self) -> SqlUnitOfWork:
        """A unit of work that may write: on SQLite it waits for its turn (WriteGate)."""
        return SqlUnitOfWork(self.sessions, self._gate)

    def reader(self) -> SqlUnitOfWork:
        """For long reads that should not hold writers up (digests, reports). On SQLite it
        skips the gate, so a write in it waits in SQLite's busy handler instead."""
        return SqlUnitOfWork(self.sessions)

    async def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations on this engine's connection."""
        await self._migrate(command.upgrade, revision)

    async def upgrade_at_start(self) -> str | None:
        """What a starting bot does: upgrade() to this release's head, unless a newer release
        has already migrated the database (a rolling upgrade: `otklik db upgrade` of the new
        release ran before its instances started, and its migrations let the old code run
        beside them). Then this one runs on the schema as it is, and the revision it does not
        know is returned, for a warning; None otherwise."""
        current = await self.current_revision()
        if current is not None and not _known_revision(current):
            return current
        await self.upgrade()
        return None

    async def downgrade(self, revision: str) -> None:
        await self._migrate(command.downgrade, revision)

    async def _migrate(self, step: Any, revision: str) -> None:
        def run(connection: Connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            step(cfg, revision)

        async with self.engine.connect() as conn:
            if not self.is_sqlite:
                async with conn.begin():
                    await conn.run_sync(run)
                return
            # SQLite alters a table by copying it. With foreign keys on, dropping the old copy
            # of a parent table deletes its children (drafts cascade from cases): SQLite's own
            # procedure turns them off (outside a transaction) and checks them afterwards.
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await conn.commit()
            try:
                async with conn.begin():
                    await conn.run_sync(run)
                    broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                    if broken:
                        raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
            finally:
                await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                await conn.commit()

    async def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        def read(connection: Connection) -> str | None:
            return MigrationContext.configure(connection).get_current_revision()

        async with self.engine.connect() as conn:
            return await conn.run_sync(read)

    async def dispose(self) -> None:
        await self.engine.dispose()
