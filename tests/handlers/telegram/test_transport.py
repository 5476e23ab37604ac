"""The Telegram transport end to end: real views, the real renderer and limiter, the real
aiogram Bot, against the Telegram test server (tests/doubles/telegram_server/) over HTTP."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import ForceReply, InlineKeyboardMarkup
from pydantic import ValidationError

from bot.cases import cards
from bot.messages import views
from bot.messages.outbox import (
    Delivery,
    DeliveryResult,
    OutboxItem,
    OutboxOp,
    PermanentFailure,
    RetryLater,
)
from bot.messages.texts import DEFAULT_TEMPLATES_DIR, Texts, texts_for
from bot.model import (
    Action,
    Author,
    AuthorLabel,
    Case,
    CaseState,
    Draft,
    DraftStatus,
    Identity,
    Priority,
)
from bot.settings.connections import TelegramConfig, TelegramLimitsConfig
from bot.staff.directory import Directory
from handlers.telegram.callbacks import CaseAction
from handlers.telegram.keyboards import card_keyboard, draft_keyboard
from handlers.telegram.limits import RateLimiter, TelegramLimits
from handlers.telegram.render import MAX_TEXT, Rendered, TelegramRenderer, visible_length
from handlers.telegram.transport import TelegramTransport
from tests.doubles.support import make_config, make_mention
from tests.doubles.telegram_server.entities import utf16_len
from tests.doubles.telegram_server.flood import Limits
from tests.doubles.telegram_server.html_parser import parse_html
from tests.doubles.telegram_server.server import TelegramServer
from tests.doubles.telegram_server.state import BotInfo, Chat, StoredMessage

TOKEN = "123456:TEST-token"
NOW = datetime(2026, 11, 20, 13, 30, tzinfo=UTC)
TZ = ZoneInfo("Europe/Moscow")
HOSTILE = "<script>alert('x')</script> & </b> <b>&amp; &lt; <a href=\"javascript:x\">"
# The fake-clock server stands still; tests about anything but flood control lift its limits.
RELAXED = Limits(
    per_chat_per_s=1e6,
    per_chat_burst=10**6,
    per_group_per_min=10**6,
    global_per_s=10**6,
    time_scale=10.0,
)
FAST = TelegramLimits(scale=1000.0)  # the limiter hardly waits where limits are not the point
_keys = itertools.count(1)


class FrozenMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class PlainHttpSession(AiohttpSession):
    async def close(self) -> None:
        # aiogram sleeps 250 ms here for TLS shutdown; plain HTTP to localhost has none.
        if self._session is not None and not self._session.closed:
            await self._session.close()


@dataclass
class Rig:
    server: TelegramServer
    info: BotInfo
    bot: Bot
    transport: TelegramTransport
    group: Chat  # a plain supergroup
    forum: Chat  # a forum supergroup with one topic
    topic: int

    async def send(
        self,
        view: views.View,
        op: OutboxOp = OutboxOp.POST,
        chat: Chat | None = None,
        thread: int | None = None,
        target: str | None = None,
        reply_to: str | None = None,
    ) -> DeliveryResult:
        item = OutboxItem(
            transport="telegram",
            chat=str((chat or self.group).id),
            op=op,
            payload=view,
            idempotency_key=f"k{next(_keys)}",
            thread=str(thread) if thread else None,
        )
        return await self.transport.deliver(Delivery(item, target, reply_to))

    def stored(self, result: DeliveryResult, chat: Chat | None = None) -> StoredMessage:
        assert result.external_ref is not None
        return self.server.message((chat or self.group).id, int(result.external_ref))


@asynccontextmanager
async def running(
    limits: Limits = RELAXED,
    limiter: RateLimiter | None = None,
    *,
    monotonic: Callable[[], float] | None = None,
    protect_content: bool = True,
    locale: str = "ru",
) -> AsyncIterator[Rig]:
    server = TelegramServer(limits, monotonic=monotonic or FrozenMonotonic())
    await server.start()
    info = server.add_bot(TOKEN, "otklik_bot")
    group = server.create_chat("supergroup", "ЖКХ", bot_status="administrator")
    forum = server.create_chat("supergroup", "Отделы", is_forum=True, bot_status="administrator")
    topic = server.create_topic(forum.id, "Кейсы")
    bot = Bot(TOKEN, session=PlainHttpSession(api=TelegramAPIServer.from_base(server.api_base)))
    renderer = TelegramRenderer(texts_for(DEFAULT_TEMPLATES_DIR, locale))
    transport = TelegramTransport(
        bot, renderer, limiter or RateLimiter(FAST), protect_content=protect_content
    )
    try:
        yield Rig(server, info, bot, transport, group, forum, topic)
    finally:
        await bot.session.close()
        await server.stop()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with running() as value:
        yield value


@pytest.fixture
def directory(tmp_path: Path, sqlite_url: str) -> Directory:
    return Directory(make_config(tmp_path, sqlite_url), frozenset({"telegram"}))


@pytest.fixture
def texts() -> Texts:
    return texts_for(DEFAULT_TEMPLATES_DIR, "ru")


AUTHOR = Author(
    id=1,
    display_name="Пётр <Сидоров> & сын",
    identities=(Identity("vk", "id42", "Пётр"),),
    labels=frozenset({AuthorLabel.SYSTEMATIC_CRITIC}),
    negative_count=3,
    neutral_count=1,
)
DRAFT = Draft(
    version=2, text="Здравствуйте! <Проверим> & ответим до пятницы.", author="spec", created_at=NOW
)


def make_case(**changes: Any) -> Case:
    base = Case(
        id=42,
        department="housing",
        state=CaseState.NEW,
        priority=Priority.HIGH,
        created_at=NOW,
        source="vk",
        first_touch_due_at=NOW + timedelta(hours=2),
        version=3,
    )
    return replace(base, **changes)


def card(
    directory: Directory, text: str = "Третий день нет отопления", **changes: Any
) -> views.View:
    case = make_case(**changes)
    return cards.card_view(case, make_mention("m1", NOW, text=text), AUTHOR, directory, TZ)


def callback_data(markup: Any) -> list[str]:
    assert isinstance(markup, InlineKeyboardMarkup)
    return [b.callback_data or "" for row in markup.inline_keyboard for b in row]


def stored_callbacks(msg: StoredMessage) -> list[str]:
    rows = (msg.reply_markup or {}).get("inline_keyboard", [])
    return [b["callback_data"] for row in rows for b in row]


# --- every view kind ------------------------------------------------------------------------


async def test_every_view_kind_is_rendered_and_accepted(
    rig: Rig, directory: Directory, texts: Texts
) -> None:
    waiting = make_case(state=CaseState.AWAITING_APPROVAL, assignee="spec", drafts=(DRAFT,))
    decided = replace(DRAFT, status=DraftStatus.APPROVED, reviewer="appr")
    status_context = {
        "generated_at": "20.11 16:30",
        "departments": [
            {"name": "ЖКХ <и> ко", "open": 3, "overdue": 1, "at_risk": 0, "oldest_waiting": "2 ч"}
        ],
    }
    sent = {
        "card": card(
            directory, HOSTILE, state=CaseState.AWAITING_APPROVAL, assignee="spec", drafts=(DRAFT,)
        ),
        "menu": cards.card_view(
            make_case(),
            make_mention("m1", NOW),
            AUTHOR,
            directory,
            TZ,
            menu=Action.CLOSE,
            options=cards.menu_options(Action.CLOSE, make_case(), directory, []),
        ),
        "draft": cards.draft_view(waiting, DRAFT, directory),
        "decided": cards.draft_view(waiting, decided, directory),
        "notice": views.notice_view("ui.moved", case_id=42, department_name="Дороги & <мосты>"),
        "prompt": views.prompt_view("ui.prompt_draft", case_id=42),
        "status": views.page_view("status.html.j2", status_context),
        "help": views.page_view("help.html.j2", {}),
        "public": views.public_reply_view("Спасибо! <b>это не тег</b> & мы уже чиним."),
        "queue": views.queue_view(
            7, [{"case_id": 1, "priority": "critical"}, {"case_id": 2, "priority": "low"}], 5
        ),
    }
    stored = {name: rig.stored(await rig.send(view)) for name, view in sent.items()}
    assert [c for c in rig.server.calls() if not c.ok] == []

    text = {name: msg.text or "" for name, msg in stored.items()}
    assert "Кейс №42" in text["card"] and HOSTILE in text["card"]  # markup shown as text
    assert "Пётр <Сидоров> & сын" in text["card"] and DRAFT.text in text["card"]
    assert {e["type"] for e in stored["card"].entities} >= {"bold", "blockquote", "text_link"}
    assert stored_callbacks(stored["card"]) == callback_data(
        rig.transport.renderer.render(sent["card"]).markup
    )
    assert stored_callbacks(stored["menu"])[-1] == "m:42:3:"  # the way back to the main buttons
    assert (
        stored_callbacks(stored["menu"])[0]
        == CaseAction(case=42, v=3, a="close", x="resolved").pack()
    )
    assert stored_callbacks(stored["draft"]) == [
        "d:42:2:approve",
        "d:42:2:request_changes",
        "d:42:2:reject",
    ]
    assert stored["decided"].reply_markup is None
    assert text["notice"] == texts.t("ui.moved", case_id=42, department_name="Дороги & <мосты>")
    assert text["prompt"] == texts.t("ui.prompt_draft", case_id=42)
    force = stored["prompt"].sent_reply_markup or {}
    assert force["force_reply"] is True and 0 < len(force["input_field_placeholder"]) <= 64
    assert "ЖКХ <и> ко" in text["status"]
    assert text["public"] == "Спасибо! <b>это не тег</b> & мы уже чиним."
    assert "/case 1" in text["queue"] and texts.t("ui.truncated", count=5) in text["queue"]
    # Cards, drafts and notices are protected from forwarding; the public answer is not.
    assert {n for n, m in stored.items() if not m.protect_content} == {"public"}
    assert all((m.link_preview_options or {}).get("is_disabled") for m in stored.values())


async def test_protect_content_off_leaves_cards_forwardable(directory: Directory) -> None:
    async with running(protect_content=False) as rig:
        msg = rig.stored(await rig.send(card(directory)))
    assert msg.protect_content is False


# --- size limits ----------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["ru", "en"])
@pytest.mark.parametrize("unit", [HOSTILE, "😡 жалоба 👎🏻 "], ids=["html", "astral"])
async def test_a_huge_hostile_mention_is_cut_and_the_card_says_case_n(
    directory: Directory, locale: str, unit: str
) -> None:
    mention = (unit * 1000)[:6000]
    long_draft = replace(DRAFT, text="Ответ <b>& " * 500)
    view = card(
        directory,
        mention,
        id=1234567,
        state=CaseState.AWAITING_APPROVAL,
        assignee="spec",
        drafts=(long_draft,),
    )
    async with running(locale=locale) as rig:
        rendered = rig.transport.renderer.render(view)
        assert visible_length(rendered.text) <= MAX_TEXT
        msg = rig.stored(await rig.send(view))
    text = msg.text or ""
    assert 3500 < utf16_len(text) <= MAX_TEXT  # cut, but no more than needed
    assert "/case 1234567" in text
    assert mention[:200] in text and mention not in text
    assert any(e["type"] == "blockquote" for e in msg.entities)


def test_a_long_page_is_cut_between_top_level_lines(directory: Directory, texts: Texts) -> None:
    renderer = TelegramRenderer(texts)
    base = card(directory, "Жалоба <на> всё\n" * 30)  # a quote over many lines
    drafts = [
        {
            "version": 1,
            "status": "approved",
            "author_name": "Анна",
            "text": "Ответ\n" * 5,
            "note": None,
        }
    ]
    events = [
        {"at": f"20.11 {i % 24:02d}:00", "actor": f"Сотрудник <{i}>", "kind": "take"}
        for i in range(400)
    ]
    context = {**base, "drafts": drafts, "events": events}
    page = renderer.render(views.page_view("case_thread.html.j2", context)).text
    plain, _ = parse_html(page, strict=True, users={})  # balanced tags, valid entities
    assert utf16_len(plain) <= MAX_TEXT
    last = page.rsplit("\n", 1)[1]
    dropped = int(re.fullmatch(r"… и ещё (\d+)", last).group(1))  # type: ignore[union-attr]
    assert page.count("<code>") + dropped == 400
    assert "<blockquote>" in page and page.count("<blockquote>") == page.count("</blockquote>")

    # No top-level line fits at all: the page falls back to its plain text, escaped.
    huge = renderer.fit_lines("<b>" + "строка &amp; &lt;x&gt;\n" * 3000 + "</b>")
    plain, _ = parse_html(huge, strict=True, users={})
    assert utf16_len(plain) <= MAX_TEXT and "<b>" not in huge and "строка & <x>" in plain


def test_plain_texts_are_cut_before_escaping(texts: Texts) -> None:
    rendered = TelegramRenderer(texts).render(views.public_reply_view("&<>" * 3000))
    plain, _ = parse_html(rendered.text, strict=True, users={})
    assert utf16_len(plain) <= MAX_TEXT and plain.startswith("&<>&<>")
    assert rendered.public and rendered.markup is None


# --- where messages land --------------------------------------------------------------------


async def test_a_card_posted_into_a_forum_topic_lands_there(rig: Rig, directory: Directory) -> None:
    posted = await rig.send(card(directory), chat=rig.forum, thread=rig.topic)
    msg = rig.stored(posted, rig.forum)
    assert msg.thread_id == rig.topic and msg.is_topic_message
    assert [m.message_id for m in rig.server.messages(rig.forum.id, rig.topic)] == [msg.message_id]

    reply = await rig.send(
        views.notice_view("ui.draft_sent", case_id=42, version=1),
        OutboxOp.REPLY,
        chat=rig.forum,
        thread=rig.topic,
        reply_to=posted.external_ref,
    )
    answer = rig.stored(reply, rig.forum)
    assert answer.thread_id == rig.topic and answer.reply_to_message_id == msg.message_id


async def test_replies_to_a_card(rig: Rig, directory: Directory) -> None:
    posted = await rig.send(card(directory))
    assert posted.external_ref is not None
    card_id = int(posted.external_ref)
    public = views.public_reply_view("Ответ автору")

    direct = rig.stored(await rig.send(public, OutboxOp.REPLY, reply_to=posted.external_ref))
    external = rig.stored(await rig.send(public, OutboxOp.REPLY, reply_to=f"ext:{card_id}"))
    assert direct.reply_to_message_id == external.reply_to_message_id == card_id

    # The card is gone (someone deleted it): the answer still goes out, as a plain message.
    rig.server.delete_message(rig.group.id, card_id)
    orphan = rig.stored(await rig.send(public, OutboxOp.REPLY, reply_to=posted.external_ref))
    assert orphan.reply_to_message_id is None and orphan.text == "Ответ автору"


# --- edits and deletes ----------------------------------------------------------------------


async def test_edits_of_a_card(rig: Rig, directory: Directory) -> None:
    posted = await rig.send(card(directory))
    ref = posted.external_ref
    assert ref is not None

    same = await rig.send(card(directory), OutboxOp.EDIT, target=ref)
    assert same.external_ref == ref  # "message is not modified" is success
    assert rig.server.message(rig.group.id, int(ref)).edit_date is None

    taken = card(directory, state=CaseState.TAKEN, assignee="spec", version=4)
    assert (await rig.send(taken, OutboxOp.EDIT, target=ref)).external_ref == ref
    msg = rig.server.message(rig.group.id, int(ref))
    assert "В работе" in (msg.text or "") and "Анна Иванова" in (msg.text or "")
    assert all(data.split(":")[2] == "4" for data in stored_callbacks(msg))

    moved = cards.card_view(
        make_case(version=5), make_mention("m1", NOW), AUTHOR, directory, TZ, moved_to="transport"
    )
    await rig.send(moved, OutboxOp.EDIT, target=ref)
    msg = rig.server.message(rig.group.id, int(ref))
    assert msg.reply_markup is None and "Транспорт" in (msg.text or "")  # buttons removed

    with pytest.raises(PermanentFailure, match="message to edit not found"):
        await rig.send(card(directory), OutboxOp.EDIT, target="999999")


async def test_deletes(rig: Rig, directory: Directory) -> None:
    posted = await rig.send(views.prompt_view("ui.prompt_reason", case_id=42))
    ref = posted.external_ref
    assert ref is not None
    assert (await rig.send(card(directory), OutboxOp.DELETE, target=ref)).external_ref == ref
    assert rig.server.message(rig.group.id, int(ref)).deleted
    # Deleting again, or a message that never arrived, is done as well.
    assert (await rig.send(card(directory), OutboxOp.DELETE, target=ref)).external_ref == ref
    assert (await rig.send(card(directory), OutboxOp.DELETE)).external_ref is None


# --- errors ---------------------------------------------------------------------------------


async def test_a_429_becomes_retry_later_with_the_servers_retry_after() -> None:
    # Telegram's real limits on a clock that stands still; our limiter lets everything pass.
    async with running(Limits(), RateLimiter(FAST)) as rig:
        notice = views.notice_view("ui.no_rights")
        for _ in range(3):  # the burst a chat allows
            await rig.send(notice)
        with pytest.raises(RetryLater) as caught:
            await rig.send(notice)
        refused = rig.server.calls("sendMessage")[-1]
    assert refused.error_code == 429 and rig.server.stats.count_429 == 1
    assert refused.description is not None
    assert caught.value.after == float(refused.description.rsplit(" ", 1)[1]) == 3.0


async def test_refusals_are_permanent_and_outages_are_retried(directory: Directory) -> None:
    async with running() as rig:
        with pytest.raises(PermanentFailure, match="chat not found"):
            await rig.send(card(directory), chat=Chat(-100999, "supergroup"))
        with pytest.raises(PermanentFailure, match="thread not found"):
            await rig.send(card(directory), chat=rig.forum, thread=rig.topic + 100)
        with pytest.raises(PermanentFailure, match="not a Telegram message id"):
            await rig.send(card(directory), OutboxOp.EDIT, target="card:42")
        with pytest.raises(PermanentFailure, match="cannot render"):
            await rig.send({"view": "card"})
        rig.server.set_bot_status(rig.group.id, rig.info, "kicked")
        with pytest.raises(PermanentFailure, match="kicked"):
            await rig.send(card(directory))
        await rig.server.stop()
        with pytest.raises(RetryLater):
            await rig.send(card(directory), chat=rig.forum)


# --- flood limits ---------------------------------------------------------------------------


async def test_sixty_sends_to_a_group_through_the_limiter_get_no_429_and_keep_order() -> None:
    # Both sides run Telegram's limits ten times faster: 20 per 6 s per group, 3 per 0.3 s.
    limiter = RateLimiter(TelegramLimits(scale=10))
    async with running(Limits(time_scale=10), limiter, monotonic=time.monotonic) as rig:
        for number in range(60):  # one at a time, as the outbox delivers a chat's queue
            await rig.send(views.notice_view("ui.truncated", count=number))
        texts = [m.text for m in rig.server.messages(rig.group.id)]
        assert rig.server.stats.count_429 == 0
    expected = texts_for(DEFAULT_TEMPLATES_DIR, "ru")
    assert texts == [expected.t("ui.truncated", count=n) for n in range(60)]
    assert rig.transport.capacity_per_minute(str(rig.group.id)) <= 20 * 10


async def test_a_message_slow_to_arrive_counts_from_its_answer_and_causes_no_429() -> None:
    # A chat's window, ten times faster: 3 a 0.3 s. The first message takes 0.3 s to reach
    # the server (a loaded event loop, a slow network), so it is counted there about when
    # the next two are; had the fourth gone a window after the first's slot, the server
    # would count four in one window.
    limiter = RateLimiter(TelegramLimits(scale=10))
    async with running(Limits(time_scale=10), limiter, monotonic=time.monotonic) as rig:
        rig.server.slow_next_arrival("sendMessage", 0.3)
        for number in range(6):
            await rig.send(views.notice_view("ui.truncated", count=number))
        arrived = [call.at for call in rig.server.calls("sendMessage")]
        assert rig.server.stats.count_429 == 0
    assert len(arrived) == 6
    assert arrived[3] - arrived[0] >= 0.3  # a whole window between the first and the fourth


class FakeTime:
    """Monotonic time for the limiter that moves only when it sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def most_in_any_window(stamps: list[float], width: float) -> int:
    return max(sum(1 for t in stamps if start <= t < start + width) for start in stamps)


