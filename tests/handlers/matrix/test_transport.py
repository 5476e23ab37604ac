"""The Matrix transport end to end: real views, the real renderer, a real nio AsyncClient,
against a real Synapse (tests/doubles/synapse.py). A second user reads the room as people see it.

The Synapse lives for the whole session: every test gets a bot, a reader and a room of its own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import pytest
from nio import AsyncClient

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
from bot.staff.directory import Directory
from handlers.matrix.reactions import CARD_REACTIONS, DRAFT_REACTIONS, card_reactions
from handlers.matrix.render import (
    HTML_FORMAT,
    MAX_CONTENT_BYTES,
    MAX_MENTION,
    NOTICE,
    TEXT,
    MatrixRendered,
    MatrixRenderer,
    content_size,
    to_matrix_html,
    to_plain,
)
from handlers.matrix.shown import CARD_FIELD
from handlers.matrix.transport import DELIVERY_CLIENT_CONFIG, MatrixTransport, transaction_id
from tests.doubles.support import make_config, make_mention
from tests.doubles.synapse import MatrixUser, SynapseServer, free_port

NOW = datetime(2026, 11, 20, 13, 30, tzinfo=UTC)
TZ = ZoneInfo("Europe/Moscow")
HOSTILE = "<script>alert('x')</script> & </b> <b>&amp; &lt; <a href=\"javascript:x\">"
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
STATUS_CONTEXT = {
    "generated_at": "20.11 16:30",
    "departments": [
        {"name": "ЖКХ <и> ко", "open": 3, "overdue": 1, "at_risk": 0, "oldest_waiting": "2 ч"}
    ],
}


def _q(value: str) -> str:
    return quote(value, safe="")


def _localpart(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


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


@dataclass
class Rig:
    synapse: SynapseServer
    bot: MatrixUser
    reader: MatrixUser  # a person in the room: reads what everyone sees
    room: str
    client: AsyncClient
    transport: MatrixTransport

    async def deliver(
        self,
        view: views.View,
        op: OutboxOp = OutboxOp.POST,
        target: str | None = None,
        reply_to: str | None = None,
        key: str | None = None,
    ) -> DeliveryResult:
        item = OutboxItem(
            transport="matrix",
            chat=self.room,
            op=op,
            payload=view,
            idempotency_key=key or f"matrix:{self.room}:{uuid.uuid4().hex}",
        )
        return await self.transport.deliver(Delivery(item, target, reply_to))

    # --- reading the room as the reader ---

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        suffix = f"?{urlencode(query)}" if query else ""
        return self.synapse.request("GET", path + suffix, token=self.reader.access_token)

    def event(self, event_id: str) -> dict[str, Any]:
        return self.get(f"/_matrix/client/v3/rooms/{_q(self.room)}/event/{_q(event_id)}")

    def latest(self, event_id: str) -> dict[str, Any]:
        """The content people see now: the newest edit's m.new_content, else the original."""
        event = self.event(event_id)
        edit = event.get("unsigned", {}).get("m.relations", {}).get("m.replace")
        return dict(edit["content"]["m.new_content"] if edit else event["content"])

    def relations(self, event_id: str, rel_type: str) -> list[dict[str, Any]]:
        path = f"/_matrix/client/v1/rooms/{_q(self.room)}/relations/{_q(event_id)}/{rel_type}"
        chunk: list[dict[str, Any]] = self.get(path, limit=100)["chunk"]
        return chunk

    def reactions(self, event_id: str, sender: str | None = None) -> list[str]:
        """Keys of the live reactions on an event, oldest first."""
        events = self.relations(event_id, "m.annotation")
        return [
            e["content"]["m.relates_to"]["key"]
            for e in reversed(events)
            if sender is None or e["sender"] == sender
        ]

    def sent_by_bot(self, event_type: str) -> list[dict[str, Any]]:
        path = f"/_matrix/client/v3/rooms/{_q(self.room)}/messages"
        chunk = self.get(path, dir="b", limit=200)["chunk"]
        return [e for e in chunk if e["type"] == event_type and e["sender"] == self.bot.user_id]

    def send_as_reader(self, event_type: str, content: dict[str, Any]) -> str:
        path = f"/_matrix/client/v3/rooms/{_q(self.room)}/send/{event_type}/{uuid.uuid4().hex}"
        sent = self.synapse.request("PUT", path, token=self.reader.access_token, body=content)
        return str(sent["event_id"])


