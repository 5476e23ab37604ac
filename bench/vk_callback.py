"""VK Callback API: how fast the bot answers "ok", and how soon the events are mentions.

Starts the App on the shipped example config with its `vk:` section on (SQLite in a scratch
directory), then sends `--events` wall comments one after another through the Callback API
as VK does, and `--replays` of them again under the same event ids. Measures each answer's
time (request to "ok", time.monotonic) and the time from the first event to the moment every
stored event has become a mention (events/s). VK wants the "ok" quickly; the work happens
after it.

Then the backlog, as after a restart: `--backlog` more comments (in threads of five, every
tenth edited) are stored while intake is stopped, and intake is timed taking them all in
(backlog events/s: what intake alone can do, whatever the sender's pace).

    .venv/bin/python bench/vk_callback.py [--events 500] [--replays 100] [--backlog 2000]

The last line is one JSON object: {"events", "ok_p50_ms", "ok_p99_ms", "ok_max_ms",
"taken_in_s", "events_per_s", "replays_acted_on", "ok_idle_p50_ms", "ok_idle_p99_ms", "backlog",
"backlog_s",
"backlog_events_per_s", "mentions"}.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import text  # noqa: E402

from bench.common import free_port  # noqa: E402
from bot.settings.config import load_config  # noqa: E402
from bot.settings.playbook import load_playbook  # noqa: E402
from handlers.app import App  # noqa: E402
from tests.doubles.vk_server import CallbackSender, VkServer  # noqa: E402

GROUP = 218861756
SECRET = "BenchSecret1"
TOKEN = "vk1.a.bench0token0abcdefghijklmnopqrstuvw"
TEXTS = (
    "Третий день нет горячей воды в доме {n}, управляющая компания молчит!",
    "Автобус 12 опять не пришёл, стоим на остановке уже час ({n})",
    "Спасибо за быстрый ремонт дороги на улице {n}",
    "Когда уберут снег во дворе дома {n}? Не пройти!",
)


def config_in(directory: Path, port: int, vk_api: str) -> Path:
    body = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    body = body.replace("path: playbooks/default", f"path: {ROOT}/playbooks/default")
    body = body.replace("templates: playbooks/templates", f"templates: {ROOT}/playbooks/templates")
    body = body.replace(
        "sqlite+aiosqlite:///data/otklik.db", f"sqlite+aiosqlite:///{directory}/otklik.db"
    )
    body = body.replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{port}")
    body = body.replace("log_level: INFO", "log_level: WARNING")
    start = body.index("# vk:\n")
    block = body[start : body.index("\n\n", start)]
    vk = "\n".join(line[2:] for line in block.splitlines())
    # The VK test server answers the bot's calls (authors' names): never the real VK.
    body = body.replace(block, f"{vk}\n  api_base: {vk_api}")
    path = directory / "config.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def comment(n: int, text_: str, thread: int | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": n + 1,
        "from_id": 1000 + n,
        "date": 1_764_000_000 + n,
        "text": text_,
        "post_id": 1 + n % 20,
        "owner_id": -GROUP,
    }
    if thread is not None:
        obj["reply_to_comment"] = thread
        obj["parents_stack"] = [thread]
    return obj


async def all_taken_in(app: App) -> None:
    while True:
        async with app.database.reader() as uow:
            if not await uow.vk_events.waiting(1):
                return
        await asyncio.sleep(0.05)


async def backlog_of(sender: CallbackSender, first: int, count: int) -> list[float]:
    """Store `count` events (threads of five, every tenth comment edited); each "ok"'s time."""
    latencies: list[float] = []
    for n in range(first, first + count):
        thread = None if (n - first) % 5 == 0 else first + (n - first) // 5 * 5 + 1
        obj = comment(n, TEXTS[n % len(TEXTS)].format(n=n), thread)
        kind = "wall_reply_new"
        if (n - first) % 10 == 9:
            kind, obj["id"], obj["from_id"] = "wall_reply_edit", n, 1000 + n - 1
            obj["text"] += " (правка)"
        sent = time.monotonic()
        assert (await sender.send(kind, obj, event_id=f"b{n}"))[-1].ok
        latencies.append((time.monotonic() - sent) * 1000)
    return latencies


