"""Neutral views (bot/messages/views.py) as Matrix messages: `org.matrix.custom.html` with a
plain-text body beside it, and the reaction keys that stand for buttons
(handlers/matrix/reactions.py).

The templates write Telegram-flavoured HTML (b, i, u, s, code, pre, a href, blockquote), which
Matrix clients render too, except that they drop newlines in HTML: those become <br>.

Matrix refuses an event over 64 KiB: the whole signed event as UTF-8 JSON, and an edit carries
the content twice (fallback and m.new_content). So every message keeps its body and HTML
together under MAX_CONTENT_BYTES: cards and drafts by shortening the free text, pages at a line
boundary where no tag is open, plain texts by a hard cut.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from bot.messages.fitting import longest_fit
from bot.messages.texts import HTML_SUFFIX, Texts
from bot.messages.views import (
    CARD_FIELDS,
    DRAFT_FIELDS,
    AttachmentView,
    CardView,
    DraftView,
    View,
    queue_context,
    sendable,
)
from handlers.matrix.reactions import card_reactions, checklist_reactions, draft_reactions
from handlers.matrix.shown import CARD_FIELD

__all__ = [
    "CARD_FIELD",
    "HTML_FORMAT",
    "MAX_CONTENT_BYTES",
    "MAX_MENTION",
    "NOTICE",
    "TEXT",
    "MatrixRendered",
    "MatrixRenderer",
    "content_size",
    "to_matrix_html",
    "to_plain",
]

HTML_FORMAT = "org.matrix.custom.html"
TEXT = "m.text"
NOTICE = "m.notice"  # bots' own chatter: clients do not notify for it, other bots ignore it
MAX_MENTION = 8000  # characters of a mention on a card; /case N shows the rest
# body + formatted_body as JSON text. An edit doubles it and the signed event adds about 1 KiB,
# so this keeps an edit well under the 65,536-byte limit whatever the script or escaping.
MAX_CONTENT_BYTES = 30_000
ELLIPSIS = "…"  # marks a hard cut; punctuation, not words, so no message key

_TAG = re.compile(r"<[^>]*>")
_TAG_DEPTH = re.compile(r"<(/?)[a-zA-Z][a-zA-Z0-9-]*(?:\s[^>]*)?>")
_LINK = re.compile(r"<a\s[^>]*?href=\"([^\"]*)\"[^>]*>(.*?)</a>", re.DOTALL | re.IGNORECASE)
_PRE = re.compile(r"(<pre\b.*?</pre>)", re.DOTALL | re.IGNORECASE)
# A block ends its own line; a <br> after it would add an empty one.
_BLOCK_END_NEWLINE = re.compile(r"(</(?:blockquote|pre)>)\n", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class MatrixRendered:
    body: str  # plain text: what notifications and clients without HTML show
    formatted_body: str | None  # org.matrix.custom.html; None for plain text only
    reactions: list[str] = field(default_factory=list)  # keys the bot puts under the message
    msgtype: str = TEXT
    # A card's case and version ({"case", "version"}; a crisis card's {"crisis", "version"}):
    # the sync loop reads it back from the room's timeline to know which version a reaction
    # under the card was made on (shown.py).
    card: dict[str, int] | None = None

    def content(self) -> dict[str, Any]:
        """The m.room.message content, without relations."""
        content: dict[str, Any] = {"msgtype": self.msgtype, "body": self.body}
        if self.formatted_body is not None:
            content["format"] = HTML_FORMAT
            content["formatted_body"] = self.formatted_body
        if self.card is not None:
            content[CARD_FIELD] = dict(self.card)
        return content


def to_matrix_html(page: str) -> str:
    """Template HTML for Matrix: newlines as <br>, except inside <pre>, which keeps them."""
    parts = _PRE.split(_BLOCK_END_NEWLINE.sub(r"\1", page))
    for index in range(0, len(parts), 2):  # even parts lie outside <pre>
        parts[index] = parts[index].replace("\n", "<br>")
    return "".join(parts)


def _link_as_text(match: re.Match[str]) -> str:
    url, label = html.unescape(match.group(1)), match.group(2)
    plain_label = html.unescape(_TAG.sub("", label))
    return label if url in plain_label else f"{label} ({html.escape(url, quote=False)})"


def to_plain(page: str) -> str:
    """The text of template HTML: tags dropped, entities decoded, link targets kept."""
    return html.unescape(_TAG.sub("", _LINK.sub(_link_as_text, page)))


def _json_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode())


def content_size(body: str, formatted_body: str | None) -> int:
    """Bytes the body and HTML take in the event's JSON (escapes included)."""
    return _json_bytes(body) + (_json_bytes(formatted_body) if formatted_body is not None else 0)


def _html_fits(page: str) -> bool:
    return content_size(to_plain(page), to_matrix_html(page)) <= MAX_CONTENT_BYTES


def _cut(text: str, length: int) -> str:
    return text if length >= len(text) else text[:length].rstrip() + ELLIPSIS


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


