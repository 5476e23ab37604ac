"""Issue 21, done when: three `otklik run` instances on one PostgreSQL database, Telegram in
webhook mode at the project's test server, which delivers updates round-robin to the three
and delivers one of them twice (its 200 lost on the way back).

Mentions arrive through the HTTP API spread over the instances, in batches of 50 and single
ones, from four clients at once; a fifth of them are negative, and those open cases (texts
numbered, so few join another). Specialists press "Взять" on cards as they appear.
Telegram's limits are kept at their real values, both sides run SCALE times faster (as in
test_burst_telegram.py): a chat takes 20 cards a (scaled) minute, so six chats of a few
hundred cards and reminders take over a real minute. MENTIONS is the issue's 2,000 (some 330
cases); OTKLIK_SCALEOUT_MENTIONS sets another figure.

Checked, at the test server and in the database:
- every case shown, its card posted exactly once (sendMessage per case per chat), or its line
  on exactly one pack card (a chat more than a minute behind packs small cases: at 2,000
  mentions some hundred cases are on packs);
- per-chat order: in each chat, a card queued (its outbox item's created_at) more than
  ORDER_SLACK_S before another card of no lower urgency is posted before it, unless either
  needed more than one attempt. The slack covers the transactions of different instances
  committing in another order than they began: an item is seen by the senders only once its
  transaction commits, so its created_at may precede one committed earlier;
- Telegram answered no 429;
- every case's SLA reminder (20 s after it opens, sla.yaml in tests/doubles/cluster.py)
  posted once;
- each press answered once and the case taken, the press delivered twice answered once.

The second test kills one instance (kill -9) in the middle: the others finish the work;
every mention answered 202 is stored and every case's card is posted; a card posted twice
must be one of the items the killed instance held claimed at the kill (its requests in flight:
sent to Telegram, or about to be, and not yet recorded), and their number bounds the
duplicates; the claims are taken over within the lease (outbox.lease_s = LEASE_S) plus the
take-over check (TAKE_OVER_CHECK, every 5 s); the time is printed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.messages.delivery import TAKE_OVER_CHECK
from tests.conftest import POSTGRES_SKIP, POSTGRES_UP
from tests.doubles.cluster import (
    REMINDER_AFTER_S,
    Cluster,
    Ingested,
    chunks,
    ingest,
    mentions,
)
from tests.handlers.ingest.test_api_hostile import own_postgres_database

pytestmark = [pytest.mark.postgres]

MENTIONS = int(os.environ.get("OTKLIK_SCALEOUT_MENTIONS", "2000"))
NEGATIVE_SHARE = 0.2
SCALE = 10  # a chat takes 200 cards a real minute: at 2,000 mentions the busiest one packs
KILL_SCALE = 20  # the kill's test is about the claims, not the chats' pace: faster
LEASE_S = 5.0
ORDER_SLACK_S = 2.0
PRESSES = 8
PATIENCE_S = 300.0  # a bound for the work to finish, not a speed requirement


@pytest.fixture
async def url() -> AsyncIterator[str]:
    if not POSTGRES_UP:
        pytest.skip(POSTGRES_SKIP)
    async with own_postgres_database() as fresh:
        yield fresh


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def outbox_cards(url: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(plain(url))
    try:
        return await connection.fetch(
            "SELECT id, chat, urgency, created_at, attempts, external_ref, status, claimed_by"
            " FROM outbox WHERE ref_key LIKE 'card:%' AND op = 'post'"
        )
    finally:
        await connection.close()


async def scalar(url: str, query: str, *args: Any) -> Any:
    connection = await asyncpg.connect(plain(url))
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


def order_violations(rows: list[asyncpg.Record]) -> list[tuple[int, int]]:
    """(posted first, queued clearly earlier and posted later) pairs, per the module's rule."""
    by_chat: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        if row["status"] == "delivered" and row["external_ref"]:
            by_chat.setdefault(row["chat"], []).append(row)
    slack = timedelta(seconds=ORDER_SLACK_S)
    wrong: list[tuple[int, int]] = []
    for posted in by_chat.values():
        posted.sort(key=lambda r: int(r["external_ref"]))
        for i, first in enumerate(posted):
            for later in posted[i + 1 :]:
                if (
                    later["urgency"] >= first["urgency"]
                    and later["created_at"] < first["created_at"] - slack
                    and first["attempts"] == 1
                    and later["attempts"] == 1
                ):
                    wrong.append((first["id"], later["id"]))
    return wrong


