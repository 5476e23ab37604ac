"""What sharing Telegram's limits through PostgreSQL adds to each send (store/send_slots.py).

1. Quiet: one instance sends `--quiet-sends` messages at `--quiet-rate` a second round robin
   over `--groups` groups, at Telegram's real limits (well under them: nothing waits for a
   slot). Each `RateLimiter.acquire` is timed, with the shared send slots under it and, at
   the same pace beside it, without (the in-process limiter alone, as on SQLite): the
   difference is the latency a send gains from the database hop (p50, p99).
2. Busy: two "instances" (each its own Database engine, SqlSendSlots and RateLimiter, as two
   running bots have) send `--sends` messages each into the same groups as fast as their
   limiters let them, one sender per group and instance as the outbox delivers, at the limits
   run `--scale` times faster. Reported: each granted reservation's time from the limiter's
   call to the answer (queueing for the instance's connections included), how many were
   refused with a wait (the other instance had the slot), and the sends per second both
   reached together against what the shared windows allow.

Nothing is sent anywhere: the point is the database hop under the in-process limiter. A single
process on SQLite makes no reservation at all. The last line is one JSON object with
"added_p50_ms", "added_p99_ms", "busy_reserve_p50_ms", "busy_reserve_p99_ms", "refused",
"sends_per_s", "allowed_per_s".

    .venv/bin/python bench/send_slots.py [--postgres URL] [--quiet-sends 200] [--quiet-rate 10]
                                         [--sends 1000] [--groups 40] [--scale 10]
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
import math  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from bot.ports import SendSlots, SlotScope  # noqa: E402
from handlers.telegram.limits import (  # noqa: E402
    SHARED_LATENCY_ALLOWANCE_S,
    RateLimiter,
    TelegramLimits,
)
from store import crypto  # noqa: E402
from store.db import Database  # noqa: E402
from store.send_slots import SqlSendSlots  # noqa: E402

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


class TimedSlots:
    """The shared slots, each reservation timed."""

    def __init__(self, slots: SendSlots) -> None:
        self.slots = slots
        self.granted_s: list[float] = []
        self.refused = 0

    async def reserve(self, scopes: Sequence[SlotScope]) -> float:
        started = time.perf_counter()
        wait = await self.slots.reserve(scopes)
        if wait <= 0:
            self.granted_s.append(time.perf_counter() - started)
        else:
            self.refused += 1
        return wait


async def instance(
    url: str, schema: str, limits: TelegramLimits, groups: int, sends: int
) -> TimedSlots:
    database = Database(url, connect_args={"server_settings": {"search_path": schema}})
    slots = SqlSendSlots(database)
    timed = TimedSlots(slots)
    limiter = RateLimiter(limits, shared=timed, scope="telegram:1")

    async def sender(group: int, count: int) -> None:
        for _ in range(count):
            await limiter.acquire(-1000 - group)

    try:
        per_group = [sends // groups + (1 if g < sends % groups else 0) for g in range(groups)]
        await asyncio.gather(*(sender(g, n) for g, n in enumerate(per_group)))
    finally:
        await slots.close()
        await database.dispose()
    return timed


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * share) - 1)]


async def paced(limiter: RateLimiter, sends: int, groups: int, rate: float) -> list[float]:
    """`sends` acquires at `rate` a second round robin over the groups; each one's duration."""
    durations: list[float] = []
    start = time.perf_counter()
    for n in range(sends):
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        began = time.perf_counter()
        await limiter.acquire(-1000 - n % groups)
        durations.append(time.perf_counter() - began)
    return durations


async def quiet(url: str, schema: str, sends: int, groups: int, rate: float) -> dict[str, float]:
    database = Database(url, connect_args={"server_settings": {"search_path": schema}})
    slots = SqlSendSlots(database)
    try:
        limits = TelegramLimits()
        shared, alone = await asyncio.gather(
            paced(RateLimiter(limits, shared=slots, scope="telegram:2"), sends, groups, rate),
            paced(RateLimiter(limits), sends, groups, rate),
        )
    finally:
        await slots.close()
        await database.dispose()
    return {
        "added_p50_ms": ms(statistics.median(shared) - statistics.median(alone)),
        "added_p99_ms": ms(percentile(shared, 0.99) - percentile(alone, 0.99)),
        "alone_p99_ms": ms(percentile(alone, 0.99)),
    }


async def busy(url: str, schema: str, sends: int, groups: int, scale: float) -> dict[str, float]:
    limits = TelegramLimits(scale=scale)
    started = time.perf_counter()
    timed = await asyncio.gather(
        instance(url, schema, limits, groups, sends), instance(url, schema, limits, groups, sends)
    )
    elapsed = time.perf_counter() - started
    granted = [d for t in timed for d in t.granted_s]
    # What the shared windows allow (each a little longer than this process's own).
    group_count, group_span = limits.group_window()
    global_count, global_span = limits.global_window()
    allowed = min(
        groups * (group_count - limits.press_reserve) / (group_span + SHARED_LATENCY_ALLOWANCE_S),
        global_count / (global_span + SHARED_LATENCY_ALLOWANCE_S),
    )
    return {
        "busy_reserve_p50_ms": ms(statistics.median(granted)),
        "busy_reserve_p99_ms": ms(percentile(granted, 0.99)),
        "granted": len(granted),
        "refused": sum(t.refused for t in timed),
        "sends_per_s": round(len(granted) / elapsed, 1),
        "allowed_per_s": round(allowed, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, float]:
    url = args.postgres
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        first = Database(url, connect_args={"server_settings": {"search_path": schema}})
        await first.upgrade()
        await first.dispose()
        figures = await quiet(url, schema, args.quiet_sends, args.groups, args.quiet_rate)
        figures |= await busy(url, schema, args.sends, args.groups, args.scale)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_URL, help="a PostgreSQL database URL")
    parser.add_argument("--quiet-sends", type=int, default=200)
    parser.add_argument("--quiet-rate", type=float, default=10.0, help="sends a second")
    parser.add_argument("--sends", type=int, default=1000, help="busy: messages per instance")
    parser.add_argument("--groups", type=int, default=40)
    parser.add_argument("--scale", type=float, default=10.0, help="busy: limits this much faster")
    args = parser.parse_args()
    # Database wants the data keys on PostgreSQL; nothing personal is written here.
    os.environ.setdefault(crypto.DATA_KEY_ENV, f"bench:{crypto.new_key_text()}")
    os.environ.setdefault(crypto.INDEX_KEY_ENV, crypto.new_key_text())
    figures = asyncio.run(run(args))
    print(
        f"quiet: {args.quiet_sends} sends at {args.quiet_rate}/s over {args.groups} groups; "
        f"the shared slots add p50 {figures['added_p50_ms']} ms, p99 {figures['added_p99_ms']} "
        f"ms a send (the in-process limiter alone: p99 {figures['alone_p99_ms']} ms)"
    )
    print(
        f"busy: two instances, {args.sends} sends each into {args.groups} groups, limits "
        f"x{args.scale}: reservation p50 {figures['busy_reserve_p50_ms']} ms, p99 "
        f"{figures['busy_reserve_p99_ms']} ms (queueing included); {figures['granted']} "
        f"granted, {figures['refused']} refused with a wait; {figures['sends_per_s']} sends/s "
        f"of {figures['allowed_per_s']} the shared windows allow"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
