"""Time to compute the evening digest (and the weekly report) over a month of data on SQLite.

Generates 1,000,000 mentions (20% negative) and 200,000 cases over 30 days, 10 departments,
50,000 authors (a few labelled systematic critics and opinion leaders) into a fresh SQLite file
migrated by Alembic, with realistic handling times: first touch after minutes, approval after
hours, some deadlines missed, open cases left over, 1% drills, 5% ignored as "not negative"
(with their events), a few crises. Rows go in with executemany in one transaction.

Then computes the digest as the scheduled job does (every figure, the view and its rendering
in both locales, the chart's data; no chart drawing, no sending), `--repeat` times, and reports
the median; the same for the weekly report. EXPLAIN QUERY PLAN of the heaviest query is shown
so a slow run says where the time goes. The last line is one JSON object starting
{"digest_s": …}. Target: digest_s < 2.

    .venv/bin/python bench/digest.py [--mentions 1000000] [--cases 200000] [--repeat 5]
                                     [--db PATH] [--keep]
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
import random  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any, cast  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from bot.clock import FrozenClock  # noqa: E402
from bot.messages.texts import texts_for  # noqa: E402
from bot.ports import UnitOfWorkFactory  # noqa: E402
from bot.reports.digest import DigestService  # noqa: E402
from bot.reports.evening import evening_context  # noqa: E402
from bot.reports.weekly import weekly_context  # noqa: E402
from bot.settings.config import Config, load_config  # noqa: E402
from bot.staff.directory import Directory  # noqa: E402
from store import audit, crypto  # noqa: E402
from store.db import Database  # noqa: E402

DAYS = 30
DEPARTMENTS = [f"dept{i}" for i in range(10)]
DEPT_WEIGHTS = [30, 18, 12, 10, 8, 7, 6, 4, 3, 2]  # a few departments get most of it
SOURCES = ["vk", "telegram", "email", "rss:news", "forms"]
SOURCE_WEIGHTS = [50, 25, 10, 10, 5]
CODES = ["heating", "water", "roads", "bus", "trash", "snow", "schools", "clinics", "lights"]
TZ = ZoneInfo("Europe/Moscow")
# The evening of the last generated day: the digest's "now".
NOW = datetime(2026, 11, 30, 19, 0, tzinfo=TZ).astimezone(UTC)
START = NOW - timedelta(days=DAYS)

CONFIG = """
locale: ru
timezone: Europe/Moscow
database: {{url: "sqlite+aiosqlite:///{db}"}}
playbooks: {{path: "{root}/playbooks/default", templates: "{root}/playbooks/templates"}}
departments:
{departments}
coordination_department: dept0
"""


def stamp(moment: datetime) -> str:
    # SQLAlchemy's storage format for DateTime on SQLite (UTC, no offset).
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def opt(moment: datetime | None) -> str | None:
    return stamp(moment) if moment is not None else None


def daytime(rng: random.Random) -> datetime:
    """A moment in the month, more of them in the daytime (local 8..22)."""
    day = rng.randrange(DAYS + 1)
    hour = rng.choice([*range(8, 22), *range(9, 19), *range(0, 24)])
    moment = START.astimezone(TZ).replace(hour=0, minute=0, second=0) + timedelta(
        days=day, hours=hour, seconds=rng.randrange(3600)
    )
    moment = moment.astimezone(UTC)
    return moment if moment < NOW else daytime(rng)  # nothing from after the digest


def authors(rng: random.Random, count: int) -> Iterator[tuple[Any, ...]]:
    for i in range(count):
        roll = rng.random()
        labels = (
            '["systematic_critic"]'
            if roll < 0.02
            else '["opinion_leader"]'
            if roll < 0.03
            else "[]"
        )
        first = START + timedelta(seconds=rng.randrange(DAYS * 86400))
        name = crypto.keyring().encrypt(f"Автор {i + 1}")  # as the store keeps it
        yield (i + 1, name, labels, 0, 0, 0, stamp(first), stamp(NOW))


def cases(rng: random.Random, count: int) -> Iterator[tuple[Any, ...]]:
    for i in range(count):
        created = daytime(rng)
        dept = rng.choices(DEPARTMENTS, DEPT_WEIGHTS)[0]
        source = rng.choices(SOURCES, SOURCE_WEIGHTS)[0]
        drill = rng.random() < 0.01
        ft_due = created + timedelta(hours=1)
        answer_due = created + timedelta(hours=4)
        resolution_due = created + timedelta(days=2)
        touched = created + timedelta(minutes=rng.lognormvariate(3.2, 0.9))  # ~25 min median
        approved = created + timedelta(minutes=rng.lognormvariate(4.8, 0.7))  # ~2 h median
        published = approved + timedelta(minutes=rng.randrange(5, 60))
        state, reason = "closed", None
        outcome: str | None = "resolved"
        first_touched: datetime | None = touched
        approved_at: datetime | None = approved
        published_at: datetime | None = published
        closed: datetime | None = published + timedelta(hours=rng.randrange(1, 48))
        roll = rng.random()
        if roll < 0.05:  # ignored as not negative
            state, outcome, reason = "ignored", None, "not_negative"
            approved_at = published_at = None
            closed = touched
        elif roll < 0.08 or touched > NOW:  # nobody took it yet
            state, outcome = "new", None
            first_touched = approved_at = published_at = closed = None
        elif roll < 0.12 or approved > NOW:  # in work
            state, outcome = "taken", None
            approved_at = published_at = closed = None
        elif roll < 0.20 or published > NOW:  # published, follow-up pending
            state, outcome = "published", None
            closed = None
            if published > NOW:
                state, published_at = "approved", None
        elif roll < 0.25:
            outcome, published_at = "moved_to_private", None
        elif roll < 0.28:
            outcome, published_at = "no_action", None
        old = created < NOW - timedelta(days=3)
        # Old cases were dealt with, but for a few forgotten ones.
        if state in ("new", "taken", "published") and old and rng.random() > 0.05:
            state, outcome = "closed", "resolved"
            first_touched, approved_at = touched, approved
            published_at, closed = published, published + timedelta(hours=2)
        if closed is not None and closed > NOW:
            closed, outcome, state = None, None, "published" if published_at else "taken"
            if reason:
                state, reason = "taken", None
        codes = json.dumps(rng.sample(CODES, rng.choice([0, 1, 1, 1, 2])))
        yield (
            i + 1, dept, state, "normal", stamp(created), source, drill, "default",
            stamp(ft_due), stamp(answer_due), stamp(resolution_due), opt(first_touched),
            opt(approved_at), opt(published_at), opt(closed), outcome, reason, codes, 1, 0,
        )  # fmt: skip


def mentions(
    rng: random.Random, count: int, case_rows: list[tuple[Any, ...]], author_count: int
) -> Iterator[tuple[Any, ...]]:
    """One negative mention per case, at its creation; the rest neutral or positive, and a
    few negative ones that joined no case."""
    negative_left = int(count * 0.2) - len(case_rows)
    for i, case in enumerate(case_rows):
        author = min(int(rng.paretovariate(1.2)), author_count)
        yield _mention(i, "negative", case[4], author, case[0], case[17])
    for i in range(len(case_rows), count):
        author = rng.randrange(1, author_count + 1)
        if negative_left > 0:
            negative_left -= 1
            sentiment = "negative"
        else:
            sentiment = rng.choice(["neutral", "neutral", "positive"])
        yield _mention(i, sentiment, stamp(daytime(rng)), author, None, "[]")


def _mention(
    i: int, sentiment: str, at: str, author: int, case_id: int | None, codes: str
) -> tuple[Any, ...]:
    # Personal data as the store keeps it: encrypted, the external id's keyed hash beside it.
    keys = crypto.keyring()
    # The sealed record: external_id, url, text, story_id, reply_to_url (MENTION_PERSONAL).
    record = json.dumps([f"m{i}", f"https://vk.com/wall-1_{i}", "текст", None, None])
    return (
        "vk", keys.encrypt(record), author, "vk", keys.blind(f"a{author}"), None, at, sentiment,
        "source", 0, codes, case_id, keys.blind(f"m{i}"),
    )  # fmt: skip


def chained_events(case_rows: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    """The "not negative" ignores, linked into the audit chain as the store links them (the
    database refuses an event row without its place in the chain)."""
    prev = audit.GENESIS
    payload = {"reason": "not_negative"}
    for row in case_rows:
        if row[16] != "not_negative":
            continue
        at = datetime.strptime(row[14], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        nonce = audit.new_nonce()
        seal = audit.seal_of(nonce, "spec", payload)
        link = audit.link_hash(prev, row[0], at, "ignore", None, None, seal)
        yield (row[0], row[14], "spec", "ignore", json.dumps(payload), prev, link, seal, nonce)
        prev = link


def generate(path: Path, n_mentions: int, n_cases: int, n_authors: int) -> float:
    started = time.perf_counter()
    rng = random.Random(7)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=OFF")  # a throw-away file: no journal while loading
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-500000")
    # Building an index once over loaded rows is several times faster than keeping it up to
    # date row by row: drop the migrations' indexes, load, create them again.
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        " AND tbl_name IN ('mentions', 'cases', 'authors', 'events')"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    with conn:
        conn.executemany(
            "INSERT INTO authors (id, display_name, labels, negative_count, neutral_count,"
            " positive_count, first_seen_at, last_seen_at) VALUES (?,?,?,?,?,?,?,?)",
            authors(rng, n_authors),
        )
        case_rows = list(cases(rng, n_cases))
        conn.executemany(
            "INSERT INTO cases (id, department, state, priority, created_at, source, drill,"
            " sla_policy, first_touch_due_at, answer_due_at, resolution_due_at,"
            " first_touched_at, approved_at, published_at, closed_at, outcome, ignore_reason,"
            " codes, mention_count, version, escalation_level)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
            case_rows,
        )
        conn.executemany(
            "INSERT INTO mentions (source, personal, author_id, identity_channel,"
            " identity_hash, language, received_at, sentiment,"
            " sentiment_source, reach, codes, case_id, external_id_hash)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            mentions(rng, n_mentions, case_rows, n_authors),
        )
        conn.executemany(
            "INSERT INTO events (case_id, at, actor, kind, payload, prev_hash, hash, seal,"
            " nonce) VALUES (?,?,?,?,?,?,?,?,?)",
            chained_events(case_rows),
        )
        crises = []
        for day in range(DAYS):
            opened = START + timedelta(days=day, hours=rng.randrange(8, 18))
            closed = opened + timedelta(hours=2)
            timeline = json.dumps(
                [
                    {"at": opened.isoformat(), "event": "opened", "count": 12},
                    {
                        "at": (opened + timedelta(minutes=40)).isoformat(),
                        "event": "peak",
                        "count": 30,
                    },
                    {"at": closed.isoformat(), "event": "closed", "count": 4},
                ]
            )
            crises.append(
                ("surge", "department", rng.choice(DEPARTMENTS[:3]), stamp(opened), 12, 10.0,
                 30, stamp(opened + timedelta(minutes=40)), None, stamp(closed), False, timeline)
            )  # fmt: skip
        conn.executemany(
            'INSERT INTO crises (threshold_id, scope, key, opened_at, count_at_open, "limit",'
            " peak_count, peak_at, below_since, closed_at, drill, timeline)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            crises,
        )
    with conn:
        for _, sql in indexes:
            conn.execute(sql)
    conn.execute("PRAGMA journal_mode=WAL")  # as the bot runs it
    conn.execute("ANALYZE")  # what a long-running database has; the planner uses it
    conn.close()
    return time.perf_counter() - started


def explain(path: Path) -> list[str]:
    """The plan of the per-hour negative mentions query, the one that reads the most rows."""
    conn = sqlite3.connect(path)
    start = stamp(NOW.astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0))
    rows = conn.execute(
        "EXPLAIN QUERY PLAN SELECT cases.department, count(*) FROM mentions"
        " LEFT OUTER JOIN cases ON cases.id = mentions.case_id"
        " WHERE mentions.sentiment = 'negative' AND mentions.received_at >= ?"
        " AND mentions.received_at < ? AND (mentions.case_id IS NULL OR cases.drill = 0)"
        " GROUP BY cases.department",
        (start, stamp(NOW)),
    ).fetchall()
    conn.close()
    return [row[-1] for row in rows]


def config_for(path: Path, tmp: Path) -> Config:
    departments = "\n".join(
        f"  - {{id: {d}, name: Отдел {i}, telegram: {{chat_id: -100{i}}}}}"
        for i, d in enumerate(DEPARTMENTS)
    )
    file = tmp / "config.yaml"
    file.write_text(CONFIG.format(db=path, root=ROOT, departments=departments), encoding="utf-8")
    return load_config(file, env={})


async def measure(config: Config, repeat: int) -> dict[str, Any]:
    database = Database(config.database.url)
    directory = Directory(config, frozenset({"telegram"}))
    # SqlUnitOfWork is a UnitOfWork; mypy reads the Protocol's attributes as invariant.
    service = DigestService(cast(UnitOfWorkFactory, database.uow), FrozenClock(NOW), directory, TZ)
    ru = texts_for(config.playbooks.templates, "ru")
    en = texts_for(config.playbooks.templates, "en")
    evening: list[float] = []
    weekly: list[float] = []
    figures = None
    for _ in range(repeat):
        started = time.perf_counter()
        figures = await service.evening()
        context = evening_context(figures, directory, TZ)
        ru.render("digest.html.j2", **context)
        en.render("digest.html.j2", **context)
        service.chart_data(figures)
        evening.append(time.perf_counter() - started)
        started = time.perf_counter()
        week = await service.weekly()
        context = weekly_context(week, directory, TZ)
        ru.render("weekly.html.j2", **context)
        weekly.append(time.perf_counter() - started)
    await database.dispose()
    assert figures is not None
    return {
        "digest_s": statistics.median(evening),
        "digest_first_s": evening[0],
        "weekly_s": statistics.median(weekly),
        "new_today": figures.total("new"),
        "negative_today": figures.negative,
        "open_now": figures.total("open"),
        "sla_today": figures.overall_sla.compliance,
        "text": ru.render("digest.html.j2", **evening_context(figures, directory, TZ)),
    }


async def migrate(path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{path}")
    await database.upgrade()
    await database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mentions", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--authors", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", type=Path, help="reuse or create this SQLite file")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="otklik-bench-digest-"))
    path = args.db or tmp / "digest.db"
    generated = None
    if not path.exists():
        asyncio.run(migrate(path))
        generated = generate(path, args.mentions, args.cases, args.authors)
    size_mb = path.stat().st_size / 1e6
    config = config_for(path, tmp)
    figures = asyncio.run(measure(config, args.repeat))
    plan = explain(path)
    text = figures.pop("text")
    print(f"Evening digest over {args.mentions:,} mentions and {args.cases:,} cases (SQLite)")
    if generated is not None:
        print(f"  generated in {generated:.1f} s, database {size_mb:,.0f} MB")
    print(
        f"  today: {figures['new_today']:,} new cases, {figures['negative_today']:,} negative"
        f" mentions, {figures['open_now']:,} open now, SLA {figures['sla_today']:.0%}"
    )
    print(
        f"  evening digest: {figures['digest_s'] * 1000:,.0f} ms median of {args.repeat}"
        f" (first run {figures['digest_first_s'] * 1000:,.0f} ms; target < 2,000 ms)"
    )
    print(f"  weekly report:  {figures['weekly_s'] * 1000:,.0f} ms median")
    print("  plan of the per-hour negative mentions query:")
    for line in plan:
        print(f"    {line}")
    print("\nThe digest as sent (ru), first lines:")
    for line in text.splitlines()[:12]:
        print(f"  {line}")
    if not args.keep and args.db is None:
        path.unlink()
    print(
        json.dumps(
            {
                "digest_s": round(figures["digest_s"], 3),
                "digest_first_s": round(figures["digest_first_s"], 3),
                "weekly_s": round(figures["weekly_s"], 3),
                "mentions": args.mentions,
                "cases": args.cases,
            }
        )
    )


if __name__ == "__main__":
    main()
