"""Telegram updates in: long polling against webhook mode, one and two instances.

Starts the real App against the Telegram Bot API test server (tests/doubles/telegram_world),
then `--updates` people's messages are written into `--chats` groups the bot is in but no
department uses (so each update is taken, claimed and handled, and nothing is sent back: the
figure is what intake of updates costs, not Telegram's send limits). Every `--lose`-th update
has its 200 lost on the way back, so Telegram delivers it again (webhook runs only). Timed
from the first message to the moment the test server has no update left to deliver
(time.monotonic), as updates/s. Runs:

- polling, SQLite (one process: the default);
- webhook, SQLite, one instance;
- webhook, PostgreSQL, one and two instances behind round-robin delivery (with --postgres:
  a server URL whose user may create databases; a scratch database is made and dropped).

Each webhook run also counts the updates claimed in the database (must equal --updates: a
re-delivered one is claimed once) and the re-deliveries answered.

    .venv/bin/python bench/telegram_webhook.py [--updates 2000] [--chats 20] [--lose 10]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/test]

The last line is one JSON object: {"updates", "polling_sqlite_per_s",
"webhook_sqlite_per_s", "webhook_pg_1_per_s", "webhook_pg_2_per_s", "claimed_ok",
"redelivered"}.
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
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import asyncpg  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from store import crypto  # noqa: E402
from store.models import TelegramUpdateRow  # noqa: E402
from tests.doubles.telegram_world import World, telegram_world  # noqa: E402


@dataclass
class Run:
    name: str
    per_s: float
    claimed: int | None
    redelivered: int


async def run(
    name: str,
    updates: int,
    chats: int,
    lose: int,
    *,
    webhook: bool,
    instances: int = 1,
    database_url: str | None = None,
) -> Run:
    with tempfile.TemporaryDirectory() as scratch:
        async with telegram_world(
            Path(scratch), webhook=webhook, instances=instances, database_url=database_url
        ) as world:
            server = world.server
            people = [server.create_user(f"Житель {n}") for n in range(chats)]
            groups = []
            for n in range(chats):
                group = server.create_chat("supergroup", f"Болтовня {n}")
                server.add_member(group.id, people[n], announce=False)
                groups.append(group.id)
            before = len(server.deliveries())
            first_id = server.next_update_id(world.bot)
            started = time.monotonic()
            for n in range(updates):
                server.send_user_message(groups[n % chats], people[n % chats], f"сообщение {n}")
                if webhook and lose and n % lose == 0:
                    server.lose_webhook_answer(world.bot)
                if n % 50 == 0:
                    await asyncio.sleep(0)  # people write over time, not in one instant
            await server.wait_for(lambda: not server.pending_updates(world.bot), timeout=600)
            elapsed = time.monotonic() - started
            ids = range(first_id, server.next_update_id(world.bot))
            claimed = await claimed_count(world, ids) if webhook else None
            redelivered = sum(1 for d in server.deliveries()[before:] if d.error is not None)
    result = Run(name, updates / elapsed, claimed, redelivered)
    print(
        f"{name:28} {result.per_s:8.0f} updates/s"
        + (f"  claimed {claimed}, re-delivered {redelivered}" if webhook else "")
    )
    return result


async def claimed_count(world: World, ids: range) -> int:
    """Rows claimed for the run's updates: one each, however often an update came."""
    row = TelegramUpdateRow
    async with world.app.database.uow() as uow:
        found = await uow.session.scalar(
            select(func.count())
            .select_from(row)
            .where(row.update_id >= ids.start, row.update_id < ids.stop)
        )
    return int(found or 0)


async def scratch_database(server_url: str) -> tuple[str, str]:
    """A new database on that server: (its URL, the admin URL to drop it with)."""
    given = make_url(server_url)
    admin = given.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"bench_webhook_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return given.set(database=name).render_as_string(hide_password=False), admin


async def drop_database(url: str, admin: str) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--lose", type=int, default=10, help="every N-th answer is lost; 0: none")
    parser.add_argument("--postgres", default=None, help="a PostgreSQL server URL (asyncpg)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    n, chats, lose = args.updates, args.chats, args.lose
    runs = [
        await run("polling, SQLite", n, chats, lose, webhook=False),
        await run("webhook, SQLite", n, chats, lose, webhook=True),
    ]
    if args.postgres:
        if not (os.environ.get(crypto.DATA_KEY_ENV) and os.environ.get(crypto.INDEX_KEY_ENV)):
            # PostgreSQL needs keys from the environment; a scratch database can have its own.
            crypto.pin(crypto.Keyring.generate("the benchmark's key"))
        for instances in (1, 2):
            url, admin = await scratch_database(args.postgres)
            try:
                runs.append(
                    await run(
                        f"webhook, PostgreSQL, {instances} inst.",
                        n,
                        chats,
                        lose,
                        webhook=True,
                        instances=instances,
                        database_url=url,
                    )
                )
            finally:
                await drop_database(url, admin)
    by_name = {r.name: r for r in runs}

    def per_s(name: str) -> float | None:
        found = by_name.get(name)
        return round(found.per_s) if found else None

    webhook_runs = [r for r in runs if r.claimed is not None]
    print(
        json.dumps(
            {
                "updates": n,
                "polling_sqlite_per_s": per_s("polling, SQLite"),
                "webhook_sqlite_per_s": per_s("webhook, SQLite"),
                "webhook_pg_1_per_s": per_s("webhook, PostgreSQL, 1 inst."),
                "webhook_pg_2_per_s": per_s("webhook, PostgreSQL, 2 inst."),
                "claimed_ok": all(r.claimed == n for r in webhook_runs),
                "redelivered": sum(r.redelivered for r in webhook_runs),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
