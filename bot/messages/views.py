"""Neutral views: what a message says, as JSON-able data. Each transport renders them.

Every outbox payload is one of these, told apart by "view":

- card          a case card (state, author, text, draft, deadline) with its buttons
                ("actions") and, when a person opened one, a submenu ("menu", "options")
- draft         a draft posted under its card for review; "actions" while it is pending
- notice        one line of text: messages key "key" with "params"
- prompt        like notice, and the transport asks for a reply to it (ForceReply, thread)
- page          a longer answer rendered from file template "template" with "context";
                a crisis card's page also has "checklist": its items as buttons
- public_reply  the approved answer as posted at the source: plain "text"
- queue         the backlog summary a rate-limited chat keeps up to date
- triage        the uncertain mentions waiting for a person, kept up to date in the
                coordination chat (bot/intake/triage.py), two buttons a line
- pack          several waiting single-mention cases of a backlogged chat in one message
                ("items": a line each), with a take button per case still to take
                (bot/messages/delivery.py _pack_cards)
- photo         a picture with a caption view (bot/messages/outbox.py photo_payload); the
                transports send it, the renderers only render its caption
- attachment    a citizen's photo posted under its card by reference ("ref": a Telegram file
                id or an mxc:// uri), with a one-line caption; the transports send it

Each kind is a TypedDict below, `View` their union; renderers tell them apart by
`view["view"]`. The store keeps views as JSON and reads them back with `as_view`. Queued
messages outlive a release, so a key never changes its meaning (tests/bot/messages/test_views.py
pins the keys of every kind).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, NotRequired, TypedDict, TypeVar, cast
from zoneinfo import ZoneInfo

from bot.model import Action, CaseState

DEADLINE_FORMAT = "%d.%m %H:%M"

# What the card and draft templates are given from a view (the rest is for the transports).
CARD_FIELDS = (
    "case",
    "department_name",
    "route_confidence",
    "source",
    "deadline",
    "assignee_name",
    "author",
    "text",
    "url",
    "draft",
    "published",
    "moved_to",
    "sla",
    "attachments",
    "similar",
    "publication",
    "codes",
    "menu",
    "options",
)
DRAFT_FIELDS = (
    "case_id",
    "version",
    "text",
    "author_name",
    "status",
    "reviewer_name",
    "note",
    "drill",
    "kind",
    "chain",
)


class CaseFacts(TypedDict):
    """A card's "case": what the buttons and the template need of the case itself."""

    id: int
    version: int
    state: str  # CaseState value
    priority: str  # Priority value
    department: str
    escalation_level: int
    drill: bool
    mention_count: int


class AuthorFacts(TypedDict):
    name: str
    labels: list[str]  # AuthorLabel values, sorted
    negative_count: int
    total_mentions: int


class ChainStep(TypedDict):
    """One tier of a draft's approval chain as the draft and its card show it."""

    tier: str  # ApproverRole value
    state: str  # done, current (waits for it), stopped (sent back or rejected here), waiting
    by: str | None  # who approved it, by name


class CardDraft(TypedDict):
    """The latest draft as its card shows it."""

    version: int
    status: str  # DraftStatus value
    text: str
    # DraftKind value; cards queued before follow-ups existed lack it (an answer).
    kind: NotRequired[str]
    # The approval chain, for a draft with more than one tier; views queued before tiers
    # existed lack the key (templates test `is defined`).
    chain: NotRequired[list[ChainStep]]


class SlaLine(TypedDict):
    """A card's deadline line: messages key and params, and the reminder the SLA clock sent."""

    key: str
    params: dict[str, str | None]
    reminder: str | None


class MenuOption(TypedDict):
    """One choice of a card's submenu: a plain "label" or a messages "label_key" (with its
    "label_params"); a template's "preview" is the text it would post, shown on the card."""

    arg: str
    label: NotRequired[str]
    label_key: NotRequired[str]
    label_params: NotRequired[dict[str, str]]
    action: NotRequired[str]  # the Action value it stands for, when not the menu's own
    menu: NotRequired[str]  # a submenu it opens instead of acting ("set_code.topic")
    preview: NotRequired[str]


class CardCodes(TypedDict):
    dimension: str  # its title
    codes: list[str]  # their titles


class AttachmentLine(TypedDict):
    """One attachment as a card and /case list it."""

    kind: str  # AttachmentKind value
    name: str
    size: int | None  # bytes
    url: str | None  # a link anyone can open (http, https), else None


class SimilarFacts(TypedDict):
    count: int  # the other mentions of the case
    people: int  # their authors, besides the first mention's
    first: str  # times, formatted
    last: str
    sources: list[str]


