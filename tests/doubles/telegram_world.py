"""A whole Otklik talking to the Telegram test server, and people to act in it.

The App is the real one (aiogram dispatcher polling over HTTP, outbox, services, SQLite file);
people are the test server's users pressing buttons and writing replies.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from bot.clock import Clock, SystemClock
from bot.messages.views import card_ref
from bot.model import Identity, Mention, Sentiment
from bot.settings.config import load_config
from bot.settings.drill_scenarios import DrillScenario
from bot.settings.playbook import load_playbook
from handlers.app import App
from tests.doubles.migrated import migrated_sqlite
from tests.doubles.support import ROOT
from tests.doubles.telegram_server.flood import Limits
from tests.doubles.telegram_server.server import TelegramServer
from tests.doubles.telegram_server.state import BotInfo, StoredMessage, User

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
SCALE = 10  # Telegram's limits, ten times faster, on both sides

CONFIG = """
organisation: Администрация Энской области
locale: {locale}
timezone: Europe/Moscow
database: {{url: "sqlite+aiosqlite:///{db}"}}
playbooks: {{path: "{root}/playbooks/default", templates: "{root}/playbooks/templates"}}
telegram:
  token: "{token}"
  api_base: "{api_base}"
  protect_content: true
  limits: {{scale: {scale}}}
  direct_messages: {direct_messages}
  discussion_groups: [{discussion_groups}]
api: {{listen: "127.0.0.1:0"}}
outbox: {{poll_interval_s: 0.05, base_retry_s: 0.05, max_retry_s: 2}}
departments:
  - {{id: housing, name: ЖКХ, telegram: {{chat_id: {housing}, topic_id: {topic}}}}}
  - {{id: transport, name: Транспорт, telegram: {{chat_id: {transport}}}}}
  - {{id: coordination, name: ЦУР, telegram: {{chat_id: {coordination}}}}}
coordination_department: coordination
staff:
  - {{id: spec, name: Анна Иванова, telegram_id: 1001, roles: {{housing: [specialist]}}}}
  - {{id: spec2, name: Борис Орлов, telegram_id: 1002, roles: {{housing: [specialist]}}}}
  - {{id: appr, name: Вера Петрова, telegram_id: 1003, roles: {{housing: [approver]}}}}
  - {{id: lead, name: Глеб Смирнов, telegram_id: 1004, roles: {{housing: [lead]}}}}
  - {{id: duty, name: Дарья Морозова, telegram_id: 1005,
     roles: {{coordination: [specialist]}}, global_roles: [duty]}}
  - {{id: tspec, name: Егор Волков, telegram_id: 1006, roles: {{transport: [specialist]}}}}
  - {{id: admin, name: Жанна Котова, telegram_id: 1007, global_roles: [admin]}}
  - {{id: press, name: Зоя Кравец, telegram_id: 1008, roles: {{housing: [approver]}},
     global_roles: [press_secretary]}}
  - {{id: press2, name: Илья Соколов, telegram_id: 1009, global_roles: [press_secretary]}}
