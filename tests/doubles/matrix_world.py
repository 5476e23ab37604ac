"""A whole Otklik on a real Synapse, and people acting through their own matrix-nio clients."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from nio import AsyncClient

from bot.clock import Clock, SystemClock
from bot.messages.views import card_ref
from bot.model import Identity, Mention, Sentiment
from bot.settings.config import Config, load_config
from bot.settings.drill_scenarios import DrillScenario
from bot.settings.playbook import load_playbook
from handlers.app import App, with_room_ids
from handlers.matrix.adapter import MatrixAdapter
from handlers.matrix.shown import CARD_FIELD
from tests.doubles.migrated import migrated_sqlite
from tests.doubles.support import ROOT
from tests.doubles.synapse import MatrixUser, SynapseServer

# Generous bounds for a condition on a loaded 2-core CI: tests wait for what they need, never
# a fixed time, and only a real failure takes this long.
PATIENCE_S = 30.0
START_PATIENCE_S = 60.0  # a first sync, with the joins before it

STAFF = (
    ("spec", "Анна Иванова", "housing: [specialist]"),
    ("appr", "Вера Петрова", "housing: [approver]"),
    ("tspec", "Егор Волков", "transport: [specialist]"),
    ("duty", "Дарья Морозова", "coordination: [specialist]"),
    ("admin", "Жанна Котова", ""),
    ("press", "Зоя Кравец", "housing: [approver]"),  # also a press secretary
    ("press2", "Илья Соколов", ""),  # a press secretary only
)
GLOBAL_ROLES = {
    "duty": "duty",
    "admin": "admin",
    "press": "press_secretary",
    "press2": "press_secretary",
}

CONFIG = """
organisation: Администрация Энской области
locale: {locale}
timezone: Europe/Moscow
database: {{url: "sqlite+aiosqlite:///{db}"}}
playbooks: {{path: "{root}/playbooks/default", templates: "{root}/playbooks/templates"}}
matrix:
  homeserver: "{homeserver}"
  user_id: "{bot_id}"
  access_token: "{bot_token}"
  device_id: "{bot_device}"
  rate_limit: {rate_limit}
api: {{listen: "127.0.0.1:0"}}
outbox: {{poll_interval_s: 0.05, base_retry_s: 0.05, max_retry_s: 2}}
departments:
  - {{id: housing, name: ЖКХ, matrix: {{room_id: "{housing}"}}}}
  - {{id: transport, name: Транспорт, matrix: {{room_id: "{transport}"}}}}
  - {{id: coordination, name: ЦУР, matrix: {{room_id: "{coordination}"}}}}