class PublicationFacts(TypedDict):
    """The answer of a case with several mentions as it goes out (bot/cases/publication.py)."""

    done: int  # mentions answered: replies the bot delivered, plus those marked by hand
    total: int  # mentions the answer is for
    by_hand: int  # of done, marked by hand
    waiting_by_hand: int  # only a person can answer these; not yet marked


class CardView(TypedDict):
    view: Literal["card"]
    case: CaseFacts
    department_name: str
    # The learned router's confidence when it chose the department; absent from cards queued
    # before it existed.
    route_confidence: NotRequired[float | None]
    source: str
    deadline: str | None
    assignee_name: str | None
    author: AuthorFacts
    text: str
    url: str | None
    draft: CardDraft | None
    # The latest public text while a follow-up or correction is written; absent from cards
    # queued before follow-ups existed.
    published: NotRequired[CardDraft | None]
    moved_to: str | None  # name of the department a rerouted case went to
    sla: SlaLine | None
    # Photos and files that came with the mention; absent from cards queued before them.
    attachments: NotRequired[list[AttachmentLine]]
    # Similar mentions joined: how many, from how many other people, first and last time,
    # sources. Absent from cards queued before it existed and when none joined.
    similar: NotRequired[SimilarFacts | None]
    # A cluster's answer: published N of M. Absent from older cards and while nothing of a
    # case with several mentions was published.
    publication: NotRequired[PublicationFacts | None]
    actions: list[str]  # Action values, one button each
    menu: str | None  # the Action value whose submenu is open ("set_code.topic": 2nd level)
    options: list[MenuOption]
    # Codes set from the chat, per dimension of codes.yaml: [{"dimension", "codes"}]; absent
    # from cards queued before they existed.
    codes: NotRequired[list[CardCodes]]


class DraftView(TypedDict):
    view: Literal["draft"]
    case_id: int
    case_version: int
    version: int
    text: str
    author_name: str | None
    status: str  # DraftStatus value
    reviewer_name: str | None
    note: str | None
    actions: list[str]  # Action values while the draft is pending
    # A drill case's draft is marked DRILL. Drafts queued before drills existed lack the key:
    # renderers read it with .get.
    drill: bool
    kind: NotRequired[str]  # DraftKind value; absent from drafts queued before it existed
    chain: NotRequired[list[ChainStep]]  # as CardDraft's


class NoticeView(TypedDict):
    view: Literal["notice"]
    key: str
    params: dict[str, Any]  # whatever the message's template uses


class PromptView(TypedDict):
    view: Literal["prompt"]
    key: str
    params: dict[str, Any]


# Button labels up to this many characters fit three to a row on a phone; longer ones two.
SHORT_LABEL = 10
MAX_ROW = 3
ROW = 2

_Button = TypeVar("_Button")


def button_rows(buttons: Sequence[_Button], label: Callable[[_Button], str]) -> list[list[_Button]]:
    """Rows of two, or three when all three labels are short, in the given order: how every
    chat that draws buttons (Telegram, the sandbox) lays them out."""
    rows: list[list[_Button]] = []
    row: list[_Button] = []
    for button in buttons:
        third = len(row) == MAX_ROW - 1 and all(
            len(label(b)) <= SHORT_LABEL for b in (*row, button)
        )
        if len(row) < ROW or third:
            row.append(button)
            continue
        rows.append(row)
        row = [button]
    if row:
        rows.append(row)
    return rows


class ChecklistButton(TypedDict):
    """One checklist item of a crisis card as a button: its text per locale, and whether it
    is done (a press on a done item unticks it)."""

    label: dict[str, str]
    done: bool


class ChecklistControls(TypedDict):
    """The buttons of a crisis card: one per checklist item, in the playbook's order, drawn
    for this card version (bot/crisis/service.py card_version)."""

    crisis: int
    version: int
    steps: list[ChecklistButton]


class PageView(TypedDict):
    view: Literal["page"]
    template: str
    context: dict[str, Any]  # whatever the file template uses
    # A crisis card's checklist buttons; absent from other pages (and older crisis cards).
    checklist: NotRequired[ChecklistControls]


class PublicReplyView(TypedDict):
    view: Literal["public_reply"]
    text: str
    # A correction posted as a new reply (the bot has no reply of its own to edit): rendered
    # with the words that say it corrects the answer above. Absent: a plain reply.
    corrects: NotRequired[bool]


class QueueItem(TypedDict):
    case_id: int
    priority: str  # Priority value
    mentions: NotRequired[int]  # in the case; absent from queue messages queued before it


