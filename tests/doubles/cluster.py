"""Several `otklik run` instances on one PostgreSQL database, Telegram in webhook mode at the
project's test server (issue 21), and the HTTP client that feeds them mentions.

The test server stands for Telegram and for the reverse proxy in front of the instances: it
delivers updates round-robin to every instance's webhook (`set_webhook_targets`). The
playbook is the shipped one with a short SLA (sla.yaml below): every case's first reminder
comes 20 s after it opens, on a round-the-clock calendar, so a test sees it fire
(`short_sla=False` keeps the shipped SLA, whose reminders come hours later).

Used by tests/e2e/test_scaleout.py and bench/scaleout.py.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.doubles.instances import Instance
from tests.doubles.support import PACK_HEAD, PACK_LINE, ROOT
from tests.doubles.synapse import free_port
from tests.doubles.telegram_server.flood import Limits
from tests.doubles.telegram_server.server import TelegramServer
from tests.doubles.telegram_server.state import BotInfo, StoredMessage, User

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
SOURCE_TOKEN = "scaleout-source-token-0123456789abcdef"
PUBLIC_URL = "https://otklik.example.org"
WEBHOOK_PATH = "/telegram/webhook"
REMINDER_AFTER_S = 20  # sla.yaml below: "-9m40s" of a 10m first touch

# Every priority's policy: round the clock, the first reminder 20 s after the case opens,
# deadlines far enough that no breach (nor escalation) comes within a test.
SLA = """
calendars: {}
policies:
  fast:
    calendar: 24x7
    first_touch: 10m
    answer: 1h
    resolution: 2h
    reminders: ["-9m40s"]
    escalation_chain: standard
by_priority: {critical: fast, high: fast, normal: fast, low: fast}
"""

DEPARTMENTS = (
    ("housing", "ЖКХ"),
    ("transport", "Транспорт"),
    ("health", "Здравоохранение"),
    ("education", "Образование"),
    ("social", "Соцзащита"),
    ("coordination", "ЦУР"),
)

CONFIG = """
organisation: Администрация Энской области
locale: ru
timezone: Europe/Moscow
log_level: WARNING
database: {{url: "{url}"}}
playbooks: {{path: "{playbooks}", templates: "{root}/playbooks/templates"}}
telegram:
  token: "{token}"
  api_base: "{api_base}"
  limits: {{scale: {scale}}}
  mode: webhook
  webhook: {{url: "{public_url}", reclaim_after_s: {reclaim_s}}}
api:
  listen: "127.0.0.1:{api_port}"
  sources:
    - {{name: monitoring, token: "{source_token}", scopes: [ingest, read]}}
metrics: {{listen: "127.0.0.1:{metrics_port}"}}
instance: {{name: {name}, leader_check_s: 1}}
outbox: {{poll_interval_s: 0.05, base_retry_s: 0.05, max_retry_s: 2, lease_s: {lease_s}}}
departments:
{departments}
coordination_department: coordination
staff:
{staff}
  # The shipped approval.yaml asks them at the high and critical tiers.
  - {{id: press, name: Пресс-секретарь, telegram_id: 1007, global_roles: [press_secretary]}}
  - {{id: head, name: Глава, telegram_id: 1008, global_roles: [leadership]}}
