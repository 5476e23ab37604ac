"""One case, two cards: a department with both a Telegram chat and a Matrix room sees the same
case in both, and an action in one is reflected in the other. A press, a reply and a command
go through each transport to the same inbound path (bot/chat/inbound.py)."""

from __future__ import annotations

from pathlib import Path

from bot.clock import SystemClock
from bot.messages.views import card_ref
from bot.model import CaseState
from bot.settings.config import load_config
from bot.settings.playbook import load_playbook
from handlers.app import App
from tests.doubles.matrix_world import PATIENCE_S, MatrixWorld, eventually, synced
from tests.doubles.support import ROOT
from tests.doubles.synapse import SynapseServer
from tests.doubles.telegram_server.flood import Limits
from tests.doubles.telegram_server.server import TelegramServer
from tests.doubles.telegram_world import TOKEN

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
  - {{id: spec, name: Анна Иванова, telegram_id: 1001, matrix_id: "{spec}",
     roles: {{housing: [specialist]}}}}
"""


async def test_an_action_in_telegram_shows_in_matrix_and_back(
    synapse: SynapseServer, tmp_path: Path
) -> None:
    matrix = MatrixWorld(synapse, tmp_path, "ru")
    telegram = TelegramServer(Limits(time_scale=10))
    await telegram.start()
    telegram.add_bot(TOKEN, "otklik_bot")
    anna = telegram.create_user("Анна", id=1001)
    chat = telegram.create_chat("supergroup", "ЖКХ").id
    telegram.add_member(chat, anna, announce=False)
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
            spec=matrix.users["spec"].user_id,
        ),
        encoding="utf-8",
    )
    config = load_config(path, env={})
    app = App(config, load_playbook(config.playbooks.path), SystemClock())
    await app.start()
    await synced(app)  # the reaction below must not land in the sync that only takes a token
    matrix.app = app
    room = matrix.rooms["housing"]
    try:
        case_id = await matrix.open_case()
        ref = card_ref(case_id, "housing")

        async def telegram_card() -> str | None:
            async with app.database.uow() as uow:
                return await uow.refs.get("telegram", str(chat), ref)

        tg_card = int(await eventually(telegram_card))
        mx_card = await matrix.card_event(case_id)

        # Taken in Telegram: the Matrix card names who took it.
        query = telegram.press_button(chat, tg_card, anna, button_text="Взять")
        await telegram.wait_answer(query, timeout=PATIENCE_S)

        async def matrix_shows_assignee() -> bool:
            return "Анна Иванова" in await matrix.current_text(room, mx_card)

        await eventually(matrix_shows_assignee)

        # Released in Matrix: the Telegram card offers "Взять" again.
        await matrix.react("spec", room, mx_card, "👋")
        await telegram.wait_for(
            lambda: "никто не взял" in (telegram.message(chat, tg_card).text or ""),
            timeout=PATIENCE_S,
        )
        case = await app.cases.get(case_id)
        assert case is not None and case.state is CaseState.NEW

        # A reply to the Telegram card is a draft: Telegram says so, the Matrix card shows it.
        draft = "Мы разбираемся, напишите адрес"
        written = telegram.send_user_message(chat, anna, draft, reply_to=tg_card)
        await telegram.wait_for(
            lambda: any(
                m.reply_to_message_id == written.message_id
                and "отправлен на согласование" in (m.text or "")
                for m in telegram.messages(chat)
            ),
            timeout=PATIENCE_S,
        )

        async def matrix_shows_draft() -> bool:
            return draft in await matrix.current_text(room, mx_card)

        await eventually(matrix_shows_draft)

        # The same command in both, answered with the same case's story.
        asked = telegram.send_user_message(chat, anna, f"/case {case_id}")
        await matrix.say("spec", room, f"!case {case_id}")
        await telegram.wait_for(
            lambda: any(
                m.reply_to_message_id == asked.message_id
                and f"Кейс №{case_id}" in (m.text or "")
                and draft in (m.text or "")
                for m in telegram.messages(chat)
            ),
            timeout=PATIENCE_S,
        )

        async def matrix_answered() -> bool:
            return any(
                f"Кейс №{case_id}" in m["content"]["body"] and draft in m["content"]["body"]
                for m in await matrix.bot_messages(room)
                # Not the card or its edits, which show the draft too.
                if m["event_id"] != mx_card and "m.new_content" not in m["content"]
            )

        await eventually(matrix_answered)
    finally:
        await app.stop()
        await matrix.close()
        await telegram.stop()
