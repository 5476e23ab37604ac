"""Neutral views (bot/messages/views.py) as Telegram messages: HTML text, a keyboard, and
whether the message is public (a public reply must stay forwardable: never protect_content).

Telegram refuses a text longer than 4096 characters, counted in UTF-16 code units of the
visible text (after tags are parsed and entities decoded). Every renderer fits its result
under that: cards by shortening the mention (the card then points to /case N), pack cards by
shortening every line's text alike (never dropping a case), pages at a line boundary where no
tag is open, plain texts by a hard cut.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from aiogram.types import ForceReply, InlineKeyboardMarkup

from bot.messages.fitting import longest_fit
from bot.messages.texts import HTML_SUFFIX, Texts
from bot.messages.views import (
    CARD_FIELDS,
    DRAFT_FIELDS,
    AttachmentView,
    CardDraft,
    CardView,
    DraftView,
    PackView,
    View,
    queue_context,
    sendable,
)
from handlers.telegram.keyboards import (
    card_keyboard,
    checklist_keyboard,
    draft_keyboard,
    pack_keyboard,
    triage_keyboard,
)

__all__ = [
    "MAX_CAPTION",
    "MAX_PLACEHOLDER",
    "MAX_TEXT",
    "Markup",
    "Rendered",
    "TelegramRenderer",
    "fits",
    "visible_length",
]

MAX_TEXT = 4096  # UTF-16 code units of visible text
MAX_CAPTION = 1024  # the same units, for a photo's caption
MAX_PLACEHOLDER = 64  # ForceReply.input_field_placeholder
ELLIPSIS = "…"  # marks a hard cut; punctuation, not words, so no message key

_TAG = re.compile(r"<[^>]*>")
_TAG_DEPTH = re.compile(r"<(/?)[a-zA-Z][a-zA-Z0-9-]*(?:\s[^>]*)?>")

Markup = InlineKeyboardMarkup | ForceReply


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str  # Telegram HTML
    markup: Markup | None
    public: bool = False  # True only for a public reply: it must never be protect_content


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def visible_length(html_text: str) -> int:
    """Length Telegram counts: tags removed, entities decoded, in UTF-16 code units."""
    return utf16_length(html.unescape(_TAG.sub("", html_text)))


def fits(html_text: str, limit: int = MAX_TEXT) -> bool:
    return visible_length(html_text) <= limit


def cut_plain(text: str, limit: int) -> str:
    """The longest prefix of plain text within `limit` UTF-16 units, cut on a code point."""
    if utf16_length(text) <= limit:
        return text
    budget = limit - utf16_length(ELLIPSIS)
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > budget:
            return text[:index].rstrip() + ELLIPSIS
    return text  # not reached: the whole text was longer than the limit


def escape_fit(text: str, limit: int = MAX_TEXT) -> str:
    """Plain text as HTML within the limit; cut before escaping, so never inside an entity."""
    return html.escape(cut_plain(text, limit), quote=False)


class TelegramRenderer:
    def __init__(self, texts: Texts) -> None:
        self.texts = texts

    def render(self, view: View) -> Rendered:
        view = sendable(view)
        if view["view"] == "card":
            return Rendered(self._card(view), card_keyboard(view, self.texts))
        if view["view"] == "draft":
            return Rendered(self._draft(view), draft_keyboard(view, self.texts))
        if view["view"] == "notice":
            return Rendered(escape_fit(self.texts.notice(view["key"], view["params"])), None)
        if view["view"] == "prompt":
            text = self.texts.notice(view["key"], view["params"])
            force = ForceReply(force_reply=True, input_field_placeholder=_placeholder(text))
            return Rendered(escape_fit(text), force)
        if view["view"] == "page":
            page = self.texts.render(view["template"], **view["context"])
            if not view["template"].endswith(HTML_SUFFIX):
                return Rendered(escape_fit(page), None)  # a .txt.j2 page is plain text
            checklist = view.get("checklist")  # a crisis card's items as buttons
            keyboard = checklist_keyboard(checklist, self.texts) if checklist else None
            return Rendered(self.fit_lines(page), keyboard)
        if view["view"] == "public_reply":
            text = self.texts.public_reply(view["text"], bool(view.get("corrects")))
            return Rendered(escape_fit(text), None, public=True)
        if view["view"] == "queue":
            page = self.texts.render("queue.html.j2", **queue_context(view))
            return Rendered(self.fit_lines(page), None)
        if view["view"] == "triage":
            page = self.texts.render(
                "triage.html.j2", items=view["items"], more=view["more"], commands=False
            )
            return Rendered(self.fit_lines(page), triage_keyboard(view, self.texts))
        if view["view"] == "pack":
            return Rendered(self._pack(view), pack_keyboard(view, self.texts))
        # A photo or an attachment is sent by the transport, which renders only its caption.
        raise ValueError(f"unknown view {view['view']!r}")

    def attachment_caption(self, view: AttachmentView) -> str:
        """The line under a citizen's photo posted under its card: which case, what it is."""
        kind = self.texts.t(f"attachment_kind.{view['kind']}")
        return escape_fit(self.texts.t("attachment.caption", case_id=view["case_id"], kind=kind))

    def caption(self, view: View) -> str:
        """A view as a photo's caption: whole lines within Telegram's 1024-character limit."""
        return self.fit_lines(self.render(view).text, MAX_CAPTION)

    # --- cards and drafts: shorten the free text, never the facts around it ---

    def _card(self, view: CardView) -> str:
        context: dict[str, Any] = {name: view.get(name) for name in CARD_FIELDS}
        page = self.texts.render("card.html.j2", **context, text_cut=False)
        if fits(page):
            return page
        mention: str = view.get("text") or ""

        def with_mention(length: int) -> str:
            cut = mention[:length].rstrip()
            return self.texts.render("card.html.j2", **{**context, "text": cut}, text_cut=True)

        result = longest_fit(with_mention, len(mention), fits)
        draft: CardDraft | None = view.get("draft")
        if result is None and draft:
            # Even without the mention the card is too long: the draft has to give way too.
            draft_text: str = draft.get("text") or ""

            def with_draft(length: int) -> str:
                cut = {**draft, "text": draft_text[:length].rstrip()}
                return self.texts.render(
                    "card.html.j2", **{**context, "text": "", "draft": cut}, text_cut=True
                )

            result = longest_fit(with_draft, len(draft_text), fits)
        return result if result is not None else self.fit_lines(with_mention(0))

    def _pack(self, view: PackView) -> str:
        """A pack keeps every line (each is a case shown nowhere else, with its take button):
        when they do not fit, every line's text is cut to the same longest length that does."""
        items = view["items"]
        page = self.texts.render("pack.html.j2", items=items)
        if fits(page):
            return page

        def with_text(length: int) -> str:
            cut = [{**line, "text": _cut(line["text"], length)} for line in items]
            return self.texts.render("pack.html.j2", items=cut)

        longest = max((len(line["text"]) for line in items), default=0)
        result = longest_fit(with_text, longest, fits)
        return result if result is not None else self.fit_lines(page)

    def _draft(self, view: DraftView) -> str:
        context: dict[str, Any] = {name: view.get(name) for name in DRAFT_FIELDS}
        page = self.texts.render("draft.html.j2", **context)
        if fits(page):
            return page
        text: str = view.get("text") or ""

        def with_text(length: int) -> str:
            cut = text[:length].rstrip() + ELLIPSIS
            return self.texts.render("draft.html.j2", **{**context, "text": cut})

        result = longest_fit(with_text, len(text), fits)
        return result if result is not None else self.fit_lines(page)

    # --- pages: whole lines only, and only where no tag is open ---

    def fit_lines(self, page: str, limit: int = MAX_TEXT) -> str:
        """The page if it fits; else its longest top-level line prefix and "… and N more"."""
        if fits(page, limit):
            return page
        lines = page.split("\n")
        lengths = [visible_length(line) + 1 for line in lines]  # +1: the newline
        cuts: list[int] = []  # line counts after which no tag is open
        depth = 0
        for index, line in enumerate(lines):
            for match in _TAG_DEPTH.finditer(line):
                depth = max(0, depth - 1) if match.group(1) else depth + 1
            if depth == 0:
                cuts.append(index + 1)
        prefix = [0]
        for length in lengths:
            prefix.append(prefix[-1] + length)
        for kept in reversed(cuts):
            if prefix[kept] > limit:
                continue
            dropped = sum(1 for line in lines[kept:] if line.strip())
            if not dropped:
                continue
            note = html.escape(self.texts.t("ui.truncated", count=dropped), quote=False)
            candidate = "\n".join(lines[:kept]).rstrip() + "\n" + note
            if fits(candidate, limit):
                return candidate
        # Not even the first block fits (one huge quote): its plain text, cut.
        return escape_fit(html.unescape(_TAG.sub("", page)), limit)


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[:length].rstrip() + ELLIPSIS


def _placeholder(text: str) -> str:
    """The prompt's first line, short enough for the input field."""
    first = text.strip().split("\n", 1)[0]
    return cut_plain(first, MAX_PLACEHOLDER) or ELLIPSIS
