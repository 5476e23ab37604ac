"""Neutral views: what a message says, as JSON-able data. Each transport renders them.

Every outbox payload is one of these, told apart by "view":

- card          a case card (state, author, text, draft, deadline) with its buttons
                ("actions") and, when a person opened one, a submenu ("menu", "options")
- draft         a draft posted under its card for review; "actions" while it is pending
- notice        one line of text: messages key "key" with "params"
- prompt        like notice, and the transport asks for a reply to it (ForceReply, thread)
- page          a longer answer rendered from file template "template" with "context"
- public_reply  the approved answer as posted at the source: plain "text"
- queue         the backlog summary a rate-limited chat keeps up to date
- photo         a picture with a caption view (bot/chat/outbox.py photo_payload); the
                transports send it, the renderers only render its caption

Each kind is a TypedDict below, `View` their union; renderers tell them apart by
`view["view"]`. The store keeps views as JSON and reads them back with `as_view`. Queued
messages outlive a release, so a key never changes its meaning (tests/bot/chat/test_views.py
pins the keys of every kind).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, NotRequired, TypedDict, cast
from zoneinfo import ZoneInfo

from bot.cases.lifecycle import DomainError, NoRight, available_actions
from bot.model import (
    Action,
    Author,
    Case,
    Draft,
    DraftStatus,
    IgnoreReason,
    Mention,
    Outcome,
    WaitReason,
)
from bot.settings.directory import Directory

DEADLINE_FORMAT = "%d.%m %H:%M"

# Actions whose button opens a list to choose from instead of acting at once.
MENU_ACTIONS = (
    Action.USE_TEMPLATE,
    Action.REROUTE,
    Action.CLOSE,
    Action.IGNORE,
    Action.WAIT_FOR_AUTHOR,
)
# Actions whose button asks for a text reply first.
PROMPT_ACTIONS = {
    Action.DRAFT: "ui.prompt_draft",
    Action.ESCALATE: "ui.prompt_reason",
    Action.REQUEST_CHANGES: "ui.prompt_note",
}
REVIEW_ACTIONS = (Action.APPROVE, Action.REQUEST_CHANGES, Action.REJECT)
# What the card and draft templates are given from a view (the rest is for the transports).
CARD_FIELDS = (
    "case",
    "department_name",
    "source",
    "deadline",
    "assignee_name",
    "author",
    "text",
    "url",
    "draft",
    "moved_to",
    "sla",
)
DRAFT_FIELDS = ("case_id", "version", "text", "author_name", "status", "reviewer_name", "note")


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


class CardDraft(TypedDict):
    """The latest draft as its card shows it."""

    version: int
    status: str  # DraftStatus value
    text: str


class SlaLine(TypedDict):
    """A card's deadline line: messages key and params, and the reminder the SLA clock sent."""

    key: str
    params: dict[str, str | None]
    reminder: str | None


class MenuOption(TypedDict):
    """One choice of a card's submenu: a plain "label" or a messages "label_key"."""

    arg: str
    label: NotRequired[str]
    label_key: NotRequired[str]
    action: NotRequired[str]  # the Action value it stands for, when not the menu's own


class CardView(TypedDict):
    view: Literal["card"]
    case: CaseFacts
    department_name: str
    source: str
    deadline: str | None
    assignee_name: str | None
    author: AuthorFacts
    text: str
    url: str | None
    draft: CardDraft | None
    moved_to: str | None  # name of the department a rerouted case went to
    sla: SlaLine | None
    actions: list[str]  # Action values, one button each
    menu: str | None  # the Action value whose submenu is open
    options: list[MenuOption]


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


class NoticeView(TypedDict):
    view: Literal["notice"]
    key: str
    params: dict[str, Any]  # whatever the message's template uses


class PromptView(TypedDict):
    view: Literal["prompt"]
    key: str
    params: dict[str, Any]


class PageView(TypedDict):
    view: Literal["page"]
    template: str
    context: dict[str, Any]  # whatever the file template uses


class PublicReplyView(TypedDict):
    view: Literal["public_reply"]
    text: str