def bot_client(
    synapse: SynapseServer, user: MatrixUser, base_url: str | None = None
) -> AsyncClient:
    """The bot's client as the app builds it: a token from the config, no /login."""
    client = AsyncClient(base_url or synapse.base_url, user.user_id, config=DELIVERY_CLIENT_CONFIG)
    client.access_token = user.access_token
    client.user_id = user.user_id
    client.device_id = user.device_id
    return client


@pytest.fixture
def texts() -> Texts:
    return texts_for(DEFAULT_TEMPLATES_DIR, "ru")


@pytest.fixture
def renderer(texts: Texts) -> MatrixRenderer:
    return MatrixRenderer(texts)


@pytest.fixture
def directory(tmp_path: Path, sqlite_url: str) -> Directory:
    return Directory(make_config(tmp_path, sqlite_url), frozenset({"matrix"}))


@pytest.fixture
async def rig(synapse: SynapseServer, renderer: MatrixRenderer) -> AsyncIterator[Rig]:
    bot = synapse.register(_localpart("bot"))
    reader = synapse.register(_localpart("reader"))
    # A person creates the department's room and invites the bot: the bot has no power there.
    room = synapse.create_room(reader.access_token, "ЖКХ", invite=[bot.user_id])
    synapse.join(bot.access_token, room)
    client = bot_client(synapse, bot)
    try:
        yield Rig(synapse, bot, reader, room, client, MatrixTransport(client, renderer))
    finally:
        await client.close()


# --- rendering ------------------------------------------------------------------------------


def test_template_html_becomes_matrix_html_and_plain_text() -> None:
    page = (
        "<b>Кейс</b> &amp; &lt;тег&gt;\n<blockquote>раз\nдва</blockquote>\nпосле\n"
        '<pre>a\nb</pre>\n🔗 <a href="https://vk.com/x?a=1&amp;b=2">Источник</a>'
    )
    assert to_matrix_html(page) == (
        "<b>Кейс</b> &amp; &lt;тег&gt;<br><blockquote>раз<br>два</blockquote>после<br>"
        '<pre>a\nb</pre>🔗 <a href="https://vk.com/x?a=1&amp;b=2">Источник</a>'
    )
    assert to_plain(page) == (
        "Кейс & <тег>\nраз\nдва\nпосле\na\nb\n🔗 Источник (https://vk.com/x?a=1&b=2)"
    )


def test_views_render_to_content_and_reactions(
    renderer: MatrixRenderer, directory: Directory
) -> None:
    new = renderer.render(card(directory, HOSTILE))
    assert new.msgtype == TEXT and new.formatted_body is not None
    assert HOSTILE in new.body and "<script>" not in new.formatted_body
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;/b&gt;" in new.formatted_body
    assert "\n" not in new.formatted_body and "<blockquote>" in new.formatted_body
    assert new.reactions == ["✋", "📝", "📋", "⏫", "↪️", "🚫", "✔️"]
    # The card names its case and version: reactions under it are read against it.
    shown = card(directory, HOSTILE)["case"]
    assert new.content() == {
        "msgtype": TEXT,
        "body": new.body,
        "format": HTML_FORMAT,
        "formatted_body": new.formatted_body,
        CARD_FIELD: {"case": shown["id"], "version": shown["version"]},
    }
    # No buttons while a submenu is open (its choices go to the thread) or once moved away.
    options = cards.menu_options(Action.CLOSE, make_case(), directory, [])
    menu = cards.card_view(
        make_case(),
        make_mention("m1", NOW),
        AUTHOR,
        directory,
        TZ,
        menu=Action.CLOSE,
        options=options,
    )
    moved = cards.card_view(
        make_case(), make_mention("m1", NOW), AUTHOR, directory, TZ, moved_to="transport"
    )
    assert renderer.render(menu).reactions == [] and renderer.render(moved).reactions == []

    pending = renderer.render(cards.draft_view(make_case(drafts=(DRAFT,)), DRAFT, directory))
    assert pending.reactions == list(DRAFT_REACTIONS.values()) and pending.msgtype == TEXT
    decided = replace(DRAFT, status=DraftStatus.APPROVED, reviewer="appr")
    assert renderer.render(cards.draft_view(make_case(), decided, directory)).reactions == []

    notice = renderer.render(
        views.notice_view(
            "ui.escalated",
            case_id=42,
            level=1,
            department_name="<Д> & М",
            actor_name="Анна",
            reason="нет\nответа",
        )
    )
    assert notice.msgtype == NOTICE and "<Д> & М" in notice.body and "нет\nответа" in notice.body
    assert notice.formatted_body is not None and "&lt;Д&gt; &amp; М" in notice.formatted_body
    assert "нет<br>ответа" in notice.formatted_body

    public = renderer.render(views.public_reply_view("Спасибо! <b>не тег</b>\nВторая строка"))
    assert public.formatted_body is None and public.msgtype == TEXT
    assert public.content() == {"msgtype": TEXT, "body": "Спасибо! <b>не тег</b>\nВторая строка"}