async def run(events: int, replays: int, backlog: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        port = free_port()
        vk = VkServer()
        await vk.start()
        vk.add_token(TOKEN, "group", GROUP)
        for n in range(events + backlog):
            vk.add_person(1000 + n, "Имя", f"Фамилия{n}")
        env = {"OTKLIK_VK_TOKEN": TOKEN, "OTKLIK_VK_SECRET": SECRET}
        config = load_config(config_in(Path(scratch), port, vk.api_base), env=env)
        app = App(config, load_playbook(config.playbooks.path))
        await app.start()
        sender = CallbackSender(f"http://127.0.0.1:{port}/vk/callback", GROUP, SECRET)
        try:
            latencies: list[float] = []
            began = time.monotonic()
            for n in range(events):
                obj = comment(n, TEXTS[n % len(TEXTS)].format(n=n))
                sent = time.monotonic()
                answers = await sender.send("wall_reply_new", obj, event_id=f"e{n}", retries=0)
                latencies.append((time.monotonic() - sent) * 1000)
                assert answers[-1].ok, answers
            for n in range(replays):
                obj = {
                    "id": n + 1,
                    "from_id": 1000 + n,
                    "text": "x",
                    "post_id": 1 + n % 20,
                    "owner_id": -GROUP,
                }
                assert (await sender.send("wall_reply_new", obj, event_id=f"e{n}"))[-1].ok
            await all_taken_in(app)
            taken_in = time.monotonic() - began
            async with app.database.reader() as uow:
                stored = await uow.session.scalar(text("SELECT count(*) FROM mentions"))

            # The backlog: stored while intake is down, taken in when it starts again.
            assert app.vk_intake is not None
            await app.vk_intake.stop()
            idle = await backlog_of(sender, events, backlog)
            started = time.monotonic()
            app.vk_intake.start()
            await all_taken_in(app)
            backlog_s = time.monotonic() - started
            async with app.database.reader() as uow:
                mentions = await uow.session.scalar(text("SELECT count(*) FROM mentions"))
        finally:
            await app.stop()
            await vk.stop()
    return {
        "events": events,
        "ok_p50_ms": round(statistics.median(latencies), 2),
        "ok_p99_ms": round(percentile(latencies, 0.99), 2),
        "ok_max_ms": round(max(latencies), 2),
        "taken_in_s": round(taken_in, 2),
        "events_per_s": round(events / taken_in, 1),
        "replays_acted_on": int(stored or 0) - events,
        "ok_idle_p50_ms": round(statistics.median(idle), 2) if idle else None,
        "ok_idle_p99_ms": round(percentile(idle, 0.99), 2) if idle else None,
        "backlog": backlog,
        "backlog_s": round(backlog_s, 2),
        "backlog_events_per_s": round(backlog / backlog_s, 1) if backlog else None,
        "mentions": int(mentions or 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--replays", type=int, default=100)
    parser.add_argument("--backlog", type=int, default=2000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    summary = asyncio.run(run(args.events, args.replays, args.backlog))
    print(f"{summary['events']} Callback API events, answered one at a time:")
    print(
        f"  'ok' after p50 {summary['ok_p50_ms']} ms, p99 {summary['ok_p99_ms']} ms, "
        f"max {summary['ok_max_ms']} ms"
    )
    print(
        f"  all taken in as mentions {summary['taken_in_s']} s after the first "
        f"({summary['events_per_s']} events/s); replays acted on: {summary['replays_acted_on']}"
    )
    print(
        f"  'ok' while intake is stopped: p50 {summary['ok_idle_p50_ms']} ms, "
        f"p99 {summary['ok_idle_p99_ms']} ms"
    )
    print(
        f"{summary['backlog']} events stored while intake was down (threads, edits): taken in "
        f"{summary['backlog_s']} s after it started ({summary['backlog_events_per_s']} events/s);"
        f" mentions in all: {summary['mentions']}"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
