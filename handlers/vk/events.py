"""Callback API event objects → mentions. Pure: no I/O, everything VK sends is untrusted.

Event objects follow the API version the server is set to, 5.199 (dev.vk.com/ru/api/callback/
getting-started, "Data format"; objects as in VKCOM/vk-api-schema callback/objects.json).

What each kind of event does to the case:
- *_new: a mention, through intake like any other; a reply in a comment thread joins the
  case of the thread's first comment (reply_to_url is that comment's link).
- *_edit: the edited words are a new mention that joins the case of the comment it edits
  (reply_to_url is the comment's own link); the same words again are a duplicate. The first
  words stay: staff see both, and what was answered stays on record.
- *_restore: taken in like a new comment; a comment the bot already has is a duplicate, so
  restoring changes nothing.
- *_delete: no mention, the case stays as it is: the citizen did write it, and an answer
  prepared may still be published (VK then says whether the comment is there to reply to).
  The case's audit trail gets `source_deleted`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.cases.replies import VK_MESSAGE_SOURCE, VK_WALL_SOURCE, vk_message_id, vk_wall_comment_id
from bot.model import MAX_MENTION_TEXT, Identity, Mention

CHANNEL = "vk"  # identity channel: "vk:<from_id>"
PHOTO_SOURCE = "vk:photo"
VIDEO_SOURCE = "vk:video"
BOARD_SOURCE = "vk:board"
MAX_ID = 2**63 - 1
CHAT_PEERS = 2_000_000_000  # peer ids from here on are group chats, not a citizen (messages.send)

# Comments of every kind: (type prefix, source, how its owner and item are named in the object).
_COMMENTS = {
    "wall_reply": (VK_WALL_SOURCE, "owner_id", "post_id"),
    "photo_comment": (PHOTO_SOURCE, "photo_owner_id", "photo_id"),
    "video_comment": (VIDEO_SOURCE, "video_owner_id", "video_id"),
    "board_post": (BOARD_SOURCE, "topic_owner_id", "topic_id"),
}
_ACTIONS = ("new", "edit", "restore", "delete")
TAKEN = frozenset(f"{kind}_{action}" for kind in _COMMENTS for action in _ACTIONS) | {"message_new"}


@dataclass(frozen=True, slots=True)
class Deleted:
    """A comment was deleted: the stored mention it was, if any, is marked on its case."""

    source: str
    external_id: str


def _int(value: Any) -> int | None:
    # bool is an int in Python and never an id in VK.
    if isinstance(value, int) and not isinstance(value, bool) and -MAX_ID <= value <= MAX_ID:
        return value
    return None


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    return text.replace("\x00", "").strip()[:MAX_MENTION_TEXT]


def _author(from_id: int) -> Identity:
    return Identity(CHANNEL, str(from_id), f"id{from_id}", f"https://vk.com/id{from_id}")


def _when(value: Any) -> datetime | None:
    seconds = _int(value)
    if seconds is None or not 0 < seconds < 2**37:
        return None
    return datetime.fromtimestamp(seconds, UTC)


def _item_url(kind: str, owner: int, item: int) -> str:
    if kind == "wall_reply":
        return f"https://vk.com/wall{owner}_{item}"
    if kind == "board_post":
        return f"https://vk.com/topic{owner}_{item}"
    return f"https://vk.com/{kind.split('_')[0]}{owner}_{item}"  # photo…, video…


def _comment_url(kind: str, base: str, comment: int, thread: int | None) -> str:
    if kind == "board_post":
        return f"{base}?post={comment}"
    # The link VK itself gives a comment; &thread= opens the reply inside its thread.
    return f"{base}?reply={comment}" + (f"&thread={thread}" if thread else "")


def _thread_of(obj: dict[str, Any]) -> int | None:
    """The first comment of the thread a reply sits in; None for a comment on the post."""
    stack = obj.get("parents_stack")
    if isinstance(stack, list) and stack:
        top = _int(stack[0])
        if top is not None and top > 0:
            return top
    reply = _int(obj.get("reply_to_comment"))
    return reply if reply is not None and reply > 0 else None


def translate(type_: str, obj: Any, group_id: int, now: datetime) -> Mention | Deleted | None:
    """What an event means: a mention to take in, a deleted comment, or nothing (an event
    we do not take, the community's own words, a malformed object)."""
    if not isinstance(obj, dict):
        return None
    if type_ == "message_new":
        return _message(obj, now)
    kind, _, action = type_.rpartition("_")
    if kind not in _COMMENTS or action not in _ACTIONS:
        return None
    source, owner_key, item_key = _COMMENTS[kind]
    owner, item, comment = _int(obj.get(owner_key)), _int(obj.get(item_key)), _int(obj.get("id"))
    if owner is None or item is None or comment is None or item <= 0 or comment <= 0:
        return None
    if owner != -group_id:
        return None  # only the community's own page; the secret already says who sent it
    external_id = vk_wall_comment_id(owner, item, comment)
    if action == "delete":
        return Deleted(source, external_id)
    from_id = _int(obj.get("from_id"))
    text = _text(obj.get("text"))
    if from_id is None or from_id <= 0 or not text:
        return None  # the community itself (negative ids) or nothing said
    base = _item_url(kind, owner, item)
    thread = _thread_of(obj) if kind != "board_post" else None
    url = _comment_url(kind, base, comment, thread)
    reply_to_url = _comment_url(kind, base, thread, None) if thread else None
    if action == "edit":
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        external_id = f"{external_id}:edit:{digest}"
        reply_to_url = _comment_url(kind, base, comment, None)
    return Mention(
        source=source,
        external_id=external_id,
        text=text,
        author=_author(from_id),
        received_at=now,
        published_at=_when(obj.get("date")),
        url=url,
        reply_to_url=reply_to_url,
    )


def _message(obj: dict[str, Any], now: datetime) -> Mention | None:
    message = obj.get("message")
    if not isinstance(message, dict):
        return None
    peer, from_id, number = (_int(message.get(k)) for k in ("peer_id", "from_id", "id"))
    text = _text(message.get("text"))
    if peer is None or from_id is None or number is None or not text:
        return None
    if from_id <= 0 or peer != from_id or peer >= CHAT_PEERS or number <= 0:
        return None  # only a person writing to the community, not a group chat
    return Mention(
        source=VK_MESSAGE_SOURCE,
        external_id=vk_message_id(peer, number),
        text=text,
        author=_author(from_id),
        received_at=now,
        published_at=_when(message.get("date")),
    )
