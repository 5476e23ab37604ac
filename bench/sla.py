"""The SLA clock under load: 100,000 open cases with their timers, the real App, one job.

1. Seed (in a child process, so its memory is not counted): 100,000 open cases of mixed
   priority opened over the last minutes, one mention and a delivered card each, and their
   timers as the engine plans them (reminders and breach of the current deadline), through
   the store's bulk inserts into a fresh SQLite file. 2,000 extra reminders are already due:
   missed while the bot was down.
2. Start the real App (the example config, Telegram as a transport that drops what it gets
   at the pace the real adapter keeps to Telegram's limits, so the outbox worker delivers
   beside the clock as in production; `--unpaced` drops everything at once) and measure
   - rearm_s: from App.start() until the SLA job is armed with every missed timer fired;
   - rss_mb: the process' resident memory after that;
   - lateness of a batch of reminders due at the same moment a few seconds ahead (1,000, then
     10,000): commit time of the transaction that wrote their outbox rows minus the due time;
     p50, p99, max over all timers of both batches.
The last line is one JSON object: {"rss_mb", "rearm_s", "lateness_p50_ms", "lateness_p99_ms",
"lateness_max_ms", …}. Targets: < 300 MB, < 5 s, p99 < 1 s.

    .venv/bin/python bench/sla.py [--cases 100000] [--unpaced]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import insert, select  # noqa: E402

from bench.common import example_config, free_port  # noqa: E402
from bot.messages.outbox import Delivery, DeliveryResult  # noqa: E402
from bot.model import Case, CaseState, Priority  # noqa: E402
from bot.settings.config import Config  # noqa: E402
from bot.settings.playbook import load_playbook  # noqa: E402
from bot.sla.calendar import plan_deadlines  # noqa: E402
from bot.sla.engine import SlaEngine, deadline_tag  # noqa: E402
from bot.sla.timers import Timer, TimerKind  # noqa: E402
from handlers.app import App  # noqa: E402
from handlers.telegram.limits import RateLimiter  # noqa: E402
from store.db import Database  # noqa: E402
from store.models import AuthorRow, MentionRow, MessageRefRow, TimerRow  # noqa: E402

TOKEN = "bench-sla-token-0123456789"
CHUNK = 10_000
MISSED = 2_000  # reminders already due at start
BATCHES = (1_000, 10_000)  # reminders due together, a few seconds after start
LEAD_S = 3.0  # how far ahead a batch is due
PRIORITIES = [Priority.LOW] * 20 + [Priority.NORMAL] * 55 + [Priority.HIGH] * 20
PRIORITIES += [Priority.CRITICAL] * 5
DEPARTMENTS = ("housing", "transport", "health", "education", "social")


def bench_config(directory: Path, port: int) -> Config:
    return example_config(directory, port, TOKEN)


class DroppingTransport:
    """Telegram that drops what it gets, at the pace the real adapter keeps (Telegram's
    published limits, handlers/telegram/limits.py): the outbox worker delivers alongside the
    clock as it would in production. `paced=False` accepts everything at once: the worker then
    settles deliveries as fast as SQLite lets it, a harsher load than any real chat allows."""

    name = "telegram"

    def __init__(self, paced: bool = True) -> None:
        self.count = 0
        self._limiter = RateLimiter() if paced else None

    def capacity_per_minute(self, chat: str) -> int:
        return self._limiter.capacity_per_minute(int(chat)) if self._limiter else 10**6

    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        if self._limiter is not None:
            await self._limiter.acquire(int(delivery.item.chat))
        self.count += 1
        return DeliveryResult(str(self.count))


# --- seeding (child process) -------------------------------------------------------------------


def _retag(timer: Timer, proto_id: int, case_id: int) -> Timer:
    """A prototype case's timer for another case opened at the same moment."""
    old, new = f"{proto_id}:", f"{case_id}:"
    payload = {**timer.payload, "tag": str(timer.payload["tag"]).replace(old, new, 1)}
    return Timer(case_id, timer.kind, timer.due_at, timer.key.replace(old, new, 1), payload)