class QueueItem(TypedDict):
    case_id: int
    priority: str  # Priority value


class QueueView(TypedDict):
    """The backlog summary. Deleting it queues a bare {"view": "queue"}: hence NotRequired."""

    view: Literal["queue"]
    waiting: NotRequired[int]
    items: NotRequired[list[QueueItem]]
    more: NotRequired[int]


class PhotoView(TypedDict):
    view: Literal["photo"]
    blob: str  # sha256 of the picture in the blob store
    mimetype: str
    filename: str
    width: int
    height: int
    size: int
    caption: View


View = (
    CardView
    | DraftView
    | NoticeView
    | PromptView
    | PageView
    | PublicReplyView
    | QueueView
    | PhotoView
)


def as_view(payload: Mapping[str, Any]) -> View:
    """A view read back from stored JSON: the one place it becomes typed again. A copy, so
    the stored row is never changed through it. Not checked: every payload was written by a
    builder here, and a kind the renderers do not know fails that one message at delivery."""
    return cast(View, dict(payload))


def card_view(
    case: Case,
    mention: Mention,
    author: Author | None,
    directory: Directory,
    tz: ZoneInfo,
    moved_to: str | None = None,
    publishable: bool = False,
    menu: Action | None = None,
    options: list[MenuOption] | None = None,
    now: datetime | None = None,
    sla_reminder: str | None = None,
) -> CardView:
    """Everything a card shows. The card of a rerouted case says where it went, no buttons.
    With `now`, the card says whether the current deadline is missed ("sla"); with
    `sla_reminder`, which reminder the SLA clock sent about it."""
    assert case.id is not None
    phase = current_deadline(case)
    deadline = phase[1] if phase else None
    draft = case.latest_draft
    actions = [] if moved_to else card_actions(case, publishable)
    return {
        "view": "card",
        "case": {
            "id": case.id,
            "version": case.version,
            "state": case.state.value,
            "priority": case.priority.value,
            "department": case.department,
            "escalation_level": case.escalation_level,
            "drill": case.drill,
            "mention_count": case.mention_count,
        },
        "department_name": directory.department_name(case.department),
        "source": mention.source,
        "deadline": format_time(deadline, tz) if case.state.is_open else None,
        "assignee_name": directory.name_of(case.assignee),
        "author": {
            "name": (author.display_name if author else "") or mention.author.display_name,
            "labels": sorted(label.value for label in author.labels) if author else [],
            "negative_count": author.negative_count if author else 0,
            "total_mentions": author.total_mentions if author else 0,
        },
        "text": mention.text,
        "url": mention.url,
        "draft": (
            {"version": draft.version, "status": draft.status.value, "text": draft.text}
            if draft
            else None
        ),
        "moved_to": directory.department_name(moved_to) if moved_to else None,
        "sla": _sla_line(case, phase, tz, now, sla_reminder),
        "actions": [a.value for a in actions],
        "menu": menu.value if menu and not moved_to else None,
        "options": options or [],
    }


def current_deadline(case: Case) -> tuple[str, datetime] | None:
    """The deadline that matters now, by kind: first touch until somebody touched the case,
    then the approved answer, then resolution. None for a closed case or without a policy."""
    if not case.state.is_open:
        return None
    if case.first_touched_at is None:
        kind, due = "first_touch", case.first_touch_due_at
    elif case.approved_at is None:
        kind, due = "answer", case.answer_due_at
    else:
        kind, due = "resolution", case.resolution_due_at
    return (kind, due) if due is not None else None


def _sla_line(
    case: Case,
    phase: tuple[str, datetime] | None,
    tz: ZoneInfo,
    now: datetime | None,
    reminder: str | None,
) -> SlaLine | None:
    """The card's SLA line as a messages key and its params."""
    if case.waiting_since is not None and case.state.is_open:
        since = format_time(case.waiting_since, tz)
        return {"key": "sla.card_paused", "params": {"since": since}, "reminder": reminder or None}
    if phase is None:
        return None
    kind, due = phase
    key = "sla.card_overdue" if now is not None and due <= now else "sla.card_due"
    params: dict[str, str | None] = {"kind": kind, "deadline": format_time(due, tz)}
    return {"key": key, "params": params, "reminder": reminder or None}


