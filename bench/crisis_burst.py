"""A crisis storm through to Telegram: is every mention in front of a person within a minute?

10,000 mentions (`--mentions`) arrive over 10 minutes (`--minutes`) through the HTTP API, as
sources send them: a monitoring source posts what it collected every `--flush` seconds in one
batch, a web form posts each complaint on its own (`--single-share` of them). Five storylines of
different sizes (3,000 / 2,000 / 1,200 / 800 / 500: water, a bus route, a clinic, a school,
benefits), each told many ways in ru, pl and en with people's own details and typos
(bench/storm_texts.py, seeded), and a long tail of unrelated complaints, each its own subject
and place. The shipped playbook routes them (housing, transport, health, education, social,
coordination each have a chat) and the bot delivers to the project's Telegram test server at
Telegram's real limits; both sides run `--scale` times faster, printed, and every time below is
in real (unscaled) seconds.

Printed, measured from the messages the test server holds (sends and edits, timestamped as it
stores them), not from the bot's database:
- lost: mentions sent that were not stored (not answered "accepted");
- count_429: the test server's 429 answers;
- cards posted per department chat;
- visible within 60 s: a mention is visible once the server holds a card of its case whose
  count includes it (the card itself is its first mention; "Ещё N похожих" or "Связанных
  упоминаний: N" count N more in the order they joined), or a pack card's line for its case
  ("Новые упоминания: N", a line with "/case N" and the first mention's text): a line of one
  mention shows that one; a small cluster's line with its count ("+N похожих") counts N more
  in the order they joined, as a card does: the issue's "counted on a cluster card", for a
  cluster too small for a card of its own. A mention past a line's count becomes visible on a
  redraw of the line that counts it, or on its case's own card. Which
  case a mention is in, and its place in that order, come from the API's answer and the store;
  whether a card or pack shows it only from the server. The share within 60 s of its POST, and
  the p99 of that time (null when more than 1% never became visible); how many mentions were
  first visible on a pack;
- purity: of the mentions that joined another's case, the share whose storyline is the case's
  (its most common); each tail complaint is a storyline of its own;
- peak RSS of the bot's process. The test server and the senders run in a process of their
  own (spawned: it holds none of the bot's memory); their peak is printed too, and the sum
  of both, the figure one process hosting all three gave before.

Waiting in the outbox is not visible: the queue message (issue 19, item 4) is not counted, though
it lists "/case N" too.

    .venv/bin/python bench/crisis_burst.py [--mentions 10000] [--minutes 10] [--scale 10]
                                           [--flush 5] [--single-share 0.2] [--seed 19]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from multiprocessing.connection import Connection  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402
from common import free_port  # noqa: E402
from storm_texts import Generated, storm  # noqa: E402

from bot.clock import ScaledClock  # noqa: E402
from bot.settings.config import load_config  # noqa: E402
from bot.settings.playbook import load_playbook  # noqa: E402
from handlers.app import App, settle_collector  # noqa: E402
from tests.doubles.bot_config import DEPARTMENTS, Source, telegram_bot_config  # noqa: E402
from tests.doubles.telegram_server.flood import Limits  # noqa: E402
from tests.doubles.telegram_server.server import TelegramServer  # noqa: E402

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
MONITORING_TOKEN = "bench-monitoring-token-0123456789"
FORMS_TOKEN = "bench-forms-token-0123456789abcdef"
SHARES = {"water": 0.30, "bus": 0.20, "clinic": 0.12, "school": 0.08, "benefits": 0.05}
TAIL_SHARE = 0.25  # the rest: each its own complaint
# When each storyline breaks, as a share of the storm's length; the tail runs throughout.
STARTS = {"water": 0.0, "bus": 0.1, "clinic": 0.2, "school": 0.35, "benefits": 0.5}
VISIBLE_WITHIN_S = 60.0
MAX_BATCH = 1000  # the API's limit per request

CARD = re.compile(r"Кейс №(\d+)")
COUNTED = re.compile(r"Ещё (\d+) похожих|Связанных упоминаний: (\d+)")
PACK = re.compile(r"Новые упоминания: \d+")  # a pack card's head (playbooks/templates pack)
PACK_LINE = re.compile(r"/case (\d+)([^\n]*)")  # a case's line on a pack card
PACK_COUNT = re.compile(r" · \+(\d+) похож")  # a small cluster's count on its pack line


@dataclass
class Sent:
    index: int
    mention: Generated
    at: float  # when its POST left (monotonic)
    answered: float = math.nan  # when the API answered it
    case: int | None = None
    rank: int = 0  # its place among its case's mentions, 1 for the first
    visible: float = math.inf  # when the server first held a card counting it (monotonic)
    via: int | None = None  # which of the server's messages (CardLog.shown) showed it first


# What a message the bot sent or edited is, by what its text says (playbooks/templates/ru).
KINDS = (
    ("pack", PACK),
    ("queue", re.compile(r"📥 Очередь")),
    ("crisis", re.compile(r"КРИЗИС|Кризис закрыт")),
    ("digest", re.compile(r"📊 Сводка")),
)


@dataclass(frozen=True)
class Shown:
    """One sendMessage or editMessageText the test server stored, and what it shows."""

    at: float  # time.monotonic() when the server stored it
    chat: int
    edit: bool
    kind: str  # "card", one of KINDS, or "other"
    case: int | None = None  # a card's case
    count: int = 0  # the mentions a card counts (its first and the ones counted on it)
    packed: tuple[tuple[int, int], ...] = ()  # the cases a pack lists, with their counts


class CardLog:
    """Every message the test server stores from the bot, sends and edits, in order, with what
    it shows: a card's case and count, a pack's cases; and the message ids of cards and packs
    per chat."""

    def __init__(self, server: TelegramServer) -> None:
        self.shown: list[Shown] = []
        self.cards: dict[int, set[int]] = defaultdict(set)  # chat -> message ids of cards
        self.packs: dict[int, set[int]] = defaultdict(set)  # chat -> message ids of packs
        send, edit = server._api_sendMessage, server._api_editMessageText

        def record(chat: int, message_id: int, text: str, edit: bool) -> None:
            at = time.monotonic()
            kind = next((name for name, pattern in KINDS if pattern.search(text)), None)
            if kind == "pack":  # each line shows its case's first mention, and the count
                cases = tuple(
                    (int(case), 1 + sum(int(n) for n in PACK_COUNT.findall(rest)))
                    for case, rest in PACK_LINE.findall(text)
                )
                self.shown.append(Shown(at, chat, edit, "pack", packed=cases))
                self.packs[chat].add(message_id)
                return
            card = CARD.search(text) if kind is None else None
            if card is None:
                self.shown.append(Shown(at, chat, edit, kind or "other"))
                return
            counted = COUNTED.search(text)
            more = int(next(g for g in counted.groups() if g)) if counted else 0
            self.shown.append(Shown(at, chat, edit, "card", int(card.group(1)), 1 + more))
            self.cards[chat].add(message_id)

        async def logged_send(state: Any, params: dict[str, str], files: Any) -> Any:
            result = await send(state, params, files)
            chat, message_id = int(result["chat"]["id"]), int(result["message_id"])
            record(chat, message_id, result.get("text", ""), edit=False)
            return result

        async def logged_edit(state: Any, params: dict[str, str], files: Any) -> Any:
            result = await edit(state, params, files)
            chat, message_id = int(params["chat_id"]), int(params["message_id"])
            record(chat, message_id, server.message(chat, message_id).text or "", edit=True)
            return result

        server._api_sendMessage = logged_send  # type: ignore[method-assign]
        server._api_editMessageText = logged_edit  # type: ignore[method-assign]


def schedule(mentions: list[Generated], length_s: float, rng: random.Random) -> list[float]:
    """Arrival times (seconds from the start, real time): a storyline breaks at its start and
    fades (most of it in the first minutes after), the tail comes evenly."""
    times: list[float] = []
    for one in mentions:
        start = STARTS.get(one.storyline)
        if start is None:
            times.append(rng.uniform(0, length_s))
            continue
        begin = start * length_s
        while True:
            at = begin + rng.expovariate(1 / (0.15 * length_s))
            if at < length_s:
                break
        times.append(at)
    return times


def payload(index: int, one: Generated) -> dict[str, Any]:
    return {
        "external_id": f"storm-{index}",
        "text": one.text,
        "language": one.language,
        "sentiment": "negative",
        "author": {"id": f"person-{index}", "name": f"Житель {index}", "channel": "vk"},
        "url": f"https://vk.com/wall-1_{index}",
    }


async def send_all(
    args: argparse.Namespace, base: str, sent: list[Sent], times: list[float]
) -> list[str]:
    """Posts every mention at its time (scaled): singles at once, the rest in the monitoring
    source's batches. Returns the problems met (non-202 answers)."""
    rng = random.Random(args.seed + 1)
    single = {s.index for s in sent if rng.random() < args.single_share}
    loop = asyncio.get_running_loop()
    start = loop.time()
    order = sorted(range(len(sent)), key=lambda i: times[i])
    problems: list[str] = []
    tasks: list[asyncio.Task[None]] = []

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:

        async def post(items: list[Sent], token: str) -> None:
            now = time.monotonic()
            for one in items:
                one.at = now
            body = [payload(one.index, one.mention) for one in items]
            headers = {"Authorization": f"Bearer {token}"}
            async with http.post(f"{base}/api/v1/mentions", json=body, headers=headers) as answer:
                if answer.status != 202:
                    problems.append(f"{answer.status}: {(await answer.text())[:200]}")
                    return
                results = (await answer.json())["results"]
            answered = time.monotonic()
            for one, result in zip(items, results, strict=True):
                one.answered = answered
                if result["status"] == "accepted":
                    one.case = result["case"]

        waiting: list[Sent] = []
        next_flush = args.flush
        for i in order:
            due = times[i]
            while next_flush <= due:  # the monitoring source sends what it has collected
                await asyncio.sleep(max(0.0, start + next_flush / args.scale - loop.time()))
                if waiting:
                    tasks.append(asyncio.create_task(post(waiting, MONITORING_TOKEN)))
                    waiting = []
                next_flush += args.flush
            if len(waiting) >= MAX_BATCH:
                tasks.append(asyncio.create_task(post(waiting, MONITORING_TOKEN)))
                waiting = []
            if i in single:
                await asyncio.sleep(max(0.0, start + due / args.scale - loop.time()))
                tasks.append(asyncio.create_task(post([sent[i]], FORMS_TOKEN)))
            else:
                waiting.append(sent[i])
        if waiting:
            await asyncio.sleep(max(0.0, start + next_flush / args.scale - loop.time()))
            tasks.append(asyncio.create_task(post(waiting, MONITORING_TOKEN)))
        await asyncio.gather(*tasks)
    return problems