async def test_the_limiter_keeps_strict_windows() -> None:
    fake = FakeTime()
    limiter = RateLimiter(TelegramLimits(), monotonic=fake, sleep=fake.sleep)
    group: list[float] = []
    for _ in range(50):
        await limiter.acquire(-1001)
        group.append(fake.now)
    assert group[:3] == [0.0, 0.0, 0.0]  # a short burst goes at once
    # Of a group's twenty a minute, one is kept for a press while nobody presses there.
    assert most_in_any_window(group, 60.0) == 19
    assert most_in_any_window(group, 3.0) == 3
    assert group[19] >= 60.0

    private: list[float] = []
    for _ in range(30):
        await limiter.acquire(777)
        private.append(fake.now)
    assert most_in_any_window(private, 3.0) == 3
    assert private[-1] - private[0] >= 27  # about one a second, sustained

    assert limiter.capacity_per_minute(-1001) == 16  # conservative: the whole reserve kept
    assert 50 <= limiter.capacity_per_minute(777) < 60
    fast = RateLimiter(TelegramLimits(scale=10))
    assert 150 < fast.capacity_per_minute(-1001) <= 200


async def test_an_answered_message_counts_from_its_answer() -> None:
    fake = FakeTime()
    limiter = RateLimiter(TelegramLimits(), monotonic=fake, sleep=fake.sleep)
    slots = [await limiter.acquire(777) for _ in range(3)]  # the chat's burst, at 0
    fake.now = 0.5
    limiter.answered(777, slots[0])  # the first one's answer took half a second
    for slot in slots[1:]:
        limiter.answered(777, slot)
    await limiter.acquire(777)
    span = TelegramLimits().chat_window()[1]
    assert fake.now == pytest.approx(0.5 + span)  # a window after the answers, not the slots
    limiter.answered(777, -1.0)  # a slot no longer kept changes nothing
    await limiter.acquire(777)
    assert fake.now == pytest.approx(0.5 + span)