async def seed(config: Config, cases: int, now: datetime) -> dict[str, float]:
    started = time.perf_counter()
    playbook = load_playbook(config.playbooks.path)
    engine = SlaEngine(playbook, config.tz)
    database = Database(config.database.url)
    await database.upgrade()
    rng = random.Random(7)
    # Opened over the last 5 minutes, in 300 one-second buckets: deadlines and timers are
    # planned once per (bucket, department, priority) and copied, as the engine would plan them.
    plans: dict[tuple[int, str, Priority], tuple[Case, list[Timer]]] = {}
    proto_id = 10**9
    timers = 0
    async with database.uow() as uow:
        authors = [
            {"display_name": f"Житель {n}", "labels": [], "first_seen_at": now}
            for n in range(1_000)
        ]
        await uow.session.execute(insert(AuthorRow), authors)
        author_ids = list((await uow.session.scalars(select(AuthorRow.id))).all())
        await uow.commit()
    for start in range(0, cases, CHUNK):
        batch: list[tuple[int, str, Priority]] = []
        for _ in range(min(CHUNK, cases - start)):
            key = (rng.randrange(300), rng.choice(DEPARTMENTS), rng.choice(PRIORITIES))
            if key not in plans:
                opened = now - timedelta(seconds=key[0])
                name, due = plan_deadlines(playbook, key[1], key[2], opened, config.tz)
                proto = Case(
                    id=proto_id,
                    department=key[1],
                    state=CaseState.NEW,
                    priority=key[2],
                    created_at=opened,
                    source="vk",
                    sla_policy=name,
                    first_touch_due_at=due.first_touch,
                    answer_due_at=due.answer,
                    resolution_due_at=due.resolution,
                )
                plans[key] = (proto, list(engine.plan(proto, now).add))
            batch.append(key)
        async with database.uow() as uow:
            stored = await uow.cases.add_many([replace(plans[k][0], id=None) for k in batch])
            mentions = []
            refs = []
            planned: list[Timer] = []
            for case, key in zip(stored, batch, strict=True):
                assert case.id is not None
                mentions.append(_mention(case, rng.choice(author_ids), now))
                dest = config.department(case.department)
                assert dest is not None and dest.telegram is not None
                refs.append(
                    {
                        "transport": "telegram",
                        "chat": str(dest.telegram.chat_id),
                        "ref_key": f"card:{case.id}:{case.department}",
                        "external_id": str(case.id),
                    }
                )
                planned += [_retag(t, proto_id, case.id) for t in plans[key][1]]
            await uow.session.execute(insert(MentionRow), mentions)
            await uow.session.execute(insert(MessageRefRow), refs)
            timers += await uow.timers.add_many(planned)
            await uow.commit()
    # Missed while the bot was down: reminders of the first cases' current deadlines.
    async with database.uow() as uow:
        firsts = await uow.cases.get_many(list(range(1, MISSED + 1)))
        missed = [
            bench_reminder(case, now - timedelta(minutes=1), "missed") for case in firsts.values()
        ]
        timers += await uow.timers.add_many(missed)
        await uow.commit()
    await database.dispose()
    return {"seconds": time.perf_counter() - started, "timers": timers}


def _mention(case: Case, author_id: int, now: datetime) -> dict[str, Any]:
    return {
        "source": "vk",
        # external_id, url, text, story_id, reply_to_url (store.models.MENTION_PERSONAL)
        "personal": [
            f"m{case.id}",
            f"https://vk.com/wall-1_{case.id}",
            "Третий день нет отопления, батареи ледяные",
            None,
            None,
        ],
        "author_id": author_id,
        "identity_channel": "vk",
        "identity_hash": f"u{author_id}",
        # Long ago: the crisis watch would count 100,000 fresh negative mentions as a crisis.
        "received_at": now - timedelta(days=60),
        "sentiment": "negative",
        "sentiment_source": "source",
        "reach": 10,
        "codes": [],
        "case_id": case.id,
    }


def bench_reminder(case: Case, due_at: datetime, label: str) -> Timer:
    """A reminder of the case's current deadline, due at `due_at`."""
    assert case.id is not None and case.first_touch_due_at is not None
    tag = deadline_tag(case.id, "first_touch", case.first_touch_due_at)
    payload = {
        "deadline": "first_touch",
        "due": case.first_touch_due_at.isoformat(),
        "tag": tag,
        "point": label,
    }
    return Timer(case.id, TimerKind.REMINDER, due_at, f"r:{tag}:{label}", payload)


def seed_process(directory: str, port: int, cases: int, now: str, out: Any) -> None:
    config = bench_config(Path(directory), port)
    out.send(asyncio.run(seed(config, cases, datetime.fromisoformat(now))))


