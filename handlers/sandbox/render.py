"""Neutral views (bot/messages/views.py) as JSON for the page: the same templates and the
same buttons (Action values, menus, review and triage buttons) as Telegram's.

The templates write Telegram-flavoured HTML. The page never parses HTML: the text goes to it
as a tree of text strings and a few allowed tags, which app.js builds with createElement and
textContent. Whatever a citizen wrote stays text, whatever the template says.
"""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from typing import Any

from bot.cases.cards import MENU_ACTIONS
from bot.chat.inbound import TriageDecision
from bot.messages.outbox import Delivery, PermanentFailure
from bot.messages.texts import HTML_SUFFIX, Texts
from bot.messages.views import (
    CARD_FIELDS,
    DRAFT_FIELDS,
    CardView,
    ChecklistControls,
    DraftView,
    PackView,
    TriageView,
    View,
    button_rows,
    pack_takeable,
    queue_context,
    sendable,
)
from bot.model import Action

__all__ = ["Node", "SandboxRenderer", "parse_html"]

Node = str | dict[str, Any]  # text, or {"tag": ..., "children": [...], "href"?: ...}
Button = dict[str, Any]  # {"label": ..., "data": {...}}: the data comes back, untrusted

# Tags the templates use that the page shows; anything else keeps only its text.
ALLOWED_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a", "blockquote"}
)
SPOILER = "tg-spoiler"
BLOCK_TAGS = frozenset({"blockquote", "pre"})  # shown as blocks: their own lines
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root: list[Node] = []
        self._stack: list[tuple[str, list[Node]]] = [("", self.root)]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self._stack[-1][1].append("\n")
            return
        if tag not in ALLOWED_TAGS and tag != SPOILER:
            return
        siblings = self._stack[-1][1]
        if tag in BLOCK_TAGS and siblings and isinstance(siblings[-1], str):
            # A block starts its own line: the newline before it would be a blank line.
            siblings[-1] = siblings[-1].removesuffix("\n")
        node: dict[str, Any] = {"tag": "span" if tag == SPOILER else tag, "children": []}
        if tag == "a":
            href = dict(attrs).get("href") or ""
            if href.startswith(("https://", "http://")):  # no javascript: or data:
                node["href"] = href
        self._stack[-1][1].append(node)
        self._stack.append((tag, node["children"]))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._stack) - 1, 0, -1):
            if self._stack[depth][0] == tag:
                del self._stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        siblings = self._stack[-1][1]
        if siblings and isinstance(siblings[-1], dict) and siblings[-1]["tag"] in BLOCK_TAGS:
            data = data.removeprefix("\n")  # ...and the newline after it too
            if not data:
                return
        if siblings and isinstance(siblings[-1], str):
            siblings[-1] += data
        else:
            siblings.append(data)


def parse_html(page: str) -> list[Node]:
    """Telegram HTML as a tree the page can build safely."""
    builder = _TreeBuilder()
    builder.feed(page)
    builder.close()
    return builder.root


def layout(buttons: list[Button]) -> list[list[Button]]:
    return button_rows(buttons, lambda b: str(b["label"]))


