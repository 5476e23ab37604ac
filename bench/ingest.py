"""Ingest throughput: the HTTP API of a running App, and `otklik import` of a 100,000-row CSV.

(a) HTTP: the real App on 127.0.0.1 (the example config, an API token, no chat transport, so
cases open but nothing is delivered). A separate load process sends mentions, ~20% negative
(those open cases), the rest neutral or positive, every one with the source's sentiment:
  - single: `--clients` concurrent clients POST one mention at a time for `--seconds`;
  - batched: `--batch-clients` (1) POST batches of 1,000 for `--seconds`;
  - batched, bulk wiring: the same, with POST /api/v1/mentions answered by bot.bulk (the
    change proposed for handlers/api.py, patched in here only; the App is not modified), once
    with 20% negative and once with none (what the bulk path does when no case opens).
(b) Import: a generated CSV (100,000 rows, 20,000 authors, sentiment given) through
handlers.importer.import_file into a fresh SQLite database.

Prints where the time goes (cProfile of the server during the batched run, and a breakdown of
the import), then one JSON line starting {"http_single_per_s", "http_batched_per_s",
"bulk_import_per_s"}.

    .venv/bin/python bench/ingest.py [--seconds 10] [--clients 8] [--rows 100000]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import cProfile  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from typing import Any  # noqa: E402

from aiohttp import web  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from bot.bulk import BulkIntake  # noqa: E402
from bot.config import Config, load_config  # noqa: E402
from bot.playbook import Playbook, load_playbook  # noqa: E402
from handlers import api as api_module  # noqa: E402
from handlers.app import App  # noqa: E402
from handlers.importer import import_file  # noqa: E402

TOKEN = "bench-ingest-token-0123456789"
BATCH = 1_000
NEGATIVE_SHARE = 0.2

# Texts without the playbook's urgent words: only the negative ones open cases.
NEUTRAL = [
    "Сегодня в парке прошёл концерт, было много людей",
    "Открылась новая библиотека на улице Мира",
    "Спасибо за новый автобусный маршрут, очень удобно",
    "Во дворе поставили лавочки и посадили деревья, красиво",
    "Когда будет ярмарка выходного дня на площади?",
    "Thanks for the new bike lanes in the centre",
]
NEGATIVE = [
    "Третий день нет отопления, батареи ледяные, управляющая компания молчит",
    "Автобус 12 опять не пришёл, ждали на остановке час",
    "Во дворе неделю не вывозят мусор, контейнеры переполнены",
    "В поликлинике невозможно записаться к врачу, телефон не отвечает",
    "Яма на дороге у школы, дети ходят по проезжей части",
]


def mention(
    n: int, rng: random.Random, negative_share: float = NEGATIVE_SHARE, authors: int = 20_000
) -> dict[str, Any]:
    negative = rng.random() < negative_share
    text = rng.choice(NEGATIVE if negative else NEUTRAL)
    return {
        "external_id": f"b{n}",
        "text": f"{text} (#{n})",
        "author": {"id": f"user{rng.randrange(authors)}", "name": "Житель", "channel": "vk"},
        "url": f"https://vk.com/wall-1_{n}",
        "sentiment": "negative" if negative else rng.choice(("neutral", "positive")),
        "reach": rng.randrange(5_000),
    }


# --- the load process --------------------------------------------------------------------------


def load(
    url: str, mode: str, clients: int, seconds: float, start: int, negative: float, out: Any
) -> None:
    """Runs in its own process, so the server gets the bench process to itself."""
    import aiohttp

    async def main() -> tuple[int, int, float]:
        rng = random.Random(start)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        counter = iter(range(start, start + 10_000_000))
        sent = errors = 0
        stop_at = time.monotonic() + seconds

        def body() -> tuple[bytes, int]:
            if mode == "single":
                return json.dumps(mention(next(counter), rng, negative)).encode(), 1
            items = [mention(next(counter), rng, negative) for _ in range(BATCH)]
            return json.dumps(items).encode(), BATCH

        async def client(http: aiohttp.ClientSession) -> None:
            nonlocal sent, errors
            while time.monotonic() < stop_at:
                data, count = body()
                async with http.post(url, data=data, headers=headers) as response:
                    if response.status == 202:
                        sent += count
                    else:
                        errors += 1
                    await response.read()

        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await asyncio.gather(*(client(http) for _ in range(clients)))
        return sent, errors, time.monotonic() - started

    out.send(asyncio.run(main()))


async def drive(
    url: str, mode: str, clients: int, seconds: float, start: int, negative: float
) -> float:
    """Mentions per second the server accepted, measured by the load process."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe(duplex=False)
    arguments = (url, mode, clients, seconds, start, negative, theirs)
    process = context.Process(target=load, args=arguments)
    process.start()
    # Waited for in a thread: the server runs on this loop meanwhile.
    sent, errors, elapsed = await asyncio.to_thread(ours.recv)
    process.join()
    if errors:
        print(f"  {mode}: {errors} requests failed")
    return sent / elapsed