async def test_the_limiter_serves_a_chat_first_come_first_served() -> None:
    fake = FakeTime()
    limiter = RateLimiter(TelegramLimits(), monotonic=fake, sleep=fake.sleep)
    order: list[int] = []

    async def send(number: int) -> None:
        await limiter.acquire(-5)
        order.append(number)

    await asyncio.gather(*(send(n) for n in range(12)))
    assert order == list(range(12))


async def test_a_press_overtakes_a_backlogged_group_and_uses_its_reserve() -> None:
    fake = FakeTime()
    limiter = RateLimiter(TelegramLimits(), monotonic=fake, sleep=fake.sleep)
    for _ in range(19):  # new cards fill what a group nobody has pressed in gives them
        await limiter.acquire(-7)
    full = fake.now
    sent: list[tuple[str, float]] = []

    async def card(number: int) -> None:
        await limiter.acquire(-7, urgency=1)
        sent.append((f"card {number}", fake.now))

    async def press() -> None:
        await limiter.acquire(-7, urgency=11, press=True)
        sent.append(("press", fake.now))

    cards = [asyncio.create_task(card(n)) for n in range(3)]
    await asyncio.sleep(0)  # the cards wait for the minute to pass
    await press()
    await asyncio.gather(*cards)
    assert sent[0][0] == "press"
    assert sent[0][1] - full <= 3.5  # the chat's own window, not the group's minute
    assert [name for name, _ in sent[1:]] == ["card 0", "card 1", "card 2"]
    assert sent[1][1] >= 60.0  # cards still wait for the minute: the press took the reserve


