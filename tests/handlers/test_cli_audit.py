"""`otklik audit verify` and `otklik audit export` as an administrator meets them, and the
audit trail over the API (GET /api/v1/events)."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import aiohttp
import pytest
from openpyxl import load_workbook
from sqlalchemy import text
from typer.testing import CliRunner

from bot.cases.grouping import CaseOpening
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.model import Event, EventKind, Identity
from bot.settings.config import load_config
from bot.settings.playbook import load_playbook
from bot.staff.directory import Directory
from handlers.app import App
from handlers.cli import app
from store.db import Database
from tests.doubles.api_app import running_api
from tests.doubles.support import API_TOKENS, make_mention
from tests.handlers.test_cli import example_copy

runner = CliRunner()
MON = {"Authorization": f"Bearer {API_TOKENS['MON_TOKEN']}"}  # scopes ingest and read
FORMS = {"Authorization": f"Bearer {API_TOKENS['FORMS_TOKEN']}"}  # ingest only
# Moscow days: 20 November from 21:00 UTC on the 19th.
DAY1 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)


def event(at: datetime, n: int) -> Event:
    return Event(None, at, f"staff-{n}", EventKind.DENIED, None, None, {"n": n, "name": "Ольга"})


async def _seed(url: str) -> None:
    database = Database(url)
    try:
        await database.upgrade()
        async with database.uow() as uow:
            await uow.events.append([event(DAY1, 1), event(DAY1 + timedelta(hours=1), 2)])
            await uow.events.append([event(DAY2, 3)])
            await uow.commit()
    finally:
        await database.dispose()


async def _tamper(url: str) -> None:
    database = Database(url)
    try:
        async with database.engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER events_refuse_update"))
            await conn.execute(text("UPDATE events SET actor = 'nobody' WHERE id = 2"))
    finally:
        await database.dispose()


def test_audit_verify_passes_then_names_the_tampered_event(tmp_path: Path) -> None:
    config = example_copy(tmp_path)
    url = f"sqlite+aiosqlite:///{tmp_path}/otklik.db"
    asyncio.run(_seed(url))
    result = runner.invoke(app, ["audit", "verify", "-c", str(config)], env={})
    assert result.exit_code == 0, result.output
    assert "audit chain OK: 3 event(s)" in result.output

    asyncio.run(_tamper(url))
    result = runner.invoke(app, ["audit", "verify", "-c", str(config)], env={})
    assert result.exit_code == 1
    assert "BROKEN at event 2" in result.output and "1 event(s) before it" in result.output


def test_audit_export_in_each_format(tmp_path: Path) -> None:
    config = example_copy(tmp_path)
    asyncio.run(_seed(f"sqlite+aiosqlite:///{tmp_path}/otklik.db"))

    def export(fmt: str, last: str = "2026-11-20") -> Path:
        path = tmp_path / f"audit.{fmt}"
        args = ["audit", "export", "--from", "2026-11-20", "--to", last, "--format", fmt]
        result = runner.invoke(app, [*args, "-o", str(path), "-c", str(config)], env={})
        assert result.exit_code == 0, result.output
        return path

    lines = export("jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["id"] for r in rows] == [1, 2]  # the 21st is outside the period
    assert rows[0]["payload"] == {"n": 1, "name": "Ольга"} and rows[0]["kind"] == "denied"
    assert rows[1]["prev_hash"] == rows[0]["hash"] and "nonce" not in rows[0]
    assert rows[0]["at"] == "2026-11-20T09:00:00+00:00"

    with export("csv", last="2026-11-21").open(encoding="utf-8", newline="") as file:
        table = list(csv.DictReader(file))
    assert [r["id"] for r in table] == ["1", "2", "3"]
    assert json.loads(table[2]["payload"]) == {"n": 3, "name": "Ольга"}
    assert table[1]["hash"] == rows[1]["hash"]

    sheet = load_workbook(export("xlsx")).active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][:5] == ("id", "at", "case_id", "actor", "kind")
    assert [v[0] for v in values[1:]] == [1, 2]
    assert values[1][1] == datetime(2026, 11, 20, 9, 0)  # a date cell, in UTC
    assert values[2][9] == rows[1]["hash"]

    result = runner.invoke(
        app,
        ["audit", "export", "--from", "2026-11-20", "--to", "2026-11-20", "--format", "pdf"],
        env={},
    )
    assert result.exit_code == 2 and "jsonl, csv, xlsx" in result.output


@pytest.fixture
async def running(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> AsyncIterator[tuple[App, str]]:
    async with running_api(tmp_path, sqlite_url, clock) as started:
        yield started


async def test_api_pages_the_audit_trail_for_read_tokens_only(running: tuple[App, str]) -> None:
    app_, base = running
    async with app_.database.uow() as uow:
        await uow.events.append([event(DAY1 + timedelta(minutes=n), n) for n in range(1, 6)])
        await uow.commit()
    async with aiohttp.ClientSession() as http:
        seen: list[dict[str, object]] = []
        since = 0
        while True:
            async with http.get(
                f"{base}/api/v1/events", params={"since": since, "limit": 2}, headers=MON
            ) as response:
                assert response.status == 200
                body = await response.json()
            if not body["events"]:
                assert body["next_since"] == since
                break
            assert len(body["events"]) <= 2
            seen += body["events"]
            since = body["next_since"]
        assert [e["payload"]["n"] for e in seen] == [1, 2, 3, 4, 5]
        assert [e["id"] for e in seen] == sorted(e["id"] for e in seen)
        assert all(b["prev_hash"] == a["hash"] for a, b in pairwise(seen))

        async with http.get(f"{base}/api/v1/events", headers=FORMS) as response:
            assert response.status == 403  # an ingest-only token reads nothing
        async with http.get(f"{base}/api/v1/events") as response:
            assert response.status == 401
        for query in ({"limit": "0"}, {"limit": "1001"}, {"since": "-1"}, {"since": "9" * 5000}):
            async with http.get(f"{base}/api/v1/events", params=query, headers=MON) as response:
                assert response.status == 422, query
        async with http.get(f"{base}/api/v1/openapi.json") as response:
            paths = (await response.json())["paths"]
        assert "read" in paths["/api/v1/events"]["get"]["summary"]


async def _seed_author(config_path: Path) -> None:
    config = load_config(config_path)
    database = Database(config.database.url)
    try:
        await database.upgrade()
        clock = FrozenClock(DAY1)
        cases = CaseService(
            database.uow,
            clock,
            Directory(config),
            config.tz,
            coordination=config.coordination_department,
            policy=load_playbook(config.playbooks.path).routing,
        )
        mention = replace(
            make_mention("1", DAY1, text="Опять прорвало трубу на улице Ясеневой, дом 12"),
            author=Identity("vk", "id-zinaida-55", "Зинаида Ферапонтова"),
        )
        await cases.intake(mention, CaseOpening("housing"))
    finally:
        await database.dispose()


def test_authors_forget_erases_once_and_the_chain_still_verifies(tmp_path: Path) -> None:
    config = example_copy(tmp_path)
    asyncio.run(_seed_author(config))
    result = runner.invoke(app, ["authors", "forget", "1", "-c", str(config)], env={})
    assert result.exit_code == 0, result.output
    assert "author 1 forgotten (event" in result.output and "mentions 1" in result.output
    again = runner.invoke(app, ["authors", "forget", "1", "-c", str(config)], env={})
    assert again.exit_code == 0 and "forgotten already" in again.output
    unknown = runner.invoke(app, ["authors", "forget", "42", "-c", str(config)], env={})
    assert unknown.exit_code == 1 and "no such author" in unknown.output
    verified = runner.invoke(app, ["audit", "verify", "-c", str(config)], env={})
    assert verified.exit_code == 0, verified.output
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("otklik.db*"))
    for value in ("Зинаида", "id-zinaida-55", "Ясеневой"):
        assert value.encode() not in stored, value
