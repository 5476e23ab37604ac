"""Pack cards: in a backlogged chat, waiting single-mention cases go out several to a message.

Through the real intake, case service, store and outbox worker, on both backends; the chat
is a recording stand-in that takes a few messages a minute (tests/bot/messages/test_queue.py).
"""

from __future__ import annotations

import html
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.cases.grouping import CaseOpening
from bot.cases.lifecycle import ActionRequest
from bot.cases.service import CaseService
from bot.clock import FrozenClock
from bot.messages.delivery import (
    PACK_CLUSTER_MAX,
    PACK_MAX,
    PACK_REDRAW,
    PACK_SIZE,
    PACK_WAIT,
    OutboxWorker,
    RetryPolicy,
)
from bot.messages.outbox import (
    OutboxItem,
    OutboxOp,
    OutboxStatus,
    PermanentFailure,
    RetryLater,
)
from bot.messages.texts import DEFAULT_TEMPLATES_DIR, texts_for
from bot.messages.views import PackView, pack_line, pack_view
from bot.model import Action, Priority
from bot.settings.playbook import load_playbook
from bot.staff.directory import Directory
from handlers.matrix.render import MatrixRenderer
from handlers.sandbox.render import SandboxRenderer
from handlers.telegram.keyboards import PACK_ROWS, pack_keyboard
from handlers.telegram.render import TelegramRenderer, fits
from store.db import Database
from store.mappers import outbox_from_row
from store.models import OutboxRow
from tests.bot.messages.test_queue import PACKABLE, PacedChat
from tests.doubles.support import make_config, make_mention

# Unrelated complaints to one department, none like another (none joins another's case).
SINGLES = PACKABLE[:10]
BUS_COMPLAINT = "Автобус 42 не пришёл, на Мицкевича ждём час"  # like none of SINGLES


def chat_and_worker(database: Database, clock: FrozenClock) -> tuple[PacedChat, OutboxWorker]:
    chat = PacedChat(clock=clock)
    chat.packs_cards = True  # type: ignore[attr-defined]
    worker = OutboxWorker(database.uow, {chat.name: chat}, clock, RetryPolicy(jitter=0.0))
    return chat, worker


def service(tmp_path: Path, database: Database, clock: FrozenClock) -> CaseService:
    config = make_config(tmp_path, database.url)
    directory = Directory(config, frozenset({"telegram"}))
    routing = load_playbook(config.playbooks.path).routing
    return CaseService(database.uow, clock, directory, config.tz, policy=routing)


async def open_singles(cases: CaseService, clock: FrozenClock, texts: tuple[str, ...]) -> list[int]:
    opened: list[int] = []
    for number, text in enumerate(texts):
        priority = Priority.HIGH if number == 3 else Priority.NORMAL
        got = await cases.intake(
            make_mention(f"s{number}", clock.now(), text=text),
            CaseOpening("transport", priority=priority),
        )
        assert got.case is not None and got.case.id is not None
        opened.append(got.case.id)
    return opened


async def open_cluster(
    cases: CaseService, clock: FrozenClock, size: int, key: str = "c", start: int = 0
) -> int:
    """A case of `size` near-identical complaints from different people (or `size` more)."""
    case_id = 0
    for n in range(start, start + size):
        got = await cases.intake(
            make_mention(f"{key}{n}", clock.now(), text=BUS_COMPLAINT),
            CaseOpening("transport"),
        )
        assert got.case is not None and got.case.id is not None
        case_id = got.case.id
    return case_id


async def outbox_rows(database: Database) -> list[OutboxItem]:
    async with database.uow() as uow:
        rows = await uow.session.scalars(select(OutboxRow).order_by(OutboxRow.id))
        return [outbox_from_row(row) for row in rows]


def packs_in(chat: PacedChat) -> dict[str, dict[str, Any]]:
    return {m: p for m, p in chat.messages.items() if p.get("view") == "pack"}


