"""Line breaks in everything the bot writes: no field glued onto the end of the line before it.

The environment trims the line break after a block tag (trim_blocks), so a line of text that
ends in `{% endif %}` swallows its own line break and the next line is glued on: a card once
read "…до 07.12 09:45👤 никто не взял". Two checks, both languages:

- every template is read: a line that writes text may not end in a block tag, except before a
  blank line (the deliberate idiom: the blank line is then the line break);
- every card, draft, notice, queue, status, digest and page template is rendered over the
  states and options that change its lines (SLA line with and without a reminder, overdue and
  paused, drafts in every status, labels, escalation, the template menu, several list items),
  and every line-start marker (👤, ⏱, 📝, …) found inside a line must follow a space.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.messages.texts import DEFAULT_TEMPLATES_DIR, LOCALES
from bot.model import DraftStatus
from tests.bot.messages.test_wording import CARD, SOURCES, TEXTS, page_samples, renderings

TEMPLATES = sorted(p for locale in LOCALES for p in (DEFAULT_TEMPLATES_DIR / locale).glob("*.j2"))
BLOCK_TAG = re.compile(r"\{%.*?%\}")
# Blocks that write nothing where they stand.
DEFINITION = re.compile(r"^\{%-?\s*(set|macro)\b")
OPENING_TAGS = re.compile(r"(?:<[a-zA-Z][^>]*>)+$")
ELLIPSIS = "…"  # starts "… и ещё 2" lines


def _line_markers() -> frozenset[str]:
    """Symbols that start a line somewhere in a template or a message: each marks a field."""
    lines = [line for path in TEMPLATES for line in path.read_text("utf-8").splitlines()]
    lines += [
        line for locale in LOCALES for text in SOURCES[locale].values() for line in text.split("\n")
    ]
    found = {ELLIPSIS}
    for line in lines:
        stripped = line.strip()
        if stripped and unicodedata.category(stripped[0]) == "So":
            found.add(stripped[0])
    return frozenset(found)


MARKERS = _line_markers()


def glued(text: str) -> list[str]:
    """Lines in which a marker follows text directly ("09:45👤", "</a>… и ещё 2")."""
    bad = []
    for line in text.split("\n"):
        for index, char in enumerate(line):
            if char not in MARKERS or index == 0:
                continue
            before = OPENING_TAGS.sub("", line[:index])  # "<b>🚨 Кризисы</b>" starts a line
            if before and not before[-1].isspace() and before[-1] not in MARKERS:
                bad.append(line)
                break
    return bad


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_line_of_text_ends_in_a_block_tag(path: Path) -> None:
    lines = path.read_text("utf-8").splitlines()
    in_comment = False
    bad = []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("{#"):
            in_comment = "#}" not in stripped
            continue
        if in_comment:
            in_comment = "#}" not in stripped
            continue
        if not stripped.endswith("%}") or stripped.endswith("+%}"):
            continue
        if DEFINITION.match(stripped) or not BLOCK_TAG.sub("", stripped).strip():
            continue
        following = lines[number].strip() if number < len(lines) else ""
        if following:  # before a blank line the trimmed break is the blank line's own
            bad.append(f"{number}: {stripped}")
    assert not bad, f"{path}: a line ending in a block tag glues the next one on: {bad}"


def test_the_check_catches_what_it_is_for() -> None:
    assert glued("⏱ первый ответ — до 07.12 09:45👤 никто не взял")
    assert glued('<a href="x">ссылка</a>… и ещё 2')
    assert not glued("<b>🚨 Кризисы</b>\n⏱ до 09:45 · ⏰ Напоминание: 80%\n👤 никто не взял")


# --- cards and drafts over the states that change their lines -------------------------------

SLA_LINES: list[Any] = [
    None,
    {"key": "sla.card_due", "params": {"kind": "first_touch", "deadline": "07.12 09:45"}},
    {"key": "sla.card_overdue", "params": {"kind": "answer", "deadline": "07.12 09:45"}},
    {"key": "sla.card_paused", "params": {"since": "07.12 09:45"}},
]
TEMPLATE_MENU = [
    {
        "arg": "first-touch",
        "label_key": "ui.publish_template",
        "label_params": {"title": "Первый ответ"},
        "preview": "Здравствуйте! Видим ваше сообщение.",
    },
    {"arg": "thanks", "label": "Спасибо", "preview": "Спасибо за сообщение."},
]


def card_contexts() -> Iterator[dict[str, Any]]:
    base: dict[str, Any] = {
        **CARD,
        "moved_to": None,
        "text_cut": False,
        "menu": None,
        "options": [],
    }
    for sla in SLA_LINES:
        for reminder in (None, "80%"):
            for deadline in ("07.12 09:45", None):
                line = {**sla, "reminder": reminder} if sla else None
                yield {**base, "sla": line, "deadline": deadline}
    no_author = {"name": "", "labels": [], "negative_count": 0, "total_mentions": 1}
    for change in (
        {"author": no_author},
        {"assignee_name": None},
        {"case": {**CARD["case"], "escalation_level": 0, "mention_count": 1, "drill": True}},
        {"moved_to": "Транспорт"},
        {"text_cut": True},
        {"url": None, "text": ""},
        {"route_confidence": None},
        {"menu": "use_template", "options": TEMPLATE_MENU},
        {"menu": "close", "options": [{"arg": "resolved", "label_key": "outcome.resolved"}]},
        *({"draft": {**CARD["draft"], "status": s.value}} for s in DraftStatus),
        {"draft": None},
    ):
        for sla in (None, {**SLA_LINES[1], "reminder": None}):
            yield {**base, "sla": sla, **change}


def draft_contexts() -> Iterator[dict[str, Any]]:
    base = page_samples("ru")["draft.html.j2"]
    for status in DraftStatus:
        for reviewer in ("Вера Петрова", None):
            for note in ("Добавьте сроки", None):
                for drill in (True, False):
                    yield {
                        **base,
                        "status": status.value,
                        "reviewer_name": reviewer,
                        "note": note,
                        "drill": drill,
                    }


@pytest.mark.parametrize("locale", LOCALES)
def test_cards_keep_every_field_on_its_own_line(locale: str) -> None:
    texts = TEXTS[locale]
    for context in card_contexts():
        card = texts.render("card.html.j2", **context)
        assert not glued(card), (context, card)
        lines = card.split("\n")
        # The fields that follow each other stay on lines of their own.
        if context["sla"] or context["deadline"]:
            assert any(line.startswith("⏱ ") for line in lines), card
        assert any(line.startswith("👤 ") for line in lines), card
        assert any(line.startswith("✍️ ") for line in lines), card
        if context.get("menu") == "use_template":
            assert sum(line.startswith("💬 ") for line in lines) == len(TEMPLATE_MENU), card


@pytest.mark.parametrize("locale", LOCALES)
def test_drafts_keep_their_lines(locale: str) -> None:
    texts = TEXTS[locale]
    for context in draft_contexts():
        draft = texts.render("draft.html.j2", **context)
        assert not glued(draft), (context, draft)
        # The header, the text, the approval chain when there is one, and where the draft
        # stands (the chain says that for a pending draft).
        chain = bool(context.get("chain"))
        pending = context["status"] == DraftStatus.PENDING.value
        assert len(draft.split("\n")) == 2 + chain + (not (pending and chain)), draft


# --- lists: every item a line --------------------------------------------------------------


def triage_items(count: int) -> list[dict[str, Any]]:
    return [
        {
            "mention_id": 1201 + n,
            "source": "vk",
            "author": "Пётр Сидоров",
            "text": "Опять всё как всегда",
            "url": "https://vk.com/wall-1_2" if n % 2 == 0 else None,
        }
        for n in range(count)
    ]


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("more", [0, 2])
@pytest.mark.parametrize("commands", [True, False])
def test_the_triage_list_has_a_line_per_mention(
    locale: str, count: int, more: int, commands: bool
) -> None:
    page = TEXTS[locale].render(
        "triage.html.j2", items=triage_items(count), more=more, commands=commands
    )
    lines = page.split("\n")
    assert sum(line.startswith("<b>#") for line in lines) == count, page
    assert not glued(page), page
    assert len(lines) == 1 + count + (1 if more else 0) + (1 if commands else 0), page


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("count", [0, 1, 4])
@pytest.mark.parametrize("more", [0, 3])
def test_the_queue_message_has_a_line_per_case(locale: str, count: int, more: int) -> None:
    items = [{"case_id": 40 + n, "priority": "high"} for n in range(count)]
    page = TEXTS[locale].render("queue.html.j2", waiting=count + more, items=items, more=more)
    assert not glued(page), page
    assert sum("/case" in line for line in page.split("\n")) == count, page


@pytest.mark.parametrize("locale", LOCALES)
def test_status_keeps_crises_and_departments_apart(locale: str) -> None:
    base = page_samples(locale)["status.html.j2"]
    crisis = base["crises"][0]
    for crises in ([], [crisis], [crisis, {**crisis, "cooling_down": False, "subject": None}]):
        page = TEXTS[locale].render("status.html.j2", **{**base, "crises": crises})
        assert not glued(page), page
        lines = page.split("\n")
        assert sum(line.startswith("🚨") for line in lines) == len(crises), page


# --- every page template and every message, as the wording test renders them ----------------


@pytest.mark.parametrize("locale", LOCALES)
def test_no_page_template_glues_a_line(locale: str) -> None:
    samples = page_samples(locale)
    for name, context in samples.items():
        page = TEXTS[locale].render(name, **context)
        assert not glued(page), (name, page)
    digest = {**samples["digest.html.j2"], "crises": [], "codes": [], "critics": [], "leaders": []}
    assert not glued(TEXTS[locale].render("digest.html.j2", **digest))


@pytest.mark.parametrize("locale", LOCALES)
def test_no_message_glues_a_line(locale: str) -> None:
    for key in SOURCES[locale]:
        for values, text in renderings(locale, key):
            assert not glued(text), (key, values, text)
