"""SQLite is a single-process store: a second `otklik run` on the same file refuses to start,
says why (naming PostgreSQL), and changes nothing; the first goes on serving."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

import aiohttp

from store.db import Database, hold_sqlite_file
from tests.doubles.support import ROOT, newcomers_config
from tests.doubles.synapse import free_port

PATIENCE_S = 60.0


async def otklik_run(config: Path, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTKLIK_")}
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "handlers.cli", "run", "-c", str(config),
            cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip


def snapshot(directory: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.iterdir())
        if path.name.startswith("otklik")
    }


async def test_a_second_process_on_the_same_sqlite_file_refuses_to_start(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = newcomers_config(tmp_path, port)
    first = await otklik_run(config, tmp_path / "first.log")
    ready = f"http://127.0.0.1:{port}/sandbox"
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE_S
        while ready not in (tmp_path / "first.log").read_text(errors="replace"):
            assert first.returncode is None, (tmp_path / "first.log").read_text()[-3000:]
            assert loop.time() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            await asyncio.sleep(0.1)

        # The same config on another port: the database is what they would share.
        second_config = tmp_path / "second.yaml"
        second_config.write_text(
            config.read_text(encoding="utf-8").replace(f":{port}", f":{free_port()}"),
            encoding="utf-8",
        )
        second = await otklik_run(second_config, tmp_path / "second.log")
        assert await asyncio.wait_for(second.wait(), PATIENCE_S) == 2
        said = (tmp_path / "second.log").read_text(errors="replace")
        assert "another Otklik process is running on the SQLite database" in said, said
        assert "PostgreSQL" in said and "Traceback" not in said, said

        assert first.returncode is None  # the first is untouched and still serving
        async with aiohttp.ClientSession() as http, http.get(ready) as page:
            assert page.status == 200
    finally:
        if first.returncode is None:
            first.terminate()
        await asyncio.wait_for(first.wait(), PATIENCE_S)


async def test_the_refused_process_changes_nothing(tmp_path: Path) -> None:
    config = newcomers_config(tmp_path, free_port())
    url = f"sqlite+aiosqlite:///{tmp_path}/otklik.db"
    database = Database(url)
    await database.upgrade()
    await database.engine.dispose()
    before = snapshot(tmp_path)
    # What a running bot holds: the same lock, taken the same way.
    held = hold_sqlite_file(url)
    assert held is not None
    try:
        refused = await otklik_run(config, tmp_path / "refused.log")
        assert await asyncio.wait_for(refused.wait(), PATIENCE_S) == 2
    finally:
        os.close(held)
    assert snapshot(tmp_path) == before
    assert "PostgreSQL" in (tmp_path / "refused.log").read_text(errors="replace")