def storyline_plan(
    args: argparse.Namespace,
) -> tuple[list[Generated], list[float], dict[str, int], int]:
    """The storm (seeded: both processes get the same): mentions, arrival times, sizes, tail."""
    tail = round(args.mentions * TAIL_SHARE)
    sizes = {story: round(args.mentions * share) for story, share in SHARES.items()}
    sizes["water"] += args.mentions - tail - sum(sizes.values())
    mentions = storm(sizes, tail, seed=args.seed)
    times = schedule(mentions, args.minutes * 60, random.Random(args.seed))
    return mentions, times, sizes, tail


@dataclass
class CardsSeen:
    """What the test server's process saw of the bot's messages (CardLog's, sent over)."""

    shown: list[Shown]  # in the order the server stored them
    cards: dict[int, set[int]]  # chat -> message ids of cards
    packs: dict[int, set[int]]  # chat -> message ids of packs


async def _received(conn: Connection) -> Any:
    """The next message on the pipe, without holding up this process's event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, conn.recv)


def storm_process(conn: Connection, args: argparse.Namespace) -> None:
    """The test server and the senders, in a process of their own: the bot's process then
    measures the bot's own memory. Times are time.monotonic(), one clock for both processes."""
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(storm_side(conn, args))


async def storm_side(conn: Connection, args: argparse.Namespace) -> None:
    mentions, times, _, _ = storyline_plan(args)
    sent = [Sent(i, one, math.nan) for i, one in enumerate(mentions)]
    server = TelegramServer(Limits(time_scale=args.scale))
    await server.start()
    try:
        server.add_bot(TOKEN, "otklik_bot")
        chats = {d: server.create_chat("supergroup", name).id for d, name in DEPARTMENTS.items()}
        log = CardLog(server)
        conn.send((server.api_base, chats))
        port = await _received(conn)  # the bot has started
        problems = await send_all(args, f"http://127.0.0.1:{port}", sent, times)
        conn.send(([(s.at, s.answered, s.case) for s in sent], problems))
        await _received(conn)  # the bot has drained its outbox (or given up)
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        seen = (log.shown, dict(log.cards), dict(log.packs))
        conn.send((seen, server.stats.count_429, peak_kb))
    finally:
        await server.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    mentions, _, sizes, tail = storyline_plan(args)
    sent = [Sent(i, one, math.nan) for i, one in enumerate(mentions)]
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, no copy of this one
    conn, theirs = spawn.Pipe()
    storm_side_process = spawn.Process(target=storm_process, args=(theirs, args), daemon=True)
    storm_side_process.start()
    api_base, chats = await _received(conn)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="otklik-crisis-burst-") as tmp:
        directory = Path(tmp)
        path = directory / "config.yaml"
        path.write_text(
            telegram_bot_config(
                database_url=f"sqlite+aiosqlite:///{directory / 'otklik.db'}",
                api_base=api_base,
                token=TOKEN,
                scale=args.scale,
                chats=chats,
                api_port=port,
                sources=[
                    Source("monitoring", MONITORING_TOKEN, ("ingest",)),
                    Source("forms", FORMS_TOKEN, ("ingest",)),
                ],
                poll_s=round(1.0 / args.scale, 3),
                max_retry_s=30,
            ),
            encoding="utf-8",
        )
        config = load_config(path, env={})
        app = App(config, load_playbook(config.playbooks.path), ScaledClock(args.scale))
        await app.start()
        settle_collector()  # as `otklik run` does once started
        started_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            started = time.monotonic()
            conn.send(port)
            timings, problems = await _received(conn)
            arrived = time.monotonic()
            for one, (at, answered, case) in zip(sent, timings, strict=True):
                one.at, one.answered, one.case = at, answered, case
            # Everything gets its minute; then until the outbox is empty, within bounds.
            await asyncio.sleep(VISIBLE_WITHIN_S / args.scale)
            deadline = time.monotonic() + args.drain_s / args.scale
            while time.monotonic() < deadline:
                async with app.database.uow() as uow:
                    if not await uow.outbox.depth():
                        break
                await asyncio.sleep(0.2)
            finished = time.monotonic()
            await rank(app, sent)
            outbox_left = 0
            async with app.database.uow() as uow:
                outbox_left = await uow.outbox.depth()
        finally:
            await app.stop()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send("stop")
    seen, count_429, storm_kb = await _received(conn)
    storm_side_process.join(timeout=30)
    return {
        "sent": sent,
        "log": CardsSeen(*seen),
        "chats": chats,
        "problems": problems,
        "count_429": count_429,
        "arrival_wall_s": arrived - started,
        "wall_s": finished - started,
        "outbox_left": outbox_left,
        "rss_mb": peak_kb / 1024,
        "rss_started_mb": started_kb / 1024,
        "rss_storm_side_mb": storm_kb / 1024,
        "sizes": sizes,
        "tail": tail,
    }