class QueueView(TypedDict):
    """The backlog summary. Deleting it queues a bare {"view": "queue"}: hence NotRequired.
    Every mention the chat has not seen is accounted for: on a listed case (its "mentions"),
    among the unlisted ("more" cases holding "more_mentions"), or added to a card already in
    the chat whose redraw waits ("updating" cards, "updating_mentions"). The counts in
    mentions are absent from queue messages queued before them."""

    view: Literal["queue"]
    waiting: NotRequired[int]  # messages waiting in the chat
    items: NotRequired[list[QueueItem]]  # largest clusters first, then most urgent
    more: NotRequired[int]  # cases waiting that are not listed
    cases: NotRequired[int]  # cases whose card waits
    mentions: NotRequired[int]  # their mentions
    more_mentions: NotRequired[int]  # the mentions of the unlisted cases
    updating: NotRequired[int]
    updating_mentions: NotRequired[int]


class TriageLine(TypedDict):
    """One uncertain mention on the triage list."""

    mention_id: int
    source: str
    author: str
    text: str  # shortened to a line
    url: str | None


class TriageView(TypedDict):
    view: Literal["triage"]
    items: list[TriageLine]  # newest first
    more: int  # how many more wait than are listed


class PackLine(TypedDict):
    """One case of a pack card, from its card as it was queued."""

    case_id: int
    version: int  # the case version the take button is drawn for; a stale press is refused
    priority: str  # Priority value
    state: str  # CaseState value
    source: str
    text: str  # the first PACK_TEXT characters of the card's text, on one line
    mentions: int  # the case's mentions the line counts: a small cluster's all of them
    carded: bool  # the case has its own card in the chat now (taken, grown, changed)
    # A small cluster's spread: how many joined the first, from how many people, first and
    # last time. Absent from lines of one mention (and from packs queued before it existed).
    similar: NotRequired[SimilarFacts | None]


class PackView(TypedDict):
    view: Literal["pack"]
    items: list[PackLine]  # most urgent first, then oldest


class PhotoView(TypedDict):
    view: Literal["photo"]
    blob: str  # sha256 of the picture in the blob store
    mimetype: str
    filename: str
    width: int
    height: int
    size: int
    caption: View


class AttachmentView(TypedDict):
    view: Literal["attachment"]
    case_id: int
    kind: str  # AttachmentKind value
    ref: str  # "telegram:<file_id>" or "mxc://…": only the transport it names can send it
    name: str
    mime: str
    size: int | None


View = (
    CardView
    | DraftView
    | NoticeView
    | PromptView
    | PageView
    | PublicReplyView
    | QueueView
    | TriageView
    | PackView
    | PhotoView
    | AttachmentView
)


# No chat network can carry these: a lone surrogate is not UTF-8 at all (the HTTP client fails
# before sending), and a NUL ends a tag's attribute for Telegram's parser ("Unclosed start
# tag"). Each becomes U+FFFD: one UTF-16 unit for one, so length limits still hold.
_UNSENDABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def sendable(view: View) -> View:
    """The view with every string made sendable; renderers start here. Texts come from
    outside (mentions, names, URLs, drafts) and may hold anything JSON can."""
    return cast(View, _sendable(view))


def _sendable(value: Any) -> Any:
    if isinstance(value, str):
        return _UNSENDABLE.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {key: _sendable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_sendable(item) for item in value]
    return value


def as_view(payload: Mapping[str, Any]) -> View:
    """A view read back from stored JSON: the one place it becomes typed again. A copy, so
    the stored row is never changed through it. Not checked: every payload was written by a
    builder here, and a kind the renderers do not know fails that one message at delivery."""
    return cast(View, dict(payload))


def notice_view(key: str, **params: Any) -> NoticeView:
    return {"view": "notice", "key": key, "params": params}


def prompt_view(key: str, **params: Any) -> PromptView:
    return {"view": "prompt", "key": key, "params": params}


def page_view(
    template: str, context: dict[str, Any], checklist: ChecklistControls | None = None
) -> PageView:
    page: PageView = {"view": "page", "template": template, "context": context}
    if checklist is not None:
        page["checklist"] = checklist
    return page


def public_reply_view(text: str, corrects: bool = False) -> PublicReplyView:
    view: PublicReplyView = {"view": "public_reply", "text": text}
    if corrects:
        view["corrects"] = True
    return view