async def test_a_backlog_of_single_complaints_goes_out_in_packs(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases = service(tmp_path, database, clock)
    _, worker = chat_and_worker(database, clock)
    # A cluster past PACK_CLUSTER_MAX: its card shows the sources and the split a line
    # cannot; not packed.
    cluster = await open_cluster(cases, clock, PACK_CLUSTER_MAX + 1)
    singles = await open_singles(cases, clock, SINGLES)
    await worker.run_once()

    rows = await outbox_rows(database)
    packed = [r for r in rows if r.status == OutboxStatus.PACKED.value]
    # Ten single cases where a minute takes five messages: one pack grown to hold all ten
    # (pack_size) rather than a full pack of PACK_SIZE and a second of two; the most urgent
    # first, then the oldest; the cluster's card is not packed.
    assert sorted(r.case_id or 0 for r in packed) == sorted(singles)
    assert cluster not in {r.case_id for r in packed}
    packs = [r for r in rows if (r.ref_key or "").startswith("pack:")]
    assert len(packs) == 1 and packs[0].op == OutboxOp.POST.value
    assert {r.external_ref for r in packed} == {packs[0].ref_key}
    assert packs[0].payload["view"] == "pack"
    lines = packs[0].payload["items"]
    assert len(lines) == len(SINGLES) > PACK_SIZE
    assert lines[0]["case_id"] == singles[3]  # the high-priority one first, then the oldest
    assert [line["case_id"] for line in lines[1:]] == sorted(line["case_id"] for line in lines[1:])
    assert packs[0].urgency == Priority.HIGH.rank

    # Nothing is both packed and queued; a second worker (a restart) packs nothing again and
    # ensure_cards finds every case with a card.
    _, restarted = chat_and_worker(database, clock)
    await restarted.run_once()
    assert await cases.ensure_cards() == 0
    again = await outbox_rows(database)
    assert len([r for r in again if (r.ref_key or "").startswith("pack:")]) == 1
    card_posts = [
        r for r in again if r.op == OutboxOp.POST.value and (r.ref_key or "").startswith("card:")
    ]
    assert len(card_posts) == len({r.ref_key for r in card_posts})  # one post per card


async def test_a_pack_not_full_goes_once_its_oldest_case_waited_long_enough(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases = service(tmp_path, database, clock)
    chat, worker = chat_and_worker(database, clock)
    singles = await open_singles(cases, clock, SINGLES[: PACK_SIZE - 2])
    clock.advance(PACK_WAIT)
    await worker.run_once()
    assert [[line["case_id"] for line in p["items"]] for p in packs_in(chat).values()] == [
        [singles[3], *singles[:3], *singles[4:]]
    ]


async def take_from_a_pack(
    cases: CaseService, chat: PacedChat, worker: OutboxWorker, clock: FrozenClock
) -> tuple[str, int]:
    """A pack of PACK_SIZE single cases in the chat, and its first case taken by a specialist
    (its card not sent yet): the pack's message id and the case."""
    singles = await open_singles(cases, clock, SINGLES[:PACK_SIZE])
    await worker.run_once()
    assert len(packs_in(chat)) == 1
    pack_id, pack = next(iter(packs_in(chat).items()))
    taken = singles[0]
    line = next(line for line in pack["items"] if line["case_id"] == taken)
    actor = cases._directory.by_staff_id("tspec")
    assert actor is not None
    result = await cases.act(
        taken, ActionRequest(Action.TAKE, expected_version=line["version"]), actor
    )
    assert result.error is None
    return pack_id, taken


async def test_taking_a_case_from_its_pack_posts_its_card_and_marks_the_line(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases = service(tmp_path, database, clock)
    chat, worker = chat_and_worker(database, clock)
    pack_id, taken = await take_from_a_pack(cases, chat, worker, clock)
    clock.advance(timedelta(minutes=1))  # the next minute of the chat's budget
    await worker.run_once()
    cards = [p for p in chat.messages.values() if p.get("view") == "card"]
    assert [c["case"]["id"] for c in cards] == [taken]  # its own card, once
    assert cards[0]["case"]["state"] == "taken"
    redrawn = chat.messages[pack_id]["items"]
    marked = next(line for line in redrawn if line["case_id"] == taken)
    assert marked["carded"] and marked["state"] == "taken"
    keyboard = pack_keyboard(chat.messages[pack_id], texts_for(DEFAULT_TEMPLATES_DIR, "ru"))  # type: ignore[arg-type]
    assert keyboard is not None
    assert len(keyboard.inline_keyboard) == len(redrawn) - 1  # no button for the taken one
    # Once more: nothing new is posted for it.
    clock.advance(timedelta(minutes=1))
    await worker.run_once()
    assert [c["case"]["id"] for c in chat.messages.values() if c.get("view") == "card"] == [taken]


async def test_a_change_folded_into_a_waiting_card_edit_still_redraws_its_pack_line(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    """A case's card edit that waits long (a busy chat) takes every later change in place,
    keeping its creation time: the pack's line still follows the latest (it said "taken" for
    a case released since)."""
    cases = service(tmp_path, database, clock)
    chat, worker = chat_and_worker(database, clock)
    pack_id, case_id = await take_from_a_pack(cases, chat, worker, clock)
    actor = cases._directory.by_staff_id("tspec")
    assert actor is not None
    chat.failures.append(RetryLater("Too Many Requests", after=600))  # its card waits
    clock.advance(PACK_REDRAW)
    await worker.run_once()
    for _ in range(25):  # the worker watching as it does, for longer than a redraw looks back
        clock.advance(PACK_REDRAW)
        await worker.run_once()
    case = await cases.get(case_id)
    assert case is not None
    released = await cases.act(
        case_id, ActionRequest(Action.RELEASE, expected_version=case.version), actor
    )
    assert released.error is None
    clock.advance(PACK_REDRAW)
    await worker.run_once()
    clock.advance(timedelta(minutes=10))  # the card's retry is due; the chat takes it all
    await worker.run_once()
    cards = [p for p in chat.messages.values() if p.get("view") == "card"]
    assert [c["case"]["state"] for c in cards] == ["new"]  # type: ignore[index]
    marked = next(line for line in chat.messages[pack_id]["items"] if line["case_id"] == case_id)  # type: ignore[attr-defined]
    assert marked["carded"] and marked["state"] == "new"


async def test_a_pack_refused_for_good_gives_its_cases_back_as_cards(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    cases = service(tmp_path, database, clock)
    chat, worker = chat_and_worker(database, clock)
    singles = await open_singles(cases, clock, SINGLES[:PACK_SIZE])
    chat.failures.append(PermanentFailure("Bad Request: message is too long"))
    await worker.run_once()
    assert not packs_in(chat)
    for _ in range(4):  # minute by minute, until every case is in the chat
        clock.advance(timedelta(minutes=1))
        await worker.run_once()
    shown = {p["case"]["id"] for p in chat.messages.values() if p.get("view") == "card"}
    shown |= {line["case_id"] for p in packs_in(chat).values() for line in p["items"]}
    assert shown == set(singles)


def test_a_pack_reads_in_both_locales_and_fits_telegram() -> None:
    card: Any = {
        "case": {"id": 7, "version": 3, "state": "new", "priority": "high", "mention_count": 1},
        "source": "vk",
        "text": "<b>Светофор</b> & " + "не работает " * 40,
    }
    cluster: Any = {
        **card,
        "case": {**card["case"], "mention_count": 3},
        "similar": {"count": 2, "people": 2, "first": "06.12 10:02", "last": "06.12 10:05"},
    }
    lines = [{**pack_line(card), "case_id": 7 + n} for n in range(PACK_SIZE)]
    lines[1] = {**lines[1], "state": "taken", "carded": True}
    lines[2] = {**pack_line(cluster), "case_id": 9}
    assert lines[2]["mentions"] == 3 and lines[0]["mentions"] == 1
    view: PackView = pack_view(lines)  # type: ignore[arg-type]
    ru = TelegramRenderer(texts_for(DEFAULT_TEMPLATES_DIR, "ru")).render(view)
    en = TelegramRenderer(texts_for(DEFAULT_TEMPLATES_DIR, "en")).render(view)
    assert "Новые упоминания: 8" in ru.text and "New mentions: 8" in en.text
    assert "🟠 <b>/case 7</b> · vk\n&lt;b&gt;Светофор&lt;/b&gt; &amp; не работает" in ru.text
    assert "/case 8</b> · vk · В работе → на своей карточке" in ru.text
    assert "on its own card" in en.text
    # A small cluster's line: its count and spread; a line of one mention shows none.
    assert "/case 9</b> · vk · +2 похожих от 2 чел. · 06.12 10:02–06.12 10:05\n" in ru.text
    assert "/case 9</b> · vk · +2 similar from 2 people · 06.12 10:02–06.12 10:05\n" in en.text
    assert ru.text.count("похож") == 1
    assert fits(ru.text) and fits(en.text)
    assert len(lines[0]["text"]) <= 200
    assert ru.markup is not None
    labels = [row[0].text for row in ru.markup.inline_keyboard]  # type: ignore[union-attr]
    assert labels[0] == "Взять №7" and "Взять №8" not in labels and len(labels) == PACK_SIZE - 1
    # The sandbox draws the same buttons; Matrix the text, with "!case N" and no buttons.
    sandbox = SandboxRenderer(texts_for(DEFAULT_TEMPLATES_DIR, "en")).render(view)
    assert [row[0]["label"] for row in sandbox["buttons"]][:2] == ["Take #7", "Take #9"]
    assert sandbox["buttons"][0][0]["data"] == {"k": "c", "case": 7, "v": 3, "a": "take", "x": ""}
    matrix = MatrixRenderer(texts_for(DEFAULT_TEMPLATES_DIR, "ru")).render(view)
    assert "!case 7" in matrix.body and "Новые упоминания: 8" in matrix.body
    assert not matrix.reactions


def test_the_largest_pack_fits_telegram() -> None:
    """PACK_MAX lines at their longest (a 200-character text full of characters HTML escapes,
    a long source, six-digit case numbers, a small cluster's count and spread at the bound,
    every line on its own card) fit in one message: every line kept, each text cut alike to
    the length that fits, still long enough to read the gist."""
    card: Any = {
        "case": {
            "id": 999_999,
            "version": 3,
            "state": "new",
            "priority": "critical",
            "mention_count": PACK_CLUSTER_MAX,
        },
        "source": "telegram-channel-news",
        "text": "<&> " * 60,
        "similar": {
            "count": PACK_CLUSTER_MAX - 1,
            "people": PACK_CLUSTER_MAX - 1,
            "first": "31.12 23:59",
            "last": "31.12 23:59",
        },
    }
    lines = [
        {**pack_line(card), "case_id": 999_000 + n, "state": "taken", "carded": True}
        for n in range(PACK_MAX)
    ]
    view: PackView = pack_view(lines)  # type: ignore[arg-type]
    for locale in ("ru", "en"):
        rendered = TelegramRenderer(texts_for(DEFAULT_TEMPLATES_DIR, locale)).render(view)
        assert fits(rendered.text)
        assert all(f"/case {999_000 + n}" in rendered.text for n in range(PACK_MAX))
        assert rendered.text.count(f"+{PACK_CLUSTER_MAX - 1} ") == PACK_MAX
        texts = [line for line in rendered.text.split("\n") if line.startswith("&lt;&amp;&gt;")]
        assert len(texts) == PACK_MAX and len(set(texts)) == 1  # cut alike, none dropped
        assert texts[0].endswith("…") and len(html.unescape(texts[0])) >= 60


def test_a_large_pack_keyboard_goes_two_a_row() -> None:
    card: Any = {
        "case": {"id": 1, "version": 1, "state": "new", "priority": "normal", "mention_count": 1},
        "source": "vk",
        "text": "Нет воды",
    }
    for count, rows in ((PACK_ROWS, PACK_ROWS), (PACK_ROWS + 1, PACK_ROWS // 2 + 1)):
        view: PackView = pack_view(  # type: ignore[arg-type]
            [{**pack_line(card), "case_id": n} for n in range(1, count + 1)]
        )
        keyboard = pack_keyboard(view, texts_for(DEFAULT_TEMPLATES_DIR, "ru"))
        assert keyboard is not None and len(keyboard.inline_keyboard) == rows
        labels = [button.text for row in keyboard.inline_keyboard for button in row]
        assert labels == [f"Взять №{n}" for n in range(1, count + 1)]


async def test_a_small_cluster_rides_its_pack_line_until_it_grows_past_the_bound(
    tmp_path: Path, database: Database, clock: FrozenClock
) -> None:
    """A case of a few similar mentions goes on a pack like a single one, its line counting
    them; one more joining redraws the line (one pack edit), not a card of its own, and its
    take button follows the case's version. Past PACK_CLUSTER_MAX it gets its own card and
    the line says so. A restart posts nothing twice."""
    cases = service(tmp_path, database, clock)
    chat, worker = chat_and_worker(database, clock)
    cluster = await open_cluster(cases, clock, 2)
    await open_singles(cases, clock, SINGLES[: PACK_SIZE - 1])
    await worker.run_once()

    def cluster_line() -> dict[str, Any]:
        (pack,) = packs_in(chat).values()
        return next(line for line in pack["items"] if line["case_id"] == cluster)

    def cluster_cards() -> list[dict[str, Any]]:
        return [
            p
            for p in chat.messages.values()
            if p.get("view") == "card" and p["case"]["id"] == cluster
        ]

    line = cluster_line()
    assert line["mentions"] == 2 and line["similar"]["count"] == 1 and not line["carded"]

    await open_cluster(cases, clock, 1, start=2)  # a third joins: the line counts it
    for _ in range(2):
        clock.advance(timedelta(minutes=1))  # the next minute of the chat's budget
        await worker.run_once()
    line = cluster_line()
    case = await cases.get(cluster)
    assert case is not None and case.mention_count == 3
    assert line["mentions"] == 3 and line["similar"]["count"] == 2 and not line["carded"]
    assert line["version"] == case.version  # its take button is not stale
    assert not cluster_cards()
    edits = [
        r
        for r in await outbox_rows(database)
        if r.case_id == cluster and r.op == OutboxOp.EDIT.value
    ]
    assert edits and all(r.status == OutboxStatus.PACKED.value for r in edits)

    # A restart posts nothing again, and every case is in the chat.
    restarted = OutboxWorker(database.uow, {chat.name: chat}, clock, RetryPolicy(jitter=0.0))
    assert await restarted.recover() == 0
    sent_before = len(chat.sent)
    clock.advance(timedelta(minutes=1))
    await restarted.run_once()
    assert len(chat.sent) == sent_before
    assert await cases.ensure_cards() == 0

    # Past the bound: its own card, once, and the line says so.
    await open_cluster(cases, clock, PACK_CLUSTER_MAX - 2, start=3)
    for _ in range(2):
        clock.advance(timedelta(minutes=1))
        await restarted.run_once()
    (card,) = cluster_cards()
    assert card["case"]["mention_count"] == PACK_CLUSTER_MAX + 1
    assert cluster_line()["carded"]


async def test_cards_of_several_packs_are_marked_and_waiting_packs_rewritten_at_once(
    database: Database, clock: FrozenClock
) -> None:
    """mark_packed_many and repack_many (one statement each on PostgreSQL) do what
    mark_packed and a rewrite of each waiting pack did: only items still waiting change."""

    def post(key: str, view: str = "card") -> OutboxItem:
        payload: Any = {"view": view, "items": []} if view == "pack" else {"view": view}
        return OutboxItem(
            transport="t",
            chat="c",
            op=OutboxOp.POST,
            payload=payload,
            idempotency_key=key,
            ref_key=f"{view}:{key}",
            created_at=clock.now(),
        )

    async with database.uow() as uow:
        await uow.outbox.enqueue([post(f"k{n}") for n in range(5)])
        await uow.outbox.enqueue([post("p0", "pack"), post("p1", "pack")])
        await uow.commit()
    ids = {item.idempotency_key: item.id or 0 for item in await outbox_rows(database)}
    async with database.uow() as uow:
        assert await uow.outbox.mark_packed([ids["k4"]], "pack:earlier") == [ids["k4"]]
        marked = await uow.outbox.mark_packed_many(
            [([ids["k1"], ids["k0"]], "pack:a"), ([ids["k2"], ids["k4"]], "pack:b"), ([], "pack:c")]
        )
        assert marked == [sorted([ids["k0"], ids["k1"]]), [ids["k2"]], []]
        # A pack no longer waiting (claimed meanwhile) keeps what it had.
        await uow.outbox.mark_packed([ids["p1"]], "gone")
        lines: Any = {"view": "pack", "items": [{"case_id": 1}]}
        await uow.outbox.repack_many([(ids["p0"], lines, 7), (ids["p1"], lines, 7)])
        await uow.commit()
    rows = {r.idempotency_key: r for r in await outbox_rows(database)}
    assert [rows[f"k{n}"].external_ref for n in range(5)] == [
        "pack:a",
        "pack:a",
        "pack:b",
        None,
        "pack:earlier",
    ]
    assert rows["k3"].status == OutboxStatus.PENDING
    assert {rows[k].status for k in ("k0", "k1", "k2", "k4")} == {OutboxStatus.PACKED}
    assert (rows["p0"].payload, rows["p0"].urgency) == (lines, 7)
    assert (rows["p1"].payload, rows["p1"].urgency) == ({"view": "pack", "items": []}, 0)
