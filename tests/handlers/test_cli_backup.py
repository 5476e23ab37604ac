"""`otklik backup` and `otklik restore`: a live SQLite database backed up while the bot holds
it open, restored into a fresh directory, the same cases and threads after."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from click.testing import Result
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import ActionRequest
from bot.cases.service import CaseService, CaseThread
from bot.clock import FrozenClock
from bot.model import Action, Author, DeptRole
from bot.staff.directory import Directory
from bot.staff.rights import Actor
from handlers.cli import app
from store.db import Database, alembic_config
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP, POSTGRES_URL
from tests.doubles.support import make_config, make_mention

runner = CliRunner()
SPEC = Actor("spec", "Анна Иванова", {"housing": frozenset({DeptRole.SPECIALIST})})

# The newest revision: a restore ends there, whatever migrations are added later.
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def otklik(*args: str) -> Result:
    return runner.invoke(app, list(args))


def said(result: Result) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join(result.output.split())


async def otklik_beside(*args: str) -> Result:
    """The command from a test that runs an event loop itself (the command runs its own)."""
    return await asyncio.to_thread(otklik, *args)


def _services(config_dir: Path, clock: FrozenClock) -> tuple[Database, CaseService, Path]:
    """The live bot's store and case service, as App builds them, on <config_dir>/otklik.db."""
    config_dir.mkdir(parents=True, exist_ok=True)
    config = make_config(config_dir, "sqlite+aiosqlite:///otklik.db")  # beside the config
    database = Database(config.database.url)
    cases = CaseService(database.uow, clock, Directory(config, frozenset({"telegram"})), config.tz)
    return database, cases, config_dir / "config.yaml"


