"""Hostile and malformed requests against the running HTTP API (issue 15, faults 3 and 9).

Each input here once answered 500, was accepted although invalid, or failed a whole batch.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.clock import FrozenClock
from handlers.app import App
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP, POSTGRES_URL
from tests.doubles.api_app import running_api
from tests.doubles.support import API_TOKENS

MON = {"Authorization": f"Bearer {API_TOKENS['MON_TOKEN']}"}


def mention(external_id: str, **fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "external_id": external_id,
        "text": "Третий день нет отопления, батареи ледяные",
        "sentiment": "negative",
        "author": {"id": f"user-{external_id}", "name": "Ольга", "channel": "vk"},
        "reach": 10,
    }
    item.update(fields)
    return item


@pytest.fixture
async def running(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> AsyncIterator[tuple[App, str]]:
    async with running_api(tmp_path, sqlite_url, clock) as started:
        yield started


@asynccontextmanager
async def own_postgres_database() -> AsyncIterator[str]:
    """The URL of a fresh PostgreSQL database, dropped afterwards (the App migrates it)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def running_on_postgres(tmp_path: Path, clock: FrozenClock) -> AsyncIterator[tuple[App, str]]:
    """The whole App on a PostgreSQL database of its own."""
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    async with own_postgres_database() as url, running_api(tmp_path, url, clock) as pair:
        yield pair


async def _send(
    base: str, body: bytes | str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    all_headers = {**MON, "Content-Type": "application/json", **(headers or {})}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base}/api/v1/mentions", data=body, headers=all_headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_fault3_malformed_bodies_and_headers_answer_4xx_with_a_reason(
    running: tuple[App, str],
) -> None:
    _, base = running
    deep = "[" * 2_000 + "]" * 2_000
    cases: list[tuple[str, bytes | str, dict[str, str], int]] = [
        ("nested 2,000 deep", deep, {}, 400),
        ("5,000-digit number", '{"reach": ' + "9" * 5_000 + "}", {}, 400),
        ("NaN is not JSON", '{"sentiment_score": NaN}', {}, 400),
        (
            "unknown charset",
            '{"a": 1}',
            {"Content-Type": "application/json; charset=x-no-such-charset"},
            415,
        ),
        ("corrupt deflate body", b"\x00not deflate at all", {"Content-Encoding": "deflate"}, 400),
        ("unknown content encoding", b"{}", {"Content-Encoding": "snappy-ish"}, 415),
    ]
    for label, body, headers, expected in cases:
        status, answer = await _send(base, body, headers)
        assert status == expected, (label, status, answer)
        assert answer["error"], label


async def test_fault3_a_valid_deflate_body_is_still_read(running: tuple[App, str]) -> None:
    _, base = running
    body = zlib.compress(b'[{"external_id": "z1", "text": "x", "author": {"id": "a"}}]')
    status, answer = await _send(base, body, {"Content-Encoding": "deflate"})
    assert status == 202, answer
    assert answer["accepted"] == 1


async def test_fault3_a_non_ascii_bearer_token_is_refused_not_crashed(
    running: tuple[App, str],
) -> None:
    _, base = running
    port = int(base.rsplit(":", 1)[1])
    body = b'{"external_id": "1", "text": "x", "author": {"id": "a"}}'
    for token in ("тайный-токен".encode(), b"\xff\xfe\xd0", "tok\u00e9n".encode("latin-1")):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/v1/mentions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer " + token + b"\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        answer = await reader.read()
        writer.close()
        status_line, _, rest = answer.partition(b"\r\n")
        assert status_line.split()[1] == b"401", (token, answer)
        assert b'"error"' in rest


async def test_fault3_case_ids_out_of_range_are_not_found(running: tuple[App, str]) -> None:
    _, base = running
    async with aiohttp.ClientSession() as http:
        for case_id in ("9223372036854775808", "9" * 400, "-1", "0", "%D9%A5", "+5", "1e3"):
            async with http.get(f"{base}/api/v1/cases/{case_id}", headers=MON) as response:
                assert response.status == 404, (case_id, response.status)
                assert (await response.json())["error"] == "no such case"


HUGE = "<1e999>"  # written as the JSON number 1e999: a float too big, read as infinity


def dumps(value: Any) -> str:
    return json.dumps(value).replace(f'"{HUGE}"', "1e999")


INVALID_ITEMS: list[tuple[str, dict[str, Any], str]] = [
    ("no offset", mention("bad", published_at="2026-11-20T10:00:00"), "published_at"),
    ("bare date", mention("bad", published_at="2026-11-20"), "published_at"),
    ("reach 2^63", mention("bad", reach=2**63), "reach"),
    ("reach false", mention("bad", reach=False), "reach"),
    ("reach string", mention("bad", reach="10"), "reach"),
    ("reach fraction", mention("bad", reach=10.5), "reach"),
    ("score string", mention("bad", sentiment_score="0.5"), "sentiment_score"),
    ("score infinite", mention("bad", sentiment_score=HUGE), "sentiment_score"),
    (
        "year 1 east of UTC",
        mention("bad", published_at="0001-01-01T00:00:00+01:00"),
        "published_at",
    ),
    ("NUL in external id", mention("b\x00ad"), "external_id"),
    ("NUL in author id", mention("bad", author={"id": "a\x00b"}), "author.id"),
    ("lone surrogate in id", mention("b\ud800d"), "external_id"),
    ("NUL in url", mention("bad", url="https://e.org/\x00"), "url"),
    # Longer than the identity channel column: PostgreSQL refuses it.
    ("long channel", mention("bad", author={"id": "a", "channel": "c" * 65}), "author.channel"),
]