@pytest.mark.parametrize("press_every", [20.0, 10.0, 7.5])
def test_a_backlogged_group_paces_its_cards_and_keeps_room_for_presses(
    press_every: float,
) -> None:
    from handlers.telegram.limits import _SlidingWindow

    # A group's minute under a backlog that never ends, and a press every `press_every`
    # seconds, served before any card (as the limiter's queue does).
    window = _SlidingWindow(20, 63.0, reserve=3)
    now, step, next_press = 0.0, 0.05, 5.0
    waiting_since: float | None = None
    waits: list[float] = []
    cards: list[float] = []
    while now < 900:
        if waiting_since is None and now >= next_press:
            waiting_since = now
        if waiting_since is not None and window.wait(now, urgent=True) == 0:
            window.take(now, pressed=True)
            waits.append(now - waiting_since)
            waiting_since, next_press = None, now + press_every
        if waiting_since is None and window.wait(now, urgent=False) == 0:
            window.take(now)
            cards.append(now)
        now += step
    assert most_in_any_window(cards, 63.0) <= 17  # cards alone never take the reserve
    # A press waits about one spacing of the paced backlog at most, never for the minute.
    assert max(waits) <= 1.5 * window.pace(now), max(waits)
    # Cards are not starved: they keep what the presses leave of their share.
    late = [t for t in cards if t >= 300]
    assert len(late) / ((900 - 300) / 60) >= 17 - 60 / press_every - 1


