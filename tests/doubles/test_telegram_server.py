"""The Telegram test server, driven by the real aiogram Bot and Dispatcher over HTTP."""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    CallbackQuery,
    ChatMemberAdministrator,
    ChatMemberMember,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
)

from tests.doubles.telegram_server.entities import check_link, utf16_len
from tests.doubles.telegram_server.flood import Limits
from tests.doubles.telegram_server.html_parser import parse_html
from tests.doubles.telegram_server.protocol import NOT_MODIFIED, QUERY_INVALID
from tests.doubles.telegram_server.server import TelegramServer
from tests.doubles.telegram_server.state import BotInfo

TOKEN = "123456:TEST-token"
OTHER_TOKEN = "654321:OTHER-token"


class FakeClock:
    """Monotonic time that only moves when a test says so: flood control is deterministic."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class PlainHttpSession(AiohttpSession):
    async def close(self) -> None:
        # aiogram sleeps 250 ms here so TLS connections can wind down; plain HTTP has none
        if self._session is not None and not self._session.closed:
            await self._session.close()


def make_bot(server: TelegramServer, token: str = TOKEN) -> Bot:
    api = TelegramAPIServer.from_base(server.api_base)
    return Bot(token, session=PlainHttpSession(api=api))


def keyboard(*buttons: InlineKeyboardButton) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[list(buttons)])


def png(width: int, height: int) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def clock() -> FakeClock:  # overrides the project's datetime clock for this module
    return FakeClock()


# The fake clock stands still, so tests about anything but flood control lift the limits.
RELAXED = Limits(
    per_chat_per_s=1e6,
    per_chat_burst=10**6,
    per_group_per_min=10**6,
    global_per_s=10**6,
    time_scale=10.0,
)


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[TelegramServer]:
    srv = TelegramServer(RELAXED, monotonic=clock)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def flood_server(clock: FakeClock) -> AsyncIterator[TelegramServer]:
    """Telegram's own limits, ten times faster."""
    srv = TelegramServer(Limits(time_scale=10.0), monotonic=clock)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
def info(server: TelegramServer) -> BotInfo:
    return server.add_bot(TOKEN, "otklik_bot")


@pytest.fixture
async def bot(server: TelegramServer, info: BotInfo) -> AsyncIterator[Bot]:
    client = make_bot(server)
    yield client
    await client.session.close()


@asynccontextmanager
async def polling(
    server: TelegramServer, dp: Dispatcher, bot: Bot, info: BotInfo
) -> AsyncIterator[None]:
    """Run a real Dispatcher against the server for the body of the block."""
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False))
    await server.wait_for(lambda: server.is_polling(info))
    try:
        yield
    finally:
        await dp.stop_polling()
        await task


# --- protocol ---------------------------------------------------------------------------


async def test_get_me_and_the_error_envelope(server: TelegramServer, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "otklik_bot", True)
    assert me.can_read_all_group_messages is True
    assert me.supports_inline_queries is False
    assert me.can_join_groups is True

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.api_base}/bot{TOKEN}/noSuchMethod") as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        async with http.get(f"{server.api_base}/bot{TOKEN}/GETME") as resp:  # case-insensitive
            assert (await resp.json())["result"]["id"] == 123456
        async with http.post(f"{server.api_base}/bot1:wrong/getMe") as resp:
            assert resp.status == 401
            assert await resp.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
    stranger = make_bot(server, "999:unknown")
    with pytest.raises(TelegramUnauthorizedError):
        await stranger.get_me()
    await stranger.session.close()


# --- messages in a forum topic ----------------------------------------------------------


