"""Attachments in Matrix, against a real Synapse. Matrix rooms are where staff work: Otklik
takes no citizens' mentions from Matrix, so the attachments come from the HTTP API's schema
(a photo already on a Matrix media repository, by its mxc:// uri, and a document by a web
link). The card lists both, the document with a link; the photo is posted once under the
card as an m.image that points at the media (nothing uploaded again); `!case N` lists them."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nio import UploadResponse

from bot.messages.texts import spell_size
from handlers.ingest.schema import MentionIn
from tests.doubles.matrix_world import eventually, matrix_world
from tests.doubles.synapse import SynapseServer

SCAN_URL = "https://cdn.example.org/d/akt.pdf"


def png(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG: Synapse may read it for thumbnails."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\x00" * ((width + 7) // 8) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def test_an_api_mention_with_attachments_shows_them_in_the_room(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    async with matrix_world(synapse, tmp_path) as world:
        app = world.app
        assert app is not None
        room = world.rooms["housing"]
        picture = png(64, 48)
        uploaded, _ = await world.client("duty").upload(
            io.BytesIO(picture),
            content_type="image/png",
            filename="двор.png",
            filesize=len(picture),
        )
        assert isinstance(uploaded, UploadResponse)
        mxc = uploaded.content_uri

        body: dict[str, Any] = {
            "external_id": "with-files",
            "text": "Третий день нет отопления в доме на Ленина, батареи ледяные",
            "sentiment": "negative",
            "author": {"id": "olga", "name": "Ольга", "channel": "vk"},
            "url": "https://vk.com/wall-1_77",
            "attachments": [
                {"url": mxc, "name": "двор.png", "mime": "image/png", "size": len(picture)},
                {"url": SCAN_URL, "name": "акт.pdf", "mime": "application/pdf", "size": 120_009},
            ],
        }
        mention = MentionIn.model_validate(body).to_domain("monitoring", datetime.now(UTC))
        result = await app.intake.receive(mention)
        assert result.case is not None and result.case.id is not None
        case_id = result.case.id

        card = await world.card_event(case_id)
        shown = f"📎 фото «двор.png», {spell_size(len(picture), 'ru')}"
        text = await world.current_text(room, card)
        assert shown in text and "📎 документ «акт.pdf», 117 КБ · открыть" in text, text
        path = f"/_matrix/client/v3/rooms/{room.replace('!', '%21')}/event/{card}"
        formatted = (await world.get(path))["content"]["formatted_body"]
        assert f'<a href="{SCAN_URL}">открыть</a>' in formatted
        assert "mxc://" not in formatted  # a media uri is no link for a browser

        async def images() -> list[dict[str, Any]]:
            return [
                m
                for m in await world.bot_messages(room)
                if m["content"].get("msgtype") == "m.image"
            ]

        (image,) = await eventually(images)
        content = image["content"]
        assert content["url"] == mxc and content["filename"] == "двор.png"
        assert content["body"] == f"📎 К кейсу №{case_id}: фото"
        assert content["info"] == {"mimetype": "image/png", "size": len(picture)}
        assert content["m.relates_to"]["event_id"] == card  # in the card's thread

        # !case N lists the attachments.
        await world.say("spec", room, f"!case {case_id}")

        async def answered() -> bool:
            return any(
                "Вложения" in m["content"]["body"] and shown in m["content"]["body"]
                for m in await world.bot_messages(room)
                if m["event_id"] != card and "m.new_content" not in m["content"]
            )

        await eventually(answered)
        # The card's edits (the thread reply made none) never post the photo again.
        assert len(await images()) == 1
