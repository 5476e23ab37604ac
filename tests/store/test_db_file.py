"""The SQLite file holds citizens' personal data: only the bot's own user may read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from store.db import Database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_fault9_the_database_file_and_its_wal_and_shm_are_created_0600(
    tmp_path: Path,
) -> None:
    previous = os.umask(0o022)  # the usual umask: files would be world-readable
    try:
        path = tmp_path / "data" / "otklik.db"
        database = Database(f"sqlite+aiosqlite:///{path}")
        await database.upgrade()
        async with database.uow() as uow:  # a write: the WAL and its index exist now
            await uow.outbox.depth()
        try:
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(f.exists() for f in files)
            assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
            assert mode(path.parent) == 0o700  # the directory the bot created for it
        finally:
            await database.dispose()
    finally:
        os.umask(previous)


async def test_fault9_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "otklik.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        await database.upgrade()
        assert mode(path) == 0o600
        assert mode(Path(f"{path}-wal")) == 0o600
    finally:
        await database.dispose()
