"""Ingest throughput: the HTTP API of a running App, and `otklik import` of a 100,000-row CSV.

(a) HTTP: the real App on 127.0.0.1 (the example config, an API token, no chat transport, so
cases open but nothing is delivered); once it has started, the garbage collector is set as
`otklik run` sets it (handlers.app.settle_collector). A separate load process sends mentions,
~20% negative (those open cases), the rest neutral or positive, each with the source's
sentiment:
  - single: `--clients` concurrent clients POST one mention at a time for `--seconds`;
  - batched: `--batch-clients` (1) POST batches of 1,000 for `--seconds` (the API hands
    batches to bot.intake.bulk); once more with no negative mentions (what it does when no
  case opens).
(b) Import: a generated CSV (100,000 rows, 20,000 authors, sentiment given) through
handlers.ingest.importer.import_file into a fresh SQLite database. A file this big is read in a
process of its own: its profile shows the importing process only.

(c) Encryption at rest (store/crypto.py): the runs above encrypt personal data, as shipped.
With `--encryption both` (the default), `--rounds` rounds then run single, batched and import
once with values stored in clear (store.crypto.Keyring.plaintext, pinned for the process) and
once encrypted, in turn: the cost is 1 - encrypted / plaintext of each side's best rate, and
also of the server's CPU time per mention (steadier when other work shares the machine).
`on` or `off` runs only the first part, encrypted or in clear.

Rates are measured without a profiler. Then prints where the time goes: cProfile of the server
during one more (shorter) batched run of each kind, and of a 20,000-row import, by area; the
last line is one JSON object starting {"http_single_per_s", "http_batched_per_s",
"bulk_import_per_s"} (encrypted unless `--encryption off`), then, with `both`, per rate
`<rate>_per_s_plaintext`, `<rate>_per_s_encrypted`, `encryption_overhead_<rate>`, the CPU
figures `<rate>_cpu_us_plaintext|encrypted` and `encryption_cpu_overhead_<rate>`, and
`encryption_overhead` and `encryption_cpu_overhead` (the largest of them).

`--import-only` skips the HTTP runs (with `--rows 20000`, a quick look at the import's cost).
`--batched-only` runs only the batched HTTP path, encrypted, grouping as the shipped playbook
says (similar mentions join), and prints {"http_batched_per_s", "http_batched_cpu_us"}; with
`--storm` the negative texts come without their "(#n)" (a number tells complaints apart), so
they all join a few cases: grouping's worst case; `--no-similar` turns similar-mention
grouping off (the baseline); `--profile` then profiles one more (shorter) run.

`--postgres URL` (postgresql+asyncpg://…) runs the HTTP part on PostgreSQL instead: each run
on a fresh database created on that server and dropped at the end, encrypted (keys from
OTKLIK_DATA_KEY and OTKLIK_INDEX_KEY, else generated for the run); answers other than 202 are
printed with their status. Imports and the cost of encryption stay on SQLite. Between the
single and the batched phase the database is ANALYZEd, as autovacuum does within its first
minute (`analyze`); `--no-analyze` leaves the planner without statistics, as in a database
seconds old.

    .venv/bin/python bench/ingest.py [--postgres URL [--no-analyze]] [--seconds 10]
                                     [--clients 8] [--batch-clients 1]
                                     [--rows 100000] [--encryption both|on|off] [--rounds 2]
                                     [--import-only]
                                     [--batched-only [--storm] [--no-similar] [--profile]]
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
import gc  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

from sqlalchemy import make_url, text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from bench.common import example_config, free_port  # noqa: E402
from bot.settings.config import Config  # noqa: E402
from bot.settings.playbook import Playbook, load_playbook  # noqa: E402
from handlers.app import App, settle_collector  # noqa: E402
from handlers.ingest.importer import import_file  # noqa: E402
from store import crypto  # noqa: E402

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
    storm = negative and os.environ.get("OTKLIK_BENCH_STORM") == "1"  # the load process's
    return {
        "external_id": f"b{n}",
        "text": text if storm else f"{text} (#{n})",
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
        statuses: Counter[int] = Counter()
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
                        statuses[response.status] += 1
                    await response.read()

        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await asyncio.gather(*(client(http) for _ in range(clients)))
        if statuses:
            print(f"  {mode}: answers other than 202: {dict(statuses)}", flush=True)
        return sent, errors, time.monotonic() - started

    out.send("ready")  # imports done: what the server does from now on is the load
    out.send(asyncio.run(main()))


async def drive(
    url: str,
    mode: str,
    clients: int,
    seconds: float,
    start: int,
    negative: float,
    on_ready: Callable[[], None] = lambda: None,
    on_done: Callable[[], None] = lambda: None,
) -> Measured:
    """Mentions per second the server accepted, measured by the load process, and the CPU
    time this process (the server, with its SQLite thread) spent per mention meanwhile."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe(duplex=False)
    arguments = (url, mode, clients, seconds, start, negative, theirs)
    process = context.Process(target=load, args=arguments)
    process.start()
    # Waited for in a thread: the server runs on this loop meanwhile.
    await asyncio.to_thread(ours.recv)
    on_ready()
    cpu = time.process_time()
    sent, errors, elapsed = await asyncio.to_thread(ours.recv)
    cpu = time.process_time() - cpu
    on_done()
    process.join()
    if errors:
        print(f"  {mode}: {errors} requests failed")
    return Measured(sent / elapsed, cpu / max(sent, 1) * 1e6)