class MatrixRenderer:
    def __init__(self, texts: Texts) -> None:
        self.texts = texts

    def render(self, view: View) -> MatrixRendered:
        view = sendable(view)
        if view["view"] == "card":
            # The buttons are gone while a submenu is open (its choices go to the thread) and
            # on a card whose case moved to another department.
            menu_or_moved = view.get("menu") or view.get("moved_to")
            reactions = [] if menu_or_moved else card_reactions(view["actions"])
            shown = {"case": view["case"]["id"], "version": view["case"]["version"]}
            return replace(self._html(self._card(view), TEXT, reactions), card=shown)
        if view["view"] == "draft":
            return self._html(self._draft(view), TEXT, draft_reactions(view["actions"]))
        if view["view"] == "notice" or view["view"] == "prompt":
            return self._plain_as_html(self.texts.notice(view["key"], view["params"]))
        if view["view"] == "page":
            page = self.texts.render(view["template"], **view["context"])
            if not view["template"].endswith(HTML_SUFFIX):
                return self._plain_as_html(page)  # a .txt.j2 page is plain text
            checklist = view.get("checklist")
            if checklist:
                # A crisis card: a number reaction per item ticks it ("!undo N" in the thread
                # unticks); a message people act on, so m.text like a case card.
                keys = checklist_reactions(len(checklist["steps"]))
                shown = {"crisis": checklist["crisis"], "version": checklist["version"]}
                return replace(self._html(self.fit_lines(page), TEXT, keys), card=shown)
            return self._html(self.fit_lines(page), NOTICE)
        if view["view"] == "public_reply":
            # Posted where the citizen wrote: plain text, as a person would have typed it.
            text = self.texts.public_reply(view["text"], bool(view.get("corrects")))
            return MatrixRendered(self._fit_plain(text, html_too=False), None)
        if view["view"] == "queue":
            page = self.texts.render("queue.html.j2", **queue_context(view), matrix=True)
            return self._html(self.fit_lines(page), NOTICE)
        if view["view"] == "pack":
            # No buttons: "!case N" opens a case (the worker packs only where buttons exist).
            page = self.texts.render("pack.html.j2", items=view["items"], matrix=True)
            return self._html(self.fit_lines(page), NOTICE)
        if view["view"] == "triage":
            # No buttons: "!negative N" and "!notnegative N" decide a line (bot/chat/answers.py).
            page = self.texts.render(
                "triage.html.j2", items=view["items"], more=view["more"], commands=True
            )
            return self._html(self.fit_lines(page), NOTICE)
        # A photo is sent by the transport, which renders only its caption.
        raise ValueError(f"unknown view {view['view']!r}")

    def attachment_caption(self, view: AttachmentView) -> str:
        """The body of a citizen's photo posted under its card: which case, what it is."""
        kind = self.texts.t(f"attachment_kind.{view['kind']}")
        return self.texts.t("attachment.caption", case_id=view["case_id"], kind=kind)

    @staticmethod
    def _html(page: str, msgtype: str, reactions: list[str] | None = None) -> MatrixRendered:
        return MatrixRendered(to_plain(page), to_matrix_html(page), reactions or [], msgtype)

    def _plain_as_html(self, text: str) -> MatrixRendered:
        text = self._fit_plain(text, html_too=True)
        return MatrixRendered(text, to_matrix_html(_escape(text)), [], NOTICE)

    @staticmethod
    def _fit_plain(text: str, html_too: bool) -> str:
        def fits(candidate: str) -> bool:
            formatted = to_matrix_html(_escape(candidate)) if html_too else None
            return content_size(candidate, formatted) <= MAX_CONTENT_BYTES

        if fits(text):
            return text
        return longest_fit(lambda k: _cut(text, k), len(text), fits) or ELLIPSIS

    # --- cards and drafts: shorten the free text, never the facts around it ---

    def _card(self, view: CardView) -> str:
        context: dict[str, Any] = {name: view.get(name) for name in CARD_FIELDS}
        mention: str = view.get("text") or ""

        def with_mention(length: int) -> str:
            cut = length < len(mention)
            text = mention[:length].rstrip() if cut else mention
            return self.texts.render("card.html.j2", **{**context, "text": text}, text_cut=cut)

        # Even when it would fit, a huge mention stays out of the chat: one event stays small.
        page = with_mention(MAX_MENTION)
        if _html_fits(page):
            return page
        fitted = longest_fit(with_mention, min(len(mention), MAX_MENTION), _html_fits)
        return fitted if fitted is not None else self.fit_lines(with_mention(0))

    def _draft(self, view: DraftView) -> str:
        context: dict[str, Any] = {name: view.get(name) for name in DRAFT_FIELDS}
        page = self.texts.render("draft.html.j2", **context)
        if _html_fits(page):
            return page
        text: str = view.get("text") or ""

        def with_text(length: int) -> str:
            return self.texts.render("draft.html.j2", **{**context, "text": _cut(text, length)})

        fitted = longest_fit(with_text, len(text), _html_fits)
        return fitted if fitted is not None else self.fit_lines(page)

    # --- pages: whole lines only, and only where no tag is open ---

    def fit_lines(self, page: str) -> str:
        """The page if it fits; else its longest top-level line prefix and "… and N more"."""
        if _html_fits(page):
            return page
        lines = page.split("\n")
        cuts: list[int] = []  # line counts after which no tag is open
        depth = 0
        for index, line in enumerate(lines):
            for match in _TAG_DEPTH.finditer(line):
                depth = max(0, depth - 1) if match.group(1) else depth + 1
            if depth == 0:
                cuts.append(index + 1)

        candidates = [kept for kept in cuts if kept < len(lines)]

        def keep(position: int) -> str:
            kept = candidates[position]
            dropped = sum(1 for line in lines[kept:] if line.strip())
            note = _escape(self.texts.t("ui.truncated", count=dropped))
            return "\n".join(lines[:kept]).rstrip() + "\n" + note

        fitted = longest_fit(keep, len(candidates) - 1, _html_fits) if candidates else None
        if fitted is not None:
            return fitted
        # Not even the first block fits (one huge quote): its plain text, cut.
        return _escape(self._fit_plain(to_plain(page), html_too=True))