def test_every_message_stays_far_below_the_event_limit(
    renderer: MatrixRenderer, directory: Directory, texts: Texts
) -> None:
    # Quotes and ampersands grow fivefold as HTML; Cyrillic takes two bytes a letter.
    mention = ('"&<' + "ы" * 7) * 10_000
    big_draft = replace(DRAFT, text="щ&" * 40_000)
    rendered = {
        "card": renderer.render(card(directory, mention)),
        "draft": renderer.render(cards.draft_view(make_case(), big_draft, directory)),
        "notice": renderer.render(
            views.notice_view("ui.moved", case_id=1, department_name=mention)
        ),
        "public": renderer.render(views.public_reply_view(mention)),
        "page": renderer.render(
            views.page_view(
                "status.html.j2",
                {
                    "generated_at": "20.11 16:30",
                    "departments": [
                        {
                            "name": f"Отдел & {i}",
                            "open": i,
                            "overdue": 0,
                            "at_risk": 0,
                            "oldest_waiting": None,
                        }
                        for i in range(3000)
                    ],
                },
            )
        ),
    }
    for name, message in rendered.items():
        assert content_size(message.body, message.formatted_body) <= MAX_CONTENT_BYTES, name
    assert "/case 42" in rendered["card"].body  # the card says where the whole text is
    assert rendered["draft"].body.count("щ") > 1000 and "…" in rendered["draft"].body
    assert texts.t("ui.truncated", count=1).split()[0] in rendered["page"].body
    assert rendered["page"].body.count("Отдел") > 100

    # Below the size limit the mention is still cut at MAX_MENTION characters, on purpose.
    long_card = renderer.render(card(directory, "z" * 9000))
    assert long_card.body.count("z") == MAX_MENTION and "/case 42" in long_card.body


# --- delivery against Synapse ---------------------------------------------------------------


async def test_every_view_kind_is_delivered(rig: Rig, directory: Directory) -> None:
    waiting = make_case(state=CaseState.AWAITING_APPROVAL, assignee="spec", drafts=(DRAFT,))
    sent = {
        "card": card(directory, HOSTILE, state=CaseState.NEW),
        "draft": cards.draft_view(waiting, DRAFT, directory),
        "notice": views.notice_view("ui.moved", case_id=42, department_name="Дороги & <мосты>"),
        "prompt": views.prompt_view("ui.prompt_draft", case_id=42),
        "status": views.page_view("status.html.j2", STATUS_CONTEXT),
        "help": views.page_view("help.html.j2", {}),
        "public": views.public_reply_view("Спасибо! <b>это не тег</b> & мы уже чиним."),
        "queue": views.queue_view(
            7, [{"case_id": 1, "priority": "critical"}, {"case_id": 2, "priority": "low"}], 5
        ),
    }
    results = {name: await rig.deliver(view) for name, view in sent.items()}
    contents = {}
    for name, result in results.items():
        assert result.external_ref is not None and result.external_ref.startswith("$"), name
        event = rig.event(result.external_ref)
        assert event["sender"] == rig.bot.user_id and event["type"] == "m.room.message"
        contents[name] = event["content"]

    notices = {"notice", "prompt", "status", "help", "queue"}
    for name, content in contents.items():
        assert content["msgtype"] == (NOTICE if name in notices else TEXT), name
        if name == "public":
            assert "format" not in content and "formatted_body" not in content
        else:
            assert content["format"] == HTML_FORMAT and "\n" not in content["formatted_body"]
    assert "Кейс №42" in contents["card"]["body"] and HOSTILE in contents["card"]["body"]
    assert "<script>" not in contents["card"]["formatted_body"]
    assert "<blockquote>" in contents["card"]["formatted_body"]
    assert contents["public"]["body"] == "Спасибо! <b>это не тег</b> & мы уже чиним."

    card_ref, draft_ref = results["card"].external_ref, results["draft"].external_ref
    assert card_ref is not None and draft_ref is not None
    expected = card_reactions(sent["card"]["actions"])
    assert rig.reactions(card_ref, rig.bot.user_id) == expected
    assert list(results["card"].info["reactions"]) == expected
    assert rig.reactions(draft_ref, rig.bot.user_id) == list(DRAFT_REACTIONS.values())
    assert rig.reactions(results["notice"].external_ref or "") == []