async def press_cards(cluster: Cluster, count: int) -> tuple[list[tuple[str, int]], int]:
    """Specialists press "Взять" on the first `count` cards as they appear; the first press
    is delivered twice (its 200 lost). Returns (callback query id, case id) of each and the
    update id of the first."""
    assert cluster.bot is not None
    pressed: list[tuple[str, int]] = []
    lost = 0
    seen: set[int] = set()
    dept_of = {chat: dept for dept, chat in cluster.chats.items()}
    while len(pressed) < count:
        for (chat, case_id), messages in cluster.cards().items():
            if case_id in seen or len(pressed) >= count:
                continue
            seen.add(case_id)
            person = cluster.staff[dept_of[chat]]
            query = cluster.server.press_button(
                chat, messages[0].message_id, person, button_text="Взять"
            )
            if not pressed:
                lost = cluster.server.lose_webhook_answer(cluster.bot)  # the one just queued
            pressed.append((query, case_id))
        await asyncio.sleep(0.2)
    return pressed, lost


async def press_again_where_stale(
    cluster: Cluster, pressed: list[tuple[str, int]]
) -> list[tuple[str, int]]:
    """Waits for each press's answer. A card redrawn between its post and the press (a similar
    mention joined, a reminder) refuses it as stale and asks to press again: as a person
    would, press the card as it is now. Returns every press made."""
    dept_of = {chat: dept for dept, chat in cluster.chats.items()}
    chat_of = {case: chat for chat, case in cluster.cards()}
    every = list(pressed)
    for query, case_id in pressed:
        for _ in range(5):
            answer = await cluster.server.wait_answer(query, timeout=30)
            if "устарела" not in answer.get("text", ""):
                break
            await asyncio.sleep(1)  # the redraw the answer promises goes ahead of cards
            chat = chat_of[case_id]
            card = cluster.cards()[(chat, case_id)][0]
            query = cluster.server.press_button(
                chat, card.message_id, cluster.staff[dept_of[chat]], button_text="Взять"
            )
            every.append((query, case_id))
    return every


