"""Ids without guesswork (issue 17, point 3), with the real App polling the Telegram test
server: /ids and /whoami, the chats the bot has seen (`otklik chats`), and the start-up
check of every configured department chat."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.settings.config import load_config
from bot.settings.playbook import load_playbook
from handlers.app import App
from handlers.cli import app as cli
from tests.doubles.support import ROOT
from tests.doubles.telegram_server.flood import Limits
from tests.doubles.telegram_server.server import TelegramServer
from tests.doubles.telegram_server.state import StoredMessage
from tests.doubles.telegram_world import SCALE, TOKEN, World, telegram_world

runner = CliRunner()
CHECK_HEADER = "При запуске Отклик проверил чаты"


def bot_messages(server: TelegramServer, chat: int) -> list[StoredMessage]:
    return [m for m in server.messages(chat) if m.bot_id is not None]


async def text_of_answer(world: World, asked: StoredMessage) -> str:
    return (await world.answer_to(asked)).text or ""


async def test_ids_and_whoami_show_chat_topic_and_person_ids_to_whom_they_may(
    tmp_path: Path,
) -> None:
    async with telegram_world(tmp_path, discussion_groups=True) as world:
        # Staff in a department's forum topic: the chat, the topic and their own id.
        text = await text_of_answer(world, world.say("spec", world.housing, "/ids", world.topic))
        assert f"Чат (chat_id): {world.housing}" in text
        assert f"Тема (topic_id): {world.topic}" in text
        assert "Ваш telegram_id: 1001" in text
        # /whoami says the same after the roles.
        text = await text_of_answer(world, world.say("duty", world.coordination, "/whoami"))
        assert "Дежурный" in text and f"Чат (chat_id): {world.coordination}" in text
        assert "Тема" not in text and "Ваш telegram_id: 1005" in text

        # A group the config does not name yet (how an administrator learns its id): staff
        # get the ids, a stranger nothing at all.
        text = await text_of_answer(world, world.say("admin", world.discussion, "/ids"))
        assert f"Чат (chat_id): {world.discussion}" in text and "1007" in text
        ignored = world.say("citizen", world.discussion, "/ids")

        # A stranger in a work chat: the usual refusal, no ids.
        text = await text_of_answer(world, world.say("stranger", world.transport, "/ids"))
        assert "нет в списке сотрудников" in text and str(world.transport) not in text

        # Anyone in a private chat with the bot: their own id (how a new member of staff
        # learns the telegram_id to put in the config), no chat line.
        citizen = world.person("citizen")
        asked = world.server.send_user_message(citizen.id, citizen, "/whoami")
        text = await text_of_answer(world, asked)
        assert "Ваш telegram_id: 7777" in text and "Чат" not in text

        await world.idle()
        in_group = bot_messages(world.server, world.discussion)
        assert not [m for m in in_group if "7777" in (m.text or "")]
        assert not any(
            m.reply_to_message_id == ignored.message_id
            for m in bot_messages(world.server, world.discussion)
        )


async def test_the_chats_seen_are_kept_without_private_ones_and_listed_by_otklik_chats(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="handlers.telegram.seen")
    async with telegram_world(tmp_path, discussion_groups=True, direct_messages=True) as world:
        for _ in range(5):  # a burst: one write
            world.say("spec", world.housing, "/ids", world.topic)
        world.say("tspec", world.transport, "/help")
        world.say("citizen", world.discussion, "Когда починят дорогу?")
        citizen = world.person("citizen")
        world.server.send_user_message(citizen.id, citizen, "Здравствуйте, у нас нет воды")
        await world.idle()
        await world.app.chats.drain()

        seen = {c.chat: c for c in await world.app.chats.all()}
        assert set(seen) == {str(world.housing), str(world.transport), str(world.discussion)}
        housing = seen[str(world.housing)]
        assert housing.kind == "supergroup" and housing.title == "ЖКХ"
        assert housing.topics == {str(world.topic): "Обращения"}
        assert str(citizen.id) not in seen  # a private chat's id is the person's

        # Incoming chat ids at DEBUG, never a private chat's.
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert f"supergroup {world.housing} «ЖКХ» topic {world.topic}" in logged
        assert str(citizen.id) not in logged

        config = str(tmp_path / "config.yaml")
        result = await asyncio.to_thread(runner.invoke, cli, ["chats", "-c", config], env={})
        assert result.exit_code == 0, result.output
        out = " ".join(result.output.split())
        assert str(world.housing) in out and "Обращения" in out
        assert f"department housing chat (topic {world.topic})" in out
        assert "discussion group" in out and "coordination chat" in out
        assert str(citizen.id) not in out


CONFIG = """
locale: ru
timezone: Europe/Moscow
database: {{url: "sqlite+aiosqlite:///{db}"}}
playbooks: {{path: "{root}/playbooks/default", templates: "{root}/playbooks/templates"}}
telegram: {{token: "{token}", api_base: "{api_base}", limits: {{scale: {scale}}}}}
api: {{listen: "127.0.0.1:0"}}
outbox: {{poll_interval_s: 0.05, base_retry_s: 0.05, max_retry_s: 2}}
departments:
  - {{id: housing, name: ЖКХ, telegram: {{chat_id: {housing}, topic_id: {topic}}}}}
  - {{id: transport, name: Транспорт, telegram: {{chat_id: {transport}}}}}
  - {{id: health, name: Здравоохранение, telegram: {{chat_id: {health}}}}}
  - {{id: education, name: Образование, telegram: {{chat_id: {education}}}}}
  - {{id: social, name: Соцзащита, telegram: {{chat_id: {social}, topic_id: 7}}}}
  - {{id: coordination, name: ЦУР, telegram: {{chat_id: {coordination}}}}}
