"""What the server remembers: users and bots, chats with their members and topics, stored
messages, and the records tests read back (ApiCall, Stats).

Plain dataclasses, no behaviour beyond serialising a user. Next: flood.py, the flood limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


@dataclass
class User:
    id: int
    first_name: str
    username: str | None = None
    last_name: str | None = None
    language_code: str | None = None
    is_bot: bool = False

    def to_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data


@dataclass
class BotInfo:
    id: int
    username: str
    token: str = field(repr=False)
    first_name: str = ""
    can_join_groups: bool = True
    can_read_all_group_messages: bool = True

    @property
    def user(self) -> User:
        return User(self.id, self.first_name, self.username, is_bot=True)


@dataclass
class BotState:
    info: BotInfo
    updates: list[dict[str, Any]] = field(default_factory=list)
    next_update_id: int = 1
    allowed_updates: frozenset[str] | None = None
    poll_generation: int = 0
    polls_waiting: int = 0
    commands: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    webhook: Webhook | None = None  # set: updates are POSTed there, getUpdates answers 409
    # Test knobs (webhooks.py): deliver round-robin across these URLs instead of the webhook's
    # (a load balancer in front of instances); treat a 2xx for these update ids as lost.
    webhook_targets: list[str] = field(default_factory=list)
    target_turn: int = 0
    lost_answers: set[int] = field(default_factory=set)
    in_flight: set[int] = field(default_factory=set)  # update ids being POSTed now
    retry_at: dict[int, float] = field(default_factory=dict)  # update id -> loop time
    attempts: dict[int, int] = field(default_factory=dict)


@dataclass
class Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass
class WebhookDelivery:
    """One POST of an update to a webhook, as tests read it back."""

    update_id: int
    url: str
    status: int | None  # None: no HTTP answer (connection refused, timeout)
    error: str | None  # what getWebhookInfo would show; None for a 2xx


ADMIN_RIGHTS: dict[str, bool] = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": True,
    "can_edit_stories": True,
    "can_delete_stories": True,
    "can_send_welcome_messages": False,
    "can_pin_messages": True,
    "can_manage_topics": True,
    "can_post_messages": True,
    "can_edit_messages": True,
}
MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted"})


@dataclass
class Membership:
    status: str  # creator / administrator / member / restricted / left / kicked
    rights: dict[str, bool] = field(default_factory=dict)
    can_read_all: bool | None = None  # privacy mode as it was when the bot joined


@dataclass
class Topic:
    thread_id: int
    name: str
    icon_color: int = 0x6FB9F0
    closed: bool = False


@dataclass
class StoredMessage:
    """A message as the chat currently shows it (edits applied; `deleted` once removed)."""

    chat_id: int
    message_id: int
    date: int
    from_user: User | None
    sender_chat_id: int | None = None
    text: str | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[dict[str, Any]] = field(default_factory=list)
    photo: list[dict[str, Any]] | None = None
    photo_bytes: bytes | None = None
    document: dict[str, Any] | None = None  # a Document: file_id, file_name, mime_type, …
    reply_to_message_id: int | None = None
    external_reply: dict[str, Any] | None = None
    quote: dict[str, Any] | None = None
    thread_id: int | None = None
    is_topic_message: bool = False
    reply_markup: dict[str, Any] | None = None  # inline keyboards only, as Telegram returns
    sent_reply_markup: dict[str, Any] | None = None  # whatever markup the sender attached
    protect_content: bool = False
    disable_notification: bool = False
    link_preview_options: dict[str, Any] | None = None
    edit_date: int | None = None
    deleted: bool = False
    is_automatic_forward: bool = False
    forward_origin: dict[str, Any] | None = None
    service: dict[str, Any] | None = None
    author_signature: str | None = None
    bot_id: int | None = None  # the bot that sent it, if any
    private_bot_id: int | None = None  # for private chats: whose chat with the user
    discussion_message_id: int | None = None  # channel posts: the automatic forward's id
    source: str | None = None  # the text or caption exactly as the sender passed it
    parse_mode: str | None = None


@dataclass
class Chat:
    id: int
    type: str  # private / group / supergroup / channel
    title: str | None = None
    username: str | None = None
    is_forum: bool = False
    owner: User | None = None
    linked_chat_id: int | None = None
    private_user: User | None = None
    private_bot_id: int | None = None
    started: bool = False  # private chats: the user contacted the bot
    blocked: bool = False
    members: dict[int, Membership] = field(default_factory=dict, repr=False)
    topics: dict[int, Topic] = field(default_factory=dict, repr=False)
    store: dict[int, StoredMessage] = field(default_factory=dict, repr=False)
    next_message_id: int = 1
    last_bot_sender: int | None = None
    migrated_to: int | None = None  # a group upgraded to this supergroup


@dataclass
class CallRecord:
    method: str
    chat_id: int | None
    at: float  # the server's monotonic clock, unscaled
    bot_id: int


@dataclass
class ApiCall:
    method: str
    bot_id: int | None
    params: dict[str, Any]
    ok: bool
    error_code: int | None
    description: str | None
    at: float


@dataclass
class Stats:
    count_429: int = 0
    calls: list[CallRecord] = field(default_factory=list)  # successful ones only


@dataclass
class CallbackQuery:
    id: str
    bot_id: int
    user: User
    chat_id: int
    message_id: int
    data: str | None
    created: float  # scaled time
    answered: bool = False


# (thread id, is a topic message, replied message, external reply, quote)
ReplyTarget = tuple[
    int | None, bool, "StoredMessage | None", dict[str, Any] | None, dict[str, Any] | None
]


class Access(Enum):
    READ = "read"
    EDIT = "edit"
    WRITE = "write"