def card_actions(case: Case, publishable: bool) -> list[Action]:
    """Buttons under a card: what the state allows, without review buttons (they sit under
    the draft itself) and with the one way of publishing that fits the mention's origin."""
    hidden = set(REVIEW_ACTIONS)
    hidden.add(Action.MARK_PUBLISHED if publishable else Action.PUBLISH)
    return [a for a in available_actions(case) if a not in hidden]


def draft_view(case: Case, draft: Draft, directory: Directory) -> DraftView:
    assert case.id is not None
    pending = draft.status is DraftStatus.PENDING
    return {
        "view": "draft",
        "case_id": case.id,
        "case_version": case.version,
        "version": draft.version,
        "text": draft.text,
        "author_name": directory.name_of(draft.author),
        "status": draft.status.value,
        "reviewer_name": directory.name_of(draft.reviewer),
        "note": draft.note,
        "actions": [a.value for a in REVIEW_ACTIONS] if pending else [],
    }


def notice_view(key: str, **params: Any) -> NoticeView:
    return {"view": "notice", "key": key, "params": params}


def refusal_view(error: DomainError, *, name_the_right: bool = False) -> NoticeView:
    """A refused action as a notice. A missing right reads "no rights" in short answers;
    `name_the_right` says which right and where instead."""
    if isinstance(error, NoRight) and not name_the_right:
        return notice_view("ui.no_rights")
    return notice_view(f"error.{error.code}", **error.params)


def prompt_view(key: str, **params: Any) -> PromptView:
    return {"view": "prompt", "key": key, "params": params}


def page_view(template: str, context: dict[str, Any]) -> PageView:
    return {"view": "page", "template": template, "context": context}


def public_reply_view(text: str) -> PublicReplyView:
    return {"view": "public_reply", "text": text}


def queue_view(waiting: int, items: list[QueueItem], more: int) -> QueueView:
    return {"view": "queue", "waiting": waiting, "items": items, "more": more}


def menu_options(
    menu: Action, case: Case, directory: Directory, templates: list[tuple[str, str]]
) -> list[MenuOption]:
    """Choices of a submenu as {"arg", "label"}; labels of enums are message keys."""
    if menu is Action.USE_TEMPLATE:
        return [{"arg": template_id, "label": title} for template_id, title in templates]
    if menu is Action.REROUTE:
        return [
            {"arg": dept, "label": directory.department_name(dept)}
            for dept in directory.department_ids()
            if dept != case.department
        ]
    if menu is Action.CLOSE:
        return [{"arg": o.value, "label_key": f"outcome.{o.value}"} for o in Outcome]
    if menu is Action.IGNORE:
        options: list[MenuOption] = [
            {"arg": r.value, "label_key": f"ignore_reason.{r.value}"} for r in IgnoreReason
        ]
        coordination = directory.coordination
        if coordination and coordination != case.department:
            # "Not ours": the coordination centre decides whose it is.
            not_ours: MenuOption = {
                "arg": coordination,
                "label_key": "ui.not_ours",
                "action": Action.REROUTE.value,
            }
            options.insert(0, not_ours)
        return options
    if menu is Action.WAIT_FOR_AUTHOR:
        return [{"arg": r.value, "label_key": f"wait_reason.{r.value}"} for r in WaitReason]
    raise ValueError(f"{menu} has no menu")


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


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A logical key read back: which case a message of ours is about, and what it is."""

    kind: RefKind
    case_id: int
    action: Action | None = None  # a prompt's: what the reply to it carries out
    version: int | None = None  # a draft's version; a prompt's draft version


def parse_ref(ref: str) -> MessageRef | None:
    """The reading of card_ref, draft_ref and prompt_ref; None for any other key (queue,
    digest, notices) or a malformed one."""
    parts = ref.split(":")
    try:
        kind = RefKind(parts[0])
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
