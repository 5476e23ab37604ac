"""Attachments on cards: every one listed (kind, name, size, a link only where anyone can open
it), in both languages on lines of their own; a photo posted under the card only where its
reference can be sent and within the configured size; the bounds every source's attachments
are held to."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.cases.cards import Cards, card_view
from bot.clock import FrozenClock
from bot.messages.outbox import OutboxOp
from bot.messages.texts import DEFAULT_TEMPLATES_DIR, spell_size, texts_for
from bot.model import (
    MAX_ATTACHMENTS,
    Attachment,
    AttachmentKind,
    Case,
    CaseState,
    Priority,
    attachment_problem,
    bounded_attachments,
)
from bot.settings.config import AttachmentsConfig
from bot.staff.directory import Directory
from handlers.sandbox.render import SandboxRenderer
from handlers.telegram.render import TelegramRenderer
from tests.doubles.support import make_config, make_mention

NOW = datetime(2026, 11, 20, 13, 30, tzinfo=UTC)
CASE = Case(
    id=7,
    department="housing",
    state=CaseState.NEW,
    priority=Priority.NORMAL,
    created_at=NOW,
    source="vk",
)
PHOTO = Attachment(AttachmentKind.PHOTO, "telegram:AgACAgIAAxk1", "", "image/jpeg", 532_480)
BIG_PHOTO = replace(PHOTO, ref="telegram:AgACAgIAAxk2", size=3 * 1024 * 1024)
MXC_PHOTO = Attachment(AttachmentKind.PHOTO, "mxc://example.org/AbC", "двор.png", "image/png", 900)
WEB_PHOTO = Attachment(AttachmentKind.PHOTO, "https://cdn.example.org/1.jpg", "1.jpg")
SCAN = Attachment(
    AttachmentKind.DOCUMENT, "https://cdn.example.org/a.pdf", "акт.pdf", "application/pdf", 120_009
)
VIDEO = Attachment(AttachmentKind.VIDEO, "telegram:BAACAgIAAxk3", "", "video/mp4", None)
ALL = (PHOTO, BIG_PHOTO, MXC_PHOTO, WEB_PHOTO, SCAN, VIDEO)


def directory(tmp_path: Path, max_mb: float = 1.0) -> Directory:
    config = make_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    config = config.model_copy(update={"attachments": AttachmentsConfig(forward_max_mb=max_mb)})
    return Directory(config, frozenset({"telegram", "matrix"}))


def test_photos_go_under_the_card_where_their_reference_can_be_sent(tmp_path: Path) -> None:
    cards = Cards(directory(tmp_path), ZoneInfo("UTC"), FrozenClock(NOW), "coordination")
    mention = replace(make_mention("m1", NOW), attachments=ALL, id=3)
    items = cards.to_post(CASE, mention, None, NOW)
    posted = [(i.transport, i.payload["view"]) for i in items]
    # The card in each chat; the Telegram photo within 1 MB to Telegram, the mxc one to
    # Matrix. The 3 MB photo, the web photo, the document and the video are only listed.
    assert posted == [
        ("telegram", "card"),
        ("matrix", "card"),
        ("telegram", "attachment"),
        ("matrix", "attachment"),
    ]
    photo, mxc = items[2], items[3]
    assert photo.op is OutboxOp.REPLY and photo.reply_to_key == "card:7:housing"
    assert photo.payload["view"] == "attachment" and photo.payload["ref"] == PHOTO.ref
    assert photo.thread == "7"  # the department's forum topic
    assert mxc.payload["view"] == "attachment" and mxc.payload["ref"] == MXC_PHOTO.ref
    assert len(items[0].payload["attachments"]) == len(ALL)  # type: ignore[typeddict-item]
    # Allowed more, the large photo goes too; allowed nothing, none does.
    big = Cards(directory(tmp_path, 4), ZoneInfo("UTC"), FrozenClock(NOW), "coordination")
    assert len(big.attachments_to_post(CASE, mention, NOW)) == 3
    none = Cards(directory(tmp_path, 0), ZoneInfo("UTC"), FrozenClock(NOW), "coordination")
    assert none.attachments_to_post(CASE, mention, NOW) == []


@pytest.mark.parametrize(
    ("locale", "lines"),
    [
        (
            "ru",
            [
                f"📎 фото, {spell_size(532_480, 'ru')}",
                "📎 документ «акт.pdf», 117 КБ · открыть",
                "📎 видео",
            ],
        ),
        (
            "en",
            [
                "📎 photo, 520 KB",
                "📎 document “акт.pdf”, 117 KB · open",
                "📎 video",
            ],
        ),
    ],
)
def test_the_card_lists_each_attachment_on_a_line_of_its_own(
    tmp_path: Path, locale: str, lines: list[str]
) -> None:
    mention = replace(make_mention("m1", NOW), attachments=(PHOTO, SCAN, VIDEO))
    view = card_view(CASE, mention, None, directory(tmp_path), ZoneInfo("UTC"), now=NOW)
    text = TelegramRenderer(texts_for(DEFAULT_TEMPLATES_DIR, locale)).render(view).text
    shown = [
        line.replace('<a href="https://cdn.example.org/a.pdf">', "").replace("</a>", "")
        for line in text.split("\n")
    ]
    for line in lines:
        assert line in shown, text
    assert '<a href="https://cdn.example.org/a.pdf">' in text
    assert "telegram:" not in text  # a file id is no link
    # Without attachments nothing is said about them.
    plain = card_view(CASE, make_mention("m2", NOW), None, directory(tmp_path), ZoneInfo("UTC"))
    assert "📎" not in TelegramRenderer(texts_for(DEFAULT_TEMPLATES_DIR, locale)).render(plain).text


def test_the_sandbox_shows_the_same_list_and_a_name_stays_on_its_line(tmp_path: Path) -> None:
    odd = replace(SCAN, name="акт\nосмотра\t<b>.pdf")
    mention = replace(make_mention("m1", NOW), attachments=(PHOTO, odd))
    view = card_view(CASE, mention, None, directory(tmp_path), ZoneInfo("UTC"), now=NOW)
    shown = SandboxRenderer(texts_for(DEFAULT_TEMPLATES_DIR, "ru")).render(view)
    text = json.dumps(shown["body"], ensure_ascii=False)
    assert "📎 документ «акт осмотра <b>.pdf», 117 КБ · " in text, text
    assert "https://cdn.example.org/a.pdf" in text and "📎 фото, 520 КБ" in text


def test_sizes_read_as_people_read_them() -> None:
    assert [spell_size(n, "ru") for n in (900, 120_009, 1_300_000, 250 * 1024**2)] == [
        "900 Б",
        "117 КБ",
        "1,2 МБ",
        "250 МБ",
    ]
    assert spell_size(1_300_000, "en") == "1.2 MB"


def test_bounds_hold_for_every_source() -> None:
    assert attachment_problem(PHOTO) is None and attachment_problem(MXC_PHOTO) is None
    for bad in (
        replace(SCAN, ref="javascript:alert(1)"),
        replace(SCAN, ref="file:///etc/passwd"),
        replace(SCAN, ref="https:no-slashes"),
        replace(SCAN, ref="https://x.org/" + "a" * 2048),
        replace(SCAN, name="x" * 257),
        replace(SCAN, mime="a/" + "b" * 200),
        replace(SCAN, caption="x" * 1025),
        replace(SCAN, size=-1),
    ):
        assert attachment_problem(bad) is not None, bad
    many = [replace(SCAN, name=f"{n}.pdf") for n in range(MAX_ATTACHMENTS + 5)]
    kept = bounded_attachments([replace(SCAN, ref="ftp://x/y"), *many])
    assert len(kept) == MAX_ATTACHMENTS and kept[0].name == "0.pdf"