async def rank(app: App, sent: list[Sent]) -> None:
    """Each mention's place in its case, in the order mentions joined it (the order a card's
    count grows in)."""
    by_external = {f"storm-{s.index}": s for s in sent}
    cases = sorted({s.case for s in sent if s.case is not None})
    async with app.database.reader() as uow:
        for case_id in cases:
            stored = await uow.mentions.for_case(case_id)
            ordered = sorted(stored, key=lambda m: m.id or 0)
            for place, mention in enumerate(ordered, start=1):
                one = by_external.get(mention.external_id)
                if one is not None:
                    one.rank = place


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def replay(sent: list[Sent], shown: list[Shown]) -> list[int]:
    """When each mention became visible, and by which message: the server's messages in the
    order it stored them. A card shows its case's mentions up to its count (in the order they
    joined); a pack's line its case's first mention, the later ones only the case's own card.
    Returns how many mentions each message made visible first."""
    members: dict[int, list[Sent]] = defaultdict(list)
    for one in sent:
        if one.case is not None:
            members[one.case].append(one)
    for group in members.values():
        group.sort(key=lambda s: s.rank)
    upto: dict[int, int] = defaultdict(int)  # case -> the highest place shown so far
    revealed = [0] * len(shown)
    for index, message in enumerate(shown):
        cases = list(message.packed)
        if message.case is not None:
            cases.append((message.case, message.count))
        for case, count in cases:
            if count <= upto[case]:
                continue
            for one in members.get(case, ()):
                if upto[case] < one.rank <= count:
                    one.visible, one.via = message.at, index
                    revealed[index] += 1
            upto[case] = count
    return revealed