async def finished(cluster: Cluster, url: str, cases: set[int], patience_s: float) -> None:
    """Until every case is shown (its card or a pack line), has its reminder, and the
    outbox is empty."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience_s
    while True:
        carded = cluster.shown()
        reminded = set(cluster.reminders())
        busy = await scalar(
            url, "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')"
        )
        if cases <= carded and cases <= reminded and busy == 0:
            return
        assert loop.time() < deadline, (
            f"{len(cases - carded)} cases not shown, {len(cases - reminded)} without a "
            f"reminder, {busy} outbox items undelivered"
        )
        await asyncio.sleep(0.5)


def report(line: str, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():  # the figures, shown in the test's output
        sys.stdout.write(f"\n{line}\n")


@pytest.mark.timeout(600)
async def test_three_instances_post_every_card_and_reminder_once_in_order(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Cluster(tmp_path, url, ("a", "b", "c"), scale=SCALE, lease_s=LEASE_S) as cluster:
        await cluster.start()
        instances = list(cluster.instances.values())
        sent = mentions(MENTIONS, NEGATIVE_SHARE)
        got = Ingested()
        loop = asyncio.get_running_loop()
        began = loop.time()
        presses = asyncio.create_task(press_cards(cluster, PRESSES))
        await ingest(instances, chunks(sent, batch=50, singles=5), got)
        ingested_s = loop.time() - began
        assert got.refused == [] and got.resent == 0
        assert set(got.case_of) == {m["external_id"] for m in sent}
        cases = {case for case in got.case_of.values() if case is not None}
        # Every negative mention is in a case (similar ones may join one).
        assert all(got.case_of[m["external_id"]] for m in sent if m["sentiment"] == "negative")
        pressed, lost = await asyncio.wait_for(presses, PATIENCE_S)
        pressed = await press_again_where_stale(cluster, pressed)
        await finished(cluster, url, cases, PATIENCE_S + REMINDER_AFTER_S)
        finished_s = loop.time() - began
        await asyncio.sleep(2)  # anything posted twice would have come by now

        cards, packs = cluster.cards(), cluster.packs()
        assert cluster.shown() == cases
        twice = {key: len(posted) for key, posted in cards.items() if len(posted) != 1}
        assert twice == {}, f"cards posted more than once: {twice}"
        twice = {key: len(posted) for key, posted in packs.items() if len(posted) != 1}
        assert twice == {}, f"cases on more than one pack: {twice}"
        assert cluster.server.stats.count_429 == 0
        reminders = cluster.reminders()
        assert set(reminders) == cases
        assert {case: n for case, n in reminders.items() if n != 1} == {}
        rows = await outbox_cards(url)
        assert sum(r["status"] == "delivered" for r in rows) == len(cards)
        assert {r["status"] for r in rows} <= {"delivered", "packed"}
        assert order_violations(rows) == []

        # Presses: each answered once, acted on once, the twice-delivered one too.
        answers = [
            c.params.get("callback_query_id") for c in cluster.server.calls("answerCallbackQuery")
        ]
        for query, case_id in pressed:
            assert answers.count(query) == 1, query
            state = await scalar(url, "SELECT state FROM cases WHERE id = $1", case_id)
            assert state != "new", (case_id, state)
        assert len(cluster.server.deliveries(lost)) >= 2  # delivered again, acted on once
        assert len({d.url for d in cluster.server.deliveries()}) == 3  # all three got some
        for instance in instances:
            assert "Traceback" not in instance.said(), instance.said()[-3000:]
        report(
            f"scale-out: {MENTIONS} mentions, {len(cases)} cases on 3 instances: "
            f"{len(cards)} cards, {len({case for _, case in packs})} cases on "
            f"{len({m.message_id for p in packs.values() for m in p})} packs, "
            f"{sum(reminders.values())} reminders, 0 duplicates, 0 x 429; taken in "
            f"{ingested_s:.0f} s, every card and reminder out {finished_s:.0f} s from the start",
            capsys,
        )


async def claims_of(url: str, instance: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(plain(url))
    try:
        return await connection.fetch(
            "SELECT id, ref_key, lease_until FROM outbox"
            " WHERE status = 'sending' AND claimed_by = $1",
            instance,
        )
    finally:
        await connection.close()


@pytest.mark.timeout(600)
async def test_kill_9_of_one_instance_mid_burst_loses_nothing_and_its_claims_move(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Cluster(
        tmp_path, url, ("a", "b", "c"), scale=KILL_SCALE, lease_s=LEASE_S, reclaim_s=10
    ) as cluster:
        await cluster.start()
        instances = list(cluster.instances.values())
        victim = cluster.instances["c"]  # a follower: the leader's own failover is
        # tests/e2e/test_leader_failover.py
        sent = mentions(MENTIONS, NEGATIVE_SHARE, seed=22)
        got = Ingested()
        feeding = asyncio.create_task(ingest(instances, chunks(sent, batch=50, singles=5), got))

        # In the middle of the burst, at a moment the victim holds claims (sending to
        # Telegram or about to): kill -9.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE_S
        while len(got.case_of) < MENTIONS // 2 or not await claims_of(url, "c"):
            assert loop.time() < deadline and not feeding.done(), "no moment to kill at"
            await asyncio.sleep(0.05)
        await victim.kill()
        killed_at = loop.time()
        held = await claims_of(url, "c")  # what it had in flight: the bound on duplicates
        while await claims_of(url, "c"):
            assert loop.time() - killed_at < PATIENCE_S, "the victim's claims were never taken"
            await asyncio.sleep(0.1)
        took_over_s = loop.time() - killed_at

        await feeding
        assert got.refused == []
        cases = {case for case in got.case_of.values() if case is not None}
        await finished(cluster, url, cases, PATIENCE_S + REMINDER_AFTER_S)
        await asyncio.sleep(2)

        # Nothing accepted is lost: every mention answered 202 is stored, every case shown.
        assert set(got.case_of) == {m["external_id"] for m in sent}
        assert await scalar(url, "SELECT count(*) FROM mentions") == len(sent)
        cards, packs = cluster.cards(), cluster.packs()
        assert cluster.shown() == cases
        # Posted twice: only what the victim held, and no more than it held.
        extra_cards = {case: len(p) - 1 for (_, case), p in cards.items() if len(p) > 1}
        held_cards = {
            int(r["ref_key"].split(":")[1])
            for r in held
            if (r["ref_key"] or "").startswith("card:")
        }
        assert set(extra_cards) <= held_cards, (extra_cards, held)
        # A pack posted twice lists its cases twice: its second message is the duplicate.
        extra_packs = {m.message_id for p in packs.values() if len(p) > 1 for m in p[1:]}
        held_packs = {
            int(case)
            for r in held
            if (r["ref_key"] or "").startswith("pack:")
            for case in r["ref_key"].removeprefix("pack:").split("-")
        }
        assert {case for (_, case), p in packs.items() if len(p) > 1} <= held_packs, (
            packs,
            held,
        )
        reminders = cluster.reminders()
        assert set(reminders) == cases
        extra_reminders = sum(n - 1 for n in reminders.values())
        duplicates = sum(extra_cards.values()) + len(extra_packs) + extra_reminders
        assert duplicates <= len(held), (extra_cards, extra_reminders, held)
        # No 429 is the first test's claim. Here, in a full parallel suite, a send stalled
        # around the kill got one (a retry_after the outbox honours): counted in the report.
        count_429 = cluster.server.stats.count_429
        # The claims moved within the lease and one take-over check (plus a poll's slack).
        assert took_over_s <= LEASE_S + TAKE_OVER_CHECK.total_seconds() + 1.0, took_over_s
        for instance in instances[:2]:
            assert "Traceback" not in instance.said(), instance.said()[-3000:]
        report(
            f"scale-out kill -9: {len(held)} claim(s) in flight at the kill, taken over "
            f"{took_over_s:.1f} s after it (lease {LEASE_S:.0f} s); {duplicates} duplicate(s); "
            f"{got.resent} request(s) resent to another instance; {len(cases)} cases; "
            f"{count_429} x 429",
            capsys,
        )
