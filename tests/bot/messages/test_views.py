"""Views: the JSON each builder writes matches its TypedDict, key for key and in order, since
queued messages written by one release are rendered by the next."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.cases import cards
from bot.messages import views
from bot.messages.outbox import photo_payload
from bot.model import Attachment, AttachmentKind, Case, CaseState, Draft, Priority
from bot.staff.directory import Directory
from tests.doubles.support import make_config, make_mention

NOW = datetime(2026, 11, 20, 13, 30, tzinfo=UTC)
CASE = Case(
    id=42,
    department="housing",
    state=CaseState.TAKEN,
    priority=Priority.HIGH,
    created_at=NOW,
    source="vk",
    first_touch_due_at=NOW + timedelta(hours=2),
    first_touched_at=NOW,
    answer_due_at=NOW + timedelta(hours=8),
    assignee="spec",
    drafts=(Draft(version=1, text="Проверим.", author="spec", created_at=NOW),),
    version=3,
)


@pytest.fixture
def directory(tmp_path: Path, sqlite_url: str) -> Directory:
    return Directory(make_config(tmp_path, sqlite_url), frozenset({"telegram"}))


def keys(view_type: Any) -> list[str]:
    return list(view_type.__annotations__)


def test_every_builder_writes_its_typed_keys_in_order(directory: Directory) -> None:
    mention = make_mention("m1", NOW)
    card = cards.card_view(CASE, mention, None, directory, ZoneInfo("UTC"), now=NOW)
    notice = views.notice_view("ui.done", action="take")
    built: list[tuple[Any, dict[str, Any]]] = [
        (views.CardView, dict(card)),
        (views.DraftView, dict(cards.draft_view(CASE, CASE.drafts[0], directory))),
        (views.NoticeView, dict(notice)),
        (views.PromptView, dict(views.prompt_view("ui.prompt_draft", case_id=42))),
        (
            views.PageView,
            dict(
                views.page_view(
                    "crisis.html.j2",
                    {},
                    {"crisis": 1, "version": 2, "steps": [{"label": {"ru": "Шаг"}, "done": False}]},
                )
            ),
        ),
        (views.PublicReplyView, dict(views.public_reply_view("Ответ", corrects=True))),
        (views.QueueView, dict(views.queue_view(3, [{"case_id": 42, "priority": "high"}], 2))),
        (views.TriageView, dict(views.triage_view([], 0))),
        (views.PackView, dict(views.pack_view([views.pack_line(card)]))),
        (
            views.PhotoView,
            dict(
                photo_payload(
                    blob="ab", caption=notice, width=1, height=1, size=1, filename="a.png"
                )
            ),
        ),
        (
            views.AttachmentView,
            dict(
                cards.attachment_view(
                    42, Attachment(AttachmentKind.PHOTO, "telegram:AgAC", "", "image/jpeg", 9)
                )
            ),
        ),
    ]
    for view_type, view in built:
        assert list(view) == keys(view_type), view_type.__name__
    # Only a correction posted as a new reply says it corrects.
    assert list(views.public_reply_view("Ответ")) == ["view", "text"]
    # Only a crisis card's page has checklist buttons.
    assert list(views.page_view("help.html.j2", {})) == ["view", "template", "context"]
    assert list(views.pack_line(card)) == keys(views.PackLine)
    assert list(card["case"]) == keys(views.CaseFacts)
    assert list(card["author"]) == keys(views.AuthorFacts)
    assert card["draft"] is not None and list(card["draft"]) == keys(views.CardDraft)
    assert card["sla"] is not None and list(card["sla"]) == keys(views.SlaLine)
    with_file = replace(mention, attachments=(Attachment(AttachmentKind.OTHER, "https://x.org/a"),))
    listed = cards.card_view(CASE, with_file, None, directory, ZoneInfo("UTC"))["attachments"]
    assert [list(line) for line in listed] == [keys(views.AttachmentLine)]


def test_the_sla_reminder_goes_on_a_card_that_has_a_deadline(directory: Directory) -> None:
    mention, tz = make_mention("m1", NOW), ZoneInfo("UTC")
    reminded = cards.card_view(CASE, mention, None, directory, tz, now=NOW, sla_reminder="80%")
    assert reminded["sla"] == {
        "key": "sla.card_due",
        "params": {"kind": "answer", "deadline": "20.11 21:30"},
        "reminder": "80%",
    }
    no_deadline = replace(CASE, answer_due_at=None)
    plain = cards.card_view(no_deadline, mention, None, directory, tz, now=NOW, sla_reminder="80%")
    assert plain["sla"] is None


def test_a_view_read_back_from_json_is_an_equal_copy(directory: Directory) -> None:
    mention = make_mention("m1", NOW)
    card = cards.card_view(CASE, mention, None, directory, ZoneInfo("UTC"), now=NOW)
    stored = json.loads(json.dumps(card))
    back = views.as_view(stored)
    assert back == card
    assert back is not stored
