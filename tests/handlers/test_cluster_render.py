"""A cluster's answer as it goes out, as each transport shows it: the card's count, what waits
by hand and the button that marks it, and the notice with the answer to copy."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.cases.cards import card_view
from bot.messages.texts import DEFAULT_TEMPLATES_DIR, texts_for
from bot.messages.views import notice_view
from bot.model import (
    Case,
    CaseState,
    Draft,
    DraftStatus,
    Identity,
    Mention,
    Priority,
)
from bot.staff.directory import Directory
from handlers.matrix.render import MatrixRenderer
from handlers.sandbox.render import SandboxRenderer
from handlers.telegram.render import TelegramRenderer
from tests.doubles.support import make_config

AT = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
LINES = {
    "ru": ("Опубликовано 120 из 137", "вручную: 5", "Ответить вручную: 12", "Опубликовано"),
    "en": ("Published 120 of 137", "by hand: 5", "To answer by hand: 12", "Published"),
}


def published_cluster() -> tuple[Case, Mention]:
    draft = Draft(
        version=1,
        text="Воду дадут до 18:00.",
        author="spec",
        created_at=AT,
        status=DraftStatus.APPROVED,
        published_at=AT,
        published_by_bot=True,
    )
    case = Case(
        id=42,
        department="housing",
        state=CaseState.PUBLISHED,
        priority=Priority.NORMAL,
        created_at=AT,
        source="telegram",
        assignee="spec",
        reacted_at=AT,
        first_touched_at=AT,
        approved_at=AT,
        published_at=AT,
        drafts=(draft,),
        mention_count=137,
        similar_count=136,
        people_count=130,
        answer_targets=120,
        answers_delivered=115,
        hand_due=12,
        hand_published=5,
    )
    mention = Mention(
        source="telegram",
        external_id="-100500:7",
        text="Третий день нет горячей воды",
        author=Identity("telegram", "7", "Пётр"),
        received_at=AT,
    )
    return case, mention


@pytest.mark.parametrize("locale", ["ru", "en"])
def test_every_transport_shows_the_count_and_what_waits_by_hand(
    tmp_path: Path, locale: str
) -> None:
    directory = Directory(make_config(tmp_path, "sqlite+aiosqlite://"), frozenset({"telegram"}))
    case, mention = published_cluster()
    view = card_view(case, mention, None, directory, ZoneInfo("Europe/Moscow"), publishable=True)
    assert view["publication"] == {
        "done": 120,
        "total": 137,
        "by_hand": 5,
        "waiting_by_hand": 12,
    }
    assert "mark_published" in view["actions"]
    texts = texts_for(DEFAULT_TEMPLATES_DIR, locale)
    done, by_hand, waiting, button = LINES[locale]
    telegram = TelegramRenderer(texts).render(view)
    matrix = MatrixRenderer(texts).render(view)
    sandbox = json.dumps(SandboxRenderer(texts).render(view), ensure_ascii=False)
    for shown in (telegram.text, matrix.body, matrix.formatted_body or "", sandbox):
        assert done in shown and by_hand in shown and waiting in shown, shown
    assert telegram.markup is not None and button in json.dumps(
        telegram.markup.model_dump(), ensure_ascii=False
    )
    assert "📤" in matrix.reactions  # the reaction that marks them
    assert button in sandbox

    # Once marked, nothing waits: no line, no button.
    marked = replace(case, hand_due=0, hand_published=17)
    view = card_view(marked, mention, None, directory, ZoneInfo("Europe/Moscow"), publishable=True)
    assert "mark_published" not in view["actions"]
    assert waiting not in TelegramRenderer(texts).render(view).text


@pytest.mark.parametrize("locale", ["ru", "en"])
def test_the_notice_gives_the_answer_to_copy_and_the_links(locale: str) -> None:
    texts = texts_for(DEFAULT_TEMPLATES_DIR, locale)
    links = [f"https://vk.com/wall-1_{n}" for n in range(10)]
    notice = notice_view(
        "ui.by_hand", case_id=42, count=12, text="Воду <b>дадут</b>", links=links, more=2
    )
    telegram = TelegramRenderer(texts).render(notice).text
    matrix = MatrixRenderer(texts).render(notice).body
    sandbox = json.dumps(SandboxRenderer(texts).render(notice), ensure_ascii=False)
    for shown in (telegram, matrix, sandbox):
        assert all(link in shown for link in links)
        assert "/case 42" in shown
    assert "Воду &lt;b&gt;дадут&lt;/b&gt;" in telegram  # the answer is text, not markup