async def test_send_edit_delete_and_reply_in_a_forum_topic(
    server: TelegramServer, bot: Bot
) -> None:
    forum = server.create_chat("supergroup", "Departments", is_forum=True)
    topic = server.create_topic(forum.id, "Roads")
    ann = server.create_user("Ann", "ann")

    card = await bot.send_message(
        forum.id,
        "<b>Case #7</b>: pothole",
        parse_mode="HTML",
        message_thread_id=topic,
        reply_markup=keyboard(InlineKeyboardButton(text="Take", callback_data="take:7")),
        protect_content=True,
    )
    assert card.message_thread_id == topic and card.is_topic_message
    assert card.text == "Case #7: pothole"
    assert card.has_protected_content
    # Telegram makes every topic message a reply to the topic's first (service) message
    assert card.reply_to_message is not None
    assert card.reply_to_message.forum_topic_created is not None
    assert card.reply_to_message.message_id == topic

    question = server.send_user_message(forum.id, ann, "When will it be fixed?", thread_id=topic)
    answer = await bot.send_message(
        forum.id, "Tomorrow", reply_parameters=ReplyParameters(message_id=question.message_id)
    )
    assert answer.message_thread_id == topic  # a reply lands in the replied message's topic
    assert answer.reply_to_message is not None
    assert answer.reply_to_message.message_id == question.message_id

    edited = await bot.edit_message_text(
        "<b>Case #7</b>: pothole, taken",
        chat_id=forum.id,
        message_id=card.message_id,
        parse_mode="HTML",
    )
    assert isinstance(edited, Message) and edited.edit_date is not None
    assert edited.reply_markup is None  # an edit without reply_markup drops the keyboard

    assert [m.text for m in server.messages(forum.id, topic)] == [
        "Case #7: pothole, taken",
        "When will it be fixed?",
        "Tomorrow",
    ]
    assert await bot.delete_message(forum.id, answer.message_id) is True
    assert [m.message_id for m in server.messages(forum.id, topic)] == [
        card.message_id,
        question.message_id,
    ]

    cases = [
        (bot.delete_message(forum.id, answer.message_id), "message to delete not found"),
        (
            bot.edit_message_text("x", chat_id=forum.id, message_id=answer.message_id),
            "message to edit not found",
        ),
        (
            bot.send_message(forum.id, "x", reply_parameters=ReplyParameters(message_id=999)),
            "message to be replied not found",
        ),
        (bot.send_message(forum.id, "x", message_thread_id=999), "message thread not found"),
        (
            bot.edit_message_text("x", chat_id=forum.id, message_id=question.message_id),
            "message can't be edited",
        ),
    ]
    for call, description in cases:
        with pytest.raises(TelegramBadRequest) as err:
            await call
        assert err.value.message == f"Bad Request: {description}"

    lenient = await bot.send_message(
        forum.id,
        "still sent",
        message_thread_id=topic,
        reply_parameters=ReplyParameters(message_id=999, allow_sending_without_reply=True),
    )
    assert lenient.message_thread_id == topic
    assert lenient.reply_to_message is not None  # only the implicit topic reply
    assert lenient.reply_to_message.message_id == topic


async def test_force_reply_is_accepted_but_not_echoed(server: TelegramServer, bot: Bot) -> None:
    group = server.create_chat("supergroup", "Ops")
    sent = await bot.send_message(group.id, "Why?", reply_markup=ForceReply(selective=True))
    assert sent.reply_markup is None  # Message.reply_markup only ever carries inline keyboards
    assert server.message(group.id, sent.message_id).sent_reply_markup == {"force_reply": True}


# --- HTML -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "detail"),
    [
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("Tom & Jerry", 'Character "&" at byte offset 4 starts no HTML entity'),
        ("<script>alert(1)</script>", 'Unsupported start tag "script" at byte offset 0'),
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("</b>", "Unexpected end tag at byte offset 0"),
        (
            "<b><i>test</b></i>",
            'Unmatched end tag at byte offset 10, expected "</i>", found "</b>"',
        ),
        ("тест <br>", 'Unsupported start tag "br" at byte offset 9'),
        ('<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<b", "Unclosed start tag at byte offset 0"),
        ("&nbsp;", 'Character "&" at byte offset 0 starts no HTML entity'),
    ],
)
async def test_html_that_telegram_rejects(
    server: TelegramServer, bot: Bot, html: str, detail: str
) -> None:
    group = server.create_chat("supergroup", "Ops")
    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_message(group.id, html, parse_mode="HTML")
    assert err.value.message.startswith(f"Bad Request: can't parse entities: {detail}")
    assert server.messages(group.id) == []


