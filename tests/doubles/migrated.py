"""A fresh database at the head revision for a test, copied instead of migrated: the whole
Alembic chain costs 0.5-1.5 s of CPU per test on SQLite, a copy a few milliseconds.

The chain is run once per process into a template file; each test gets its own copy, made as
the bot makes its file (0600). The migrations themselves are still run from an empty database
where that is the point (tests/store/test_migration_*.py, test_db_file.py, the CLI's upgrade),
and whoever opens a copy still runs `upgrade()`, which finds it at head.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import make_url

from store.db import Database

_template: Path | None = None


async def _migrated_template() -> Path:
    global _template
    if _template is None:
        folder = Path(tempfile.mkdtemp(prefix="otklik-migrated-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = folder / "head.db"
        database = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await database.upgrade()
        finally:
            await database.dispose()  # the last connection checkpoints the WAL into the file
        _template = path
    return _template


async def migrated_sqlite(path: Path) -> None:
    """Put a database at the head revision at `path`, unless a file is there already (a test
    that restarts the bot keeps its data)."""
    _copy_unless_there(await _migrated_template(), path)


def _copy_unless_there(template: Path, path: Path) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(descriptor, "wb") as copy:
        copy.write(template.read_bytes())


async def migrated_sqlite_url(url: str) -> None:
    """migrated_sqlite for a sqlite+aiosqlite URL (anything else is left alone)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        await migrated_sqlite(Path(parsed.database))