async def _counts(database: Database) -> dict[str, int]:
    async with database.engine.connect() as conn:
        return {
            table: (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
            for table in ("cases", "mentions", "events", "authors")
        }


async def test_a_backup_taken_while_the_bot_writes_restores_into_a_fresh_directory(
    tmp_path: Path, clock: FrozenClock
) -> None:
    live, cases, live_config = _services(tmp_path / "live", clock)
    await live.upgrade()
    try:
        texts = ["Третий день нет отопления", "Опять нет горячей воды", "Лифт стоит неделю"]
        for n, complaint in enumerate(texts):
            opened = await cases.intake(
                make_mention(str(n), clock.now(), text=complaint), CaseOpening("housing")
            )
            assert opened.case is not None
        # The same author again: a second mention on the first case.
        await cases.intake(
            make_mention("3", clock.now(), text="Когда дадут тепло?", author="id-0"),
            CaseOpening("housing"),
        )
        assert (await cases.act(1, ActionRequest(Action.TAKE), SPEC)).ok
        drafted = await cases.act(1, ActionRequest(Action.DRAFT, text="Бригада выехала"), SPEC)
        assert drafted.ok
        before = await cases.thread(1)
        assert before is not None and len(before.mentions) == 2 and before.case.drafts
        counts = await _counts(live)

        backup = tmp_path / "backups" / "otklik.db"
        # A write in progress while the backup runs: the copy has what was committed, whole.
        async with live.uow() as uow:
            late = make_mention("late", clock.now(), text="Ещё не сохранено")
            author = await uow.authors.add(Author(None, "Пётр", (late.author,)))
            await uow.mentions.add(replace(late, author_id=author.id))
            made = await otklik_beside("backup", str(backup), "-c", str(live_config))
            await uow.commit()
        assert made.exit_code == 0, made.output
        assert f"revision {HEAD}" in said(made)
        assert "NOT in the backup" in said(made) and "OTKLIK_DATA_KEY" in said(made)
        assert backup.stat().st_mode & 0o777 == 0o600
        assert _beside(backup) == []  # one self-contained file, no -wal or -shm
    finally:
        await live.dispose()

    fresh, fresh_cases, fresh_config = _services(tmp_path / "fresh", clock)
    try:
        restored = await otklik_beside("restore", str(backup), "-c", str(fresh_config))
        assert restored.exit_code == 0, restored.output
        assert await _counts(fresh) == counts  # the late mention was not committed yet
        after = await fresh_cases.thread(1)
        assert after is not None
        _same_thread(after, before)
        assert after.case.drafts[-1].text == "Бригада выехала"
        assert after.author is not None and after.author.display_name == "Пётр Сидоров"
        async with fresh.reader() as uow:
            assert (await uow.events.verify()).ok  # the hash chain came across intact

        again = await otklik_beside("restore", str(backup), "-c", str(fresh_config))
        assert again.exit_code == 1 and "--force" in said(again)  # it holds data now
        forced = await otklik_beside("restore", str(backup), "--force", "-c", str(fresh_config))
        assert forced.exit_code == 0, forced.output
        assert await _counts(fresh) == counts
    finally:
        await fresh.dispose()


def _beside(path: Path) -> list[str]:
    return [p.name for p in path.parent.iterdir() if p != path]


def _same_thread(after: CaseThread, before: CaseThread) -> None:
    assert after.case == before.case
    assert after.events == before.events
    assert [m.text for m in after.mentions] == [m.text for m in before.mentions]


def test_restore_refuses_what_is_not_an_otklik_backup(tmp_path: Path) -> None:
    make_config(tmp_path, "sqlite+aiosqlite:///otklik.db")
    config = str(tmp_path / "config.yaml")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a database", encoding="utf-8")
    refused = otklik("restore", str(text_file), "-c", config)
    assert refused.exit_code == 1 and "not an SQLite database" in said(refused)

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    refused = otklik("restore", str(other), "-c", config)
    assert refused.exit_code == 1 and "not an Otklik database" in said(refused)

    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        db.execute("INSERT INTO alembic_version VALUES ('9999')")
    refused = otklik("restore", str(newer), "-c", config)
    assert refused.exit_code == 1 and "newer version" in said(refused)
    assert not (tmp_path / "otklik.db").exists() or not _has_rows(tmp_path / "otklik.db")


def _has_rows(path: Path) -> bool:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0


async def test_an_older_backup_is_migrated_to_head_on_restore(tmp_path: Path) -> None:
    old = Database(f"sqlite+aiosqlite:///{tmp_path / 'old' / 'otklik.db'}")
    await old.upgrade("0012")
    await old.dispose()
    backup = tmp_path / "old.backup"
    make_config(tmp_path / "old", "sqlite+aiosqlite:///otklik.db")
    made = await otklik_beside("backup", str(backup), "-c", str(tmp_path / "old" / "config.yaml"))
    assert made.exit_code == 0 and "revision 0012" in said(made), made.output
    (tmp_path / "new").mkdir()
    make_config(tmp_path / "new", "sqlite+aiosqlite:///otklik.db")
    restored = await otklik_beside(
        "restore", str(backup), "-c", str(tmp_path / "new" / "config.yaml")
    )
    assert restored.exit_code == 0, restored.output
    assert f"revision 0012, now {HEAD}" in said(restored)


def test_restore_without_the_keys_refuses_and_makes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTKLIK_DATA_KEY")
    monkeypatch.delenv("OTKLIK_INDEX_KEY")
    make_config(tmp_path, "sqlite+aiosqlite:///otklik.db")
    backup = tmp_path / "some.backup"
    backup.write_bytes(b"")
    refused = otklik("restore", str(backup), "-c", str(tmp_path / "config.yaml"))
    assert refused.exit_code == 2
    assert "otklik.db.keys" in said(refused) and "OTKLIK_DATA_KEY" in said(refused)
    assert not (tmp_path / "otklik.db.keys").exists()  # no new keys to meet old data
    assert not (tmp_path / "otklik.db").exists()


@pytest.mark.postgres
async def test_postgresql_is_backed_up_with_pg_dump(tmp_path: Path) -> None:
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    name = f"otklik_backup_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        database = Database(url)
        await database.upgrade()
        await database.dispose()
        make_config(tmp_path, url)
        dump = tmp_path / "otklik.pgdump"
        made = await otklik_beside("backup", str(dump), "-c", str(tmp_path / "config.yaml"))
        assert made.exit_code == 0, made.output
        assert dump.read_bytes()[:5] == b"PGDMP" and dump.stat().st_mode & 0o777 == 0o600
        told = await otklik_beside("restore", str(dump), "-c", str(tmp_path / "config.yaml"))
        assert told.exit_code == 1 and "pg_restore" in said(told)  # says how, does nothing
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
