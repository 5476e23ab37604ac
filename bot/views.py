"""Neutral views: what a card or notice says, as JSON-able data. Transports render them."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from bot.directory import Directory
from bot.lifecycle import available_actions
from bot.model import Author, Case, Mention

DEADLINE_FORMAT = "%d.%m %H:%M"


def card_view(
    case: Case,
    mention: Mention,
    author: Author | None,
    directory: Directory,
    tz: ZoneInfo,
    moved_to: str | None = None,
) -> dict[str, Any]:
    """Everything a card shows. The card of a rerouted case says where it went, no buttons."""
    assert case.id is not None
    deadline = case.first_touch_due_at if case.first_touched_at is None else case.answer_due_at
    draft = case.latest_draft
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
        "deadline": deadline.astimezone(tz).strftime(DEADLINE_FORMAT) if deadline else None,
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
        "actions": [] if moved_to else [a.value for a in available_actions(case)],
    }


def card_ref(case_id: int, department: str) -> str:
    """The logical key of a case's card in one department's chat."""
    return f"card:{case_id}:{department}"