async def test_only_a_backlogged_group_paces_its_cards() -> None:
    async def seventeen(chat: int, limiter: RateLimiter, fake: FakeTime) -> float:
        for _ in range(17):
            await limiter.acquire(chat)
        return fake.now

    quick, paced = FakeTime(), FakeTime()
    keeping_up = RateLimiter(TelegramLimits(), monotonic=quick, sleep=quick.sleep)
    behind = RateLimiter(TelegramLimits(), monotonic=paced, sleep=paced.sleep)
    behind.backlogs({-7: 60})  # the outbox worker: sixty cards wait there
    keeping_up.backlogs({-7: 3})
    burst = await seventeen(-7, keeping_up, quick)
    spaced = await seventeen(-7, behind, paced)
    assert burst < 20  # one a second, as the chat allows
    assert spaced > burst + 15  # half the share in a burst, then one every ~3.3 s


async def test_a_group_nobody_presses_in_lends_its_reserve_to_cards_until_someone_does() -> None:
    fake = FakeTime()
    limiter = RateLimiter(TelegramLimits(), monotonic=fake, sleep=fake.sleep)
    limiter.backlogs({-7: 500})  # a storm's backlog: cards go evenly spaced
    window = 63.1  # the group's minute with its margins

    async def cards_until(end: float) -> list[float]:
        sent: list[float] = []
        while fake.now < end:
            await limiter.acquire(-7, urgency=1)
            sent.append(fake.now)
        return sent

    idle = await cards_until(300.0)
    assert most_in_any_window(idle, window) == 19  # all of the reserve but one slot
    before = fake.now
    await limiter.acquire(-7, urgency=11, press=True)
    assert fake.now - before <= 1.0  # the slot kept: the first press goes at once
    pressed_at = fake.now
    pressing = await cards_until(pressed_at + 3 * window)
    # While people press there, cards keep to 17 and the next press waits one spacing.
    assert most_in_any_window([t for t in pressing if t > pressed_at], window) <= 17
    before = fake.now
    await limiter.acquire(-7, urgency=11, press=True)
    assert fake.now - before <= window / 17 + 0.1
    quiet = await cards_until(fake.now + 4 * window)
    assert len([t for t in quiet if t > quiet[-1] - window]) == 19  # lent again
    # A crisis card's refresh may use the reserve, but nobody pressed: it stays lent.
    await limiter.acquire(-7, urgency=20, press=True, person=False)
    routine = await cards_until(fake.now + window)
    assert len([t for t in routine if t > routine[-1] - window]) >= 18