@dataclass(frozen=True)
class Measured:
    per_s: float
    cpu_us: float  # CPU microseconds of the server process per mention: steadier than rates
    # on a machine other work shares


# --- the server --------------------------------------------------------------------------------


# --postgres URL: each run gets a fresh database on that server, dropped at the end.
POSTGRES: dict[str, Any] = {"url": None, "created": []}


async def bench_config(directory: Path, port: int) -> Config:
    url = POSTGRES["url"]
    if url is None:
        return example_config(directory, port, TOKEN)
    name = f"otklik_bench_{random.randrange(16**10):010x}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    POSTGRES["created"].append(name)
    return example_config(directory, port, TOKEN, str(make_url(url).set(database=name)))


async def analyze(url: str) -> None:
    """Planner statistics, as autovacuum gathers them within a minute of this much writing. A
    database seconds old has none: PostgreSQL then guesses every table nearly empty and looks
    up batches of a thousand ids by scanning (the batch phase's rate falls by half or more,
    and further with each batch). A deployment has them from its first minute on."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    finally:
        await engine.dispose()


async def drop_postgres_databases() -> None:
    if not POSTGRES["created"]:
        return
    admin = create_async_engine(POSTGRES["url"], isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            for name in POSTGRES["created"]:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def http_phase(
    config: Config,
    playbook: Playbook,
    args: argparse.Namespace,
    *,
    negative: float = NEGATIVE_SHARE,
    single: bool = True,
    profile: bool = False,
) -> tuple[dict[str, Measured], cProfile.Profile | None]:
    """The App as it is (batches go through bot.intake.bulk). Rates are measured without a profiler;
    with `profile`, one more batched run is profiled to show where the time goes."""
    app = App(config, playbook)
    await app.start()
    # As `otklik run` does (handlers/app.py run_forever): start-up objects stay out of full
    # collections, which otherwise walk them all a few times a second under this load.
    thresholds = gc.get_threshold()
    settle_collector()
    url = f"http://127.0.0.1:{config.api.port}/api/v1/mentions"
    profiler = cProfile.Profile() if profile else None
    try:
        results: dict[str, Measured] = {}
        start = random.randrange(1, 1_000) * 10_000_000  # fresh external ids for each run
        if single:
            results["single"] = await drive(
                url, "single", args.clients, args.seconds, start, negative
            )
            if POSTGRES["url"] is not None and not args.no_analyze:
                await analyze(config.database.url)
        results["batched"] = await drive(
            url, "batch", args.batch_clients, args.seconds, start + 3_000_000, negative
        )
        if profiler is not None:
            await drive(
                url,
                "batch",
                args.batch_clients,
                args.seconds / 2,
                start + 6_000_000,
                negative,
                profiler.enable,
                profiler.disable,
            )
    finally:
        await app.stop()
        gc.unfreeze()  # the next run's App is a new one
        gc.set_threshold(*thresholds)
    return results, profiler


# Where a function's own time goes, by the code it belongs to (first match wins).
AREAS = (
    ("method 'poll' of 'select.epoll'", "idle: waiting for SQLite's thread or the client"),
    ("/sqlalchemy/", "SQLAlchemy (ORM, Core, async adaption)"),
    ("/aiosqlite/", "asyncio, aiosqlite, greenlet plumbing"),
    ("/greenlet", "asyncio, aiosqlite, greenlet plumbing"),
    ("/asyncio/", "asyncio, aiosqlite, greenlet plumbing"),
    ("bot/intake/routing.py", "routing (bot.intake.routing.route)"),
    ("bot/intake/lemmas.py", "routing: lemmas (pymorphy3)"),
    ("/pymorphy3/", "routing: lemmas (pymorphy3)"),
    ("/dawg", "routing: lemmas (pymorphy3)"),
    ("bot/intake/sentiment/", "sentiment classifier"),
    ("bot/intake/mapping.py", "mapping rows (bot.intake.mapping)"),
    ("handlers/ingest/importer.py", "importer (handlers.ingest.importer)"),
    ("handlers/ingest/import_rows.py", "reading rows (handlers.ingest.import_rows, csv)"),
    ("handlers/ingest/schema.py", "MentionIn: packing, unpacking"),
    ("_csv", "reading rows (handlers.ingest.importer, csv)"),
    ("/pydantic", "validation (pydantic: MentionIn)"),
    ("handlers/ingest/api.py", "API handler, MentionIn.to_domain"),
    ("/aiohttp/", "HTTP (aiohttp) and JSON"),
    ("/json/", "HTTP (aiohttp) and JSON"),
    ("bot/intake/bulk.py", "bulk intake (bot.intake.bulk)"),
    ("bot/cases/service.py", "case service (bot.cases.service)"),
    # The parts the service composes, once all in service.py.
    ("bot/cases/grouping.py", "case service (bot.cases.service)"),
    ("bot/cases/similarity.py", "similar mentions (bot.cases.similarity)"),
    ("bot/cases/cards.py", "case service (bot.cases.service)"),
    ("bot/cases/authors.py", "case service (bot.cases.service)"),
    ("bot/messages/views.py", "case service (bot.cases.service)"),
    ("bot/", "other domain code (bot/)"),
    ("store/", "store (repositories, types)"),
    ("dataclasses.py", "dataclasses.replace"),
)


def _area(file: str, name: str) -> str | None:
    where = f"{file} {name}"
    return next((label for key, label in AREAS if key in where), None)


def where_time_goes(profiler: cProfile.Profile, title: str, top: int = 0) -> None:
    """Own time per area, then (optionally) the functions with most own time. Builtins
    (bisect, str.startswith, next, …) count for the code that called them."""
    stats = pstats.Stats(profiler)
    spent: Counter[str] = Counter()
    entries = stats.stats.items()  # type: ignore[attr-defined]
    for (file, _, name), (_, _, own, _, callers) in entries:
        area = _area(file, name)
        if area is None and file == "~" and callers:
            for (caller_file, _, caller_name), timing in callers.items():
                spent[_area(caller_file, caller_name) or "other (stdlib)"] += timing[2]
            continue
        spent[area or "other (stdlib)"] += own
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
) -> tuple[Measured, float]:
    """Rows per second of one import into a fresh database (and the CPU time of this
    process per row), and its seconds."""
    work = directory / ("profiled" if profile else "timed")
    work.mkdir()
    config = await bench_config(work, free_port())
    data = work / "mentions.csv"
    write_csv(data, rows)
    profiler = cProfile.Profile()
    if profile:
        profiler.enable()
    cpu = time.process_time()
    try:
        report = await import_file(data, config=config, playbook=playbook, source="vk")
    finally:
        cpu = time.process_time() - cpu
        profiler.disable()
    assert report.imported == rows and not report.rejected, report
    if profile:
        where_time_goes(profiler, f"import of {rows:,} rows")
    return Measured(report.rate, cpu / rows * 1e6), report.seconds


# --- encryption: its cost ----------------------------------------------------------------------

RATES = ("http_single", "http_batched", "bulk_import")


def rates(args: argparse.Namespace) -> tuple[str, ...]:
    return RATES[2:] if args.import_only else RATES


async def one_round(args: argparse.Namespace, playbook: Playbook) -> dict[str, Measured]:
    """Single, batched and import, each on a fresh database, without profiling."""
    with tempfile.TemporaryDirectory(prefix="otklik-ingest-round-") as tmp:
        directory = Path(tmp)
        config = await bench_config(directory, free_port())
        done = {}
        if not args.import_only:
            http, _ = await http_phase(config, playbook, args)
            done = {"http_single": http["single"], "http_batched": http["batched"]}
        imported, _ = await import_phase(playbook, args.rows, directory, profile=False)
    return {**done, "bulk_import": imported}


async def encryption_cost(args: argparse.Namespace, playbook: Playbook) -> dict[str, float]:
    """Rounds that alternate storing in clear and encrypted (others share this machine: a
    burst of their work must not land on one side only). Per rate: the best of each side and
    the cost 1 - encrypted / plaintext; the median CPU time per mention of each side and its
    cost. `encryption_overhead` is the largest rate cost."""
    runs: dict[str, list[dict[str, Measured]]] = {"plaintext": [], "encrypted": []}
    for number in range(1, args.rounds + 1):
        for side in ("plaintext", "encrypted"):
            crypto.pin(crypto.Keyring.plaintext() if side == "plaintext" else None)
            try:
                runs[side].append(await one_round(args, playbook))
            finally:
                crypto.pin(None)
            done = runs[side][-1]
            print(
                f"  round {number}, {side:>9}: "
                + ", ".join(f"{name} {done[name].per_s:,.0f}/s" for name in rates(args))
            )
    figures: dict[str, float] = {}
    for name in rates(args):
        best = {side: max(r[name].per_s for r in runs[side]) for side in runs}
        cpu = {side: statistics.median(r[name].cpu_us for r in runs[side]) for side in runs}
        cost = 1 - best["encrypted"] / best["plaintext"]
        cpu_cost = cpu["encrypted"] / cpu["plaintext"] - 1
        figures[f"{name}_per_s_plaintext"] = round(best["plaintext"], 1)
        figures[f"{name}_per_s_encrypted"] = round(best["encrypted"], 1)
        figures[f"encryption_overhead_{name}"] = round(cost, 3)
        figures[f"{name}_cpu_us_plaintext"] = round(cpu["plaintext"], 1)
        figures[f"{name}_cpu_us_encrypted"] = round(cpu["encrypted"], 1)
        figures[f"encryption_cpu_overhead_{name}"] = round(cpu_cost, 3)
        print(
            f"  {name}: best {best['plaintext']:,.0f}/s in clear, {best['encrypted']:,.0f}/s "
            f"encrypted ({cost:+.1%}); CPU {cpu['plaintext']:,.0f} → {cpu['encrypted']:,.0f} µs "
            f"a mention ({cpu_cost:+.1%})"
        )
    measured = rates(args)
    figures["encryption_overhead"] = max(figures[f"encryption_overhead_{n}"] for n in measured)
    figures["encryption_cpu_overhead"] = max(
        figures[f"encryption_cpu_overhead_{n}"] for n in measured
    )
    return figures


# --- main --------------------------------------------------------------------------------------


async def batched_only(args: argparse.Namespace) -> dict[str, float]:
    if args.storm:
        os.environ["OTKLIK_BENCH_STORM"] = "1"
    with tempfile.TemporaryDirectory(prefix="otklik-ingest-") as tmp:
        config = await bench_config(Path(tmp), free_port())
        playbook = load_playbook(config.playbooks.path)
        if args.no_similar:  # the baseline: grouping as before similar mentions joined
            grouping = playbook.routing.grouping.model_copy(update={"similar_within": None})
            routing = playbook.routing.model_copy(update={"grouping": grouping})
            playbook = playbook.model_copy(update={"routing": routing})
        grouping = playbook.routing.grouping
        print(
            f"HTTP batched only: {args.batch_clients} client(s) POST batches of {BATCH:,} for "
            f"{args.seconds:.0f} s; {NEGATIVE_SHARE:.0%} negative"
            f"{' (a storm: alike texts)' if args.storm else ''}; similar_within "
            f"{grouping.similar_within}, threshold {grouping.similar_threshold}; encrypted"
        )
        measured, profiler = await http_phase(
            config, playbook, args, single=False, profile=args.profile
        )
    batched = measured["batched"]
    print(f"  batched {batched.per_s:,.0f} mentions/s, {batched.cpu_us:,.0f} µs CPU a mention")
    if profiler is not None:
        where_time_goes(profiler, "batched HTTP, grouping as configured", top=20)
    return {
        "http_batched_per_s": round(batched.per_s, 1),
        "http_batched_cpu_us": round(batched.cpu_us, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, float]:
    if args.postgres:
        POSTGRES["url"] = args.postgres
        if not (os.environ.get(crypto.DATA_KEY_ENV) and os.environ.get(crypto.INDEX_KEY_ENV)):
            # PostgreSQL needs keys from the environment; a scratch database can have its own.
            crypto.pin(crypto.Keyring.generate("the benchmark's key"))
    try:
        return await measure(args)
    finally:
        await drop_postgres_databases()


async def measure(args: argparse.Namespace) -> dict[str, float]:
    if args.batched_only:
        return await batched_only(args)
    if args.postgres:  # the HTTP API only, encrypted: imports and the encryption cost on SQLite
        with tempfile.TemporaryDirectory(prefix="otklik-ingest-") as tmp:
            directory = Path(tmp)
            config = await bench_config(directory, free_port())
            playbook = load_playbook(config.playbooks.path)
            statistics_note = "no ANALYZE" if args.no_analyze else "ANALYZE after the single phase"
            stored = f"personal data encrypted; PostgreSQL, {statistics_note}"
            return await http_runs(args, config, playbook, directory, stored)
    if args.encryption == "off":
        crypto.pin(crypto.Keyring.plaintext())
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="otklik-ingest-") as tmp:
        directory = Path(tmp)
        config = await bench_config(directory, free_port())
        playbook = load_playbook(config.playbooks.path)
        stored = "in clear" if args.encryption == "off" else "personal data encrypted"
        if not args.import_only:
            figures.update(await http_runs(args, config, playbook, directory, stored))

        print(f"Import: {args.rows:,} CSV rows into a fresh SQLite database; {stored}")
        imported, seconds = await import_phase(playbook, args.rows, directory, profile=False)
        print(f"  {imported.per_s:,.0f} rows/s ({seconds:.1f} s)")
        calm = figures.pop("http_batched_no_cases_per_s", None)
        figures["bulk_import_per_s"] = round(imported.per_s, 1)
        if calm is not None:  # after the import's rate, as before there was --import-only
            figures["http_batched_no_cases_per_s"] = calm
        await import_phase(playbook, min(args.rows, 20_000), directory, profile=True)
    if args.encryption == "both":
        print(f"\nThe cost of encryption: {args.rounds} rounds, in clear and encrypted in turn")
        figures.update(await encryption_cost(args, playbook))
    return figures


async def http_runs(
    args: argparse.Namespace, config: Config, playbook: Playbook, directory: Path, stored: str
) -> dict[str, float]:
    print(
        f"HTTP: {args.clients} clients POST one mention each, then {args.batch_clients} "
        f"POST batches of {BATCH:,}; {args.seconds:.0f} s each; {NEGATIVE_SHARE:.0%} negative"
        f"; {stored}"
    )
    today, profile_today = await http_phase(config, playbook, args, profile=True)
    print(
        f"  single {today['single'].per_s:,.0f} mentions/s, "
        f"batched {today['batched'].per_s:,.0f} mentions/s"
    )
    (directory / "calm").mkdir()
    config = await bench_config(directory / "calm", free_port())
    calm, profile_calm = await http_phase(
        config, playbook, args, single=False, negative=0, profile=True
    )
    print(f"  batched, no negative mentions (no cases): {calm['batched'].per_s:,.0f} mentions/s")
    assert profile_today and profile_calm
    where_time_goes(profile_today, "batched HTTP", top=12)
    where_time_goes(profile_calm, "batched HTTP, no cases")
    return {
        "http_single_per_s": round(today["single"].per_s, 1),
        "http_batched_per_s": round(today["batched"].per_s, 1),
        "http_batched_no_cases_per_s": round(calm["batched"].per_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8, help="single-mention clients")
    parser.add_argument("--batch-clients", type=int, default=1, help="clients sending batches")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--encryption",
        choices=("both", "on", "off"),
        default="both",
        help="encrypted as shipped (on), in clear (off), or both and the cost",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds of each side for the encryption cost"
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="with --postgres: no ANALYZE after the single phase (a database seconds old)",
    )
    parser.add_argument("--import-only", action="store_true", help="only the import: no HTTP runs")
    parser.add_argument(
        "--batched-only", action="store_true", help="only batched HTTP, grouping as shipped"
    )
    parser.add_argument("--storm", action="store_true", help="with --batched-only: alike texts")
    parser.add_argument(
        "--no-similar", action="store_true", help="with --batched-only: similar texts never join"
    )
    parser.add_argument(
        "--profile", action="store_true", help="with --batched-only: where the time goes"
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="PostgreSQL server (postgresql+asyncpg://…): the HTTP runs, each on a fresh "
        "database there, dropped afterwards",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
