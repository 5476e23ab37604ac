"""A whole Otklik with its VK community page: the Telegram test server for the staff, the
VK test server (tests/doubles/vk_server) for the citizens, Callback API events sent to the
bot's HTTP server as VK sends them. The App can be crashed and started again over the same
database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from bot.clock import SystemClock
from bot.settings.config import Config, load_config
from bot.settings.playbook import Playbook, load_playbook
from handlers.app import App, _bound_address
from tests.doubles.support import ROOT
from tests.doubles.telegram_server.flood import Limits
from tests.doubles.telegram_server.server import TelegramServer
from tests.doubles.telegram_world import CONFIG, SCALE, TOKEN, World
from tests.doubles.vk_server import CallbackSender, VkServer

GROUP = 218_861_756  # the community
POST = 10_742  # its post citizens comment on
VK_TOKEN = "vk1.a.community0token0for0tests0only0123456789"
SERVICE_TOKEN = "service0token0for0reading0comments0123456"
SECRET = "Otklik0Secret0Key"
CONFIRMATION = "a1b2c3d4"

VK_SECTION = """
vk:
  group_id: {group}
  token: "{token}"
  secret: "{secret}"
  confirmation: "{confirmation}"
  api_base: "{api_base}"
"""


class VkWorld(World):
    vk: VkServer
    callback: CallbackSender
    config: Config
    playbook: Playbook

    async def restart(self) -> None:
        """A new App over the same database, as after `systemctl restart`."""
        self.app = App(self.config, self.playbook, SystemClock())
        await self.app.start()
        self.callback.url = callback_url(self.app, self.config)
        await self.server.wait_for(lambda: self.server.is_polling(self.bot), timeout=10)

    async def crash(self) -> None:
        """The process dies: deliveries in hand are cut off before their outcome is written,
        so what they were sending stays `sending` in the outbox."""
        app = self.app
        worker, app._worker_task = app._worker_task, None
        in_flight = list(app.worker._in_flight.values())
        for task in (worker, *in_flight):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (worker, *in_flight) if t), return_exceptions=True)
        await app.stop()

    async def idle(self, within: float = 10.0) -> None:
        """As World.idle, and every stored Callback API event taken in: intake gathers a
        burst for a moment before it takes it in (handlers/vk/intake.py)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            async with self.app.database.reader() as uow:
                waiting = await uow.vk_events.waiting(1)
            if not waiting:
                break
            if loop.time() > deadline:
                raise TimeoutError("stored VK events were not taken in")
            await asyncio.sleep(0.025)
        await super().idle(max(0.1, deadline - loop.time()))

    async def until(self, condition: Callable[[], bool], within: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not condition():
            if loop.time() > deadline:
                raise TimeoutError("the condition did not come true")
            await asyncio.sleep(0.025)


def callback_url(app: App, config: Config) -> str:
    assert app._runner is not None and config.vk is not None
    address = _bound_address(app._runner)
    assert address is not None
    return f"http://{address[0]}:{address[1]}{config.vk.callback_path}"


@asynccontextmanager
async def vk_world(tmp_path: Path) -> AsyncIterator[VkWorld]:
    server = TelegramServer(Limits(time_scale=SCALE))
    await server.start()
    vk = VkServer()
    await vk.start()
    vk.add_token(VK_TOKEN, "group", GROUP)
    vk.add_token(SERVICE_TOKEN, "service", 51_694_790)
    vk.add_post(GROUP, POST)
    vk.add_person(7777, "Пётр", "Сидоров")
    bot = server.add_bot(TOKEN, "otklik_bot")
    world = VkWorld(server, bot, None)  # type: ignore[arg-type]
    world.vk = vk
    for staff_id, name, user_id in (
        ("spec", "Анна", 1001),
        ("spec2", "Борис", 1002),
        ("appr", "Вера", 1003),
        ("lead", "Глеб", 1004),
        ("duty", "Дарья", 1005),
        ("tspec", "Егор", 1006),
        ("admin", "Жанна", 1007),
        ("press", "Зоя", 1008),
        ("press2", "Илья", 1009),
    ):
        world.people[staff_id] = server.create_user(name, id=user_id, language_code="ru")
    housing = server.create_chat("supergroup", "ЖКХ", is_forum=True)
    world.housing, world.topic = housing.id, server.create_topic(housing.id, "Обращения")
    world.transport = server.create_chat("supergroup", "Транспорт").id
    world.coordination = server.create_chat("supergroup", "ЦУР").id
    for staff in world.people.values():
        for chat in (world.housing, world.transport, world.coordination):
            server.add_member(chat, staff, announce=False)
    path = tmp_path / "config.yaml"
    text = CONFIG.format(
        locale="ru",
        db=tmp_path / "otklik.db",
        root=ROOT,
        token=TOKEN,
        api_base=server.api_base,
        scale=SCALE,
        housing=world.housing,
        topic=world.topic,
        transport=world.transport,
        coordination=world.coordination,
        direct_messages="false",
        discussion_groups="",
    )
    text += VK_SECTION.format(
        group=GROUP,
        token=VK_TOKEN,
        secret=SECRET,
        confirmation=CONFIRMATION,
        api_base=vk.api_base,
    )
    path.write_text(text, encoding="utf-8")
    world.config = load_config(path, env={})
    world.playbook = load_playbook(world.config.playbooks.path)
    world.callback = CallbackSender("", GROUP, SECRET)
    try:
        await world.restart()
        yield world
    finally:
        if world.app is not None:
            await world.app.stop()
        await vk.stop()
        await server.stop()