def test_the_press_reserve_is_validated() -> None:
    with pytest.raises(ValueError, match="press_reserve"):
        TelegramLimits(press_reserve=20)


async def test_the_global_limit_spans_chats() -> None:
    fake = FakeTime()
    limiter = RateLimiter(TelegramLimits(), monotonic=fake, sleep=fake.sleep)
    stamps: list[float] = []
    for chat in range(1, 41):  # 40 private chats, one message each
        await limiter.acquire(chat)
        stamps.append(fake.now)
    assert most_in_any_window(stamps, 1.0) == 30


def test_limits_config_is_validated_and_maps_to_the_limiter() -> None:
    config = TelegramConfig()
    assert TelegramLimits.from_config(config.limits) == TelegramLimits()
    custom = TelegramConfig.model_validate({"limits": {"per_group_per_min": 10, "scale": 10}})
    assert TelegramLimits.from_config(custom.limits).per_group_per_min == 10
    for bad in ({"scale": 0}, {"per_chat_burst": -1}, {"global_per_s": 0}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            TelegramLimitsConfig.model_validate(bad)
    with pytest.raises(ValueError, match="scale"):
        TelegramLimits(scale=0)


# --- callback data --------------------------------------------------------------------------


async def test_keyboards_with_the_longest_ids_stay_within_64_bytes(
    rig: Rig, directory: Directory, texts: Texts
) -> None:
    case = make_case(id=9_999_999_999, version=9999, state=CaseState.TAKEN, assignee="spec")
    mention = make_mention("m1", NOW)
    long_id = "t" * 32
    menus = {
        Action.USE_TEMPLATE: [{"arg": long_id, "label": "Первый ответ: извинение"}],
        Action.REROUTE: [{"arg": "d" * 32, "label": "Департамент дорожного хозяйства"}],
        Action.CLOSE: cards.menu_options(Action.CLOSE, case, directory, []),
        Action.IGNORE: cards.menu_options(Action.IGNORE, case, directory, []),
    }
    card_views = [cards.card_view(case, mention, AUTHOR, directory, TZ)] + [
        cards.card_view(case, mention, AUTHOR, directory, TZ, menu=menu, options=options)
        for menu, options in menus.items()
    ]
    draft = replace(DRAFT, version=9999)
    review = cards.draft_view(replace(case, drafts=(draft,)), draft, directory)
    markups = [card_keyboard(view, texts) for view in card_views] + [draft_keyboard(review, texts)]
    data = [d for markup in markups for d in callback_data(markup)]
    assert max(len(d.encode()) for d in data) <= 64
    assert f"c:9999999999:9999:use_template:{long_id}" in data  # 63 bytes, the longest
    for view in [*card_views, review]:  # and Telegram takes every one of them
        await rig.send(view)
    assert [c for c in rig.server.calls() if not c.ok] == []

    # One byte more is a bug in the ids, and it shows at once instead of on a press.
    too_long = [{"arg": "t" * 40, "label": "x"}]
    with pytest.raises(ValueError):
        card_keyboard(
            cards.card_view(
                case, mention, AUTHOR, directory, TZ, menu=Action.USE_TEMPLATE, options=too_long
            ),
            texts,
        )


def test_keyboard_rows_suit_a_phone(directory: Directory, texts: Texts) -> None:
    rendered: Rendered = TelegramRenderer(texts).render(card(directory))
    markup = rendered.markup
    assert isinstance(markup, InlineKeyboardMarkup)
    for row in markup.inline_keyboard:
        assert 1 <= len(row) <= 3
        if len(row) == 3:
            assert all(len(b.text) <= 10 for b in row)
    moved = cards.card_view(
        make_case(), make_mention("m1", NOW), AUTHOR, directory, TZ, moved_to="transport"
    )
    assert moved["actions"] == [] and card_keyboard(moved, texts) is None
    prompt = TelegramRenderer(texts).render(
        views.prompt_view("ui.prompt_note", case_id=1, version=2)
    )
    assert isinstance(prompt.markup, ForceReply)