# --- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_config(directory: Path, port: int) -> Config:
    """The shipped example: every department the default playbook routes to."""
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    text = text.replace("path: playbooks/default", f"path: {ROOT}/playbooks/default")
    text = text.replace("templates: playbooks/templates", f"templates: {ROOT}/playbooks/templates")
    text = text.replace(
        "sqlite+aiosqlite:///data/otklik.db", f"sqlite+aiosqlite:///{directory}/otklik.db"
    )
    text = text.replace("listen: 127.0.0.1:8080", f"listen: 127.0.0.1:{port}")
    text = text.replace("log_level: INFO", "log_level: WARNING")
    path = directory / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={"OTKLIK_API_TOKEN_MONITORING": TOKEN})


def bulk_wiring(app: App) -> Callable[[api_module.Api, web.Request], Awaitable[web.Response]]:
    """POST /api/v1/mentions as proposed for handlers/api.py: the same checks, then one
    BulkIntake.receive_many for the whole body instead of intake.receive per mention."""
    bulk = BulkIntake(
        app.database.uow,  # type: ignore[arg-type]
        app.intake,
        app.cases,
        app.clock,
        app.playbook.routing.author_labels,
        app.metrics.mention_received,
    )

    async def post_mentions(self: api_module.Api, request: web.Request) -> web.Response:
        source = self._source(request, "ingest")
        if isinstance(source, web.Response):
            return source
        try:
            body = await request.json(loads=json.loads)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return api_module._problem(400, "body is not valid JSON")
        try:
            if isinstance(body, list):
                batch = api_module._BATCH.validate_python(body)
            else:
                batch = [api_module._ONE.validate_python(body)]
        except ValidationError as error:
            problems = [
                {"path": api_module._path(e["loc"]), "message": e["msg"]} for e in error.errors()
            ]
            return api_module._problem(422, "validation failed", problems=problems[:100])
        now = self._clock.now()
        result = await bulk.receive_many([item.to_domain(source.name, now) for item in batch])
        return web.json_response(
            {
                "accepted": result.stored,
                "duplicates": result.duplicates,
                "cases": [r.case.id if r.case else None for r in result.results],
            },
            status=202,
        )

    return post_mentions


async def http_phase(
    config: Config,
    playbook: Playbook,
    args: argparse.Namespace,
    *,
    bulk: bool,
    negative: float = NEGATIVE_SHARE,
    single: bool = True,
) -> tuple[dict[str, float], cProfile.Profile]:
    """The App as it is (or with the bulk wiring); the batched run is profiled."""
    original = api_module.Api.post_mentions
    app = App(config, playbook)
    if bulk:
        api_module.Api.post_mentions = bulk_wiring(app)  # type: ignore[method-assign,assignment]
    await app.start()
    url = f"http://127.0.0.1:{config.api.port}/api/v1/mentions"
    profiler = cProfile.Profile()
    try:
        results: dict[str, float] = {}
        start = random.randrange(1, 1_000) * 10_000_000  # fresh external ids for each run
        if single:
            results["single"] = await drive(
                url, "single", args.clients, args.seconds, start, negative
            )
        profiler.enable()
        try:
            results["batched"] = await drive(
                url, "batch", args.batch_clients, args.seconds, start + 5_000_000, negative
            )
        finally:
            profiler.disable()
    finally:
        await app.stop()
        api_module.Api.post_mentions = original  # type: ignore[method-assign]
    return results, profiler


# Where a function's own time goes, by the code it belongs to (first match wins).
AREAS = (
    ("method 'poll' of 'select.epoll'", "idle: waiting for SQLite's thread or the clients"),
    ("posix.waitpid", "idle: waiting for SQLite's thread or the clients"),
    ("/sqlalchemy/", "SQLAlchemy (ORM, Core, async adaption)"),
    ("/aiosqlite/", "asyncio, aiosqlite, greenlet plumbing"),
    ("/greenlet", "asyncio, aiosqlite, greenlet plumbing"),
    ("/asyncio/", "asyncio, aiosqlite, greenlet plumbing"),
    ("bot/playbook.py", "routing (bot.playbook.route)"),
    ("bot/lemmas.py", "routing: lemmas (pymorphy3)"),
    ("/pymorphy3/", "routing: lemmas (pymorphy3)"),
    ("/dawg", "routing: lemmas (pymorphy3)"),
    ("bot/sentiment.py", "sentiment classifier"),
    ("bot/mapping.py", "mapping rows (bot.mapping)"),
    ("handlers/importer.py", "reading rows (handlers.importer, csv)"),
    ("_csv", "reading rows (handlers.importer, csv)"),
    ("/pydantic", "validation (pydantic: MentionIn)"),
    ("handlers/api.py", "API handler, MentionIn.to_domain"),
    ("/aiohttp/", "HTTP (aiohttp), JSON"),
    ("/json/", "HTTP (aiohttp), JSON"),
    ("bot/bulk.py", "bulk intake (bot.bulk)"),
    ("bot/services.py", "case service (bot.services)"),
    ("bot/views.py", "case service (bot.services)"),
    ("bot/", "other domain code (bot/)"),
    ("store/", "store (repositories, types)"),
    ("dataclasses.py", "dataclasses.replace"),
)