class SandboxRenderer:
    def __init__(self, texts: Texts) -> None:
        self.texts = texts

    def render(self, view: View) -> dict[str, Any]:
        """{"kind", "body" (a tree), "buttons" (rows), "prompt", "public", "drill"}."""
        view = sendable(view)
        kind = view["view"]
        buttons: list[list[Button]] = []
        drill = False
        if view["view"] == "card":
            context: dict[str, Any] = {name: view.get(name) for name in CARD_FIELDS}
            body = parse_html(self.texts.render("card.html.j2", **context, text_cut=False))
            buttons = self._card_buttons(view)
            drill = bool(view["case"].get("drill"))
        elif view["view"] == "draft":
            draft: dict[str, Any] = {name: view.get(name) for name in DRAFT_FIELDS}
            body = parse_html(self.texts.render("draft.html.j2", **draft))
            buttons = self._draft_buttons(view)
        elif view["view"] in ("notice", "prompt"):
            body = [self.texts.t(view["key"], **view["params"])]
        elif view["view"] == "page":
            page = self.texts.render(view["template"], **view["context"])
            body = parse_html(page) if view["template"].endswith(HTML_SUFFIX) else [page]
            checklist = view.get("checklist")
            if checklist:
                buttons = self._checklist_buttons(checklist)
            crisis = view["context"].get("crisis")
            drill = isinstance(crisis, dict) and bool(crisis.get("drill"))  # a drill's card
        elif view["view"] == "public_reply":
            body = [self.texts.public_reply(view["text"], bool(view.get("corrects")))]
        elif view["view"] == "queue":
            body = parse_html(self.texts.render("queue.html.j2", **queue_context(view)))
        elif view["view"] == "triage":
            page = self.texts.render(
                "triage.html.j2", items=view["items"], more=view["more"], commands=False
            )
            body = parse_html(page)
            buttons = self._triage_buttons(view)
        elif view["view"] == "pack":
            body = parse_html(self.texts.render("pack.html.j2", items=view["items"]))
            buttons = self._pack_buttons(view)
        else:  # a photo is rendered by photo(), from its delivery
            raise ValueError(f"unknown view {kind!r}")
        return {
            "kind": kind,
            "body": body,
            "buttons": buttons,
            "prompt": kind == "prompt",
            "public": kind == "public_reply",
            "drill": drill,
        }

    def photo(self, delivery: Delivery) -> dict[str, Any]:
        """A picture (the digest's chart) with its caption, inline as a data: URL."""
        payload, picture = delivery.photo_view()
        mimetype = payload.get("mimetype") or "image/png"
        if mimetype not in IMAGE_TYPES:
            raise PermanentFailure(f"not a picture the page shows: {mimetype!r}")
        shown = self.render(payload["caption"])
        encoded = base64.b64encode(picture).decode("ascii")
        return {**shown, "kind": "photo", "image": f"data:{mimetype};base64,{encoded}"}

    # --- buttons: the same as handlers/telegram/keyboards.py, as data the page sends back ---

    def _card_buttons(self, view: CardView) -> list[list[Button]]:
        case_id, version = view["case"]["id"], view["case"]["version"]
        menu = view.get("menu")
        t = self.texts.t
        if menu:
            options = [
                {
                    "label": self.texts.option_label(option),
                    # A dimension of «Коды ▸» opens its codes, as in Telegram.
                    "data": (
                        {"k": "m", "case": case_id, "v": version, "menu": option["menu"]}
                        if option.get("menu")
                        else {
                            "k": "c",
                            "case": case_id,
                            "v": version,
                            "a": option.get("action") or menu,
                            "x": option["arg"],
                        }
                    ),
                }
                for option in view.get("options") or []
            ]
            back = {
                "label": t("ui.menu.back"),
                "data": {"k": "m", "case": case_id, "v": version, "menu": ""},
            }
            return [*layout(options), [back]]
        buttons = [
            {
                "label": t(f"ui.menu.{action}"),
                "data": {"k": "m", "case": case_id, "v": version, "menu": action},
            }
            if action in MENU_ACTIONS
            else {
                "label": t(f"action.{action}"),
                "data": {"k": "c", "case": case_id, "v": version, "a": action, "x": ""},
            }
            for action in view.get("actions") or []
        ]
        return layout(buttons)

    def _draft_buttons(self, view: DraftView) -> list[list[Button]]:
        buttons = [
            {
                "label": self.texts.t(f"action.{action}"),
                "data": {"k": "d", "case": view["case_id"], "ver": view["version"], "a": action},
            }
            for action in view.get("actions") or []
        ]
        return layout(buttons)

    def _checklist_buttons(self, controls: ChecklistControls) -> list[list[Button]]:
        """One row per item of a crisis card's checklist, as Telegram's checklist_keyboard."""
        rows: list[list[Button]] = []
        for index, step in enumerate(controls["steps"]):
            data = {
                "k": "k",
                "crisis": controls["crisis"],
                "v": controls["version"],
                "s": index,
                "d": int(not step["done"]),
            }
            label = self.texts.checklist_button(index + 1, step["label"], step["done"])
            rows.append([{"label": label, "data": data}])
        return rows

    def _pack_buttons(self, view: PackView) -> list[list[Button]]:
        """One take button a row per case still to take, as Telegram's pack_keyboard."""
        return [
            [
                {
                    "label": self.texts.t("ui.pack_take", case_id=line["case_id"]),
                    "data": {
                        "k": "c",
                        "case": line["case_id"],
                        "v": line["version"],
                        "a": Action.TAKE.value,
                        "x": "",
                    },
                }
            ]
            for line in view.get("items") or []
            if pack_takeable(line)
        ]

    def _triage_buttons(self, view: TriageView) -> list[list[Button]]:
        return [
            [
                {
                    "label": self.texts.t(f"ui.triage_{label}", mention_id=item["mention_id"]),
                    "data": {"k": "t", "m": item["mention_id"], "a": decision.value},
                }
                for label, decision in (
                    ("negative", TriageDecision.NEGATIVE),
                    ("not_negative", TriageDecision.NOT_NEGATIVE),
                )
            ]
            for item in view.get("items") or []
        ]