"""


PUBLIC_URL = "https://otklik.example.org"  # webhook mode: the reverse proxy's address
WEBHOOK_PATH = "/telegram/webhook"


class World:
    def __init__(self, server: TelegramServer, bot: BotInfo, app: App) -> None:
        self.server = server
        self.bot = bot
        self.app = app
        self.apps: list[App] = []  # every instance (webhook mode may run several)
        self.webhook_urls: list[str] = []  # where each instance serves the webhook
        self.people: dict[str, User] = {}
        self.housing = self.topic = self.transport = self.coordination = self.discussion = 0
        self.channel = 0  # the organisation's channel; `discussion` is its linked group
        self._mentions = 0

    def person(self, name: str) -> User:
        return self.people[name]

    async def open_case(
        self,
        text: str = "Третий день нет отопления, батареи ледяные",
        *,
        source: str = "vk",
        external_id: str | None = None,
        author: str | None = None,
    ) -> int:
        self._mentions += 1
        mention = Mention(
            source=source,
            external_id=external_id or f"m{self._mentions}",
            text=text,
            author=Identity(source, author or f"id{self._mentions}", "Пётр Сидоров"),
            received_at=datetime.now(UTC),
            url=f"https://vk.com/wall-1_{self._mentions}",
            sentiment=Sentiment.NEGATIVE,
        )
        result = await self.app.intake.receive(mention)
        assert result.case is not None and result.case.id is not None
        return result.case.id

    async def card(self, case_id: int, department: str = "housing") -> StoredMessage:
        """The case's card in the department chat, once it is there."""
        chat = {
            "housing": self.housing,
            "transport": self.transport,
            "coordination": self.coordination,
        }[department]
        ref = card_ref(case_id, department)
        found: list[str] = []

        async def lookup() -> None:
            async with self.app.database.uow() as uow:
                message_id = await uow.refs.get("telegram", str(chat), ref)
            if message_id:
                found.append(message_id)

        for _ in range(200):
            await lookup()
            if found:
                return self.server.message(chat, int(found[0]))
            await asyncio.sleep(0.025)
        raise TimeoutError(f"no card for case {case_id} in {department}")

    async def press(self, who: str, message: StoredMessage, label: str) -> dict[str, object]:
        query = self.server.press_button(
            message.chat_id, message.message_id, self.person(who), button_text=label
        )
        return await self.server.wait_answer(query, timeout=10)

    async def forge(self, who: str, message: StoredMessage, data: str) -> dict[str, object]:
        query = self.server.press_button(
            message.chat_id, message.message_id, self.person(who), data=data
        )
        return await self.server.wait_answer(query, timeout=10)

    def reply(self, who: str, message: StoredMessage, text: str) -> StoredMessage:
        return self.server.send_user_message(
            message.chat_id,
            self.person(who),
            text,
            reply_to=message.message_id,
            thread_id=message.thread_id,
        )

    def say(self, who: str, chat: int, text: str, thread: int | None = None) -> StoredMessage:
        return self.server.send_user_message(chat, self.person(who), text, thread_id=thread)

    async def idle(self, within: float = 10.0) -> None:
        """Until the bot has taken every update and delivered everything it caused. Updates
        are handled as tasks, so quiet must hold for a few checks in a row."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        quiet = 0
        while loop.time() < deadline:
            async with self.app.database.uow() as uow:
                depth = await uow.outbox.depth()
            busy = depth or self.server.pending_updates(self.bot)
            quiet = 0 if busy else quiet + 1
            if quiet >= 4:
                return
            await asyncio.sleep(0.03)
        raise TimeoutError("the bot did not settle")

    async def answer_to(self, message: StoredMessage, within: float = 10.0) -> StoredMessage:
        """The bot's reply to a person's message."""

        def replies() -> list[StoredMessage]:
            return [
                m
                for m in self.server.messages(message.chat_id)
                if m.bot_id is not None and m.reply_to_message_id == message.message_id
            ]

        await self.server.wait_for(lambda: bool(replies()), within)
        return replies()[0]

    async def case(self, case_id: int):  # type: ignore[no-untyped-def]
        return await self.app.cases.get(case_id)


@asynccontextmanager
async def telegram_world(
    tmp_path: Path,
    locale: str = "ru",
    scale: float = SCALE,
    *,
    discussion_groups: bool = False,
    direct_messages: bool = False,
    bot_privacy: bool = False,
    clock: Clock | None = None,
    drills: Mapping[str, DrillScenario] | None = None,
    extra_config: str = "",
    sandbox: bool = False,
    webhook: bool = False,
    instances: int = 1,
    database_url: str | None = None,
    leading: bool = True,
    reclaim_after_s: float | None = None,
) -> AsyncIterator[World]:
    """`discussion_groups`: the channel's discussion group is configured, so citizens'
    comments there become mentions; `direct_messages`: so do private messages to the bot;
    `bot_privacy`: the bot has privacy mode on (sees only commands and replies in groups);
    `clock`: the App's (a FrozenClock scripts timings); `drills`: the playbook's drill
    scenarios instead of the shipped ones; `extra_config`: more top-level YAML sections (a
    channel's, e.g. `email:`); `sandbox`: the browser chat runs beside Telegram (a second
    transport every department's chat has); `webhook`: updates come by webhook, the test
    server delivering them round-robin to `instances` Apps (each on a port of its own, all on
    `database_url`: PostgreSQL for more than one; in polling mode the leader polls);
    `leading`: False, the App starts not leading, so it does not poll until a test sets its
    `leadership` or, on PostgreSQL, the leader lock makes one lead; `reclaim_after_s`: how
    long a claim on an update must go unrenewed before another handles it."""
    if instances > 1 and database_url is None:
        raise ValueError("several instances need a shared (PostgreSQL) database")
    server = TelegramServer(Limits(time_scale=scale))
    await server.start()
    bot = server.add_bot(TOKEN, "otklik_bot", can_read_all_group_messages=not bot_privacy)
    world = World(server, bot, None)  # type: ignore[arg-type]
    for staff_id, name, user_id in (
        ("spec", "Анна", 1001),
        ("spec2", "Борис", 1002),
        ("appr", "Вера", 1003),
        ("lead", "Глеб", 1004),
        ("duty", "Дарья", 1005),
        ("tspec", "Егор", 1006),
        ("admin", "Жанна", 1007),
        ("press", "Зоя", 1008),  # housing's approver and a press secretary
        ("press2", "Илья", 1009),  # a press secretary only
    ):
        world.people[staff_id] = server.create_user(name, id=user_id, language_code=locale)
    world.people["stranger"] = server.create_user("Тролль", id=6666)
    world.people["citizen"] = server.create_user("Пётр", id=7777)

    housing = server.create_chat("supergroup", "ЖКХ", is_forum=True)
    world.housing, world.topic = housing.id, server.create_topic(housing.id, "Обращения")
    world.transport = server.create_chat("supergroup", "Транспорт").id
    world.coordination = server.create_chat("supergroup", "ЦУР").id
    channel = server.create_channel("Новости области")
    world.channel = channel.id
    world.discussion = server.create_chat("supergroup", "Обсуждение новостей").id
    server.link_discussion(channel.id, world.discussion)
    for staff in world.people.values():
        for chat in (world.housing, world.transport, world.coordination):
            server.add_member(chat, staff, announce=False)

    ports = [_free_port() for _ in range(instances)]
    world.webhook_urls = [f"http://127.0.0.1:{port}{WEBHOOK_PATH}" for port in ports]
    if webhook:  # the "load balancer": Telegram's POSTs to PUBLIC_URL reach the instances
        server.set_webhook_targets(bot, world.webhook_urls)
    playbook = None
    for number, port in enumerate(ports):
        path = tmp_path / ("config.yaml" if number == 0 else f"config{number}.yaml")
        sqlite_file = tmp_path / "otklik.db"
        text = CONFIG.format(
            locale=locale,
            db=sqlite_file,
            root=ROOT,
            token=TOKEN,
            api_base=server.api_base,
            scale=scale,
            housing=world.housing,
            topic=world.topic,
            transport=world.transport,
            coordination=world.coordination,
            direct_messages=str(direct_messages).lower(),
            discussion_groups=(
                f"{{chat_id: {world.discussion}, name: Обсуждение новостей}}"
                if discussion_groups
                else ""
            ),
        )
        if database_url is not None:
            text = text.replace(f"sqlite+aiosqlite:///{sqlite_file}", database_url)
        reclaim = "" if reclaim_after_s is None else f", reclaim_after_s: {reclaim_after_s}"
        if webhook:  # the telegram section ends just before `api:`
            text = text.replace(
                '\napi: {listen: "127.0.0.1:0"}',
                f'\n  mode: webhook\n  webhook: {{url: "{PUBLIC_URL}"{reclaim}}}'
                f'\napi: {{listen: "127.0.0.1:{port}"}}',
            )
            assert "mode: webhook" in text, "CONFIG changed: put the webhook keys in again"
        elif reclaim:
            keys = reclaim.removeprefix(", ")
            text = text.replace("\napi: {listen", f"\n  webhook: {{{keys}}}\napi: {{listen")
        path.write_text(
            text
            + extra_config
            + ("sandbox: {enabled: true}\n" if sandbox else "")
            + (f"instance: {{name: otklik-{number}}}\n" if instances > 1 else ""),
            encoding="utf-8",
        )
        config = load_config(path, env={})
        if playbook is None:
            playbook = load_playbook(config.playbooks.path)
            if drills is not None:
                playbook = playbook.model_copy(update={"drills": dict(drills)})
            if database_url is None:
                await migrated_sqlite(tmp_path / "otklik.db")
        app = App(config, playbook, clock or SystemClock())
        app.leadership.set(leading)
        world.apps.append(app)
    world.app = world.apps[0]
    started: list[App] = []
    try:
        for app in world.apps:
            await app.start()
            started.append(app)
        if webhook:
            await server.wait_for(lambda: server.webhook_of(bot) is not None, timeout=10)
        elif leading:
            await server.wait_for(lambda: server.is_polling(bot), timeout=10)
        yield world
    finally:
        for app in reversed(started):
            await app.stop()
        await server.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