# The kinds of message the budget breakdown tells apart, in the order it prints them.
SPENT_ON = (
    "card",  # a new case's card, one mention
    "cluster card",  # a new case's card that already counts more
    "count edit",  # a card redrawn with a higher count
    "card edit",  # a card redrawn for anything else (its state, a pack's case taken)
    "pack",
    "pack edit",
    "queue",
    "crisis",
    "digest",
    "other",
)


def spent_on(shown: list[Shown]) -> list[str]:
    """Each message's kind for the budget breakdown (a card's edit is a count edit when its
    count grew since the card was last drawn)."""
    last: dict[int, int] = {}
    kinds: list[str] = []
    for message in shown:
        if message.kind == "card" and message.case is not None:
            before = last.get(message.case)
            last[message.case] = message.count
            if not message.edit:
                kinds.append("card" if message.count <= 1 else "cluster card")
            elif before is not None and message.count > before:
                kinds.append("count edit")
            else:
                kinds.append("card edit")
        elif message.kind == "pack":
            kinds.append("pack edit" if message.edit else "pack")
        else:
            kinds.append(message.kind)
    return kinds


def print_budget(
    args: argparse.Namespace,
    result: dict[str, Any],
    revealed: list[int],
    start: float,
) -> None:
    """Where each department chat's messages went, minute by minute (real minutes from the
    first post): per kind, how many messages and how many mentions they made visible first."""
    shown: list[Shown] = result["log"].shown
    kinds = spent_on(shown)
    names = {chat: d for d, chat in result["chats"].items()}
    per_chat: dict[int, dict[int, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    gained: dict[int, dict[int, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for message, kind, count in zip(shown, kinds, revealed, strict=True):
        minute = max(0, int((message.at - start) * args.scale // 60))
        per_chat[message.chat][minute][kind] += 1
        gained[message.chat][minute][kind] += count
    print("Where each chat's messages went (sends and edits: kind count (+mentions made visible)):")
    for chat, minutes in sorted(per_chat.items(), key=lambda c: names.get(c[0], "")):
        total, total_gained = Counter[str](), Counter[str]()
        for minute in minutes:
            total.update(minutes[minute])
            total_gained.update(gained[chat][minute])

        def line(calls: Counter[str], made: Counter[str]) -> str:
            return ", ".join(f"{k} {calls[k]} (+{made[k]})" for k in SPENT_ON if calls[k])

        print(
            f"  {names.get(chat, chat)}: {sum(total.values())} messages, "
            f"+{sum(total_gained.values())} visible: {line(total, total_gained)}"
        )
        for minute in sorted(minutes):
            calls = minutes[minute]
            print(
                f"    min {minute:>2}: {sum(calls.values()):>3} messages, "
                f"+{sum(gained[chat][minute].values()):<4} {line(calls, gained[chat][minute])}"
            )


def print_unseen(
    args: argparse.Namespace, sent: list[Sent], shown: list[Shown], chats: dict[str, int]
) -> None:
    """The mentions not visible within the minute, by why: a case's first mention or one that
    joined, the case's size, and whether a card of the case ever reached the chat; and by the
    department chat their case is in."""
    size = Counter(s.case for s in sent if s.case is not None)
    carded = {m.case for m in shown if m.case is not None}
    names = {chat: d for d, chat in chats.items()}
    chat_of = {m.case: m.chat for m in shown if m.case is not None}
    chat_of.update({case: m.chat for m in shown for case, _ in m.packed})
    reasons: Counter[str] = Counter()
    never: Counter[str] = Counter()
    by_chat: Counter[str] = Counter()
    by_minute: dict[str, Counter[int]] = defaultdict(Counter)  # chat -> arrival minute -> n
    first_at = min((one.at for one in sent), default=0.0)
    for one in sent:
        delay = (one.visible - one.at) * args.scale
        if one.case is None or delay <= VISIBLE_WITHIN_S:
            continue
        if one.rank == 1:
            why = "first mention of a case of one" if size[one.case] == 1 else "first of a cluster"
        else:
            why = "joined a case"
        why += ", its card in the chat" if one.case in carded else ", no card of its case"
        reasons[why] += 1
        department = names.get(chat_of.get(one.case, 0), "none")
        by_chat[department] += 1
        by_minute[department][int((one.at - first_at) * args.scale // 60)] += 1
        if math.isinf(delay):
            never[why] += 1
    if reasons:
        print(f"Not visible within {VISIBLE_WITHIN_S:g} s (of which never):")
        for why, count in reasons.most_common():
            print(f"  {why}: {count} ({never[why]})")
        print("  by chat, and by the minute they arrived in:")
        for department, count in by_chat.most_common():
            minutes = sorted(by_minute[department].items())
            print(f"    {department} {count}: " + ", ".join(f"{m}: {n}" for m, n in minutes))


def report(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    sent: list[Sent] = result["sent"]
    log: CardsSeen = result["log"]
    revealed = replay(sent, log.shown)
    via_packs = sum(1 for s in sent if s.via is not None and log.shown[s.via].kind == "pack")
    lost = sum(1 for s in sent if s.case is None)
    delays = [(s.visible - s.at) * args.scale for s in sent]
    within = sum(1 for d in delays if d <= VISIBLE_WITHIN_S) / len(sent)
    never = sum(1 for d in delays if math.isinf(d))
    p99 = percentile(delays, 99)

    members: dict[int, list[Sent]] = defaultdict(list)
    for one in sent:
        if one.case is not None:
            members[one.case].append(one)
    joined = right = 0
    per_story: dict[str, Counter[int]] = defaultdict(Counter)
    for case_id, group in members.items():
        story = Counter(s.mention.storyline for s in group).most_common(1)[0][0]
        # The case's first mention opened it; each of the others joined, rightly or not.
        joins = [s for s in group if s.rank > 1]
        joined += len(joins)
        right += sum(1 for s in joins if s.mention.storyline == story)
        for one in group:
            if not one.mention.storyline.startswith("tail-"):
                per_story[one.mention.storyline][case_id] += 1
    purity = right / joined if joined else 1.0

    cards = {d: len(result["log"].cards.get(chat, ())) for d, chat in result["chats"].items()}
    print(
        f"Crisis burst: {len(sent):,} mentions in {args.minutes:g} min at scale {args.scale:g} "
        f"(Telegram's limits and the storm {args.scale:g}x faster; wall {result['wall_s']:.0f} s, "
        f"arrivals over {result['arrival_wall_s']:.0f} s); times below in real seconds"
    )
    print(
        "Storylines: "
        + ", ".join(f"{s} {n}" for s, n in result["sizes"].items())
        + f"; tail {result['tail']} (each its own); {args.single_share:.0%} posted singly, "
        f"the rest in batches every {args.flush:g} s"
    )
    for problem in result["problems"][:5]:
        print(f"  API problem: {problem}")
    print(
        f"Lost: {lost}; 429s: {result['count_429']}; "
        f"outbox left at the end: {result['outbox_left']}"
    )
    print("Cards posted per department: " + ", ".join(f"{d} {n}" for d, n in cards.items()))
    packs = {d: len(result["log"].packs.get(chat, ())) for d, chat in result["chats"].items()}
    print(
        "Pack cards posted per department: "
        + ", ".join(f"{d} {n}" for d, n in packs.items())
        + f"; {len({c for m in log.shown for c, _ in m.packed})} cases listed on packs"
    )
    for story, spread in per_story.items():
        top = spread.most_common(1)[0][1]
        print(
            f"  {story}: {sum(spread.values())} mentions in {len(spread)} cases, "
            f"the largest holds {top / sum(spread.values()):.0%}"
        )
    print(
        f"Visible within {VISIBLE_WITHIN_S:g} s: {within:.1%}; p99 "
        + (f"{p99:.1f} s" if not math.isinf(p99) else "never")
        + f"; never visible: {never}; first visible on a pack card: {via_packs}"
    )
    # The same from when the API answered (the mention stored, its case opened or joined):
    # what delivery adds, apart from how long the API took to take the mention in.
    stored = [(s.visible - s.answered) * args.scale for s in sent if not math.isnan(s.answered)]
    print(
        f"Visible within {VISIBLE_WITHIN_S:g} s of the API's answer: "
        + (
            f"{sum(1 for d in stored if d <= VISIBLE_WITHIN_S) / len(stored):.1%}"
            if stored
            else "-"
        )
    )
    # Where the time goes: a case's first mention (its card or a pack line shows it) and the
    # mentions that joined a case (only its card's redraw counts them).
    for label, group in (
        ("first mentions of their case", [s for s in sent if s.rank == 1]),
        ("mentions that joined a case", [s for s in sent if s.rank > 1]),
    ):
        if group:
            share = sum(1 for s in group if (s.visible - s.at) * args.scale <= VISIBLE_WITHIN_S)
            print(
                f"  {label}: {len(group)}, visible within {VISIBLE_WITHIN_S:g} s: "
                f"{share / len(group):.1%}"
            )
    answers = [(s.answered - s.at) * args.scale for s in sent if not math.isnan(s.answered)]
    opened = sorted(m.at for m in log.shown if m.kind == "card")
    first_sent = min(s.at for s in sent)
    print(
        f"API answer (stored, case opened or joined): p50 {percentile(answers, 50):.1f} s, "
        f"p99 {percentile(answers, 99):.1f} s; first card on the server "
        f"{(opened[0] - first_sent) * args.scale:.1f} s after the first post"
        if answers and opened
        else "No API answers or no cards"
    )
    print_unseen(args, sent, log.shown, result["chats"])
    print_budget(args, result, revealed, first_sent)
    print(f"Purity: {purity:.3f} of {joined} joined mentions in their case's storyline")
    together = result["rss_mb"] + result["rss_storm_side_mb"]
    print(
        f"Peak RSS of the bot's process: {result['rss_mb']:.0f} MB "
        f"({result['rss_started_mb']:.0f} MB once the bot had started, before the storm); "
        f"the test server and the senders, a process of their own: "
        f"{result['rss_storm_side_mb']:.0f} MB; all three as one process used to be measured "
        f"(the sum of the peaks): {together:.0f} MB"
    )
    targets = (
        lost == 0
        and result["count_429"] == 0
        and within >= 0.99
        and purity >= 0.95
        and result["rss_mb"] < 300
    )
    print(
        "Targets lost 0, 429s 0, visible share >= 0.99, purity >= 0.95, RSS < 300 MB: "
        + ("met" if targets else "MISSED")
    )
    return {
        "lost": lost,
        "count_429": result["count_429"],
        "visible_60s_share": round(within, 4),
        "visible_p99_s": None if math.isinf(p99) else round(p99, 1),
        "purity": round(purity, 4),
        "rss_mb": round(result["rss_mb"], 1),
        "rss_with_server_and_senders_mb": round(together, 1),
        "cards": cards,
        "packs": packs,
        "visible_via_packs": via_packs,
        "scale": args.scale,
        "mentions": len(sent),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mentions", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--scale", type=float, default=10.0, help="limits and storm speed-up")
    parser.add_argument("--flush", type=float, default=5.0, help="seconds between batches")
    parser.add_argument("--single-share", type=float, default=0.2)
    parser.add_argument("--drain-s", type=float, default=600.0, help="most to wait at the end")
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    if args.mentions < 100 or args.minutes <= 0 or args.scale <= 0 or args.flush <= 0:
        parser.error("--mentions >= 100; --minutes, --scale and --flush positive")
    if not 0 <= args.single_share <= 1:
        parser.error("--single-share is a share, 0..1")
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(run(args))
    summary = report(args, result)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