"""

# Texts that open cases (negative) in each department, and some that do not; "(#n)" tells
# complaints apart, so each negative mention opens a case of its own (bench/ingest.py does so).
NEGATIVE = (
    "Третий день нет отопления, батареи ледяные, управляющая компания молчит",
    "Автобус 12 опять не пришёл, ждали на остановке час",
    "Во дворе неделю не вывозят мусор, контейнеры переполнены",
    "В поликлинике невозможно записаться к врачу, телефон не отвечает",
    "Яма на дороге у школы, дети ходят по проезжей части",
    "Пенсию задержали второй месяц, в соцзащите не отвечают",
)
NEUTRAL = (
    "Сегодня в парке прошёл концерт, было много людей",
    "Открылась новая библиотека на улице Мира",
    "Спасибо за новый автобусный маршрут, очень удобно",
    "Когда будет ярмарка выходного дня на площади?",
)
CARD = re.compile(r"^\S+ Кейс №(\d+) · ")
REMINDER = re.compile(r"^⏰ Кейс №(\d+): ")


def mentions(count: int, negative_share: float, seed: int = 21) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for n in range(count):
        negative = rng.random() < negative_share
        text = rng.choice(NEGATIVE if negative else NEUTRAL)
        out.append(
            {
                "external_id": f"s{n}",
                "text": f"{text} (#{n})",
                "author": {"id": f"user{n}", "name": "Житель", "channel": "vk"},
                "url": f"https://vk.com/wall-1_{n}",
                "sentiment": "negative" if negative else rng.choice(("neutral", "positive")),
            }
        )
    return out


def chunks(items: Sequence[dict[str, Any]], batch: int, singles: int) -> list[list[Any]]:
    """Batches of `batch` with `singles` one-mention requests after each."""
    out: list[list[Any]] = []
    at = 0
    while at < len(items):
        out.append(list(items[at : at + batch]))
        at += batch
        for item in items[at : at + singles]:
            out.append([item])
        at += singles
    return out


@dataclass
class Ingested:
    """What the API said: the case of every accepted mention, when each case's answer came
    (the test process's monotonic clock), and the answers that were not 202."""

    case_of: dict[str, int | None] = field(default_factory=dict)
    answered_at: dict[int, float] = field(default_factory=dict)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (status, body) of non-202
    resent: int = 0  # requests sent again to another instance (the first did not answer)


class Cluster:
    def __init__(
        self,
        directory: Path,
        url: str,
        names: Sequence[str],
        *,
        scale: float,
        lease_s: float = 30.0,
        reclaim_s: float = 60.0,
        short_sla: bool = True,
    ) -> None:
        self.directory, self.url, self.scale = directory, url, scale
        self.short_sla = short_sla
        self.server = TelegramServer(Limits(time_scale=scale))
        self.names = list(names)
        self.lease_s, self.reclaim_s = lease_s, reclaim_s
        self.instances: dict[str, Instance] = {}
        self.chats: dict[str, int] = {}
        self.staff: dict[str, User] = {}  # a specialist per department
        self.bot: BotInfo | None = None

    async def __aenter__(self) -> Cluster:
        await self.server.start()
        self.bot = self.server.add_bot(TOKEN, "otklik_bot")
        playbooks = self.directory / "playbooks"
        playbooks.mkdir()
        for entry in (ROOT / "playbooks" / "default").iterdir():
            if entry.is_dir():  # the models and corpus: large, read only
                (playbooks / entry.name).symlink_to(entry)
            elif entry.name != "sla.yaml" or not self.short_sla:
                # Copied: the playbook refers to its files (holidays.ics) only inside itself.
                shutil.copyfile(entry, playbooks / entry.name)
        if self.short_sla:
            (playbooks / "sla.yaml").write_text(SLA, encoding="utf-8")
        departments, staff = [], []
        for n, (dept, title) in enumerate(DEPARTMENTS):
            chat = self.server.create_chat("supergroup", title).id
            self.chats[dept] = chat
            person = self.server.create_user(f"Специалист {title}", id=2000 + n)
            self.server.add_member(chat, person, announce=False)
            self.staff[dept] = person
            departments.append(f"  - {{id: {dept}, name: {title}, telegram: {{chat_id: {chat}}}}}")
            staff.append(
                f"  - {{id: s{dept}, name: Специалист {title}, telegram_id: {person.id},"
                f" roles: {{{dept}: [specialist]}}}}"
            )
        for name in self.names:
            api_port, metrics_port = free_port(), free_port()
            config = self.directory / f"{name}.yaml"
            config.write_text(
                CONFIG.format(
                    url=self.url,
                    playbooks=playbooks,
                    root=ROOT,
                    token=TOKEN,
                    api_base=self.server.api_base,
                    scale=self.scale,
                    public_url=PUBLIC_URL,
                    reclaim_s=self.reclaim_s,
                    api_port=api_port,
                    source_token=SOURCE_TOKEN,
                    metrics_port=metrics_port,
                    name=name,
                    lease_s=self.lease_s,
                    departments="\n".join(departments),
                    staff="\n".join(staff),
                ),
                encoding="utf-8",
            )
            log = self.directory / f"{name}.log"
            self.instances[name] = Instance(name, config, log, metrics_port, api_port)
        # The load balancer: Telegram's POSTs to PUBLIC_URL reach the instances in turn.
        self.server.set_webhook_targets(
            self.bot, [i.api_base + WEBHOOK_PATH for i in self.instances.values()]
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(instance.stop() for instance in self.instances.values()))
        await self.server.stop()

    async def start(self, names: Sequence[str] | None = None) -> None:
        """The first starts alone (it migrates the database and leads), then the others."""
        chosen = [self.instances[n] for n in names or self.names]
        first, rest = chosen[0], chosen[1:]
        await first.start()
        assert await first.until_answering() is True, first.said()[-3000:]
        for instance in rest:
            await instance.start()
        for instance in rest:
            await instance.until_answering()
        await self.server.wait_for(
            lambda: self.bot is not None and self.server.webhook_of(self.bot) is not None, 10
        )

    # ---- what the test server holds ----------------------------------------------------

    def bot_messages(self) -> list[StoredMessage]:
        return [m for chat in self.chats.values() for m in self.server.messages(chat) if m.bot_id]

    def cards(self) -> dict[tuple[int, int], list[StoredMessage]]:
        """(chat, case id) -> the card messages posted for the case in the chat."""
        out: dict[tuple[int, int], list[StoredMessage]] = {}
        for m in self.bot_messages():
            found = CARD.match(m.text or "") if m.reply_to_message_id is None else None
            if found:
                out.setdefault((m.chat_id, int(found.group(1))), []).append(m)
        return out

    def packs(self) -> dict[tuple[int, int], list[StoredMessage]]:
        """(chat, case id) -> the pack cards listing the case, as the chat shows them now: a
        backlogged chat shows small cases a line each on a pack card instead of a card each."""
        out: dict[tuple[int, int], list[StoredMessage]] = {}
        for m in self.bot_messages():
            if m.reply_to_message_id is None and PACK_HEAD in (m.text or ""):
                for case in {int(n) for n in PACK_LINE.findall(m.text or "")}:
                    out.setdefault((m.chat_id, case), []).append(m)
        return out

    def shown(self) -> set[int]:
        """Cases in front of a person: on their own card or on a pack card's line."""
        return {case for _, case in self.cards()} | {case for _, case in self.packs()}

    def reminders(self) -> dict[int, int]:
        """Case id -> reminders posted under its card."""
        out: dict[int, int] = {}
        for m in self.bot_messages():
            found = REMINDER.match(m.text or "")
            if found:
                out[int(found.group(1))] = out.get(int(found.group(1)), 0) + 1
        return out


async def ingest(
    instances: Sequence[Instance],
    requests: Sequence[list[dict[str, Any]]],
    into: Ingested,
    clients: int = 4,
) -> None:
    """Send the requests from `clients` concurrent clients, each to the next instance in
    turn; a request an instance does not answer (it died) goes to the next one, as a load
    balancer's retry does. 503 (resend) is honoured a few times; anything else not 202 is
    recorded in `into.refused`."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    turn = 0
    headers = {"Authorization": f"Bearer {SOURCE_TOKEN}"}

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal turn
        while not queue.empty():
            body = queue.get_nowait()
            for attempt in range(3 * len(instances) + 5):
                target = instances[turn % len(instances)]
                turn += 1
                if not target.running:
                    continue
                try:
                    async with http.post(
                        f"{target.api_base}/api/v1/mentions", json=body, headers=headers
                    ) as response:
                        status, answer = response.status, await response.text()
                        parsed = await response.json() if status in (202, 422) else None
                except (aiohttp.ClientError, TimeoutError):
                    into.resent += 1
                    continue
                if status == 503 and attempt < 3 * len(instances) + 4:
                    await asyncio.sleep(0.2)
                    continue
                if status != 202:
                    into.refused.append((status, answer[:500]))
                    break
                now = loop.time()
                assert parsed is not None
                for item, result in zip(body, parsed["results"], strict=True):
                    case = result.get("case")
                    into.case_of[item["external_id"]] = case
                    if case is not None:
                        into.answered_at.setdefault(case, now)
                break

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
