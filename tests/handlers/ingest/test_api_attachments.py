"""Attachments through the HTTP API: an optional `attachments` list of links (url, name, mime,
size, kind, caption), validated (422 on bad input), stored with the mention and listed on its
card; the OpenAPI document describes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.clock import FrozenClock
from bot.model import Attachment, AttachmentKind
from handlers.app import App
from tests.doubles.api_app import running_api
from tests.doubles.fakes import RecordingTransport
from tests.doubles.support import API_TOKENS

MON = {"Authorization": f"Bearer {API_TOKENS['MON_TOKEN']}"}
PHOTO = {
    "url": "https://cdn.example.org/p/123.jpg",
    "name": "подъезд.jpg",
    "mime": "image/jpeg",
    "size": 1_250_000,
}
SCAN = {"url": "https://cdn.example.org/d/akt.pdf", "name": "акт.pdf", "mime": "application/pdf"}


def mention(external_id: str, attachments: list[Any]) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "text": "Третий день нет отопления в доме на Ленина, батареи ледяные",
        "sentiment": "negative",
        "author": {"id": f"user-{external_id}", "name": "Ольга", "channel": "vk"},
        "url": f"https://vk.com/wall-1_{external_id}",
        "attachments": attachments,
    }


@pytest.fixture
async def running(
    tmp_path: Path, sqlite_url: str, clock: FrozenClock
) -> AsyncIterator[tuple[App, str, RecordingTransport]]:
    transport = RecordingTransport()
    async with running_api(tmp_path, sqlite_url, clock, transport) as (app, base):
        yield app, base, transport


async def test_attachments_are_stored_and_listed_on_the_card(
    running: tuple[App, str, RecordingTransport],
) -> None:
    app, base, transport = running
    async with aiohttp.ClientSession() as http:
        body = mention("1", [PHOTO, {**SCAN, "caption": "Акт осмотра"}])
        async with http.post(f"{base}/api/v1/mentions", json=body, headers=MON) as response:
            assert response.status == 202, await response.text()
            (case_id,) = (await response.json())["cases"]
    async with app.database.uow() as uow:
        (stored,) = await uow.mentions.for_case(case_id)
    assert stored.attachments == (
        Attachment(AttachmentKind.PHOTO, PHOTO["url"], "подъезд.jpg", "image/jpeg", 1_250_000),
        Attachment(
            AttachmentKind.DOCUMENT, SCAN["url"], "акт.pdf", "application/pdf", None, "Акт осмотра"
        ),
    )
    await app.worker.run_once()
    (card,) = transport.posts()
    assert card.payload["view"] == "card"
    assert card.payload["attachments"] == [
        {"kind": "photo", "name": "подъезд.jpg", "size": 1_250_000, "url": PHOTO["url"]},
        {"kind": "document", "name": "акт.pdf", "size": None, "url": SCAN["url"]},
    ]
    # A web link is listed, never posted under the card: nothing but the card went out.
    assert [s.payload["view"] for s in transport.sent] == ["card"]


BAD = [
    ([{**PHOTO, "url": "javascript:alert(1)"}], "[0].attachments[0].url"),
    ([{**PHOTO, "url": "ftp://files.example.org/a.jpg"}], "[0].attachments[0].url"),
    ([{**PHOTO, "url": "file:///etc/passwd"}], "[0].attachments[0].url"),
    ([{**PHOTO, "name": "x" * 257}], "[0].attachments[0].name"),
    ([{**PHOTO, "size": -1}], "[0].attachments[0].size"),
    ([{**PHOTO, "size": "12"}], "[0].attachments[0].size"),
    ([{**PHOTO, "mime": "not a mime"}], "[0].attachments[0].mime"),
    ([{**PHOTO, "kind": "sticker"}], "[0].attachments[0].kind"),
    ([{**PHOTO, "path": "/tmp/x"}], "[0].attachments[0].path"),
    ([{"name": "no url"}], "[0].attachments[0].url"),
    ([PHOTO] * 11, "[0].attachments"),
    ("not a list", "[0].attachments"),
]


@pytest.mark.parametrize(("attachments", "path"), BAD)
async def test_bad_attachments_are_refused_with_422(
    running: tuple[App, str, RecordingTransport], attachments: Any, path: str
) -> None:
    app, base, _ = running
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{base}/api/v1/mentions", json=[mention("bad", attachments)], headers=MON
        ) as response,
    ):
        assert response.status == 422
        problems = (await response.json())["problems"]
    assert path in {p["path"] for p in problems}, problems
    async with app.database.uow() as uow:
        assert await uow.mentions.get_by_external("monitoring", "bad") is None


async def test_an_mxc_uri_is_accepted_and_the_schema_documents_attachments(
    running: tuple[App, str, RecordingTransport],
) -> None:
    app, base, _ = running
    photo = {"url": "mxc://example.org/AbCdEf", "mime": "image/png", "size": 2048}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/api/v1/mentions", json=mention("mxc", [photo]), headers=MON
        ) as response:
            assert response.status == 202
        async with http.get(f"{base}/api/v1/openapi.json") as response:
            schema = await response.json()
    async with app.database.uow() as uow:
        stored = await uow.mentions.get_by_external("monitoring", "mxc")
    assert stored is not None and stored.attachments[0].kind is AttachmentKind.PHOTO
    assert stored.attachments[0].web_url is None  # no link to follow on the card
    attachment = schema["components"]["schemas"]["AttachmentIn"]
    assert attachment["required"] == ["url"] and "size" in attachment["properties"]