coordination_department: coordination
staff:
{staff}
{extra}"""


class MatrixWorld:
    def __init__(
        self,
        synapse: SynapseServer,
        tmp_path: Path,
        locale: str,
        clock: Clock | None = None,
        drills: Mapping[str, DrillScenario] | None = None,
        aliased: Collection[str] = (),
        rate_limit: Mapping[str, float] | None = None,
        extra_config: str = "",
        extra_staff: tuple[tuple[str, str, str], ...] = (),
    ) -> None:
        # (staff id, name, roles) beside STAFF: a test that needs a lead adds one
        self.staff = (*STAFF, *extra_staff)
        self.clock = clock or SystemClock()  # a FrozenClock scripts timings (drills)
        # The bot's pacing: the fixture's own limits unless a test lowers the server's.
        self.rate_limit = dict(rate_limit or {"per_second": 1000, "burst": 1000})
        self.extra_config = extra_config  # more top-level sections (a telegram: one)
        self.drills = drills  # the playbook's drill scenarios instead of the shipped ones
        self.synapse = synapse
        self.tmp_path = tmp_path
        self.locale = locale
        suffix = uuid.uuid4().hex[:8]
        self.bot = synapse.register(f"otklik-{suffix}")
        self.users: dict[str, MatrixUser] = {
            name: synapse.register(f"{name}-{suffix}") for name, _, _ in self.staff
        }
        self.users["stranger"] = synapse.register(f"troll-{suffix}")
        owner = self.users["duty"]
        everyone = [u.user_id for u in self.users.values() if u != owner]
        everyone.append(self.bot.user_id)
        self.rooms = {
            dept: synapse.create_room(owner.access_token, name, invite=everyone)
            for dept, name in (
                ("housing", "ЖКХ"),
                ("transport", "Транспорт"),
                ("coordination", "ЦУР"),
            )
        }
        for name, user in self.users.items():
            if name != "duty":
                for room in self.rooms.values():
                    synapse.join(user.access_token, room)
        # Departments the config names by a room alias instead of the room's id.
        self.aliases: dict[str, str] = {}
        for dept in aliased:
            alias = f"#press-{dept}-{suffix}:{synapse.server_name}"
            synapse.add_alias(owner.access_token, alias, self.rooms[dept])
            self.aliases[dept] = alias
        self.clients: dict[str, AsyncClient] = {}
        self.app: App | None = None
        self._mentions = 0

    def config(self) -> Config:
        staff = "\n".join(
            f'  - {{id: {name}, name: {full}, matrix_id: "{self.users[name].user_id}", '
            f"roles: {{{roles}}}"
            + (f", global_roles: [{GLOBAL_ROLES[name]}]" if name in GLOBAL_ROLES else "")
            + "}"
            for name, full, roles in self.staff
        )
        path = self.tmp_path / "config.yaml"
        path.write_text(
            CONFIG.format(
                locale=self.locale,
                db=self.tmp_path / "otklik.db",
                root=ROOT,
                homeserver=self.synapse.base_url,
                bot_id=self.bot.user_id,
                bot_token=self.bot.access_token,
                bot_device=self.bot.device_id,
                housing=self.aliases.get("housing", self.rooms["housing"]),
                transport=self.aliases.get("transport", self.rooms["transport"]),
                coordination=self.aliases.get("coordination", self.rooms["coordination"]),
                rate_limit=json.dumps(self.rate_limit),
                extra=self.extra_config,
                staff=staff,
            ),
            encoding="utf-8",
        )
        return load_config(path, env={})

    async def start_bot(self) -> App:
        config = await with_room_ids(self.config())
        playbook = load_playbook(config.playbooks.path)
        if self.drills is not None:
            playbook = playbook.model_copy(update={"drills": dict(self.drills)})
        await migrated_sqlite(self.tmp_path / "otklik.db")
        app = App(config, playbook, self.clock)
        await app.start()
        await synced(app)
        self.app = app
        return app

    async def stop_bot(self) -> None:
        if self.app is not None:
            await self.app.stop()
            self.app = None

    def client(self, name: str) -> AsyncClient:
        if name not in self.clients:
            user = self.users[name]
            client = AsyncClient(self.synapse.base_url, user.user_id, device_id=user.device_id)
            client.access_token = user.access_token
            client.user_id = user.user_id
            self.clients[name] = client
        return self.clients[name]

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()

    # --- acting -------------------------------------------------------------------------

    async def open_case(self, text: str = "Третий день нет отопления, батареи ледяные") -> int:
        assert self.app is not None
        self._mentions += 1
        mention = Mention(
            source="vk",
            external_id=f"m{self._mentions}",
            text=text,
            author=Identity("vk", f"id{self._mentions}", "Пётр Сидоров"),
            received_at=datetime.now(UTC),
            url=f"https://vk.com/wall-1_{self._mentions}",
            sentiment=Sentiment.NEGATIVE,
        )
        result = await self.app.intake.receive(mention)
        assert result.case is not None and result.case.id is not None
        return result.case.id

    async def react(self, who: str, room: str, event_id: str, key: str) -> str:
        content = {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
        response = await self.client(who).room_send(room, "m.reaction", content)
        return str(response.event_id)  # type: ignore[union-attr]

    async def say(self, who: str, room: str, text: str, thread: str | None = None) -> str:
        content: dict[str, Any] = {"msgtype": "m.text", "body": text}
        if thread:
            content["m.relates_to"] = {
                "rel_type": "m.thread",
                "event_id": thread,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": thread},
            }
        response = await self.client(who).room_send(room, "m.room.message", content)
        return str(response.event_id)  # type: ignore[union-attr]

    # --- reading ------------------------------------------------------------------------

    async def get(self, path: str, who: str = "duty") -> dict[str, Any]:
        token = self.users[who].access_token
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                self.synapse.base_url + path, headers={"Authorization": f"Bearer {token}"}
            ) as response,
        ):
            return dict(await response.json())

    async def card_event(self, case_id: int, department: str = "housing") -> str:
        assert self.app is not None
        room = self.rooms[department]

        async def lookup() -> str | None:
            assert self.app is not None
            async with self.app.database.uow() as uow:
                return await uow.refs.get("matrix", room, card_ref(case_id, department))

        return await eventually(lookup)

    async def current_text(self, room: str, event_id: str) -> str:
        """The message's body as clients show it now: the latest edit wins."""
        base = f"/_matrix/client/v1/rooms/{quote(room)}/relations/{quote(event_id)}"
        edits = (await self.get(f"{base}/m.replace?limit=50"))["chunk"]
        if edits:
            latest = max(edits, key=lambda e: e["origin_server_ts"])
            return str(latest["content"]["m.new_content"]["body"])
        event = await self.get(f"/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event_id)}")
        return str(event["content"]["body"])

    async def card_version(self, room: str, event_id: str) -> int | None:
        """The case version a card shows now: its latest edit's (or its own) version field.
        A person reacts on what the room shows; a reaction on an older card is refused."""
        base = f"/_matrix/client/v1/rooms/{quote(room)}/relations/{quote(event_id)}"
        edits = (await self.get(f"{base}/m.replace?limit=50"))["chunk"]
        if edits:
            latest = max(edits, key=lambda e: e["origin_server_ts"])
            content = latest["content"]["m.new_content"]
        else:
            path = f"/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event_id)}"
            content = (await self.get(path))["content"]
        version = (content.get(CARD_FIELD) or {}).get("version")
        return int(version) if isinstance(version, int) else None

    async def card_is_current(self, case_id: int, department: str = "housing") -> bool:
        """Whether the room shows the case's card as it now stands."""
        assert self.app is not None
        case = await self.app.cases.get(case_id)
        card = await self.card_event(case_id, department)
        shown = await self.card_version(self.rooms[department], card)
        return case is not None and shown == case.version

    async def bot_reactions(self, room: str, event_id: str) -> set[str]:
        base = f"/_matrix/client/v1/rooms/{quote(room)}/relations/{quote(event_id)}"
        chunk = (await self.get(f"{base}/m.annotation?limit=100"))["chunk"]
        return {
            e["content"]["m.relates_to"]["key"] for e in chunk if e["sender"] == self.bot.user_id
        }

    async def bot_membership(self, room: str, who: str = "duty") -> str | None:
        """The bot's membership in a room: "invite", "join", "leave", or None if never asked in
        (as `who`, a member of the room, sees it)."""
        path = f"/_matrix/client/v3/rooms/{quote(room)}/state/m.room.member/"
        state = await self.get(path + quote(self.bot.user_id), who)
        membership = state.get("membership")
        return str(membership) if membership else None

    async def thread(self, room: str, root: str) -> list[dict[str, Any]]:
        base = f"/_matrix/client/v1/rooms/{quote(room)}/relations/{quote(root)}"
        chunk = (await self.get(f"{base}/m.thread?limit=100&dir=f"))["chunk"]
        return list(chunk)

    async def bot_messages(self, room: str, who: str = "duty") -> list[dict[str, Any]]:
        path = f"/_matrix/client/v3/rooms/{quote(room)}/messages?dir=b&limit=200"
        chunk = (await self.get(path, who))["chunk"]
        return [
            e
            for e in reversed(chunk)
            if e["sender"] == self.bot.user_id and e["type"] == "m.room.message"
        ]