async def test_fault3_one_bad_item_does_not_fail_its_batch(running: tuple[App, str]) -> None:
    app, base = running
    for label, bad, field in INVALID_ITEMS:
        good = mention(f"good-{label}")
        body = dumps([good, bad, mention(f"good2-{label}")])
        status, answer = await _send(base, body)
        assert status == 202, (label, answer)
        assert answer["accepted"] == 2 and answer["duplicates"] == 0, (label, answer)
        assert answer["rejected"] == 1, (label, answer)
        problems = answer["results"][1]["problems"]
        assert answer["results"][1]["status"] == "rejected"
        assert any(p["path"] == f"[1].{field}" for p in problems), (label, problems)
        assert [r["status"] for r in answer["results"]] == ["accepted", "rejected", "accepted"]
        # The single item alone: 422 with the same reason, never 5xx.
        status, answer = await _send(base, dumps(bad))
        assert status == 422, (label, answer)
    async with app.database.uow() as uow:
        assert await uow.mentions.get_by_external("monitoring", "bad") is None
        assert await uow.mentions.get_by_external("monitoring", "good-no offset") is not None


async def test_fault3_a_batch_of_only_bad_items_is_422_with_every_reason(
    running: tuple[App, str],
) -> None:
    _, base = running
    body = json.dumps([mention("a", reach=-1), mention("b", reach="1"), "not an object"])
    status, answer = await _send(base, body)
    assert status == 422, answer
    assert answer["accepted"] == 0 and answer["rejected"] == 3
    paths = {p["path"] for r in answer["results"] for p in r["problems"]}
    assert {"[0].reach", "[1].reach", "[2]"} <= paths


async def test_fault3_nul_and_broken_text_are_stored_cleaned_on_sqlite(
    running: tuple[App, str],
) -> None:
    await _nul_and_broken_text_are_stored_cleaned(*running)


@pytest.mark.postgres
async def test_fault3_nul_and_broken_text_are_stored_cleaned_on_postgres(
    running_on_postgres: tuple[App, str],
) -> None:
    await _nul_and_broken_text_are_stored_cleaned(*running_on_postgres)


async def _nul_and_broken_text_are_stored_cleaned(app: App, base: str) -> None:
    nul = mention(
        "nul-1",
        text="Нет\x00 воды в доме",
        author={"id": "u1", "name": "Оль\x00га"},
        reach=2**63 - 1,
        published_at="2026-11-20T10:00:00+03:00",
    )
    broken = mention("half-1", text="Нет воды\ud800", author={"id": "u2", "name": "Ольга\udfff"})
    status, answer = await _send(base, json.dumps([nul, broken, mention("plain", text="ok")]))
    assert status == 202, answer
    assert answer["accepted"] == 3
    async with app.database.uow() as uow:
        stored = await uow.mentions.get_by_external("monitoring", "nul-1")
        half = await uow.mentions.get_by_external("monitoring", "half-1")
    assert stored is not None and half is not None
    assert stored.text == "Нет воды в доме"  # NUL dropped
    assert stored.author.display_name == "Ольга"
    assert stored.reach == 2**63 - 1
    assert half.text == "Нет воды\ufffd"  # a broken half of a pair replaced
    assert half.author.display_name == "Ольга\ufffd"


async def test_fault9_failed_authentication_is_limited_per_address_and_logged(
    running: tuple[App, str], clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    _, base = running
    url = f"{base}/api/v1/mentions"
    secret = "wrong-but-secret-looking-token-0123456789"
    caplog.set_level(logging.WARNING)
    async with aiohttp.ClientSession() as http:
        for _ in range(10):
            bad = {"Authorization": f"Bearer {secret}"}
            async with http.post(url, json=mention("1"), headers=bad) as response:
                assert response.status == 401
        async with http.post(url, json=mention("1"), headers={}) as response:
            assert response.status == 429  # the 11th failure within a minute
            assert int(response.headers["Retry-After"]) == 60
        # Limited while it lasts, even with the right token: guessing must not pay off.
        async with http.post(url, json=mention("1"), headers=MON) as response:
            assert response.status == 429
        async with http.get(f"{base}/healthz") as response:
            assert response.status == 200  # unauthenticated routes stay open
        clock.advance(timedelta(seconds=61))
        async with http.post(url, json=mention("1"), headers=MON) as response:
            assert response.status == 202
    failures = [r for r in caplog.records if "authentication failed" in r.getMessage()]
    assert len(failures) >= 10
    assert all("127.0.0.1" in r.getMessage() for r in failures)
    assert not any(secret in r.getMessage() for r in caplog.records)