coordination_department: coordination
"""


async def test_the_start_up_check_names_each_broken_department_chat_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.chat.checks")
    caplog.set_level(logging.WARNING, logger="handlers.telegram.seen")
    server = TelegramServer(Limits(time_scale=SCALE))
    await server.start()
    # Privacy mode on: a plain member may miss commands written without @otklik_bot.
    bot = server.add_bot(TOKEN, "otklik_bot", can_read_all_group_messages=False)
    housing = server.create_chat("supergroup", "ЖКХ", is_forum=True)  # a plain member
    server.create_topic(housing.id, "Обращения")
    transport = server.create_chat("supergroup", "Транспорт", bot_status="left")
    health = server.create_chat("supergroup", "Здравоохранение", bot_status=None)
    coordination = server.create_chat("supergroup", "ЦУР", bot_status="administrator")
    # A basic group turned into a supergroup (topics on, say): the config has the old id.
    education = server.create_chat("group", "Образование", bot_status="administrator")
    upgraded = server.migrate_to_supergroup(education.id)
    plain = server.create_chat("supergroup", "Соцзащита", bot_status="administrator")  # no topics
    path = tmp_path / "config.yaml"
    path.write_text(
        CONFIG.format(
            db=tmp_path / "otklik.db",
            root=ROOT,
            token=TOKEN,
            api_base=server.api_base,
            scale=SCALE,
            housing=housing.id,
            topic=999_999,  # no such topic
            transport=transport.id,
            health=health.id,
            education=education.id,
            social=plain.id,
            coordination=coordination.id,
        ),
        encoding="utf-8",
    )
    config = load_config(path, env={})
    application = App(config, load_playbook(config.playbooks.path))
    await application.start()
    try:
        await server.wait_for(lambda: bool(bot_messages(server, coordination.id)), timeout=10)
        # A group upgraded while the bot runs: its new id is in the log.
        culture = server.create_chat("group", "Культура")
        moved = server.migrate_to_supergroup(culture.id, is_forum=True)
        await server.wait_for(lambda: not server.pending_updates(bot), timeout=10)
        await asyncio.sleep(0.3)  # nothing more comes
        reports = bot_messages(server, coordination.id)
    finally:
        await application.stop()
        await server.stop()

    assert len(reports) == 1
    text = reports[0].text or ""
    assert text.startswith("⚠️ " + CHECK_HEADER), text
    lines = {line.split(" (")[0].lstrip("• "): line for line in text.splitlines()[1:]}
    assert set(lines) == {"ЖКХ", "Транспорт", "Здравоохранение", "Образование", "Соцзащита"}
    assert "нет тем, а в настройке указана тема 7" in lines["Соцзащита"]
    assert f"стала супергруппой, её новый id {upgraded.id}" in lines["Образование"]
    assert "departments[1].telegram" in lines["Транспорт"] and "добавьте бота снова" in text
    assert "departments[2].telegram" in lines["Здравоохранение"] and "проверьте chat_id" in text
    assert "нет темы 999999" in text and "режиме приватности" in text
    warnings = [r.getMessage() for r in caplog.records if r.name == "bot.chat.checks"]
    assert len(warnings) == 6, warnings  # housing twice: privacy, and the missing topic
    assert sum("departments[0].telegram (housing)" in w for w in warnings) == 2
    assert not any("departments[5]" in w for w in warnings)  # the coordination chat is fine
    assert any(
        f"group {culture.id} «Культура» became supergroup {moved.id}" in r.getMessage()
        for r in caplog.records
        if r.name == "handlers.telegram.seen"
    )


async def test_the_start_up_check_says_nothing_when_every_chat_is_right(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.chat.checks")
    async with telegram_world(tmp_path) as world:
        asked = world.say("duty", world.coordination, "/help")
        await world.answer_to(asked)
        await world.idle()
        for chat in (world.housing, world.transport, world.coordination):
            assert not any(CHECK_HEADER in (m.text or "") for m in bot_messages(world.server, chat))
    assert not [r for r in caplog.records if r.name == "bot.chat.checks"]