async def eventually(probe: Callable[[], Awaitable[Any]], within: float = PATIENCE_S) -> Any:
    """Poll our own state or the homeserver until `probe` returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def matrix_world(
    synapse: SynapseServer,
    tmp_path: Path,
    locale: str = "ru",
    *,
    clock: Clock | None = None,
    drills: Mapping[str, DrillScenario] | None = None,
    aliased: Collection[str] = (),
    rate_limit: Mapping[str, float] | None = None,
    extra_config: str = "",
    extra_staff: tuple[tuple[str, str, str], ...] = (),
) -> AsyncIterator[MatrixWorld]:
    """`aliased`: departments the config names by a room alias; `rate_limit`: the bot's
    matrix.rate_limit; `extra_config`: more top-level config sections, as YAML; `extra_staff`:
    (id, name, roles) beside the fixture's staff."""
    world = MatrixWorld(
        synapse, tmp_path, locale, clock, drills, aliased, rate_limit, extra_config, extra_staff
    )
    await world.start_bot()
    try:
        yield world
    finally:
        await world.stop_bot()
        await world.close()


async def synced(app: App) -> None:
    """Wait for the app's first Matrix sync: events sent before it are history, not work."""
    await asyncio.wait_for(matrix_adapter(app).synced.wait(), START_PATIENCE_S)


def matrix_adapter(app: App) -> MatrixAdapter:
    """The running app's Matrix adapter (its `synced` event says the first sync is done)."""
    adapter = app.adapter("matrix")
    assert isinstance(adapter, MatrixAdapter)
    return adapter