async def test_valid_html_becomes_plain_text_with_utf16_entities(
    server: TelegramServer, bot: Bot
) -> None:
    group = server.create_chat("supergroup", "Ops")
    html = (
        "  😀 <b>bold <i>both</i></b> &lt;tag&gt; &amp; &quot;q&quot; &#128512;&#x41; "
        '<a href="https://Example.com">link</a> <code>c</code> '
        '<pre><code class="language-python">x = 1</code></pre> '
        "<tg-spoiler>s</tg-spoiler> <blockquote expandable>q</blockquote> a > b\n"
    )
    sent = await bot.send_message(group.id, html, parse_mode="HTML")
    text = '😀 bold both <tag> & "q" 😀A link c x = 1 s q a > b'
    assert sent.text == text  # tags gone, entities decoded, leading/trailing blanks trimmed

    def at(inner: str, around: str | None = None) -> tuple[int, int]:
        """UTF-16 (offset, length) of `inner`, found inside the first `around`."""
        start = text.index(around or inner) + (around or inner).index(inner)
        return utf16_len(text[:start]), utf16_len(inner)

    got = {(e.type, e.offset, e.length, e.url, e.language) for e in sent.entities or []}
    assert got == {
        ("bold", *at("bold both"), None, None),
        ("italic", *at("both"), None, None),
        ("text_link", *at("link"), "https://example.com/", None),
        ("code", *at("c", " c "), None, None),
        ("pre", *at("x = 1"), None, "python"),
        ("spoiler", *at("s", " s q"), None, None),
        ("expandable_blockquote", *at("q", " q a"), None, None),
    }
    assert at("bold") == (3, 4)  # the emoji before it is two UTF-16 code units


async def test_bare_ampersand_is_literal_when_not_strict() -> None:
    text, entities = parse_html("Tom & Jerry <b>x</b>", strict=False, users={})
    assert text == "Tom & Jerry x"
    assert entities == [{"type": "bold", "offset": 12, "length": 1}]


# --- limits -----------------------------------------------------------------------------


async def test_length_limits_count_utf16_after_parsing(server: TelegramServer, bot: Bot) -> None:
    group = server.create_chat("supergroup", "Ops")
    ok = [
        "x" * 4096,
        "😀" * 2048,  # 4096 UTF-16 code units
        "<b>" + "x" * 4096 + "</b>",  # tags do not count
        "&lt;" * 4096,
        " " * 10 + "x" * 4096 + "\n" * 10,  # trimmed first
    ]
    for text in ok:
        sent = await bot.send_message(group.id, text, parse_mode="HTML")
        assert utf16_len(sent.text or "") == 4096
    for text in ("x" * 4097, "😀" * 2048 + "x", "😀" * 2049):
        with pytest.raises(TelegramBadRequest) as err:
            await bot.send_message(group.id, text)
        assert err.value.message == "Bad Request: message is too long"

    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_message(group.id, "")  # aiogram leaves the empty field out
    assert err.value.message == "Bad Request: message text is empty"
    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_message(group.id, " \n ")
    assert err.value.message == "Bad Request: text must be non-empty"
    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_message(group.id, "<b> </b>", parse_mode="HTML")
    assert err.value.message == "Bad Request: text must be non-empty"


async def test_not_modified(server: TelegramServer, bot: Bot) -> None:
    group = server.create_chat("supergroup", "Ops")
    markup = keyboard(InlineKeyboardButton(text="Take", callback_data="take"))
    sent = await bot.send_message(group.id, "<b>Case</b>", parse_mode="HTML", reply_markup=markup)

    same = [
        bot.edit_message_text(
            "<b>Case</b>",
            chat_id=group.id,
            message_id=sent.message_id,
            parse_mode="HTML",
            reply_markup=markup,
        ),
        bot.edit_message_text(  # the same result from other markup is still "the same"
            "<strong>Case</strong> ",
            chat_id=group.id,
            message_id=sent.message_id,
            parse_mode="HTML",
            reply_markup=markup,
        ),
        bot.edit_message_reply_markup(
            chat_id=group.id, message_id=sent.message_id, reply_markup=markup
        ),
    ]
    for call in same:
        with pytest.raises(TelegramBadRequest) as err:
            await call
        assert err.value.message == f"Bad Request: {NOT_MODIFIED}"

    plain = await bot.edit_message_text(  # same letters without bold: modified
        "Case", chat_id=group.id, message_id=sent.message_id, reply_markup=markup
    )
    assert isinstance(plain, Message) and not plain.entities
    bare = await bot.edit_message_reply_markup(chat_id=group.id, message_id=sent.message_id)
    assert isinstance(bare, Message) and bare.reply_markup is None
    with pytest.raises(TelegramBadRequest) as err:
        await bot.edit_message_reply_markup(chat_id=group.id, message_id=sent.message_id)
    assert err.value.message == f"Bad Request: {NOT_MODIFIED}"


