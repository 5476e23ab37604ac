"""The evening digest leaves through the outbox to both transports: a real App, the Telegram
test server and a real Synapse. The chart arrives as a photo (Telegram) and an m.image
(Matrix), followed by the text; a restart sends neither again; /digest answers leadership and
refuses others."""

from __future__ import annotations

import struct
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.clock import SystemClock
from bot.model import CaseState
from bot.settings.config import load_config
from bot.settings.playbook import load_playbook
from handlers.app import App
from handlers.reports.charts import CHART_HEIGHT, CHART_WIDTH
from store.db import Database
from store.models import OutboxRow
from tests.bot.reports.test_digest import Seeder
from tests.doubles.matrix_world import PATIENCE_S, MatrixWorld, eventually, synced
from tests.doubles.support import ROOT
from tests.doubles.synapse import SynapseServer
from tests.doubles.telegram_server.flood import Limits
from tests.doubles.telegram_server.server import TelegramServer
from tests.doubles.telegram_world import TOKEN

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Evening digest at local midnight: its fire time has always passed today, so the start-up
# catch-up sends it at once, whatever the wall clock says (no waiting for a cron minute).
CONFIG = """
locale: ru
timezone: Europe/Moscow
database: {{url: "sqlite+aiosqlite:///{db}"}}
playbooks: {{path: "{root}/playbooks/default", templates: "{root}/playbooks/templates"}}
telegram: {{token: "{token}", api_base: "{api_base}", limits: {{scale: 10}}}}
matrix:
  homeserver: "{homeserver}"
  user_id: "{bot_id}"
  access_token: "{bot_token}"
  device_id: "{bot_device}"
  rate_limit: {{per_second: 1000, burst: 1000}}  # the test homeserver limits nothing
api: {{listen: "127.0.0.1:0"}}
outbox: {{poll_interval_s: 0.05, base_retry_s: 0.05, max_retry_s: 2}}
departments:
  - {{id: housing, name: ЖКХ, telegram: {{chat_id: {chat}}}, matrix: {{room_id: "{room}"}}}}
  - {{id: coordination, name: ЦУР, matrix: {{room_id: "{coordination}"}}}}
coordination_department: coordination
staff:
  - {{id: spec, name: Анна Иванова, telegram_id: 1001, roles: {{housing: [specialist]}}}}
  - {{id: boss, name: Ирина Главная, telegram_id: 1009, matrix_id: "{boss}",
     global_roles: [leadership]}}
digest:
  evening_cron: "0 0 * * *"
  weekly_cron: "0 10 29 2 *"
  recipients: {{telegram_chat_ids: [{leaders}], matrix_room_ids: ["{coordination}"]}}
"""


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    return width, height


async def test_evening_digest_reaches_telegram_and_matrix_once(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    matrix = MatrixWorld(synapse, tmp_path, "ru")
    telegram = TelegramServer(Limits(time_scale=10))
    await telegram.start()
    telegram.add_bot(TOKEN, "otklik_bot")
    boss = telegram.create_user("Ирина", id=1009)
    anna = telegram.create_user("Анна", id=1001)
    chat = telegram.create_chat("supergroup", "ЖКХ").id
    leaders = telegram.create_chat("supergroup", "Руководство").id
    telegram.add_member(leaders, boss, announce=False)
    path = tmp_path / "config.yaml"
    path.write_text(
        CONFIG.format(
            db=tmp_path / "otklik.db",
            root=ROOT,
            token=TOKEN,
            api_base=telegram.api_base,
            homeserver=synapse.base_url,
            bot_id=matrix.bot.user_id,
            bot_token=matrix.bot.access_token,
            bot_device=matrix.bot.device_id,
            chat=chat,
            room=matrix.rooms["housing"],
            coordination=matrix.rooms["coordination"],
            leaders=leaders,
            boss=matrix.users["duty"].user_id,  # the room's owner plays the leader here
        ),
        encoding="utf-8",
    )
    config = load_config(path, env={})
    # Today's work before the bot starts: one case, overdue for its first touch.
    database = Database(config.database.url)
    await database.upgrade()
    seeder = Seeder(database)
    now = SystemClock().now()
    author = await seeder.author("Житель", last_seen=now)
    await seeder.case(
        "late", department="housing", state=CaseState.NEW, created_at=now - timedelta(seconds=2),
        first_touch_due_at=now - timedelta(seconds=1), codes=("heating",),
    )  # fmt: skip
    await seeder.mention(now - timedelta(seconds=2), author, "late")
    await database.dispose()

    app = App(config, load_playbook(config.playbooks.path), SystemClock())
    await app.start()
    room = matrix.rooms["coordination"]
    try:
        # Telegram: the chart as a photo with its caption, then the text.
        def leaders_got_both() -> bool:
            sent = [m for m in telegram.messages(leaders) if m.from_user and m.from_user.is_bot]
            return len(sent) >= 2

        await telegram.wait_for(leaders_got_both, timeout=PATIENCE_S)
        photo, text = [m for m in telegram.messages(leaders) if m.from_user and m.from_user.is_bot]
        assert photo.photo_bytes is not None
        assert png_size(photo.photo_bytes) == (CHART_WIDTH, CHART_HEIGHT)
        assert photo.caption is not None and photo.caption.startswith("📊 Сводка за")
        assert text.text is not None and text.text.startswith("📊 Сводка за")
        assert "Новых 1 · отвечено 0 · просрочено 1 · открыто 1" in text.text
        assert "Отопление 1" in text.text

        # Matrix: an m.image uploaded to the media repository, then the text.
        async def matrix_got_both() -> list[dict[str, object]] | None:
            events = await matrix.bot_messages(room)
            return events if len(events) >= 2 else None

        image, body = await eventually(matrix_got_both)
        assert image["content"]["msgtype"] == "m.image"
        assert str(image["content"]["url"]).startswith("mxc://")
        assert "Сводка за" in body["content"]["body"]
        assert "просрочено 1" in body["content"]["body"]

        # /digest: leadership gets today so far; a specialist is refused.
        telegram.send_user_message(boss.id, boss, "/digest")
        telegram.send_user_message(anna.id, anna, "/digest")

        def answered(user_id: int) -> str | None:
            replies = [
                m.text for m in telegram.messages(user_id) if m.from_user and m.from_user.is_bot
            ]
            return replies[-1] if replies else None

        await telegram.wait_for(lambda: bool(answered(boss.id) and answered(anna.id)), PATIENCE_S)
        assert (answered(boss.id) or "").startswith("📊 Сводка за")
        assert answered(anna.id) == "Нет прав на это действие."

        # !digest in Matrix: the same answer, in the room it was asked in.
        await synced(app)
        await matrix.say("duty", room, "!digest")

        async def matrix_answer() -> str | None:
            events = await matrix.bot_messages(room)
            return str(events[2]["content"]["body"]) if len(events) >= 3 else None

        assert "Сводка за" in await eventually(matrix_answer)
    finally:
        await app.stop()

    # A restart the same day: the catch-up finds the digest sent and queues nothing.
    app = App(config, load_playbook(config.playbooks.path), SystemClock())
    await app.start()
    try:
        async with app.database.engine.connect() as conn:
            digests = await conn.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(OutboxRow.idempotency_key.like("%:digest:evening:%"))
            )
        assert digests == 4  # chart and text, in Telegram and in Matrix
    finally:
        await app.stop()
        await matrix.close()
        await telegram.stop()
