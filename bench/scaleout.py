"""Scale-out on PostgreSQL (issue 21): `otklik run` instances on one database, Telegram in
webhook mode at the project's Telegram test server, in this process.

For one instance, then for two (each phase on a fresh database on the `--postgres` server,
dropped afterwards; the processes are real `otklik run`s, tests/doubles/cluster.py):
- batched HTTP ingest: one client per instance POSTs batches of 1,000 mentions (a fifth
  negative, and those open cases, as bench/ingest.py) back to back for `--seconds`;
  mentions/s over every accepted mention; the instances deliver the cards meanwhile;
- case-to-card latency: at 80 % of Telegram's per-group limit (16 cards a minute in each of
  four department chats, Telegram's real limits unless `--scale`), single case-opening
  mentions spread over the instances for `--latency-seconds`; from the API's answer (the case
  opened) to the test server holding the card, p50 and p99. So that the chats carry that load
  and no more, this phase keeps the shipped SLA (no reminder comes within it; the test's short
  one would add a message per case) and turns similar-text grouping off (every mention opens a
  case of its own, as "(#n)" meant before grouping joined them: the phase measures delivery,
  not grouping). The messages each chat got are printed.
Over every phase: cards posted twice (sendMessage per case per chat) and 429s answered.

Prints the machine's load average, a summary, then one JSON line:
{"ingest_1", "ingest_2", "p50_ms_2", "p99_ms_2", "duplicates", "count_429"} (then the
one-instance latency, p50_ms_1 and p99_ms_1, and the instances' CPU seconds per 1,000
mentions in each ingest phase, cpu_s_per_1k_1 and cpu_s_per_1k_2: steadier than the rate on
a shared machine).

    .venv/bin/python bench/scaleout.py [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
                                       [--seconds 10] [--latency-seconds 60] [--scale 1]
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
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import AsyncIterator, Sequence  # noqa: E402
from contextlib import asynccontextmanager  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from store import crypto  # noqa: E402
from tests.doubles.cluster import (  # noqa: E402
    NEGATIVE,
    NEUTRAL,
    SOURCE_TOKEN,
    Cluster,
)
from tests.doubles.instances import Instance  # noqa: E402

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
BATCH = 1_000
NEGATIVE_SHARE = 0.2
LOAD = 0.8  # of Telegram's per-group limit: 20 messages a minute
PER_GROUP_PER_MIN = 20
# One text per department chat (the shipped routing: housing, transport, health, social).
LATENCY_TEXTS = (NEGATIVE[0], NEGATIVE[1], NEGATIVE[3], NEGATIVE[5])
CARD_TEXT = re.compile(r"Кейс №(\d+)</b>")
HEADERS = {"Authorization": f"Bearer {SOURCE_TOKEN}"}


@dataclass
class Phase:
    instances: int
    ingest_per_s: float = 0.0
    cpu_s_per_1000: float = 0.0  # the instances' CPU over the ingest, per 1,000 accepted
    refused: dict[int, int] = field(default_factory=dict)  # status -> answers not 202
    latencies_ms: list[float] = field(default_factory=list)
    duplicates: int = 0
    count_429: int = 0
    chat_messages: dict[str, Counter[str]] = field(default_factory=dict)  # dept -> method -> n


@asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    name = f"bench_scaleout_{uuid.uuid4().hex[:10]}"
    admin_url = server_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def mention(n: int, rng: random.Random, text: str | None = None) -> dict[str, Any]:
    negative = text is not None or rng.random() < NEGATIVE_SHARE
    chosen = text or rng.choice(NEGATIVE if negative else NEUTRAL)
    return {
        "external_id": f"b{n}",
        "text": f"{chosen} (#{n})",
        "author": {"id": f"user{rng.randrange(20_000)}", "name": "Житель", "channel": "vk"},
        "url": f"https://vk.com/wall-1_{n}",
        "sentiment": "negative" if negative else rng.choice(("neutral", "positive")),
    }


async def post(
    http: aiohttp.ClientSession, instance: Instance, body: list[dict[str, Any]]
) -> tuple[int, dict[str, Any] | None]:
    async with http.post(
        f"{instance.api_base}/api/v1/mentions", json=body, headers=HEADERS
    ) as response:
        return response.status, (await response.json() if response.status == 202 else None)


async def batched_ingest(instances: Sequence[Instance], seconds: float, phase: Phase) -> None:
    loop = asyncio.get_running_loop()
    numbers = iter(range(10**9))
    accepted = 0

    async def client(http: aiohttp.ClientSession, instance: Instance, seed: int) -> None:
        nonlocal accepted
        rng = random.Random(seed)
        while loop.time() < until:
            body = [mention(next(numbers), rng) for _ in range(BATCH)]
            status, _ = await post(http, instance, body)
            if status == 202:
                accepted += len(body)
            else:
                phase.refused[status] = phase.refused.get(status, 0) + 1

    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        cpu_before = sum(i.cpu_seconds() for i in instances)
        started = loop.time()
        until = started + seconds
        await asyncio.gather(*(client(http, i, n) for n, i in enumerate(instances)))
        phase.ingest_per_s = accepted / (loop.time() - started)
        cpu = sum(i.cpu_seconds() for i in instances) - cpu_before
        phase.cpu_s_per_1000 = cpu / accepted * 1000 if accepted else float("nan")


async def latency(
    cluster: Cluster, instances: Sequence[Instance], seconds: float, phase: Phase
) -> None:
    """Case-opening singles at LOAD of each chat's minute, round-robin over the instances;
    then waits for every card (a bound, not a target) and reads when each arrived."""
    loop = asyncio.get_running_loop()
    rng = random.Random(7)
    per_chat_per_s = LOAD * PER_GROUP_PER_MIN * cluster.scale / 60
    interval = 1 / (per_chat_per_s * len(LATENCY_TEXTS))
    opened: dict[int, float] = {}
    started = loop.time()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        n = 0
        while loop.time() < started + seconds:
            at = started + n * interval
            await asyncio.sleep(max(0.0, at - loop.time()))
            body = [mention(10**8 + n, rng, LATENCY_TEXTS[n % len(LATENCY_TEXTS)])]
            status, answer = await post(http, instances[n % len(instances)], body)
            n += 1
            if status != 202 or answer is None:
                phase.refused[status] = phase.refused.get(status, 0) + 1
                continue
            case = answer["results"][0].get("case")
            if case is not None:
                opened.setdefault(int(case), loop.time())

    def carded() -> dict[int, float]:
        out: dict[int, float] = {}
        for call in cluster.server.calls("sendMessage"):
            found = CARD_TEXT.search(str(call.params.get("text", "")))
            if call.ok and found and int(found.group(1)) in opened:
                out.setdefault(int(found.group(1)), call.at)
        return out

    await cluster.server.wait_for(lambda: len(carded()) >= len(opened), timeout=120)
    arrived = carded()
    phase.latencies_ms = [(arrived[c] - opened[c]) * 1000 for c in opened]


def without_similar_grouping(playbooks: Path) -> None:
    routing = playbooks / "routing.yaml"
    text = routing.read_text(encoding="utf-8")
    kept = [line for line in text.splitlines() if not line.strip().startswith("similar_")]
    routing.write_text("\n".join(kept) + "\n", encoding="utf-8")


def chat_messages(cluster: Cluster) -> dict[str, Counter[str]]:
    department = {chat: dept for dept, chat in cluster.chats.items()}
    out: dict[str, Counter[str]] = {}
    for call in cluster.server.calls():
        chat = call.params.get("chat_id")
        if call.ok and chat is not None and int(chat) in department:
            out.setdefault(department[int(chat)], Counter())[call.method] += 1
    return out


def count_duplicates(cluster: Cluster) -> int:
    return sum(len(posted) - 1 for posted in cluster.cards().values())


async def run_phase(args: argparse.Namespace, count: int, what: str) -> Phase:
    phase = Phase(count)
    names = ["a", "b"][:count]
    with tempfile.TemporaryDirectory(prefix="otklik-scaleout-") as directory:
        async with (
            scratch_database(args.postgres) as url,
            Cluster(
                Path(directory), url, names, scale=args.scale, short_sla=what == "ingest"
            ) as cluster,
        ):
            if what == "latency":
                without_similar_grouping(Path(directory) / "playbooks")
            await cluster.start()
            instances = list(cluster.instances.values())
            if what == "ingest":
                await batched_ingest(instances, args.seconds, phase)
            else:
                await latency(cluster, instances, args.latency_seconds, phase)
            phase.duplicates = count_duplicates(cluster)
            phase.chat_messages = chat_messages(cluster)
            phase.count_429 = cluster.server.stats.count_429
    return phase


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--latency-seconds", type=float, default=60.0)
    parser.add_argument("--scale", type=float, default=1.0, help="Telegram's limits, faster")
    args = parser.parse_args()
    if not (os.environ.get(crypto.DATA_KEY_ENV) and os.environ.get(crypto.INDEX_KEY_ENV)):
        # The instances read their keys from the environment; a scratch database's own.
        os.environ[crypto.DATA_KEY_ENV] = f"bench:{crypto.new_key_text()}"
        os.environ[crypto.INDEX_KEY_ENV] = crypto.new_key_text()
    load_before = os.getloadavg()
    ingest = {n: await run_phase(args, n, "ingest") for n in (1, 2)}
    late = {n: await run_phase(args, n, "latency") for n in (1, 2)}
    load_after = os.getloadavg()
    phases = [*ingest.values(), *late.values()]
    duplicates = sum(p.duplicates for p in phases)
    count_429 = sum(p.count_429 for p in phases)
    print(
        f"machine: {os.cpu_count()} cores, load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after (1 min)"
    )
    for n, p in ingest.items():
        print(
            f"batched ingest, {n} instance(s): {p.ingest_per_s:,.0f} mentions/s "
            f"(batches of {BATCH}, {args.seconds:.0f} s; not 202: {p.refused or 'none'}); "
            f"instance CPU {p.cpu_s_per_1000:.3f} s per 1,000 mentions"
        )
    for n, p in late.items():
        print(
            f"case-to-card latency, {n} instance(s), {len(p.latencies_ms)} cards at "
            f"{LOAD:.0%} of Telegram's limits (scale {args.scale:g}): "
            f"p50 {percentile(p.latencies_ms, 0.5):.0f} ms, "
            f"p99 {percentile(p.latencies_ms, 0.99):.0f} ms, "
            f"max {max(p.latencies_ms, default=float('nan')):.0f} ms; "
            f"not 202: {p.refused or 'none'}"
        )
        for dept, methods in sorted(p.chat_messages.items()):
            print(f"  {dept}: " + ", ".join(f"{m} {c}" for m, c in sorted(methods.items())))
    print(f"duplicates (cards posted twice): {duplicates}; 429 answered: {count_429}")
    result = {
        "ingest_1": round(ingest[1].ingest_per_s),
        "ingest_2": round(ingest[2].ingest_per_s),
        "p50_ms_2": round(percentile(late[2].latencies_ms, 0.5)),
        "p99_ms_2": round(percentile(late[2].latencies_ms, 0.99)),
        "duplicates": duplicates,
        "count_429": count_429,
        "p50_ms_1": round(percentile(late[1].latencies_ms, 0.5)),
        "p99_ms_1": round(percentile(late[1].latencies_ms, 0.99)),
        "cpu_s_per_1k_1": round(ingest[1].cpu_s_per_1000, 3),
        "cpu_s_per_1k_2": round(ingest[2].cpu_s_per_1000, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