def where_time_goes(profiler: cProfile.Profile, title: str, top: int = 0) -> None:
    """Own time per area, then (optionally) the functions with most own time."""
    stats = pstats.Stats(profiler)
    spent: Counter[str] = Counter()
    for (file, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{file} {name}"
        area = next((label for key, label in AREAS if key in where), "other (stdlib, builtins)")
        spent[area] += row[2]
    total = sum(spent.values()) or 1.0
    print(f"\nWhere the time goes: {title} (cProfile, own time by area)")
    for area, seconds in spent.most_common():
        if seconds / total >= 0.01:
            print(f"  {seconds / total:6.1%}  {area}")
    if top:
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(top)
        lines = stream.getvalue().splitlines()
        first = next(i for i, line in enumerate(lines) if line.strip().startswith("ncalls"))
        print(f"  top {top} functions by own time:")
        for line in lines[first : first + top + 1]:
            print("    " + re.sub(r"\S*/(site-packages|python3\.\d+|main)/", "", line))


# --- the import --------------------------------------------------------------------------------


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    """A monitoring export: the source's sentiment on every row, 20,000 authors."""
    rng = random.Random(seed)
    titles = ["external_id", "text", "author.id", "author.name", "sentiment", "url", "reach"]
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(titles)
        for n in range(rows):
            m = mention(n, rng)
            flat = {**m, "author.id": m["author"]["id"], "author.name": m["author"]["name"]}
            writer.writerow([flat[title] for title in titles])


async def import_phase(
    playbook: Playbook, rows: int, directory: Path, profile: bool
) -> tuple[float, float]:
    """Rows per second of one import into a fresh database, and its seconds."""
    work = directory / ("profiled" if profile else "timed")
    work.mkdir()
    config = bench_config(work, free_port())
    data = work / "mentions.csv"
    write_csv(data, rows)
    profiler = cProfile.Profile()
    if profile:
        profiler.enable()
    try:
        report = await import_file(data, config=config, playbook=playbook, source="vk")
    finally:
        profiler.disable()
    assert report.imported == rows and not report.rejected, report
    if profile:
        where_time_goes(profiler, f"import of {rows:,} rows")
    return report.rate, report.seconds


# --- main --------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="otklik-ingest-") as tmp:
        directory = Path(tmp)
        config = bench_config(directory, free_port())
        playbook = load_playbook(config.playbooks.path)
        print(
            f"HTTP: {args.clients} clients POST one mention each, then {args.batch_clients} "
            f"POST batches of {BATCH:,}; {args.seconds:.0f} s each; {NEGATIVE_SHARE:.0%} negative"
        )
        today, profile_today = await http_phase(config, playbook, args, bulk=False)
        print(
            f"  the App today: single {today['single']:,.0f} mentions/s, "
            f"batched {today['batched']:,.0f} mentions/s"
        )
        wired, profile_wired = await http_phase(config, playbook, args, bulk=True, single=False)
        print(f"  batched with the bulk wiring: {wired['batched']:,.0f} mentions/s")
        calm, _ = await http_phase(config, playbook, args, bulk=True, single=False, negative=0)
        print(
            f"  batched with the bulk wiring, no negative mentions (no cases): "
            f"{calm['batched']:,.0f} mentions/s"
        )

        print(f"Import: {args.rows:,} CSV rows into a fresh SQLite database")
        rate, seconds = await import_phase(playbook, args.rows, directory, profile=False)
        print(f"  {rate:,.0f} rows/s ({seconds:.1f} s)")

        where_time_goes(profile_today, "batched HTTP, the App today", top=12)
        where_time_goes(profile_wired, "batched HTTP with the bulk wiring")
        await import_phase(playbook, min(args.rows, 20_000), directory, profile=True)
    return {
        "http_single_per_s": round(today["single"], 1),
        "http_batched_per_s": round(today["batched"], 1),
        "bulk_import_per_s": round(rate, 1),
        "http_batched_bulk_wiring_per_s": round(wired["batched"], 1),
        "http_batched_bulk_wiring_no_cases_per_s": round(calm["batched"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8, help="single-mention clients")
    parser.add_argument("--batch-clients", type=int, default=1, help="clients sending batches")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