def queue_view(
    waiting: int,
    items: list[QueueItem],
    more: int,
    *,
    cases: int = 0,
    mentions: int = 0,
    more_mentions: int = 0,
    updating: int = 0,
    updating_mentions: int = 0,
) -> QueueView:
    return {
        "view": "queue",
        "waiting": waiting,
        "items": items,
        "more": more,
        "cases": cases,
        "mentions": mentions,
        "more_mentions": more_mentions,
        "updating": updating,
        "updating_mentions": updating_mentions,
    }


def queue_context(view: QueueView) -> dict[str, Any]:
    """What queue.html.j2 is given of a queue view: all of it but the kind. Counts a view
    queued by an older release lacks stay undefined (the template tests them)."""
    return {key: value for key, value in view.items() if key != "view"}


def triage_view(items: list[TriageLine], more: int) -> TriageView:
    return {"view": "triage", "items": items, "more": more}


PACK_TEXT = 200  # characters of a mention's text on its pack card line
# Characters a small cluster's count and spread ("+4 similar from 4 people · first–last")
# take from its line's text, so a small cluster's line is about as long as a single's (past
# fourteen lines of either the Telegram renderer cuts every line's text alike to fit).
PACK_SPREAD = 60


def pack_line(card: CardView) -> PackLine:
    """A case's line on a pack card, drawn from its card (the same text the card shows, so
    the same personal-data handling: an erasure's redraw redraws the line too)."""
    case = card["case"]
    similar = card.get("similar") if case["mention_count"] > 1 else None
    return {
        "case_id": case["id"],
        "version": case["version"],
        "priority": case["priority"],
        "state": case["state"],
        "source": card["source"],
        "text": headline(card.get("text") or "", PACK_TEXT - (PACK_SPREAD if similar else 0)),
        "mentions": case["mention_count"],
        "carded": False,
        "similar": similar or None,
    }


def pack_view(lines: list[PackLine]) -> PackView:
    return {"view": "pack", "items": lines}


def pack_ref(case_ids: Sequence[int]) -> str:
    """A pack card's logical key, derived from its cases: packing the same cases twice (a
    retried transaction) names the same message."""
    return "pack:" + "-".join(str(case_id) for case_id in sorted(case_ids))


def pack_takeable(line: PackLine) -> bool:
    """A line keeps its take button while the case is new and on no card of its own."""
    return line["state"] == CaseState.NEW.value and not line["carded"]


STORY_TEXT = 70  # characters of the text that stands for a cluster on a crisis card or digest


def headline(text: str, limit: int = STORY_TEXT) -> str:
    """A mention's text as one short line: what a cluster is about, at a glance."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def format_time(moment: Any, tz: ZoneInfo) -> str | None:
    return moment.astimezone(tz).strftime(DEADLINE_FORMAT) if moment else None


def card_ref(case_id: int, department: str) -> str:
    """The logical key of a case's card in one department's chat."""
    return f"card:{case_id}:{department}"


def draft_ref(case_id: int, version: int, department: str) -> str:
    return f"draft:{case_id}:{version}:{department}"


def prompt_ref(kind: str, case_id: int, version: int, nonce: str) -> str:
    """Replies to a prompt are recognised by this key: prompt:<action>:<case>:<draft ver>:…"""
    return f"prompt:{kind}:{case_id}:{version}:{nonce}"


class RefKind(StrEnum):
    """What a message of ours is, by the first part of its logical key."""

    CARD = "card"
    DRAFT = "draft"
    PROMPT = "prompt"
    CRISIS = "crisis"  # a crisis card: case_id is the crisis id


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A logical key read back: which case a message of ours is about, and what it is."""

    kind: RefKind
    case_id: int  # the crisis id for a crisis card
    action: Action | None = None  # a prompt's: what the reply to it carries out
    version: int | None = None  # a draft's version; a prompt's draft version


def parse_ref(ref: str) -> MessageRef | None:
    """The reading of card_ref, draft_ref, prompt_ref and a crisis card's key; None for any
    other key (queue, digest, notices) or a malformed one."""
    parts = ref.split(":")
    try:
        kind = RefKind(parts[0])
        if kind is RefKind.CRISIS:
            return MessageRef(kind, _number(parts[1])) if len(parts) == 2 else None
        if kind is RefKind.CARD:
            return MessageRef(kind, _number(parts[1]))
        if kind is RefKind.DRAFT:
            return MessageRef(kind, _number(parts[1]), version=_number(parts[2]))
        return MessageRef(kind, _number(parts[2]), Action(parts[1]), _number(parts[3]))
    except (IndexError, ValueError):
        return None


def _number(part: str) -> int:
    if not part.isdigit():
        raise ValueError(part)
    return int(part)