@pytest.mark.parametrize(
    ("button", "description"),
    [
        (InlineKeyboardButton(text="b", callback_data="x" * 65), "BUTTON_DATA_INVALID"),
        (InlineKeyboardButton(text="b", callback_data="я" * 33), "BUTTON_DATA_INVALID"),
        (
            InlineKeyboardButton(text="b", callback_data=""),
            "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (
            InlineKeyboardButton(text="b", url="ftp://example.com"),
            "inline keyboard button URL 'ftp://example.com' is invalid: Unsupported URL protocol",
        ),
        (
            InlineKeyboardButton(text="b", url="http://localhost:8080/case/1"),
            "inline keyboard button URL 'http://localhost:8080/case/1' is invalid: Wrong HTTP URL",
        ),
        (
            InlineKeyboardButton(text="b", url="/admin"),
            "inline keyboard button URL '/admin' is invalid: URL host is empty",
        ),
    ],
)
async def test_inline_keyboard_validation(
    server: TelegramServer, bot: Bot, button: InlineKeyboardButton, description: str
) -> None:
    group = server.create_chat("supergroup", "Ops")
    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_message(group.id, "text", reply_markup=keyboard(button))
    assert err.value.message == f"Bad Request: {description}"


async def test_inline_keyboard_limits_and_normalisation(server: TelegramServer, bot: Bot) -> None:
    group = server.create_chat("supergroup", "Ops")
    fine = keyboard(
        InlineKeyboardButton(text="64 bytes", callback_data="я" * 32),
        InlineKeyboardButton(text="site", url="HTTPS://Example.COM"),
        InlineKeyboardButton(text="user", url="tg://user?id=42"),
    )
    sent = await bot.send_message(group.id, "ok", reply_markup=fine)
    assert sent.reply_markup is not None
    assert [b.url for b in sent.reply_markup.inline_keyboard[0][1:]] == [
        "https://example.com/",
        "tg://user?id=42",
    ]
    too_many = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=str(i), callback_data=str(i)) for i in range(r, r + 8)]
            for r in range(0, 101, 8)
        ]
    )
    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_message(group.id, "many", reply_markup=too_many)
    assert err.value.message == "Bad Request: reply markup is too long"