async def test_an_edit_replaces_the_card_and_brings_reactions_in_step(
    rig: Rig, directory: Directory
) -> None:
    new = card(directory)
    posted = await rig.deliver(new)
    ref = posted.external_ref
    assert ref is not None
    assert rig.reactions(ref) == ["✋", "📝", "📋", "⏫", "↪️", "🚫", "✔️"]
    # A person clicks ✋: the bot must never take other people's reactions away.
    rig.send_as_reader(
        "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": ref, "key": "✋"}}
    )
    take = posted.info["reactions"][CARD_REACTIONS[Action.TAKE]]

    approved = card(directory, state=CaseState.APPROVED, assignee="spec", drafts=(DRAFT,))
    edited = await rig.deliver(approved, OutboxOp.EDIT, target=ref)
    assert edited.external_ref == ref
    latest = rig.latest(ref)
    assert latest["body"] == rig.transport.renderer.render(approved).body
    assert "Одобрен" in latest["body"] and latest["format"] == HTML_FORMAT
    edit_event = rig.event(ref)["unsigned"]["m.relations"]["m.replace"]["content"]
    assert edit_event["body"].startswith("* ") and edit_event["formatted_body"].startswith("* ")
    # ✋ went away (its event redacted), 📤 and ⏸️ came; the rest kept their events and order.
    assert rig.reactions(ref, rig.bot.user_id) == ["📝", "📋", "⏫", "↪️", "🚫", "✔️", "📤", "⏸️"]
    assert rig.reactions(ref, rig.reader.user_id) == ["✋"]
    assert "redacted_because" in rig.event(take)["unsigned"]
    kept = {k: v for k, v in posted.info["reactions"].items() if k != "✋"}
    came = {key: edited.info["reactions"][key] for key in ("📤", "⏸️")}
    assert edited.info["reactions"] == {**kept, **came}
    assert list(edited.info["reactions"]) == card_reactions(approved["actions"])

    # A submenu opens: every button of the bot goes; once the case is closed, only 🔄.
    options = cards.menu_options(Action.CLOSE, make_case(), directory, [])
    menu = cards.card_view(
        make_case(),
        make_mention("m1", NOW),
        AUTHOR,
        directory,
        TZ,
        menu=Action.CLOSE,
        options=options,
    )
    assert (await rig.deliver(menu, OutboxOp.EDIT, target=ref)).info == {"reactions": {}}
    assert rig.reactions(ref, rig.bot.user_id) == []
    await rig.deliver(card(directory, state=CaseState.CLOSED), OutboxOp.EDIT, target=ref)
    assert rig.reactions(ref, rig.bot.user_id) == ["🔄"]
    assert "Закрыт" in rig.latest(ref)["body"]