# --- measuring ---------------------------------------------------------------------------------


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(config: Config, cases: int, paced: bool) -> dict[str, float]:
    playbook = load_playbook(config.playbooks.path)
    # A Telegram deployment carries aiogram even though this bench drops what it sends.
    importlib.import_module("handlers.telegram.adapter")
    baseline = rss_mb()  # the imports alone (aiogram, SQLAlchemy …), before any case
    app = App(config, playbook, transports={"telegram": DroppingTransport(paced)})
    commits: list[tuple[float, int]] = []  # (wall time after the commit, timers fired)
    fire_once = app.sla._fire_once

    enough = asyncio.Event()  # the batch being measured has fired
    wanted = [0]

    async def timed(now: datetime, limit: int, cards: dict[int, str | None]) -> int:
        fired = await fire_once(now, limit, cards)
        commits.append((time.time(), fired))
        if wanted[0] and sum(n for _, n in commits) >= wanted[0]:
            enough.set()
        return fired

    app.sla._fire_once = timed  # type: ignore[method-assign]
    sla_start = app.sla_jobs.start
    armed_at: list[float] = []

    async def start_sla() -> int:
        fired = await sla_start()
        armed_at.append(time.perf_counter())
        return fired

    app.sla_jobs.start = start_sla  # type: ignore[method-assign]
    gc.collect()
    begin = time.perf_counter()
    await app.start()
    rearm = armed_at[0] - begin
    gc.freeze()  # as handlers.app.run_forever does once the App has started
    missed = sum(n for _, n in commits)
    memory = rss_mb()
    print(
        f"  start: {rearm:.2f} s to the SLA job armed, {missed:,} missed timers fired, "
        f"armed for {app.sla_jobs.armed_for:%H:%M:%S}; RSS {memory:.0f} MB "
        f"({baseline:.0f} MB of it before the App existed: imported libraries)"
    )
    late: list[float] = []
    per_batch: dict[str, float] = {}
    first_id = MISSED + 1
    try:
        for size in BATCHES:
            commits.clear()
            due = datetime.now(UTC) + timedelta(seconds=LEAD_S)
            async with app.database.uow() as uow:
                chosen = await uow.cases.get_many(list(range(first_id, first_id + size)))
                batch = [bench_reminder(c, due, f"batch{size}") for c in chosen.values()]
                await uow.timers.add_many(batch)
                await uow.commit()
            first_id += size
            enough.clear()
            wanted[0] = size
            app.sla_jobs.timer_planned(due)
            await asyncio.wait_for(enough.wait(), LEAD_S + 120)
            fired = [(at, n) for at, n in commits if n]
            got = sum(n for _, n in fired)
            batch_late = [(at - due.timestamp()) * 1000 for at, n in fired for _ in range(n)]
            late += batch_late
            batch_late.sort()
            per_batch[f"batch_{size}_p99_ms"] = round(
                batch_late[int(len(batch_late) * 0.99) - 1], 1
            )
            per_batch[f"batch_{size}_max_ms"] = round(batch_late[-1], 1)
            print(
                f"  {size:,} reminders due together: {got:,} fired in {len(fired)} "
                f"transaction(s); lateness p50 {statistics.median(batch_late):.0f} ms, "
                f"max {max(batch_late):.0f} ms"
            )
    finally:
        await app.stop()
    late.sort()
    return {
        "rss_mb": round(memory, 1),
        "rss_before_app_mb": round(baseline, 1),
        "rearm_s": round(rearm, 3),
        "lateness_p50_ms": round(statistics.median(late), 1),
        "lateness_p99_ms": round(late[int(len(late) * 0.99) - 1], 1),
        "lateness_max_ms": round(late[-1], 1),
        **per_batch,
        "missed_fired_at_start": missed,
        "open_cases": cases,
    }


async def count_pending(config: Config) -> int:
    database = Database(config.database.url)
    async with database.uow() as uow:
        rows = await uow.session.execute(select(TimerRow.id).where(TimerRow.fired_at.is_(None)))
        count = len(rows.all())
    await database.dispose()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument(
        "--unpaced",
        dest="paced",
        action="store_false",
        help="deliver without Telegram's rate limits (the outbox worker runs flat out)",
    )
    args = parser.parse_args()
    if args.cases < MISSED + sum(BATCHES):  # each reminder below belongs to a case of its own
        parser.error(f"--cases must be at least {MISSED + sum(BATCHES):,}")
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="otklik-sla-") as tmp:
        port = free_port()
        now = datetime.now(UTC)
        print(f"Seeding {args.cases:,} open cases with their timers (child process)…")
        receive, send = multiprocessing.get_context("spawn").Pipe(duplex=False)
        child = multiprocessing.get_context("spawn").Process(
            target=seed_process, args=(tmp, port, args.cases, now.isoformat(), send)
        )
        child.start()
        seeded = receive.recv()
        child.join()
        config = bench_config(Path(tmp), port)
        pending = asyncio.run(count_pending(config))
        print(
            f"  {seeded['timers']:,.0f} timers ({pending:,} pending) in {seeded['seconds']:.1f} s"
        )
        pace = "at Telegram's pace" if args.paced else "as fast as it comes"
        print(f"Starting the App (Telegram drops every message, {pace}; no network)…")
        figures = asyncio.run(measure(config, args.cases, args.paced))
    targets = (
        ("rss_mb", 300, "MB"),
        ("rearm_s", 5, "s"),
        ("lateness_p99_ms", 1000, "ms"),
    )
    for name, limit, unit in targets:
        verdict = "ok" if figures[name] < limit else "MISSED"
        print(f"  {name}: {figures[name]} {unit} (target < {limit} {unit}) {verdict}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
