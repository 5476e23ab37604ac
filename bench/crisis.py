"""Crisis evaluation cost: one `CrisisService.evaluate()` over a busy database.

A fresh SQLite database (or PostgreSQL with --postgres URL) gets `--mentions` mentions spread
over the last `--days` days (10% negative; each negative one opened a case in one of the
example config's departments and carries a code), plus a storm of negative housing mentions in
the last hour. Then evaluate() runs `--runs` times with the shipped playbook (8 thresholds,
one of them a ratio over 7 baseline days): the first run opens the crises, the others find
nothing new. This is what the half-minute job and every intake nudge cost. Then the clock moves
on by a storm refresh and evaluate() runs `--runs` more times, each a minute later: each also
reads the storm (the clusters of every open crisis's scope) for the crisis cards.

    .venv/bin/python bench/crisis.py [--mentions 100000] [--days 8] [--runs 30]
                                     [--postgres postgresql+asyncpg://…]

The last line is one JSON object starting {"evaluate_ms_median", "evaluate_ms_p95", …}.
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
import uuid  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import insert, select, text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from bot.clock import FrozenClock  # noqa: E402
from bot.crisis.service import CrisisService  # noqa: E402
from bot.crisis.storm import STORM_REFRESH  # noqa: E402
from bot.crisis.thresholds import windows_for  # noqa: E402
from bot.settings.config import load_config  # noqa: E402
from bot.settings.playbook import load_playbook  # noqa: E402
from bot.staff.directory import Directory  # noqa: E402
from store.db import Database  # noqa: E402
from store.models import AuthorRow, CaseRow, MentionRow  # noqa: E402

NOW = datetime(2026, 11, 20, 13, 30, tzinfo=UTC)
DEPARTMENTS = ("housing", "transport", "health", "education", "social", "coordination")
CODES = ("heating", "water", "roads", "school_meals", "waste", "gas")
CHUNK = 5_000
STORM = 20  # negative housing mentions in the last hour: over housing-spike's 15
NEGATIVE_SHARE = 0.1


async def seed(database: Database, mentions: int, days: int) -> None:
    rng = random.Random(7)
    async with database.uow() as uow:
        session = uow.session
        await session.execute(insert(AuthorRow), [{"display_name": "Автор"}])
        author_id = (await session.scalars(select(AuthorRow.id))).one()
        span = days * 86_400
        n = 0
        while n < mentions:
            rows: list[dict[str, Any]] = []
            cases: list[dict[str, Any]] = []
            for _ in range(min(CHUNK, mentions - n)):
                n += 1
                storm = n <= STORM
                at = NOW - timedelta(seconds=rng.uniform(60, 3_000 if storm else span))
                negative = storm or rng.random() < NEGATIVE_SHARE
                code = "heating" if storm else rng.choice(CODES)
                rows.append(
                    {
                        "source": "bench",
                        # external_id, url, text, story_id, reply_to_url (MENTION_PERSONAL)
                        "personal": [f"m{n}", None, "…", None, None],
                        "author_id": author_id,
                        "identity_channel": "bench",
                        "identity_hash": "a",
                        "received_at": at,
                        "sentiment": "negative" if negative else "neutral",
                        "sentiment_source": "source",
                        "codes": [code],
                    }
                )
                if negative:
                    cases.append(
                        {
                            "department": "housing" if storm else rng.choice(DEPARTMENTS),
                            "state": "new",
                            "priority": "normal",
                            "created_at": at,
                            "source": "bench",
                            "codes": [code],
                            "mention": len(rows) - 1,
                        }
                    )
            if cases:
                ids = (
                    await session.scalars(
                        insert(CaseRow).returning(CaseRow.id, sort_by_parameter_order=True),
                        [{k: v for k, v in c.items() if k != "mention"} for c in cases],
                    )
                ).all()
                for case, case_id in zip(cases, ids, strict=True):
                    rows[case["mention"]]["case_id"] = case_id
            for row in rows:
                row.setdefault("case_id", None)
            await session.execute(insert(MentionRow), rows)
        await uow.commit()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="otklik-crisis-") as tmp:
        url = args.postgres or f"sqlite+aiosqlite:///{tmp}/otklik.db"
        config = load_config(ROOT / "config.example.yaml", env={})
        config = config.model_copy(
            update={"database": config.database.model_copy(update={"url": url})}
        )
        playbook = load_playbook(config.playbooks.path)
        schema = f"bench_crisis_{uuid.uuid4().hex[:8]}"
        if args.postgres:  # a schema of its own, dropped afterwards
            admin = create_async_engine(url)
            async with admin.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            database = Database(url, connect_args={"server_settings": {"search_path": schema}})
        else:
            database = Database(url)
        await database.upgrade()
        backend = "PostgreSQL" if args.postgres else "SQLite"
        print(f"Seeding {args.mentions:,} mentions over {args.days} days into {backend} …")
        started = time.perf_counter()
        await seed(database, args.mentions, args.days)
        print(f"  seeded in {time.perf_counter() - started:.1f} s")

        clock = FrozenClock(NOW)
        directory = Directory(config, frozenset({"telegram"}), clock)
        service = CrisisService(database.uow, clock, directory, playbook, config.tz)
        windows = {w for t in playbook.crisis.thresholds for w in windows_for(t, NOW)}
        timings: list[float] = []
        opened: list[str] = []
        for i in range(args.runs):
            started = time.perf_counter()
            changes = await service.evaluate()
            timings.append((time.perf_counter() - started) * 1000)
            if i == 0:
                opened = sorted(c.after.threshold_id for c in changes if c.opened)
        storm: list[float] = []
        for _ in range(args.runs):
            clock.advance(STORM_REFRESH)
            started = time.perf_counter()
            await service.evaluate()
            storm.append((time.perf_counter() - started) * 1000)
        await database.dispose()
        if args.postgres:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()

    first, rest = timings[0], sorted(timings[1:])
    median = statistics.median(rest)
    p95 = rest[min(len(rest) - 1, int(len(rest) * 0.95))]
    print(
        f"{len(playbook.crisis.thresholds)} thresholds, {len(windows)} distinct windows "
        f"(≤ 2 aggregate queries each)"
    )
    print(f"  first evaluation (opens {', '.join(opened) or 'nothing'}): {first:.1f} ms")
    print(f"  later evaluations, nothing new: median {median:.1f} ms, p95 {p95:.1f} ms")
    storm_median = statistics.median(storm)
    print(
        f"  evaluations that read the storm for {len(opened)} card(s): median {storm_median:.1f} ms"
    )
    return {
        "evaluate_ms_median": round(median, 2),
        "evaluate_ms_p95": round(p95, 2),
        "evaluate_first_ms": round(first, 2),
        "evaluate_with_storm_ms_median": round(storm_median, 2),
        "mentions": args.mentions,
        "days": args.days,
        "windows": len(windows),
        "backend": backend.lower(),
        "opened": opened,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--postgres", default="", help="a postgresql+asyncpg:// URL instead")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