async def test_replies_go_into_the_cards_thread(rig: Rig, directory: Directory) -> None:
    card_ref = (await rig.deliver(card(directory))).external_ref
    assert card_ref is not None
    waiting = make_case(state=CaseState.AWAITING_APPROVAL, drafts=(DRAFT,))
    draft = await rig.deliver(
        cards.draft_view(waiting, DRAFT, directory), OutboxOp.REPLY, reply_to=card_ref
    )
    prompt = await rig.deliver(
        views.prompt_view("ui.prompt_draft", case_id=42), OutboxOp.REPLY, reply_to=f"ext:{card_ref}"
    )
    assert draft.external_ref and prompt.external_ref
    relation = rig.event(draft.external_ref)["content"]["m.relates_to"]
    assert relation == {
        "rel_type": "m.thread",
        "event_id": card_ref,
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": card_ref},
    }
    # Reactions of a draft in a thread go on the draft itself.
    assert rig.reactions(draft.external_ref, rig.bot.user_id) == list(DRAFT_REACTIONS.values())

    # A person writes a command inside the thread; the answer replies to it, in that thread
    # (a thread cannot start at a message that is itself in one).
    command = rig.send_as_reader(
        "m.room.message",
        {
            "msgtype": "m.text",
            "body": "!note добавьте номер заявки",
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": card_ref,
                "is_falling_back": True,
                "m.in_reply_to": {"event_id": card_ref},
            },
        },
    )
    answer = await rig.deliver(
        views.notice_view("ui.moved", case_id=42, department_name="Дороги"),
        OutboxOp.REPLY,
        reply_to=f"ext:{command}",
    )
    assert answer.external_ref is not None
    assert rig.event(answer.external_ref)["content"]["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": card_ref,
        "is_falling_back": False,
        "m.in_reply_to": {"event_id": command},
    }
    thread = {e["event_id"] for e in rig.relations(card_ref, "m.thread")}
    assert thread == {draft.external_ref, prompt.external_ref, command, answer.external_ref}

    # Gone or never there: the answer still goes out, as a plain message.
    lost = await rig.deliver(
        views.notice_view("ui.moved", case_id=42, department_name="Дороги"),
        OutboxOp.REPLY,
        reply_to="$no-such-event",
    )
    assert lost.external_ref is not None
    assert "m.relates_to" not in rig.event(lost.external_ref)["content"]
    plain = await rig.deliver(views.notice_view("ui.truncated", count=1), OutboxOp.REPLY)
    assert "m.relates_to" not in rig.event(plain.external_ref or "")["content"]


async def test_a_resent_item_creates_nothing_twice(rig: Rig, directory: Directory) -> None:
    view = card(directory)
    key = f"matrix:{rig.room}:card:42:housing:post:3"
    first = await rig.deliver(view, key=key)
    again = await rig.deliver(view, key=key)  # as after a crash between send and settle
    assert again.external_ref == first.external_ref and again.info == first.info
    assert len(rig.sent_by_bot("m.room.message")) == 1
    assert len(rig.sent_by_bot("m.reaction")) == len(card_reactions(view["actions"]))

    ref = first.external_ref
    assert ref is not None
    taken = card(directory, state=CaseState.TAKEN, assignee="spec")
    edit_key = f"matrix:{rig.room}:card:42:housing:edit:4"
    edited = await rig.deliver(taken, OutboxOp.EDIT, target=ref, key=edit_key)
    assert await rig.deliver(taken, OutboxOp.EDIT, target=ref, key=edit_key) == edited
    assert len(rig.relations(ref, "m.replace")) == 1
    # Kept reactions keep their place; 👋 comes last (reactions cannot be reordered).
    assert rig.reactions(ref, rig.bot.user_id) == [
        "✋",
        "📝",
        "📋",
        "⏫",
        "↪️",
        "🚫",
        "✔️",
        "👋",
        "⏸️",
    ]
    assert list(edited.info["reactions"]) == card_reactions(taken["actions"])

    reply_key = f"matrix:{rig.room}:prompt:1"
    prompt = views.prompt_view("ui.prompt_draft", case_id=42)
    reply = await rig.deliver(prompt, OutboxOp.REPLY, reply_to=ref, key=reply_key)
    assert await rig.deliver(prompt, OutboxOp.REPLY, reply_to=ref, key=reply_key) == reply
    assert len(rig.relations(ref, "m.thread")) == 1
    assert transaction_id(key) != transaction_id(edit_key) and len(transaction_id(key)) == 32


