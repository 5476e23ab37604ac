"""A chart through the outbox: the PHOTO op with its picture in the blob store, delivered by the
real worker to the Telegram test server (sendPhoto, multipart) and to a real Synapse (media
upload + m.image with the caption), exactly once as far as each network allows."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer

from bot.clock import FrozenClock
from bot.messages.delivery import OutboxWorker, RetryPolicy
from bot.messages.outbox import Delivery, OutboxItem, OutboxOp, OutboxStatus, photo_payload
from bot.messages.texts import DEFAULT_TEMPLATES_DIR, texts_for
from bot.messages.views import page_view
from handlers.matrix.render import HTML_FORMAT, MatrixRenderer
from handlers.matrix.transport import MatrixTransport
from handlers.reports.charts import CHART_HEIGHT, CHART_WIDTH, render_digest_chart
from handlers.telegram.limits import RateLimiter, TelegramLimits
from handlers.telegram.render import MAX_CAPTION, TelegramRenderer
from handlers.telegram.transport import TelegramTransport
from store.db import Database
from tests.doubles.synapse import SynapseServer
from tests.doubles.telegram_server.entities import utf16_len
from tests.doubles.telegram_server.flood import Limits
from tests.doubles.telegram_server.server import TelegramServer
from tests.handlers.matrix.test_transport import bot_client
from tests.handlers.telegram.test_transport import PlainHttpSession

TOKEN = "123456:TEST-token"
NOW = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
NO_JITTER = RetryPolicy(base_s=1.0, cap_s=60.0, jitter=0.0)
RELAXED = Limits(
    per_chat_per_s=1e6,
    per_chat_burst=10**6,
    per_group_per_min=10**6,
    global_per_s=10**6,
    time_scale=10.0,
)
STATUS = {
    "generated_at": "02.12 20:00",
    "departments": [{"name": "ЖКХ", "open": 3, "overdue": 1, "at_risk": 0, "oldest_waiting": None}],
}


@pytest.fixture(scope="module")
def chart() -> bytes:
    import asyncio

    return asyncio.run(
        render_digest_chart(
            {"ЖКХ": [0] * 9 + [4, 2] + [0] * 13},
            {"ЖКХ": 0.75},
            title="Сводка за 2 декабря",
            hourly_title="Негатив по часам",
            compliance_title="Соблюдение SLA",
        )
    )


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    database = Database(sqlite_url)
    await database.upgrade()
    yield database
    await database.dispose()


async def queue_photo(
    db: Database,
    transport: str,
    chat: str,
    png: bytes,
    caption: dict[str, Any],
    key: str = "digest:2026-12-02",
) -> None:
    """What the digest job does: the picture and the item in one transaction."""
    async with db.uow() as uow:
        blob = await uow.blobs.put(png, "image/png", NOW)
        payload = photo_payload(
            blob=blob,
            caption=caption,
            width=CHART_WIDTH,
            height=CHART_HEIGHT,
            size=len(png),
            filename="digest-2026-12-02.png",
        )
        item = OutboxItem(
            transport=transport,
            chat=chat,
            op=OutboxOp.PHOTO,
            payload=payload,
            idempotency_key=f"{transport}:{chat}:{key}:chart",
            ref_key=f"{key}:chart",
            created_at=NOW,
        )
        assert await uow.outbox.enqueue([item]) == 1
        await uow.commit()


async def queue_photo_again(db: Database, transport: str, chat: str, png: bytes) -> None:
    async with db.uow() as uow:
        blob = await uow.blobs.put(png, "image/png", NOW)
        item = OutboxItem(
            transport=transport,
            chat=chat,
            op=OutboxOp.PHOTO,
            payload=photo_payload(
                blob=blob, caption={}, width=1, height=1, size=len(png), filename="again.png"
            ),
            idempotency_key=f"{transport}:{chat}:digest:2026-12-02:chart",
            created_at=NOW,
        )
        assert await uow.outbox.enqueue([item]) == 0
        await uow.commit()


async def statuses(db: Database) -> list[OutboxStatus]:
    async with db.uow() as uow:
        return [i.status for i in [await uow.outbox.get(n) for n in range(1, 10)] if i]


# --- the blob store ---------------------------------------------------------------------------


async def test_blobs_are_stored_once_by_content(database: Database, chart: bytes) -> None:
    async with database.uow() as uow:
        first = await uow.blobs.put(chart, "image/png", NOW)
        again = await uow.blobs.put(chart, "image/png", NOW)
        other = await uow.blobs.put(b"\x89PNG other", "image/png", NOW)
        await uow.commit()
    assert first == again != other and len(first) == 64
    async with database.uow() as uow:
        assert await uow.blobs.get(first) == chart
        assert await uow.blobs.get("0" * 64) is None


async def test_old_pictures_are_pruned_unless_still_waiting(
    database: Database, chart: bytes
) -> None:
    await queue_photo(database, "telegram", "-100", chart, {"view": "notice"})
    async with database.uow() as uow:
        delivered = await uow.blobs.put(b"\x89PNG delivered long ago", "image/png", NOW)
        fresh = await uow.blobs.put(b"\x89PNG today", "image/png", NOW + timedelta(days=30))
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.blobs.prune(NOW + timedelta(days=1)) == 1
        await uow.commit()
    async with database.uow() as uow:
        assert await uow.blobs.get(delivered) is None
        assert await uow.blobs.get(fresh) is not None
        waiting = await uow.outbox.get(1)
        assert waiting is not None and await uow.blobs.get(waiting.payload["blob"]) == chart


# --- Telegram --------------------------------------------------------------------------------


@dataclass
class TelegramRig:
    server: TelegramServer
    transport: TelegramTransport
    chat: int


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramRig]:
    server = TelegramServer(RELAXED)
    await server.start()
    server.add_bot(TOKEN, "otklik_bot")
    leaders = server.create_chat("supergroup", "Руководство", bot_status="administrator")
    bot = Bot(TOKEN, session=PlainHttpSession(api=TelegramAPIServer.from_base(server.api_base)))
    renderer = TelegramRenderer(texts_for(DEFAULT_TEMPLATES_DIR, "ru"))
    transport = TelegramTransport(
        bot, renderer, RateLimiter(TelegramLimits(scale=1000.0)), protect_content=True
    )
    try:
        yield TelegramRig(server, transport, leaders.id)
    finally:
        await bot.session.close()
        await server.stop()


async def test_photo_reaches_telegram_with_bytes_and_caption(
    db: Database, telegram: TelegramRig, chart: bytes
) -> None:
    worker = OutboxWorker(db.uow, {"telegram": telegram.transport}, FrozenClock(NOW), NO_JITTER)
    await queue_photo(
        db, "telegram", str(telegram.chat), chart, page_view("status.html.j2", STATUS)
    )
    # The job runs again (a restart in the same minute): the key keeps it to one item.
    await queue_photo_again(db, "telegram", str(telegram.chat), chart)
    assert await worker.run_once() == 1
    assert await statuses(db) == [OutboxStatus.DELIVERED]
    [message] = telegram.server.messages(telegram.chat)
    assert message.photo_bytes == chart
    # Telegram keeps sizes up to 1280 px on the long side: the chart's largest is scaled.
    assert message.photo is not None
    assert (message.photo[-1]["width"], message.photo[-1]["height"]) == (1024, 1280)
    assert message.caption is not None and message.caption.startswith("Статус на 02.12 20:00")
    assert message.parse_mode == "HTML" and message.caption_entities[0]["type"] == "bold"
    assert message.protect_content and message.text is None
    async with db.uow() as uow:  # remembered like a post, so a later reply could refer to it
        assert await uow.refs.get("telegram", str(telegram.chat), "digest:2026-12-02:chart") == str(
            message.message_id
        )


async def test_telegram_resend_after_a_crash_is_at_least_once_like_any_post(
    db: Database, telegram: TelegramRig, chart: bytes
) -> None:
    await queue_photo(
        db, "telegram", str(telegram.chat), chart, page_view("status.html.j2", STATUS)
    )
    async with db.uow() as uow:  # claimed, sent, and the process dies before recording it
        assert await uow.outbox.claim(1, NOW)
        item = await uow.outbox.get(1)
        await uow.commit()
    assert item is not None
    await telegram.transport.deliver(Delivery(item, photo=chart))
    worker = OutboxWorker(db.uow, {"telegram": telegram.transport}, FrozenClock(NOW), NO_JITTER)
    assert await worker.recover() == 1
    await worker.run_once()
    assert await worker.run_once() == 0  # settled: never a third time
    assert await statuses(db) == [OutboxStatus.DELIVERED]
    # The Bot API has no idempotency key: the one request on the wire at the crash is repeated,
    # as for a text message (docs/outbox.md).
    photos = telegram.server.messages(telegram.chat)
    assert len(photos) == 2 and all(m.photo_bytes == chart for m in photos)


async def test_long_caption_is_cut_at_a_line_to_telegrams_limit(
    db: Database, telegram: TelegramRig, chart: bytes
) -> None:
    many = {
        "generated_at": "02.12 20:00",
        "departments": [
            {"name": f"Отдел №{n}", "open": n, "overdue": 0, "at_risk": 1, "oldest_waiting": "2 ч"}
            for n in range(40)
        ],
    }
    worker = OutboxWorker(db.uow, {"telegram": telegram.transport}, FrozenClock(NOW), NO_JITTER)
    await queue_photo(db, "telegram", str(telegram.chat), chart, page_view("status.html.j2", many))
    await worker.run_once()
    assert await statuses(db) == [OutboxStatus.DELIVERED]
    [message] = telegram.server.messages(telegram.chat)
    assert message.caption is not None
    assert 900 < utf16_len(message.caption) <= MAX_CAPTION
    assert message.caption.rstrip().split("\n")[-1].startswith("…")  # "… and N more"


async def test_a_missing_picture_fails_the_item_and_does_not_block_the_chat(
    db: Database, telegram: TelegramRig, chart: bytes
) -> None:
    worker = OutboxWorker(db.uow, {"telegram": telegram.transport}, FrozenClock(NOW), NO_JITTER)
    async with db.uow() as uow:
        payload = photo_payload(
            blob="f" * 64, caption={}, width=1, height=1, size=1, filename="x.png"
        )
        await uow.outbox.enqueue(
            [
                OutboxItem("telegram", str(telegram.chat), OutboxOp.PHOTO, payload, "a", None,
                           created_at=NOW),
            ]
        )  # fmt: skip
        await uow.commit()
    await queue_photo(
        db, "telegram", str(telegram.chat), chart, page_view("status.html.j2", STATUS)
    )
    await worker.run_once()
    assert await statuses(db) == [OutboxStatus.FAILED, OutboxStatus.DELIVERED]
    assert len(telegram.server.messages(telegram.chat)) == 1


async def test_telegram_refusal_of_an_oversized_picture_is_final(
    db: Database, telegram: TelegramRig
) -> None:
    # 20:1 is the widest ratio the Bot API takes; 21:1 is PHOTO_INVALID_DIMENSIONS.
    wide = await render_wide_png(2100, 100)
    worker = OutboxWorker(db.uow, {"telegram": telegram.transport}, FrozenClock(NOW), NO_JITTER)
    await queue_photo(db, "telegram", str(telegram.chat), wide, page_view("status.html.j2", STATUS))
    await worker.run_once()
    async with db.uow() as uow:
        item = await uow.outbox.get(1)
    assert item is not None and item.status is OutboxStatus.FAILED
    assert item.last_error is not None and "PHOTO_INVALID_DIMENSIONS" in item.last_error


async def render_wide_png(width: int, height: int) -> bytes:
    import struct
    import zlib

    row = b"\x00" + b"\xff" * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


# --- Matrix ----------------------------------------------------------------------------------


@dataclass
class MatrixRig:
    synapse: SynapseServer
    reader_token: str
    bot_id: str
    room: str
    transport: MatrixTransport

    def events(self) -> list[dict[str, Any]]:
        path = f"/_matrix/client/v3/rooms/{quote(self.room, safe='')}/messages?dir=b&limit=50"
        chunk = self.synapse.request("GET", path, token=self.reader_token)["chunk"]
        return [e for e in chunk if e["type"] == "m.room.message" and e["sender"] == self.bot_id]

    def download(self, mxc: str) -> bytes:
        server, media_id = mxc.removeprefix("mxc://").split("/", 1)
        url = f"{self.synapse.base_url}/_matrix/client/v1/media/download/{server}/{media_id}"
        request = urllib.request.Request(url)
        request.add_header("Authorization", f"Bearer {self.reader_token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            data: bytes = response.read()
        return data


@pytest.fixture
async def matrix(synapse: SynapseServer) -> AsyncIterator[MatrixRig]:
    bot = synapse.register(f"bot-{uuid.uuid4().hex[:8]}")
    reader = synapse.register(f"reader-{uuid.uuid4().hex[:8]}")
    room = synapse.create_room(reader.access_token, "Руководство", invite=[bot.user_id])
    synapse.join(bot.access_token, room)
    client = bot_client(synapse, bot)
    renderer = MatrixRenderer(texts_for(DEFAULT_TEMPLATES_DIR, "en"))
    try:
        yield MatrixRig(
            synapse, reader.access_token, bot.user_id, room, MatrixTransport(client, renderer)
        )
    finally:
        await client.close()


async def test_photo_reaches_matrix_as_an_image_with_caption(
    db: Database, matrix: MatrixRig, chart: bytes
) -> None:
    worker = OutboxWorker(db.uow, {"matrix": matrix.transport}, FrozenClock(NOW), NO_JITTER)
    await queue_photo(db, "matrix", matrix.room, chart, page_view("status.html.j2", STATUS))
    assert await worker.run_once() == 1
    assert await statuses(db) == [OutboxStatus.DELIVERED]
    [event] = matrix.events()
    content = event["content"]
    assert content["msgtype"] == "m.image"
    assert content["filename"] == "digest-2026-12-02.png"
    assert content["body"].startswith("Status at 02.12 20:00")
    assert (
        content["format"] == HTML_FORMAT
        and "<b>Status at 02.12 20:00</b>" in content["formatted_body"]
    )
    assert content["info"] == {
        "mimetype": "image/png",
        "size": len(chart),
        "w": CHART_WIDTH,
        "h": CHART_HEIGHT,
    }
    assert matrix.download(content["url"]) == chart


async def test_matrix_resend_after_a_crash_posts_one_image(
    db: Database, matrix: MatrixRig, chart: bytes
) -> None:
    await queue_photo(db, "matrix", matrix.room, chart, page_view("status.html.j2", STATUS))
    # The first process claims the item and the homeserver takes the event, then the process
    # dies before it records the delivery.
    async with db.uow() as uow:
        assert await uow.outbox.claim(1, NOW)
        item = await uow.outbox.get(1)
        picture = await uow.blobs.get(item.payload["blob"]) if item else None
        await uow.commit()
    assert item is not None and picture == chart
    await matrix.transport.deliver(Delivery(item, photo=picture))
    assert await statuses(db) == [OutboxStatus.SENDING]
    # A new process (a new transport: nothing remembered in memory) starts on the same database.
    fresh = MatrixTransport(matrix.transport.client, matrix.transport.renderer)
    worker = OutboxWorker(db.uow, {"matrix": fresh}, FrozenClock(NOW), NO_JITTER)
    assert await worker.recover() == 1
    await worker.run_once()
    assert await statuses(db) == [OutboxStatus.DELIVERED]
    assert len(matrix.events()) == 1  # the transaction id kept it to one image


async def test_one_upload_serves_several_rooms(
    db: Database, matrix: MatrixRig, chart: bytes
) -> None:
    second = matrix.synapse.create_room(matrix.reader_token, "Дежурные", invite=[matrix.bot_id])
    await matrix.transport.client.join(second)
    worker = OutboxWorker(db.uow, {"matrix": matrix.transport}, FrozenClock(NOW), NO_JITTER)
    caption = page_view("status.html.j2", STATUS)
    await queue_photo(db, "matrix", matrix.room, chart, caption)
    await queue_photo(db, "matrix", second, chart, caption)
    await worker.run_once()
    assert await statuses(db) == [OutboxStatus.DELIVERED, OutboxStatus.DELIVERED]
    [event] = matrix.events()
    # Both rooms were delivered in parallel; they share one upload.
    assert list(matrix.transport._uploaded.values()) == [event["content"]["url"]]
    second_events = matrix.synapse.request(
        "GET",
        f"/_matrix/client/v3/rooms/{quote(second, safe='')}/messages?dir=b&limit=50",
        token=matrix.reader_token,
    )["chunk"]
    urls = {e["content"].get("url") for e in second_events if e["type"] == "m.room.message"}
    assert urls == {event["content"]["url"]}