def test_check_link_matches_tdlib() -> None:
    assert check_link("example.com") == "http://example.com/"
    assert check_link("https://example.com/a b") == "https://example.com/a%20b"
    assert check_link("tg://resolve?domain=otklik_bot") == "tg://resolve?domain=otklik_bot"
    for url, message in [
        ("not-a-url", "Wrong HTTP URL"),
        ("https://ex ample.com", "Disallowed character in URL host"),
        ("http://example.com:0", "Wrong port number specified in the URL"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_link(url)


# --- flood control ----------------------------------------------------------------------


async def test_flood_control_answers_429_with_retry_after(
    flood_server: TelegramServer, clock: FakeClock
) -> None:
    server = flood_server
    server.add_bot(TOKEN, "otklik_bot")
    bot = make_bot(server)
    alice = server.create_user("Alice")
    server.send_user_message(alice.id, alice, "/start")
    first = await bot.send_message(alice.id, "one")
    await bot.send_message(alice.id, "two")
    await bot.edit_message_text("one!", chat_id=alice.id, message_id=first.message_id)
    with pytest.raises(TelegramRetryAfter) as err:  # edits count: 3 in a 3-second window
        await bot.send_message(alice.id, "three")
    assert err.value.retry_after == 3  # scaled seconds; 0.3 real ones at time_scale=10
    assert server.history[-1].description == "Too Many Requests: retry after 3"
    assert server.stats.count_429 == 1

    # deleting and answering are not rate limited
    assert await bot.delete_message(alice.id, first.message_id)

    clock.now += 0.29
    with pytest.raises(TelegramRetryAfter) as err:
        await bot.send_message(alice.id, "three")
    assert err.value.retry_after == 1
    clock.now += 0.01
    await bot.send_message(alice.id, "three")
    assert server.stats.count_429 == 2
    assert [c.method for c in server.stats.calls if c.chat_id == alice.id] == [
        "sendMessage",
        "sendMessage",
        "editMessageText",
        "deleteMessage",
        "sendMessage",
    ]
    await bot.session.close()


async def test_group_and_global_flood_windows(clock: FakeClock) -> None:
    limits = Limits(per_chat_burst=1000, per_chat_per_s=1000.0, global_per_s=30)
    async with TelegramServer(limits, monotonic=clock) as server:
        server.add_bot(TOKEN, "otklik_bot")
        bot = make_bot(server)
        group = server.create_chat("group", "Small group")
        for i in range(20):
            await bot.send_message(group.id, f"m{i}")
        with pytest.raises(TelegramRetryAfter) as err:
            await bot.send_message(group.id, "m20")
        assert err.value.retry_after == 60  # 20 messages a minute per group

        clock.now += 60
        people = [server.create_user(f"P{i}") for i in range(31)]
        for person in people:
            server.send_user_message(person.id, person, "/start")
        for person in people[:30]:
            await bot.send_message(person.id, "hello")
        with pytest.raises(TelegramRetryAfter) as err:
            await bot.send_message(people[30].id, "hello")
        assert err.value.retry_after == 1  # 30 messages a second overall
        assert server.stats.count_429 == 2
        await bot.session.close()


async def test_raw_429_envelope(flood_server: TelegramServer) -> None:
    server = flood_server
    server.add_bot(TOKEN, "otklik_bot")
    alice = server.create_user("Alice")
    server.send_user_message(alice.id, alice, "/start")
    url = f"{server.api_base}/bot{TOKEN}/sendMessage"
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.post(url, json={"chat_id": alice.id, "text": "hi"}) as resp:
                assert resp.status == 200
        async with http.post(url, json={"chat_id": alice.id, "text": "hi"}) as resp:
            assert resp.status == 429
            assert await resp.json() == {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 3",
                "parameters": {"retry_after": 3},
            }


# --- access -----------------------------------------------------------------------------


async def test_chat_access_errors(server: TelegramServer, bot: Bot, info: BotInfo) -> None:
    left = server.create_chat("supergroup", "Left")
    server.set_bot_status(left.id, info, "left")
    kicked = server.create_chat("group", "Kicked", bot_status="kicked")
    never = server.create_chat("supergroup", "Never", bot_status=None)
    stranger = server.create_user("Stranger")
    server.add_member(left.id, stranger, announce=False)  # the bot knows them from a group
    blocker = server.create_user("Blocker")
    server.send_user_message(blocker.id, blocker, "/start")
    server.block_bot(blocker, info)

    cases: list[tuple[int | str, type[Exception], str]] = [
        (left.id, TelegramForbiddenError, "Forbidden: bot is not a member of the supergroup chat"),
        (kicked.id, TelegramForbiddenError, "Forbidden: bot was kicked from the group chat"),
        (never.id, TelegramBadRequest, "Bad Request: chat not found"),
        (-100123, TelegramBadRequest, "Bad Request: chat not found"),
        ("@nobody_here", TelegramBadRequest, "Bad Request: chat not found"),
        (
            stranger.id,
            TelegramForbiddenError,
            "Forbidden: bot can't initiate conversation with a user",
        ),
        (blocker.id, TelegramForbiddenError, "Forbidden: bot was blocked by the user"),
        (987654321, TelegramBadRequest, "Bad Request: chat not found"),
    ]
    for chat_id, kind, description in cases:
        with pytest.raises(kind) as err:
            await bot.send_message(chat_id, "hello")
        assert err.value.message == description  # type: ignore[attr-defined]

    channel = server.create_channel("News", bot_status="member")
    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_message(channel.id, "hello")
    assert err.value.message == "Bad Request: need administrator rights in the channel chat"


async def test_get_chat_and_members(server: TelegramServer, bot: Bot, info: BotInfo) -> None:
    forum = server.create_chat("supergroup", "Forum", is_forum=True, username="city_forum")
    admin_chat = server.create_chat("supergroup", "Admins", bot_status="administrator")

    full = await bot.get_chat("@city_forum")
    assert (full.id, full.type, full.is_forum, full.title) == (
        forum.id,
        "supergroup",
        True,
        "Forum",
    )
    me = await bot.get_chat_member(forum.id, info.id)
    assert isinstance(me, ChatMemberMember)
    promoted = await bot.get_chat_member(admin_chat.id, info.id)
    assert isinstance(promoted, ChatMemberAdministrator) and promoted.can_delete_messages
    admins = await bot.get_chat_administrators(admin_chat.id)
    assert {a.status for a in admins} == {"creator", "administrator"}


async def test_a_group_upgraded_to_a_supergroup_answers_with_its_new_id(
    server: TelegramServer, bot: Bot, info: BotInfo
) -> None:
    group = server.create_chat("group", "Old")
    new = server.migrate_to_supergroup(group.id, is_forum=True)
    assert new.id < -1_000_000_000_000 and new.is_forum
    url = f"{server.api_base}/bot{TOKEN}/getChat"
    async with aiohttp.ClientSession() as http, http.post(url, json={"chat_id": group.id}) as resp:
        # As Telegram answers it: 400, and the new id in ResponseParameters.
        assert resp.status == 400
        assert await resp.json() == {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
            "parameters": {"migrate_to_chat_id": new.id},
        }
    with pytest.raises(TelegramMigrateToChat) as err:
        await bot.send_message(group.id, "hello")
    assert err.value.migrate_to_chat_id == new.id
    assert (await bot.get_chat(new.id)).type == "supergroup"
    updates = await bot.get_updates()
    service = [u.message for u in updates if u.message is not None]
    assert [(m.chat.id, m.migrate_to_chat_id, m.migrate_from_chat_id) for m in service] == [
        (group.id, new.id, None),
        (new.id, None, group.id),
    ]


# --- people and updates -----------------------------------------------------------------


async def test_privacy_mode_filters_group_messages(server: TelegramServer) -> None:
    quiet = server.add_bot(TOKEN, "otklik_bot", can_read_all_group_messages=False)
    group = server.create_chat("supergroup", "Citizens")
    ann = server.create_user("Ann", "ann")
    bot = make_bot(server)
    own = await bot.send_message(group.id, "Describe the problem")
    seen: list[str] = []
    router = Router()

    @router.message()
    async def collect(message: Message) -> None:
        seen.append(message.text or "")

    dp = Dispatcher()
    dp.include_router(router)
    async with polling(server, dp, bot, quiet):
        hidden = ["just chatting", "/status@other_bot", "hi @other_bot"]
        shown = [
            "/status",
            "/status@otklik_bot now",
            "hey @otklik_bot",
            "a reply to the bot",
        ]
        for text in hidden:
            server.send_user_message(group.id, ann, text)
        for text in shown[:-1]:
            server.send_user_message(group.id, ann, text)
        server.send_user_message(group.id, ann, shown[-1], reply_to=own.message_id)
        await server.wait_for(lambda: len(seen) >= len(shown))
    assert seen == shown  # updates arrive in order, so nothing hidden slipped in before

    server.set_bot_status(group.id, quiet, "administrator")  # admins see everything
    server.send_user_message(group.id, ann, "just chatting again")
    assert server.pending_updates(quiet)[-1]["message"]["text"] == "just chatting again"


async def test_callback_press_and_answer(server: TelegramServer, bot: Bot, info: BotInfo) -> None:
    group = server.create_chat("supergroup", "Ops")
    ann = server.create_user("Ann", "ann")
    card = await bot.send_message(
        group.id,
        "Case #7",
        reply_markup=keyboard(
            InlineKeyboardButton(text="Take", callback_data="take:7"),
            InlineKeyboardButton(text="Close", callback_data="close:7"),
        ),
    )
    got: list[tuple[str | None, int, int | None]] = []
    router = Router()

    @router.callback_query(F.data.startswith("take:"))
    async def take(query: CallbackQuery) -> None:
        assert query.message is not None
        got.append((query.data, query.from_user.id, query.message.message_id))
        await query.answer("Taken", show_alert=True)

    @router.callback_query()
    async def other(query: CallbackQuery) -> None:
        got.append((query.data, query.from_user.id, None))
        await query.answer()

    dp = Dispatcher()
    dp.include_router(router)
    async with polling(server, dp, bot, info):
        with pytest.raises(ValueError, match="exactly one"):
            server.press_button(group.id, card.message_id, ann)  # two buttons: say which
        pressed = server.press_button(group.id, card.message_id, ann, button_text="Take")
        answer = await server.wait_answer(pressed)
        forged = server.press_button(group.id, card.message_id, ann, data="delete:everything")
        await server.wait_answer(forged)

    assert answer == {
        "callback_query_id": pressed,
        "text": "Taken",
        "show_alert": True,
        "url": None,
        "cache_time": 0,
    }
    assert got == [("take:7", ann.id, card.message_id), ("delete:everything", ann.id, None)]
    with pytest.raises(TelegramBadRequest) as err:
        await bot.answer_callback_query(pressed, text="again")
    assert err.value.message == f"Bad Request: {QUERY_INVALID}"


async def test_callback_answer_errors(server: TelegramServer, bot: Bot, clock: FakeClock) -> None:
    group = server.create_chat("supergroup", "Ops")
    ann = server.create_user("Ann")
    card = await bot.send_message(
        group.id, "Case", reply_markup=keyboard(InlineKeyboardButton(text="Go", callback_data="go"))
    )
    first = server.press_button(group.id, card.message_id, ann)
    with pytest.raises(TelegramBadRequest) as err:
        await bot.answer_callback_query(first, text="x" * 201)
    assert err.value.message == "Bad Request: MESSAGE_TOO_LONG"
    await bot.answer_callback_query(first, text="x" * 200)

    late = server.press_button(group.id, card.message_id, ann)
    clock.now += 16  # the client stopped waiting (15 s, unscaled: no rate)
    for query_id in (late, "12345"):
        with pytest.raises(TelegramBadRequest) as err:
            await bot.answer_callback_query(query_id)
        assert err.value.message == f"Bad Request: {QUERY_INVALID}"


async def test_long_polling(server: TelegramServer, bot: Bot, info: BotInfo) -> None:
    ann = server.create_user("Ann")
    assert await bot.get_updates(timeout=0) == []

    loop = asyncio.get_running_loop()
    started = loop.time()
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await server.wait_for(lambda: server.is_polling(info))
    server.send_user_message(ann.id, ann, "/start")
    updates = await asyncio.wait_for(poll, 2)
    assert loop.time() - started < 2  # returned on arrival, not after 30 s
    assert [u.message.text for u in updates if u.message] == ["/start"]
    first_id = updates[0].update_id

    server.send_user_message(ann.id, ann, "second")
    again = await bot.get_updates(timeout=0)  # not confirmed yet: both come back
    assert [u.update_id for u in again] == [first_id, first_id + 1]
    confirmed = await bot.get_updates(offset=first_id + 1, timeout=0)
    assert [u.update_id for u in confirmed] == [first_id + 1]
    assert await bot.get_updates(offset=first_id + 2, timeout=0) == []

    # a second poller takes over; the first one is told so
    older = asyncio.create_task(bot.get_updates(timeout=30))
    await server.wait_for(lambda: server.is_polling(info))
    rival = make_bot(server)
    newer = asyncio.create_task(rival.get_updates(timeout=30))
    with pytest.raises(TelegramConflictError) as err:
        await asyncio.wait_for(older, 2)
    assert "terminated by other getUpdates request" in err.value.message
    server.send_user_message(ann.id, ann, "third")
    assert [u.message.text for u in await asyncio.wait_for(newer, 2) if u.message] == ["third"]
    await rival.session.close()

    # allowed_updates filters what is queued from then on
    await bot.get_updates(offset=-1, timeout=0, allowed_updates=["callback_query"])
    server.send_user_message(ann.id, ann, "filtered out")
    assert server.pending_updates(info)[-1]["message"]["text"] == "third"
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert server.pending_updates(info) == []


async def test_discussion_group_auto_forward_and_comments(
    server: TelegramServer, bot: Bot, info: BotInfo
) -> None:
    channel = server.create_channel("City news", username="city_news")
    group = server.create_chat("supergroup", "City news chat")
    server.link_discussion(channel.id, group.id)
    ann = server.create_user("Ann", "ann")
    posts: list[Message] = []
    comments: list[Message] = []
    router = Router()

    @router.channel_post()
    async def on_post(message: Message) -> None:
        posts.append(message)

    @router.message()
    async def on_comment(message: Message) -> None:
        comments.append(message)

    dp = Dispatcher()
    dp.include_router(router)
    async with polling(server, dp, bot, info):
        post = server.post_to_channel(channel.id, "Road works on Main street")
        forward_id = post.discussion_message_id
        assert forward_id is not None
        server.send_user_message(group.id, ann, "Again?!", reply_to=forward_id)
        await server.wait_for(lambda: len(posts) == 1 and len(comments) == 2)

    assert posts[0].sender_chat is not None and posts[0].sender_chat.id == channel.id
    forward, comment = comments
    assert forward.is_automatic_forward
    assert forward.from_user is not None and forward.from_user.id == 777000
    assert forward.sender_chat is not None and forward.sender_chat.id == channel.id
    assert forward.forward_origin is not None
    assert forward.forward_origin.type == "channel"
    assert comment.message_thread_id == forward_id  # comments form the post's thread
    assert comment.reply_to_message is not None
    assert comment.reply_to_message.is_automatic_forward

    reply = await bot.send_message(
        group.id, "Until Friday", reply_parameters=ReplyParameters(message_id=comment.message_id)
    )
    assert reply.message_thread_id == forward_id
    with pytest.raises(TelegramBadRequest) as err:  # comment threads are no forum topics
        await bot.send_message(group.id, "x", message_thread_id=forward_id)
    assert err.value.message == "Bad Request: message thread is not a forum topic thread"


async def test_send_photo_upload(server: TelegramServer, bot: Bot) -> None:
    group = server.create_chat("supergroup", "Ops")
    image = png(40, 20)
    sent = await bot.send_photo(
        group.id,
        BufferedInputFile(image, "map.png"),
        caption="<i>Where</i> it is",
        parse_mode="HTML",
    )
    assert sent.caption == "Where it is"
    assert sent.caption_entities and sent.caption_entities[0].type == "italic"
    assert sent.photo and (sent.photo[-1].width, sent.photo[-1].height) == (40, 20)
    assert server.message(group.id, sent.message_id).photo_bytes == image

    again = await bot.send_photo(group.id, sent.photo[-1].file_id)  # reuse by file_id
    assert again.photo and again.photo[-1].width == 40

    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_photo(group.id, BufferedInputFile(image, "map.png"), caption="x" * 1025)
    assert err.value.message == "Bad Request: message caption is too long"
    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_photo(group.id, BufferedInputFile(b"not an image", "x.png"))
    assert err.value.message == "Bad Request: IMAGE_PROCESS_FAILED"


async def test_commands_are_stored_per_scope_and_language(
    server: TelegramServer, bot: Bot, info: BotInfo
) -> None:
    group = server.create_chat("supergroup", "Ops")
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    await bot.set_my_commands(
        [BotCommand(command="status", description="Статус")], language_code="ru"
    )
    await bot.set_my_commands(
        [BotCommand(command="take", description="Take a case")],
        scope=BotCommandScopeChat(chat_id=group.id),
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    assert [c.command for c in await bot.get_my_commands(language_code="ru")] == ["status"]
    scoped = await bot.get_my_commands(scope=BotCommandScopeChat(chat_id=group.id))
    assert [c.command for c in scoped] == ["take"]
    assert await bot.get_my_commands(language_code="de") == []
    with pytest.raises(TelegramBadRequest) as err:
        await bot.set_my_commands([BotCommand(command="Bad-Command", description="x")])
    assert err.value.message == "Bad Request: BOT_COMMAND_INVALID"


async def test_two_bots_have_separate_queues_and_chats(server: TelegramServer) -> None:
    first = server.add_bot(TOKEN, "otklik_bot", can_read_all_group_messages=False)
    second = server.add_bot(OTHER_TOKEN, "helper_bot", can_read_all_group_messages=False)
    group = server.create_chat("supergroup", "Ops")
    ann = server.create_user("Ann")
    bot_a, bot_b = make_bot(server), make_bot(server, OTHER_TOKEN)

    await bot_b.send_message(group.id, "I spoke last")
    server.send_user_message(group.id, ann, "/help")  # a general command: the last bot to speak
    assert server.pending_updates(first) == []
    assert server.pending_updates(second)[-1]["message"]["text"] == "/help"

    server.send_user_message(ann.id, ann, "/start", bot=first)
    with pytest.raises(TelegramForbiddenError):  # Ann never started the other bot
        await bot_b.send_message(ann.id, "hi")
    in_private = await bot_a.send_message(ann.id, "hi")
    assert in_private.chat.type == "private" and in_private.chat.first_name == "Ann"
    assert [m.text for m in server.messages(ann.id, bot=first)] == ["/start", "hi"]
    await bot_a.session.close()
    await bot_b.session.close()


async def test_markdown_v2(server: TelegramServer, bot: Bot) -> None:
    group = server.create_chat("supergroup", "Ops")
    sent = await bot.send_message(group.id, "*bold* _it_ `code` \\.", parse_mode="MarkdownV2")
    assert sent.text == "bold it code ."
    assert [e.type for e in sent.entities or []] == ["bold", "italic", "code"]
    with pytest.raises(TelegramBadRequest) as err:
        await bot.send_message(group.id, "hello.", parse_mode="MarkdownV2")
    assert err.value.message == (
        "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with "
        "the preceding '\\'"
    )