async def test_delete_redacts(rig: Rig) -> None:
    notice = await rig.deliver(views.notice_view("ui.truncated", count=3))
    ref = notice.external_ref
    assert ref is not None
    queue = {"view": "queue"}
    assert (await rig.deliver(queue, OutboxOp.DELETE, target=ref)).external_ref == ref
    event = rig.event(ref)
    assert event["content"] == {} and "redacted_because" in event["unsigned"]
    # Deleting again, deleting what never existed, or what was never posted: all settled.
    assert (await rig.deliver(queue, OutboxOp.DELETE, target=ref)).external_ref == ref
    await rig.deliver(queue, OutboxOp.DELETE, target="$no-such-event")
    assert await rig.deliver(queue, OutboxOp.DELETE) == DeliveryResult()


async def test_a_huge_card_and_its_edit_are_accepted(rig: Rig, directory: Directory) -> None:
    mention = ('Ужас & <кошмар> "цитата" ' * 5000).strip()
    big = replace(DRAFT, text="Ответ & " * 5000)
    posted = await rig.deliver(card(directory, mention))
    assert posted.external_ref is not None
    view = card(directory, mention, state=CaseState.AWAITING_APPROVAL, drafts=(big,))
    await rig.deliver(view, OutboxOp.EDIT, target=posted.external_ref)  # no M_TOO_LARGE
    assert "/case 42" in rig.latest(posted.external_ref)["body"]


# --- refusals and transient failures --------------------------------------------------------


async def test_refusals_are_permanent(rig: Rig, directory: Directory) -> None:
    elsewhere = rig.synapse.create_room(rig.reader.access_token, "Чужая")  # the bot is not in it
    item = OutboxItem(
        "matrix", elsewhere, OutboxOp.POST, views.notice_view("ui.truncated", count=1), "k1"
    )
    with pytest.raises(PermanentFailure, match="M_FORBIDDEN"):
        await rig.transport.deliver(Delivery(item))

    with pytest.raises(PermanentFailure, match="not a Matrix event id"):
        await rig.deliver(card(directory), OutboxOp.EDIT, target="42")
    with pytest.raises(PermanentFailure, match="cannot render"):
        await rig.deliver({"view": "nonsense"})
    with pytest.raises(PermanentFailure, match="edit without"):
        await rig.deliver(card(directory), OutboxOp.EDIT)

    stranger = bot_client(rig.synapse, replace(rig.bot, access_token="syt_not_a_token"))
    try:
        transport = MatrixTransport(stranger, rig.transport.renderer)
        with pytest.raises(PermanentFailure, match="M_UNKNOWN_TOKEN"):
            await transport.deliver(Delivery(replace(item, chat=rig.room)))
    finally:
        await stranger.close()


async def test_rate_limits_and_network_errors_are_retried_later(rig: Rig) -> None:
    admin = rig.synapse.register(_localpart("admin"), admin=True)
    rig.synapse.request(
        "POST",
        f"/_synapse/admin/v1/users/{_q(rig.bot.user_id)}/override_ratelimit",
        token=admin.access_token,
        body={"messages_per_second": 1, "burst_count": 1},
    )
    notice = views.notice_view("ui.truncated", count=1)
    with pytest.raises(RetryLater) as limited:
        for _ in range(5):  # nio must hand the 429 over instead of sleeping through it
            await rig.deliver(notice)
    assert "M_LIMIT_EXCEEDED" in str(limited.value)
    assert limited.value.after is not None and 0 < limited.value.after <= 2

    down = bot_client(rig.synapse, rig.bot, base_url=f"http://127.0.0.1:{free_port()}")
    try:
        item = OutboxItem("matrix", rig.room, OutboxOp.POST, notice, "k2")
        with pytest.raises(RetryLater) as unreachable:
            await MatrixTransport(down, rig.transport.renderer).deliver(Delivery(item))
        assert unreachable.value.after is None
    finally:
        await down.close()


def test_rendered_content_is_json_ready(renderer: MatrixRenderer) -> None:
    rendered = renderer.render(views.queue_view(3, [{"case_id": 7, "priority": "high"}], 0))
    assert isinstance(rendered, MatrixRendered)
    assert json.loads(json.dumps(rendered.content())) == rendered.content()
    assert "!case 7" in rendered.body and "<br>" in (rendered.formatted_body or "")
    assert "сервера Matrix" in rendered.body and "Telegram" not in rendered.body
