"""What showing a storm costs: the crisis card's clusters and the queue message's accounting.

A fresh SQLite database gets `--mentions` negative mentions received over the last hour into
the five example departments: `--stories` storylines of different sizes (each one case that
its mentions joined, as similar complaints do) and a long tail of single complaints, each its
own case. Every case's card waits in one chat, as in a storm the chat cannot take. Then:

- clusters: `uow.crises.clusters` for the whole region (the largest crisis card's query) and
  the stories' first texts, `--runs` times;
- queue: `uow.outbox.card_backlog` for that chat (the queue message's query), `--runs` times.

    .venv/bin/python bench/storm_view.py [--mentions 10000] [--stories 5] [--runs 20]

The last line is one JSON object {"clusters_ms_median", "queue_ms_median", …}.
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
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import insert, select  # noqa: E402

from bot.crisis.storm import TREND_WINDOW  # noqa: E402
from bot.messages.delivery import QUEUE_LISTED  # noqa: E402
from bot.model import TrendWindows  # noqa: E402
from store.db import Database  # noqa: E402
from store.models import AuthorRow, CaseRow, MentionRow, OutboxRow  # noqa: E402

NOW = datetime(2026, 11, 20, 13, 30, tzinfo=UTC)
DEPARTMENTS = ("housing", "transport", "health", "education", "social")
CHAT = "-1001"
CHUNK = 5_000


async def seed(database: Database, mentions: int, stories: int) -> tuple[int, int]:
    """Returns (cases, clusters)."""
    rng = random.Random(7)
    # Storylines of different sizes: half the mentions, the largest twice the next, …
    weights = [2 ** (stories - i) for i in range(stories)]
    in_stories = mentions // 2
    sizes = [in_stories * w // sum(weights) for w in weights]
    singles = mentions - sum(sizes)
    async with database.uow() as uow:
        session = uow.session
        await session.execute(insert(AuthorRow), [{"display_name": "Автор"}] * 1000)
        authors = list((await session.scalars(select(AuthorRow.id))).all())
        cases = [
            {
                "department": DEPARTMENTS[i % len(DEPARTMENTS)],
                "state": "new",
                "priority": rng.choice(("normal", "high", "low")),
                "created_at": NOW - timedelta(hours=1),
                "source": "bench",
                "codes": [],
                "mention_count": size,
                "similar_count": size - 1,
            }
            for i, size in enumerate(sizes + [1] * singles)
        ]
        case_ids: list[int] = []
        for start in range(0, len(cases), CHUNK):
            case_ids += (
                await session.scalars(
                    insert(CaseRow).returning(CaseRow.id, sort_by_parameter_order=True),
                    cases[start : start + CHUNK],
                )
            ).all()
        owners = [case_ids[i] for i, size in enumerate(sizes) for _ in range(size)]
        owners += case_ids[len(sizes) :]
        for start in range(0, len(owners), CHUNK):
            rows: list[dict[str, Any]] = [
                {
                    "source": "bench",
                    "personal": [f"m{start + n}", None, f"Жалоба {start + n}", None, None],
                    "author_id": rng.choice(authors),
                    "identity_channel": "bench",
                    "identity_hash": "a",
                    "received_at": NOW - timedelta(seconds=rng.uniform(1, 3_600)),
                    "sentiment": "negative",
                    "sentiment_source": "source",
                    "codes": [],
                    "case_id": case_id,
                }
                for n, case_id in enumerate(owners[start : start + CHUNK])
            ]
            await session.execute(insert(MentionRow), rows)
        posts = [
            {
                "transport": "telegram",
                "chat": CHAT,
                "op": "post",
                "payload": {"view": "card", "case": {"id": case_id, "mention_count": 1}},
                "ref_key": f"card:{case_id}:{cases[i]['department']}",
                "idempotency_key": f"card:{case_id}:post",
                "case_id": case_id,
                "urgency": 1,
                "status": "pending",
                "attempts": 0,
                "created_at": NOW,
                "next_attempt_at": NOW,
            }
            for i, case_id in enumerate(case_ids)
        ]
        for start in range(0, len(posts), CHUNK):
            await session.execute(insert(OutboxRow), posts[start : start + CHUNK])
        await uow.commit()
    return len(case_ids), len(sizes)


async def timed(runs: int, work: Any) -> list[float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="otklik-storm-") as tmp:
        database = Database(f"sqlite+aiosqlite:///{tmp}/otklik.db")
        await database.upgrade()
        print(f"Seeding {args.mentions:,} negative mentions of the last hour into SQLite …")
        started = time.perf_counter()
        cases, stories = await seed(database, args.mentions, args.stories)
        took = time.perf_counter() - started
        print(f"  {cases:,} cases, {stories} storylines, seeded in {took:.1f} s")
        trend = TrendWindows.ending(NOW, TREND_WINDOW)
        found: list[Any] = []

        async def clusters() -> None:
            async with database.reader() as uow:
                found[:] = await uow.crises.clusters(NOW - timedelta(hours=2), trend)
                await uow.mentions.first_of_cases([c.case_id for c in found[:8]])

        backlog: list[Any] = []

        async def queue() -> None:
            async with database.reader() as uow:
                backlog[:] = [await uow.outbox.card_backlog("telegram", CHAT, QUEUE_LISTED)]

        cluster_ms = await timed(args.runs, clusters)
        queue_ms = await timed(args.runs, queue)
        await database.dispose()
    (shown,) = backlog
    accounted = sum(c.mentions for c in shown.listed) + shown.unlisted_mentions
    print(f"  clusters found: {len(found)}, largest {found[0].mentions} mentions")
    print(f"  crisis card's clusters: median {statistics.median(cluster_ms):.1f} ms")
    print(
        f"  queue message: {shown.cases:,} cases, {accounted:,} mentions accounted; "
        f"median {statistics.median(queue_ms):.1f} ms"
    )
    return {
        "clusters_ms_median": round(statistics.median(cluster_ms), 2),
        "queue_ms_median": round(statistics.median(queue_ms), 2),
        "mentions": args.mentions,
        "cases": cases,
        "clusters": len(found),
        "queue_accounted": accounted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=10_000)
    parser.add_argument("--stories", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
